"""Graphs of the data-movement ops for the C backend tests (``graphs.cases`` adds them):
one quantized chain through SPLIT, STRIDED_SLICE (negative strides), SLICE, GATHER,
SPACE_TO_DEPTH, DEPTH_TO_SPACE, UNPACK, PACK (one input requantized), EXPAND_DIMS and
SQUEEZE, and two hand-made CAST graphs (int8 -> float32 and float32 -> int8)."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, Graph, OpType, QuantParams, verify
from edgekit.quantize import quantize


def movement_graph() -> Graph:
    g = Graph("movement")
    for name, shape in [("x", (1, 6, 8, 8)), ("a", (1, 6, 8, 4)), ("b", (1, 6, 8, 4)),
                        ("s1", (1, 6, 4, 4)), ("s2", (1, 6, 4, 4)), ("s", (1, 6, 4, 4)),
                        ("g1", (1, 6, 4, 5)), ("sd", (1, 3, 2, 20)), ("ds", (1, 6, 4, 5)),
                        ("u0", (1, 6, 5)), ("u1", (1, 6, 5)), ("u2", (1, 6, 5)), ("u3", (1, 6, 5)),
                        ("lg", (1, 6, 5)), ("p", (1, 6, 3, 5)), ("e", (1, 6, 3, 1, 5)), ("y", (1, 6, 3, 5))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_const("idx", np.array([3, 0, 2, 2, 1], np.int32))
    op = g.add_op
    op(OpType.SPLIT, ["x"], ["a", "b"], {"axis": 3, "sizes": (4, 4)}, "split")
    op(OpType.STRIDED_SLICE, ["a"], ["s1"], {"begin": (0, 5, 7, 0), "end": (1, -1, -1, 4),
                                             "strides": (1, -1, -2, 1)}, "strided_slice")
    op(OpType.SLICE, ["b"], ["s2"], {"begin": (0, 0, 2, 0), "size": (1, 6, 4, 4)}, "slice")
    op(OpType.ADD, ["s1", "s2"], ["s"], name="add")
    op(OpType.GATHER, ["s", "idx"], ["g1"], {"axis": 3}, "gather")
    op(OpType.SPACE_TO_DEPTH, ["g1"], ["sd"], {"block_size": 2}, "space_to_depth")
    op(OpType.DEPTH_TO_SPACE, ["sd"], ["ds"], {"block_size": 2}, "depth_to_space")
    op(OpType.UNPACK, ["ds"], ["u0", "u1", "u2", "u3"], {"axis": 2}, "unpack")
    op(OpType.LOGISTIC, ["u1"], ["lg"], name="logistic")
    op(OpType.PACK, ["u0", "lg", "u3"], ["p"], {"axis": 2}, "pack")
    op(OpType.EXPAND_DIMS, ["p"], ["e"], {"axis": 3}, "expand_dims")
    op(OpType.SQUEEZE, ["e"], ["y"], {"axes": (3,)}, "squeeze")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def slice_inplace_graph() -> Graph:
    """A strided slice and a slice that read ahead of what they write: the planner lets
    them write over their (dying) inputs."""
    g = Graph("slice_inplace")
    for name, shape in [("x", (1, 24, 8)), ("r", (1, 24, 8)), ("s", (1, 12, 8)), ("t", (1, 12, 8)),
                        ("u", (1, 5, 8)), ("y", (1, 5, 8))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_op(OpType.RELU, ["x"], ["r"], name="relu")
    g.add_op(OpType.STRIDED_SLICE, ["r"], ["s"], {"begin": (0, 0, 0), "end": (1, 24, 8), "strides": (1, 2, 1)},
             "every_other")
    g.add_op(OpType.TANH, ["s"], ["t"], name="tanh")
    g.add_op(OpType.SLICE, ["t"], ["u"], {"begin": (0, 3, 0), "size": (1, 5, 8)}, "window")
    g.add_op(OpType.LOGISTIC, ["u"], ["y"], name="logistic")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def cast_graphs() -> dict[str, Graph]:
    q = QuantParams.per_tensor(0.05, 3)
    to_float = Graph("cast_s8_f32")
    to_float.add_tensor("x", (1, 4, 5), DType.INT8, q)
    to_float.add_tensor("y", (1, 4, 5), DType.FLOAT32)
    to_float.add_op(OpType.CAST, ["x"], ["y"], name="cast")
    to_int = Graph("cast_f32_s8")
    to_int.add_tensor("x", (1, 4, 5), DType.FLOAT32)
    to_int.add_tensor("y", (1, 4, 5), DType.INT8, q)
    to_int.add_op(OpType.CAST, ["x"], ["y"], name="cast")
    for g in (to_float, to_int):
        g.inputs, g.outputs = ["x"], ["y"]
        verify(g)
    return {g.name: g for g in (to_float, to_int)}


def movement_cases(rng) -> dict[str, Graph]:
    g = movement_graph()
    calib = (rng.normal(size=(64, 6, 8, 8)) * 1.5).astype(np.float32)
    qg = quantize(g, calib).graph
    qg.name = "movement"
    sg = quantize(slice_inplace_graph(), (rng.normal(size=(64, 24, 8)) * 1.5).astype(np.float32)).graph
    sg.name = "slice_inplace"
    return {"movement": qg, "slice_inplace": sg, **cast_graphs()}
