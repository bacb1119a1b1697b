"""The IR verifier: checked between pipeline stages.

It collects every problem it finds (up to a limit) and raises one VerifyError
that names the op, the tensor and what is wrong.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import VerifyError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OP_DEFS, OpType, normalize_attrs
from edgekit.ir.shapes import infer_op_shapes
from edgekit.ir.shapes_movement import MOVEMENT_OPS
from edgekit.ir.movement_types import check_movement_types

_WEIGHTED = {OpType.CONV_2D: 0, OpType.DEPTHWISE_CONV_2D: 3, OpType.FULLY_CONNECTED: 0}
# Fixed output quantization TFLite Micro requires for int8 outputs of these ops.
_FIXED_OUT_QUANT = {OpType.SOFTMAX: (1 / 256, -128), OpType.LOGISTIC: (1 / 256, -128),
                    OpType.TANH: (1 / 128, 0)}


def infer_shapes(graph: Graph) -> None:
    """Recompute every op output's shape from the graph inputs, in op order."""
    for op in graph.ops:
        shapes = _input_shapes(graph, op)
        try:
            out = infer_op_shapes(op.type, shapes, normalize_attrs(op.type, op.attrs))
        except ValueError as exc:
            raise VerifyError(f"op {op.name!r} ({op.type.value}): {exc}") from None
        for name, shape in zip(op.outputs, out):
            graph.tensor(name).shape = tuple(shape)


def _input_shapes(graph: Graph, op: Op):
    return [graph.tensor(i).shape if i else None for i in op.inputs]


def verify(graph: Graph, max_problems: int = 20) -> None:
    problems: list[str] = []

    def bad(msg: str) -> None:
        problems.append(msg)

    names = set(graph.tensors)
    for n in graph.inputs + graph.outputs:
        if n not in names:
            bad(f"graph input/output {n!r} is not a tensor")
    produced: dict[str, str] = {}
    available = set(graph.inputs) | {n for n, t in graph.tensors.items() if t.is_const}
    for n in graph.inputs:
        if graph.tensors.get(n) is not None and graph.tensors[n].is_const:
            bad(f"graph input {n!r} is a constant")
    for op in graph.ops:
        where = f"op {op.name!r} ({op.type.value})"
        for i in op.inputs:
            if not i:
                continue
            if i not in names:
                bad(f"{where}: input {i!r} does not exist")
            elif i not in available:
                bad(f"{where}: input {i!r} is used before it is produced (ops out of order)")
        for o in op.outputs:
            if o not in names:
                bad(f"{where}: output {o!r} does not exist")
            elif o in produced:
                bad(f"{where}: output {o!r} is also produced by op {produced[o]!r}")
            elif o in graph.inputs or graph.tensors[o].is_const:
                bad(f"{where}: output {o!r} is a graph input or constant")
            produced[o] = op.name
        available.update(op.outputs)
        if any(i and i not in names for i in op.inputs + op.outputs):
            continue
        _check_op(graph, op, where, bad)
        if len(problems) >= max_problems:
            break
    for n in graph.outputs:
        if n in names and n not in available:
            bad(f"graph output {n!r} is never produced")
    if problems:
        more = "" if len(problems) < max_problems else f"\n  (stopped after {max_problems} problems)"
        raise VerifyError(f"graph {graph.name!r} is invalid:\n  " + "\n  ".join(problems) + more)


def _check_op(graph: Graph, op: Op, where: str, bad) -> None:
    d = OP_DEFS[op.type]
    n_in = len(op.inputs)
    if d.variadic:
        if n_in < 1:
            bad(f"{where}: needs at least one input")
            return
    elif n_in < d.min_inputs or n_in > len(d.inputs):
        bad(f"{where}: takes {d.min_inputs}..{len(d.inputs)} inputs, got {n_in}")
        return
    if any(not op.inputs[i] for i in range(d.min_inputs if not d.variadic else n_in)):
        bad(f"{where}: a required input is missing")
        return
    if d.variadic_outputs:
        if not op.outputs:
            bad(f"{where}: needs at least one output")
            return
    elif len(op.outputs) != d.num_outputs:
        bad(f"{where}: has {len(op.outputs)} outputs, expected {d.num_outputs}")
        return
    try:
        attrs = normalize_attrs(op.type, op.attrs)
    except ValueError as exc:
        bad(f"{where}: {exc}")
        return
    try:
        shapes = infer_op_shapes(op.type, _input_shapes(graph, op), attrs)
    except ValueError as exc:
        bad(f"{where}: {exc}")
        return
    for name, shape in zip(op.outputs, shapes):
        declared = graph.tensor(name).shape
        if tuple(declared) != tuple(shape):
            bad(f"{where}: output {name!r} is declared {list(declared)} but the op produces {list(shape)}")
    _check_types(graph, op, where, bad)


def _check_types(graph: Graph, op: Op, where: str, bad) -> None:
    x = graph.tensor(op.inputs[0])
    out = graph.tensor(op.outputs[0])
    t = op.type
    for name in op.inputs + op.outputs:
        if not name:
            continue
        tensor = graph.tensor(name)
        q = tensor.quant
        if q is not None:
            if any(not np.isfinite(s) or s <= 0 for s in q.scale):
                bad(f"{where}: tensor {name!r} has a non-positive or non-finite scale")
            if q.axis is not None:
                if not (0 <= q.axis < max(tensor.rank, 1)):
                    bad(f"{where}: tensor {name!r} quantization axis {q.axis} out of range")
                elif tensor.rank and len(q.scale) != tensor.shape[q.axis]:
                    bad(f"{where}: tensor {name!r} has {len(q.scale)} scales for "
                        f"{tensor.shape[q.axis]} channels on axis {q.axis}")
            if tensor.dtype in (DType.INT8, DType.INT16):
                lo, hi = (-128, 127) if tensor.dtype is DType.INT8 else (-32768, 32767)
                if any(z < lo or z > hi for z in q.zero_point):
                    bad(f"{where}: tensor {name!r} zero point outside the {tensor.dtype.value} range")
        elif tensor.dtype in (DType.INT8, DType.INT16) and t not in (OpType.RESHAPE, OpType.TRANSPOSE):
            bad(f"{where}: {tensor.dtype.value} tensor {name!r} has no quantization parameters")

    if t is OpType.QUANTIZE:
        if out.dtype not in (DType.INT8, DType.INT16):
            bad(f"{where}: output must be int8 or int16, is {out.dtype.value}")
        return
    if t is OpType.DEQUANTIZE:
        if out.dtype is not DType.FLOAT32 or x.dtype not in (DType.INT8, DType.INT16):
            bad(f"{where}: converts int8/int16 to float32, got {x.dtype.value} -> {out.dtype.value}")
        return
    if t in MOVEMENT_OPS:
        check_movement_types(graph, op, where, bad)
        return
    if t is OpType.BATCH_NORM and x.dtype is not DType.FLOAT32:
        bad(f"{where}: BATCH_NORM is float only; fold it into the conv before quantizing")
        return

    if t in _WEIGHTED:
        w = graph.tensor(op.inputs[1])
        b = graph.tensor(op.inputs[2]) if op.input(2) else None
        if x.dtype is DType.FLOAT32:
            if out.dtype is not DType.FLOAT32:
                bad(f"{where}: float input but {out.dtype.value} output")
            if w.dtype not in (DType.FLOAT32, DType.INT8):
                bad(f"{where}: weights must be float32 (or int8 for a hybrid op), are {w.dtype.value}")
            if b is not None and b.dtype is not DType.FLOAT32:
                bad(f"{where}: float op with {b.dtype.value} bias")
            return
        if x.dtype is DType.INT8:
            if out.dtype is not DType.INT8 or w.dtype is not DType.INT8:
                bad(f"{where}: int8 op needs int8 weights and output, got {w.dtype.value}/{out.dtype.value}")
                return
            if w.quant is not None and w.quant.axis is not None and w.quant.axis != _WEIGHTED[t]:
                bad(f"{where}: per-channel weight scales must be on axis {_WEIGHTED[t]}, are on {w.quant.axis}")
            if w.quant is not None and any(z != 0 for z in w.quant.zero_point):
                bad(f"{where}: int8 weights must be symmetric (zero point 0)")
            if b is not None:
                if b.dtype is not DType.INT32:
                    bad(f"{where}: int8 op needs an int32 bias, got {b.dtype.value}")
                elif b.quant is not None and x.quant is not None and w.quant is not None:
                    expect = np.float64(x.quant.scale[0]) * w.quant.scales.astype(np.float64)
                    got = b.quant.scales.astype(np.float64)
                    if got.size not in (1, expect.size) or not np.allclose(got, expect, rtol=1e-4):
                        bad(f"{where}: bias scale must be input_scale * weight_scale")
            return
        bad(f"{where}: unsupported input type {x.dtype.value}")
        return

    if t in (OpType.ARG_MAX, OpType.ARG_MIN):
        if out.dtype is not DType.INT32:
            bad(f"{where}: the output holds indices and must be int32, is {out.dtype.value}")
        if x.dtype not in (DType.FLOAT32, DType.INT8):
            bad(f"{where}: input must be float32 or int8, is {x.dtype.value}")
        return

    # Everything else: inputs and output share one element type.
    for name in op.inputs[: (len(op.inputs) if t in (OpType.ADD, OpType.SUB, OpType.MUL, OpType.CONCATENATION) else 1)]:
        if name and graph.tensor(name).dtype is not out.dtype:
            bad(f"{where}: input {name!r} is {graph.tensor(name).dtype.value} but output is {out.dtype.value}")
    if out.dtype is DType.INT8:
        if out.quant is None or not out.quant.is_per_tensor:
            bad(f"{where}: int8 activations need per-tensor quantization")
        if t in _FIXED_OUT_QUANT and out.quant is not None:
            scale, zp = _FIXED_OUT_QUANT[t]
            if abs(out.quant.scale[0] - scale) > 1e-9 or out.quant.zero_point[0] != zp:
                bad(f"{where}: int8 output must have scale {scale:g} and zero point {zp} (TFLite int8 spec)")
        if t in (OpType.MAX_POOL_2D, OpType.RESHAPE, OpType.TRANSPOSE, OpType.PAD, OpType.CONCATENATION) \
                and x.quant is not None and out.quant is not None and x.quant != out.quant:
            bad(f"{where}: input and output must share quantization parameters")
    elif out.dtype not in (DType.FLOAT32, DType.INT16, DType.INT32, DType.INT64):
        bad(f"{where}: unsupported element type {out.dtype.value}")
