"""C lowering of the data-movement ops (called from ``params._Lowering.lower``).

- SQUEEZE, EXPAND_DIMS: no kernel, like RESHAPE (the planner aliases the bytes);
- SLICE, STRIDED_SLICE: ``ek_slice_s8`` (rank <= 4; begin/stride/size per dimension);
- SPLIT, UNPACK: ``ek_split_s8``, one call writing every output (an output pointer list);
- PACK: ``ek_concatenation_s8`` (each input is one slice of the packed axis);
- GATHER: ``ek_gather_s8`` with constant indices (checked against the axis here);
- DEPTH_TO_SPACE, SPACE_TO_DEPTH: their own kernels (NHWC);
- CAST: ``ek_cast_s8_f32`` / ``ek_cast_f32_s8`` (int8 <-> float32; the arena holds no
  other element types).

int8 operands must share one quantization (the kernels copy raw bytes, as TFLite Micro's).
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.c.params import ConstArray, PointerList, Struct, TensorRef, as4d, dims4
from edgekit.ir.dtypes import DType
from edgekit.ir.ops import OpType
from edgekit.ir.shapes_movement import gather_indices_in_range

ALIAS_OPS = frozenset({OpType.SQUEEZE, OpType.EXPAND_DIMS})


def _check_shared(low, tensors) -> None:
    q0 = low.per_tensor(tensors[0])
    for t in tensors[1:]:
        q = low.per_tensor(t)
        if np.float32(q.scale[0]) != np.float32(q0.scale[0]) or q.zero_point[0] != q0.zero_point[0]:
            raise low.unsupported(f"tensor {t.name!r} is quantized unlike {tensors[0].name!r} (the kernel "
                                  "copies raw bytes)")


def _outer_inner(shape, axis: int) -> tuple[int, int]:
    return (int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis + 1:], dtype=np.int64)))


def lower_movement(low):
    op, a = low.op, low.attrs
    t = op.type
    if t in ALIAS_OPS:
        return None
    if t is OpType.CAST:
        return _cast(low)
    x = low.int8(low.t(0), "input")
    outs = [low.int8(low.g.tensor(o), "output") for o in op.outputs]
    ins = [low.int8(low.t(i), "input") for i in range(len(op.inputs))] if t is OpType.PACK else [x]
    _check_shared(low, ins + outs)
    if t in (OpType.SLICE, OpType.STRIDED_SLICE):
        low.rank_le4(x)
        k = 4 - len(x.shape)
        begin = [0] * k + [int(v) for v in a["begin"]]
        if t is OpType.SLICE:
            stride = [1] * 4
            size = [1] * k + [int(v) for v in a["size"]]
        else:
            stride = [1] * k + [int(v) for v in a["strides"]]
            size = [1] * k + [len(range(b, e, s)) for b, e, s in zip(a["begin"], a["end"], a["strides"])]
        struct = Struct("ek_slice_params", {"begin": begin, "stride": stride, "size": size})
        return low.call("slice", "ek_slice_s8", [struct, dims4(as4d(x.shape)), low.operand(x), low.output()])
    if t in (OpType.SPLIT, OpType.UNPACK):
        axis = a["axis"]
        sizes = list(a["sizes"]) if t is OpType.SPLIT else [1] * x.shape[axis]
        outer, inner = _outer_inner(x.shape, axis)
        targets = PointerList([TensorRef(o.name, output=True) for o in outs], output=True)
        return low.call("split", "ek_split_s8", [
            len(outs), targets, ConstArray("int32_t", np.array(sizes, np.int32), "table"), outer, inner,
            low.operand(x)])
    if t is OpType.PACK:
        outer, inner = _outer_inner(outs[0].shape, a["axis"])
        return low.call("concatenation", "ek_concatenation_s8", [
            len(ins), PointerList([low.operand(i) for i in ins]),
            ConstArray("int32_t", np.ones(len(ins), np.int32), "table"), outer, inner, low.output()])
    if t is OpType.GATHER:
        idx_t = low.t(1)
        if not idx_t.is_const:
            raise low.unsupported("GATHER needs constant indices on an MCU")
        axis, bd = a["axis"], a["batch_dims"]
        indices = np.asarray(idx_t.data).astype(np.int64)
        if not gather_indices_in_range(indices, x.shape[axis]):
            raise low.unsupported(f"gather indices outside 0..{x.shape[axis] - 1}")
        batch = int(np.prod(x.shape[:bd], dtype=np.int64))
        outer = int(np.prod(x.shape[bd:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
        per_batch = int(indices.size // max(batch, 1)) if batch else 0
        struct = Struct("ek_gather_params", {"batch_size": batch, "outer_size": outer, "axis_size": x.shape[axis],
                                             "inner_size": inner, "num_indices": per_batch})
        return low.call("gather", "ek_gather_s8", [
            struct, ConstArray("int32_t", indices.astype(np.int32).ravel(), "table", idx_t.name),
            low.operand(x), low.output()])
    if t in (OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH):
        low.require_4d(x)
        name = t.value.lower()
        return low.call(name, f"ek_{name}_s8", [dims4(x.shape), int(a["block_size"]), low.operand(x),
                                                low.output()])
    raise low.unsupported("no MCU kernel for this operator")  # pragma: no cover


def _cast(low):
    x, y = low.t(0), low.out
    if x.dtype is DType.INT8 and y.dtype is DType.FLOAT32:
        return low.call("cast_s8_f32", "ek_cast_s8_f32", [x.size, low.operand(x), low.output("float")])
    if x.dtype is DType.FLOAT32 and y.dtype is DType.INT8:
        return low.call("cast_f32_s8", "ek_cast_f32_s8", [x.size, low.operand(x, "float"), low.output()])
    raise low.unsupported(f"CAST from {x.dtype.value} to {y.dtype.value}: the MCU kernels cast between "
                          "int8 and float32 only")
