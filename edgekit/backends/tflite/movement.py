"""TFLite lowering of the data-movement ops (called from ``writer._lower_op``).

One builtin per IR op, with the shape-like operands as int32 constant tensors:

* SLICE -> SLICE (begin, size); STRIDED_SLICE -> STRIDED_SLICE with the resolved
  begin/end/strides and ``shrink_axis_mask``; an ``end`` of -1 (a negative stride running
  through index 0) is spelled with that axis' ``end_mask`` bit, since TFLite reads -1 as
  "the last index";
* SPLIT with equal sizes -> SPLIT (axis first), otherwise SPLIT_V; several outputs;
* SQUEEZE -> SQUEEZE (squeeze_dims), EXPAND_DIMS -> EXPAND_DIMS (axis tensor);
* GATHER, PACK, UNPACK, DEPTH_TO_SPACE, SPACE_TO_DEPTH, CAST -> the builtin of that name.

Operator versions are the ones the TFLite converter assigns for these types and options.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.tflite.schema_enums import BuiltinOperator, BuiltinOptions
from edgekit.ir import DType, Op, OpType



def _version(dtype: DType, int8: int = 2, int16: int = 1) -> int:
    return int8 if dtype is DType.INT8 else (int16 if dtype is DType.INT16 else 1)


def lower_movement(low, op: Op, a: dict) -> None:
    from edgekit.backends.tflite.writer import _TENSOR_TYPES

    g = low.g
    t = op.type
    x = op.inputs[0]
    xt = g.tensor(x)
    xdt = xt.dtype
    ins = [low.tensor(x)]
    outs = [low.tensor(o) for o in op.outputs]

    def i32(base: str, values) -> int:
        return low.const(f"{op.name}/{base}", np.asarray(values, np.int32), DType.INT32)

    if t is OpType.SLICE:
        low.emit(BuiltinOperator.SLICE, _version(xdt), ins + [i32("begin", a["begin"]), i32("size", a["size"])],
                 outs, BuiltinOptions.SliceOptions, [])
    elif t is OpType.STRIDED_SLICE:
        begin, end, strides = list(a["begin"]), list(a["end"]), list(a["strides"])
        end_mask = 0
        for i in range(len(end)):
            if a["shrink_axis_mask"] >> i & 1:  # TFLite takes begin only, and stops at begin + 1
                end[i], strides[i] = begin[i] + 1, 1
            elif end[i] < 0 and strides[i] < 0:
                end_mask |= 1 << i
                end[i] = 0
        opts = [(0, "i32", 0), (1, "i32", end_mask), (2, "i32", 0), (3, "i32", 0),
                (4, "i32", int(a["shrink_axis_mask"]))]
        version = 4 if xt.rank > 4 else _version(xdt)
        low.emit(BuiltinOperator.STRIDED_SLICE, version,
                 ins + [i32("begin", begin), i32("end", end), i32("strides", strides)],
                 outs, BuiltinOptions.StridedSliceOptions, opts)
    elif t is OpType.SPLIT:
        sizes = [int(s) for s in a["sizes"]]
        axis = i32("axis", np.array(a["axis"]))
        if len(set(sizes)) == 1:
            low.emit(BuiltinOperator.SPLIT, _version(xdt, 2, 3), [axis] + ins, outs,
                     BuiltinOptions.SplitOptions, [(0, "i32", len(sizes))])
        else:
            low.emit(BuiltinOperator.SPLIT_V, _version(xdt), ins + [i32("size_splits", sizes), axis], outs,
                     BuiltinOptions.SplitVOptions, [(0, "i32", len(sizes))])
    elif t is OpType.SQUEEZE:
        low.emit(BuiltinOperator.SQUEEZE, 1, ins, outs, BuiltinOptions.SqueezeOptions,
                 [(0, "ivec", [int(v) for v in a["axes"]])])
    elif t is OpType.EXPAND_DIMS:
        low.emit(BuiltinOperator.EXPAND_DIMS, 1, ins + [i32("axis", [a["axis"]])], outs,
                 BuiltinOptions.ExpandDimsOptions, [])
    elif t is OpType.GATHER:
        version = 5 if a["batch_dims"] else _version(xdt)
        low.emit(BuiltinOperator.GATHER, version, ins + [low.tensor(op.inputs[1])], outs,
                 BuiltinOptions.GatherOptions, [(0, "i32", a["axis"]), (1, "i32", a["batch_dims"])])
    elif t is OpType.PACK:
        low.emit(BuiltinOperator.PACK, _version(xdt), [low.tensor(i) for i in op.inputs], outs,
                 BuiltinOptions.PackOptions, [(0, "i32", len(op.inputs)), (1, "i32", a["axis"])])
    elif t is OpType.UNPACK:
        low.emit(BuiltinOperator.UNPACK, _version(xdt), ins, outs, BuiltinOptions.UnpackOptions,
                 [(0, "i32", len(op.outputs)), (1, "i32", a["axis"])])
    elif t is OpType.DEPTH_TO_SPACE:
        low.emit(BuiltinOperator.DEPTH_TO_SPACE, _version(xdt), ins, outs, BuiltinOptions.DepthToSpaceOptions,
                 [(0, "i32", a["block_size"])])
    elif t is OpType.SPACE_TO_DEPTH:
        low.emit(BuiltinOperator.SPACE_TO_DEPTH, _version(xdt), ins, outs, BuiltinOptions.SpaceToDepthOptions,
                 [(0, "i32", a["block_size"])])
    elif t is OpType.CAST:
        odt = g.tensor(op.outputs[0]).dtype
        low.emit(BuiltinOperator.CAST, 1, ins, outs, BuiltinOptions.CastOptions,
                 [(0, "i8", int(_TENSOR_TYPES[xdt])), (1, "i8", int(_TENSOR_TYPES[odt]))])
    else:  # pragma: no cover - the writer dispatches only these
        raise AssertionError(t)
