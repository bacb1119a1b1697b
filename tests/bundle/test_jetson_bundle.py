"""Bundles for Jetson targets: what ``edgekit compile --target jetson-*`` generates (the
ONNX for the tensorrt engine), how ``--backend auto`` picks tensorrt there, and what is
refused. The engine itself: tests/runtime/test_tensorrt_engine.py."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import edgekit
import edgekit.bundle.backend_choice as backend_choice
import edgekit.runtime as rt
from edgekit.bundle import compile_bundle
from edgekit.bundle.backend_choice import HostCPU, applicable_backends
from edgekit.errors import BadInputError
from edgekit.ir import QuantParams
from edgekit.targets import builtin_targets_dir, load_target
from tests.support.ort_oracle import exact_session

DIGITS = "edgekit/data/digits_cnn.onnx"
JETSONS = ["jetson-nano", "jetson-xavier-nx", "jetson-orin-nano"]
X86_V3 = HostCPU("x86_64", frozenset({"sse2", "sse4_2", "avx", "avx2", "fma"}), "test CPU")
ORIN_CPU = HostCPU("aarch64", frozenset({"fp", "asimd", "asimddp", "fphp", "asimdhp"}), "Orin test CPU")


@pytest.fixture(autouse=True)
def private_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@pytest.fixture(scope="module")
def digits():
    return edgekit.load_model(DIGITS)


@pytest.fixture(scope="module")
def handmade():
    """An int8 graph with nonzero activation zero points (as TFLM quantizes)."""
    from tests.backends.c.graphs import cases

    return cases()["handmade"]


@pytest.fixture(scope="module")
def symmetric_int8(handmade):
    g = handmade.copy()
    for t in g.tensors.values():
        if t.quant is not None:
            t.quant = QuantParams(t.quant.scale, tuple(0 for _ in t.quant.zero_point), t.quant.axis)
    return g


def _member(path, name: str) -> bytes:
    with zipfile.ZipFile(path) as zf:
        return zf.read(name)


def test_auto_gives_a_tensorrt_bundle_of_the_float_onnx(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(backend_choice, "detect_host", lambda: X86_V3)
    r = compile_bundle(digits, "jetson-orin-nano", tmp_path / "d.ekb")
    m = r.manifest
    assert (r.backend, r.engine, m["backend"], m["engine"]) == ("tensorrt",) * 4
    assert m["target_family"] == "jetson" and m["payload"] == {"model": "model.onnx"}
    assert sorted(m["files"]) == ["golden.npz", "model.onnx"]
    assert r.reason == ("no latency measured for jetson-orin-nano (this machine is x86_64, target jetson-orin-nano "
                        "is aarch64); rule: auto chose tensorrt because target jetson-orin-nano has an NVIDIA GPU: "
                        "TensorRT builds a GPU engine for this float model on the device (onnxruntime runs it where "
                        "TensorRT is absent)")
    assert m["compile"]["backend_choice"] == {"method": "rule", "chosen": "tensorrt", "why_not_measured": (
        "no latency measured for jetson-orin-nano; this machine is x86_64, target jetson-orin-nano is aarch64")}
    # the same ONNX the onnxruntime backend writes: one writer, NHWC at the boundary, float ops
    ort = compile_bundle(digits, "jetson-orin-nano", tmp_path / "o.ekb", backend="onnxruntime")
    assert _member(r.bundle.path, "model.onnx") == _member(ort.bundle.path, "model.onnx")
    model = onnx.load_from_string(_member(r.bundle.path, "model.onnx"))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert "Conv" in ops and not ops & {"QuantizeLinear", "DequantizeLinear"}
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == m["inputs"][0]["shape"] and m["inputs"][0]["layout"] == "NHWC"


def test_a_symmetric_int8_model_carries_the_qdq_onnx(symmetric_int8, tmp_path):
    r = compile_bundle(symmetric_int8, "jetson-orin-nano", tmp_path / "s.ekb")
    assert r.backend == "tensorrt" and "int8 model" in r.reason
    model = onnx.load_from_string(_member(r.bundle.path, "model.onnx"))
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    consts = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [consts[n.input[2]] for n in model.graph.node
                   if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2]
    assert zero_points and all(not np.any(z) for z in zero_points)   # what TensorRT takes
    assert m_precision(r) == "int8"


def m_precision(result) -> str:
    return result.manifest["model"]["precision"]


def test_an_asymmetric_int8_model_gets_litert_from_auto_and_a_note_with_tensorrt(handmade, tmp_path):
    r = compile_bundle(handmade, "jetson-orin-nano", tmp_path / "a.ekb")
    assert r.backend == "litert"
    assert r.reason.endswith("(not tensorrt: TensorRT takes only symmetric int8 quantization and this model's "
                             "tensor 'x' has zero point 3)")
    r = compile_bundle(handmade, "jetson-orin-nano", tmp_path / "t.ekb", backend="tensorrt")
    assert r.backend == "tensorrt"
    assert r.reason == ("--backend tensorrt; TensorRT takes only symmetric int8 quantization (zero point 0) and this "
                        "model's tensor 'x' has zero point 3: on the device the tensorrt engine will run it through "
                        "its onnxruntime fallback")
    model = onnx.load_from_string(_member(r.bundle.path, "model.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}


@pytest.mark.parametrize("target", JETSONS)
def test_every_jetson_gives_a_verified_bundle_the_runtime_runs(digits, handmade, target, tmp_path):
    for name, graph in (("float", digits), ("int8", handmade)):
        b = compile_bundle(graph, target, tmp_path / f"{name}.ekb", backend="tensorrt").bundle
        with rt.open(b.path, target=target, engine="tensorrt") as m:
            assert m.self_test(), (name, m.describe())
            assert "fallback of the tensorrt engine" in m.describe()


@pytest.mark.parametrize("target", ["rpi4", "x86_64"])
def test_tensorrt_is_refused_for_a_target_without_an_nvidia_gpu(digits, target, tmp_path):
    with pytest.raises(BadInputError, match=f"--backend tensorrt needs a target with an NVIDIA GPU .*target "
                                            f"'{target}' has none"):
        compile_bundle(digits, target, tmp_path / "x.ekb", backend="tensorrt")
    assert not (tmp_path / "x.ekb").exists()


def test_cli_compile_refuses_tensorrt_for_rpi4_and_builds_it_for_orin(tmp_path):
    from edgekit.cli.main import cli

    runner = CliRunner()
    r = runner.invoke(cli, ["compile", DIGITS, "--target", "rpi4", "--backend", "tensorrt", "--out",
                            str(tmp_path / "r.ekb")], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "needs a target with an NVIDIA GPU" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "r.ekb").exists()
    r = runner.invoke(cli, ["compile", DIGITS, "--target", "jetson-orin-nano", "--backend", "tensorrt", "--out",
                            str(tmp_path / "j.ekb")], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    with np.load("edgekit/data/digits_samples.npz") as z:
        x = np.ascontiguousarray(z["x"][:3].transpose(0, 2, 3, 1))   # NCHW samples, the bundle takes NHWC
    np.save(tmp_path / "x.npy", x)
    r = runner.invoke(cli, ["run", str(tmp_path / "j.ekb"), "--input", str(tmp_path / "x.npy"), "--out",
                            str(tmp_path / "y.npy"), "--engine-option", f"cache_dir={tmp_path / 'cache'}"],
                      env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    sess = exact_session(_member(tmp_path / "j.ekb", "model.onnx"))
    want = np.concatenate([sess.run(None, {sess.get_inputs()[0].name: x[i:i + 1]})[0] for i in range(3)])
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)


def test_tensorrt_is_a_candidate_only_on_targets_with_an_nvidia_gpu(digits, handmade):
    orin, rpi4 = load_target("jetson-orin-nano"), load_target("rpi4")
    assert "tensorrt" in applicable_backends(digits, False, orin)[0]
    assert "tensorrt" in applicable_backends(handmade, False, orin)[0]
    assert "tensorrt" not in applicable_backends(digits, False, rpi4)[0]
    assert "tensorrt" not in applicable_backends(digits, False)[0]


def test_on_a_jetson_auto_measures_tensorrt_with_the_others(digits, tmp_path, monkeypatch):
    """This machine posing as an Orin's CPU: tensorrt is built, opened (here on its
    onnxruntime fallback), self-tested and timed like every candidate."""
    original = backend_choice.applicable_backends
    monkeypatch.setattr(backend_choice, "applicable_backends",
                        lambda graph, tvm_installed=None, target=None: original(graph, False, target))
    monkeypatch.setattr(backend_choice, "detect_host", lambda: ORIN_CPU)
    us = {"litert": 50.0, "onnxruntime": 40.0, "tensorrt": 9.0}

    def measure(model, feeds):
        model.run(feeds)
        return us[model.engine] * 1e-6, 5

    monkeypatch.setattr(backend_choice, "median_latency", measure)
    r = compile_bundle(digits, "jetson-orin-nano", tmp_path / "m.ekb")
    choice = r.manifest["compile"]["backend_choice"]
    assert r.backend == "tensorrt" and choice["method"] == "measured on host"
    got = {c["backend"]: (c["status"], c["median_us"]) for c in choice["candidates"]}
    assert got["tensorrt"] == ("measured", 9.0) and got["onnxruntime"] == ("measured", 40.0)


def test_a_jetson_latency_table_may_name_tensorrt(digits, tmp_path, monkeypatch):
    monkeypatch.setattr(backend_choice, "detect_host", lambda: X86_V3)
    d = tmp_path / "targets"
    (d / "latency").mkdir(parents=True)
    text = (builtin_targets_dir() / "jetson-orin-nano.toml").read_text()
    (d / "orin-x.toml").write_text(text.replace('name = "jetson-orin-nano"', 'name = "orin-x"'))
    table = {"format": "edgekit-latency", "target": "orin-x",
             "source": {"command": "python bench/backend_latency.py", "machine": "orin-x test", "date": "2026-12-07"},
             "models": [{"model": "ad", "precision": "float32",
                         "latency_us": {"litert": 300, "onnxruntime": 250, "tensorrt": 90}}]}
    (d / "latency" / "orin-x.json").write_text(json.dumps(table))
    r = compile_bundle(digits, "orin-x", tmp_path / "t.ekb", targets_dir=str(d))
    assert r.backend == "tensorrt" and r.manifest["compile"]["backend_choice"]["method"] == "latency table"
    assert "ad 90 us" in r.reason
