"""Layout clean-up after NCHW -> NHWC import.

An NCHW model that flattens a feature map before a fully-connected layer gets a
TRANSPOSE back to NCHW in front of the flatten (to keep its element order). When a
constant-weight FULLY_CONNECTED reads that flatten, permuting the weight columns
does the same job at compile time and the transpose disappears.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType
from edgekit.ir.passes.base import register, single_consumer


@register("fold_transpose_into_fc")
def fold_transpose_into_fc(graph: Graph) -> bool:
    changed = False
    for fc in list(graph.ops):
        if fc.type is not OpType.FULLY_CONNECTED or fc.attrs.get("keep_num_dims"):
            continue
        w = graph.const(fc.inputs[1])
        if w is None:
            continue
        producers = graph.producers()
        reshape = producers.get(fc.inputs[0])
        if reshape is not None and reshape.type is OpType.RESHAPE:
            tr = producers.get(reshape.inputs[0])
            if tr is None or not single_consumer(graph, reshape.inputs[0]):
                continue
        else:
            reshape, tr = None, reshape
        if tr is None or tr.type is not OpType.TRANSPOSE:
            continue
        if not single_consumer(graph, tr.outputs[0]):
            continue
        perm = tuple(tr.attrs["perm"])
        x = graph.tensor(tr.inputs[0])
        t_out = graph.tensor(tr.outputs[0])
        k = w.shape[1]
        if perm[0] != 0 or x.size // x.shape[0] != k:
            continue  # the batch axis moves, or the flatten does not split at the batch
        # Flat index of each element in the transposed (source-order) tensor, read
        # in the order of the untransposed one: the columns' new order.
        order = np.arange(k).reshape(t_out.shape[1:]).transpose(np.argsort(perm[1:]))
        new_w = np.ascontiguousarray(w[:, order.reshape(-1)])
        wt = graph.tensor(fc.inputs[1])
        name = graph.add_const(f"{fc.name}_weights_nhwc", new_w, quant=wt.quant, dtype=wt.dtype).name
        fc.inputs[1] = name
        if reshape is not None:
            reshape.inputs[0] = tr.inputs[0]
        else:
            fc.inputs[0] = tr.inputs[0]
        graph.ops.remove(tr)
        graph.remove_unused()
        changed = True
    return changed


@register("cancel_transposes")
def cancel_transposes(graph: Graph) -> bool:
    changed = False
    producers = graph.producers()
    for op in list(graph.ops):
        if op.type is not OpType.TRANSPOSE:
            continue
        prev = producers.get(op.inputs[0])
        if prev is None or prev.type is not OpType.TRANSPOSE:
            continue
        p1, p2 = tuple(prev.attrs["perm"]), tuple(op.attrs["perm"])
        op.attrs["perm"] = tuple(p1[i] for i in p2)
        op.inputs[0] = prev.inputs[0]
        changed = True
    if changed:
        graph.remove_unused()
    return changed
