"""The keyword transformer of the zoo end to end on the host: imported from torch (float
equal to torch's outputs), quantized by edgekit (close to float), int8 bit-exact with
TFLite Micro (every op of it is a TFLM builtin), compiled for cortex-m7 with the C
backend."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import checks  # noqa: E402
from tests.zoo import keyword_transformer as kwt  # noqa: E402


@pytest.fixture(scope="module")
def float_graph():
    return kwt.float_graph()


@pytest.fixture(scope="module")
def int8_graph(float_graph):
    return quantize(float_graph, kwt.inputs(64)).graph


def test_float_graph_matches_torch(float_graph):
    checks.check_float_matches_torch(kwt, float_graph, kwt.inputs(16))
    types = {op.type for op in float_graph.ops}
    assert {OpType.BATCH_MATMUL, OpType.SOFTMAX, OpType.RSQRT, OpType.FULLY_CONNECTED} <= types
    assert OpType.TRANSPOSE not in types  # k^T is adj_y


def test_int8_is_close_to_float(float_graph):
    calib, test = kwt.inputs(96)[:64], kwt.inputs(96)[64:]
    ref, ours = checks.float_and_fake_quantized(float_graph, calib, test)
    ref, ours = ref[float_graph.outputs[0]], ours[float_graph.outputs[0]]
    assert np.abs(ours - ref).max() < 0.05 * np.abs(ref).max()
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.9


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(int8_graph):
    checks.check_bit_exact_with_tflm(int8_graph, checks.int8_inputs(int8_graph, kwt.inputs(12)))


def test_compiles_for_cortex_m7(int8_graph, tmp_path):
    _, kernels = checks.compile_for_cortex_m7(int8_graph, tmp_path / "kwt")
    assert {"batch_matmul", "softmax", "mean"} <= kernels and any(k.startswith("fully_connected") for k in kernels)
