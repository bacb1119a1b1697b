"""Each rewrite removes what it should and keeps the graph's function (checked against
a numpy computation written out here, not against the interpreter's earlier output)."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.ir import DType, Graph, OpType, QuantParams, verify
from edgekit.ir.passes import PASSES, run_passes
from edgekit.reference.interpreter import Interpreter

rng = np.random.default_rng(0)


def conv_nhwc(x, w, b, pad):
    """Plain-loop NHWC conv with OHWI weights, stride 1: the oracle for these tests."""
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0))).astype(np.float64)
    n, h, wd, _ = x.shape
    cout, kh, kw, _ = w.shape
    out = np.zeros((n, h + 2 * pad - kh + 1, wd + 2 * pad - kw + 1, cout))
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            patch = xp[:, i:i + kh, j:j + kw, :]
            out[:, i, j, :] = np.einsum("nhwc,ohwc->no", patch, w)
    return out + b


def conv_bn_relu_graph():
    g = Graph("cbr")
    g.add_tensor("x", (1, 6, 6, 3), DType.FLOAT32)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    b = rng.normal(size=4).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, 4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    mean, var = rng.normal(size=4).astype(np.float32), rng.uniform(0.1, 2, 4).astype(np.float32)
    for name, arr in dict(w=w, b=b, gamma=gamma, beta=beta, mean=mean, var=var).items():
        g.add_const(name, arr)
    g.add_tensor("c", (1, 6, 6, 4), DType.FLOAT32)
    g.add_tensor("n", (1, 6, 6, 4), DType.FLOAT32)
    g.add_tensor("y", (1, 6, 6, 4), DType.FLOAT32)
    g.add_op(OpType.CONV_2D, ["x", "w", "b"], ["c"], {"pads": (1, 1, 1, 1)}, "conv")
    g.add_op(OpType.BATCH_NORM, ["c", "gamma", "beta", "mean", "var"], ["n"], {"epsilon": 1e-3}, "bn")
    g.add_op(OpType.RELU, ["n"], ["y"], name="relu")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)

    def oracle(x):
        c = conv_nhwc(x, w, b, 1)
        n = (c - mean) / np.sqrt(var.astype(np.float64) + 1e-3) * gamma + beta
        return np.maximum(n, 0)
    return g, oracle


def test_fold_batchnorm_and_fuse_relu():
    g, oracle = conv_bn_relu_graph()
    x = rng.normal(size=(5, 6, 6, 3)).astype(np.float32)
    before = Interpreter(g).run([x])["y"]
    applied = run_passes(g)
    assert "fold_batchnorm" in applied and "fuse_activation" in applied
    assert g.op_types() == ["CONV_2D"]
    assert g.ops[0].attrs["activation"] == "RELU"
    assert g.ops[0].outputs == ["y"]  # graph output keeps its name
    after = Interpreter(g).run([x])["y"]
    np.testing.assert_allclose(before, oracle(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(after, oracle(x), rtol=1e-5, atol=1e-5)


def test_lone_batchnorm_becomes_mul_add():
    g = Graph("bn")
    g.add_tensor("x", (2, 3, 3, 4), DType.FLOAT32)
    vals = [rng.uniform(0.5, 2, 4).astype(np.float32) for _ in range(4)]
    for name, v in zip(("gamma", "beta", "mean", "var"), vals):
        g.add_const(name, v)
    g.add_tensor("y", (2, 3, 3, 4), DType.FLOAT32)
    g.add_op(OpType.BATCH_NORM, ["x", "gamma", "beta", "mean", "var"], ["y"], {"epsilon": 1e-5}, "bn")
    g.inputs, g.outputs = ["x"], ["y"]
    run_passes(g, ["fold_batchnorm"])
    assert g.op_types() == ["MUL", "ADD"]
    x = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    gamma, beta, mean, var = vals
    expect = (x - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(Interpreter(g).run([x])["y"], expect, rtol=1e-5, atol=1e-6)


def test_int8_relu_fused_only_when_quantization_matches():
    def build(relu_q):
        g = Graph("q")
        q = QuantParams.per_tensor(0.1, -5)
        g.add_tensor("a", (1, 4), DType.INT8, q)
        g.add_tensor("b", (1, 4), DType.INT8, q)
        g.add_tensor("s", (1, 4), DType.INT8, QuantParams.per_tensor(0.2, 0))
        g.add_tensor("y", (1, 4), DType.INT8, relu_q)
        g.add_op(OpType.ADD, ["a", "b"], ["s"], name="add")
        g.add_op(OpType.RELU, ["s"], ["y"], name="relu")
        g.inputs, g.outputs = ["a", "b"], ["y"]
        return g
    same = build(QuantParams.per_tensor(0.2, 0))
    a = rng.integers(-128, 128, (50, 4)).astype(np.int8)
    b = rng.integers(-128, 128, (50, 4)).astype(np.int8)
    before = Interpreter(same).run([a, b])["y"]
    run_passes(same, ["fuse_activation"])
    assert same.op_types() == ["ADD"]
    assert (Interpreter(same).run([a, b])["y"] == before).all()
    other = build(QuantParams.per_tensor(0.05, -128))
    run_passes(other, ["fuse_activation"])
    assert other.op_types() == ["ADD", "RELU"]


def test_remove_identity_reshape_and_merge_reshapes():
    g = Graph("r")
    g.add_tensor("x", (1, 2, 3), DType.FLOAT32)
    for name, shape in (("a", (1, 2, 3)), ("b", (1, 6)), ("c", (6, 1)), ("y", (6, 1))):
        g.add_tensor(name, shape, DType.FLOAT32)
    g.add_op(OpType.RESHAPE, ["x"], ["a"], {"shape": (1, 2, 3)}, "same")
    g.add_op(OpType.RESHAPE, ["a"], ["b"], {"shape": (1, 6)}, "r1")
    g.add_op(OpType.RESHAPE, ["b"], ["c"], {"shape": (6, 1)}, "r2")
    g.add_op(OpType.RELU, ["c"], ["y"], name="relu")
    g.inputs, g.outputs = ["x"], ["y"]
    run_passes(g, ["remove_identity", "dead_code"])
    assert g.op_types() == ["RESHAPE", "RELU"]
    assert g.ops[0].inputs == ["x"]
    x = rng.normal(size=(1, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(Interpreter(g).run([x])["y"], np.maximum(x.reshape(6, 1), 0))


def test_constant_fold():
    g = Graph("cf")
    g.add_tensor("x", (1, 3), DType.FLOAT32)
    g.add_const("k1", np.array([[1.0, 2.0, 3.0]], np.float32))
    g.add_const("k2", np.array([[0.5, 0.5, 0.5]], np.float32))
    g.add_tensor("k", (1, 3), DType.FLOAT32)
    g.add_tensor("y", (1, 3), DType.FLOAT32)
    g.add_op(OpType.MUL, ["k1", "k2"], ["k"], name="const_mul")
    g.add_op(OpType.ADD, ["x", "k"], ["y"], name="add")
    g.inputs, g.outputs = ["x"], ["y"]
    run_passes(g, ["constant_fold"])
    assert g.op_types() == ["ADD"]
    np.testing.assert_array_equal(g.tensor("k").data, [[0.5, 1.0, 1.5]])


def test_fold_transpose_into_fc_keeps_nchw_flatten_order():
    """NCHW flatten before a dense layer: the importer's TRANSPOSE back to NCHW is
    replaced by permuting the dense weights."""
    g = Graph("t")
    g.add_tensor("x", (1, 2, 3, 4), DType.FLOAT32)  # NHWC; the source saw [1, 4, 2, 3]
    w = rng.normal(size=(5, 24)).astype(np.float32)
    g.add_const("w", w)
    g.add_tensor("t", (1, 4, 2, 3), DType.FLOAT32)
    g.add_tensor("f", (1, 24), DType.FLOAT32)
    g.add_tensor("y", (1, 5), DType.FLOAT32)
    g.add_op(OpType.TRANSPOSE, ["x"], ["t"], {"perm": (0, 3, 1, 2)}, "to_nchw")
    g.add_op(OpType.RESHAPE, ["t"], ["f"], {"shape": (1, 24)}, "flatten")
    g.add_op(OpType.FULLY_CONNECTED, ["f", "w"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    x = rng.normal(size=(3, 2, 3, 4)).astype(np.float32)
    expect = x.transpose(0, 3, 1, 2).reshape(3, 24) @ w.T
    run_passes(g, ["fold_transpose_into_fc", "dead_code"])
    assert "TRANSPOSE" not in g.op_types()
    np.testing.assert_allclose(Interpreter(g).run([x])["y"], expect, rtol=1e-5, atol=1e-5)


def test_cancel_transposes():
    g = Graph("tt")
    g.add_tensor("x", (1, 2, 3, 4), DType.FLOAT32)
    g.add_tensor("a", (1, 4, 2, 3), DType.FLOAT32)
    g.add_tensor("b", (1, 2, 3, 4), DType.FLOAT32)
    g.add_tensor("y", (1, 2, 3, 4), DType.FLOAT32)
    g.add_op(OpType.TRANSPOSE, ["x"], ["a"], {"perm": (0, 3, 1, 2)}, "t1")
    g.add_op(OpType.TRANSPOSE, ["a"], ["b"], {"perm": (0, 2, 3, 1)}, "t2")
    g.add_op(OpType.RELU, ["b"], ["y"], name="relu")
    g.inputs, g.outputs = ["x"], ["y"]
    run_passes(g)
    assert g.op_types() == ["RELU"]


def test_unknown_pass_name():
    with pytest.raises(ValueError, match="unknown pass"):
        run_passes(Graph(), ["no_such_pass"])
    assert {"fold_batchnorm", "fuse_activation", "remove_identity", "constant_fold"} <= set(PASSES)


def test_dequantize_weights_turns_hybrid_into_float():
    from tests.support.shared import shared_file
    from edgekit.frontends.tflite import load_tflite

    g = load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_float32.tflite"))
    w0 = g.tensor(g.ops[0].inputs[1])
    expect = w0.data.astype(np.float32) * np.float32(w0.quant.scale[0])
    assert run_passes(g, ["dequantize_weights"]) == ["dequantize_weights"]
    assert all(g.tensor(op.inputs[1]).dtype is DType.FLOAT32 for op in g.ops
               if op.type in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED))
    np.testing.assert_array_equal(g.tensor(g.ops[0].inputs[1]).data, expect)
