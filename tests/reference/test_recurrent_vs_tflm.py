"""UNIDIRECTIONAL_SEQUENCE_LSTM: edgekit's int8 reference against TFLite Micro's kernel
(0 mismatching bytes) and the float reference against LiteRT's reference kernels, on
one-op .tflite files written by edgekit's own writer; and the .tflite importer reading
them back."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the oracle tests")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgekit.backends.tflite.writer import tflite_bytes  # noqa: E402
from edgekit.errors import BadInputError, UnsupportedOpError  # noqa: E402
from edgekit.frontends.tflite.importer import load_tflite  # noqa: E402
from edgekit.ir import OpType, QuantParams  # noqa: E402
from edgekit.reference import recurrent_kernels as rk  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.reference.recurrent_graphs import lstm_graph  # noqa: E402
from tests.reference.recurrent_graphs import run_direct as _run_ref  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.support.oracle_tests import needs_tflm, needs_litert, profile  # noqa: E402



@needs_tflm
@profile(30)
@given(st.data())
def test_lstm_int8_equals_tflm(data):
    d = data.draw
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    time_major = d(st.booleans())
    b, t = d(st.integers(1, 3)), d(st.integers(1, 7))
    n_in, hidden = d(st.integers(1, 9)), d(st.integers(1, 9))
    clip = d(st.sampled_from([0.0, 0.0, 0.25, 3.0]))
    g = lstm_graph(rng, b, t, n_in, hidden, int8=True, time_major=time_major, clip=clip,
                   exponent=d(st.integers(-15, -8)))
    x = rng.integers(-128, 128, g.tensor("x").shape).astype(np.int8)
    ours = _run_ref(g, x)
    theirs = orc.run_tflm(tflite_bytes(g), [x])[0]
    assert ours.shape == theirs.shape
    bad = np.flatnonzero(ours.ravel() != theirs.ravel())
    assert bad.size == 0, f"{bad.size} of {ours.size} bytes differ"
    # through the interpreter too (batch-major graphs also run N samples at once)
    if not time_major:
        np.testing.assert_array_equal(Interpreter(g).run([x])["y"], ours)


@needs_tflm
def test_lstm_int8_saturating_gates_and_large_cell_equal_tflm():
    """Weights at full scale drive the gates into the LUT's saturated ends and the cell
    state into its int16 clamp."""
    rng = np.random.default_rng(5)
    for exponent in (-15, -13, -6):
        g = lstm_graph(rng, 2, 9, 6, 5, int8=True, exponent=exponent)
        for n in g.ops[0].inputs[1:9]:
            g.tensor(n).quant = QuantParams.per_tensor(0.5, 0)
        x = rng.integers(-128, 128, g.tensor("x").shape).astype(np.int8)
        np.testing.assert_array_equal(_run_ref(g, x), orc.run_tflm(tflite_bytes(g), [x])[0])


@needs_litert
@profile(15)
@given(st.data())
def test_lstm_float_matches_litert_reference_and_tflm(data):
    d = data.draw
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    time_major = d(st.booleans())
    g = lstm_graph(rng, d(st.integers(1, 3)), d(st.integers(1, 7)), d(st.integers(1, 9)), d(st.integers(1, 9)),
                   int8=False, time_major=time_major, clip=d(st.sampled_from([0.0, 0.5])))
    x = rng.normal(0, 1.5, g.tensor("x").shape).astype(np.float32)
    ours = _run_ref(g, x)
    m = tflite_bytes(g)
    np.testing.assert_allclose(ours, orc.run_litert(m, [x])[0], atol=2e-6, rtol=0)
    if orc.HAVE_TFLM:
        np.testing.assert_allclose(ours, orc.run_tflm(m, [x])[0], atol=2e-6, rtol=0)


@pytest.mark.parametrize("int8", [False, True])
def test_tflite_round_trip_keeps_the_lstm(int8):
    rng = np.random.default_rng(9)
    g = lstm_graph(rng, 1, 5, 3, 4, int8=int8, clip=0.5, exponent=-12)
    back = load_tflite(tflite_bytes(g))
    (op,) = back.ops
    assert op.type is OpType.UNIDIRECTIONAL_SEQUENCE_LSTM
    assert op.attrs["cell_clip"] == pytest.approx(0.5)
    if int8:
        assert op.attrs["cell_state_exponent"] == -12
    x = (rng.integers(-128, 128, (4, 5, 3)).astype(np.int8) if int8
         else rng.normal(size=(4, 5, 3)).astype(np.float32))
    np.testing.assert_array_equal(Interpreter(back).run([x])[back.outputs[0]], Interpreter(g).run([x])["y"])


def test_tflite_importer_refuses_lstm_variants():
    if not orc.HAVE_SCHEMA:
        pytest.skip("ai-edge-litert's schema is needed to build the file")
    s = orc.schema
    mb = orc.ModelBuilder()
    x = mb.tensor((1, 2, 3), np.float32)
    ins = [x] + [mb.tensor((4, 3) if i <= 4 else (4, 4), np.float32, data=np.ones((4, 3) if i <= 4 else (4, 4)))
                 for i in range(1, 9)]
    peephole = mb.tensor((4,), np.float32, data=np.ones(4))
    ins += [peephole, -1, -1] + [mb.tensor((4,), np.float32, data=np.zeros(4)) for _ in range(4)] + [-1, -1]
    h, c = mb.tensor((1, 4), np.float32), mb.tensor((1, 4), np.float32)
    mb.tensors[h].isVariable = mb.tensors[c].isVariable = True
    ins += [h, c, -1, -1, -1, -1]
    y = mb.tensor((1, 2, 4), np.float32)
    opts = s.UnidirectionalSequenceLSTMOptionsT()
    opts.fusedActivationFunction = 4
    mb.op(s.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM, ins, [y], s.BuiltinOptions.UnidirectionalSequenceLSTMOptions,
          opts)
    with pytest.raises(UnsupportedOpError, match="peephole"):
        load_tflite(mb.build([x], [y]))


def test_int8_kernel_refuses_per_channel_weights_and_bad_exponent():
    rng = np.random.default_rng(2)
    g = lstm_graph(rng, 1, 2, 3, 4, int8=True)
    x = np.zeros((1, 2, 3), np.int8)
    w0 = g.tensor(g.ops[0].inputs[1])
    w0.quant = QuantParams.per_axis([0.1] * 4, [0] * 4, 0)
    with pytest.raises(BadInputError, match="per tensor"):
        _run_ref(g, x)
    g = lstm_graph(rng, 1, 2, 3, 4, int8=True, exponent=3)
    with pytest.raises(BadInputError, match="exponent"):
        _run_ref(g, x)


def test_sigmoid_and_tanh_int16_follow_the_real_functions():
    """The LUT kernels stay within 2^-10 of sigmoid / tanh over the whole Q3.12 range."""
    x = np.arange(-32768, 32768, 7, dtype=np.int64)
    real = x / 4096.0
    assert np.abs(rk.sigmoid_int16(x) / 32768.0 - 1 / (1 + np.exp(-real))).max() < 2 ** -10
    assert np.abs(rk.tanh_int16(x) / 32768.0 - np.tanh(real)).max() < 2 ** -10
