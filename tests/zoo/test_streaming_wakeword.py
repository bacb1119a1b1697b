"""The MLPerf Tiny streaming wake-word Keras model end to end on the host: imported through
the Keras frontend (float equal to TensorFlow's own prediction), quantized by edgekit, int8
bit-exact with TFLite Micro (every op is a TFLM builtin), compiled for cortex-m7."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("TensorFlow is not installed: pip install 'edgekit[tensorflow]'", allow_module_level=True)

from edgekit.quantize import quantize  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import checks  # noqa: E402
from tests.zoo import streaming_wakeword as ww  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def float_graph():
    return ww.float_graph()


@pytest.fixture(scope="module")
def int8_graph(float_graph):
    return quantize(float_graph, ww.inputs(64)).graph


def test_float_graph_matches_keras(float_graph):
    import tf_keras

    x = ww.inputs(16)
    model = tf_keras.models.load_model(str(ww.keras_path()), compile=False)
    expected = model.predict(x, verbose=0)
    ours = Interpreter(float_graph).run([x])[float_graph.outputs[0]]
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    assert float_graph.tensor(float_graph.inputs[0]).shape == (1, ww.FRAMES, 1, ww.MELS)


def test_int8_is_close_to_float(float_graph):
    x = ww.inputs(64 + 32)
    ref, ours = checks.float_and_fake_quantized(float_graph, x[:64], x[64:])
    assert np.abs(ours[float_graph.outputs[0]] - ref[float_graph.outputs[0]]).max() < 0.08


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(int8_graph):
    checks.check_bit_exact_with_tflm(int8_graph, checks.int8_inputs(int8_graph, ww.inputs(8)))


def test_compiles_for_cortex_m7(int8_graph, tmp_path):
    _, kernels = checks.compile_for_cortex_m7(int8_graph, tmp_path / "streaming_wakeword")
    assert {"depthwise_conv2d", "softmax"} <= kernels and any(k.startswith("conv2d") for k in kernels)
