"""Shared parts of the recurrent keyword spotters (lstm_kws, gru_kws): 49 MFCC frames of
10 coefficients -> one recurrent layer of 64 units -> its last hidden state -> FULLY_CONNECTED
to 12 classes, built in torch with seeded random weights and imported by edgekit's torch
frontend. The inputs are deterministic MFCC-like frames (a slowly varying spectral
envelope plus noise), the calibration set is disjoint from them."""

from __future__ import annotations

import functools

import numpy as np

FRAMES, COEFFS, UNITS, CLASSES = 49, 10, 64, 12


def mfcc_like(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES, dtype=np.float64)[None, :, None]
    k = np.arange(COEFFS, dtype=np.float64)[None, None, :]
    phase = rng.uniform(0, 2 * np.pi, (n, 1, COEFFS))
    rate = rng.uniform(0.05, 0.4, (n, 1, COEFFS))
    envelope = np.sin(rate * t + phase) * (2.0 / (1.0 + k))
    return (envelope + rng.normal(0, 0.3, (n, FRAMES, COEFFS))).astype(np.float32)


def torch_module(kind: str):
    import torch

    class RecurrentKWS(torch.nn.Module):
        def __init__(self):
            super().__init__()
            cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
            self.rnn = cls(COEFFS, UNITS, batch_first=True)
            self.fc = torch.nn.Linear(UNITS, CLASSES)

        def forward(self, x):
            _, h = self.rnn(x)
            if isinstance(h, tuple):  # LSTM: (h_n, c_n)
                h = h[0]
            return self.fc(h.squeeze(0))

    torch.manual_seed(13 if kind == "lstm" else 17)
    return RecurrentKWS().eval()


@functools.lru_cache(maxsize=None)
def _float_graph(kind: str):
    import torch

    from edgekit.frontends.torch_importer import load_torch

    g = load_torch(torch_module(kind), (torch.zeros(1, FRAMES, COEFFS),))
    g.name = f"{kind}_kws"
    return g


@functools.lru_cache(maxsize=None)
def _int8_graph(kind: str):
    from edgekit.quantize import quantize

    return quantize(_float_graph(kind), mfcc_like(100, seed=1000)).graph


def float_graph(kind: str):
    return _float_graph(kind).copy()


def int8_graph(kind: str):
    return _int8_graph(kind).copy()


def inputs(n: int) -> np.ndarray:
    return mfcc_like(n, seed=7)
