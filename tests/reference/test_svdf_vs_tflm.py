"""SVDF: edgekit's int8 reference against TFLite Micro's kernel (0 mismatching bytes) and
the float reference against LiteRT's reference kernels, on one-op .tflite files written
by edgekit's own writer (one invocation: the IR's state starts at zero); the .tflite
importer reading them back; the quantizer's SVDF parameters."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the oracle tests")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgekit.backends.tflite.writer import tflite_bytes  # noqa: E402
from edgekit.frontends.tflite.importer import load_tflite  # noqa: E402
from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.reference.recurrent_graphs import svdf_graph  # noqa: E402
from tests.reference.recurrent_graphs import run_direct as _direct  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.support.oracle_tests import needs_tflm, needs_litert, profile  # noqa: E402



def _draw_graph(d, int8: bool):
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    rank = d(st.integers(1, 3))
    g = svdf_graph(rng, d(st.integers(1, 3)), d(st.integers(1, 12)), rank * d(st.integers(1, 5)),
                   d(st.integers(1, 8)), rank, int8=int8, act=d(st.sampled_from(["NONE", "RELU", "RELU6"])))
    return g, rng


@needs_tflm
@profile(25)
@given(st.data())
def test_svdf_int8_equals_tflm(data):
    g, rng = _draw_graph(data.draw, int8=True)
    x = rng.integers(-128, 128, g.tensor("x").shape).astype(np.int8)
    ours = Interpreter(g).run([x])["y"] if g.tensor("x").shape[0] == 1 else _direct(g, x)
    np.testing.assert_array_equal(ours, orc.run_tflm(tflite_bytes(g), [x])[0])


@needs_litert
@profile(10)
@given(st.data())
def test_svdf_float_matches_litert_reference(data):
    g, rng = _draw_graph(data.draw, int8=False)
    x = rng.normal(0, 1.5, g.tensor("x").shape).astype(np.float32)
    ours = _direct(g, x)
    m = tflite_bytes(g)
    np.testing.assert_allclose(ours, orc.run_litert(m, [x])[0], atol=3e-6, rtol=0)
    if orc.HAVE_TFLM:
        np.testing.assert_allclose(ours, orc.run_tflm(m, [x])[0], atol=3e-6, rtol=0)


@pytest.mark.parametrize("int8", [False, True])
def test_tflite_round_trip_keeps_the_svdf(int8):
    rng = np.random.default_rng(9)
    g = svdf_graph(rng, 1, 5, 6, 4, 2, int8=int8, act="RELU")
    back = load_tflite(tflite_bytes(g))
    (op,) = back.ops
    assert op.type is OpType.SVDF and op.attrs["rank"] == 2
    x = rng.integers(-128, 128, (3, 5)).astype(np.int8) if int8 else rng.normal(size=(3, 5)).astype(np.float32)
    np.testing.assert_array_equal(Interpreter(back).run([x])[back.outputs[0]], Interpreter(g).run([x])["y"])


@needs_tflm
@pytest.mark.parametrize("act", ["NONE", "RELU"])
def test_quantized_svdf_parameters_accuracy_and_tflm(act):
    rng = np.random.default_rng(4)
    g = svdf_graph(rng, 1, 8, 12, 5, 3, int8=False, act=act)
    calib = rng.normal(size=(128, 8)).astype(np.float32)
    q = quantize(g, calib).graph
    (op,) = q.ops
    wf, wt, b = (q.tensor(n) for n in op.inputs[1:])
    assert (wf.data.dtype, wt.data.dtype, b.data.dtype) == (np.int8, np.int16, np.int32)
    assert np.abs(wt.data).max() == 32767 and np.abs(wf.data).max() == 127
    state = np.abs(calib @ g.tensor("wf").data.T).max()
    assert op.attrs["state_scale"] == pytest.approx(state / 32767, rel=1e-6)
    assert b.quant.scale[0] == pytest.approx(np.float32(op.attrs["state_scale"]) * np.float32(wt.quant.scale[0]))
    x = rng.normal(size=(32, 8)).astype(np.float32)
    xq, yq = q.metadata["io_quant"]["x"], q.metadata["io_quant"]["y"]
    xi = np.clip(np.round(x / xq["scale"]) + xq["zero_point"], -128, 127).astype(np.int8)
    got = Interpreter(q).run([xi])["y"]
    err = np.abs((got.astype(np.float32) - yq["zero_point"]) * yq["scale"] - Interpreter(g).run([x])["y"])
    assert err.max() <= 4 * yq["scale"]
    m = tflite_bytes(q)
    tflm = np.concatenate([orc.run_tflm(m, [xi[i:i + 1]])[0] for i in range(len(xi))])
    np.testing.assert_array_equal(tflm, got)
