"""The hoist_elementwise pass: an activation between layout ops moves above them (float
graphs only), so it fuses into the op before and the layout ops cancel; the values and
the graph's output names stay."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, Graph, OpType, QuantParams
from edgekit.ir.passes import run_passes
from edgekit.reference.interpreter import Interpreter


def _chain(dtype=DType.FLOAT32, q=None) -> Graph:
    """conv -> reshape [N, L, C] -> transpose [N, C, L] -> relu -> transpose -> reshape -> conv."""
    rng = np.random.default_rng(0)
    g = Graph("chain")
    for name, shape in [("x", (1, 1, 9, 3)), ("c", (1, 1, 9, 4)), ("r", (1, 9, 4)), ("t", (1, 4, 9)),
                        ("a", (1, 4, 9)), ("t2", (1, 9, 4)), ("v", (1, 1, 9, 4)), ("y", (1, 1, 9, 2))]:
        g.add_tensor(name, shape, dtype, q)
    wdt = DType.FLOAT32 if dtype is DType.FLOAT32 else DType.INT8
    w1 = rng.normal(size=(4, 1, 3, 3)).astype(np.float32)
    w2 = rng.normal(size=(2, 1, 1, 4)).astype(np.float32)
    wq = QuantParams.per_tensor(0.01, 0) if q is not None else None
    if q is not None:
        w1, w2 = (np.clip(np.round(w / 0.01), -127, 127).astype(np.int8) for w in (w1, w2))
    g.add_const("w1", w1, wq, wdt)
    g.add_const("w2", w2, wq, wdt)
    g.add_op(OpType.CONV_2D, ["x", "w1"], ["c"], {"pads": (0, 1, 0, 1)}, "conv1")
    g.add_op(OpType.RESHAPE, ["c"], ["r"], {"shape": (1, 9, 4)}, "to_nlc")
    g.add_op(OpType.TRANSPOSE, ["r"], ["t"], {"perm": (0, 2, 1)}, "to_ncl")
    g.add_op(OpType.RELU, ["t"], ["a"], name="relu")
    g.add_op(OpType.TRANSPOSE, ["a"], ["t2"], {"perm": (0, 2, 1)}, "back_nlc")
    g.add_op(OpType.RESHAPE, ["t2"], ["v"], {"shape": (1, 1, 9, 4)}, "back_nhwc")
    g.add_op(OpType.CONV_2D, ["v", "w2"], ["y"], name="conv2")
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_activation_fuses_and_transposes_cancel():
    g = _chain()
    x = np.random.default_rng(1).normal(size=(3, 1, 9, 3)).astype(np.float32)
    before = Interpreter(g).run([x])["y"]
    run_passes(g)
    assert [op.type for op in g.ops] == [OpType.CONV_2D, OpType.CONV_2D]
    assert g.ops[0].attrs["activation"] == "RELU" and g.outputs == ["y"]
    np.testing.assert_allclose(Interpreter(g).run([x])["y"], before, rtol=1e-6, atol=1e-6)


def test_int8_graphs_are_left_alone():
    g = _chain(DType.INT8, QuantParams.per_tensor(0.1, 0))
    run_passes(g, ["hoist_elementwise"])
    assert [op.type for op in g.ops][:4] == [OpType.CONV_2D, OpType.RESHAPE, OpType.TRANSPOSE, OpType.RELU]


def test_a_graph_output_between_layout_ops_keeps_its_name_and_values():
    g = _chain()
    g.outputs = ["a", "y"]  # the activation's output is read by the caller too
    x = np.random.default_rng(2).normal(size=(2, 1, 9, 3)).astype(np.float32)
    before = Interpreter(g).run([x])
    run_passes(g, ["hoist_elementwise"])
    ops = [op.type for op in g.ops]
    assert ops.index(OpType.RELU) < ops.index(OpType.TRANSPOSE)  # moved above the layout ops
    producer = g.producers()["a"]
    assert producer.type is OpType.TRANSPOSE and g.outputs == ["a", "y"]
    after = Interpreter(g).run([x])
    for name in ("a", "y"):
        np.testing.assert_array_equal(after[name], before[name])
