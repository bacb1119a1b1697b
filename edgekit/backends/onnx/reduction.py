"""ONNX lowering of REDUCE_MAX, SUM, ARG_MAX, ARG_MIN, L2_NORMALIZATION and BATCH_MATMUL
(called from ``writer._Writer.emit``).

Each op is computed in the IR's axis order: a 4-D input (NCHW inside the written graph)
is transposed back to NHWC first and a 4-D result transposed to NCHW again
(onnxruntime's optimizer removes pairs that cancel). int8 ops read their inputs through
DequantizeLinear and the writer requantizes the result (QDQ), as for every other op.

- REDUCE_MAX / SUM: ReduceMax / ReduceSum (axes as an input from opset 18 / 13);
- ARG_MAX / ARG_MIN: ArgMax / ArgMin (int64) then Cast to the IR's int32;
- L2_NORMALIZATION: x / max(sqrt(ReduceSumSquare(x)), 1e-6) over the last axis, TFLite's
  rule (ONNX's LpNormalization has no epsilon);
- BATCH_MATMUL: MatMul, with a Transpose of the last two axes for adj_x / adj_y.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Op
from edgekit.ir.ops import OpType

TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)
REDUCTION_OPS = (OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN, OpType.L2_NORMALIZATION,
                 OpType.BATCH_MATMUL)
L2_EPSILON = np.float32(1e-6)


def _ir_order(w, name: str) -> str:
    """The float value of IR tensor ``name`` in the IR's axis order."""
    x = w.f(name)
    return w.node("Transpose", [x], perm=list(TO_NHWC)) if w.g.tensor(name).rank == 4 else x


def _to_onnx_layout(w, y: str, rank: int) -> str:
    return w.node("Transpose", [y], perm=list(TO_NCHW)) if rank == 4 else y


def emit_reduction(w, op: Op, a: dict) -> str:
    """The ONNX value of ``op``'s result (float32, or int32 for the index ops)."""
    g = w.g
    out_rank = g.tensor(op.outputs[0]).rank
    x = _ir_order(w, op.inputs[0])
    t = op.type
    if t in (OpType.REDUCE_MAX, OpType.SUM):
        axes = sorted(int(v) for v in a["axes"])
        typ = "ReduceMax" if t is OpType.REDUCE_MAX else "ReduceSum"
        keep = int(a["keep_dims"])
        if not axes:
            y = w.node("Identity", [x])
        elif w.opset >= (18 if t is OpType.REDUCE_MAX else 13):
            y = w.node(typ, [x, w.ints(axes, "axes")], keepdims=keep)
        else:
            y = w.node(typ, [x], axes=axes, keepdims=keep)
        return _to_onnx_layout(w, y, out_rank)
    if t in (OpType.ARG_MAX, OpType.ARG_MIN):
        y = w.node("ArgMax" if t is OpType.ARG_MAX else "ArgMin", [x], axis=int(a["axis"]), keepdims=0)
        y = w.node("Cast", [y], to=6)  # INT32
        return _to_onnx_layout(w, y, out_rank)
    if t is OpType.L2_NORMALIZATION:
        rank = g.tensor(op.inputs[0]).rank
        last = [rank - 1]
        if w.opset >= 18:
            ss = w.node("ReduceSumSquare", [x, w.ints(last, "axes")], keepdims=1)
        else:
            ss = w.node("ReduceSumSquare", [x], axes=last, keepdims=1)
        norm = w.node("Max", [w.node("Sqrt", [ss]), w.scalar(L2_EPSILON, np.float32, "l2_epsilon")])
        return _to_onnx_layout(w, w.node("Div", [x, norm]), out_rank)
    # BATCH_MATMUL
    b = _ir_order(w, op.inputs[1])
    for flag, name in (("adj_x", "x"), ("adj_y", "b")):
        if a[flag]:
            src = x if name == "x" else b
            r = g.tensor(op.inputs[0 if name == "x" else 1]).rank
            perm = list(range(r - 2)) + [r - 1, r - 2]
            moved = w.node("Transpose", [src], perm=perm)
            if name == "x":
                x = moved
            else:
                b = moved
    return _to_onnx_layout(w, w.node("MatMul", [x, b]), out_rank)


def index_output(op: Op, dtype: DType) -> bool:
    """Whether ``op`` writes int32 indices (allowed by the writer besides float32/int8)."""
    return op.type in (OpType.ARG_MAX, OpType.ARG_MIN) and dtype is DType.INT32
