"""Evaluate ops whose inputs are all constants, at compile time."""

from __future__ import annotations

from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.ir.passes.base import register

# DEQUANTIZE / QUANTIZE of a constant are kept: their quantization parameters are
# information (QDQ models mark int8 weights that way) that later stages read.
_NEVER_FOLD = {OpType.QUANTIZE, OpType.DEQUANTIZE}


@register("constant_fold")
def constant_fold(graph: Graph) -> bool:
    from edgekit.reference.interpreter import evaluate_op

    changed = False
    for op in list(graph.ops):
        if op.type in _NEVER_FOLD:
            continue
        ins = [i for i in op.inputs if i]
        if not ins or not all(graph.tensor(i).is_const for i in ins):
            continue
        if any(o in graph.outputs for o in op.outputs):
            continue
        values = evaluate_op(graph, op, {i: graph.tensor(i).data for i in ins})
        for name, value in zip(op.outputs, values):
            graph.tensor(name).data = value.astype(graph.tensor(name).dtype.np).reshape(graph.tensor(name).shape)
        graph.ops.remove(op)
        changed = True
    if changed:
        graph.remove_unused()
    return changed
