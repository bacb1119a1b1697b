"""One random reduction / matrix-product step for the random float graphs of
test_onnx_writer.py: REDUCE_MAX, SUM, ARG_MAX / ARG_MIN (int32, CAST back to float),
L2_NORMALIZATION or BATCH_MATMUL (with itself transposed, or with a constant), never
reducing axis 0 (the graphs also run with a batch of 3)."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, OpType
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.shapes import infer_op_shapes


def _add(b, typ: OpType, inputs, attrs, dtype=DType.FLOAT32) -> str | None:
    try:
        shape = infer_op_shapes(typ, [b.g.tensor(i).shape for i in inputs], normalize_attrs(typ, attrs))[0]
    except ValueError:
        return None
    if int(np.prod(shape)) > 4000 or 0 in shape:
        return None
    out = b.name("r")
    b.g.add_tensor(out, shape, dtype)
    b.g.add_op(typ, list(inputs), [out], attrs)
    b.used.add(typ.value)
    return out


KINDS = ("reduce", "arg", "l2", "matmul")


def reduction_step(b, x: str, st) -> str | None:
    """One op of the family (kinds in a random numpy order, so a few hundred graphs reach
    each of them)."""
    d = b.draw
    r = b.g.tensor(x).rank
    if r < 2:
        return None
    kind = KINDS[int(b.rng.integers(len(KINDS)))]
    if kind == "reduce":
        axes = d(st.lists(st.integers(1, r - 1), min_size=1, max_size=r - 1, unique=True))
        keep = d(st.booleans()) or r - len(axes) < 2
        typ = OpType.REDUCE_MAX if b.rng.integers(2) else OpType.SUM
        return _add(b, typ, [x], {"axes": tuple(sorted(axes)), "keep_dims": keep})
    if kind == "arg":
        typ = OpType.ARG_MAX if b.rng.integers(2) else OpType.ARG_MIN
        idx = _add(b, typ, [x], {"axis": d(st.integers(1, r - 1))}, DType.INT32)
        return idx and _add(b, OpType.CAST, [idx], {})
    if kind == "l2":
        return _add(b, OpType.L2_NORMALIZATION, [x], {})
    if b.rng.integers(2):  # x times its own transpose (last two axes)
        return _add(b, OpType.BATCH_MATMUL, [x, x], {"adj_y": True})
    w = b.const((b.g.tensor(x).shape[-1], int(b.rng.integers(1, 5))))
    return _add(b, OpType.BATCH_MATMUL, [x, w], {})
