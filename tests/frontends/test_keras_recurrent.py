"""Keras recurrent layers (LSTM, GRU, SimpleRNN; Keras 3 and tf-keras), not unrolled in the
file: edgekit unrolls them before TensorFlow's converter (which would emit a WHILE loop)
and the imported graph gives Keras's own outputs."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgekit.ir import OpType
from edgekit.reference.interpreter import Interpreter

if importlib.util.find_spec("tensorflow") is None or importlib.util.find_spec("tf_keras") is None:
    pytest.skip("TensorFlow is not installed: pip install 'edgekit[tensorflow]'", allow_module_level=True)

pytestmark = pytest.mark.slow


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("which,kind", [("keras3", "LSTM"), ("keras3", "GRU"), ("keras3", "SimpleRNN"),
                                        ("keras2", "LSTM")])
def test_keras_recurrent_layer_matches_keras(tmp_path, which, kind):
    from edgekit.frontends.keras_importer import load_keras  # sets TensorFlow's environment first

    if which == "keras2":
        import tf_keras as keras
        path = tmp_path / "m.h5"
    else:
        import keras
        path = tmp_path / "m.keras"
    keras.utils.set_random_seed(3)
    inp = keras.Input((9, 4), batch_size=1)
    seq = getattr(keras.layers, kind)(6, return_sequences=True)(inp)
    out = keras.layers.Dense(3)(getattr(keras.layers, kind)(5)(seq))  # two stacked layers
    model = keras.Model(inp, out)
    model.save(path)
    g = load_keras(path)
    assert OpType.FULLY_CONNECTED in {op.type for op in g.ops}
    x = np.random.default_rng(1).normal(size=(1, 9, 4)).astype(np.float32)
    want = np.asarray(model(x))
    got = Interpreter(g).run([x])[g.outputs[0]]
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=0)
