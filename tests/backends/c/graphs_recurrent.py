"""Quantized graphs with the recurrent op for the C backend tests: an LSTM (batch-major,
with a cell clip) feeding a FULLY_CONNECTED (time-major LSTMs: test_cgen_recurrent.py), and
an SVDF."""

from __future__ import annotations

import numpy as np

from edgekit.ir import DType, Graph, OpType, verify
from edgekit.quantize import quantize


def lstm_graph(rng, *, time_major: bool = False, cell_clip: float = 0.0, steps: int = 6, n_in: int = 5,
               hidden: int = 7, batch: int = 1) -> Graph:
    g = Graph("lstm_time_major" if time_major else "lstm")
    xs = (steps, batch, n_in) if time_major else (batch, steps, n_in)
    g.add_tensor("x", xs, DType.FLOAT32)
    names = [g.add_const(f"w{k}", rng.normal(0, 0.5, (hidden, n_in)).astype(np.float32)).name for k in range(4)]
    names += [g.add_const(f"r{k}", rng.normal(0, 0.5, (hidden, hidden)).astype(np.float32)).name for k in range(4)]
    names += [g.add_const(f"b{k}", rng.normal(0, 0.5, (hidden,)).astype(np.float32)).name for k in range(4)]
    ys = (steps, batch, hidden) if time_major else (batch, steps, hidden)
    g.add_tensor("seq", ys, DType.FLOAT32)
    g.add_op(OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, ["x"] + names, ["seq"],
             {"time_major": time_major, "cell_clip": cell_clip})
    out = "seq"
    if not time_major:
        g.add_tensor("flat", (batch, steps * hidden), DType.FLOAT32)
        g.add_op(OpType.RESHAPE, ["seq"], ["flat"], {"shape": (batch, steps * hidden)})
        w = g.add_const("fc_w", rng.normal(0, 0.3, (4, steps * hidden)).astype(np.float32)).name
        g.add_tensor("y", (batch, 4), DType.FLOAT32)
        g.add_op(OpType.FULLY_CONNECTED, ["flat", w], ["y"])
        out = "y"
    g.inputs, g.outputs = ["x"], [out]
    verify(g)
    return g


def recurrent_cases(rng) -> dict[str, Graph]:
    out = {}
    for name, kw in [("lstm", {"cell_clip": 0.8})]:
        g = lstm_graph(rng, **kw)
        calib = (rng.normal(size=(64,) + tuple(g.input_tensors()[0].shape[1:])) * 1.5).astype(np.float32)
        qg = quantize(g, calib).graph
        qg.name = name
        out[name] = qg
    from tests.reference.recurrent_graphs import svdf_graph

    g = svdf_graph(rng, 1, 10, 12, 4, 2, int8=False, act="RELU")
    qg = quantize(g, rng.normal(size=(64, 10)).astype(np.float32) * 1.5).graph
    qg.name = "svdf"
    out["svdf"] = qg
    return out
