"""Every operator of a model edgekit cannot import, not only the first.

``load_model`` stops at the first operator it cannot convert. ``unsupported_ops``
reads the whole model and names each unsupported operator with the nodes that use
it and what to try: for ONNX by converting node by node and standing in for each
rejected node's outputs with tensors of the shapes ONNX's shape inference gives
(nodes that only fail because they read such a stand-in are not reported); for
``.tflite`` from the operator codes; for PyTorch from the ATen ops of the exported
program.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import BadInputError, EdgekitError, ModelFormatError, UnsupportedOpError

MAX_NODES_SHOWN = 5


@dataclass
class UnsupportedUse:
    op: str
    nodes: list[str] = field(default_factory=list)
    detail: str = ""
    hint: str = ""

    def to_dict(self) -> dict:
        return {"op": self.op, "nodes": list(self.nodes), "detail": self.detail, "hint": self.hint}


# What to try, per ONNX op (or family), where there is something better than "decompose it".
_ONNX_HINTS = {
    "If": "control flow: export with static shapes so the exporter removes the branch",
    "Loop": "control flow: unroll the loop (export with a fixed sequence length)",
    "Scan": "control flow: unroll the scan (export with a fixed sequence length)",
    "NonZero": "data-dependent output shape: run it on the host after the model (cut the graph before it)",
    "Unique": "data-dependent output shape: run it on the host after the model",
    "NonMaxSuppression": "detection post-processing: run it on the host after the model (cut the graph before it)",
    "TopK": "run it on the host after the model, or use ArgMax for k=1",
    "Upsample": "deprecated since opset 10: re-export with opset 13 or later (it becomes Resize)",
    "Einsum": "rewrite the einsum as MatMul / Transpose / Mul before export",
    "LRN": "replace local response normalization with BatchNormalization",
    "InstanceNormalization": "export with opset 18 or later (GroupNormalization's function), or use LayerNorm",
    "RNN": "use LSTM or GRU, which edgekit imports",
    "Hardmax": "use ArgMax (one index per row) instead of a one-hot",
    "Round": "fold it into the quantization (int8 rounds already)",
}
_TFLITE_HINTS = {
    "CUSTOM": "custom operators have no definition edgekit can read: convert without select/custom ops",
    "WHILE": "control flow: convert with a fixed sequence length so the loop is unrolled",
    "IF": "control flow: convert with static shapes",
    "SHAPE": "dynamic shapes: convert with a fixed batch size (e.g. batch 1) so shapes are constants",
    "FLEX": "a TensorFlow (select) op: convert with TFLITE_BUILTINS only",
}


def _generic_hint(op: str, kind: str) -> str:
    if kind == "onnx":
        return f"decompose {op} into ops edgekit imports before export (docs/operators.md lists them)"
    if kind == "tflite":
        return (f"convert the source model so that {op} is expressed with supported builtins, "
                "or import the ONNX/PyTorch source instead (docs/operators.md)")
    return f"replace {op} with supported torch ops in the model, or export to ONNX and import that"


def _merge(found: dict[str, UnsupportedUse], op: str, node: str, detail: str, hint: str) -> None:
    use = found.get(op)
    if use is None:
        use = found[op] = UnsupportedUse(op, [], detail, hint)
    if node not in use.nodes:
        use.nodes.append(node)


def unsupported_ops(spec, fmt: str | None = None, input_shapes: dict | None = None) -> list[UnsupportedUse]:
    """The operators of a model file that edgekit cannot import (empty: it imports)."""
    from edgekit.frontends import detect_format

    fmt = fmt or detect_format(spec)
    if fmt == "onnx":
        return _onnx(spec, input_shapes)
    if fmt == "tflite":
        return _tflite(spec)
    if fmt == "torch":
        return _torch(spec, input_shapes)
    return []


# -- ONNX ---------------------------------------------------------------------------------

def _onnx(spec, input_shapes) -> list[UnsupportedUse]:
    import onnx

    from edgekit.frontends.onnx import SUPPORTED_ONNX_OPS
    from edgekit.frontends.onnx.convert import Converter
    from edgekit.frontends.onnx.functions import function_body
    from edgekit.frontends.onnx.loader import read_model
    from edgekit.frontends.onnx.values import Act, src_to_ir_shape
    from edgekit.ir.dtypes import DType

    proto, label, _ = read_model(spec)
    try:
        inferred = onnx.shape_inference.infer_shapes(proto).graph
        shapes = {vi.name: vi for vi in list(inferred.value_info) + list(inferred.output)}
    except Exception:  # noqa: BLE001 - without shapes, stand-ins are skipped
        shapes = {}
    found: dict[str, UnsupportedUse] = {}

    class Survey(Converter):
        def __init__(self, *args):
            super().__init__(*args)
            self._top = True
            self.tainted: set[str] = set()

        def convert_node(self, node):
            if not self._top:
                return super().convert_node(node)
            self._top = False
            try:
                super().convert_node(node)
            except (UnsupportedOpError, ModelFormatError, BadInputError) as exc:
                self._reject(node, exc)
            finally:
                self._top = True

        def _reject(self, node, exc):
            tainted = any(i in self.tainted for i in node.input if i)
            known = node.op_type in SUPPORTED_ONNX_OPS or function_body(self, node) is not None
            if not tainted or not known:
                if not isinstance(exc, UnsupportedOpError) and known:
                    raise exc
                detail = str(exc).split(". Supported:")[0]
                detail = detail.split(f"at node {self.node_name(node)!r}")[-1].lstrip(": ")
                if not known:
                    detail = "no converter and no ONNX function definition"
                hint = _ONNX_HINTS.get(node.op_type, _generic_hint(node.op_type, "onnx"))
                _merge(found, node.op_type, self.node_name(node), detail, hint)
            for out in node.output:
                if not out:
                    continue
                self.tainted.add(out)
                vi = shapes.get(out)
                tt = vi.type.tensor_type if vi is not None and vi.type.HasField("tensor_type") else None
                if tt is None or not tt.HasField("shape") or not all(d.HasField("dim_value") for d in tt.shape.dim):
                    continue
                name = self.new_name(f"{out}_standin")
                self.g.add_tensor(name, src_to_ir_shape([d.dim_value for d in tt.shape.dim]), DType.FLOAT32)
                self.env[out] = Act(name)

    conv = Survey(proto, label, input_shapes, SUPPORTED_ONNX_OPS)
    try:
        conv.run()
    except EdgekitError:
        pass  # outputs fed by stand-ins: the survey is complete once every node was visited
    return list(found.values())


# -- .tflite ------------------------------------------------------------------------------

def _tflite(spec) -> list[UnsupportedUse]:
    from edgekit.frontends.tflite.flatbuffer import read_tflite_file
    from edgekit.frontends.tflite.importer import SUPPORTED_TFLITE_OPS, load_tflite
    from edgekit.frontends.tflite.schema_enums import builtin_name

    fb = read_tflite_file(spec)
    found: dict[str, UnsupportedUse] = {}
    for sg in fb.subgraphs[:1]:
        for n, op in enumerate(sg.operators):
            code = fb.operator_codes[op.opcode_index]
            name = builtin_name(code.builtin_code) if code.custom_code is None else f"CUSTOM:{code.custom_code}"
            if name in SUPPORTED_TFLITE_OPS:
                continue
            out = sg.tensors[op.outputs[0]].name if op.outputs else ""
            key = "FLEX" if name.startswith("CUSTOM:Flex") else name.split(":")[0]
            _merge(found, name, f"#{n}" + (f" -> {out}" if out else ""),
                   "not a builtin edgekit imports", _TFLITE_HINTS.get(key, _generic_hint(name, "tflite")))
    if not found:
        try:
            load_tflite(spec)
        except UnsupportedOpError as exc:  # a supported operator in a variant edgekit does not take
            detail = str(exc).split(". Supported:")[0]
            _merge(found, exc.op, exc.node, detail, _generic_hint(exc.op, "tflite"))
    return list(found.values())


# -- PyTorch ------------------------------------------------------------------------------

def _torch(spec, input_shapes) -> list[UnsupportedUse]:
    from edgekit.frontends import torch_importer as ti

    torch = ti._import_torch()
    module, ep, name, found_examples, pyfile = ti._resolve_spec(torch, spec)
    if ep is None:
        module.eval()
        shapes = list(input_shapes.values()) if isinstance(input_shapes, dict) else input_shapes
        examples = ti._example_inputs(torch, module, None, shapes, found_examples, pyfile)
        ep = ti._export(torch, module, examples, name)
    try:
        ep = ep.run_decompositions({})
    except Exception:  # noqa: BLE001 - as load_torch: a normalized program is fine as is
        pass
    known = set(ti._HANDLERS) | ti._IDENTITY | ti._SKIP
    found: dict[str, UnsupportedUse] = {}
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        key = ti._op_key(node.target)
        if key in known or str(node.target) in known:
            continue
        _merge(found, key, node.name, "no converter for this ATen op", _generic_hint(key, "torch"))
    if not found:
        try:
            ti.load_torch(ep)
        except UnsupportedOpError as exc:
            _merge(found, exc.op, exc.node, str(exc).split(". Supported:")[0], _generic_hint(exc.op, "torch"))
    return list(found.values())


def describe(uses: list[UnsupportedUse], source: str | Path) -> str:
    """One line per unsupported operator, for messages."""
    lines = [f"{source}: {len(uses)} unsupported operator(s):"]
    for u in uses:
        nodes = ", ".join(u.nodes[:MAX_NODES_SHOWN]) + (f" and {len(u.nodes) - MAX_NODES_SHOWN} more"
                                                        if len(u.nodes) > MAX_NODES_SHOWN else "")
        lines.append(f"  {u.op} ({len(u.nodes)}x: {nodes}): {u.detail}; try: {u.hint}")
    return "\n".join(lines)
