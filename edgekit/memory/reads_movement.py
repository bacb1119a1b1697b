"""Read maps of the data-movement ops for the planner's sharing rule (``lifetimes``).

Only SLICE and STRIDED_SLICE: their C kernel (``ek_slice_s8``) copies element by element
in output order, so it keeps the write contract (a slice that starts at its input's first
element runs in place; a negative stride reads ahead of what it writes and needs a
shift). SPLIT, GATHER, DEPTH_TO_SPACE and SPACE_TO_DEPTH copy rows with ``memcpy``, whose
source and destination must not overlap, and SPLIT has several outputs: they never share.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.ops import OpType

MOVEMENT_READ_OPS = frozenset({OpType.SLICE, OpType.STRIDED_SLICE})


def movement_read_map(t: OpType, in_shape, attrs: dict) -> np.ndarray:
    """The input element each output element reads, in output (row-major) order."""
    idx = np.arange(int(np.prod(in_shape, dtype=np.int64)), dtype=np.int64).reshape(in_shape)
    if t is OpType.SLICE:
        ranges = [range(b, b + n) for b, n in zip(attrs["begin"], attrs["size"])]
    else:
        ranges = [range(b, e, s) for b, e, s in zip(attrs["begin"], attrs["end"], attrs["strides"])]
    for axis, r in enumerate(ranges):
        idx = np.take(idx, np.asarray(r, dtype=np.int64), axis=axis)
    return np.ascontiguousarray(idx).ravel()
