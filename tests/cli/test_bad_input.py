"""Bad input to every command that writes or feeds a model (issue 9, section 5): each case
runs the real CLI, and checks the exit code (2: bad input), the message naming the
problem, and that nothing was left behind (no output file, no temporary file, no QEMU
work folder)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import _register, cli

_register()
DIGITS_FLOAT = str(resources.files("edgekit") / "data" / "digits_cnn.onnx")
EDGEKIT = [sys.executable, "-m", "edgekit.cli.main"]
UNREACHABLE_PORT = "socket://127.0.0.1:9"  # the discard port: a command that connects would fail there


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "300"})


def run_cli(*args, cwd=None):
    env = dict(os.environ, COLUMNS="300")
    return subprocess.run(EDGEKIT + [str(a) for a in args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=cwd)


def refused(r, *words):
    """Exit 2 with one line naming every word, and no traceback."""
    text = r.output if hasattr(r, "exit_code") else r.stderr
    code = r.exit_code if hasattr(r, "exit_code") else r.returncode
    assert code == 2, text
    for w in words:
        assert w in text, f"{w!r} not in: {text}"
    assert "Traceback" not in text and "internal error" not in text, text


def files_in(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def digits_samples():
    with np.load(str(resources.files("edgekit") / "data" / "digits_samples.npz")) as z:
        return z["x"], z["y"]


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory, digits_samples):
    """The bundled digits CNN quantized to int8 (int8 input), saved as edgekit IR."""
    import warnings

    from edgekit.frontends import load_model
    from edgekit.ir import save
    from edgekit.quantize import quantize

    x, _ = digits_samples
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few calibration samples: fine for a test model
        graph = quantize(load_model(DIGITS_FLOAT), x).graph
    graph.name = "digits"
    path = tmp_path_factory.mktemp("digits") / "digits.json"
    save(graph, path)
    return graph, path


def quantize_by_hand(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """TFLite's QUANTIZE written out: round half away from zero of float32(x) / scale."""
    v = x.astype(np.float32) / np.float32(scale)
    q = np.sign(v) * np.floor(np.abs(v) + np.float32(0.5)) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


# ----------------------------------------------------------------------------- run


def test_run_refuses_nan_and_inf_naming_input_and_index(tmp_path, digits_samples, digits_int8):
    x, _ = digits_samples
    bad = x[:4].copy()
    bad[2, 0, 5, 3] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    r = invoke("run", DIGITS_FLOAT, "-i", tmp_path / "nan.npy", "-o", tmp_path / "y.npy")
    refused(r, "input 'input' holds NaN at index [2, 0, 5, 3]")  # in the file's layout (NCHW)
    bad = x[:4].copy()
    bad[1, 0, 0, 7] = -np.inf
    np.save(tmp_path / "inf.npy", bad)
    r = invoke("run", digits_int8[1], "-i", tmp_path / "inf.npy", "-o", tmp_path / "y.npy", "--quantize-inputs")
    refused(r, "input 'input' holds an infinity at index [1, 0, 0, 7]")
    assert files_in(tmp_path) == {"nan.npy", "inf.npy"}


def test_float_data_for_an_int8_input_needs_quantize_inputs(tmp_path, digits_samples, digits_int8):
    graph, model = digits_int8
    x, _ = digits_samples
    np.save(tmp_path / "x.npy", x[:6])
    r = invoke("run", model, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    refused(r, "input 'input' is int8", "got float32 data", "--quantize-inputs")
    assert not (tmp_path / "y.npy").exists()

    r = invoke("run", model, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "--quantize-inputs")
    assert r.exit_code == 0, r.output
    q = graph.input_tensors()[0].quant
    np.save(tmp_path / "xq.npy", quantize_by_hand(x[:6], float(q.scale[0]), int(q.zero_point[0])))
    r = invoke("run", model, "-i", tmp_path / "xq.npy", "-o", tmp_path / "yq.npy")
    assert r.exit_code == 0, r.output
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.load(tmp_path / "yq.npy"))


def test_run_output_paths_are_checked_before_the_work(tmp_path, digits_samples):
    x, _ = digits_samples
    np.save(tmp_path / "x.npy", x[:2])
    (tmp_path / "afile").write_text("")
    (tmp_path / "folder.npy").mkdir()
    before = files_in(tmp_path)
    for args, words in (
        (["-o", tmp_path / "y.txt"], ["--out", "y.txt", ".npy or .npz"]),
        (["-o", tmp_path / "folder.npy"], ["--out", "is a folder"]),
        (["-o", tmp_path / "afile" / "y.npy"], ["--out", "is a file, not a folder"]),
        (["-o", tmp_path / "y.npy", "--dump", tmp_path / "all.npy"], ["--dump", ".npz"]),
    ):
        refused(invoke("run", DIGITS_FLOAT, "-i", tmp_path / "x.npy", *args), *words)
    assert files_in(tmp_path) == before  # neither y.txt nor y.txt.npy, no temporary file


def test_run_prints_the_name_it_wrote_and_leaves_no_temporary(tmp_path, digits_samples):
    x, _ = digits_samples
    np.save(tmp_path / "x.npy", x[:3])
    r = invoke("run", DIGITS_FLOAT, "-i", tmp_path / "x.npy", "-o", tmp_path / "out" / "y.npz")
    assert r.exit_code == 0, r.output
    assert f"wrote {tmp_path / 'out' / 'y.npz'}" in r.output.replace("\n", "")
    assert files_in(tmp_path) == {"x.npy", "out", "out/y.npz"}
    with np.load(tmp_path / "out" / "y.npz") as z:
        assert z["probs"].shape == (3, 10)


def test_run_with_an_empty_batch(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((0, 1, 8, 8), np.float32))
    r = run_cli("run", DIGITS_FLOAT, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.npy")
    refused(r, "input 'input' has shape [0, 8, 8, 1]: an empty batch")
    assert files_in(tmp_path) == {"x.npy"}


# ----------------------------------------------------------------------------- quantize


def test_quantize_report_path_is_checked_before_quantizing(tmp_path, digits_samples):
    x, y = digits_samples
    np.savez(tmp_path / "calib.npz", x=x, y=y)
    (tmp_path / "report").write_text("a file where the report folder should go")
    r = invoke("quantize", DIGITS_FLOAT, "--calib", tmp_path / "calib.npz", "-o", tmp_path / "m.tflite",
               "--report", tmp_path / "report")
    refused(r, "--report", "is a file; give a folder")
    r = invoke("quantize", DIGITS_FLOAT, "--calib", tmp_path / "calib.npz", "-o", tmp_path / "m.onnx")
    refused(r, "--out", ".tflite or .json")
    assert files_in(tmp_path) == {"calib.npz", "report"}  # no model left behind


def test_quantize_eval_labels_outside_the_classes(tmp_path, digits_samples):
    x, y = digits_samples
    np.savez(tmp_path / "calib.npz", x=x)
    labels = y.copy()
    labels[[3, 9]] = [10, 42]  # the model has 10 classes: 0..9
    np.savez(tmp_path / "eval.npz", x=x, y=labels)
    r = invoke("quantize", DIGITS_FLOAT, "--calib", tmp_path / "calib.npz", "--eval", tmp_path / "eval.npz",
               "-o", tmp_path / "m.tflite")
    refused(r, "2 of 32 labels are outside the model's classes 0..9", "10, 42")
    assert files_in(tmp_path) == {"calib.npz", "eval.npz"}


def test_report_api_refuses_labels_it_cannot_score(digits_samples):
    from edgekit.errors import BadInputError
    from edgekit.frontends import load_model
    from edgekit.quantize.report import check_labels

    graph = load_model(DIGITS_FLOAT)
    _, y = digits_samples
    check_labels(graph, y, "top1")            # 0..9: fine
    check_labels(graph, y - 5, "recon_mse")   # not a top-1 metric: labels are not class indices
    with pytest.raises(BadInputError, match=r"outside the model's classes 0..9 .*: -5"):
        check_labels(graph, y - 5, "top1")


# ----------------------------------------------------------------------------- hil, device infer


def test_hil_checks_paths_and_vectors_before_connecting(tmp_path, digits_samples, digits_int8):
    _, model = digits_int8
    x, _ = digits_samples
    np.savez(tmp_path / "v.npz", x=x[:4])
    bad = x[:4].copy()
    bad[3, 0, 1, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=bad)
    (tmp_path / "junit").mkdir()
    before = files_in(tmp_path)
    port = ["--port", UNREACHABLE_PORT]
    refused(invoke("hil", model, *port, "--vectors", tmp_path / "v.npz", "--junit", tmp_path / "junit",
                   "--quantize-inputs"), "--junit", "is a folder")
    refused(invoke("hil", model, *port, "--vectors", tmp_path / "v.npz"), "got float32 data", "--quantize-inputs")
    refused(invoke("hil", model, *port, "--vectors", tmp_path / "nan.npz", "--quantize-inputs"),
            "input 'input' holds NaN at index [3, 0, 1, 1]")
    refused(invoke("hil", model, *port, "--vectors", tmp_path / "v.npz", "--firmware", tmp_path / "fw.elf"),
            "--firmware", "needs --device qemu:TARGET")
    refused(invoke("hil", model, "--device", "qemu:cortex-m4", "--vectors", tmp_path / "v.npz",
                   "--firmware", tmp_path / "fw.elf"), "--firmware", "fw.elf: file not found")
    assert files_in(tmp_path) == before


def test_device_infer_checks_before_connecting(tmp_path, digits_samples, digits_int8):
    _, model = digits_int8
    x, _ = digits_samples
    np.save(tmp_path / "x.npy", x[:2])
    bad = x[:2].copy()
    bad[0, 0, 0, 0] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    before = files_in(tmp_path)
    port = ["--port", UNREACHABLE_PORT]
    refused(invoke("device", "infer", *port, "-i", tmp_path / "x.npy", "-o", tmp_path / "y.txt"),
            "--out", ".npy")
    refused(invoke("device", "infer", *port, "-i", tmp_path / "x.npy", "--model", model), "got float32 data",
            "--quantize-inputs")
    refused(invoke("device", "infer", *port, "-i", tmp_path / "inf.npy", "--model", model, "--quantize-inputs"),
            "input 'input' holds an infinity at index [0, 0, 0, 0]")
    refused(invoke("device", "infer", *port, "-i", tmp_path / "inf.npy"), "inf.npy",
            "an infinity at index [0, 0, 0, 0]")
    assert files_in(tmp_path) == before


def test_hil_firmware_relative_path_and_no_work_folder_left(tmp_path, monkeypatch, digits_samples, digits_int8):
    from tests.device import models

    elf = models.slot_elf("cortex-m4")  # skips without the cross compiler and QEMU
    _, model = digits_int8
    x, _ = digits_samples
    (tmp_path / "fw").mkdir()
    (tmp_path / "fw" / "slots.elf").write_bytes(elf.read_bytes())
    (tmp_path / "fw" / "junk.elf").write_bytes(b"\x7fELF not really")
    np.savez(tmp_path / "v.npz", x=x[:3])
    monkeypatch.chdir(tmp_path)
    # QEMU's work folders go to a temp folder of this test's own (other workers boot QEMU too)
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    r = invoke("hil", model, "--device", "qemu:cortex-m4", "--vectors", "v.npz", "--firmware", "fw/slots.elf",
               "--quantize-inputs")
    assert r.exit_code == 0, r.output
    assert "PASS: 3 of 3 vectors bit-exact" in r.output
    # QEMU cannot boot this one: the command fails (exit 1), and removes its work folder
    r = invoke("hil", model, "--device", "qemu:cortex-m4", "--vectors", "v.npz", "--firmware", "fw/junk.elf",
               "--quantize-inputs")
    assert r.exit_code == 1 and "QEMU" in r.output, r.output
    assert list((tmp_path / "tmp").iterdir()) == []


# ----------------------------------------------------------------------------- firmware, demo, compile, convert


def test_build_firmware_target_and_board(tmp_path):
    refused(invoke("build-firmware", "--target", "cortex-m99", "--out", tmp_path / "fw"),
            "unknown target 'cortex-m99'")
    refused(invoke("build-firmware", "--target", "cortex-m7", "--board", "mps2-an386", "--out", tmp_path / "fw"),
            "--board mps2-an386 is a port for target cortex-m4, not for --target cortex-m7", "mps2-an500")
    refused(invoke("build-firmware", "--target", "cortex-m99", "--board", "mps2-an386", "--out", tmp_path / "fw"),
            "unknown target 'cortex-m99'")
    assert files_in(tmp_path) == set()


def test_output_folders_that_are_files(tmp_path, digits_int8):
    _, model = digits_int8
    (tmp_path / "afile").write_text("")
    refused(invoke("build-firmware", "--target", "cortex-m4", "--out", tmp_path / "afile"), "--out", "is a file")
    refused(invoke("demo", "--out", tmp_path / "afile"), "--out", "is a file")
    refused(invoke("compile", model, "--target", "cortex-m4", "--out", tmp_path / "afile"), "--out", "is a file")
    refused(invoke("convert", model, "--to", "tflite", "--out", tmp_path), "--out", "is a folder")
    refused(invoke("convert", model, "--to", "tflite", "--out", tmp_path / "afile" / "m.tflite"),
            "is a file, not a folder")
    assert files_in(tmp_path) == {"afile"} and (tmp_path / "afile").read_text() == ""


# ----------------------------------------------------------------------------- package


def test_package_writes_what_flash_uploads(tmp_path, digits_int8):
    from edgekit.bundle import pack_model, read_package_header

    graph, model = digits_int8
    r = invoke("package", model, "--target", "cortex-m4", "--out", tmp_path / "d.ekpkg", "--name", "digits-pkg")
    assert r.exit_code == 0, r.output
    data = (tmp_path / "d.ekpkg").read_bytes()
    assert data == pack_model(graph, "cortex-m4", name="digits-pkg")  # the library's own packer
    header = read_package_header(data)
    assert header.target == "cortex-m4" and header.name == "digits-pkg"
    assert f"wrote {tmp_path / 'd.ekpkg'}" in r.output.replace("\n", "")
    assert files_in(tmp_path) == {"d.ekpkg"}


def test_package_bad_input(tmp_path, digits_int8):
    _, model = digits_int8
    refused(invoke("package", model, "--target", "cortex-m4", "--out", tmp_path / "d.bin"), ".ekpkg")
    refused(invoke("package", model, "--target", "rpi4", "--out", tmp_path / "d.ekpkg"), "rpi4", "mcu")
    refused(invoke("package", model, "--target", "nope", "--out", tmp_path / "d.ekpkg"), "unknown target 'nope'")
    refused(invoke("package", DIGITS_FLOAT, "--target", "cortex-m4", "--out", tmp_path / "d.ekpkg"),
            "float model", "quantize")
    refused(invoke("package", model, "--target", "cortex-m4", "--out", tmp_path / "d.ekpkg", "--name", "n" * 25),
            "--name", "at most 24")
    assert files_in(tmp_path) == set()
