"""Shape rules against hand-computed cases and TFLite's SAME padding definition."""

from __future__ import annotations

import pytest

from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.ir.shapes import conv_output_hw, infer_op_shapes, resolve_reshape, same_pads


@pytest.mark.parametrize("size,k,s,d,expect", [
    (49, 10, 2, 1, (4, 5)),   # KWS first conv rows: out 25, total pad 9 -> 4 before, 5 after
    (10, 4, 2, 1, (1, 1)),    # KWS first conv cols: out 5, total pad (5-1)*2+4-10 = 2
    (8, 3, 1, 1, (1, 1)),
    (8, 3, 2, 1, (0, 1)),
    (7, 3, 1, 2, (2, 2)),     # dilation 2: effective kernel 5
    (5, 1, 1, 1, (0, 0)),
])
def test_same_pads_hand_cases(size, k, s, d, expect):
    t, l, b, r = same_pads((size, size), (k, k), (s, s), (d, d))
    assert (t, b) == expect and (l, r) == expect
    oh, _ = conv_output_hw((size, size), (k, k), (s, s), (d, d), (t, l, b, r))
    assert oh == -(-size // s)  # SAME keeps ceil(size / stride)


def test_conv_output_rejects_window_larger_than_input():
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_hw((2, 2), (3, 3), (1, 1), (1, 1), (0, 0, 0, 0))


def test_reshape_resolution():
    assert resolve_reshape((1, 1, 1, 64), (1, -1)) == (1, 64)
    with pytest.raises(ValueError, match="more than one -1"):
        resolve_reshape((2, 3), (-1, -1))
    with pytest.raises(ValueError, match="cannot reshape"):
        resolve_reshape((2, 3), (4, 2))


def test_op_shape_rules():
    attrs = normalize_attrs(OpType.DEPTHWISE_CONV_2D, {"depth_multiplier": 2, "strides": (2, 2)})
    assert infer_op_shapes(OpType.DEPTHWISE_CONV_2D, [(1, 9, 9, 3), (1, 3, 3, 6), None], attrs) == [(1, 4, 4, 6)]
    fc = normalize_attrs(OpType.FULLY_CONNECTED, {})
    assert infer_op_shapes(OpType.FULLY_CONNECTED, [(2, 4, 4, 2), (10, 32)], fc) == [(2, 10)]
    mean = normalize_attrs(OpType.MEAN, {"axes": (1, 2), "keep_dims": True})
    assert infer_op_shapes(OpType.MEAN, [(1, 5, 5, 8)], mean) == [(1, 1, 1, 8)]
    cat = normalize_attrs(OpType.CONCATENATION, {"axis": -1})
    assert infer_op_shapes(OpType.CONCATENATION, [(1, 4, 4, 2), (1, 4, 4, 3)], cat) == [(1, 4, 4, 5)]
    with pytest.raises(ValueError, match="do not broadcast"):
        infer_op_shapes(OpType.ADD, [(1, 4), (1, 3)], normalize_attrs(OpType.ADD, {}))
    pad = normalize_attrs(OpType.PAD, {"pads": [[0, 0], [1, 2], [3, 4], [0, 0]]})
    assert infer_op_shapes(OpType.PAD, [(1, 5, 5, 2)], pad) == [(1, 8, 12, 2)]


def test_scalar_constants_and_inputs_stay_scalar():
    import numpy as np

    from edgekit.ir import DType, Graph
    from edgekit.reference.interpreter import Interpreter

    g = Graph()
    g.add_tensor("a", (), DType.FLOAT32)
    c = g.add_const("c", np.array(2.0, np.float32))
    g.add_tensor("y", (), DType.FLOAT32)
    g.add_op(OpType.MUL, ["a", "c"], ["y"])
    g.inputs, g.outputs = ["a"], ["y"]
    assert c.shape == () and c.data.shape == ()
    y = Interpreter(g).run([np.array(3.0)])["y"]
    assert y.shape == () and y == 6.0


def test_inputs_without_batch_axis_are_not_batched():
    import numpy as np

    from edgekit.ir import DType, Graph
    from edgekit.reference.interpreter import Interpreter

    g = Graph()
    g.add_tensor("a", (3, 4, 5), DType.FLOAT32)
    g.add_tensor("b", (5,), DType.FLOAT32)
    g.add_tensor("y", (3, 4, 5), DType.FLOAT32)
    g.add_op(OpType.ADD, ["a", "b"], ["y"])
    g.inputs, g.outputs = ["a", "b"], ["y"]
    b = np.arange(5, dtype=np.float32)
    assert (Interpreter(g).run([np.ones((3, 4, 5)), b])["y"] == 1 + b).all()
