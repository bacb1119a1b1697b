"""The elementwise ops through the writers and the quantizer: one graph per op (float,
and int8 from edgekit's quantizer), written to .tflite and run in TFLite Micro (int8,
where TFLM has the kernel) or LiteRT's reference kernels, and read back by the .tflite
importer; outputs bit-exact with edgekit's reference interpreter for int8."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.tflite import tflite_bytes
from edgekit.frontends.tflite.importer import load_tflite
from edgekit.ir import DType, Graph, OpType
from edgekit.quantize import quantize
from edgekit.reference import elementwise_kernels as ew
from edgekit.reference.interpreter import Interpreter
from tests.support import tflite_oracle as orc

needs_oracles = pytest.mark.skipif(not (orc.HAVE_TFLM and orc.HAVE_LITERT), reason="tflite_micro / ai_edge_litert")

UNARY = {"HARD_SWISH": {}, "LEAKY_RELU": {"alpha": 0.15}, "ABS": {}, "NEG": {}, "EXP": {}, "LOG": {},
         "SQRT": {}, "RSQRT": {}, "GELU": {"approximate": False}}
BINARY = {"MAXIMUM": {}, "MINIMUM": {}, "DIV": {"activation": "NONE"}, "SQUARED_DIFFERENCE": {}, "PRELU": {}}
TFLM_INT8 = {"HARD_SWISH", "LEAKY_RELU", "ABS", "RSQRT", "MAXIMUM", "MINIMUM", "DIV", "SQUARED_DIFFERENCE",
             "PRELU"}
POSITIVE = {"LOG", "SQRT", "RSQRT"}


def graph_of(op: str) -> Graph:
    """x [1, 4, 4, 3] -> (ADD 0.5: a computed input) -> op -> y; binary ops take a second
    input (PRELU a constant per-channel slope)."""
    g = Graph(op.lower())
    g.add_tensor("x", (1, 4, 4, 3), DType.FLOAT32)
    g.add_const("half", np.array([0.5], np.float32))
    g.add_tensor("x1", (1, 4, 4, 3), DType.FLOAT32)
    g.add_op(OpType.ADD, ["x", "half"], ["x1"])
    ins = ["x1"]
    if op == "PRELU":
        g.add_const("alpha", np.array([[[0.25, -0.5, 0.1]]], np.float32))
        ins.append("alpha")
    elif op in BINARY:
        g.add_tensor("w", (1, 1, 4, 3), DType.FLOAT32)
        ins.append("w")
    g.add_tensor("y", (1, 4, 4, 3), DType.FLOAT32)
    g.add_op(OpType[op], ins, ["y"], dict({**UNARY, **BINARY}[op]))
    g.inputs = ["x"] + (["w"] if "w" in g.tensors else [])
    g.outputs = ["y"]
    return g


def _op_inputs(q: Graph, q_in) -> list[np.ndarray]:
    """The int8 values reaching the last op of ``q``."""
    dump = Interpreter(q).run(dict(zip(q.inputs, q_in)), dump=True)
    return [dump[n] for n in q.ops[-1].inputs]


def inputs_for(op: str, n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 4, 4, 3)).astype(np.float32) * 2
    if op in POSITIVE:
        x = np.abs(x) + np.float32(0.1)
    out = [x]
    if op in BINARY and op != "PRELU":
        w = rng.standard_normal((n, 1, 4, 3)).astype(np.float32)
        if op == "DIV":
            w = (np.abs(w) + np.float32(0.5)) * np.sign(w + np.float32(1e-3))
        out.append(w.astype(np.float32))
    return out


@needs_oracles
@pytest.mark.parametrize("op", list(UNARY) + list(BINARY))
def test_float_graph_round_trips_through_tflite(op):
    g = graph_of(op)
    model = tflite_bytes(g)
    back = load_tflite(model)
    assert OpType[op] in {o.type for o in back.ops}
    xs = inputs_for(op, 1, seed=1)
    want = orc.run_litert(model, xs)[0]
    for graph in (g, back):
        got = Interpreter(graph).run(dict(zip(graph.inputs, xs)))[graph.outputs[0]]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@needs_oracles
@pytest.mark.parametrize("op", list(UNARY) + list(BINARY))
def test_int8_graph_is_bit_exact_with_the_oracle(op):
    g = graph_of(op)
    calib = inputs_for(op, 16, seed=2)
    q = quantize(g, calib if len(calib) > 1 else calib[0]).graph
    assert {t.dtype for t in q.tensors.values() if not t.is_const} == {DType.INT8}
    model = tflite_bytes(q)
    back = load_tflite(model)
    # int8 NEG is MUL by -1 (LiteRT's int8 NEG negates raw values; see edgekit.quantize.elementwise)
    assert (OpType.MUL if op == "NEG" else OpType[op]) in {o.type for o in back.ops}
    for k in (0, 5):  # samples of the calibration set: no clipping, so int8 follows float closely
        xs = [c[k:k + 1] for c in calib]
        q_in = [np.clip(np.round(x / q.tensor(n).quant.scale[0]) + q.tensor(n).quant.zero_point[0], -128, 127)
                .astype(np.int8) for x, n in zip(xs, q.inputs)]
        if op in POSITIVE:  # calibrated inputs are positive: the zero point is the lowest code
            q_in = [np.maximum(v, np.int8(q.tensor(n).quant.zero_point[0])) for v, n in zip(q_in, q.inputs)]
        mine = Interpreter(q).run(dict(zip(q.inputs, q_in)))[q.outputs[0]]
        again = Interpreter(back).run(dict(zip(back.inputs, q_in)))[back.outputs[0]]
        oracle = orc.run_tflm(model, q_in)[0] if op in TFLM_INT8 | {"NEG"} else orc.run_litert(model, q_in)[0]
        np.testing.assert_array_equal(mine, again)
        if op == "DIV":  # where TFLM shifts an int32 by 32 bits or more (undefined), see div_s8
            qps = [q.tensor(n).quant for n in q.ops[-1].inputs] + [q.tensor(q.outputs[0]).quant]
            ok = np.broadcast_to(ew.div_exponents(*_op_inputs(q, q_in), *qps) > -32, mine.shape)
            np.testing.assert_array_equal(mine[ok], oracle[ok])
        else:
            np.testing.assert_array_equal(mine, oracle)
        oq = q.tensor(q.outputs[0]).quant
        deq = (again.astype(np.float32) - oq.zero_point[0]) * oq.scale[0]
        want = Interpreter(g).run(dict(zip(g.inputs, xs)))[g.outputs[0]]
        span = float(want.max() - want.min()) or 1.0
        assert np.abs(deq - want).max() <= 0.08 * span, op  # int8 follows float to a few steps


# ---------------------------------------------------------------------------------- ONNX writer

@pytest.mark.parametrize("op", list(UNARY) + list(BINARY) + ["GELU_TANH"])
@pytest.mark.parametrize("opset", [13, 20])
def test_onnx_writer_matches_the_reference(op, opset):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from edgekit.backends.onnx import to_onnx
    from edgekit.frontends.onnx import load_onnx
    from tests.support.ort_oracle import exact_session

    if opset > onnx.defs.onnx_opset_version():
        pytest.skip("this onnx has no opset 20")  # pragma: no cover
    g = graph_of("GELU" if op == "GELU_TANH" else op)
    if op == "GELU_TANH":
        g.ops[-1].attrs["approximate"] = True
    xs = inputs_for("GELU" if op == "GELU_TANH" else op, 3, seed=5)
    want = Interpreter(g).run(dict(zip(g.inputs, xs)))[g.outputs[0]]
    m = to_onnx(g, opset=opset, layout="ir")
    sess = exact_session(m)
    got = np.concatenate([sess.run(None, {n: x[i:i + 1] for n, x in zip(g.inputs, xs)})[0] for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    back = load_onnx(m.SerializeToString())
    got_back = Interpreter(back).run(dict(zip(back.inputs, [x[:1] for x in xs])), layout="source")[back.outputs[0]]
    np.testing.assert_allclose(got_back, want[:1], rtol=1e-5, atol=1e-5)
    # written as one ONNX op, read back as the same IR op (the erf form of GELU included)
    decomposed = {"RSQRT", "SQUARED_DIFFERENCE"} | ({"HARD_SWISH", "GELU_TANH"} if opset < 14 else set())
    if op not in decomposed:
        assert OpType[op.replace("_TANH", "")] in {o.type for o in back.ops}
