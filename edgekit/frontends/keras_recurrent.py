"""Keras recurrent layers (LSTM, GRU, SimpleRNN, RNN) before TFLite conversion.

TensorFlow's converter turns a Keras recurrent layer that is not unrolled into a WHILE
loop, which neither TFLite Micro's nor edgekit's op set has; unrolled over its static
time steps it becomes FULLY_CONNECTED, SPLIT / UNPACK, STRIDED_SLICE, ADD, MUL, SUB,
LOGISTIC and TANH ops, which edgekit imports, quantizes and compiles. So the model is
cloned with ``unroll=True`` on every recurrent layer (same weights, same math) before
it is traced; a model Keras cannot clone (subclassed) is converted as it is.
"""

from __future__ import annotations


def unrolled(keras, model):
    """``model`` with every recurrent layer unrolled (``model`` itself when none needs it)."""
    rnn = getattr(keras.layers, "RNN", None)
    if rnn is None:
        return model
    layers = _all_layers(model)
    if not any(isinstance(layer, rnn) and not layer.get_config().get("unroll", False) for layer in layers):
        return model

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, rnn):
            config = {**config, "unroll": True}
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone)
        copy.set_weights(model.get_weights())
    except Exception:  # noqa: BLE001 - subclassed or otherwise uncloneable models convert as they are
        return model
    return copy


def _all_layers(model) -> list:
    out = []
    for layer in getattr(model, "layers", []):
        out.append(layer)
        if hasattr(layer, "layers"):
            out += _all_layers(layer)
    return out
