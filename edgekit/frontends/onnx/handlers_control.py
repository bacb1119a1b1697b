"""ONNX control flow with what decides it known at import: If (the chosen branch is
inlined) and Scan over a sequence of static length (unrolled, step by step).

Exported models (and ONNX function bodies such as AffineGrid's) branch on shapes or
attributes, which are constants once shapes are static. The branch subgraph's nodes
are converted in place (they read the outer graph's values by name); its outputs
become the If node's. A condition computed at run time is rejected: the IR has no
control flow. Scan (opset 9 and later): per step, each scan input's slice is a Gather at
the step (reversed for scan_input_directions 1), the body's nodes are converted with
the step's states, and the scan outputs are stacked along their axes at the end.
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


@handler("Scan")
def _scan(c: Converter, node, a):
    """Scan over a sequence whose length is known at import, unrolled: per step, each
    scan input's slice (a Gather at the step), the body's nodes converted with the
    step's states, and the scan outputs stacked (Unsqueeze, Concat) at the end."""
    import onnx

    from edgekit.frontends.onnx.functions import _rename_captured
    from edgekit.frontends.onnx.handlers_composite import sub_node

    if c.opset < 9:
        raise c.unsupported("Scan before opset 9 (a batch axis and sequence_lens)")
    body_attr = a.get("body")
    if not isinstance(body_attr, onnx.AttributeProto) or not body_attr.HasField("g"):
        raise c.malformed("Scan needs a body graph")
    body = body_attr.g
    m = int(a.get("num_scan_inputs", 0))
    n_state = len(node.input) - m
    if m < 1 or n_state < 0 or len(body.input) != n_state + m:
        raise c.malformed(f"{len(node.input)} inputs, num_scan_inputs={m}, body takes {len(body.input)}")
    k_out = len(body.output) - n_state
    in_axes = list(a.get("scan_input_axes", [0] * m))
    in_dirs = list(a.get("scan_input_directions", [0] * m))
    out_axes = list(a.get("scan_output_axes", [0] * k_out))
    out_dirs = list(a.get("scan_output_directions", [0] * k_out))

    def shape_of(name):
        v = c.env.get(name)
        if v is None:
            raise c.malformed(f"input {name!r} is not computed")
        return tuple(c.sshape(v.name)) if hasattr(v, "name") else tuple(np.shape(v.q if hasattr(v, "q") else v))

    scans = node.input[n_state:]
    lengths = set()
    for j, name in enumerate(scans):
        shape = shape_of(name)
        in_axes[j] = c.norm_axis(in_axes[j], len(shape), "scan input axis")
        lengths.add(shape[in_axes[j]])
    if len(lengths) != 1:
        raise c.malformed(f"scan inputs of different lengths {sorted(lengths)}")
    steps = lengths.pop()
    if steps < 1:
        raise c.unsupported("an empty scan")
    body_names = {o for n in body.node for o in n.output if o} | {i.name for i in body.input}
    body_names |= {t.name for t in body.initializer}
    states = list(node.input[:n_state])
    collected: list[list[str]] = [[] for _ in range(k_out)]
    saved = c.node
    try:
        for t in range(steps):
            prefix = f"{c.node_name(node)}/step{t}/"
            rename = {b.name: s for b, s in zip(body.input[:n_state], states)}
            for j, (b, name) in enumerate(zip(body.input[n_state:], scans)):
                at = t if not in_dirs[j] else steps - 1 - t
                c.node = saved
                rename[b.name] = sub_node(c, node, "Gather", [name, np.asarray(at, np.int64)], axis=in_axes[j])
            for init in body.initializer:
                rename[init.name] = prefix + init.name
                c.env[prefix + init.name] = tensor_to_numpy(init, c.label)
            for n in body.node:
                for o in n.output:
                    if o:
                        rename[o] = prefix + o
            for n in body.node:
                step_node = onnx.NodeProto()
                step_node.CopyFrom(n)
                step_node.name = prefix + (n.name or n.op_type)
                for i, x in enumerate(n.input):
                    step_node.input[i] = rename.get(x, x)
                for i, x in enumerate(n.output):
                    step_node.output[i] = rename.get(x, x)
                for attr in step_node.attribute:
                    if attr.type == onnx.AttributeProto.GRAPH:
                        _rename_captured(attr.g, lambda x, r=rename: r.get(x, x) if x in body_names else x)
                c.uses.update(i for i in step_node.input if i)
                c.node = step_node
                c.convert_node(step_node)
            outs = [rename.get(o.name, o.name) for o in body.output]
            states = outs[:n_state]
            for k in range(k_out):
                collected[k].append(outs[n_state + k])
    finally:
        c.node = saved
    for i in range(n_state):
        if i < len(node.output) and node.output[i]:
            sub_node(c, node, "Identity", [states[i]], out=node.output[i])
    for k in range(k_out):
        o = n_state + k
        if o >= len(node.output) or not node.output[o]:
            continue
        parts = collected[k] if not out_dirs[k] else collected[k][::-1]
        rank = len(shape_of(parts[0])) + 1
        axis = c.norm_axis(out_axes[k], rank, "scan output axis")
        stacked = [sub_node(c, node, "Unsqueeze", [p, np.asarray([axis], np.int64)]) for p in parts]
        if len(stacked) == 1:
            sub_node(c, node, "Identity", stacked, out=node.output[o])
        else:
            sub_node(c, node, "Concat", stacked, out=node.output[o], axis=axis)
