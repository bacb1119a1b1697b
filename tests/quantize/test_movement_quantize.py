"""Quantizing the data-movement ops: every output of a SPLIT / UNPACK and of the slices
shares its input's parameters, PACK's inputs share one group (an input with fixed
parameters, a LOGISTIC output, is requantized first), GATHER's constant indices stay
int32, CAST is refused with the reason; the quantized graph is bit-exact with TFLM."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import UnsupportedOpError
from edgekit.ir import DType, Graph, OpType
from edgekit.quantize import quantize
from edgekit.reference.interpreter import Interpreter


def _graph() -> Graph:
    g = Graph("movement_q")
    for name, shape in [("x", (1, 6, 8)), ("a", (1, 6, 3)), ("b", (1, 6, 5)), ("s", (1, 3, 5)),
                        ("g", (1, 3, 4)), ("lg", (1, 3, 4)), ("p", (1, 2, 3, 4)), ("u0", (1, 3, 4)),
                        ("u1", (1, 3, 4)), ("y", (1, 3, 4))]:
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_const("idx", np.array([4, 0, 2, 2], np.int32))
    g.add_op(OpType.SPLIT, ["x"], ["a", "b"], {"axis": 2, "sizes": (3, 5)}, "split")
    g.add_op(OpType.STRIDED_SLICE, ["b"], ["s"], {"begin": (0, 5, 0), "end": (1, -1, 5), "strides": (1, -2, 1)},
             "strided")
    g.add_op(OpType.GATHER, ["s", "idx"], ["g"], {"axis": 2}, "gather")
    g.add_op(OpType.LOGISTIC, ["g"], ["lg"], name="logistic")
    g.add_op(OpType.PACK, ["g", "lg"], ["p"], {"axis": 1}, "pack")
    g.add_op(OpType.UNPACK, ["p"], ["u0", "u1"], {"axis": 1}, "unpack")
    g.add_op(OpType.MUL, ["u0", "u1"], ["y"], name="mul")
    g.inputs, g.outputs = ["x"], ["y", "a"]
    return g


def test_movement_ops_share_parameters_and_run_bit_exact_with_tflm():
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(32, 6, 8)).astype(np.float32)
    q = quantize(_graph(), calib).graph
    t = q.tensor
    for outs, src in ((("a", "b"), "x"), (("s",), "b"), (("g",), "s"), (("u0", "u1"), "p")):
        for o in outs:
            assert t(o).quant == t(src).quant, o
    pack = next(op for op in q.ops if op.type is OpType.PACK)
    assert all(t(i).quant == t("p").quant for i in pack.inputs)
    assert any(op.type is OpType.QUANTIZE for op in q.ops)  # the LOGISTIC output, requantized for PACK
    gather = next(op for op in q.ops if op.type is OpType.GATHER)
    idx = t(gather.inputs[1])
    assert idx.dtype is DType.INT32 and np.array_equal(idx.data, [4, 0, 2, 2])

    from tests.support import tflite_oracle as orc

    if not orc.HAVE_TFLM:
        pytest.skip("tflite_micro is not installed")
    from edgekit.backends.tflite.writer import tflite_bytes

    io = q.metadata["io_quant"]["x"]
    x = np.clip(np.round(calib[:4] / io["scale"]) + io["zero_point"], -128, 127).astype(np.int8)
    ref = Interpreter(q).run([x])
    model = tflite_bytes(q)
    for i in range(len(x)):
        got = orc.run_tflm(model, [x[i:i + 1]], n_outputs=2)
        for name, y in zip(q.outputs, got):
            assert np.array_equal(y, ref[name][i:i + 1]), name


def test_cast_is_not_quantizable():
    g = Graph("cast")
    g.add_tensor("x", (1, 4), DType.FLOAT32)
    g.add_tensor("i", (1, 4), DType.INT32)
    g.add_tensor("y", (1, 4), DType.FLOAT32)
    g.add_op(OpType.CAST, ["x"], ["i"], name="to_int")
    g.add_op(OpType.CAST, ["i"], ["y"], name="to_float")
    g.inputs, g.outputs = ["x"], ["y"]
    with pytest.raises(UnsupportedOpError, match="CAST"):
        quantize(g, np.zeros((4, 4), np.float32))


def test_squeeze_and_expand_dims_are_aliases_in_the_arena():
    from edgekit.backends.c.plan import plan_arena

    q = quantize(_graph(), np.random.default_rng(1).normal(size=(8, 6, 8)).astype(np.float32)).graph
    out = q.tensor("y")
    q.add_tensor("e", (1, 3, 1, 4), DType.INT8, out.quant)
    q.add_tensor("z", (1, 3, 4), DType.INT8, out.quant)
    q.add_op(OpType.EXPAND_DIMS, ["y"], ["e"], {"axis": 2}, "expand")
    q.add_op(OpType.SQUEEZE, ["e"], ["z"], {"axes": (2,)}, "squeeze")
    q.outputs = ["z", "a"]
    plan = plan_arena(q)
    assert plan.offsets["y"] == plan.offsets["e"] == plan.offsets["z"]
