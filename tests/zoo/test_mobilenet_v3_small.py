"""MobileNetV3-small of the zoo end to end on the host: imported from torch (float equal
to torch's outputs; hard-swish as HARD_SWISH, squeeze-excite as MEAN + 1x1 convs +
hard-sigmoid + a broadcast MUL), quantized by edgekit (close to float), int8 bit-exact
with TFLite Micro (every op of it is a TFLM builtin), compiled for cortex-m7."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import checks  # noqa: E402
from tests.zoo import mobilenet_v3_small as mn  # noqa: E402

CALIB, TEST = 24, 8


@pytest.fixture(scope="module")
def float_graph():
    return mn.float_graph()


@pytest.fixture(scope="module")
def quantized(float_graph):
    return quantize(float_graph, mn.inputs(CALIB))


def test_float_graph_matches_torch(float_graph):
    checks.check_float_matches_torch(mn, float_graph, mn.inputs(4), layout="source")
    types = [op.type for op in float_graph.ops]
    assert types.count(OpType.HARD_SWISH) == 19  # stem, 8 blocks x 2, last conv, head
    assert types.count(OpType.MEAN) == 9 + 1  # 9 squeeze-excites and the global pool
    # each excite is a MUL of the feature map by a [1, 1, 1, C] gate
    g = float_graph
    gates = [op for op in g.ops if op.type is OpType.MUL
             and g.tensor(op.inputs[1]).shape[1:3] == (1, 1) and not g.tensor(op.inputs[1]).is_const]
    assert len(gates) == 9


def test_int8_is_close_to_float(float_graph, quantized):
    x = mn.inputs(CALIB + TEST)[CALIB:]
    ref, ours = checks.float_and_fake_quantized(float_graph, mn.inputs(CALIB), x, layout="source")
    ref, ours = ref[float_graph.outputs[0]], ours[float_graph.outputs[0]]
    sqnr = 10 * np.log10((ref ** 2).mean() / ((ours - ref) ** 2).mean())
    assert sqnr > 15, sqnr  # about 20 dB measured
    # the SE gate's MUL has its own output range (TFLite's rule), not one of its inputs'
    q = quantized.graph
    gate_mul = next(op for op in q.ops if op.type is OpType.MUL and q.tensor(op.inputs[1]).shape[1:3] == (1, 1)
                    and not q.tensor(op.inputs[1]).is_const)
    qo = q.tensor(gate_mul.outputs[0]).quant
    assert all(qo != q.tensor(n).quant for n in gate_mul.inputs)


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(quantized):
    g = quantized.graph
    checks.check_bit_exact_with_tflm(g, checks.int8_inputs(g, mn.inputs(CALIB + 3)[CALIB:], nchw=True))


def test_compiles_for_cortex_m7(quantized, tmp_path):
    _, kernels = checks.compile_for_cortex_m7(quantized.graph, tmp_path / "mobilenet_v3_small")
    assert {"depthwise_conv2d", "lut", "mul", "add", "mean"} <= kernels
    assert any(k.startswith("conv2d") for k in kernels)
