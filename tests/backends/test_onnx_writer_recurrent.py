"""UNIDIRECTIONAL_SEQUENCE_LSTM written as ONNX: onnxruntime (no graph optimizations)
gives the reference's float outputs; int8 (QDQ around a float LSTM) stays within a few
quantization steps of the int16-cell reference on inputs like the calibration data;
cell_clip is refused; the ONNX importer reads the written LSTM back."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import BadInputError
from edgekit.quantize import quantize
from edgekit.reference.interpreter import Interpreter
from tests.reference.recurrent_graphs import lstm_graph, svdf_graph
from tests.reference.recurrent_graphs import run_direct as _run_ref

onnx = pytest.importorskip("onnx")
from tests.support.ort_oracle import exact_session  # noqa: E402


@pytest.mark.parametrize("time_major", [False, True])
def test_float_lstm_equals_onnxruntime(time_major):
    from edgekit.backends.onnx.writer import to_onnx

    rng = np.random.default_rng(3)
    g = lstm_graph(rng, 2, 6, 3, 5, int8=False, time_major=time_major)
    x = rng.normal(size=g.tensor("x").shape).astype(np.float32)
    got = exact_session(to_onnx(g)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, _run_ref(g, x), atol=1e-6, rtol=0)


def test_int8_lstm_in_qdq_form_is_close_and_round_trips():
    from edgekit.backends.onnx.writer import to_onnx
    from edgekit.frontends.onnx import load_onnx

    rng = np.random.default_rng(4)
    g = lstm_graph(rng, 1, 8, 4, 6, int8=False)
    q = quantize(g, rng.normal(size=(64, 8, 4)).astype(np.float32)).graph
    p = q.metadata["io_quant"]["x"]
    x = rng.normal(size=(16, 8, 4)).astype(np.float32)  # the calibrated distribution
    xi = np.clip(np.round(x / p["scale"]) + p["zero_point"], -128, 127).astype(np.int8)
    m = to_onnx(q)
    ref = Interpreter(q).run([xi])["y"].astype(int)
    got = np.concatenate([exact_session(m).run(None, {"x": xi[i:i + 1]})[0] for i in range(16)]).astype(int)
    assert np.abs(got - ref).max() <= 3
    back = load_onnx(to_onnx(g).SerializeToString())
    x = rng.normal(size=(1, 8, 4)).astype(np.float32)  # ONNX's [T, B, I] transposes fix the batch
    np.testing.assert_allclose(Interpreter(back).run([x])[back.outputs[0]], Interpreter(g).run([x])["y"],
                               atol=1e-6, rtol=0)


def test_cell_clip_is_refused():
    from edgekit.backends.onnx.writer import to_onnx

    g = lstm_graph(np.random.default_rng(5), 1, 2, 2, 2, int8=False, clip=1.0)
    with pytest.raises(BadInputError, match="cell_clip"):
        to_onnx(g)


@pytest.mark.parametrize("act", ["NONE", "RELU"])
def test_svdf_equals_onnxruntime_float_and_close_in_int8(act):
    from edgekit.backends.onnx.writer import to_onnx

    rng = np.random.default_rng(6)
    g = svdf_graph(rng, 1, 7, 9, 4, 3, int8=False, act=act)
    x = rng.normal(size=(1, 7)).astype(np.float32)
    got = exact_session(to_onnx(g)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, Interpreter(g).run([x])["y"], atol=1e-5, rtol=0)
    q = quantize(g, rng.normal(size=(64, 7)).astype(np.float32)).graph
    p = q.metadata["io_quant"]["x"]
    xi = np.clip(np.round(rng.normal(size=(1, 7)) / p["scale"]) + p["zero_point"], -128, 127).astype(np.int8)
    got = exact_session(to_onnx(q)).run(None, {"x": xi})[0].astype(int)
    assert np.abs(got - Interpreter(q).run([xi])["y"].astype(int)).max() <= 2
