"""The tiny two-scale detector of the zoo end to end on the host: imported from torch (float
equal to torch's outputs), quantized by edgekit (close to float), int8 bit-exact with
TFLite Micro (every op of it is a TFLM builtin: CONV_2D, RESIZE_NEAREST_NEIGHBOR,
CONCATENATION), compiled for cortex-m7 with the C backend."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import checks  # noqa: E402
from tests.zoo import detector_head as dh  # noqa: E402


@pytest.fixture(scope="module")
def float_graph():
    return dh.float_graph()


@pytest.fixture(scope="module")
def int8_graph(float_graph):
    return quantize(float_graph, dh.inputs(32)).graph


def test_float_graph_matches_torch(float_graph):
    checks.check_float_matches_torch(dh, float_graph, dh.inputs(8), layout="source")
    assert {OpType.RESIZE_NEAREST_NEIGHBOR, OpType.CONCATENATION, OpType.CONV_2D} <= {op.type for op in float_graph.ops}


def test_int8_is_close_to_float(float_graph):
    calib, test = dh.inputs(32 + 16)[:32], dh.inputs(32 + 16)[32:]
    ref, ours = checks.float_and_fake_quantized(float_graph, calib, test, layout="source")
    for name in float_graph.outputs:
        assert np.abs(ours[name] - ref[name]).max() < 0.08 * np.abs(ref[name]).max(), name


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(int8_graph):
    checks.check_bit_exact_with_tflm(int8_graph, checks.int8_inputs(int8_graph, dh.inputs(6), nchw=True))


def test_compiles_for_cortex_m7(int8_graph, tmp_path):
    _, names = checks.compile_for_cortex_m7(int8_graph, tmp_path / "detector_head")
    assert {"resize_nearest", "concatenation"} <= names and any(n.startswith("conv2d") for n in names), names
