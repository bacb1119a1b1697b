"""The C backend stage: an int8 IR graph -> a folder of C for a microcontroller.

    result = compile_model(graph, "cortex-m4", "out/kws")

Steps: quantize a float graph (with ``calib``), check shapes and ops, lower every op to a
kernel call (``params``), pick each kernel's variant for the target (``library``), plan
the arena (``plan``), emit model.c / model.h (``codegen``), copy the kernels, measure
code and stack with the target's compiler when it is installed (``build``), check the fit
(``fit``), then write manifest.json and the report. Nothing is written to ``out_dir``
unless every step succeeds.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.backends.c import build, library
from edgekit.backends.c.codegen import ARENA_SECTION, WEIGHTS_SECTION, generate
from edgekit.backends.c.fit import FitError, FitReport, check_fit
from edgekit.backends.c.params import KernelCall, check_supported, lower_op
from edgekit.backends.c.plan import NO_SHARE, plan_arena
from edgekit.backends.c.report import build_report, write_reports
from edgekit.errors import BadInputError
from edgekit.files import check_replaceable_folder
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.shapes import op_macs
from edgekit.ir.verify import verify
from edgekit.memory import MemoryPlan
from edgekit.targets import Target, load_target, parse_size

MANIFEST_FORMAT = "edgekit-c-model"
MANIFEST_VERSION = 1
STACK_MARGIN = 128          # memcpy, exception entry (with the FP context) on top of -fstack-usage
DEFAULT_STACK = 1024        # when the target's compiler is not installed to measure it
# .text bytes of each kernel, arm-none-eabi-gcc 12 -O2 -mthumb for Cortex-M4 (used only
# when the target's compiler is not installed); model.c adds ~CALL_BYTES per op.
CODE_ESTIMATE = {
    ("conv2d", "portable"): 1080, ("conv2d", "dsp"): 1716,
    ("depthwise_conv2d", "portable"): 1308, ("depthwise_conv2d", "dsp"): 1444,
    ("fully_connected", "portable"): 320, ("fully_connected", "dsp"): 736,
    "avg_pool2d": 448, "max_pool2d": 360, "add": 1112, "sub": 1112, "mul": 828, "pad": 328,
    "concatenation": 104, "transpose": 236, "mean": 552, "softmax": 1236, "logistic": 768,
    "tanh": 780, "relu": 160, "relu6": 44, "quantize": 228, "requantize": 160, "dequantize": 40,
}
CALL_BYTES = 60


class DynamicShapeError(BadInputError):
    """A tensor's shape is not fully known."""


@dataclass
class CompileResult:
    out_dir: Path
    target: str
    variant: str
    arena_bytes: int
    stack_bytes: int
    flash: dict                     # code, weights, constants, total, measured
    fit: FitReport
    kernels: list[dict]
    ops: list[dict]
    plan: MemoryPlan
    manifest: dict
    files: list[str] = field(default_factory=list)
    sizes: build.ObjectSizes | None = None

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / "manifest.json"


# ----------------------------------------------------------------------------- checks


def _prepare(graph: Graph, calib, quantize_kwargs) -> Graph:
    float_model = all(t.dtype is DType.FLOAT32 for t in graph.tensors.values() if not t.is_const)
    if float_model:
        if calib is None:
            raise BadInputError(f"model {graph.name!r} is a float model: give calibration data "
                                "(calib=, --calib DATA) to quantize it to int8 first")
        from edgekit.quantize import quantize

        graph = quantize(graph, calib, **(quantize_kwargs or {})).graph
    return graph


def _check_shapes(graph: Graph) -> None:
    producers = graph.producers()
    consumers = graph.consumers()
    for name, t in graph.tensors.items():
        if t.is_const or all(d > 0 for d in t.shape):
            continue
        op = producers.get(name) or next(iter(consumers.get(name) or []), None)
        where = f"op {op.type.value} at node {op.name!r}" if op is not None else "graph"
        shown = "[" + ", ".join(str(d) if d > 0 else "?" for d in t.shape) + "]"
        raise DynamicShapeError(f"{where}: tensor {name!r} has a dynamic shape {shown}; the C "
                                "backend needs static shapes (set them with --input-shape)")


def _check_io(graph: Graph) -> None:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise BadInputError(f"model {graph.name!r} has {len(graph.inputs)} inputs and "
                            f"{len(graph.outputs)} outputs; the C backend compiles models with "
                            "one input and one output")
    for n in graph.inputs + graph.outputs:
        if graph.tensor(n).dtype is DType.INT32 and n in graph.outputs:
            continue  # indices (ARG_MAX / ARG_MIN)
        if graph.tensor(n).dtype not in (DType.INT8, DType.FLOAT32):
            raise BadInputError(f"graph input/output {n!r} is {graph.tensor(n).dtype.value}; "
                                "the C backend takes int8 (or float32) inputs and int8, float32 "
                                "(or int32 index) outputs")


# ----------------------------------------------------------------------------- stage


def compile_model(graph: Graph, target: str | Target, out_dir, *, calib=None, flash=None, sram=None,
                  variant: str = "auto", measure: bool | None = None, quantize_kwargs=None,
                  targets_dir=None, reverse_rows: bool = True) -> CompileResult:
    """Compile ``graph`` (int8, or float with ``calib`` data to quantize it) for an MCU
    ``target`` into ``out_dir``.

    ``flash`` / ``sram``: sizes (bytes or "256KiB") replacing the target's. ``variant``:
    "auto" (by target features), "portable", "dsp" or "mve". ``measure``: compile with the
    target's compiler for exact code size and stack (None: when it is installed).
    ``reverse_rows``: let the arena plan put a conv's output above its input, run by
    output rows from the last (a smaller arena, e.g. KWS 8,384 B instead of 9,792 B, for
    a call per row; False: one call per op, ``edgekit.backends.c.plan``).
    Raises ``UnsupportedOpError`` / ``DynamicShapeError`` naming the op and node, and
    ``FitError`` (exit code 2) with a table of what takes the space.
    """
    tgt = target if isinstance(target, Target) else load_target(target, targets_dir)
    if not tgt.is_mcu:
        raise BadInputError(f"target {tgt.name!r} is a {tgt.family} target; the C backend "
                            "compiles for microcontrollers (family mcu)")
    flash_b = None if flash is None else parse_size(flash)
    sram_b = None if sram is None else parse_size(sram)
    library.choose("conv2d", tgt.features, variant)  # validates the variant for the target early

    _check_shapes(graph)
    graph = _prepare(graph, calib, quantize_kwargs)
    _check_io(graph)
    check_supported(graph)
    verify(graph)
    calls: dict[str, KernelCall | None] = {op.name: lower_op(graph, op, tgt.features, variant)
                                           for op in graph.ops}

    kernel_names = sorted({c.kernel for c in calls.values() if c is not None})
    choices = [library.choose(k, tgt.features, variant) for k in kernel_names]
    variants = {c.kernel: c.variant for c in choices}
    plan = plan_arena(graph, reverse_rows=reverse_rows)
    model = generate(graph, plan, calls, variants, name=graph.name, target=tgt.name)

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable_folder(out_dir, "manifest.json", MANIFEST_FORMAT, "edgekit C model")
    stage = Path(tempfile.mkdtemp(prefix=".edgekit-c-", dir=out_dir.parent))
    try:
        (stage / "model.c").write_text(model.model_c)
        (stage / "model.h").write_text(model.model_h)
        files = library.copy_kernels(choices, stage)
        sources = ["model.c", *files["sources"]]
        (stage / "manifest.json").write_text(json.dumps({"build": {"sources": sources}}))

        sizes = None
        if measure is None:
            measure = _tools_present(tgt)
        if measure:
            with tempfile.TemporaryDirectory() as tmp:
                sizes = build.measure(stage, tgt, Path(tmp))
        by_kind = model.bytes_by_kind()
        weights = sum(by_kind.get(k, 0) for k in ("weights", "bias", "constant"))
        if sizes is not None:
            code = sizes.text + sizes.data
            constants = max(sizes.weights + sizes.rodata - weights, 0)
            stack = sizes.stack + STACK_MARGIN
        else:
            code = sum(CODE_ESTIMATE.get((c.kernel, c.variant), CODE_ESTIMATE.get(c.kernel, 500))
                       for c in choices) + CALL_BYTES * len(graph.ops) + 64
            constants = sum(by_kind.get(k, 0) for k in ("multiplier", "shift", "table", "params"))
            stack = DEFAULT_STACK
        fit = check_fit(tgt, code=code, weights=weights, constants=constants,
                        arena=plan.arena_bytes, stack=stack, flash=flash_b, sram=sram_b,
                        scratch=_scratch_bytes(calls))
        if not fit.fits:
            raise FitError(graph.name, fit)
        flash_info = {"code": code, "weights": weights, "constants": constants,
                      "total": code + weights + constants, "measured": sizes is not None}
        manifest = _manifest(graph, tgt, variant, choices, calls, plan, model, flash_info, stack,
                             fit, files, sources, sizes)
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1))
        write_reports(stage, build_report(manifest, plan.timeline()))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        stage.rename(out_dir)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    written = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())
    return CompileResult(out_dir, tgt.name, variant, plan.arena_bytes, stack, flash_info, fit,
                         manifest["kernels"], manifest["ops"], plan, manifest, written, sizes)


def _scratch_bytes(calls) -> int:
    """The packed kernels' work buffer: the largest any call needs (codegen's ek_scratch)."""
    from edgekit.backends.c.packed import Scratch

    sizes = [a.nbytes for c in calls.values() if c is not None for a in c.args if isinstance(a, Scratch)]
    return (max(sizes, default=0) + 3) // 4 * 4


def _tools_present(tgt: Target) -> bool:
    try:
        build.tool(tgt.toolchain.cc)
        build.size_tool(tgt.toolchain.cc)
    except build.ToolMissingError:
        return False
    return True


def _manifest(graph, tgt, variant, choices, calls, plan, model, flash_info, stack, fit, files,
              sources, sizes) -> dict:
    ops_by_name = {op.name: op for op in graph.ops}
    weight_by_op: dict[str, int] = {}
    for s in model.symbols:
        if s.kind in ("weights", "bias", "constant"):
            weight_by_op[s.op] = weight_by_op.get(s.op, 0) + s.nbytes
    inplace = {o.op: o.input for o in plan.overlaps}
    ops = []
    macs_total = 0
    for idx, name in enumerate(plan.order):
        op = ops_by_name[name]
        call = calls[name]
        attrs = normalize_attrs(op.type, op.attrs)
        in_shapes = [graph.tensor(i).shape if i else None for i in op.inputs]
        out_t = graph.tensor(op.outputs[0])
        macs = op_macs(op.type, in_shapes, [out_t.shape], attrs)
        macs_total += macs
        ops.append({
            "index": idx, "name": name, "type": op.type.value,
            "kernel": call.kernel if call else None, "function": call.function if call else None,
            "variant": next((c.variant for c in choices if call and c.kernel == call.kernel), None),
            "output": out_t.name, "output_shape": list(out_t.shape), "output_bytes": out_t.nbytes,
            "offset": plan.offsets.get(out_t.name, 0), "inplace_of": inplace.get(name),
            "macs": int(macs), "weight_bytes": weight_by_op.get(name, 0),
        })
    placement = {p.name: p.region for p in fit.parts}
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "model": graph.name, "source_format": graph.metadata.get("source_format"),
        "target": tgt.name, "cpu": tgt.cpu, "features": sorted(tgt.features),
        "variant": variant,
        "kernels": [{"kernel": c.kernel, "function": c.function, "variant": c.variant,
                     "sources": [f"kernels/{Path(s).name}" for s in c.sources]} for c in choices],
        "ops": ops, "macs": macs_total,
        "io": {k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in v.items()}
               for k, v in model.io.items()},
        "arena_bytes": plan.arena_bytes, "stack_bytes": stack, "flash": flash_info,
        "sections": {"weights": WEIGHTS_SECTION, "arena": ARENA_SECTION},
        "placement": placement, "fit": fit.to_dict(),
        "plan": {
            "strategy": plan.strategy, "order_source": plan.order_source,
            "lower_bound_bytes": plan.lower_bound_bytes, "naive_bytes": plan.naive_bytes,
            "optimal": plan.optimal, "alignment": plan.alignment, "order": plan.order,
            "no_share_ops": sorted(t.value for t in NO_SHARE),
            "buffers": [{"names": list(b.names), "offset": b.offset, "size": b.size,
                         "nbytes": b.nbytes, "first": b.first, "last": b.last, "kind": b.kind,
                         "inplace_of": b.inplace_of} for b in plan.buffers],
            "overlaps": [o.__dict__ for o in plan.overlaps],
        },
        "build": {"sources": sources, "headers": files["headers"], "include_dirs": ["."],
                  "cflags": list(build.WARNINGS) + list(build.OPT),
                  "target_cflags": list(tgt.toolchain.cflags)},
        "object_sizes": sizes.to_dict() if sizes is not None else None,
        "constants": {k: int(v) for k, v in model.bytes_by_kind().items()},
    }
