"""Turn constant int8 weights of float ops (hybrid models) into float32 weights."""

from __future__ import annotations

from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.ir.passes.base import register

_WEIGHTED = (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED)


@register("dequantize_weights")
def dequantize_weights(graph: Graph) -> bool:
    """Hybrid ops (float activations, int8 weights) become plain float ops, and
    DEQUANTIZE ops of constants become float constants. Not in the default
    pipeline: the quantizer runs it to get the pure float model it calibrates."""
    from edgekit.reference.int8_kernels import dequantize

    changed = False
    for op in list(graph.ops):
        if op.type in _WEIGHTED and graph.tensor(op.inputs[0]).dtype is DType.FLOAT32:
            w = graph.tensor(op.inputs[1])
            if w.dtype is DType.INT8 and w.is_const:
                name = graph.add_const(f"{w.name}_dequantized", dequantize(w.data, w.quant)).name
                op.inputs[1] = name
                changed = True
        elif op.type is OpType.DEQUANTIZE and graph.tensor(op.inputs[0]).is_const \
                and op.outputs[0] not in graph.outputs:
            src = graph.tensor(op.inputs[0])
            out = graph.tensor(op.outputs[0])
            out.data = dequantize(src.data, src.quant).reshape(out.shape)
            graph.ops.remove(op)
            changed = True
    if changed:
        graph.remove_unused()
    return changed
