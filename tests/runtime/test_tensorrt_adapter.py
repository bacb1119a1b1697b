"""The tensorrt engine's adapter to TensorRT and CUDA (``_TensorRTLibrary``, ``_CudaRunner``)
run against stand-in ``tensorrt`` and ``cuda.bindings.runtime`` modules defined here: they
follow the documented Python APIs the adapter calls (TensorRT's ONNX parser, builder,
runtime and name-based tensor API; cuda-python's ``(error, value)`` tuples), keep "device"
memory in host buffers, and execute an "engine" with onnxruntime's exact semantics. This
checks the adapter's own logic (flags, buffers, copies in both directions, tensor order,
cleanup) end to end; it cannot check TensorRT itself, which hwtests/test_jetson_tensorrt.py
runs on a Jetson."""

from __future__ import annotations

import ctypes
import enum
import sys
import types

import numpy as np
import pytest

import edgekit
import edgekit.runtime as rt
from edgekit.bundle import compile_bundle, read_bundle
from edgekit.ir import QuantParams
from tests.support.ort_oracle import exact_session

TARGET = "jetson-orin-nano"


def stand_in_modules(version: str, log: dict):
    """(tensorrt, cuda.bindings.runtime) stand-ins; ``log`` records what the adapter did."""
    memory = {}

    class Err(enum.IntEnum):
        cudaSuccess = 0
        cudaErrorMemoryAllocation = 2

    class Stream:
        def __int__(self):
            return 0x5EED

    class Kind(enum.IntEnum):
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    def malloc(n):
        buf = ctypes.create_string_buffer(n)
        memory[ctypes.addressof(buf)] = buf
        return Err.cudaSuccess, ctypes.addressof(buf)

    def memcpy(dst, src, count, kind, stream):
        assert int(stream) == 0x5EED and kind in (Kind.cudaMemcpyHostToDevice, Kind.cudaMemcpyDeviceToHost)
        assert (dst if kind == Kind.cudaMemcpyHostToDevice else src) in memory   # device side is a device buffer
        ctypes.memmove(dst, src, count)
        log.setdefault("copies", []).append((kind.name, count))
        return (Err.cudaSuccess,)

    def free(ptr):
        memory.pop(ptr)
        log.setdefault("freed", []).append(ptr)
        return (Err.cudaSuccess,)

    cudart = types.SimpleNamespace(
        cudaGetDeviceCount=lambda: (Err.cudaSuccess, 1),
        cudaGetDeviceProperties=lambda i: (Err.cudaSuccess, types.SimpleNamespace(
            name=b"Orin" + b"\x00" * 252, major=8, minor=7)),
        cudaStreamCreate=lambda: (Err.cudaSuccess, Stream()),
        cudaStreamSynchronize=lambda s: (Err.cudaSuccess,),
        cudaStreamDestroy=lambda s: log.setdefault("streams_destroyed", []).append(s) or (Err.cudaSuccess,),
        cudaMalloc=malloc, cudaFree=free, cudaMemcpyAsync=memcpy, cudaMemcpyKind=Kind,
        cudaGetErrorName=lambda e: (Err.cudaSuccess, Err(e).name.encode()))

    class Mode(enum.Enum):
        INPUT = 1
        OUTPUT = 2

    class Engine:
        def __init__(self, onnx):
            self.onnx, self.sess = onnx, exact_session(onnx)
            ios = [(i, Mode.INPUT) for i in self.sess.get_inputs()] + [(o, Mode.OUTPUT) for o in
                                                                        self.sess.get_outputs()]
            dtypes = {"tensor(float)": np.float32, "tensor(int8)": np.int8}
            self.io = {t.name: (tuple(t.shape), dtypes[t.type], mode) for t, mode in ios}
            self.num_io_tensors = len(ios)
            self.names = [t.name for t, _ in ios]

        def get_tensor_name(self, i):
            return self.names[i]

        def get_tensor_shape(self, name):
            return list(self.io[name][0])

        def get_tensor_dtype(self, name):
            return self.io[name][1]

        def get_tensor_mode(self, name):
            return self.io[name][2]

        def create_execution_context(self):
            return Context(self)

    class Context:
        def __init__(self, engine):
            self.engine, self.addresses = engine, {}

        def set_tensor_address(self, name, ptr):
            self.addresses[name] = ptr

        def execute_async_v3(self, stream_handle):
            assert stream_handle == 0x5EED

            def view(name):
                shape, dtype, _ = self.engine.io[name]
                n = int(np.prod(shape)) * np.dtype(dtype).itemsize
                return np.frombuffer((ctypes.c_char * n).from_address(self.addresses[name]), dtype).reshape(shape)

            feeds = {i.name: view(i.name).copy() for i in self.engine.sess.get_inputs()}
            for o, y in zip(self.engine.sess.get_outputs(), self.engine.sess.run(None, feeds)):
                view(o.name)[...] = y
            return True

    class Network:
        onnx = None

    class Parser:
        def __init__(self, network, logger):
            self.network, self.errors = network, []

        def parse(self, data):
            if log.get("parser_error"):
                self.errors = [log["parser_error"]]
                return False
            self.network.onnx = bytes(data)
            return True

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, i):
            return self.errors[i]

    class Config:
        def __init__(self):
            self.flags = set()

        def set_flag(self, flag):
            self.flags.add(flag)

    class Builder:
        def __init__(self, logger):
            pass

        def create_network(self, flags):
            log["network_flags"] = flags
            return Network()

        def create_builder_config(self):
            return Config()

        def build_serialized_network(self, network, config):
            log.setdefault("builds", []).append(sorted(f.name for f in config.flags))
            return b"PLAN|" + network.onnx

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, plan):
            return Engine(plan[5:]) if plan.startswith(b"PLAN|") else None

    major = int(version.split(".")[0])
    flags = enum.IntEnum("NetworkDefinitionCreationFlag", ["STRONGLY_TYPED"] if major >= 10 else
                      ["EXPLICIT_BATCH", "EXPLICIT_PRECISION"], start=0)
    trt = types.SimpleNamespace(
        __version__=version, Logger=type("Logger", (), {"ERROR": 2, "__init__": lambda self, level: None}),
        Builder=Builder, OnnxParser=Parser, Runtime=Runtime, NetworkDefinitionCreationFlag=flags,
        BuilderFlag=enum.Enum("BuilderFlag", ["FP16", "INT8"]), TensorIOMode=Mode, nptype=lambda t: t)
    return trt, cudart


@pytest.fixture
def stand_in(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))

    def install(version="10.3.0"):
        log = {}
        trt, cudart = stand_in_modules(version, log)
        cuda = types.ModuleType("cuda")
        bindings = types.ModuleType("cuda.bindings")
        bindings.runtime = cudart
        cuda.bindings = bindings
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "cuda", cuda)
        monkeypatch.setitem(sys.modules, "cuda.bindings", bindings)
        monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", cudart)
        return log
    return install


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("adapter") / "digits.ekb"
    return compile_bundle(edgekit.load_model("edgekit/data/digits_cnn.onnx"), TARGET, path,
                          backend="tensorrt").bundle.path


@pytest.fixture(scope="module")
def symmetric_bundle(tmp_path_factory):
    from tests.backends.c.graphs import cases

    g = cases()["handmade"].copy()
    for t in g.tensors.values():
        if t.quant is not None:
            t.quant = QuantParams(t.quant.scale, tuple(0 for _ in t.quant.zero_point), t.quant.axis)
    path = tmp_path_factory.mktemp("adapter8") / "sym.ekb"
    return compile_bundle(g, TARGET, path, backend="tensorrt").bundle.path


def test_the_adapter_builds_runs_and_frees(stand_in, digits_bundle, tmp_path):
    log = stand_in()
    m = rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path), "fallback": "none"})
    assert m._engine.runs_on == "tensorrt" and log["builds"] == [[]] and log["network_flags"] == 0
    assert m.describe().startswith("TensorRT 10.3.0 on Orin (compute capability 8.7), fp32; engine built")
    assert m.self_test()
    ins, _ = m.bundle.golden()
    sess = exact_session(read_bundle(digits_bundle).read("model.onnx"))
    for k in range(len(ins[0])):
        x = np.ascontiguousarray(ins[0][k])
        got = m.run({m.inputs[0].name: x})[m.outputs[0].name]
        assert np.array_equal(got, sess.run(None, {sess.get_inputs()[0].name: x})[0])
    in_bytes, out_bytes = x.nbytes, 4 * int(np.prod(m.outputs[0].shape))
    assert log["copies"][-2:] == [("cudaMemcpyHostToDevice", in_bytes), ("cudaMemcpyDeviceToHost", out_bytes)]
    m.close()
    assert len(log["freed"]) == 2 and len(log["streams_destroyed"]) == 1
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path), "precision": "fp16"}) as m:
        assert log["builds"][-1] == ["FP16"] and m.self_test()
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert len(log["builds"]) == 2 and "engine loaded from cache" in m.describe()


def test_int8_sets_the_int8_flag_and_tensorrt_8_gets_explicit_batch(stand_in, symmetric_bundle, tmp_path):
    log = stand_in("8.5.2")
    with rt.open(symmetric_bundle, engine_options={"cache_dir": str(tmp_path), "fallback": "none"}) as m:
        assert log["builds"] == [["INT8"]] and log["network_flags"] == 1   # 1 << EXPLICIT_BATCH (0)
        assert "TensorRT 8.5.2 on Orin (compute capability 8.7), int8" in m.describe()
        assert m.self_test()
        assert [c[0] for c in log["copies"][-2:]] == ["cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost"]


def test_parser_errors_reach_the_fallback_reason(stand_in, digits_bundle, tmp_path):
    log = stand_in()
    log["parser_error"] = "In node 3 (Conv): UNSUPPORTED_NODE"
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert m._engine.runs_on == "onnxruntime"
        assert m.describe().endswith("TensorRT 10.3.0 cannot build an engine from model.onnx: In node 3 (Conv): "
                                     "UNSUPPORTED_NODE")
    with pytest.raises(rt.EngineUnavailableError, match="UNSUPPORTED_NODE \\(and fallback=none\\)"):
        rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path), "fallback": "none"})


def test_no_gpu_and_no_cuda_python_are_named(stand_in, digits_bundle, monkeypatch, tmp_path):
    stand_in()
    sys.modules["cuda.bindings.runtime"].cudaGetDeviceCount = lambda: (0, 0)
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert m.describe().endswith("fallback of the tensorrt engine: no CUDA GPU is visible to this process")
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime"):
        monkeypatch.setitem(sys.modules, name, None)    # import fails
    with rt.open(digits_bundle, engine_options={"cache_dir": str(tmp_path)}) as m:
        assert "fallback of the tensorrt engine: cuda-python is not installed" in m.describe()
