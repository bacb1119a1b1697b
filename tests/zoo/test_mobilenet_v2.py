"""MobileNetV2 (width 0.35, 96x96x3) of the zoo end to end on the host: imported from
torch (float equal to torch's outputs; inverted residuals as CONV_2D / DEPTHWISE_CONV_2D
with fused RELU6 and residual ADDs), quantized by edgekit (close to float), int8
bit-exact with TFLite Micro (every op of it is a TFLM builtin), compiled for cortex-m7."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import checks  # noqa: E402
from tests.zoo import mobilenet_v2 as mn  # noqa: E402

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
    assert types.count(OpType.DEPTHWISE_CONV_2D) == 17
    assert types.count(OpType.ADD) == 10  # the residual connections
    assert OpType.RELU6 not in types  # fused into the convolutions


def test_int8_is_close_to_float(float_graph):
    x = mn.inputs(CALIB + TEST)[CALIB:]
    ref, ours = checks.float_and_fake_quantized(float_graph, mn.inputs(CALIB), x, layout="source")
    ref, ours = ref[float_graph.outputs[0]], ours[float_graph.outputs[0]]
    sqnr = 10 * np.log10((ref ** 2).mean() / ((ours - ref) ** 2).mean())
    assert sqnr > 8, sqnr  # random weights through 17 blocks: about 10 dB measured


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(quantized):
    g = quantized.graph
    checks.check_bit_exact_with_tflm(g, checks.int8_inputs(g, mn.inputs(CALIB + 3)[CALIB:], nchw=True))


def test_compiles_for_cortex_m7(quantized, tmp_path):
    _, kernels = checks.compile_for_cortex_m7(quantized.graph, tmp_path / "mobilenet_v2")
    assert {"depthwise_conv2d", "add", "mean", "fully_connected"} <= kernels
    assert any(k.startswith("conv2d") for k in kernels)
