"""ONNX If with a condition known at import: the chosen branch is inlined.

Exported models (and ONNX function bodies such as AffineGrid's) branch on shapes or
attributes, which are constants once shapes are static. The branch subgraph's nodes
are converted in place (they read the outer graph's values by name); its outputs
become the If node's. A condition computed at run time is rejected: the IR has no
control flow.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx.convert import Converter, handler
from edgekit.frontends.onnx.loader import tensor_to_numpy


@handler("If")
def _if(c: Converter, node, a):
    import onnx

    cond = np.asarray(c.const_inp(node, 0, "the condition"))
    if cond.size != 1:
        raise c.malformed(f"the condition has {cond.size} elements; it must hold one")
    key = "then_branch" if bool(cond.reshape(-1)[0]) else "else_branch"
    attr = a.get(key)
    if attr is None or not isinstance(attr, onnx.AttributeProto) or not attr.HasField("g"):
        raise c.malformed(f"If has no {key}")
    branch = attr.g
    if len(branch.output) != len(node.output):
        raise c.malformed(f"the {key} has {len(branch.output)} outputs, the node {len(node.output)}")
    prefix = f"{c.node_name(node)}/{key}/"
    rename = {}
    for t in branch.initializer:
        rename[t.name] = prefix + t.name
        c.env[prefix + t.name] = tensor_to_numpy(t, c.label)
    for n in branch.node:
        for o in n.output:
            if o:
                rename[o] = prefix + o
    nodes = []
    for n in branch.node:
        m = onnx.NodeProto()
        m.CopyFrom(n)
        m.name = prefix + (n.name or n.op_type)
        for i, x in enumerate(n.input):
            m.input[i] = rename.get(x, x)
        for i, x in enumerate(n.output):
            m.output[i] = rename.get(x, x)
        nodes.append(m)
    for m in nodes:
        c.uses.update(i for i in m.input if i)
        c.reserved.update(o for o in m.output if o)
    saved = c.node
    try:
        for m in nodes:
            c.node = m
            c.convert_node(m)
    finally:
        c.node = saved
    for out, b in zip(node.output, branch.output):
        if not out:
            continue
        src = rename.get(b.name, b.name)
        if src not in c.env:
            raise c.malformed(f"the {key}'s output {b.name!r} is not computed")
        c.env[out] = c.env[src]
