"""The 1-D conv network on accelerometer windows of the zoo end to end on the host:
imported from torch (float equal to torch's outputs; every Conv1d a CONV_2D or
DEPTHWISE_CONV_2D over an NHWC [N, 1, L, C] view), quantized by edgekit (close to float),
int8 bit-exact with TFLite Micro (every op of it is a TFLM builtin), compiled for
cortex-m7 with the C backend."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import accel_conv1d as ac  # noqa: E402
from tests.zoo import checks  # noqa: E402


@pytest.fixture(scope="module")
def float_graph():
    return ac.float_graph()


@pytest.fixture(scope="module")
def int8_graph(float_graph):
    return quantize(float_graph, ac.inputs(64)).graph


def test_float_graph_matches_torch(float_graph):
    checks.check_float_matches_torch(ac, float_graph, ac.inputs(8), layout="source")
    types = [op.type for op in float_graph.ops]
    assert {OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.MAX_POOL_2D, OpType.MEAN} <= set(types)
    assert types.count(OpType.TRANSPOSE) == 1 and OpType.RELU not in types  # the 1-D layers chain in NHWC


def test_int8_is_close_to_float(float_graph):
    calib, test = ac.inputs(64 + 16)[:64], ac.inputs(64 + 16)[64:]
    ref, ours = checks.float_and_fake_quantized(float_graph, calib, test, layout="source")
    for name in float_graph.outputs:
        assert np.abs(ours[name] - ref[name]).max() < 0.08 * np.abs(ref[name]).max(), name


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(int8_graph):
    checks.check_bit_exact_with_tflm(int8_graph, checks.int8_inputs(int8_graph, ac.inputs(6), nchw=True))


def test_compiles_for_cortex_m7(int8_graph, tmp_path):
    _, names = checks.compile_for_cortex_m7(int8_graph, tmp_path / "accel_conv1d")
    assert {"depthwise_conv2d", "max_pool2d", "mean"} <= names, names
    assert any(n.startswith("conv2d") for n in names) and any(n.startswith("fully_connected") for n in names)
