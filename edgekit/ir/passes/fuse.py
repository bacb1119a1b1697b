"""Fuse a RELU / RELU6 into the op that produces its input."""

from __future__ import annotations

from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.ops import FUSABLE, OpType
from edgekit.ir.passes.base import register, single_consumer

_ACT_OF = {OpType.RELU: "RELU", OpType.RELU6: "RELU6"}


@register("fuse_activation")
def fuse_activation(graph: Graph) -> bool:
    changed = False
    producers = graph.producers()
    for act in list(graph.ops):
        if act.type not in _ACT_OF:
            continue
        src = act.inputs[0]
        prev = producers.get(src)
        if prev is None or prev.type not in FUSABLE or not single_consumer(graph, src):
            continue
        if prev.attrs.get("activation", "NONE") != "NONE":
            continue
        mid, out = graph.tensor(src), graph.tensor(act.outputs[0])
        if mid.dtype is not out.dtype:
            continue
        # In int8 the fused clamp is computed in the op's output quantization; the
        # result is bit-identical to a separate ReLU only when both share it.
        if mid.dtype is not DType.FLOAT32 and mid.quant != out.quant:
            continue
        prev.attrs["activation"] = _ACT_OF[act.type]
        prev.outputs = [act.outputs[0]]
        graph.ops.remove(act)
        producers = graph.producers()
        changed = True
    if changed:
        graph.remove_unused()
    return changed
