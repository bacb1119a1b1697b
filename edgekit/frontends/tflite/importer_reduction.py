"""``.tflite`` import of REDUCE_MAX, SUM, ARG_MAX, ARG_MIN, L2_NORMALIZATION and
BATCH_MATMUL: constant axes become attributes (normalized to non-negative); an
ARG_MAX/ARG_MIN with int64 indices (the TFLite converter's default) gets the IR's int32
indices (the same values)."""

from __future__ import annotations

import numpy as np

from edgekit.errors import UnsupportedOpError
from edgekit.ir import DType, OpType


def _axis(b, node: str, a: int, rank: int) -> int:
    if not -rank <= a < rank:
        raise b.fail(f"{node}: axis {a} is out of range for rank {rank}")
    return a % rank if rank else 0


def reduction_attrs(b, op, ir: OpType, node: str, ins: list, x_shape) -> tuple[list, dict]:
    """(IR inputs, attributes) of one of these ops; ``b`` the importer's builder."""
    from edgekit.frontends.tflite.importer import SUPPORTED_TFLITE_OPS, _act

    rank = len(x_shape)
    opts = op.options
    if ir in (OpType.REDUCE_MAX, OpType.SUM):
        axes = b.const_input(op, 1, f"{node} axes").astype(np.int64).reshape(-1)
        norm = tuple(sorted({_axis(b, node, int(a), rank) for a in axes}))
        return ins[:1], {"axes": norm, "keep_dims": bool(opts.get("keep_dims", False))}
    if ir in (OpType.ARG_MAX, OpType.ARG_MIN):
        axis = b.const_input(op, 1, f"{node} axis").astype(np.int64).reshape(-1)
        if axis.size != 1:
            raise b.fail(f"{node}: the axis input must hold one value, has {axis.size}")
        # The output tensor's type decides, as in TFLM (the options repeat it, or are absent).
        out = b.g.tensor(b.names[op.outputs[0]])
        if out.dtype not in (DType.INT32, DType.INT64):
            raise UnsupportedOpError(ir.value, node, SUPPORTED_TFLITE_OPS,
                                     f"index output type {out.dtype.value} (int32 or int64 only)")
        if out.dtype is DType.INT64:
            out.dtype = DType.INT32  # the IR's indices are int32 (the converter's default is int64)
        return ins[:1], {"axis": _axis(b, node, int(axis[0]), rank)}
    if ir is OpType.L2_NORMALIZATION:
        return ins[:1], {"activation": _act(opts, node, ir.value)}
    return ins[:2], {"adj_x": bool(opts.get("adj_x", False)), "adj_y": bool(opts.get("adj_y", False))}
