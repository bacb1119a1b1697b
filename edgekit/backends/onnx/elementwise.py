"""IR -> ONNX for the elementwise ops (emitters of ``writer._Writer``).

HARD_SWISH -> HardSwish (opset 14+; below: x * HardSigmoid(x, 1/6, 1/2)), LEAKY_RELU ->
LeakyRelu, PRELU -> PRelu, ABS/NEG/EXP/LOG/SQRT -> Abs/Neg/Exp/Log/Sqrt, RSQRT ->
Reciprocal(Sqrt), GELU -> Gelu (opset 20+; below: the erf or tanh formula),
MAXIMUM/MINIMUM -> Max/Min, DIV -> Div (its fused activation after it, as the writer
adds for every op), SQUARED_DIFFERENCE -> Sub then Mul by itself. Binary operands are
laid out as the writer lays out ADD's (constants broadcast against a 4-D tensor in NCHW).
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.ir.graph import Op
from edgekit.ir.ops import OpType
from edgekit.ir.shapes_elementwise import ELEMENTWISE_OPS

TO_NCHW = (0, 3, 1, 2)
_SIMPLE = {OpType.ABS: "Abs", OpType.NEG: "Neg", OpType.EXP: "Exp", OpType.LOG: "Log", OpType.SQRT: "Sqrt"}
_BINARY = {OpType.MAXIMUM: "Max", OpType.MINIMUM: "Min", OpType.DIV: "Div", OpType.PRELU: "PRelu"}
ELEMENTWISE_ONNX_OPS = ELEMENTWISE_OPS


def _operands(w, op: Op) -> list[str]:
    g = w.g
    rout = g.tensor(op.outputs[0]).rank
    ts = [g.tensor(n) for n in op.inputs[:2]]
    runtime4 = [t.rank == 4 and not t.is_const for t in ts]
    names = []
    for i, t in enumerate(ts):
        if rout != 4:
            names.append(w.f(t.name))
        elif t.is_const:
            expand = 4 - t.rank
            shape4 = (1,) * expand + t.shape
            nchw = [shape4[p] for p in TO_NCHW]
            strip = 0
            if runtime4[1 - i]:
                while strip < 3 and nchw[strip] == 1:
                    strip += 1
            names.append(w.const(t.name, expand=expand, perm=TO_NCHW, strip=strip))
        elif t.rank == 4:
            names.append(w.f(t.name))
        else:
            x = w.node("Reshape", [w.f(t.name), w.ints((1,) * (4 - t.rank) + t.shape, "shape")])
            names.append(w.node("Transpose", [x], perm=list(TO_NCHW)))
    return names


def _scalar(w, value: float, base: str) -> str:
    return w.scalar(np.float32(value), np.float32, base)


def _gelu(w, x: str, approximate: bool) -> str:
    if w.opset >= 20:
        return w.node("Gelu", [x], approximate="tanh" if approximate else "none")
    half = w.node("Mul", [x, _scalar(w, 0.5, "gelu_half")])
    if approximate:
        cube = w.node("Mul", [w.node("Mul", [x, x]), x])
        inner = w.node("Add", [x, w.node("Mul", [cube, _scalar(w, 0.044715, "gelu_c")])])
        t = w.node("Tanh", [w.node("Mul", [inner, _scalar(w, math.sqrt(2 / math.pi), "gelu_k")])])
    else:
        t = w.node("Erf", [w.node("Div", [x, _scalar(w, math.sqrt(2.0), "gelu_sqrt2")])])
    return w.node("Mul", [half, w.node("Add", [t, _scalar(w, 1.0, "gelu_one")])])


def emit_elementwise(w, op: Op, a: dict) -> str:
    t = op.type
    if t in _SIMPLE:
        return w.node(_SIMPLE[t], [w.f(op.inputs[0])])
    if t is OpType.HARD_SWISH:
        x = w.f(op.inputs[0])
        if w.opset >= 14:
            return w.node("HardSwish", [x])
        return w.node("Mul", [x, w.node("HardSigmoid", [x], alpha=1.0 / 6.0, beta=0.5)])
    if t is OpType.LEAKY_RELU:
        return w.node("LeakyRelu", [w.f(op.inputs[0])], alpha=float(a["alpha"]))
    if t is OpType.RSQRT:
        return w.node("Reciprocal", [w.node("Sqrt", [w.f(op.inputs[0])])])
    if t is OpType.GELU:
        return _gelu(w, w.f(op.inputs[0]), bool(a["approximate"]))
    names = _operands(w, op)
    if t is OpType.SQUARED_DIFFERENCE:
        d = w.node("Sub", names)
        return w.node("Mul", [d, d])
    return w.node(_BINARY[t], names)
