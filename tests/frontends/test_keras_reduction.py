"""Keras layers that convert to the reduction / matrix-product ops: LayerNormalization,
MultiHeadAttention (BATCH_MATMUL), GlobalMaxPooling1D (REDUCE_MAX), a sum (SUM),
UnitNormalization (L2_NORMALIZATION) and Dot, imported through edgekit's Keras route
(TFLiteConverter, then the .tflite importer) and compared with Keras' own outputs."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("TensorFlow is not installed: pip install 'edgekit[tensorflow]'", allow_module_level=True)

from edgekit.ir import OpType  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402


def _sum_frames(v):
    import tf_keras

    return tf_keras.backend.sum(v, axis=1)


def _arg_max(v):
    import tensorflow as tf

    return tf.argmax(v, axis=-1)  # int64 indices in the converted .tflite


def test_attention_block_layers_match_keras(tmp_path):
    from edgekit.frontends.keras_importer import load_keras  # sets TensorFlow's environment first

    import tf_keras as keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((20, 16), batch_size=1)
    x = keras.layers.LayerNormalization()(inp)
    x = keras.layers.Add()([inp, keras.layers.MultiHeadAttention(num_heads=2, key_dim=8)(x, x)])
    outs = [keras.layers.GlobalMaxPooling1D()(x),
            keras.layers.Lambda(_sum_frames)(x),
            keras.layers.UnitNormalization()(x),
            keras.layers.Dot(axes=(2, 2))([x, x]),
            keras.layers.Lambda(_arg_max)(x)]
    model = keras.Model(inp, outs)
    path = tmp_path / "attention.h5"
    model.save(path)
    g = load_keras(path)
    types = {op.type for op in g.ops}
    assert {OpType.BATCH_MATMUL, OpType.REDUCE_MAX, OpType.SUM, OpType.L2_NORMALIZATION, OpType.RSQRT,
            OpType.ARG_MAX} <= types
    x = np.random.default_rng(1).standard_normal((1, 20, 16)).astype(np.float32)
    ref = model.predict(x, verbose=0)
    ours = Interpreter(g).run([x])
    for r, name in zip(ref, g.outputs):
        if r.dtype.kind == "i":  # edgekit's indices are int32
            assert ours[name].dtype == np.int32
            np.testing.assert_array_equal(ours[name], r, err_msg=name)
        else:
            np.testing.assert_allclose(ours[name], r, rtol=1e-4, atol=1e-5, err_msg=name)
