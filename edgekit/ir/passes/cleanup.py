"""Remove ops that do nothing, and ops nobody reads."""

from __future__ import annotations

from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.ir.passes.base import register


def _bypass(graph: Graph, op) -> bool:
    """Remove ``op`` whose output equals its input. Keeps graph input/output names."""
    src, dst = op.inputs[0], op.outputs[0]
    if dst in graph.outputs and (src in graph.inputs or src in graph.outputs):
        return False  # the graph would lose an output name; keep the op
    if dst in graph.outputs:
        # Let the producer of src write dst instead, so the graph output keeps its name.
        prod = graph.producers().get(src)
        if prod is None or sum(i == src for o in graph.ops for i in o.inputs) != 1:
            return False
        prod.outputs = [dst if o == src else o for o in prod.outputs]
    else:
        graph.replace_uses(dst, src)
    graph.ops.remove(op)
    return True


@register("remove_identity")
def remove_identity(graph: Graph) -> bool:
    changed = False
    producers = graph.producers()
    for op in list(graph.ops):
        if op not in graph.ops:
            continue
        x = graph.tensor(op.inputs[0])
        out = graph.tensor(op.outputs[0])
        identity = False
        if op.type in (OpType.RESHAPE, OpType.TRANSPOSE):
            if op.type is OpType.TRANSPOSE:
                identity = tuple(op.attrs["perm"]) == tuple(range(x.rank))
            else:
                identity = x.shape == out.shape
        elif op.type is OpType.QUANTIZE:
            identity = x.dtype is out.dtype and x.quant == out.quant
        elif op.type is OpType.PAD:
            identity = all(p == 0 for p in op.attrs["pads"])
        if identity and x.dtype is out.dtype and x.quant == out.quant and _bypass(graph, op):
            changed = True
            producers = graph.producers()
            continue
        # RESHAPE of a RESHAPE: reshape the original input directly.
        if op.type is OpType.RESHAPE:
            prev = producers.get(op.inputs[0])
            if prev is not None and prev.type is OpType.RESHAPE:
                op.inputs[0] = prev.inputs[0]
                changed = True
    if changed:
        graph.remove_unused()
    return changed


@register("dead_code")
def dead_code(graph: Graph) -> bool:
    before = len(graph.tensors)
    removed = graph.remove_unused()
    return bool(removed) or len(graph.tensors) != before
