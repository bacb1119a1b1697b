"""Quantizing UNIDIRECTIONAL_SEQUENCE_LSTM to TFLite Micro's integer LSTM: the
parameters TFLite's converter assigns (per-tensor symmetric weights, int32 gate biases
at s_x * s_w, hidden state = output parameters, int16 cell state with the smallest
power-of-two scale covering the calibrated range), accuracy against the float graph,
and bytes equal to TFLM running the written .tflite."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.tflite.writer import tflite_bytes
from edgekit.ir import OpType
from edgekit.quantize import quantize
from edgekit.quantize.recurrent import cell_state_exponent, lstm_cell_max
from edgekit.reference.interpreter import Interpreter
from tests.reference.recurrent_graphs import lstm_graph
from tests.support import tflite_oracle as orc


def _quantized(seed=0, t=12, n_in=6, hidden=8):
    rng = np.random.default_rng(seed)
    g = lstm_graph(rng, 1, t, n_in, hidden, int8=False, w_scale=0.4)
    calib = rng.normal(0, 1, (64, t, n_in)).astype(np.float32)
    return g, quantize(g, calib), calib, rng


def test_lstm_parameters_follow_the_converter_rules():
    g, res, calib, _ = _quantized()
    q = res.graph
    (op,) = [o for o in q.ops if o.type is OpType.UNIDIRECTIONAL_SEQUENCE_LSTM]
    x_s = q.tensor(op.inputs[0]).quant.scale[0]
    for k in range(1, 9):
        w = q.tensor(op.inputs[k])
        assert w.quant.is_per_tensor and w.quant.zero_point[0] == 0
        assert np.abs(w.data).max() == 127  # symmetric, max|w| / 127
    for k in range(4):
        b = q.tensor(op.inputs[9 + k])
        w_s = q.tensor(op.inputs[1 + k]).quant.scale[0]
        assert b.data.dtype == np.int32
        assert b.quant.scale[0] == pytest.approx(np.float64(np.float32(x_s)) * np.float64(np.float32(w_s)), rel=1e-6)
    # the cell state scale: the smallest power of two whose int16 range holds max|c|
    fop = g.ops[0]
    consts = [g.tensor(n).data for n in fop.inputs[1:]]
    top = lstm_cell_max(calib, consts[0:4], consts[4:8], consts[8:12], time_major=False, cell_clip=0.0)
    e = op.attrs["cell_state_exponent"]
    assert e == cell_state_exponent(top)
    assert top <= 2.0 ** (e + 15) and top > 2.0 ** (e + 14)


def test_quantized_lstm_is_close_to_float_and_equals_tflm():
    g, res, _, rng = _quantized(seed=1)
    q = res.graph
    x = rng.normal(0, 1, (16, 12, 6)).astype(np.float32)
    xq, yq = q.metadata["io_quant"]["x"], q.metadata["io_quant"]["y"]
    xi = np.clip(np.round(x / xq["scale"]) + xq["zero_point"], -128, 127).astype(np.int8)
    got = Interpreter(q).run([xi])["y"]
    want = Interpreter(g).run([x])["y"]
    err = np.abs((got.astype(np.float32) - yq["zero_point"]) * yq["scale"] - want)
    assert err.max() < 6 * yq["scale"], err.max() / yq["scale"]
    if not orc.HAVE_TFLM:
        pytest.skip("tflite_micro is not installed")
    m = tflite_bytes(q)
    tflm = np.concatenate([orc.run_tflm(m, [xi[i:i + 1]])[0] for i in range(len(xi))])
    np.testing.assert_array_equal(tflm, got)


def test_cell_state_exponent_edges():
    assert cell_state_exponent(1.0) == -15
    assert cell_state_exponent(1.5) == -14
    assert cell_state_exponent(0.0) == -30
    assert cell_state_exponent(1e9) == 0
