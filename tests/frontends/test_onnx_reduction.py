"""ONNX import of ReduceMax, ReduceSum, ArgMax/ArgMin, LpNormalization, MatMul of two
run-time tensors and LayerNormalization, against onnxruntime (graph optimizations off)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import UnsupportedOpError  # noqa: E402
from edgekit.frontends.onnx_importer import load_onnx  # noqa: E402
from edgekit.ir import OpType  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support.ort_oracle import exact_session  # noqa: E402


def _model(nodes, inputs, outputs, inits=(), opset=18):
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.INT64 if n.startswith("arg") else TensorProto.FLOAT, None)
         for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    inferred = onnx.shape_inference.infer_shapes(m, strict_mode=True).graph
    known = {vi.name: vi for vi in list(inferred.value_info) + list(inferred.output)}
    for out in m.graph.output:
        out.type.CopyFrom(known[out.name].type)
    return m


def _check(model, feeds, rtol=1e-5, atol=1e-6):
    want = exact_session(model).run(None, feeds)
    g = load_onnx(model)
    got = Interpreter(g).run(feeds, layout="source")
    outs = [got[n] for n in g.outputs]
    assert len(outs) == len(want)
    for a, e in zip(outs, want):
        assert a.shape == e.shape, (a.shape, e.shape)
        if e.dtype.kind == "i":
            np.testing.assert_array_equal(a, e)  # int32 here, int64 in onnxruntime: same values
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    return g


def _rand(shape, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 2).astype(np.float32)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 7)])
@pytest.mark.parametrize("keep", [0, 1])
def test_reduce_max_sum_and_arg(shape, keep):
    r = len(shape)
    axes = np.array([1, -1] if r == 4 else [0], np.int64)
    nodes = [helper.make_node("ReduceMax", ["x", "axes"], ["mx"], keepdims=keep),
             helper.make_node("ReduceSum", ["x", "axes"], ["sm"], keepdims=keep),
             helper.make_node("ArgMax", ["x"], ["arg_max"], axis=1, keepdims=keep),
             helper.make_node("ArgMin", ["x"], ["arg_min"], axis=-1, keepdims=keep)]
    m = _model(nodes, [("x", shape)], ["mx", "sm", "arg_max", "arg_min"], [("axes", axes)])
    g = _check(m, {"x": _rand(shape)})
    assert {OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN} <= {op.type for op in g.ops}


def test_reduce_with_axes_attribute_before_opset_18():
    m = _model([helper.make_node("ReduceMax", ["x"], ["y"], axes=[2], keepdims=1)], [("x", (1, 3, 4, 5))], ["y"],
               opset=13)
    _check(m, {"x": _rand((1, 3, 4, 5), 1)})


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (4, 9)])
@pytest.mark.parametrize("p, axis", [(2, -1), (2, 1), (1, -1)])
def test_lp_normalization(shape, p, axis):
    m = _model([helper.make_node("LpNormalization", ["x"], ["y"], p=p, axis=axis)], [("x", shape)], ["y"])
    g = _check(m, {"x": _rand(shape, 2)})
    assert (OpType.L2_NORMALIZATION if p == 2 else OpType.DIV) in {op.type for op in g.ops}


@pytest.mark.parametrize("a_shape, b_shape", [((2, 3, 4, 5), (2, 3, 5, 6)), ((1, 5, 7), (3, 7, 2)),
                                              ((4, 6), (6, 3)), ((2, 1, 3, 4), (5, 4, 2))])
def test_matmul_of_two_activations_broadcasts(a_shape, b_shape):
    m = _model([helper.make_node("MatMul", ["a", "b"], ["y"])], [("a", a_shape), ("b", b_shape)], ["y"])
    g = _check(m, {"a": _rand(a_shape, 3), "b": _rand(b_shape, 4)}, rtol=1e-4, atol=1e-5)
    assert OpType.BATCH_MATMUL in {op.type for op in g.ops}


def test_attention_pattern_with_constant_operands():
    """Q K^T / sqrt(d) softmax V with a constant key matrix (Transpose + MatMul + Softmax)."""
    k = _rand((4, 6, 8), 5)
    nodes = [helper.make_node("Transpose", ["q"], ["qt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["k", "qt"], ["s"]),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "q"], ["y"])]
    m = _model(nodes, [("q", (4, 8, 8))], ["y"], [("k", k)])
    _check(m, {"q": _rand((4, 8, 8), 6)}, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape, axis", [((2, 5, 8), -1), ((1, 3, 4, 6), -1), ((2, 3, 4, 6), 1)])
def test_layer_normalization(shape, axis):
    norm = shape[axis:]
    scale, bias = _rand(norm, 7), _rand(norm, 8)
    node = helper.make_node("LayerNormalization", ["x", "scale", "bias"], ["y"], axis=axis, epsilon=1e-3)
    m = _model([node], [("x", shape)], ["y"], [("scale", scale), ("bias", bias)], opset=17)
    g = _check(m, {"x": _rand(shape, 9)}, rtol=1e-4, atol=1e-5)
    assert OpType.RSQRT in {op.type for op in g.ops}


def test_layer_normalization_statistics_outputs():
    shape = (2, 5, 8)
    node = helper.make_node("LayerNormalization", ["x", "scale"], ["y", "mean", "inv_std"], axis=-1)
    m = _model([node], [("x", shape)], ["y", "mean", "inv_std"], [("scale", _rand((8,), 3))], opset=17)
    _check(m, {"x": _rand(shape, 4)}, rtol=1e-4, atol=1e-5)


def test_refusals_are_named():
    m = _model([helper.make_node("ArgMax", ["x"], ["arg"], select_last_index=1)], [("x", (2, 3))], ["arg"])
    with pytest.raises(UnsupportedOpError, match="select_last_index"):
        load_onnx(m)
    m = _model([helper.make_node("LpNormalization", ["x"], ["y"], p=3)], [("x", (2, 3))], ["y"])
    with pytest.raises(UnsupportedOpError, match="p=3"):
        load_onnx(m)


@pytest.mark.parametrize("eq, a_shape, b_shape", [
    ("bij,bjk->bik", (2, 3, 4), (2, 4, 5)),
    ("bhqd,bhkd->bhqk", (1, 2, 5, 4), (1, 2, 6, 4)),
    ("bji,bjk->bik", (2, 4, 3), (2, 4, 5)),
    ("ij,kj->ik", (3, 4), (5, 4)),
])
def test_einsum_matrix_products(eq, a_shape, b_shape):
    m = _model([helper.make_node("Einsum", ["a", "b"], ["y"], equation=eq)], [("a", a_shape), ("b", b_shape)],
               ["y"], opset=12)
    g = _check(m, {"a": _rand(a_shape, 10), "b": _rand(b_shape, 11)}, rtol=1e-4, atol=1e-5)
    assert [op.type for op in g.ops].count(OpType.BATCH_MATMUL) == 1


def test_einsum_other_equations_are_refused():
    m = _model([helper.make_node("Einsum", ["a"], ["y"], equation="ii->i")], [("a", (3, 3))], ["y"], opset=12)
    with pytest.raises(UnsupportedOpError, match="equation"):
        load_onnx(m)
