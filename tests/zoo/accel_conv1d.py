"""A 1-D conv network on accelerometer windows (activity recognition): 128 samples x 3
axes -> Conv1d 3->16 (k5) + batch norm + ReLU, max pool 2 -> Conv1d 16->32 (k5) + ReLU
-> depthwise Conv1d (k3) + ReLU -> pointwise Conv1d 32->32 + ReLU -> global average
pooling -> 6 activity logits.

Built in torch with seeded random weights and imported through edgekit's torch frontend,
which runs each Conv1d as a CONV_2D / DEPTHWISE_CONV_2D over an NHWC [N, 1, L, C] view
(as the TFLite converter does for Keras Conv1D).
"""

from __future__ import annotations

import functools

import numpy as np

SAMPLES, AXES, CLASSES = 128, 3, 6
SEED = 34


def _module():
    import torch
    from torch import nn

    class AccelConv1d(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv1d(AXES, 16, 5, padding=2, bias=False), nn.BatchNorm1d(16), nn.ReLU(),
                nn.MaxPool1d(2),
                nn.Conv1d(16, 32, 5, padding=2), nn.ReLU(),
                nn.Conv1d(32, 32, 3, padding=1, groups=32), nn.ReLU(),
                nn.Conv1d(32, 32, 1), nn.ReLU(),
                nn.AdaptiveAvgPool1d(1))
            self.classifier = nn.Linear(32, CLASSES)

        def forward(self, window):
            return self.classifier(self.features(window).flatten(1))

    torch.manual_seed(SEED)
    m = AccelConv1d()
    with torch.no_grad():
        bn = m.features[1]
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    return m.eval()


@functools.lru_cache(maxsize=1)
def torch_module():
    return _module()


def inputs(n: int) -> np.ndarray:
    """``n`` windows [n, 3, 128] (torch's channels-first order) in g: gravity on one axis,
    a gait-like oscillation of random frequency and phase on each, and sensor noise."""
    rng = np.random.default_rng(SEED)
    t = np.arange(SAMPLES) / 50.0  # 50 Hz
    out = np.empty((n, AXES, SAMPLES), np.float32)
    for i in range(n):
        f = rng.uniform(0.5, 3.0)
        gravity = np.zeros((AXES, 1))
        gravity[rng.integers(0, AXES)] = 1.0
        amp = rng.uniform(0.05, 0.8, (AXES, 1))
        phase = rng.uniform(0, 2 * np.pi, (AXES, 1))
        out[i] = gravity + amp * np.sin(2 * np.pi * f * t + phase) + 0.03 * rng.standard_normal((AXES, SAMPLES))
    return out


def float_graph():
    import torch

    from edgekit.frontends.torch_importer import load_torch

    g = load_torch(torch_module(), (torch.from_numpy(inputs(1)),))
    g.name = "accel_conv1d"
    return g


def int8_graph():
    from edgekit.quantize import quantize

    g = quantize(float_graph(), inputs(64)).graph
    g.name = "accel_conv1d"
    return g
