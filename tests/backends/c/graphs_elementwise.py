"""A graph of the elementwise family for the C backend tests (``graphs.cases`` adds it):
one quantized network through HARD_SWISH, LEAKY_RELU, PRELU (per-channel slope), ABS,
EXP, LOG, SQRT, RSQRT, GELU (both forms), NEG (quantized as MUL by -1), MAXIMUM,
MINIMUM (one operand broadcast), DIV and SQUARED_DIFFERENCE; and a hand-made int8 NEG."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, Graph, OpType, QuantParams, verify
from edgekit.quantize import quantize


def elementwise_family_graph(rng) -> Graph:
    g = Graph("elementwise_family")
    c = 8
    names = ["x", "hs", "lr", "pr", "ab", "pos", "ex", "lg", "sq", "rs", "ge", "gt", "ng", "mx", "mn", "row",
             "dv", "sd", "s1", "s2", "y"]
    for n in names:
        g.add_tensor(n, (1, 4, 5, 1) if n == "row" else (1, 4, 5, c), DType.FLOAT32)
    g.add_const("slope", (rng.uniform(-0.5, 0.5, c)).astype(np.float32))
    g.add_const("eps", np.array([0.25], np.float32))
    g.add_const("wrow", rng.normal(size=(1, 1, 1, c)).astype(np.float32) * 0.3)
    op = g.add_op
    op(OpType.HARD_SWISH, ["x"], ["hs"], name="hard_swish")
    op(OpType.LEAKY_RELU, ["hs"], ["lr"], {"alpha": 0.1}, "leaky_relu")
    op(OpType.PRELU, ["x", "slope"], ["pr"], name="prelu")
    op(OpType.ABS, ["pr"], ["ab"], name="abs")
    op(OpType.ADD, ["ab", "eps"], ["pos"], name="positive")
    op(OpType.EXP, ["lr"], ["ex"], name="exp")
    op(OpType.LOG, ["pos"], ["lg"], name="log")
    op(OpType.SQRT, ["pos"], ["sq"], name="sqrt")
    op(OpType.RSQRT, ["pos"], ["rs"], name="rsqrt")
    op(OpType.GELU, ["x"], ["ge"], name="gelu")
    op(OpType.GELU, ["hs"], ["gt"], {"approximate": True}, "gelu_tanh")
    op(OpType.NEG, ["ge"], ["ng"], name="neg")
    op(OpType.MAXIMUM, ["lg", "ng"], ["mx"], name="maximum")
    op(OpType.MEAN, ["sq"], ["row"], {"axes": (3,), "keep_dims": True}, "row_mean")
    op(OpType.MINIMUM, ["ex", "row"], ["mn"], name="minimum")
    op(OpType.DIV, ["mx", "pos"], ["dv"], {"activation": "RELU6"}, "div")
    op(OpType.SQUARED_DIFFERENCE, ["rs", "gt"], ["sd"], name="squared_difference")
    op(OpType.ADD, ["dv", "mn"], ["s1"], name="sum1")
    op(OpType.MUL, ["sd", "wrow"], ["s2"], name="scale")
    op(OpType.ADD, ["s1", "s2"], ["y"], name="sum2")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def neg_int8_graph() -> Graph:
    """A hand-made int8 NEG (the quantizer makes MUL by -1 of a float NEG): LiteRT's raw
    negation, with the output at the input's scale and minus its zero point."""
    g = Graph("neg_int8")
    g.add_tensor("x", (1, 3, 4, 5), DType.INT8, QuantParams.per_tensor(0.05, 5))
    g.add_tensor("y", (1, 3, 4, 5), DType.INT8, QuantParams.per_tensor(0.05, -5))
    g.add_op(OpType.NEG, ["x"], ["y"], name="neg")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def elementwise_family_cases(rng) -> dict[str, Graph]:
    g = elementwise_family_graph(rng)
    calib = (rng.normal(size=(64, 4, 5, 8)) * 1.5).astype(np.float32)
    q = quantize(g, calib).graph
    q.name = "elementwise_family"
    neg = neg_int8_graph()
    return {q.name: q, neg.name: neg}
