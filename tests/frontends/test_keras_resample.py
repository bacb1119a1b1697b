"""Keras layers of the resampling family through edgekit's Keras frontend (TensorFlow's
converter, then the .tflite importer), against Keras' own predictions: UpSampling2D
(nearest and bilinear), Conv2DTranspose, Conv1D, Conv1DTranspose, MaxPooling1D,
AveragePooling1D and GlobalAveragePooling1D."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("TensorFlow is not installed: pip install 'edgekit[tensorflow]'", allow_module_level=True)

from edgekit.frontends import load_model  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras():
    from edgekit.frontends.keras_importer import load_keras  # noqa: F401 - sets TensorFlow's environment first
    import tf_keras
    return tf_keras


def import_and_compare(keras, model, x, tmp_path):
    path = tmp_path / "m.h5"
    model.save(path)
    g = load_model(path)
    ours = Interpreter(g).run({g.inputs[0]: x})[g.outputs[0]]
    np.testing.assert_allclose(ours, np.asarray(model.predict(x, verbose=0)), rtol=1e-4, atol=1e-5)
    return g.op_types()


def test_upsampling_and_transposed_conv(keras, tmp_path):
    keras.utils.set_random_seed(4)
    L = keras.layers
    inp = keras.Input((6, 5, 3), batch_size=1)
    a = L.UpSampling2D(2)(inp)
    b = L.UpSampling2D((2, 3), interpolation="bilinear")(inp)
    c = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu")(inp)
    d = L.Conv2DTranspose(4, 3, strides=2, padding="valid")(inp)
    flat = L.Concatenate()([L.Flatten()(t) for t in (a, b, c, d)])
    model = keras.Model(inp, flat)
    x = np.random.default_rng(0).normal(size=(1, 6, 5, 3)).astype(np.float32)
    types = import_and_compare(keras, model, x, tmp_path)
    assert {"RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR", "TRANSPOSE_CONV"} <= set(types), types


def test_conv1d_and_1d_pooling(keras, tmp_path):
    keras.utils.set_random_seed(5)
    L = keras.layers
    model = keras.Sequential([
        keras.Input((64, 3), batch_size=1),
        L.Conv1D(8, 5, padding="same", activation="relu"),
        L.MaxPooling1D(2),
        L.Conv1D(8, 3, strides=2, activation="relu"),
        L.Conv1DTranspose(6, 3, strides=2, padding="same"),
        L.AveragePooling1D(2),
        L.GlobalAveragePooling1D(),
        L.Dense(4),
    ])
    x = np.random.default_rng(1).normal(size=(1, 64, 3)).astype(np.float32)
    types = import_and_compare(keras, model, x, tmp_path)
    assert types.count("CONV_2D") == 2 and "MAX_POOL_2D" in types and "AVERAGE_POOL_2D" in types, types
    assert "TRANSPOSE_CONV" in types, types
