"""Compiling a graph into a bundle for any target (docs/bundle-format.md).

    result = compile_bundle(graph, "rpi4", "out/kws.ekb", backend="auto")

Linux-class targets (families linux, jetson, host): the engine's model file
(``edgekit.bundle.bundle_backends``). MCU targets: the model package the firmware runs
(``pack_model``) and the generated C folder under ``c/`` (``edgekit.backends.c``).
Every bundle also holds golden vectors: a few inputs and the reference interpreter's
outputs for them, which ``Model.self_test()`` replays on the device.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import __version__
from edgekit.bundle.bundle_backends import LINUX_FAMILIES, choose_backend, is_int8
from edgekit.bundle.bundle_format import FORMAT, FORMAT_VERSION, GOLDEN
from edgekit.bundle.bundle_writer import write_bundle
from edgekit.errors import BadInputError
from edgekit.ir.graph import Graph
from edgekit.targets import Target, load_target

GOLDEN_COUNT = 4
# How closely an engine must reproduce the reference interpreter's golden outputs
# (docs/bundle-format.md). Integer outputs: LiteRT's reference kernels follow TFLM but for
# single rounding in per-channel FC: one step. Every other path (XNNPACK, onnxruntime's
# QDQ, fused or not) requantizes in float: one step per layer compounds and a final softmax
# amplifies it (up to 22 steps on KWS over 200 test samples, measured 2026-12-07); 32
# allows that and still fails an engine that computes something else.
INT_STEPS = 1
INT_STEPS_OTHER = 32
FLOAT_RTOL = 1e-3
FLOAT_ATOL = 1e-4


@dataclass
class BundleResult:
    bundle: object              # edgekit.bundle.bundle_reader.Bundle, read back and verified
    backend: str
    engine: str
    reason: str
    c_result: object = None     # the C backend's CompileResult for MCU targets

    @property
    def manifest(self) -> dict:
        return self.bundle.manifest


def tensor_spec(graph: Graph, name: str) -> dict:
    t = graph.tensor(name)
    q = t.quant
    quant = None if q is None else {"scale": [float(s) for s in q.scale],
                                    "zero_point": [int(z) for z in q.zero_point], "axis": q.axis}
    return {"name": name, "shape": [int(d) for d in t.shape], "dtype": t.dtype.value, "quantization": quant,
            "layout": "NHWC" if len(t.shape) == 4 else None}


def golden_vectors(graph: Graph, count: int = GOLDEN_COUNT, seed: int = 0):
    """Seeded inputs over each input's dtype range and the reference interpreter's
    outputs for them, each tensor with a leading sample axis, in graph order."""
    from edgekit.reference.interpreter import Interpreter

    rng = np.random.default_rng(seed)
    ins = []
    for name in graph.inputs:
        t = graph.tensor(name)
        dt = np.dtype(t.dtype.value)
        if dt.kind in "iu":
            info = np.iinfo(dt)
            x = rng.integers(info.min, info.max, size=(count, *t.shape), endpoint=True).astype(dt)
        else:
            x = rng.standard_normal((count, *t.shape)).astype(dt)
        ins.append(x)
    interp = Interpreter(graph)
    outs = [[] for _ in graph.outputs]
    for k in range(count):
        res = interp.run({n: ins[i][k] for i, n in enumerate(graph.inputs)}, layout="ir")
        for i, n in enumerate(graph.outputs):
            outs[i].append(np.asarray(res[n]))
    return ins, [np.stack(o) for o in outs]


def _golden_file(graph: Graph) -> bytes:
    ins, outs = golden_vectors(graph)
    arrays = {"in.%d" % i: a for i, a in enumerate(ins)}
    arrays.update({"out.%d" % i: a for i, a in enumerate(outs)})
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def _base_manifest(graph: Graph, tgt: Target, backend: str, engine: str, payload: dict, options: dict,
                   model_version, reason: str, figures: dict) -> dict:
    from edgekit.ir.stats import graph_stats

    st = graph_stats(graph)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "edgekit_version": __version__,
        "target": tgt.name, "target_family": tgt.family, "target_arch": tgt.arch,
        "backend": backend, "engine": engine,
        "model": {"name": graph.name, "version": model_version,
                  "source_format": graph.metadata.get("source_format"),
                  "precision": "int8" if is_int8(graph) else "float32"},
        "inputs": [tensor_spec(graph, n) for n in graph.inputs],
        "outputs": [tensor_spec(graph, n) for n in graph.outputs],
        "payload": payload,
        "compile": {"options": options, "backend_reason": reason},
        "figures": {"macs": int(st.macs), "params": int(st.params), "param_bytes": int(st.param_bytes),
                    "accuracy": None, **figures},
        "golden": {"file": GOLDEN, "count": GOLDEN_COUNT, "source": "edgekit reference interpreter",
                   "int_steps": INT_STEPS, "int_steps_other": INT_STEPS_OTHER, "float_rtol": FLOAT_RTOL,
                   "float_atol": FLOAT_ATOL},
        # Filled by signed updates (a later issue); readers today ignore it.
        "signature": None,
    }


def compile_bundle(graph: Graph, target, out, *, backend: str = "auto", model_version: str | None = None,
                   options: dict | None = None, flash=None, sram=None, variant: str = "auto",
                   accuracy: float | None = None, targets_dir=None,
                   backend_options: dict | None = None) -> BundleResult:
    """Compile an IR ``graph`` (int8, or float for Linux targets) for ``target`` into a
    bundle at ``out`` (a folder, or an ``.ekb`` file). ``backend``: "auto", a Linux
    backend name, or "c" (MCU targets, where it is the only one). "auto" on a Linux
    target: the fastest backend measured on this machine when it is the target, else the
    target's latency table, else the rule (``edgekit.bundle.backend_choice``). ``options``: the
    compile options to record in the manifest. ``flash``/``sram``/``variant``: as the C
    backend's (MCU targets only). ``backend_options``: options of the named Linux
    backend (e.g. tvm's ``tuning``: ``edgekit.backends.tvm.TuningOptions``)."""
    tgt = target if isinstance(target, Target) else load_target(target, targets_dir)
    options = dict(options or {})
    figures = {} if accuracy is None else {"accuracy": float(accuracy)}
    backend_options = {k: v for k, v in (backend_options or {}).items() if v is not None}
    if backend_options and backend == "auto":
        raise BadInputError(f"{', '.join(sorted(backend_options))}: options of one backend; name it with --backend")
    if tgt.is_mcu:
        if backend not in ("auto", "c"):
            raise BadInputError(f"--backend {backend}: target {tgt.name!r} is a microcontroller; its bundles "
                                "are built with the C backend (--backend c or auto)")
        if backend_options:
            raise BadInputError(f"{', '.join(sorted(backend_options))}: not an option of the C backend that "
                                f"builds bundles for microcontroller {tgt.name!r}")
        return _mcu_bundle(graph, tgt, out, model_version, options, flash, sram, variant, figures)
    if tgt.family not in LINUX_FAMILIES:
        raise BadInputError(f"target {tgt.name!r} has family {tgt.family!r}; bundles are for the families "
                            f"mcu, {', '.join(LINUX_FAMILIES)}")
    if flash is not None or sram is not None:
        raise BadInputError("--flash and --sram are for microcontroller targets")
    graph = _without_hybrid_ops(graph, options)
    golden = _golden_file(graph)
    choice_record = None
    if backend == "auto":
        from edgekit.bundle.backend_choice import choose_auto
        from edgekit.targets import search_path

        def write_candidate(candidate, candidate_files, folder):
            m = _base_manifest(graph, tgt, candidate.name, candidate.engine, {"model": candidate.model_file},
                               options, model_version, "auto candidate", dict(figures))
            return write_bundle(folder, m, {**candidate_files, GOLDEN: golden}).path

        auto = choose_auto(graph, tgt, write_candidate, table_dirs=search_path(targets_dir))
        chosen, files, reason, choice_record = auto.backend, auto.files, auto.reason, auto.record
    else:
        chosen, files, reason = choose_backend(graph, backend, tgt, backend_options)
    payload = {"model": chosen.model_file}
    figures["model_file_bytes"] = len(files[chosen.model_file])
    files = {**files, GOLDEN: golden}
    manifest = _base_manifest(graph, tgt, chosen.name, chosen.engine, payload, options, model_version,
                              reason, figures)
    if choice_record is not None:
        manifest["compile"]["backend_choice"] = choice_record
    if chosen.summary is not None:
        manifest["compile"][chosen.name] = chosen.summary(files)
    bundle = write_bundle(out, manifest, files)
    return BundleResult(bundle, chosen.name, chosen.engine, reason)


def _without_hybrid_ops(graph: Graph, options: dict) -> Graph:
    """Hybrid ops (float activations, int8 weights) as float ops with dequantized weights:
    onnxruntime has no such ops, and LiteRT's hybrid kernels quantize activations on the
    fly, with results that depend on the kernel path. The manifest records it."""
    from edgekit.ir.passes import run_passes

    g = graph.copy()
    if run_passes(g, ["dequantize_weights"]):
        options["hybrid_weights"] = "dequantized to float32"
        return g
    return graph


def _mcu_bundle(graph, tgt, out, model_version, options, flash, sram, variant, figures) -> BundleResult:
    from edgekit.backends.c import compile_model
    from edgekit.bundle.micro_package_writer import pack_model

    if not is_int8(graph):
        raise BadInputError(f"model {graph.name!r} is a float model: give calibration data (--calib DATA) "
                            "to quantize it to int8 for a microcontroller")
    name = graph.name.encode()[:24].decode("utf-8", "ignore")
    package = pack_model(graph, tgt, name=name)
    files = {"model.ekpkg": package, GOLDEN: _golden_file(graph)}
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix=".edgekit-c-", dir=_existing_parent(out)) as tmp:
        c_dir = Path(tmp) / "c"
        c_result = compile_model(graph, tgt, c_dir, flash=flash, sram=sram, variant=variant)
        for p in sorted(c_dir.rglob("*")):
            if p.is_file():
                files["c/" + p.relative_to(c_dir).as_posix()] = p.read_bytes()
    figures.update({"package_bytes": len(package), "arena_bytes": c_result.arena_bytes,
                    "stack_bytes": c_result.stack_bytes, "flash": c_result.flash})
    reason = "microcontroller targets are built with the C backend"
    manifest = _base_manifest(graph, tgt, "c", "micro", {"model": "model.ekpkg", "c_sources": "c/manifest.json"},
                              options, model_version, reason, figures)
    bundle = write_bundle(out, manifest, files)
    return BundleResult(bundle, "c", "micro", reason, c_result)


def _existing_parent(out: Path) -> str:
    parent = out.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    return str(parent)
