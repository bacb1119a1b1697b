"""``.tflite`` import of the data-movement builtins (called from ``importer._convert_op``).

The shape-like operands (begin, size, axis, size_splits ...) must be constants; they
become IR attributes resolved to the IR's conventions (``edgekit.ir.shapes_movement``):
negative axes and indices counted from the end, SLICE's size -1 spelled out, and
STRIDED_SLICE's begin/end masks and ``offset`` applied as TFLite's reference kernel applies
them (clamped into the dimension). ``ellipsis_mask`` and ``new_axis_mask`` are refused
(TFLite Micro refuses them too). SQUEEZE and EXPAND_DIMS are imported as RESHAPE by the
importer itself (the same bytes, and the IR passes know RESHAPE).
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import UnsupportedOpError
from edgekit.ir import OpType

TFLITE_MOVEMENT = {
    "SLICE": OpType.SLICE,
    "STRIDED_SLICE": OpType.STRIDED_SLICE,
    "SPLIT": OpType.SPLIT,
    "SPLIT_V": OpType.SPLIT,
    "GATHER": OpType.GATHER,
    "PACK": OpType.PACK,
    "UNPACK": OpType.UNPACK,
    "DEPTH_TO_SPACE": OpType.DEPTH_TO_SPACE,
    "SPACE_TO_DEPTH": OpType.SPACE_TO_DEPTH,
    "CAST": OpType.CAST,
}
MIN_INPUTS = {"SLICE": 3, "STRIDED_SLICE": 4, "SPLIT": 2, "SPLIT_V": 3, "GATHER": 2}
MULTI_OUTPUT = {"SPLIT", "SPLIT_V", "UNPACK"}


def _axis(b, node: str, axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise b.fail(f"{node}: axis {axis} is out of range for rank {rank}")
    return a


def _ints(b, op, i: int, what: str) -> list[int]:
    return [int(v) for v in b.const_input(op, i, what).astype(np.int64).reshape(-1)]


def resolve_strided_slice(shape, begin, end, strides, begin_mask: int, end_mask: int, shrink: int,
                          offset: bool = False):
    """(begin, end, strides) per axis in the IR's resolved form (TFLite's reference rules)."""
    rb, re_, rs = [], [], []
    for i, d in enumerate(shape):
        s = int(strides[i])
        if shrink >> i & 1:
            bb = int(begin[i]) + (d if begin[i] < 0 else 0)
            rb.append(bb)
            re_.append(bb + 1)
            rs.append(1)
            continue
        lo, hi = (0, d) if s > 0 else (-1, d - 1)
        if begin_mask >> i & 1:
            bb = 0 if s > 0 else d - 1
        else:
            bb = int(begin[i]) + (d if begin[i] < 0 else 0)
            bb = min(max(bb, lo), hi)
        if end_mask >> i & 1:
            ee = d if s > 0 else -1
        else:
            ee = int(end[i])
            if offset:
                ee = bb + ee
            elif ee < 0:
                ee += d
            ee = min(max(ee, lo), hi)
        rb.append(bb)
        re_.append(ee)
        rs.append(s)
    return rb, re_, rs


def convert_movement(b, op, opname: str, node: str, name: str, supported) -> None:
    g = b.g
    ir = TFLITE_MOVEMENT[opname]
    opts = op.options
    shape_of = lambda i: tuple(b.sg.tensors[op.inputs[i]].shape)  # noqa: E731
    outs = [b.tensor(o) for o in op.outputs]
    attrs: dict = {}
    if opname == "SLICE":
        x = shape_of(0)
        begin, size = _ints(b, op, 1, f"{node} begin"), _ints(b, op, 2, f"{node} size")
        if len(begin) != len(x) or len(size) != len(x):
            raise b.fail(f"{node}: begin/size need {len(x)} values")
        begin = [v + d if v < 0 else v for v, d in zip(begin, x)]
        size = [d - bb if s == -1 else s for s, bb, d in zip(size, begin, x)]
        attrs = {"begin": begin, "size": size}
        ins = [b.tensor(op.inputs[0])]
    elif opname == "STRIDED_SLICE":
        x = shape_of(0)
        if opts.get("ellipsis_mask", 0) or opts.get("new_axis_mask", 0):
            raise UnsupportedOpError(opname, node, supported,
                                     "ellipsis_mask and new_axis_mask are not supported (nor by TFLite Micro)")
        begin = _ints(b, op, 1, f"{node} begin")
        end = _ints(b, op, 2, f"{node} end")
        strides = _ints(b, op, 3, f"{node} strides")
        if not (len(begin) == len(end) == len(strides) == len(x)):
            raise b.fail(f"{node}: begin/end/strides need {len(x)} values")
        if any(s == 0 for s in strides):
            raise b.fail(f"{node}: a stride of 0")
        rb, re_, rs = resolve_strided_slice(x, begin, end, strides, opts.get("begin_mask", 0),
                                            opts.get("end_mask", 0), opts.get("shrink_axis_mask", 0),
                                            bool(opts.get("offset", False)))
        attrs = {"begin": rb, "end": re_, "strides": rs, "shrink_axis_mask": opts.get("shrink_axis_mask", 0)}
        ins = [b.tensor(op.inputs[0])]
    elif opname in ("SPLIT", "SPLIT_V"):
        xi = 1 if opname == "SPLIT" else 0
        axis_i = 0 if opname == "SPLIT" else 2
        x = shape_of(xi)
        axis = _axis(b, node, _ints(b, op, axis_i, f"{node} axis")[0], len(x))
        n = len(op.outputs)
        if opname == "SPLIT":
            if x[axis] % n:
                raise b.fail(f"{node}: dimension {x[axis]} does not split into {n} equal parts")
            sizes = [x[axis] // n] * n
        else:
            sizes = _ints(b, op, 1, f"{node} size_splits")
            if sizes.count(-1) == 1:
                sizes[sizes.index(-1)] = x[axis] - (sum(sizes) + 1)
            if len(sizes) != n:
                raise b.fail(f"{node}: {len(sizes)} sizes for {n} outputs")
        attrs = {"axis": axis, "sizes": sizes}
        ins = [b.tensor(op.inputs[xi])]
    elif opname == "GATHER":
        x, idx = shape_of(0), shape_of(1)
        axis = _axis(b, node, opts.get("axis", 0), len(x))
        bd = opts.get("batch_dims", 0)
        attrs = {"axis": axis, "batch_dims": bd + len(idx) if bd < 0 else bd}
        ins = [b.tensor(op.inputs[0]), b.tensor(op.inputs[1])]
    elif opname == "PACK":
        x = shape_of(0)
        axis = opts.get("axis", 0)
        attrs = {"axis": _axis(b, node, axis, len(x) + 1)}
        ins = [b.tensor(i) for i in op.inputs]
    elif opname == "UNPACK":
        attrs = {"axis": _axis(b, node, opts.get("axis", 0), len(shape_of(0)))}
        ins = [b.tensor(op.inputs[0])]
    elif opname in ("DEPTH_TO_SPACE", "SPACE_TO_DEPTH"):
        attrs = {"block_size": opts.get("block_size", 0)}
        ins = [b.tensor(op.inputs[0])]
    else:  # CAST
        ins = [b.tensor(op.inputs[0])]
    g.add_op(ir, ins, outs, attrs, name)
