"""Quantizing REDUCE_MAX, SUM, ARG_MAX/MIN, L2_NORMALIZATION and BATCH_MATMUL with
TFLite's scale rules, and the quantized graph against TFLite Micro byte for byte."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.tflite.writer import tflite_bytes
from edgekit.ir import DType, Graph, OpType
from edgekit.quantize import quantize
from edgekit.reference.interpreter import Interpreter
from tests.support import tflite_oracle as orc


def _graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("reductions")
    g.add_tensor("x", (1, 6, 8), DType.FLOAT32)
    g.inputs = ["x"]
    g.add_const("w", rng.standard_normal((8, 5)).astype(np.float32))
    g.add_tensor("mm", (1, 6, 5), DType.FLOAT32)
    g.add_op(OpType.BATCH_MATMUL, ["x", "w"], ["mm"], {}, "mm")
    g.add_tensor("att", (1, 6, 6), DType.FLOAT32)
    g.add_op(OpType.BATCH_MATMUL, ["mm", "mm"], ["att"], {"adj_y": True}, "att")
    g.add_tensor("s", (1, 6), DType.FLOAT32)
    g.add_op(OpType.SUM, ["att"], ["s"], {"axes": (2,)}, "s")
    g.add_tensor("r", (1, 5), DType.FLOAT32)
    g.add_op(OpType.REDUCE_MAX, ["mm"], ["r"], {"axes": (1,)}, "r")
    g.add_tensor("l", (1, 5), DType.FLOAT32)
    g.add_op(OpType.L2_NORMALIZATION, ["r"], ["l"], {}, "l")
    g.add_tensor("a", (1,), DType.INT32)
    g.add_op(OpType.ARG_MIN, ["s"], ["a"], {"axis": 1}, "a")
    g.outputs = ["s", "l", "a"]
    return g


def test_scale_rules():
    g = _graph()
    x = np.random.default_rng(1).standard_normal((64, 6, 8)).astype(np.float32)
    q = quantize(g, x).graph
    t = q.tensor
    assert t("r").quant == t("mm").quant  # REDUCE_MAX: TFLM requires equal parameters
    assert np.float32(t("l").quant.scale[0]) == np.float32(1 / 128) and t("l").quant.zero_point[0] == 0
    w = t("w")
    assert w.dtype is DType.INT8 and w.quant.zero_point[0] == 0 and np.abs(w.data).max() == 127
    assert t("a").dtype is DType.INT32 and t("a").quant is None
    assert "a" not in q.metadata["io_quant"]


def test_int8_is_close_to_float_and_argmin_mostly_agrees():
    g = _graph()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((200, 6, 8)).astype(np.float32)
    q = quantize(g, x[:100], io="float").graph
    f = Interpreter(g).run([x[:100]])  # the calibrated samples: no clipping
    o = Interpreter(q).run([x[:100]])
    span = float(f["s"].max() - f["s"].min())
    assert np.abs(f["s"] - o["s"]).max() < 0.03 * span
    assert np.abs(f["l"] - o["l"]).max() < 0.05
    assert (f["a"] == o["a"]).mean() > 0.8


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_quantized_graph_is_bit_exact_with_tflm():
    g = _graph()
    rng = np.random.default_rng(3)
    x = rng.standard_normal((64, 6, 8)).astype(np.float32)
    q = quantize(g, x).graph
    model = tflite_bytes(q)
    io = q.metadata["io_quant"]["x"]
    for sample in x[:8]:
        xi = np.clip(np.round(sample / io["scale"]) + io["zero_point"], -128, 127).astype(np.int8)[None]
        ref = Interpreter(q).run([xi])
        got = orc.run_tflm(model, [xi], n_outputs=3)
        for name, value in zip(q.outputs, got):
            np.testing.assert_array_equal(ref[name], value, err_msg=name)
