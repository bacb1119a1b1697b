"""The keyword transformer of the zoo end to end on the host: imported from torch (float
equal to torch's outputs), quantized by edgekit (close to float), int8 bit-exact with
TFLite Micro (every op of it is a TFLM builtin), compiled for cortex-m7 with the C
backend."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.backends.tflite.writer import tflite_bytes  # noqa: E402
from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import keyword_transformer as kwt  # noqa: E402


@pytest.fixture(scope="module")
def float_graph():
    return kwt.float_graph()


@pytest.fixture(scope="module")
def int8_graph(float_graph):
    return quantize(float_graph, kwt.inputs(64)).graph


def _int8_inputs(g, x):
    q = g.metadata["io_quant"][g.inputs[0]]
    return np.clip(np.round(x / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)


def test_float_graph_matches_torch(float_graph):
    x = kwt.inputs(16)
    ours = Interpreter(float_graph).run([x])[float_graph.outputs[0]]
    with torch.no_grad():
        ref = kwt.torch_module()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    types = {op.type for op in float_graph.ops}
    assert {OpType.BATCH_MATMUL, OpType.SOFTMAX, OpType.RSQRT, OpType.FULLY_CONNECTED} <= types
    assert OpType.TRANSPOSE not in types  # k^T is adj_y


def test_int8_is_close_to_float(float_graph):
    calib, test = kwt.inputs(96)[:64], kwt.inputs(96)[64:]
    fq = quantize(float_graph, calib, io="float").graph
    ref = Interpreter(float_graph).run([test])[float_graph.outputs[0]]
    ours = Interpreter(fq).run([test])[float_graph.outputs[0]]
    assert np.abs(ours - ref).max() < 0.05 * np.abs(ref).max()
    assert (ours.argmax(1) == ref.argmax(1)).mean() >= 0.9


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(int8_graph):
    xi = _int8_inputs(int8_graph, kwt.inputs(12))
    ref = Interpreter(int8_graph).run([xi])[int8_graph.outputs[0]]
    model = tflite_bytes(int8_graph)
    for i in range(len(xi)):
        got = orc.run_tflm(model, [xi[i:i + 1]])[0]
        np.testing.assert_array_equal(got, ref[i:i + 1], err_msg=f"input {i}")


def test_compiles_for_cortex_m7(int8_graph, tmp_path):
    from edgekit.backends.c import compile_model

    result = compile_model(int8_graph, "cortex-m7", tmp_path / "kwt", measure=False)
    kernels = {k["kernel"] for k in result.kernels}
    assert {"batch_matmul", "softmax", "mean"} <= kernels and any(k.startswith("fully_connected") for k in kernels)
    assert result.fit.fits, result.fit.over
    assert (tmp_path / "kwt" / "model.c").is_file()
