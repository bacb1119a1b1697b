"""The tiny two-scale detector of the zoo end to end on the host: imported from torch (float
equal to torch's outputs), quantized by edgekit (close to float), int8 bit-exact with
TFLite Micro (every op of it is a TFLM builtin: CONV_2D, RESIZE_NEAREST_NEIGHBOR,
CONCATENATION), compiled for cortex-m7 with the C backend."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.backends.tflite.writer import tflite_bytes  # noqa: E402
from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import detector_head as dh  # noqa: E402


@pytest.fixture(scope="module")
def float_graph():
    return dh.float_graph()


@pytest.fixture(scope="module")
def int8_graph(float_graph):
    return quantize(float_graph, dh.inputs(32)).graph


def _ir_layout(x):
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x  # NCHW -> NHWC


def _int8_inputs(g, x):
    q = g.metadata["io_quant"][g.inputs[0]]
    return np.clip(np.round(_ir_layout(x) / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)


def _torch_outputs(x):
    with torch.no_grad():
        ref = dh.torch_module()(torch.from_numpy(x))
    return [r.numpy() for r in (ref if isinstance(ref, tuple) else (ref,))]


def test_float_graph_matches_torch(float_graph):
    x = dh.inputs(8)
    ours = Interpreter(float_graph).run([x], layout="source")
    for name, ref in zip(float_graph.outputs, _torch_outputs(x)):
        np.testing.assert_allclose(ours[name], ref, rtol=1e-4, atol=1e-5)
    assert {OpType.RESIZE_NEAREST_NEIGHBOR, OpType.CONCATENATION, OpType.CONV_2D} <= {op.type for op in float_graph.ops}


def test_int8_is_close_to_float(float_graph):
    calib, test = dh.inputs(32 + 16)[:32], dh.inputs(32 + 16)[32:]
    fq = quantize(float_graph, calib, io="float").graph
    ref = Interpreter(float_graph).run([test], layout="source")
    ours = Interpreter(fq).run([test], layout="source")
    for name in float_graph.outputs:
        assert np.abs(ours[name] - ref[name]).max() < 0.08 * np.abs(ref[name]).max(), name


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(int8_graph):
    xi = _int8_inputs(int8_graph, dh.inputs(6))
    ref = Interpreter(int8_graph).run([xi])
    model = tflite_bytes(int8_graph)
    n_out = len(int8_graph.outputs)
    for i in range(len(xi)):
        got = orc.run_tflm(model, [xi[i:i + 1]], n_outputs=n_out)
        for name, g in zip(int8_graph.outputs, got):
            np.testing.assert_array_equal(g, ref[name][i:i + 1], err_msg=f"input {i}, output {name}")


def test_compiles_for_cortex_m7(int8_graph, tmp_path):
    from edgekit.backends.c import compile_model

    result = compile_model(int8_graph, "cortex-m7", tmp_path / "detector_head", measure=False)
    names = {k["kernel"] for k in result.kernels}
    assert {"resize_nearest", "concatenation"} <= names and any(n.startswith("conv2d") for n in names), names
    assert result.fit.fits, result.fit.over
    assert (tmp_path / "detector_head" / "model.c").is_file()
