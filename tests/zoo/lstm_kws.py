"""LSTM keyword spotter on MFCC input: 49 frames x 10 coefficients -> nn.LSTM(10, 64,
batch_first=True) -> last hidden state -> nn.Linear(64, 12), built in torch (seeded
random weights) and imported by edgekit's torch frontend. See _recurrent_kws.py."""

from __future__ import annotations

from tests.zoo import _recurrent_kws as _kws


def float_graph():
    return _kws.float_graph("lstm")


def int8_graph():
    return _kws.int8_graph("lstm")


def inputs(n: int):
    return _kws.inputs(n)


def torch_module():
    return _kws.torch_module("lstm")
