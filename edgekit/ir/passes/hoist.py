"""Move elementwise activations above layout ops.

An importer that views a tensor in another layout (1-D convolutions run as NHWC
``[N, 1, L, C]`` between TRANSPOSE/RESHAPE pairs) leaves activations between two layout
ops: ``conv -> reshape -> transpose -> relu -> transpose -> reshape -> conv``. An
elementwise op gives the same values in any layout, so it can run before the layout op
instead; then it can fuse into the conv (``fuse_activation``) and the two transposes
cancel (``cancel_transposes``, ``remove_identity``). Float graphs only: in an int8 graph
the activation's output parameters would have to move with it.
"""

from __future__ import annotations

from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.ir.passes.base import register, single_consumer

# One input, elementwise, no attribute that depends on the layout.
_ELEMENTWISE = {OpType.RELU, OpType.RELU6, OpType.LOGISTIC, OpType.TANH, OpType.HARD_SWISH,
                OpType.LEAKY_RELU, OpType.ABS, OpType.NEG, OpType.EXP, OpType.LOG, OpType.SQRT,
                OpType.RSQRT, OpType.GELU}
_LAYOUT = {OpType.TRANSPOSE, OpType.RESHAPE}


@register("hoist_elementwise")
def hoist_elementwise(graph: Graph) -> bool:
    changed = False
    for op in list(graph.ops):
        if op.type not in _ELEMENTWISE or len(op.inputs) != 1:
            continue
        producers = graph.producers()
        layout = producers.get(op.inputs[0])
        if layout is None or layout.type not in _LAYOUT or not single_consumer(graph, op.inputs[0]):
            continue
        src = graph.tensor(layout.inputs[0])
        mid = graph.tensor(op.inputs[0])
        out = graph.tensor(op.outputs[0])
        if src.is_const or not all(t.dtype is DType.FLOAT32 for t in (src, mid, out)):
            continue
        # op now reads the layout op's input into a tensor of that shape; the layout op
        # writes op's old output (its name, so graph outputs keep theirs).
        hoisted = graph.add_tensor(graph.unique_name(f"{op.outputs[0]}_pre_layout"), src.shape, DType.FLOAT32)
        op.inputs[0] = src.name
        final = op.outputs[0]
        op.outputs[0] = hoisted.name
        layout.inputs[0] = hoisted.name
        layout.outputs[0] = final
        del graph.tensors[mid.name]
        # execution order: the activation before the layout op
        i, j = graph.ops.index(layout), graph.ops.index(op)
        graph.ops[i], graph.ops[j] = op, layout
        changed = True
    return changed
