"""The tensorrt engine: runs a bundle's ``model.onnx`` on an NVIDIA GPU through TensorRT,
and through onnxruntime where TensorRT cannot run it (docs/runtime.md, "Jetson").

On first open, TensorRT builds an engine from the ONNX (INT8 from the QDQ ONNX's explicit
quantization; FP32 for float models, or FP16 with ``precision=fp16``) and this module
caches the serialized engine in ``cache_dir`` under a key of the GPU (name and compute
capability), the TensorRT version, the build precision and the ONNX file's sha256:
engines do not travel between GPUs or TensorRT releases, so none is reused across any of
those. A cache file holds its key and the engine's sha256 in a header; a file that is
corrupt, truncated, for another key, or that TensorRT cannot deserialize is rebuilt and
replaced (written atomically: temporary file, fsync, rename).

Without TensorRT or a CUDA GPU (or when TensorRT cannot build this model: it takes only
symmetric int8 quantization, zero point 0), the model runs on onnxruntime from the same
ONNX, with the CUDA execution provider where onnxruntime has it, else on the CPU;
``describe()`` says which runs and why. ``fallback="none"`` refuses instead.

TensorRT (the ``tensorrt`` package JetPack installs) and CUDA's runtime API (the
``cuda-python`` package: device buffers, copies, a stream) are imported only when a
bundle is opened. Python 3.8 syntax, numpy 1.x or 2.x.

Engine options: ``cache_dir`` (default ``$XDG_CACHE_HOME/edgekit/tensorrt``, else
``~/.cache/edgekit/tensorrt``); ``precision``: "auto" (INT8 for int8 models, FP32 for
float ones) or "fp16" (also lets TensorRT pick FP16 kernels: faster, less exact);
``fallback``: "onnxruntime" (default) or "none"; ``graph_optimization`` and
``num_threads``: passed to onnxruntime when it runs the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import tempfile
import threading

import numpy as np

from edgekit.errors import BadInputError
from edgekit.runtime.engines import Engine, EngineUnavailableError, check_io
from edgekit.runtime.engines.onnxruntime import LEVELS as ORT_LEVELS
from edgekit.runtime.engines.onnxruntime import OnnxRuntimeEngine

PRECISIONS = ("auto", "fp16")
FALLBACKS = ("onnxruntime", "none")
# Cache file: magic, header length (4 bytes, little-endian), header JSON, engine bytes.
CACHE_MAGIC = b"EDGEKIT-TRT-ENGINE\n"
CACHE_FORMAT = 1
_HEADER_MAX = 1 << 16


class TensorRTUnavailable(Exception):
    """TensorRT or a CUDA GPU is absent here; the message says which."""


class TensorRTBuildError(Exception):
    """TensorRT could not build an engine from the ONNX; the message gives its errors."""


class TensorRTLoadError(Exception):
    """TensorRT could not deserialize a cached engine."""


# ------------------------------------------------------------------ the cache

def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "edgekit", "tensorrt")


def cache_key(gpu_name: str, compute_capability: str, tensorrt_version: str, onnx_sha256: str,
              precision: str) -> dict:
    """What a cached engine is valid for: all of it must match to reuse one."""
    return {"format": CACHE_FORMAT, "gpu": str(gpu_name), "compute_capability": str(compute_capability),
            "tensorrt": str(tensorrt_version), "onnx_sha256": str(onnx_sha256), "precision": str(precision)}


def cache_file_name(key: dict) -> str:
    """A readable name from the key; the header inside the file is what is trusted."""
    gpu = re.sub(r"[^a-z0-9]+", "-", key["gpu"].lower()).strip("-") or "gpu"
    sm = key["compute_capability"].replace(".", "")
    version = re.sub(r"[^0-9A-Za-z.]+", "_", key["tensorrt"])
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{gpu}-sm{sm}-trt{version}-{key['onnx_sha256'][:16]}-{key['precision']}-{digest}.engine"


def read_cached_engine(path: str, key: dict) -> tuple:
    """(engine bytes, "") when ``path`` holds an engine for exactly ``key``, else (None,
    why not): missing, unreadable, corrupt or truncated, or built for another key."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, "not cached yet"
    except OSError as exc:
        return None, f"cache file unreadable ({exc.strerror or exc})"
    if not data.startswith(CACHE_MAGIC) or len(data) < len(CACHE_MAGIC) + 4:
        return None, "cache file is not an edgekit TensorRT engine"
    start = len(CACHE_MAGIC)
    (size,) = struct.unpack("<I", data[start:start + 4])
    if size > _HEADER_MAX or start + 4 + size > len(data):
        return None, "cache file is truncated"
    try:
        header = json.loads(data[start + 4:start + 4 + size].decode("utf-8"))
        want_sha, want_size = header["engine_sha256"], int(header["engine_size"])
        found_key = header["key"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None, "cache file header is corrupt"
    if found_key != key:
        diff = sorted(k for k in set(key) | set(found_key if isinstance(found_key, dict) else {})
                      if not isinstance(found_key, dict) or found_key.get(k) != key.get(k))
        return None, f"cache file was built for another {', '.join(diff)}"
    plan = data[start + 4 + size:]
    if len(plan) != want_size or hashlib.sha256(plan).hexdigest() != want_sha:
        return None, "cache file is corrupt (engine sha256 or size differs from its header)"
    return plan, ""


def write_cached_engine(path: str, key: dict, plan: bytes) -> None:
    """Write ``plan`` for ``key`` at ``path`` atomically: a reader sees the old file or
    the whole new one, never part of it."""
    header = json.dumps({"key": key, "engine_sha256": hashlib.sha256(plan).hexdigest(),
                         "engine_size": len(plan)}, sort_keys=True).encode("utf-8")
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".edgekit-trt-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(CACHE_MAGIC + struct.pack("<I", len(header)) + header)
            f.write(plan)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)   # the rename itself survives a power cut
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ------------------------------------------------------------------ TensorRT and CUDA
#
# The engine reaches TensorRT and CUDA only through ``load_tensorrt()`` and the object it
# returns: ``version``, ``device() -> (GPU name, "major.minor")``, ``build(onnx bytes,
# int8, fp16) -> engine bytes`` (raises TensorRTBuildError), ``load(engine bytes) ->
# runner`` (raises TensorRTLoadError); a runner has ``inputs``/``outputs`` (lists of
# (shape, dtype name)), ``run(arrays) -> arrays`` and ``close()``.

def _import_cudart():
    try:
        from cuda.bindings import runtime as cudart   # cuda-python >= 12.6
        return cudart
    except ImportError:
        pass
    try:
        from cuda import cudart                       # older cuda-python
        return cudart
    except ImportError:
        raise TensorRTUnavailable("cuda-python is not installed (pip install cuda-python, the release matching "
                                  "the device's CUDA major version)") from None


def _check(cudart, result):
    """cuda-python returns (error, values...): raise on an error, return the values."""
    err, rest = result[0], result[1:]
    if int(err) != 0:
        name = cudart.cudaGetErrorName(err)[1]
        raise RuntimeError("CUDA error %s" % (name.decode() if isinstance(name, bytes) else name))
    return rest[0] if len(rest) == 1 else rest


class _TensorRTLibrary:
    def __init__(self):
        try:
            import tensorrt as trt
        except ImportError as exc:
            raise TensorRTUnavailable(f"TensorRT is not installed ({exc})") from None
        cudart = _import_cudart()
        err, count = cudart.cudaGetDeviceCount()
        if int(err) != 0 or count < 1:
            raise TensorRTUnavailable("no CUDA GPU is visible to this process")
        props = _check(cudart, cudart.cudaGetDeviceProperties(0))
        name = props.name.decode("utf-8", "replace") if isinstance(props.name, bytes) else str(props.name)
        self._gpu = (name.split("\x00")[0].strip(), "%d.%d" % (props.major, props.minor))
        self.trt, self.cudart = trt, cudart
        self.version = trt.__version__
        self.logger = trt.Logger(trt.Logger.ERROR)

    def device(self) -> tuple:
        return self._gpu

    def build(self, onnx: bytes, int8: bool, fp16: bool) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        # TensorRT 8 needs explicit batch for ONNX; TensorRT 10 has only that mode.
        flag = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
        major = int(self.version.split(".")[0])
        network = builder.create_network(0 if flag is None or major >= 10 else 1 << int(flag))
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(onnx):
            errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
            raise TensorRTBuildError("; ".join(errors) or "its ONNX parser refused the model")
        config = builder.create_builder_config()
        if int8:
            config.set_flag(trt.BuilderFlag.INT8)    # Q/DQ layers give the scales (explicit quantization)
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        try:
            plan = builder.build_serialized_network(network, config)
        except Exception as exc:  # TensorRT raises its own types for a network it cannot build
            raise TensorRTBuildError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from None
        if plan is None:
            raise TensorRTBuildError("the builder returned no engine")
        return bytes(plan)

    def load(self, plan: bytes):
        runtime = self.trt.Runtime(self.logger)
        try:
            engine = runtime.deserialize_cuda_engine(plan)
        except Exception as exc:  # TensorRT raises its own types for a plan it cannot read
            raise TensorRTLoadError(f"TensorRT cannot deserialize the engine ({exc})") from None
        if engine is None:
            raise TensorRTLoadError("TensorRT cannot deserialize the engine")
        # The runtime must outlive the engines it deserialized: the runner keeps it.
        return _CudaRunner(self.trt, self.cudart, runtime, engine)


class _CudaRunner:
    """One execution context with a device buffer per I/O tensor and a stream."""

    def __init__(self, trt, cudart, runtime, engine):
        self.cudart = cudart
        self._runtime, self._engine = runtime, engine
        # One set of device buffers: calls from several threads take turns.
        self._lock = threading.Lock()
        self._context = engine.create_execution_context()
        self._stream = _check(cudart, cudart.cudaStreamCreate())
        self._buffers = []
        self._in, self._out = [], []
        self.inputs, self.outputs = [], []
        try:
            for i in range(engine.num_io_tensors):
                name = engine.get_tensor_name(i)
                shape = tuple(int(d) for d in engine.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
                nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                ptr = _check(cudart, cudart.cudaMalloc(max(nbytes, 1)))
                self._buffers.append(ptr)
                self._context.set_tensor_address(name, int(ptr))
                entry = (int(ptr), shape, dtype, nbytes)
                if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    self._in.append(entry)
                    self.inputs.append((shape, dtype.name))
                else:
                    self._out.append(entry)
                    self.outputs.append((shape, dtype.name))
        except BaseException:
            self.close()
            raise

    def run(self, arrays: list) -> list:
        with self._lock:
            return self._run(arrays)

    def _run(self, arrays: list) -> list:
        cudart, stream = self.cudart, self._stream
        to_device = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        to_host = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for (ptr, _, _, nbytes), x in zip(self._in, arrays):
            x = np.ascontiguousarray(x)
            _check(cudart, cudart.cudaMemcpyAsync(ptr, x.ctypes.data, nbytes, to_device, stream))
        if not self._context.execute_async_v3(stream_handle=int(stream)):
            raise RuntimeError("TensorRT failed to run the engine")
        outs = []
        for ptr, shape, dtype, nbytes in self._out:
            y = np.empty(shape, dtype)
            _check(cudart, cudart.cudaMemcpyAsync(y.ctypes.data, ptr, nbytes, to_host, stream))
            outs.append(y)
        _check(cudart, cudart.cudaStreamSynchronize(stream))
        return outs

    def close(self) -> None:
        cudart = self.cudart
        for ptr in self._buffers:
            cudart.cudaFree(ptr)
        self._buffers = []
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = self._engine = self._runtime = None


def load_tensorrt():
    """TensorRT and CUDA on this machine; raises TensorRTUnavailable saying what is missing."""
    return _TensorRTLibrary()


# ------------------------------------------------------------------ the engine

class OnnxRuntimeFallback(OnnxRuntimeEngine):
    """onnxruntime on the bundle's ONNX, on CUDA where this onnxruntime has it (the
    onnxruntime-gpu builds for Jetson), else on the CPU."""

    def execution_providers(self, ort) -> list:
        available = set(ort.get_available_providers())
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or \
            ["CPUExecutionProvider"]


def _asymmetric_io(manifest: dict) -> str:
    """The first int8 input or output with a nonzero zero point, as words, or ""."""
    for kind in ("inputs", "outputs"):
        for spec in manifest[kind]:
            q = spec.get("quantization") or {}
            zps = [int(z) for z in q.get("zero_point") or []]
            if any(zps):
                return f"{kind[:-1]} {spec['name']!r} has zero point {zps[0] if len(zps) == 1 else zps}"
    return ""


class TensorRTEngine(Engine):
    name = "tensorrt"
    options = ("cache_dir", "precision", "fallback", "graph_optimization", "num_threads")

    def __init__(self, bundle, options: dict):
        super().__init__(bundle, options)
        opts = self.engine_options
        precision = opts.get("precision", "auto")
        if precision not in PRECISIONS:
            raise BadInputError(f"engine tensorrt: precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        fallback = opts.get("fallback", "onnxruntime")
        if fallback not in FALLBACKS:
            raise BadInputError(f"engine tensorrt: fallback {fallback!r} is not one of {', '.join(FALLBACKS)}")
        cache_dir = opts.get("cache_dir", default_cache_dir())
        if not isinstance(cache_dir, (str, os.PathLike)) or not str(cache_dir):
            raise BadInputError(f"engine tensorrt: cache_dir must be a folder path, not {cache_dir!r}")
        self.cache_dir = os.fspath(cache_dir)
        # The fallback's options are checked here too: a typo must not wait for the day TensorRT is absent.
        level = opts.get("graph_optimization", "all")
        if level not in ORT_LEVELS:
            raise BadInputError(f"engine tensorrt: graph_optimization {level!r} is not one of {', '.join(ORT_LEVELS)}")
        threads = opts.get("num_threads")
        if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
            raise BadInputError(f"engine tensorrt: num_threads must be a positive integer, not {threads!r}")
        self.int8 = bundle.manifest["model"].get("precision") == "int8"
        self.precision = "int8" if self.int8 else "fp32"
        if precision == "fp16":
            self.precision += "+fp16"
        self.cache_file = None
        self.cache_status = ""
        self.fallback_reason = ""
        self._runner = self._fallback = None
        try:
            self._open_tensorrt(bundle)
        except TensorRTUnavailable as exc:
            self._fall_back(bundle, fallback, str(exc))

    # -- TensorRT

    def _open_tensorrt(self, bundle) -> None:
        if self.int8:
            problem = _asymmetric_io(bundle.manifest)
            if problem:
                raise TensorRTUnavailable(f"TensorRT takes only symmetric int8 quantization (zero point 0); {problem}")
        lib = load_tensorrt()
        gpu, capability = lib.device()
        model = bundle.payload("model")
        onnx_sha = bundle.manifest["files"][model]["sha256"]   # checked by verify() against the bytes
        key = cache_key(gpu, capability, lib.version, onnx_sha, self.precision)
        path = os.path.join(self.cache_dir, cache_file_name(key))
        plan, why = read_cached_engine(path, key)
        runner = None
        if plan is not None:
            try:
                runner = lib.load(plan)
                self.cache_status = "loaded from cache"
            except (TensorRTLoadError, RuntimeError) as exc:
                why = f"cached engine rejected ({exc})"
        if runner is None:
            try:
                plan = lib.build(bundle.read(model), self.int8, self.precision.endswith("+fp16"))
            except TensorRTBuildError as exc:
                raise TensorRTUnavailable(f"TensorRT {lib.version} cannot build an engine from {model}: {exc}") \
                    from None
            try:
                runner = lib.load(plan)
            except (TensorRTLoadError, RuntimeError) as exc:
                raise TensorRTUnavailable(f"TensorRT {lib.version} cannot load the engine it built: {exc}") from None
            self.cache_status = f"built ({why})"
            try:
                write_cached_engine(path, key, plan)
            except OSError as exc:
                self.cache_status += f"; not cached: {exc.strerror or exc}"
        try:
            check_io(bundle, "inputs", runner.inputs)
            check_io(bundle, "outputs", runner.outputs)
        except BaseException:
            runner.close()
            raise
        self._runner = runner
        self.cache_file = path
        self.gpu = f"{gpu} (compute capability {capability})"
        self.tensorrt_version = lib.version

    # -- onnxruntime

    def _fall_back(self, bundle, fallback: str, reason: str) -> None:
        if fallback == "none":
            raise EngineUnavailableError(f"engine tensorrt: {reason} (and fallback=none)")
        ort_options = {k: v for k, v in self.engine_options.items() if k in ("graph_optimization", "num_threads")}
        try:
            self._fallback = OnnxRuntimeFallback(bundle, ort_options)
        except EngineUnavailableError:
            raise EngineUnavailableError(f"engine tensorrt: {reason}; its fallback needs onnxruntime "
                                         "(pip install onnxruntime, or onnxruntime-gpu for Jetson)") from None
        self.fallback_reason = reason

    @property
    def runs_on(self) -> str:
        """"tensorrt" or "onnxruntime": what runs the model."""
        return "tensorrt" if self._runner is not None else "onnxruntime"

    def run(self, inputs: list) -> list:
        if self._runner is not None:
            return self._runner.run(inputs)
        return self._fallback.run(inputs)

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        if self._fallback is not None:
            self._fallback.close()
            self._fallback = None

    def describe(self) -> str:
        if self._fallback is not None:
            return f"{self._fallback.describe()}, fallback of the tensorrt engine: {self.fallback_reason}"
        if self._runner is None:
            return "tensorrt (closed)"
        return (f"TensorRT {self.tensorrt_version} on {self.gpu}, {self.precision}; engine {self.cache_status}: "
                f"{self.cache_file}")


ENGINE = TensorRTEngine
