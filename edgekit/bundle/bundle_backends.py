"""The backends a bundle for a Linux-class target (family linux, jetson or host) can be
compiled with, and the ``--backend auto`` rule. Compiler side: each entry lowers an int8
or float IR graph to the files of one runtime engine (``edgekit.runtime.engines.<engine>``).

Adding a backend is one entry in ``LINUX_BACKENDS`` (its engine is one file in
``edgekit/runtime/engines/``). MCU targets take the C backend and the model package
(``edgekit.bundle.bundle_compiler``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgekit.errors import BadInputError, UnsupportedOpError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph

LINUX_FAMILIES = ("linux", "jetson", "host")


@dataclass(frozen=True)
class LinuxBackend:
    name: str                   # what --backend says
    engine: str                 # the runtime engine that runs its files
    model_file: str             # the payload's "model" role
    # (graph, target) -> the model file's bytes, or {file name: bytes} holding model_file
    # and any other files the engine needs
    lower: Callable[[Graph, object], object]
    about: str
    # (graph, target) -> a caveat the compile report adds to the reason ("" for none)
    note: Callable[[Graph, object], str] | None = None
    # options this backend's lower() takes as keywords (e.g. tvm's "tuning"), beyond (graph, target)
    lower_options: tuple = ()
    # (payload files) -> what the manifest records under compile.<backend name> (None: nothing)
    summary: Callable[[dict], dict] | None = None


def _tflite(graph: Graph, target) -> bytes:
    from edgekit.backends.tflite import tflite_bytes

    return tflite_bytes(graph)


def _onnx(graph: Graph, target) -> bytes:
    from edgekit.backends.onnx import to_onnx

    # Bundles expose every tensor in the IR's layout (NHWC), whatever the engine: switching
    # engines never changes what a caller feeds.
    return to_onnx(graph, layout="ir").SerializeToString()


def _c(graph: Graph, target) -> dict:
    import tempfile
    from pathlib import Path

    from edgekit.backends.c.shared_library import DESCRIPTION_NAME, HARNESS_NAME, LIBRARY_NAME, build_shared_library

    with tempfile.TemporaryDirectory(prefix="edgekit-c-") as tmp:
        out = build_shared_library(graph, target, Path(tmp) / "c").out_dir
        return {name: (out / name).read_bytes() for name in (LIBRARY_NAME, DESCRIPTION_NAME, HARNESS_NAME)}


def _tvm(graph: Graph, target, tuning=None) -> dict:
    import json

    from edgekit.backends.tvm import compile_tvm

    result = compile_tvm(graph, target, tuning=tuning)
    # What the tvm engine checks before loading the library: the machine, TVM version and
    # device (cpu, or cuda with the CUDA runtime it needs); and the tuning that made it.
    info = {"tvm_version": result.tvm_version, "tvm_target": result.tvm_target, "machine": result.machine,
            "int8_as_float": result.int8_as_float, "device": result.device, "cuda": result.cuda,
            "tuning": result.tuning}
    return {"model.so": result.library, "tvm_module.json": (json.dumps(info, indent=1) + "\n").encode()}


def _tvm_summary(files: dict) -> dict:
    import json

    info = json.loads(files["tvm_module.json"])
    return {k: info.get(k) for k in ("device", "cuda", "tuning")}


def _tvm_note(graph: Graph, target) -> str:
    from edgekit.backends.tvm import INT8_NOTE, device_note

    notes = [INT8_NOTE] if is_int8(graph) else []
    if target is not None and device_note(target):
        notes.append(device_note(target))
    return "; ".join(notes)


def asymmetric_int8(graph: Graph) -> str:
    """The first int8 tensor of ``graph`` with a nonzero zero point, as words, or "".
    TensorRT takes only symmetric int8 quantization (zero point 0)."""
    for name, t in graph.tensors.items():
        if t.dtype is DType.INT8 and t.quant is not None and any(int(z) != 0 for z in t.quant.zero_point):
            return f"tensor {name!r} has zero point {int(t.quant.zero_point[0])}"
    return ""


def has_nvidia_gpu(target) -> bool:
    return target is not None and "cuda" in getattr(target, "features", ())


def _tensorrt_note(graph: Graph, target) -> str:
    asym = asymmetric_int8(graph) if is_int8(graph) else ""
    if asym:
        return (f"TensorRT takes only symmetric int8 quantization (zero point 0) and this model's {asym}: on the "
                "device the tensorrt engine will run it through its onnxruntime fallback")
    return ""


LINUX_BACKENDS = {
    "litert": LinuxBackend("litert", "litert", "model.tflite", _tflite,
                           "the .tflite edgekit writes, run by LiteRT (XNNPACK) or tflite-runtime"),
    "onnxruntime": LinuxBackend("onnxruntime", "onnxruntime", "model.onnx", _onnx,
                                "the ONNX (float, or QDQ for int8) edgekit writes, run by onnxruntime"),
    "c": LinuxBackend("c", "c", "libedgekit_model.so", _c,
                      "the generated C built for the target as a shared library (int8, bit-exact with the "
                      "reference), run through ctypes; edgekit_harness runs it without Python"),
    "tvm": LinuxBackend("tvm", "tvm", "model.so", _tvm,
                        "Apache TVM compiled for the target's CPU (or a Jetson's GPU through CUDA) into a shared "
                        "library, run by TVM's Relax VM; float models (int8 runs as float in TVM 0.27); "
                        "--tune-trials runs MetaSchedule", _tvm_note, lower_options=("tuning",),
                        summary=_tvm_summary),
    "tensorrt": LinuxBackend("tensorrt", "tensorrt", "model.onnx", _onnx,
                             "the ONNX (float, or QDQ for int8) edgekit writes; on the device TensorRT builds and "
                             "caches a GPU engine from it on first open, onnxruntime runs it where TensorRT cannot "
                             "(targets with an NVIDIA GPU)", _tensorrt_note),
}


def is_int8(graph: Graph) -> bool:
    return any(graph.tensor(o).dtype is DType.INT8 for op in graph.ops for o in op.outputs)


def payload_files(backend: LinuxBackend, graph: Graph, target, options: dict | None = None) -> dict:
    """{file name: bytes} of ``backend``'s lowering of ``graph`` for ``target``, with the
    backend ``options`` it takes (``LinuxBackend.lower_options``)."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(options) - set(backend.lower_options))
    if unknown:
        raise BadInputError(f"backend {backend.name} takes no option {', '.join(unknown)}")
    out = backend.lower(graph, target, **options)
    files = out if isinstance(out, dict) else {backend.model_file: out}
    if backend.model_file not in files:
        raise ValueError(f"backend {backend.name!r} wrote no {backend.model_file!r}")
    return files


def choose_backend(graph: Graph, requested: str, target=None, options: dict | None = None) -> tuple:
    """(backend, its payload files, why) for ``requested`` ("auto" or a name); ``options``:
    the named backend's lowering options (``LinuxBackend.lower_options``).

    The auto rule, what ``--backend auto`` falls back to when no latency was measured for
    the target (``edgekit.bundle.backend_choice``; docs/bundle-format.md): on a target with
    an NVIDIA GPU (Jetson), TensorRT, unless the model is int8 with a nonzero zero point
    (TensorRT takes only symmetric quantization). Otherwise LiteRT for every model
    it can express, since its XNNPACK kernels run int8 natively on NEON/SSE, while
    onnxruntime's fused int8 kernels depend on the CPU and TVM runs QDQ as float; and one
    engine for float and int8 keeps a device's install to one extra. onnxruntime when the
    TFLite writer cannot express an op of the model.
    """
    if requested != "auto":
        if requested not in LINUX_BACKENDS:
            raise BadInputError(f"--backend {requested!r} is not available for Linux targets; choose one of "
                                f"auto, {', '.join(LINUX_BACKENDS)}")
        backend = LINUX_BACKENDS[requested]
        if requested == "tensorrt" and target is not None and not has_nvidia_gpu(target):
            raise BadInputError(f"--backend tensorrt needs a target with an NVIDIA GPU (feature \"cuda\", e.g. "
                                f"jetson-orin-nano); target {target.name!r} has none")
        note = backend.note(graph, target) if backend.note else ""
        files = payload_files(backend, graph, target, options)
        return backend, files, f"--backend {requested}" + (f"; {note}" if note else "")
    kind = "int8" if is_int8(graph) else "float"
    asym = asymmetric_int8(graph) if kind == "int8" else ""
    if has_nvidia_gpu(target) and not asym:
        backend = LINUX_BACKENDS["tensorrt"]
        return backend, payload_files(backend, graph, target), (
            f"auto chose tensorrt because target {target.name} has an NVIDIA GPU: TensorRT builds a GPU engine "
            f"for this {kind} model on the device (onnxruntime runs it where TensorRT is absent)")
    try:
        files = payload_files(LINUX_BACKENDS["litert"], graph, target)
    except (UnsupportedOpError, BadInputError) as exc:
        backend = LINUX_BACKENDS["onnxruntime"]
        return backend, payload_files(backend, graph, target), (
            f"auto chose onnxruntime because the TFLite writer cannot express this {kind} model ({exc})")
    why = ("auto chose litert because the model is int8 and LiteRT's XNNPACK kernels run int8 natively "
           "(onnxruntime's int8 path depends on the CPU)" if kind == "int8" else
           "auto chose litert because LiteRT expresses every op of this float model and one engine for "
           "float and int8 keeps the device install to one extra")
    if has_nvidia_gpu(target):
        why += f" (not tensorrt: TensorRT takes only symmetric int8 quantization and this model's {asym})"
    return LINUX_BACKENDS["litert"], files, why
