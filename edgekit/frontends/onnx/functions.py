"""ONNX ops with no converter of their own, imported through ONNX's function definition.

Many ONNX ops (Attention, RMSNormalization, GroupNormalization, Swish, Celu, ...) are
defined in the ONNX standard as a function: a small graph of simpler ONNX ops, the
same body onnx's ``*_expanded`` node tests run. When no handler claims an op, the
converter asks here: the op's function body for the model's opset (context-dependent
bodies get the node's input types) is instantiated with the node's inputs, outputs
and attributes, and each body node is converted as if it were in the model. An op
whose body needs an op edgekit lacks is rejected naming both.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import UnsupportedOpError
from edgekit.frontends.onnx import convert
from edgekit.frontends.onnx.convert import Converter
from edgekit.frontends.onnx.values import Act, QConst

MAX_DEPTH = 4  # a function body may use ops that are functions themselves


def function_body(c: Converter, node):
    """The FunctionProto defining ``node`` at the model's opset, or None."""
    import onnx

    try:
        schema = onnx.defs.get_schema(node.op_type, c.opset, "")
    except Exception:  # noqa: BLE001 - unknown op or opset: no function
        return None
    plain = [v for v in schema.function_opset_versions if v <= c.opset]
    fp = onnx.FunctionProto()
    if plain:
        fp.ParseFromString(schema.get_function_with_opset_version(max(plain)))
        return fp
    dependent = [v for v in schema.context_dependent_function_opset_versions if v <= c.opset]
    if not dependent:
        return None
    types = [_type_of(c, name).SerializeToString() for name in node.input]
    try:
        data = schema.get_context_dependent_function_with_opset_version(
            max(dependent), _with_defaults(node, schema).SerializeToString(), types)
    except Exception:  # noqa: BLE001 - the schema cannot build a body for these inputs
        return None
    if not data:
        return None
    fp.ParseFromString(data)
    return fp


def _type_of(c: Converter, name: str):
    from onnx import TypeProto, helper

    if not name:
        return TypeProto()
    v = c.env.get(name)
    if v is None:
        return TypeProto()
    if isinstance(v, Act):
        t = c.g.tensor(v.name)
        return helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(t.dtype.np), list(c.sshape(v.name)))
    arr = v.value() if isinstance(v, QConst) else np.asarray(v)
    return helper.make_tensor_type_proto(helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape))


def _with_defaults(node, schema):
    """The node with the schema's default value of every attribute it leaves out."""
    import onnx

    full = onnx.NodeProto()
    full.CopyFrom(node)
    given = {a.name for a in node.attribute}
    for name, spec in schema.attributes.items():
        if name not in given and spec.default_value.name:
            full.attribute.append(spec.default_value)
    return full


def _instantiate(c: Converter, node, fp) -> tuple[list, int]:
    """The function's nodes with the node's tensor names and attribute values."""
    import onnx

    schema = onnx.defs.get_schema(node.op_type, c.opset, "")
    attrs = {a.name: a for a in _with_defaults(node, schema).attribute}
    names = {formal: (node.input[i] if i < len(node.input) else "") for i, formal in enumerate(fp.input)}
    names.update({formal: (node.output[i] if i < len(node.output) else "") for i, formal in enumerate(fp.output)})
    prefix = f"{c.node_name(node)}/"
    internal = set(fp.input) | {o for n in fp.node for o in n.output if o}

    def outer(x: str) -> str:
        return names.get(x, prefix + x) if x in internal else x

    out = []
    for body in fp.node:
        n = onnx.NodeProto()
        n.CopyFrom(body)
        n.name = prefix + (body.name or body.op_type)
        for i, x in enumerate(body.input):
            n.input[i] = names.get(x, prefix + x) if x else ""
        for i, x in enumerate(body.output):
            n.output[i] = names.get(x, prefix + x) if x else ""
        kept = []
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _rename_captured(a.g, outer)  # a branch reads the body's values by name
            if a.ref_attr_name:
                if a.ref_attr_name not in attrs:
                    continue  # an optional attribute the node leaves unset
                actual = onnx.AttributeProto()
                actual.CopyFrom(attrs[a.ref_attr_name])
                actual.name = a.name
                kept.append(actual)
            else:
                kept.append(a)
        del n.attribute[:]
        n.attribute.extend(kept)
        out.append(n)
    opset = next((o.version for o in fp.opset_import if o.domain in ("", "ai.onnx")), c.opset)
    return out, opset


def _rename_captured(graph, outer) -> None:
    """Rename, in a subgraph and the subgraphs under it, every input not defined in it
    (a value of the enclosing function body) with ``outer``."""
    import onnx

    local = {t.name for t in graph.initializer} | {i.name for i in graph.input}
    local |= {o for n in graph.node for o in n.output if o}
    for n in graph.node:
        for i, x in enumerate(n.input):
            if x and x not in local:
                n.input[i] = outer(x)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                _rename_captured(a.g, lambda x: x if x in local else outer(x))
    for o in graph.output:
        if o.name not in local:
            o.name = outer(o.name)


def expand_function(c: Converter, node) -> bool:
    """Convert ``node`` through its ONNX function body; False when it has none."""
    depth = getattr(c, "_function_depth", 0)
    if depth >= MAX_DEPTH or node.domain not in ("", "ai.onnx"):
        return False
    fp = function_body(c, node)
    if fp is None or not fp.node:
        return False
    nodes, opset = _instantiate(c, node, fp)
    for n in nodes:  # body outputs read later count as uses (Dropout's mask and friends check them)
        c.uses.update(i for i in n.input if i)
        c.reserved.update(o for o in n.output if o)
    saved_node, saved_opset = c.node, c.opset
    c._function_depth = depth + 1
    try:
        for n in nodes:
            c.node, c.opset = n, opset
            c.convert_node(n)
    except UnsupportedOpError as exc:
        c.node, c.opset = saved_node, saved_opset
        detail = exc.args[0].split(". Supported:")[0]
        raise c.unsupported(f"imported through its ONNX function definition, which needs: {detail}") from None
    finally:
        c.node, c.opset = saved_node, saved_opset
        c._function_depth = depth
    return True


convert.register_expander(expand_function)
