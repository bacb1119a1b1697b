"""Shape rules of the data-movement ops (SLICE ... CAST): called by ``infer_op_shapes``.

IR conventions these rules check (the importers resolve their sources' spellings):

- axes are non-negative and below the rank (EXPAND_DIMS: at most the rank);
- SLICE: ``begin`` and ``size`` have one value per axis, with ``begin + size`` inside the
  dimension (no -1: importers resolve it);
- STRIDED_SLICE: ``begin``/``end``/``strides`` per axis, resolved like Python's
  ``range(begin, end, stride)``: ``0 <= begin < dim`` unless the range is empty, ``end``
  in ``[-1, dim]`` (-1 only with a negative stride: "through index 0"), stride not 0;
  masks other than ``shrink_axis_mask`` are resolved away by the importers. An axis in
  ``shrink_axis_mask`` must select exactly one element and is dropped from the output;
- SPLIT: ``sizes`` add up to the dimension of ``axis``; one output per size;
- UNPACK: one output per index of ``axis``, the axis dropped;
- GATHER: output ``x[:axis] + indices[batch_dims:] + x[axis + 1:]``, ``batch_dims <= axis``
  and the first ``batch_dims`` dimensions of input and indices equal;
- DEPTH_TO_SPACE / SPACE_TO_DEPTH: NHWC with TFLite's (DCR) element order.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.ops import OpType

MOVEMENT_OPS = frozenset({
    OpType.SLICE, OpType.STRIDED_SLICE, OpType.SPLIT, OpType.SQUEEZE, OpType.EXPAND_DIMS,
    OpType.GATHER, OpType.PACK, OpType.UNPACK, OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH,
    OpType.CAST,
})


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    if not 0 <= axis < rank:
        raise ValueError(f"{what} {axis} is out of range for rank {rank}")
    return axis


def _per_axis(values, rank: int, what: str) -> list[int]:
    if len(values) != rank:
        raise ValueError(f"{what} has {len(values)} values, needs {rank} (one per axis)")
    return [int(v) for v in values]


def strided_range(begin: int, end: int, stride: int, dim: int) -> range:
    """The indices one axis of a (resolved) STRIDED_SLICE selects; ValueError when out of range."""
    if stride == 0:
        raise ValueError("a stride of 0")
    r = range(begin, end, stride)
    if len(r) and not (0 <= r[0] < dim and 0 <= r[-1] < dim):
        raise ValueError(f"range({begin}, {end}, {stride}) leaves the dimension of size {dim}")
    return r


def movement_shapes(op_type: OpType, in_shapes, attrs: dict) -> list[tuple[int, ...]]:
    x = tuple(in_shapes[0])
    rank = len(x)
    if op_type is OpType.SLICE:
        begin = _per_axis(attrs["begin"], rank, "begin")
        size = _per_axis(attrs["size"], rank, "size")
        for i, (b, s, d) in enumerate(zip(begin, size, x)):
            if b < 0 or s < 0 or b + s > d:
                raise ValueError(f"axis {i}: begin {b} size {s} leave the dimension of size {d}")
        return [tuple(size)]
    if op_type is OpType.STRIDED_SLICE:
        begin = _per_axis(attrs["begin"], rank, "begin")
        end = _per_axis(attrs["end"], rank, "end")
        strides = _per_axis(attrs["strides"], rank, "strides")
        shrink = attrs["shrink_axis_mask"]
        if shrink < 0 or shrink >> rank:
            raise ValueError(f"shrink_axis_mask {shrink} names axes beyond rank {rank}")
        out = []
        for i in range(rank):
            try:
                n = len(strided_range(begin[i], end[i], strides[i], x[i]))
            except ValueError as exc:
                raise ValueError(f"axis {i}: {exc}") from None
            if shrink >> i & 1:
                if n != 1:
                    raise ValueError(f"axis {i} is in shrink_axis_mask but selects {n} elements")
                continue
            out.append(n)
        return [tuple(out)]
    if op_type is OpType.SPLIT:
        axis = _axis(attrs["axis"], rank)
        sizes = [int(s) for s in attrs["sizes"]]
        if not sizes or any(s < 0 for s in sizes) or sum(sizes) != x[axis]:
            raise ValueError(f"split sizes {sizes} do not add up to dimension {x[axis]} of axis {axis}")
        return [x[:axis] + (s,) + x[axis + 1:] for s in sizes]
    if op_type is OpType.UNPACK:
        axis = _axis(attrs["axis"], rank)
        if x[axis] < 1:
            raise ValueError(f"cannot unpack an empty axis {axis}")
        return [x[:axis] + x[axis + 1:]] * x[axis]
    if op_type is OpType.SQUEEZE:
        axes = sorted({_axis(int(a), rank) for a in attrs["axes"]})
        for a in axes:
            if x[a] != 1:
                raise ValueError(f"cannot squeeze axis {a} of size {x[a]}")
        return [tuple(d for i, d in enumerate(x) if i not in axes)]
    if op_type is OpType.EXPAND_DIMS:
        axis = attrs["axis"]
        if not 0 <= axis <= rank:
            raise ValueError(f"axis {axis} is out of range for rank {rank} (0..{rank})")
        return [x[:axis] + (1,) + x[axis:]]
    if op_type is OpType.GATHER:
        idx = tuple(in_shapes[1])
        axis = _axis(attrs["axis"], rank)
        bd = attrs["batch_dims"]
        if not 0 <= bd <= min(axis, len(idx)):
            raise ValueError(f"batch_dims {bd} must be in 0..min(axis {axis}, indices rank {len(idx)})")
        if x[:bd] != idx[:bd]:
            raise ValueError(f"the first {bd} dimensions of input {list(x)} and indices {list(idx)} differ")
        return [x[:axis] + idx[bd:] + x[axis + 1:]]
    if op_type is OpType.PACK:
        axis = attrs["axis"]
        if not 0 <= axis <= rank:
            raise ValueError(f"axis {axis} is out of range for rank {rank} (0..{rank})")
        for s in in_shapes[1:]:
            if tuple(s) != x:
                raise ValueError(f"cannot pack {list(s)} with {list(x)}: shapes differ")
        return [x[:axis] + (len(in_shapes),) + x[axis:]]
    if op_type in (OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH):
        b = attrs["block_size"]
        if rank != 4:
            raise ValueError(f"expects a 4-D NHWC input, got {list(x)}")
        if b < 1:
            raise ValueError(f"block_size {b} must be at least 1")
        n, h, w, c = x
        if op_type is OpType.DEPTH_TO_SPACE:
            if c % (b * b):
                raise ValueError(f"{c} channels are not a multiple of block_size^2 = {b * b}")
            return [(n, h * b, w * b, c // (b * b))]
        if h % b or w % b:
            raise ValueError(f"height {h} and width {w} must be multiples of block_size {b}")
        return [(n, h // b, w // b, c * b * b)]
    if op_type is OpType.CAST:
        return [x]
    raise ValueError(f"no shape rule for {op_type.value}")


def gather_indices_in_range(indices: np.ndarray, dim: int) -> bool:
    return bool(indices.size == 0 or (indices.min() >= 0 and indices.max() < dim))
