"""Shape rules and MACs of the elementwise ops (HARD_SWISH ... SQUARED_DIFFERENCE)."""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from edgekit.ir.ops import OpType

Shape = Tuple[int, ...]

UNARY_OPS = frozenset({OpType.HARD_SWISH, OpType.LEAKY_RELU, OpType.ABS, OpType.NEG, OpType.EXP, OpType.LOG,
                       OpType.SQRT, OpType.RSQRT, OpType.GELU})
BINARY_OPS = frozenset({OpType.MAXIMUM, OpType.MINIMUM, OpType.DIV, OpType.SQUARED_DIFFERENCE})
ELEMENTWISE_OPS = UNARY_OPS | BINARY_OPS | {OpType.PRELU}
MAX_BROADCAST_RANK = 5  # TFLite Micro's broadcast walks (4-D, 5-D for some ops)


def _broadcast(a: Shape, b: Shape) -> Shape:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(tuple(a), tuple(b)))
    except ValueError:
        raise ValueError(f"shapes {list(a)} and {list(b)} do not broadcast") from None


def elementwise_shapes(op_type: OpType, in_shapes: List[Optional[Shape]], attrs: dict) -> List[Shape]:
    x = tuple(in_shapes[0])
    if op_type in UNARY_OPS:
        return [x]
    other = tuple(in_shapes[1])
    out = _broadcast(x, other)
    if len(out) > MAX_BROADCAST_RANK:
        raise ValueError(f"broadcasting is supported up to rank {MAX_BROADCAST_RANK}, got {list(out)}")
    if op_type is OpType.PRELU and out != x:
        raise ValueError(f"alpha {list(other)} must broadcast to the input {list(x)}, not widen it")
    return [out]


def elementwise_macs(op_type: OpType, out_shapes: List[Shape]) -> int:
    """One multiply per output for the ops that multiply (as MUL counts)."""
    if op_type in (OpType.PRELU, OpType.SQUARED_DIFFERENCE, OpType.HARD_SWISH, OpType.LEAKY_RELU):
        return int(np.prod(out_shapes[0]))
    return 0
