"""The edgekit command line, run as a user runs it (a real subprocess for the
exit-code and no-traceback checks; click's runner elsewhere)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tests.support.shared import shared_file
from edgekit.cli.main import _register, cli

_register()
EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]


def invoke(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def run_cli(*args, **kw):
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(EDGEKIT + list(args), capture_output=True, text=True, env=env, timeout=120, **kw)


def test_help_everywhere():
    for cmd in ([], ["inspect"], ["run"], ["convert"], ["targets"], ["targets", "show"], ["demo"]):
        r = invoke(*cmd, "--help")
        assert r.exit_code == 0 and "Usage:" in r.output


def test_inspect_json_kws():
    r = invoke("inspect", str(shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite")), "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    # 2,656,768 MACs and 22.6k parameters: the figures MLPerf Tiny publishes for this model.
    assert doc["macs"] == 2_656_768
    assert 22_500 < doc["params"] < 22_700
    assert len(doc["layers"]) == 13
    assert doc["layers"][0]["op"] == "CONV_2D" and doc["layers"][0]["output"] == [1, 25, 5, 64]
    assert doc["layers"][0]["activation_bytes"] == 25 * 5 * 64
    assert doc["inputs"][0]["dtype"] == "int8"


def test_inspect_table_ad():
    r = invoke("inspect", str(shared_file("models/mlperf-tiny/ad01_int8.tflite")))
    assert r.exit_code == 0
    assert r.output.count("FULLY_CONNECTED") == 10
    assert "264,192" in r.output  # total MACs of the AD autoencoder


def test_run_npy_matches_tflm(tmp_path, kws_data):
    from tests.support.shared import tflm_outputs

    model = shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite")
    x, _ = kws_data
    np.save(tmp_path / "x.npy", x[:10])
    r = invoke("run", str(model), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy"))
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (10, 12) and (y == tflm_outputs(model, x[:10])).all()


def test_run_npz_and_dump(tmp_path, kws_data):
    model = shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite")
    x, _ = kws_data
    np.savez(tmp_path / "x.npz", x=x[:3])
    r = invoke("run", str(model), "-i", str(tmp_path / "x.npz"), "-o", str(tmp_path / "y.npz"),
               "--dump", str(tmp_path / "all.npz"))
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "all.npz") as z:
        assert len(z.files) == 14  # the input and the 13 op outputs
    with np.load(tmp_path / "y.npz") as z:
        assert z["Identity"].shape == (3, 12)


def test_convert_to_ir_and_run_it(tmp_path, kws_data):
    model = shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite")
    x, _ = kws_data
    r = invoke("convert", str(model), "--to", "ir", "-o", str(tmp_path / "kws.json"))
    assert r.exit_code == 0, r.output
    np.save(tmp_path / "x.npy", x[:5])
    a = invoke("run", str(model), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "a.npy"))
    b = invoke("run", str(tmp_path / "kws.json"), "-i", str(tmp_path / "x.npy"), "-o", str(tmp_path / "b.npy"))
    assert a.exit_code == b.exit_code == 0
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


@pytest.mark.parametrize("args,match", [
    (["inspect", "no/such/model.tflite"], "model file not found"),
    (["inspect", "README.md"], "cannot tell the format"),
    (["targets", "show", "nope"], "nope"),
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(args, match):
    r = run_cli(*args)
    assert r.returncode == 2, r.stderr
    assert match in r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout


def test_wrong_input_shape_and_dtype(tmp_path):
    model = shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite")
    np.save(tmp_path / "bad.npy", np.zeros((2, 49, 9, 1), np.int8))
    r = run_cli("run", str(model), "-i", str(tmp_path / "bad.npy"))
    assert r.returncode == 2
    assert "has shape [2, 49, 9, 1]; the model expects [1, 49, 10, 1]" in r.stderr
    np.save(tmp_path / "f.npy", np.zeros((1, 49, 10, 1), np.float32))
    r = run_cli("run", str(model), "-i", str(tmp_path / "f.npy"))
    assert r.returncode == 2 and "quantize it first" in r.stderr
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    r = run_cli("run", str(model), "-i", str(tmp_path / "junk.npy"))
    assert r.returncode == 2 and "not a readable .npy/.npz" in r.stderr


def test_corrupt_model_exits_2(tmp_path):
    data = shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite").read_bytes()
    (tmp_path / "cut.tflite").write_bytes(data[:1000])
    r = run_cli("inspect", str(tmp_path / "cut.tflite"))
    assert r.returncode == 2 and "cut.tflite" in r.stderr and "Traceback" not in r.stderr


def test_verbose_shows_traceback():
    r = run_cli("--verbose", "inspect", "no/such/model.tflite")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_demo_end_to_end_on_the_emulated_board(tmp_path):
    """The main job: train, prune, distill, quantize, compile, flash to the emulated
    cortex-m4 over serial and run the 450 held-out digits there (issue 6's goals)."""
    pytest.importorskip("torch")
    pytest.importorskip("torch_pruning")
    import shutil

    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} missing: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm")
    from edgekit.demo import run_demo

    r = run_demo("cortex-m4", tmp_path, say=lambda m: None)
    teacher, device = r.rows[0], r.rows[-1]
    assert [x.stage for x in r.rows] == ["teacher", "pruned", "distilled", "int8 (host, reference)",
                                        "int8 (on mps2-an386)"]
    assert r.test_samples == 450 and r.bit_exact == 450
    assert device.accuracy >= teacher.accuracy - 0.01          # within 1.0 point of fp32
    assert r.flash_ratio >= 4                                   # >= 4x smaller flash, estimate vs estimate
    assert "flash" in teacher.estimated and "instructions" in r.rows[-2].estimated
    assert device.estimated == ()                                # the board row is measured
    # Instructions on the board are timer ticks x 40 (-icount shift=0: 1 ns per instruction,
    # a 25 MHz timer); the median of 450 counts is a whole or half tick: a multiple of 20.
    assert device.instructions is not None and device.instructions % 20 == 0
    # Within what the model's MACs allow (compile's manifest counts them): Armv7E-M does at
    # most two MACs per instruction (SMLAD), and no kernel needs 20 per MAC (2.2 to 16.2 measured).
    macs = json.loads((tmp_path / "compile" / "manifest.json").read_text())["macs"]
    assert macs / 2 <= device.instructions <= 20 * macs
    assert r.seconds < 180


def test_unsupported_onnx_op_exits_2_naming_op_node_and_supported(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Erf", ["x"], ["y"], name="my_erf")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "erf.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    r = run_cli("inspect", str(path))
    assert r.returncode == 2
    assert "'Erf'" in r.stderr and "my_erf" in r.stderr and "Conv" in r.stderr and "Gemm" in r.stderr
    assert "Traceback" not in r.stderr


def test_pytorch_factory_spec_with_input_shape():
    pytest.importorskip("torch")
    spec = "tests/frontends/torch_models.py:mlp"
    r = invoke("inspect", spec, "--json", "--input-shape", "x=1,20")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    assert doc["source_format"] == "torch" and doc["inputs"][0]["shape"] == [1, 20]
