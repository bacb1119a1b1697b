"""Fold float BATCH_NORM into the conv / depthwise / fully-connected op before it,
or turn a lone one into MUL + ADD with constant operands."""

from __future__ import annotations

import numpy as np

from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.ir.passes.base import register, single_consumer

# Axis of the output channel in each weight layout.
_OUT_AXIS = {OpType.CONV_2D: 0, OpType.DEPTHWISE_CONV_2D: 3, OpType.FULLY_CONNECTED: 0}


def _bn_scale_shift(graph: Graph, bn) -> tuple[np.ndarray, np.ndarray] | None:
    gamma, beta, mean, var = (graph.const(n) for n in bn.inputs[1:5])
    if any(a is None for a in (gamma, beta, mean, var)):
        return None
    eps = float(bn.attrs.get("epsilon", 1e-5))
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return scale, shift


@register("fold_batchnorm")
def fold_batchnorm(graph: Graph) -> bool:
    changed = False
    producers = graph.producers()
    for bn in list(graph.ops):
        if bn.type is not OpType.BATCH_NORM:
            continue
        ss = _bn_scale_shift(graph, bn)
        if ss is None:
            continue
        scale, shift = ss
        prev = producers.get(bn.inputs[0])
        if (prev is not None and prev.type in _OUT_AXIS and single_consumer(graph, bn.inputs[0])
                and prev.attrs.get("activation", "NONE") == "NONE"
                and graph.tensor(prev.inputs[1]).dtype is DType.FLOAT32
                and graph.const(prev.inputs[1]) is not None):
            w = graph.const(prev.inputs[1]).astype(np.float64)
            axis = _OUT_AXIS[prev.type]
            shape = [1] * w.ndim
            shape[axis] = -1
            if w.shape[axis] != scale.size:
                continue
            new_w = (w * scale.reshape(shape)).astype(np.float32)
            bias = graph.const(prev.input(2)) if prev.input(2) else np.zeros(scale.size)
            new_b = (bias.astype(np.float64) * scale + shift).astype(np.float32)
            w_name = graph.add_const(f"{prev.name}_filter_bn", new_w).name
            b_name = graph.add_const(f"{prev.name}_bias_bn", new_b).name
            prev.inputs = [prev.inputs[0], w_name, b_name]
            # The conv now writes the BN's output tensor directly (its own output
            # had no other reader), so names users know the tensor by stay valid.
            prev.outputs = [bn.outputs[0]]
            graph.ops.remove(bn)
            changed = True
            continue
        # A lone BN becomes x * scale + shift, broadcast over the last (channel) axis.
        x = graph.tensor(bn.inputs[0])
        s_name = graph.add_const(f"{bn.name}_scale", scale.astype(np.float32)).name
        b_name = graph.add_const(f"{bn.name}_shift", shift.astype(np.float32)).name
        mid = graph.add_tensor(graph.unique_name(f"{bn.name}_scaled"), x.shape, DType.FLOAT32).name
        idx = graph.ops.index(bn)
        graph.ops[idx:idx + 1] = []
        mul = graph.add_op(OpType.MUL, [bn.inputs[0], s_name], [mid],
                           name=graph.unique_name(f"{bn.name}_mul", ops=True))
        add = graph.add_op(OpType.ADD, [mid, b_name], [bn.outputs[0]],
                           name=graph.unique_name(f"{bn.name}_add", ops=True))
        graph.ops.remove(mul)
        graph.ops.remove(add)
        graph.ops[idx:idx] = [mul, add]
        changed = True
    if changed:
        graph.remove_unused()
    return changed
