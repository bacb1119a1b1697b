"""Float-graph rewrites the int8 scheme needs for elementwise ops, applied before
calibration: NEG becomes MUL by -1, because LiteRT's int8 NEG negates raw values
(right only when the output's zero point is minus the input's), while TFLM's int8 MUL
rescales to any output parameters."""

from __future__ import annotations

import numpy as np

from edgekit.ir import Graph, OpType


def rewrite_for_int8(g: Graph) -> bool:
    """Rewrite ``g`` in place; returns whether anything changed."""
    changed = False
    for op in list(g.ops):
        if op.type is OpType.NEG:
            c = g.add_const(g.unique_name(f"{op.name}_minus_one"), np.array([-1.0], np.float32))
            op.type = OpType.MUL
            op.inputs = [op.inputs[0], c.name]
            op.attrs = {}
            changed = True
    return changed
