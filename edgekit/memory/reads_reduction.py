"""Read maps (``lifetimes.read_map``) of REDUCE_MAX, SUM, ARG_MAX, ARG_MIN and
L2_NORMALIZATION, for the memory planner's input/output sharing rule.

Their kernels (runtimes/micro: ek_reduce_max_s8, ek_mean_s8 for SUM, ek_arg_min_max_s8,
ek_l2_normalization_s8) write output elements in increasing order, each after reading
every input element it needs, as the write contract of ``lifetimes`` demands:

- REDUCE_MAX / SUM: output element ``o`` reads its group, whose smallest input index is
  the group's element with every reduced coordinate 0;
- ARG_MAX / ARG_MIN: likewise over the one axis (int32 outputs: four bytes per element,
  so the shift rule keeps them mostly apart from their input);
- L2_NORMALIZATION: every element of a row reads the whole row (its sum of squares).

BATCH_MATMUL is not modeled (the dsp kernel writes column by column): it never shares.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.ops import OpType

REDUCTION_READ_OPS = frozenset({OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN,
                                OpType.L2_NORMALIZATION})


def reduction_read_map(op_type: OpType, x_shape, y_size: int, attrs: dict) -> np.ndarray | None:
    """Smallest input element index each output element reads (row-major), or None."""
    x_shape = tuple(int(d) for d in x_shape)
    size = int(np.prod(x_shape)) if x_shape else 1
    idx = np.arange(size, dtype=np.int64).reshape(x_shape)
    if op_type in (OpType.REDUCE_MAX, OpType.SUM):
        axes = tuple(sorted({int(a) for a in attrs["axes"]}))
        if any(x_shape[a] == 0 for a in axes):
            return None
        reads = idx.min(axis=axes) if axes else idx
    elif op_type in (OpType.ARG_MAX, OpType.ARG_MIN):
        axis = int(attrs["axis"])
        if x_shape[axis] == 0:
            return None
        reads = idx.min(axis=axis)
    elif op_type is OpType.L2_NORMALIZATION:
        c = x_shape[-1] if x_shape else 1
        reads = (idx // max(c, 1)) * c
    else:
        return None
    reads = np.ascontiguousarray(reads).ravel()
    return reads if reads.size == y_size else None
