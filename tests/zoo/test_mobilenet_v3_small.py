"""MobileNetV3-small of the zoo end to end on the host: imported from torch (float equal
to torch's outputs; hard-swish as HARD_SWISH, squeeze-excite as MEAN + 1x1 convs +
hard-sigmoid + a broadcast MUL), quantized by edgekit (close to float), int8 bit-exact
with TFLite Micro (every op of it is a TFLM builtin), compiled for cortex-m7."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.backends.tflite.writer import tflite_bytes  # noqa: E402
from edgekit.ir import OpType  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.zoo import mobilenet_v3_small as mn  # noqa: E402

CALIB, TEST = 24, 8


@pytest.fixture(scope="module")
def float_graph():
    return mn.float_graph()


@pytest.fixture(scope="module")
def quantized(float_graph):
    return quantize(float_graph, mn.inputs(CALIB))


def _int8_inputs(g, x):
    q = g.metadata["io_quant"][g.inputs[0]]
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return np.clip(np.round(nhwc / q["scale"]) + q["zero_point"], -128, 127).astype(np.int8)


def test_float_graph_matches_torch(float_graph):
    x = mn.inputs(4)
    ours = Interpreter(float_graph).run([x], layout="source")[float_graph.outputs[0]]
    with torch.no_grad():
        ref = mn.torch_module()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-5)
    types = [op.type for op in float_graph.ops]
    assert types.count(OpType.HARD_SWISH) == 19  # stem, 8 blocks x 2, last conv, head
    assert types.count(OpType.MEAN) == 9 + 1  # 9 squeeze-excites and the global pool
    # each excite is a MUL of the feature map by a [1, 1, 1, C] gate
    g = float_graph
    gates = [op for op in g.ops if op.type is OpType.MUL
             and g.tensor(op.inputs[1]).shape[1:3] == (1, 1) and not g.tensor(op.inputs[1]).is_const]
    assert len(gates) == 9


def test_int8_is_close_to_float(float_graph, quantized):
    x = mn.inputs(CALIB + TEST)[CALIB:]
    fq = quantize(float_graph, mn.inputs(CALIB), io="float").graph
    ref = Interpreter(float_graph).run([x], layout="source")[float_graph.outputs[0]]
    ours = Interpreter(fq).run([x], layout="source")[float_graph.outputs[0]]
    sqnr = 10 * np.log10((ref ** 2).mean() / ((ours - ref) ** 2).mean())
    assert sqnr > 15, sqnr  # about 20 dB measured
    # the SE gate's MUL has its own output range (TFLite's rule), not one of its inputs'
    q = quantized.graph
    gate_mul = next(op for op in q.ops if op.type is OpType.MUL and q.tensor(op.inputs[1]).shape[1:3] == (1, 1)
                    and not q.tensor(op.inputs[1]).is_const)
    qo = q.tensor(gate_mul.outputs[0]).quant
    assert all(qo != q.tensor(n).quant for n in gate_mul.inputs)


@pytest.mark.skipif(not orc.HAVE_TFLM, reason="tflite_micro is not installed")
def test_int8_is_bit_exact_with_tflm(quantized):
    g = quantized.graph
    xi = _int8_inputs(g, mn.inputs(CALIB + 3)[CALIB:])
    ref = Interpreter(g).run([xi])[g.outputs[0]]
    model = tflite_bytes(g)
    for i in range(len(xi)):
        got = orc.run_tflm(model, [xi[i:i + 1]])[0]
        np.testing.assert_array_equal(got, ref[i:i + 1], err_msg=f"input {i}")


def test_compiles_for_cortex_m7(quantized, tmp_path):
    from edgekit.backends.c import compile_model

    result = compile_model(quantized.graph, "cortex-m7", tmp_path / "mobilenet_v3_small", measure=False)
    kernels = {k["kernel"] for k in result.kernels}
    assert {"depthwise_conv2d", "lut", "mul", "add", "mean"} <= kernels
    assert any(k.startswith("conv2d") for k in kernels)
    assert result.fit.fits, result.fit.over
    assert (tmp_path / "mobilenet_v3_small" / "model.c").is_file()
