"""Quantizing RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV: TFLite's rules
(resizes share their input's parameters; TRANSPOSE_CONV has per-channel int8 weights on
axis 0, an int32 bias at input scale x weight scale and its own output range), the int8
graph close to the float one, and bit-exact with TFLite Micro."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.tflite import tflite_bytes
from edgekit.ir import DType, OpType
from edgekit.quantize import quantize
from edgekit.reference.interpreter import Interpreter
from tests.backends.c.graphs_resample import resample_graph
from tests.support import tflite_oracle as orc


@pytest.fixture(scope="module")
def graphs():
    rng = np.random.default_rng(2)
    g = resample_graph(rng)
    calib = rng.normal(size=(64, 5, 6, 3)).astype(np.float32)
    return g, quantize(g, calib).graph, rng.normal(size=(8, 5, 6, 3)).astype(np.float32)


def test_parameters_follow_tflite_rules(graphs):
    _, q, _ = graphs
    for op in q.ops:
        x, y = q.tensor(op.inputs[0]), q.tensor(op.outputs[0])
        if op.type in (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR):
            assert (x.quant.scale[0], x.quant.zero_point[0]) == (y.quant.scale[0], y.quant.zero_point[0])
        if op.type is OpType.TRANSPOSE_CONV:
            w, b = q.tensor(op.inputs[1]), q.tensor(op.inputs[2])
            assert w.dtype is DType.INT8 and w.quant.axis == 0 and len(w.quant.scale) == w.shape[0]
            assert b.dtype is DType.INT32
            np.testing.assert_allclose(b.quant.scale, np.float32(x.quant.scale[0]) * w.quant.scales, rtol=1e-6)


def _int8(q, x):
    qi = q.tensor(q.inputs[0]).quant
    return np.clip(np.round(x / qi.scale[0]) + qi.zero_point[0], -128, 127).astype(np.int8)


def test_int8_is_close_to_float(graphs):
    g, q, x = graphs
    ref = Interpreter(g).run([x])["y"]
    ours = Interpreter(q).run([_int8(q, x)])["y"]
    qo = q.tensor("y").quant
    deq = (ours.astype(np.float32) - qo.zero_point[0]) * qo.scale[0]
    assert np.abs(deq - ref).max() < 0.05 * np.abs(ref).max()


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(graphs):
    _, q, x = graphs
    xi = _int8(q, x)
    ours = Interpreter(q).run([xi])["y"]
    model = tflite_bytes(q)
    for i in range(len(xi)):
        np.testing.assert_array_equal(orc.run_tflm(model, [xi[i:i + 1]])[0], ours[i:i + 1])
