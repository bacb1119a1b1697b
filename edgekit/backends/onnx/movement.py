"""ONNX lowering of the data-movement ops (called from ``writer._Writer.emit``).

Each op is computed in the IR's axis order: a 4-D input (NCHW inside the written graph)
is transposed back to NHWC first, the op works on the IR's axes, and a 4-D result is
transposed to NCHW again (onnxruntime's optimizer removes the pairs that cancel). The
ops move stored values, so int8 tensors stay int8 (their quantization is shared,
``edgekit.ir.movement_types``), except DEPTH_TO_SPACE / SPACE_TO_DEPTH, which
onnxruntime runs on float only: those go through DequantizeLinear / QuantizeLinear with
the shared parameters (exact: each value returns to its own code).

- SLICE, STRIDED_SLICE: Slice (an end of -1 with a negative step is written as INT64_MIN,
  "through index 0"), shrunk axes removed by a Reshape;
- SPLIT: one Split node with several outputs; UNPACK: Split into ones, then Reshape;
- SQUEEZE, EXPAND_DIMS: Reshape; PACK: Unsqueeze of each input, then Concat;
- GATHER: Gather (``batch_dims`` 0 only: ONNX's Gather has none);
- CAST: Cast of the stored values.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Op
from edgekit.ir.ops import OpType

TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)
INT64_MIN = -(2 ** 63)
_ONNX_TYPES = {DType.FLOAT32: 1, DType.INT8: 3, DType.INT16: 5, DType.INT32: 6, DType.INT64: 7, DType.BOOL: 9}


def _in_ir_order(w, name: str, raw: bool = True) -> str:
    t = w.g.tensor(name)
    v = w.raw(name) if raw else w.f(name)
    if t.rank == 4:
        return w.node("Transpose", [v], perm=list(TO_NHWC))
    return v


def _to_onnx_layout(w, y: str, rank: int) -> str:
    return w.node("Transpose", [y], perm=list(TO_NCHW)) if rank == 4 else y


def _reshape(w, x: str, shape) -> str:
    shape = [int(d) for d in shape]
    if w.dynamic_batch and shape:
        shape[0] = -1
    return w.node("Reshape", [x, w.ints(shape, "shape")])


def emit_movement(w, op: Op, a: dict) -> None:
    """Write ``op`` and bind every output of it (``w.val``)."""
    g = w.g
    t = op.type
    start = len(w.nodes)
    x_t = g.tensor(op.inputs[0])
    outs = [g.tensor(o) for o in op.outputs]
    if any(o.dtype not in _ONNX_TYPES for o in outs) or x_t.dtype not in _ONNX_TYPES:
        raise w.unsupported(f"element type {x_t.dtype.value} has no ONNX equivalent here")
    int8 = x_t.dtype is DType.INT8
    results: list[str]

    if t in (OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH):
        x = w.f(op.inputs[0])  # NCHW float: ONNX's op works on NCHW, DCR order like TFLite
        kind = "DepthToSpace" if t is OpType.DEPTH_TO_SPACE else "SpaceToDepth"
        extra = {"mode": "DCR"} if t is OpType.DEPTH_TO_SPACE else {}
        y = w.node(kind, [x], blocksize=int(a["block_size"]), **extra)
        if int8:
            s, z, _ = w.qparams(outs[0], outs[0].name)
            y = w.node("QuantizeLinear", [y, s, z])
        results = [y]
    elif t is OpType.CAST:
        y = w.node("Cast", [_in_ir_order(w, op.inputs[0])], to=_ONNX_TYPES[outs[0].dtype])
        results = [_to_onnx_layout(w, y, outs[0].rank)]
    elif t in (OpType.SLICE, OpType.STRIDED_SLICE):
        x = _in_ir_order(w, op.inputs[0])
        rank = x_t.rank
        begin = list(a["begin"])
        if t is OpType.SLICE:
            end = [b + s for b, s in zip(begin, a["size"])]
            steps = [1] * rank
        else:
            end, steps = list(a["end"]), list(a["strides"])
            end = [INT64_MIN if e < 0 and s < 0 else e for e, s in zip(end, steps)]
        # Only the axes that are cut: the batch axis stays whole (dynamic_batch runs N samples).
        cut = [i for i in range(rank) if (begin[i], end[i], steps[i]) != (0, x_t.shape[i], 1)]
        if cut:
            y = w.node("Slice", [x, w.ints([begin[i] for i in cut], "starts"), w.ints([end[i] for i in cut], "ends"),
                                 w.ints(cut, "axes"), w.ints([steps[i] for i in cut], "steps")])
        else:
            y = w.node("Identity", [x])
        if t is OpType.STRIDED_SLICE and a["shrink_axis_mask"]:
            y = _reshape(w, y, outs[0].shape)
        results = [_to_onnx_layout(w, y, outs[0].rank)]
    elif t in (OpType.SPLIT, OpType.UNPACK):
        x = _in_ir_order(w, op.inputs[0])
        axis = a["axis"]
        sizes = list(a["sizes"]) if t is OpType.SPLIT else [1] * x_t.shape[axis]
        names = [w.fresh(f"{op.name}_part{k}") for k in range(len(sizes))]
        node_name = w.fresh(f"{op.name}/Split")
        w.nodes.append(w.helper.make_node("Split", [x, w.ints(sizes, "split")], names, name=node_name,
                                          axis=int(axis)))
        results = []
        for part, o in zip(names, outs):
            if t is OpType.UNPACK:
                part = _reshape(w, part, o.shape)
            results.append(_to_onnx_layout(w, part, o.rank))
    elif t in (OpType.SQUEEZE, OpType.EXPAND_DIMS):
        y = _reshape(w, _in_ir_order(w, op.inputs[0]), outs[0].shape)
        results = [_to_onnx_layout(w, y, outs[0].rank)]
    elif t is OpType.PACK:
        axis = int(a["axis"])
        parts = [w.node("Unsqueeze", [_in_ir_order(w, n), w.ints([axis], "axes")]) for n in op.inputs]
        y = w.node("Concat", parts, axis=axis) if len(parts) > 1 else w.node("Identity", parts)
        results = [_to_onnx_layout(w, y, outs[0].rank)]
    elif t is OpType.GATHER:
        if a["batch_dims"]:
            raise w.unsupported("GATHER with batch_dims > 0 (ONNX's Gather has no batch dimensions)")
        idx_t = g.tensor(op.inputs[1])
        if idx_t.is_const:
            idx = w.init(np.asarray(idx_t.data).astype(np.int64), f"{op.name}_indices")
        else:
            idx = _in_ir_order(w, op.inputs[1])
        y = w.node("Gather", [_in_ir_order(w, op.inputs[0]), idx], axis=int(a["axis"]))
        results = [_to_onnx_layout(w, y, outs[0].rank)]
    else:  # pragma: no cover - the writer dispatches only these
        raise w.unsupported("no ONNX lowering")

    for o, y in zip(outs, results):
        w.val[o.name] = w.finish(y, start, w.target.get(o.name, o.name))
