"""One random data-movement step for the random float graphs of test_onnx_writer.py:
SLICE, STRIDED_SLICE, SPLIT, SQUEEZE/EXPAND_DIMS, GATHER, PACK, UNPACK, DEPTH_TO_SPACE /
SPACE_TO_DEPTH or CAST (to int32 and back), never moving axis 0 (the graphs also run
with a batch of 3)."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, OpType
from edgekit.ir.ops import normalize_attrs
from edgekit.ir.shapes import infer_op_shapes


def _add(b, typ: OpType, inputs, attrs, dtypes=None) -> list[str] | None:
    try:
        shapes = infer_op_shapes(typ, [b.g.tensor(i).shape for i in inputs], normalize_attrs(typ, attrs))
    except ValueError:
        return None
    if any(int(np.prod(s)) > 4000 or 0 in s for s in shapes):
        return None
    outs = []
    for k, s in enumerate(shapes):
        out = b.name("m")
        b.g.add_tensor(out, s, (dtypes or [DType.FLOAT32] * len(shapes))[k])
        outs.append(out)
    b.g.add_op(typ, list(inputs), outs, attrs)
    b.used.add(typ.value)
    return outs


KINDS = ("unpack", "depth_space", "strided", "split", "slice", "squeeze", "gather", "pack", "cast")


def movement_step(b, x: str, st) -> str | None:
    """Up to three data-movement ops in a row (kinds in a random order, numpy's: hypothesis'
    draws favour the first choices), so a few hundred graphs reach every kind."""
    done = 0
    order = [KINDS[int(k)] for k in b.rng.permutation(len(KINDS))]
    if b.g.tensor(x).rank == 4:  # the only rank DEPTH_TO_SPACE takes: try it first
        order.remove("depth_space")
        order.insert(0, "depth_space")
    for kind in order:
        y = _one(b, x, st, kind)
        if y is not None:
            x, done = y, done + 1
            if done == 3:
                break
    return x if done else None


def _one(b, x: str, st, kind: str) -> str | None:
    d = b.draw
    t = b.g.tensor(x)
    r, shape = t.rank, t.shape
    if r < 2:
        return None
    ax = d(st.integers(1, r - 1))
    n = shape[ax]
    if kind == "slice":
        begin = [0] * r
        size = list(shape)
        begin[ax] = d(st.integers(0, n - 1))
        size[ax] = d(st.integers(1, n - begin[ax]))
        out = _add(b, OpType.SLICE, [x], {"begin": begin, "size": size})
    elif kind == "strided":
        begin, end, strides = [0] * r, list(shape), [1] * r
        s = d(st.sampled_from([-2, -1, 1, 2]))
        bb = d(st.integers(0, n - 1))
        ee = d(st.integers(bb + 1, n)) if s > 0 else d(st.integers(-1, bb - 1))
        begin[ax], end[ax], strides[ax] = bb, ee, s
        shrink = (1 << ax) if len(range(bb, ee, s)) == 1 and r > 2 and d(st.booleans()) else 0
        out = _add(b, OpType.STRIDED_SLICE, [x], {"begin": begin, "end": end, "strides": strides,
                                                  "shrink_axis_mask": shrink})
    elif kind == "split" and n >= 2:
        first = d(st.integers(1, n - 1))
        out = _add(b, OpType.SPLIT, [x], {"axis": ax, "sizes": (first, n - first)})
        out = out and [out[d(st.integers(0, 1))]]
    elif kind == "squeeze":
        e = _add(b, OpType.EXPAND_DIMS, [x], {"axis": ax})
        out = e and _add(b, OpType.SQUEEZE, e, {"axes": (ax,)})
    elif kind == "gather":
        idx = b.rng.integers(0, n, size=d(st.integers(1, 4))).astype(np.int32)
        c = b.g.add_const(b.name("idx"), idx).name
        out = _add(b, OpType.GATHER, [x, c], {"axis": ax})
    elif kind == "pack" and r < 5:
        other = _add(b, OpType.TANH, [x], {})
        out = other and _add(b, OpType.PACK, [x, other[0]], {"axis": d(st.integers(1, r))})
    elif kind == "unpack" and n <= 8:
        out = _add(b, OpType.UNPACK, [x], {"axis": ax})
        out = out and [out[-1]]
    elif kind == "depth_space" and r == 4:  # there and back: both ops, any channel count
        blk = 2 if shape[1] % 2 == 0 and shape[2] % 2 == 0 else 1
        s2d = _add(b, OpType.SPACE_TO_DEPTH, [x], {"block_size": blk})
        mid = s2d and _add(b, OpType.TANH, s2d, {})
        out = mid and _add(b, OpType.DEPTH_TO_SPACE, mid, {"block_size": blk})
    elif kind == "cast":
        scaled = _add(b, OpType.MUL, [x, b.const((1,), scale=20.0)], {})
        i = scaled and _add(b, OpType.CAST, scaled, {}, [DType.INT32])
        out = i and _add(b, OpType.CAST, i, {})
    else:
        out = None
    return out[0] if out else None
