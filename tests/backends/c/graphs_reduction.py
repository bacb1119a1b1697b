"""Graphs of the reductions and matrix products for the C backend tests (``graphs.cases``
adds them): one quantized chain through BATCH_MATMUL (constant and activation operands,
adj_y, broadcast batch), SUM, REDUCE_MAX and L2_NORMALIZATION, and two ending in
ARG_MAX / ARG_MIN with an int32 output."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, Graph, OpType, verify
from edgekit.quantize import quantize


def reduction_graph(rng) -> Graph:
    g = Graph("reductions")
    for name, shape in [("x", (1, 6, 8)), ("mm", (1, 6, 8)), ("att", (1, 6, 6)), ("s", (1, 6, 1)),
                        ("r", (1, 1, 8)), ("a", (1, 6, 8)), ("y", (1, 6, 8))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_const("w", rng.standard_normal((8, 8)).astype(np.float32))
    op = g.add_op
    op(OpType.BATCH_MATMUL, ["x", "w"], ["mm"], {}, "project")
    op(OpType.BATCH_MATMUL, ["mm", "mm"], ["att"], {"adj_y": True}, "scores")
    op(OpType.SUM, ["att"], ["s"], {"axes": (2,), "keep_dims": True}, "sum")
    op(OpType.REDUCE_MAX, ["mm"], ["r"], {"axes": (1,), "keep_dims": True}, "reduce_max")
    op(OpType.ADD, ["s", "r"], ["a"], name="add")
    op(OpType.L2_NORMALIZATION, ["a"], ["y"], name="l2_normalization")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def arg_graph(rng, op_type=OpType.ARG_MAX) -> Graph:
    g = Graph(op_type.value.lower())
    for name, shape in [("x", (1, 6, 9)), ("mm", (1, 6, 7))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_tensor("i", (1, 6), DType.INT32)
    g.add_const("w", rng.standard_normal((1, 9, 7)).astype(np.float32))
    g.add_op(OpType.BATCH_MATMUL, ["x", "w"], ["mm"], {}, "project")
    g.add_op(op_type, ["mm"], ["i"], {"axis": 2}, op_type.value.lower())
    g.inputs, g.outputs = ["x"], ["i"]
    verify(g)
    return g


def inplace_reduction_graph(rng) -> Graph:
    """A chain the planner runs in place: L2_NORMALIZATION, then REDUCE_MAX and SUM over
    an input that dies there."""
    g = Graph("reductions_in_place")
    for name, shape in [("x", (1, 8, 16)), ("m", (1, 8, 16)), ("l", (1, 8, 16)), ("r", (1, 8, 4)),
                        ("s", (1, 8))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_const("w", rng.standard_normal((1, 16, 4)).astype(np.float32))
    g.add_const("c", rng.uniform(0.5, 2.0, (16,)).astype(np.float32))
    g.add_op(OpType.MUL, ["x", "c"], ["m"], name="scale")
    g.add_op(OpType.L2_NORMALIZATION, ["m"], ["l"], name="l2")
    g.add_op(OpType.BATCH_MATMUL, ["l", "w"], ["r"], name="project")
    g.add_op(OpType.SUM, ["r"], ["s"], {"axes": (2,)}, "sum")
    g.inputs, g.outputs = ["x"], ["s"]
    verify(g)
    return g


def reduction_cases(rng) -> dict[str, Graph]:
    out = {}
    for name, fn in (("reductions", reduction_graph), ("arg_max", arg_graph),
                     ("arg_min", lambda r: arg_graph(r, OpType.ARG_MIN)),
                     ("reductions_in_place", inplace_reduction_graph)):
        g = fn(rng)
        calib = rng.normal(size=(64,) + tuple(g.input_tensors()[0].shape[1:])).astype(np.float32)
        qg = quantize(g, calib).graph
        qg.name = name
        out[name] = qg
    return out
