"""Shape rules and MACs of the reductions, L2 normalization and the batched matrix
product (REDUCE_MAX, SUM, ARG_MAX, ARG_MIN, L2_NORMALIZATION, BATCH_MATMUL)."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from edgekit.ir.ops import OpType

Shape = Tuple[int, ...]

REDUCTION_OPS = frozenset({OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN,
                           OpType.L2_NORMALIZATION, OpType.BATCH_MATMUL})


def _check_axis(a: int, rank: int, what: str) -> int:
    if not 0 <= a < rank:
        raise ValueError(f"{what} {a} is out of range for rank {rank}")
    return a


def reduction_shapes(op_type: OpType, in_shapes: list, attrs: dict) -> list[Shape]:
    x = tuple(in_shapes[0])
    if op_type in (OpType.REDUCE_MAX, OpType.SUM):
        axes = sorted({_check_axis(int(a), len(x), "axis") for a in attrs["axes"]})
        if op_type is OpType.REDUCE_MAX and any(x[a] == 0 for a in axes):
            raise ValueError(f"REDUCE_MAX over an empty axis of {list(x)}")
        if attrs["keep_dims"]:
            return [tuple(1 if i in axes else d for i, d in enumerate(x))]
        return [tuple(d for i, d in enumerate(x) if i not in axes)]
    if op_type in (OpType.ARG_MAX, OpType.ARG_MIN):
        a = _check_axis(int(attrs["axis"]), len(x), "axis")
        if x[a] == 0:
            raise ValueError(f"{op_type.value} over an empty axis of {list(x)}")
        return [x[:a] + x[a + 1:]]
    if op_type is OpType.L2_NORMALIZATION:
        if not x:
            raise ValueError("L2_NORMALIZATION needs an input of rank >= 1")
        return [x]
    if op_type is OpType.BATCH_MATMUL:
        return [matmul_shape(x, tuple(in_shapes[1]), attrs["adj_x"], attrs["adj_y"])]
    raise ValueError(f"no shape rule for {op_type.value}")


def matmul_shape(a: Shape, b: Shape, adj_x: bool, adj_y: bool) -> Shape:
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"BATCH_MATMUL needs operands of rank >= 2, got {list(a)} and {list(b)}")
    m, k = (a[-1], a[-2]) if adj_x else (a[-2], a[-1])
    k2, n = (b[-1], b[-2]) if adj_y else (b[-2], b[-1])
    if k != k2:
        raise ValueError(f"BATCH_MATMUL: inner dimensions differ ({list(a)} adj_x={adj_x}, "
                         f"{list(b)} adj_y={adj_y})")
    try:
        batch = tuple(np.broadcast_shapes(a[:-2], b[:-2]))
    except ValueError:
        raise ValueError(f"BATCH_MATMUL: batch dimensions {list(a[:-2])} and {list(b[:-2])} "
                         "do not broadcast") from None
    return batch + (m, n)


def reduction_macs(op_type: OpType, in_shapes: list, out_shapes: list, attrs: dict) -> int:
    if op_type is OpType.BATCH_MATMUL:
        a = in_shapes[0]
        k = a[-2] if attrs["adj_x"] else a[-1]
        return int(np.prod(out_shapes[0])) * int(k)
    if op_type is OpType.L2_NORMALIZATION:
        return 2 * int(np.prod(in_shapes[0]))  # the squares and the scaling
    return 0
