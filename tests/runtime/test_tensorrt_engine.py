"""The tensorrt engine (edgekit/runtime/engines/tensorrt.py) without a GPU.

- The onnxruntime fallback for real: TensorRT is not installed here, so a Jetson bundle
  runs on onnxruntime, checked against the bundle's golden vectors (the reference
  interpreter's outputs) and against onnxruntime's exact QDQ semantics on the same ONNX.
- The engine cache with TensorRT replaced, through ``load_tensorrt``, by ``FakeTensorRT``
  below: its "engine" is the ONNX behind a header, run by onnxruntime with exact
  semantics, so the build / cache / re-open path runs end to end and the tests count
  builds and loads. The real TensorRT path runs in hwtests/test_jetson_tensorrt.py.
"""

from __future__ import annotations

import importlib.util
import os
import zipfile

import numpy as np
import pytest

import edgekit
import edgekit.runtime as rt
import edgekit.runtime.engines.tensorrt as trt_engine
from edgekit.bundle import BundleError, compile_bundle
from edgekit.bundle.bundle_reader import read_bundle
from edgekit.errors import BadInputError
from edgekit.ir import QuantParams
from edgekit.runtime.engines.tensorrt import (
    TensorRTBuildError,
    TensorRTLoadError,
    TensorRTUnavailable,
    cache_file_name,
    cache_key,
    read_cached_engine,
    write_cached_engine,
)
from tests.support.ort_oracle import exact_session

DIGITS = "edgekit/data/digits_cnn.onnx"
TARGET = "jetson-orin-nano"
PLAN = b"FAKE-TRT-PLAN:"


class FakeRunner:
    def __init__(self, onnx: bytes):
        self.sess = exact_session(onnx)
        types = {"tensor(float)": "float32", "tensor(int8)": "int8"}
        self.inputs = [(tuple(i.shape), types[i.type]) for i in self.sess.get_inputs()]
        self.outputs = [(tuple(o.shape), types[o.type]) for o in self.sess.get_outputs()]
        self.closed = False

    def run(self, arrays):
        return self.sess.run(None, {i.name: x for i, x in zip(self.sess.get_inputs(), arrays)})

    def close(self):
        self.closed = True


class FakeTensorRT:
    """TensorRT and CUDA as the engine sees them (``load_tensorrt()``'s object)."""

    def __init__(self, gpu=("Orin", "8.7"), version="10.3.0"):
        self.gpu, self.version = gpu, version
        self.builds, self.loads = [], 0
        self.build_error = None

    def device(self):
        return self.gpu

    def build(self, onnx, int8, fp16):
        if self.build_error:
            raise TensorRTBuildError(self.build_error)
        self.builds.append((int8, fp16))
        return PLAN + self.version.encode() + b"|" + onnx

    def load(self, plan):
        head = PLAN + self.version.encode() + b"|"
        if not plan.startswith(head):
            raise TensorRTLoadError("the engine is not for this TensorRT")
        self.loads += 1
        return FakeRunner(plan[len(head):])


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory):
    d = tmp_path_factory.mktemp("trt")
    return compile_bundle(edgekit.load_model(DIGITS), TARGET, d / "digits.ekb", backend="tensorrt").bundle.path


@pytest.fixture(scope="module")
def int8_bundle(tmp_path_factory):
    """The handmade int8 graph (asymmetric: nonzero zero points, as TFLM quantizes)."""
    from tests.backends.c.graphs import cases

    d = tmp_path_factory.mktemp("trt8")
    return compile_bundle(cases()["handmade"], TARGET, d / "int8.ekb", backend="tensorrt").bundle.path


def symmetric(graph):
    """``graph`` with every int8 zero point set to 0: a model TensorRT can take."""
    g = graph.copy()
    for t in g.tensors.values():
        if t.quant is not None:
            t.quant = QuantParams(t.quant.scale, tuple(0 for _ in t.quant.zero_point), t.quant.axis)
    return g


@pytest.fixture(scope="module")
def symmetric_bundle(tmp_path_factory):
    from tests.backends.c.graphs import cases

    d = tmp_path_factory.mktemp("trt8s")
    return compile_bundle(symmetric(cases()["handmade"]), TARGET, d / "sym.ekb", backend="tensorrt").bundle.path


@pytest.fixture(autouse=True)
def private_cache_home(monkeypatch, tmp_path):
    """The default cache folder inside the test's own folder, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def fake(monkeypatch):
    lib = FakeTensorRT()
    monkeypatch.setattr(trt_engine, "load_tensorrt", lambda: lib)
    return lib


def _onnx(bundle_path) -> bytes:
    with zipfile.ZipFile(bundle_path) as zf:
        return zf.read("model.onnx")


def _golden_outputs_of_exact_ort(bundle_path, model):
    ins, _ = model.bundle.golden()
    sess = exact_session(_onnx(bundle_path))
    name = sess.get_inputs()[0].name
    return [sess.run(None, {name: np.ascontiguousarray(ins[0][k])})[0] for k in range(ins[0].shape[0])]


# ------------------------------------------------------------------ the fallback, for real

def test_without_tensorrt_the_bundle_runs_on_onnxruntime(digits_bundle, tmp_path):
    assert importlib.util.find_spec("tensorrt") is None, "this test checks the machine without TensorRT"
    with rt.open(digits_bundle, target=TARGET, engine="tensorrt",
                 engine_options={"cache_dir": str(tmp_path / "cache"), "graph_optimization": "disable"}) as m:
        assert m.engine == "tensorrt" and m._engine.runs_on == "onnxruntime"
        assert m.describe().startswith("onnxruntime ") and "(CPU, graph optimization disable)" in m.describe()
        assert "fallback of the tensorrt engine: TensorRT is not installed" in m.describe()
        result = m.self_test()
        assert result and result.count == 4, result.failures
        ins, _ = m.bundle.golden()
        got = [m.run({m.inputs[0].name: np.ascontiguousarray(ins[0][k])})[m.outputs[0].name] for k in range(4)]
        want = _golden_outputs_of_exact_ort(digits_bundle, m)
    assert all(np.array_equal(g, w) for g, w in zip(got, want))
    assert not (tmp_path / "cache").exists()   # nothing cached when TensorRT did not run


def test_asymmetric_int8_model_goes_to_onnxruntime_saying_why(int8_bundle, fake):
    with rt.open(int8_bundle) as m:
        assert m._engine.runs_on == "onnxruntime" and fake.builds == []
        assert "TensorRT takes only symmetric int8 quantization (zero point 0); input 'x' has zero point 3" \
            in m.describe()
        assert m.self_test()


def test_fallback_none_refuses_instead(digits_bundle, int8_bundle):
    with pytest.raises(rt.EngineUnavailableError, match=r"TensorRT is not installed .*\(and fallback=none\)"):
        rt.open(digits_bundle, engine_options={"fallback": "none"})
    with pytest.raises(rt.EngineUnavailableError, match="zero point 3 \\(and fallback=none\\)"):
        rt.open(int8_bundle, engine_options={"fallback": "none"})


@pytest.mark.parametrize("options, words", [
    ({"precision": "int4"}, "precision 'int4' is not one of auto, fp16"),
    ({"fallback": "cpu"}, "fallback 'cpu' is not one of onnxruntime, none"),
    ({"cache_dir": 5}, "cache_dir must be a folder path, not 5"),
    ({"cache_dir": ""}, "cache_dir must be a folder path"),
    ({"workspace": "1G"}, "unknown engine option(s) workspace; it takes cache_dir, precision, fallback"),
    ({"graph_optimization": "max"}, "graph_optimization 'max' is not one of"),
])
def test_bad_options_are_refused_naming_them(digits_bundle, options, words):
    with pytest.raises(BadInputError) as e:
        rt.open(digits_bundle, engine_options=options)
    assert words in str(e.value)


def test_a_missing_gpu_or_a_failed_build_falls_back_with_the_reason(digits_bundle, monkeypatch, tmp_path):
    def no_gpu():
        raise TensorRTUnavailable("no CUDA GPU is visible to this process")

    monkeypatch.setattr(trt_engine, "load_tensorrt", no_gpu)
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert m.describe().endswith("fallback of the tensorrt engine: no CUDA GPU is visible to this process")
        assert m.self_test()
    lib = FakeTensorRT()
    lib.build_error = "Assertion failed: unsupported operator"
    monkeypatch.setattr(trt_engine, "load_tensorrt", lambda: lib)
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert ("TensorRT 10.3.0 cannot build an engine from model.onnx: Assertion failed: unsupported operator"
                in m.describe())
        assert m.self_test()
    assert os.listdir(tmp_path) == []


def test_the_fallback_prefers_cuda_where_onnxruntime_has_it():
    class Ort:
        def __init__(self, providers):
            self.providers = providers

        def get_available_providers(self):
            return self.providers

    pick = trt_engine.OnnxRuntimeFallback.execution_providers
    assert pick(None, Ort(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert pick(None, Ort(["CPUExecutionProvider"])) == ["CPUExecutionProvider"]


# ------------------------------------------------------------------ build, cache, re-open

def test_first_open_builds_and_caches_then_reopens_from_the_cache(digits_bundle, fake, monkeypatch, tmp_path):
    cache = tmp_path / "cache"
    with rt.open(digits_bundle, engine_options={"cache_dir": str(cache)}) as m:
        assert m._engine.runs_on == "tensorrt" and fake.builds == [(False, False)]
        assert m.describe().startswith("TensorRT 10.3.0 on Orin (compute capability 8.7), fp32; engine built "
                                       "(not cached yet): ")
        assert m.self_test()
        want = _golden_outputs_of_exact_ort(digits_bundle, m)
        ins, _ = m.bundle.golden()
        got = [m.run({m.inputs[0].name: np.ascontiguousarray(ins[0][k])})[m.outputs[0].name] for k in range(4)]
        assert all(np.array_equal(g, w) for g, w in zip(got, want))
        onnx_sha = m.manifest["files"]["model.onnx"]["sha256"]
    [name] = os.listdir(cache)
    assert name.startswith(f"orin-sm87-trt10.3.0-{onnx_sha[:16]}-fp32-") and name.endswith(".engine")
    with rt.open(digits_bundle, engine_options={"cache_dir": str(cache)}) as m:
        assert fake.builds == [(False, False)] and fake.loads == 2
        assert "engine loaded from cache: " + str(cache / name) in m.describe()
        assert m.self_test()
    runner = None

    class Spy(FakeTensorRT):
        def load(self, plan):
            nonlocal runner
            runner = super().load(plan)
            return runner

    spy = Spy()
    monkeypatch.setattr(trt_engine, "load_tensorrt", lambda: spy)
    m = rt.open(digits_bundle, engine_options={"cache_dir": str(cache)})
    m.close()
    assert runner.closed


def test_int8_builds_with_the_int8_flag_and_fp16_is_a_separate_engine(symmetric_bundle, digits_bundle, fake,
                                                                       tmp_path):
    with rt.open(symmetric_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert m._engine.runs_on == "tensorrt" and fake.builds == [(True, False)]
        assert ", int8; engine built" in m.describe()
        assert m.self_test()
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path), "precision": "fp16"}) as m:
        assert fake.builds[-1] == (False, True) and ", fp32+fp16; engine built" in m.describe()
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert fake.builds[-1] == (False, False) and "engine built" in m.describe()
    assert len(os.listdir(tmp_path)) == 3


@pytest.mark.parametrize("change", ["gpu", "capability", "tensorrt"])
def test_an_engine_is_never_reused_on_another_gpu_or_tensorrt(digits_bundle, monkeypatch, tmp_path, change):
    first = FakeTensorRT()
    monkeypatch.setattr(trt_engine, "load_tensorrt", lambda: first)
    rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}).close()
    [cached] = os.listdir(tmp_path)
    other = {"gpu": FakeTensorRT(gpu=("Xavier", "8.7")), "capability": FakeTensorRT(gpu=("Orin", "7.2")),
             "tensorrt": FakeTensorRT(version="10.4.0")}[change]
    monkeypatch.setattr(trt_engine, "load_tensorrt", lambda: other)
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert len(other.builds) == 1 and "engine built (not cached yet)" in m.describe()
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2 and cached in names
    # the first device's file copied under the name the second device looks for: not trusted
    mine = next(n for n in names if n != cached)
    (tmp_path / mine).write_bytes((tmp_path / cached).read_bytes())
    word = {"gpu": "gpu", "capability": "compute_capability", "tensorrt": "tensorrt"}[change]
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert len(other.builds) == 2
        assert f"engine built (cache file was built for another {word})" in m.describe()
        assert m.self_test()
    plan, why = read_cached_engine(str(tmp_path / mine), cache_key(*other.gpu, other.version,
                                                                   m.manifest["files"]["model.onnx"]["sha256"],
                                                                   "fp32"))
    assert plan is not None and why == ""


@pytest.mark.parametrize("damage, why", [
    (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "cache file is corrupt (engine sha256 or size differs from its header)"),
    (lambda b: b[:len(b) // 2], "cache file is corrupt"),
    (lambda b: b[:30], "cache file is truncated"),
    (lambda b: b"not an engine", "cache file is not an edgekit TensorRT engine"),
    (lambda b: b.replace(b'"engine_size"', b'"engine_sizE"', 1), "cache file header is corrupt"),
])
def test_a_corrupt_cache_file_is_rebuilt_not_trusted(digits_bundle, fake, tmp_path, damage, why):
    rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}).close()
    [name] = os.listdir(tmp_path)
    path = tmp_path / name
    good = path.read_bytes()
    path.write_bytes(damage(good))
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert len(fake.builds) == 2 and f"engine built ({why}" in m.describe()
        assert m.self_test()
    assert path.read_bytes() == good and os.listdir(tmp_path) == [name]


def test_an_engine_tensorrt_cannot_deserialize_is_rebuilt(digits_bundle, fake, tmp_path):
    rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}).close()
    [name] = os.listdir(tmp_path)
    key = cache_key("Orin", "8.7", "10.3.0", read_bundle(digits_bundle).manifest["files"]["model.onnx"]["sha256"],
                    "fp32")
    write_cached_engine(str(tmp_path / name), key, b"a plan this TensorRT rejects")
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert len(fake.builds) == 2
        assert "engine built (cached engine rejected (the engine is not for this TensorRT))" in m.describe()
    assert read_cached_engine(str(tmp_path / name), key)[0].startswith(PLAN)


def test_an_unwritable_cache_still_runs_the_model(digits_bundle, fake, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would go")
    with rt.open(digits_bundle, engine_options={"cache_dir": str(blocker / "cache")}) as m:
        assert m._engine.runs_on == "tensorrt" and "; not cached: " in m.describe()
        assert m.self_test()


def test_an_engine_whose_io_differs_from_the_manifest_is_refused(digits_bundle, fake, monkeypatch, tmp_path):
    class Wrong(FakeRunner):
        def __init__(self, onnx):
            super().__init__(onnx)
            self.outputs = [((1, 11), "float32")]

    monkeypatch.setattr(fake, "load", lambda plan: Wrong(plan.split(b"|", 1)[1]))
    with pytest.raises(BundleError, match="the model file's outputs"):
        rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)})


# ------------------------------------------------------------------ the cache file itself

def test_cache_key_and_file_name_carry_every_field():
    key = cache_key("NVIDIA Orin", "8.7", "8.6.2", "ab" * 32, "int8")
    assert key == {"format": 1, "gpu": "NVIDIA Orin", "compute_capability": "8.7", "tensorrt": "8.6.2",
                   "onnx_sha256": "ab" * 32, "precision": "int8"}
    name = cache_file_name(key)
    assert name.startswith("nvidia-orin-sm87-trt8.6.2-" + "ab" * 8 + "-int8-")
    others = [cache_key("NVIDIA Orin", "8.7", "8.6.2", "ab" * 32, "fp32"),
              cache_key("NVIDIA Orin", "7.2", "8.6.2", "ab" * 32, "int8"),
              cache_key("NVIDIA Xavier", "8.7", "8.6.2", "ab" * 32, "int8"),
              cache_key("NVIDIA Orin", "8.7", "8.5.2", "ab" * 32, "int8"),
              cache_key("NVIDIA Orin", "8.7", "8.6.2", "cd" * 32, "int8"),
              cache_key("NVIDIA  orin", "8.7", "8.6.2", "ab" * 32, "int8")]
    assert len({name} | {cache_file_name(k) for k in others}) == 7   # even names that slug alike differ


def test_cache_write_is_atomic(tmp_path, monkeypatch):
    key = cache_key("Orin", "8.7", "10.3.0", "ab" * 32, "fp32")
    path = str(tmp_path / "e.engine")
    write_cached_engine(path, key, b"old engine")
    assert read_cached_engine(path, key) == (b"old engine", "")

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(trt_engine.os, "replace", crash)
    with pytest.raises(OSError, match="No space left"):
        write_cached_engine(path, key, b"new engine")
    monkeypatch.undo()
    assert read_cached_engine(path, key) == (b"old engine", "")   # the old file, whole
    assert os.listdir(tmp_path) == ["e.engine"]                    # no temporary file left behind
    write_cached_engine(path, key, b"new engine")
    assert read_cached_engine(path, key) == (b"new engine", "")
    other = dict(key, precision="int8")
    assert read_cached_engine(path, other) == (None, "cache file was built for another precision")
    assert read_cached_engine(str(tmp_path / "none.engine"), key) == (None, "not cached yet")


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert trt_engine.default_cache_dir() == str(tmp_path / "edgekit" / "tensorrt")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert trt_engine.default_cache_dir() == str(tmp_path / "home" / ".cache" / "edgekit" / "tensorrt")
