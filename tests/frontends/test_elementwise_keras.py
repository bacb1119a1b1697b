"""Keras layers of the elementwise family through the Keras frontend (TensorFlow's
converter, then the .tflite importer): LeakyReLU, PReLU, the hard_swish and gelu
activations, Maximum and Minimum merge layers; outputs against Keras' own predictions."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import edgekit
from edgekit.frontends import load_model
from edgekit.ir import OpType

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("keras") is None:
    pytest.skip("TensorFlow is not installed: pip install 'edgekit[tensorflow]'", allow_module_level=True)

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]


def test_keras_elementwise_layers_match_keras(tmp_path):
    from edgekit.frontends.keras_importer import load_keras  # noqa: F401 - sets TensorFlow's environment first
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((8, 8, 3), batch_size=1)
    x = keras.layers.Conv2D(6, 3, padding="same")(inp)
    a = keras.layers.LeakyReLU(negative_slope=0.2)(x)
    b = keras.layers.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(0.3))(x)
    c = keras.layers.Activation("hard_swish")(x)
    d = keras.layers.Activation("gelu")(x)
    y = keras.layers.Add()([keras.layers.Maximum()([a, b]), keras.layers.Minimum()([c, d])])
    model = keras.Model(inp, y)
    path = tmp_path / "elementwise.keras"
    model.save(path)
    g = load_model(path)
    assert {OpType.LEAKY_RELU, OpType.PRELU, OpType.HARD_SWISH, OpType.MAXIMUM, OpType.MINIMUM} <= set(
        op.type for op in g.ops)
    xs = np.random.default_rng(1).normal(size=(4, 8, 8, 3)).astype(np.float32) * 2
    want = np.asarray(model.predict(xs, verbose=0))
    got = edgekit.run(g, {g.inputs[0]: xs})[g.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
