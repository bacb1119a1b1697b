"""The device runtime on bundles compiled for an x86_64 Linux target with each engine:
int8 (MLPerf KWS) and float (MLPerf AD, and the demo's digits CNN built by edgekit's own
importer), against independent oracles: the engine library called directly on the same
model file (LiteRT reference kernels / XNNPACK, onnxruntime ORT_DISABLE_ALL / default),
and edgekit's reference interpreter."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

import edgekit
import edgekit.runtime as rt
from edgekit.bundle import BundleError, compile_bundle, write_bundle
from edgekit.errors import BadInputError
from tests.support.ort_oracle import exact_session
from tests.support.shared import MLPERF, litert_outputs, shared_file

KWS = "models/mlperf-tiny/kws_ref_model_int8.tflite"
AD = "models/mlperf-tiny/ad01_fp32.tflite"
DIGITS = "edgekit/data/digits_cnn.onnx"
N = 60


@pytest.fixture(scope="module")
def kws_graph():
    return edgekit.load_model(shared_file(KWS))


@pytest.fixture(scope="module")
def kws_x():
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        return z["x_int8"][:N]


@pytest.fixture(scope="module")
def kws_bundles(kws_graph, tmp_path_factory):
    d = tmp_path_factory.mktemp("kws")
    return {be: compile_bundle(kws_graph, "x86_64", d / f"kws_{be}.ekb", backend=be).bundle.path
            for be in ("litert", "onnxruntime")}


def _member(bundle_path, name: str) -> bytes:
    with zipfile.ZipFile(bundle_path) as zf:
        return zf.read(name)


def _run_all(model, xs) -> np.ndarray:
    name, out = model.inputs[0].name, model.outputs[0].name
    return np.concatenate([model.run({name: np.ascontiguousarray(xs[i:i + 1])})[out] for i in range(len(xs))])


def _reference(graph, xs) -> np.ndarray:
    return np.concatenate([edgekit.run(graph, {graph.inputs[0]: xs[i:i + 1]})[graph.outputs[0]]
                           for i in range(len(xs))])


def _steps(a, b) -> int:
    return int(np.max(np.abs(a.astype(np.int64) - b.astype(np.int64))))


def test_int8_litert_matches_litert_called_directly_and_the_reference(kws_graph, kws_x, kws_bundles, tmp_path):
    path = kws_bundles["litert"]
    model_file = tmp_path / "kws.tflite"
    model_file.write_bytes(_member(path, "model.tflite"))
    with rt.open(path, target="x86_64", engine="litert", engine_options={"op_resolver": "reference"}) as m:
        exact = _run_all(m, kws_x)
    # the runtime adds nothing: bit for bit what LiteRT's reference kernels give on the same file
    assert np.array_equal(exact, litert_outputs(model_file, kws_x, reference=True))
    # and those follow TFLM (edgekit's semantics) but for single rounding in per-channel FC
    assert _steps(exact, _reference(kws_graph, kws_x)) <= 1
    with rt.open(path) as m:
        fast = _run_all(m, kws_x)
    assert np.array_equal(fast, litert_outputs(model_file, kws_x, reference=False))


def test_int8_onnxruntime_matches_ort_exact_semantics(kws_graph, kws_x, kws_bundles):
    path = kws_bundles["onnxruntime"]
    with rt.open(path, engine="onnxruntime", engine_options={"graph_optimization": "disable"}) as m:
        got = _run_all(m, kws_x)
    sess = exact_session(_member(path, "model.onnx"))
    name = sess.get_inputs()[0].name
    want = np.concatenate([sess.run(None, {name: kws_x[i:i + 1]})[0] for i in range(len(kws_x))])
    assert np.array_equal(got, want)
    # QDQ requantizes in float: it tracks TFLM's integer semantics up to the softmax's amplification
    ref = _reference(kws_graph, kws_x)
    assert _steps(got, ref) <= 32 and (got.argmax(-1) == ref.argmax(-1)).mean() >= 0.95


@pytest.mark.parametrize("backend", ["litert", "onnxruntime"])
@pytest.mark.parametrize("model", [AD, DIGITS])
def test_float_models_match_the_reference_within_tolerance(backend, model, tmp_path):
    path = shared_file(model) if model.startswith("models/") else model
    graph = edgekit.load_model(path)
    b = compile_bundle(graph, "x86_64", tmp_path / "f", backend=backend).bundle
    rng = np.random.default_rng(1)
    shape = tuple(b.manifest["inputs"][0]["shape"])
    xs = rng.standard_normal((20, *shape[1:])).astype(np.float32)
    with rt.open(b.path) as m:
        assert m.engine == backend
        got = _run_all(m, xs)
    want = _reference(graph, xs)
    # float kernels reorder sums (XNNPACK, MLAS): agreement to float32 rounding, scaled by the output
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(np.abs(want).max()))


def test_model_describes_its_tensors_from_the_manifest(kws_graph, kws_bundles):
    with rt.open(kws_bundles["litert"]) as m:
        (i,), (o,) = m.inputs, m.outputs
        t = kws_graph.tensor(kws_graph.inputs[0])
        assert (i.name, i.shape, i.dtype, i.layout) == (t.name, tuple(t.shape), np.dtype(np.int8), "NHWC")
        assert i.quantization["scale"] == [pytest.approx(s) for s in t.quant.scale]
        assert i.quantization["zero_point"] == list(t.quant.zero_point)
        assert o.shape == (1, 12) and o.dtype == np.int8
        assert m.stats()["calls"] == 0
        for _ in range(3):
            m.run({i.name: np.zeros(i.shape, np.int8)})
        st = m.stats()
        assert st["calls"] == 3 and 0 < st["median_s"] <= st["p99_s"] < 1 and st["last_s"] > 0


@pytest.mark.parametrize("feeds, message", [
    (lambda n: {n: np.zeros((1, 49, 10, 1), np.float32)}, "is float32; the model takes int8"),
    (lambda n: {n: np.zeros((1, 49, 10), np.int8)}, r"has shape \[1, 49, 10\]; the model takes \[1, 49, 10, 1\]"),
    (lambda n: {}, r"missing input\(s\)"),
    (lambda n: {n: np.zeros((1, 49, 10, 1), np.int8), "other": np.zeros(1)}, r"unknown input\(s\) \['other'\]"),
    (lambda n: {n: [[0]]}, "is a list; give a numpy array"),
    (lambda n: [np.zeros((1, 49, 10, 1), np.int8)], "inputs must be a dict"),
])
def test_bad_feeds_are_refused_naming_the_problem(kws_bundles, feeds, message):
    with rt.open(kws_bundles["litert"]) as m:
        with pytest.raises(BadInputError, match=message):
            m.run(feeds(m.inputs[0].name))


def test_engine_options_are_checked(kws_bundles):
    with pytest.raises(BadInputError, match="unknown engine option"):
        rt.open(kws_bundles["litert"], engine_options={"graph_optimization": "disable"})
    with pytest.raises(BadInputError, match="op_resolver 'fast' is not one of"):
        rt.open(kws_bundles["litert"], engine_options={"op_resolver": "fast"})
    with pytest.raises(BadInputError, match="num_threads must be a positive integer"):
        rt.open(kws_bundles["onnxruntime"], engine_options={"num_threads": 0})


def test_closed_model_refuses_to_run(kws_bundles):
    m = rt.open(kws_bundles["litert"])
    m.close()
    m.close()
    with pytest.raises(BadInputError, match="closed"):
        m.run({m.inputs[0].name: np.zeros(m.inputs[0].shape, np.int8)})


@pytest.mark.parametrize("options", [{}, {"op_resolver": "reference"}])
def test_self_test_passes_and_catches_wrong_outputs(kws_bundles, tmp_path, options):
    path = kws_bundles["litert"]
    with rt.open(path, engine_options=options) as m:
        result = m.self_test()
    assert result and result.count == 4 and result.failures == []
    # The same bundle with golden outputs moved past the tolerance (hashes redone: a
    # consistent bundle whose engine "computes something else") fails, naming the vector.
    b = rt.open(path).bundle
    ins, outs = b.golden()
    moved = outs[0].astype(np.int16)
    moved[2, 0, 5] += 40 if moved[2, 0, 5] < 0 else -40
    import io

    buf = io.BytesIO()
    np.savez(buf, **{"in.0": ins[0], "out.0": moved.astype(np.int8)})
    files = {n: b.read(n) for n in b.files}
    files["golden.npz"] = buf.getvalue()
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    write_bundle(tmp_path / "moved.ekb", manifest, files)
    with rt.open(tmp_path / "moved.ekb", engine_options=options) as m:
        result = m.self_test()
    assert not result and len(result.failures) == 1
    assert result.failures[0].startswith("vector 2, output 'Identity': differs by")


def test_onnxruntime_self_test(kws_bundles):
    with rt.open(kws_bundles["onnxruntime"]) as m:
        assert m.self_test().passed


def test_mcu_bundle_is_refused_by_the_host_runtime(kws_graph, tmp_path):
    b = compile_bundle(kws_graph, "cortex-m4", tmp_path / "m").bundle
    assert b.engine == "micro" and "model.ekpkg" in b.files and "c/model.c" in b.files
    with pytest.raises(BundleError, match="runs on the board's firmware"):
        rt.open(b.path)


def test_model_file_not_matching_the_manifest_is_refused(kws_bundles, tmp_path):
    b = rt.open(kws_bundles["litert"]).bundle
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    manifest["inputs"] = [dict(manifest["inputs"][0], shape=[1, 49, 10, 2])]
    write_bundle(tmp_path / "lie.ekb", manifest, {n: b.read(n) for n in b.files})
    with pytest.raises(BundleError, match="the model file's inputs"):
        rt.open(tmp_path / "lie.ekb")


def test_unknown_engine_is_named(kws_bundles, tmp_path):
    b = rt.open(kws_bundles["litert"]).bundle
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    manifest["engine"] = "openvino"
    write_bundle(tmp_path / "ov.ekb", manifest, {n: b.read(n) for n in b.files})
    with pytest.raises(BadInputError, match="needs engine 'openvino', which this edgekit does not have"):
        rt.open(tmp_path / "ov.ekb")
    assert {"litert", "onnxruntime"} <= set(rt.engine_names())


def test_auto_backend_rule(kws_graph, tmp_path):
    r = compile_bundle(kws_graph, "rpi5", tmp_path / "a.ekb")
    assert r.backend == "litert" and "; rule: auto chose litert because the model is int8" in r.reason
    assert r.reason.startswith("no latency measured for rpi5")
    assert r.manifest["target"] == "rpi5" and r.manifest["target_family"] == "linux"
    r = compile_bundle(edgekit.load_model(DIGITS), "jetson-orin-nano", tmp_path / "b.ekb")
    assert r.backend == "tensorrt" and "NVIDIA GPU" in r.reason and "float" in r.reason
    assert MLPERF.name == "mlperf-tiny"


@pytest.mark.parametrize("target", ["x86_64", "rpi4", "rpi5", "jetson-orin-nano"])
def test_every_linux_target_and_backend_gives_a_verified_bundle(target, tmp_path):
    from tests.backends.c.graphs import cases

    graph = cases()["handmade"]
    for backend in ("litert", "onnxruntime"):
        b = compile_bundle(graph, target, tmp_path / f"{backend}.ekb", backend=backend).bundle
        with rt.open(b.path, target=target, engine=backend) as m:
            assert m.self_test(), backend


def test_litert_engine_falls_back_to_tflite_runtime(kws_bundles, monkeypatch):
    """Without ai_edge_litert the engine imports tflite_runtime (same Interpreter API).
    tflite-runtime itself needs numpy < 2 and is not installed here: LiteRT's own
    interpreter module stands in for it under that name, so the import path is what is
    tested (a run under Python 3.8 with the real tflite-runtime: test_device_python.py)."""
    import sys
    import types

    from ai_edge_litert import interpreter as litert_interpreter

    stand_in = types.ModuleType("tflite_runtime")
    stand_in.interpreter = litert_interpreter
    stand_in.__version__ = "stand-in"
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)        # import ai_edge_litert -> ImportError
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime", stand_in)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", litert_interpreter)
    with rt.open(kws_bundles["litert"]) as m:
        assert m.describe() == "tflite_runtime stand-in (XNNPACK)"
        assert m.self_test()
    monkeypatch.setitem(sys.modules, "tflite_runtime", None)
    monkeypatch.setitem(sys.modules, "tflite_runtime.interpreter", None)
    with pytest.raises(rt.EngineUnavailableError, match="needs ai-edge-litert"):
        rt.open(kws_bundles["litert"])
