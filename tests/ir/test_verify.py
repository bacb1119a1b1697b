"""The verifier names the op, the tensor and the problem."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import VerifyError
from edgekit.ir import DType, Graph, OpType, QuantParams, infer_shapes, verify


def conv_graph(out_shape=(1, 8, 8, 4), w_shape=(4, 3, 3, 2), pads=(1, 1, 1, 1)) -> Graph:
    g = Graph("t")
    g.add_tensor("x", (1, 8, 8, 2), DType.FLOAT32)
    w = g.add_const("w", np.ones(w_shape, np.float32)).name
    b = g.add_const("b", np.zeros(w_shape[0], np.float32)).name
    g.add_tensor("y", out_shape, DType.FLOAT32)
    g.add_op(OpType.CONV_2D, ["x", w, b], ["y"], {"pads": pads}, name="conv")
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_valid_graph_passes():
    verify(conv_graph())


def test_declared_shape_mismatch_names_op_and_tensor():
    expect = r"op 'conv' \(CONV_2D\): output 'y' is declared \[1, 8, 8, 5\] but the op produces \[1, 8, 8, 4\]"
    with pytest.raises(VerifyError, match=expect):
        verify(conv_graph(out_shape=(1, 8, 8, 5)))


def test_channel_mismatch():
    with pytest.raises(VerifyError, match="filter has 3 input channels, input has 2"):
        verify(conv_graph(w_shape=(4, 3, 3, 3)))


def test_infer_shapes_fixes_declared_shapes():
    g = conv_graph(out_shape=(0,), pads=(0, 0, 0, 0))
    infer_shapes(g)
    assert g.tensor("y").shape == (1, 6, 6, 4)
    verify(g)


def test_use_before_definition_and_missing_tensor():
    g = conv_graph()
    g.add_tensor("z", (1, 8, 8, 4), DType.FLOAT32)
    g.ops.insert(0, g.ops[0].__class__(OpType.RELU, ["y"], ["z"], {}, "early"))
    with pytest.raises(VerifyError, match="input 'y' is used before it is produced"):
        verify(g)
    g2 = conv_graph()
    g2.ops[0].inputs[0] = "nope"
    with pytest.raises(VerifyError, match="input 'nope' does not exist"):
        verify(g2)


def test_bad_attribute_value():
    g = conv_graph()
    g.ops[0].attrs["activation"] = "GELU"
    with pytest.raises(VerifyError, match="activation must be one of NONE, RELU, RELU6, RELU_N1_TO_1"):
        verify(g)


OUT_Q = QuantParams.per_tensor(0.1, 3)


def int8_fc(bias_scale: float, out_quant=OUT_Q, w_axis=0) -> Graph:
    g = Graph("q")
    g.add_tensor("x", (1, 4), DType.INT8, QuantParams.per_tensor(0.5, -2))
    g.add_const("w", np.ones((3, 4), np.int8), QuantParams.per_axis([0.01, 0.02, 0.03], [0, 0, 0], w_axis))
    bias_scales = np.array([0.005, 0.01, 0.015]) * bias_scale / 0.5
    g.add_const("b", np.zeros(3, np.int32), QuantParams.per_axis(bias_scales, [0, 0, 0], 0))
    g.add_tensor("y", (1, 3), DType.INT8, out_quant)
    g.add_op(OpType.FULLY_CONNECTED, ["x", "w", "b"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_int8_quantization_rules():
    verify(int8_fc(0.5))
    with pytest.raises(VerifyError, match="bias scale must be input_scale \\* weight_scale"):
        verify(int8_fc(0.7))
    with pytest.raises(VerifyError, match="tensor 'y' has no quantization parameters|int8 activations need"):
        verify(int8_fc(0.5, out_quant=None))


def test_per_channel_scale_count_checked():
    g = Graph("q")
    g.add_tensor("x", (1, 4), DType.INT8, QuantParams.per_tensor(0.5, 0))
    g.add_const("w", np.ones((3, 4), np.int8), QuantParams.per_axis([0.01, 0.02], [0, 0], 0))
    g.add_tensor("y", (1, 3), DType.INT8, QuantParams.per_tensor(0.1, 0))
    g.add_op(OpType.FULLY_CONNECTED, ["x", "w"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    with pytest.raises(VerifyError, match="tensor 'w' has 2 scales for 3 channels on axis 0"):
        verify(g)


def test_softmax_int8_output_quantization_is_fixed():
    g = Graph("s")
    g.add_tensor("x", (1, 10), DType.INT8, QuantParams.per_tensor(0.1, 0))
    g.add_tensor("y", (1, 10), DType.INT8, QuantParams.per_tensor(0.1, 0))
    g.add_op(OpType.SOFTMAX, ["x"], ["y"], name="sm")
    g.inputs, g.outputs = ["x"], ["y"]
    with pytest.raises(VerifyError, match="scale 0.00390625 and zero point -128"):
        verify(g)


def test_all_problems_reported_together():
    g = conv_graph(out_shape=(1, 8, 8, 5))
    g.outputs.append("ghost")
    with pytest.raises(VerifyError) as err:
        verify(g)
    text = str(err.value)
    assert "ghost" in text and "declared [1, 8, 8, 5]" in text
