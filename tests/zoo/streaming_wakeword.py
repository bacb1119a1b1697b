"""The MLPerf Tiny streaming wake-word reference model (``str_ww_ref_model.h5``, the shared
Keras original): four depthwise-separable 1-D blocks over 30 frames of 40 log-mel features
([1, 30, 1, 40], NHWC), a global depthwise conv, a 1x1 conv to 32 channels, a dense layer and
softmax over 3 classes. Imported through edgekit's Keras frontend (TensorFlow's converter,
then edgekit's .tflite importer), quantized by edgekit.

This (non-streaming) form needs no data-movement op; ``split_heads`` is the zoo's model
that exercises slicing, splitting and gathering.
"""

from __future__ import annotations

import functools

import numpy as np

KERAS = "models/mlperf-tiny/keras/str_ww_ref_model.h5"
FRAMES, MELS = 30, 40
SEED = 31


def keras_path():
    from tests.support.shared import shared_file

    return shared_file(KERAS)


def inputs(n: int) -> np.ndarray:
    """``n`` log-mel-like windows [n, 30, 1, 40]: a smooth spectral envelope, a few
    formant-like ridges drifting over time, noise."""
    rng = np.random.default_rng(SEED)
    t = np.arange(FRAMES)[:, None] / FRAMES
    f = np.arange(MELS)[None, :] / MELS
    out = np.empty((n, FRAMES, 1, MELS), np.float32)
    for i in range(n):
        x = rng.uniform(-1.0, 0.5) - 1.5 * f + 0.3 * rng.standard_normal() * t
        for _ in range(3):
            c0, slope, w = rng.uniform(0.1, 0.8), rng.uniform(-0.3, 0.3), rng.uniform(0.03, 0.1)
            x = x + rng.uniform(0.5, 2.0) * np.exp(-((f - c0 - slope * t) ** 2) / (2 * w * w))
        out[i, :, 0, :] = x + 0.1 * rng.standard_normal((FRAMES, MELS))
    return out


@functools.lru_cache(maxsize=1)
def _float_graph():
    from edgekit.frontends.keras_importer import load_keras

    g = load_keras(keras_path())
    g.name = "streaming_wakeword"
    return g


def float_graph():
    return _float_graph().copy()


def int8_graph():
    from edgekit.quantize import quantize

    g = quantize(float_graph(), inputs(64)).graph
    g.name = "streaming_wakeword"
    return g
