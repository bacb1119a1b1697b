"""ONNX ops edgekit imports as compositions of IR ops (``handlers_composite``), and
shapes/axes computed from constants (``folding``), against onnxruntime.

Each case is a small float32 graph; edgekit's reference interpreter must give
onnxruntime's outputs (rtol 1e-5, as the node conformance cases) on NCHW and plain
tensors alike. Ops the bundled node cases cannot reach on float32 data (their cases
take float64 or integer inputs) are covered here.
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.errors import UnsupportedOpError  # noqa: E402
from edgekit.frontends.onnx_importer import load_onnx  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support.ort_oracle import exact_session  # noqa: E402

OPSET = 18


def _model(nodes, inputs, outputs, inits=(), opset=OPSET):
    g = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    # Declare the outputs' shapes as ONNX's shape inference finds them.
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
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    return g


def _rand(shape, seed=0, scale=2.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


UNARY = [
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
    ("HardSigmoid", {}),
    ("Softplus", {}),
    ("Softsign", {}),
    ("Elu", {"alpha": 0.7}),
    ("Selu", {}),
    ("Celu", {"alpha": 1.5}),
    ("Mish", {}),
]


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (3, 7)], ids=["nchw", "2d"])
@pytest.mark.parametrize("op,attrs", UNARY, ids=[f"{o}{i}" for i, (o, _) in enumerate(UNARY)])
def test_activation_compositions(op, attrs, shape):
    m = _model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", shape)], ["y"])
    _check(m, {"x": _rand(shape, 1)})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("axis,opset", [(1, 18), (2, 18), (-1, 18), (0, 18), (1, 11), (2, 11)])
def test_softmax_any_axis(op, axis, opset):
    shape = (2, 3, 4, 5)
    m = _model([helper.make_node(op, ["x"], ["y"], axis=axis)], [("x", shape)], ["y"], opset=opset)
    _check(m, {"x": _rand(shape, 2, 4.0)})


REDUCE = ["ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "ReduceMin"]


@pytest.mark.parametrize("op", REDUCE)
@pytest.mark.parametrize("axes,keep", [([1], 1), ([2, 3], 0), ([0, 2], 0), (None, 1)])
def test_reductions(op, axes, keep):
    shape = (2, 3, 4, 5)
    x = _rand(shape, 3)
    if op == "ReduceLogSum":
        x = np.abs(x) + 0.1  # log of a positive sum
    inits = [] if axes is None else [("axes", np.asarray(axes, np.int64))]
    node = helper.make_node(op, ["x"] + ([] if axes is None else ["axes"]), ["y"], keepdims=keep)
    _check(_model([node], [("x", shape)], ["y"], inits), {"x": x}, rtol=2e-5)


def test_variadic_sum_mean_broadcast():
    nodes = [helper.make_node("Sum", ["a", "b", "c"], ["s"]), helper.make_node("Mean", ["a", "b", "c"], ["m"])]
    m = _model(nodes, [("a", (2, 3, 4, 5)), ("b", (5,)), ("c", (3, 1, 1))], ["s", "m"])
    _check(m, {"a": _rand((2, 3, 4, 5), 4), "b": _rand((5,), 5), "c": _rand((3, 1, 1), 6)})


def test_expand_where_trilu_clip():
    cond = np.random.default_rng(7).random((3, 4)) > 0.5
    nodes = [
        helper.make_node("Expand", ["x", "shape"], ["e"]),
        helper.make_node("Where", ["cond", "e", "minus"], ["w"]),
        helper.make_node("Trilu", ["w"], ["t"], upper=0),
        helper.make_node("Clip", ["t", "lo", "hi"], ["y"]),
    ]
    inits = [("shape", np.asarray([2, 3, 4], np.int64)), ("cond", cond), ("minus", np.float32(-3.5)),
             ("lo", np.float32(-2.0)), ("hi", np.float32(1.5))]
    m = _model(nodes, [("x", (3, 1))], ["y"], inits)
    _check(m, {"x": _rand((3, 1), 8)})


def test_where_two_runtime_branches():
    cond = np.asarray([[True, False, True], [False, False, True]])
    m = _model([helper.make_node("Where", ["cond", "a", "b"], ["y"])], [("a", (2, 3)), ("b", (2, 3))], ["y"],
               [("cond", cond)])
    _check(m, {"a": _rand((2, 3), 9), "b": _rand((2, 3), 10)})


def test_attention_mask_folds_to_constants():
    """A causal mask computed from shapes (Shape, Range, Less, Where, Trilu...) folds to a
    constant; only the matrix arithmetic reaches the IR."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
        helper.make_node("Range", ["zero", "n", "one"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "ax0"], ["row"]),
        helper.make_node("Unsqueeze", ["r", "ax1"], ["col"]),
        helper.make_node("Less", ["row", "col"], ["upper"]),
        helper.make_node("Not", ["upper"], ["keep"]),
        helper.make_node("Where", ["keep", "zf", "neg"], ["bias"]),
        helper.make_node("Add", ["x", "bias"], ["y"]),
        helper.make_node("Softmax", ["y"], ["p"], axis=-1),
    ]
    inits = [("one", np.asarray(1, np.int64)), ("zero", np.asarray(0, np.int64)),
             ("ax0", np.asarray([0], np.int64)), ("ax1", np.asarray([1], np.int64)),
             ("zf", np.float32(0)), ("neg", np.float32(-1e4))]
    m = _model(nodes, [("x", (6, 6))], ["p"], inits)
    g = _check(m, {"x": _rand((6, 6), 11)})
    assert {op.type.value for op in g.ops} <= {"ADD", "SOFTMAX", "RESHAPE"}


def test_mod_of_a_runtime_tensor_is_rejected_with_its_reason():
    m = _model([helper.make_node("Mod", ["x", "c"], ["y"], fmod=1)], [("x", (2, 3))], ["y"],
               [("c", np.float32(0.5))])
    with pytest.raises(UnsupportedOpError, match="Mod.*compile time.*run time"):
        load_onnx(m)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("op", ["NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"])
def test_losses_with_constant_targets(op, reduction):
    rng = np.random.default_rng(12)
    target = rng.integers(0, 5, (2, 3, 4)).astype(np.int64)
    target[0, 1, 2] = -1  # ignored
    weight = rng.random(5).astype(np.float32)
    node = helper.make_node(op, ["x", "t", "w"], ["y"], reduction=reduction, ignore_index=-1)
    m = _model([node], [("x", (2, 5, 3, 4))], ["y"], [("t", target), ("w", weight)])
    _check(m, {"x": _rand((2, 5, 3, 4), 13)})


def test_op_without_a_converter_imports_through_its_onnx_function(monkeypatch):
    from edgekit.frontends.onnx import convert

    monkeypatch.delitem(convert._HANDLERS, "HardSwish", raising=False)  # force the function path
    m = _model([helper.make_node("HardSwish", ["x"], ["y"])], [("x", (2, 3, 4, 5))], ["y"], opset=14)
    g = _check(m, {"x": _rand((2, 3, 4, 5), 14, 4.0)})
    assert "HARD_SWISH" not in {op.type.value for op in g.ops}


def test_function_body_needing_a_missing_op_names_both(monkeypatch):
    from edgekit.frontends.onnx import convert

    monkeypatch.delitem(convert._HANDLERS, "HardSwish", raising=False)
    monkeypatch.delitem(convert._HANDLERS, "HardSigmoid")
    m = _model([helper.make_node("HardSwish", ["x"], ["y"])], [("x", (2, 3))], ["y"], opset=14)
    with pytest.raises(UnsupportedOpError, match="HardSwish.*ONNX function definition.*HardSigmoid"):
        load_onnx(m)


def test_where_passes_infinities_of_the_unpicked_side_untouched():
    """Log(0) = -inf at run time where the condition picks the other side: the result
    must be that side's value, not the NaN a mask multiplication would give."""
    x = np.abs(_rand((2, 4), 15)) + 0.5
    x[0, 1] = x[1, 3] = 0.0
    cond = x != 0  # False exactly where Log gives -inf
    nodes = [helper.make_node("Log", ["x"], ["l"]), helper.make_node("Where", ["cond", "l", "y"], ["out"])]
    m = _model(nodes, [("x", (2, 4)), ("y", (2, 4))], ["out"], [("cond", cond)])
    y = _rand((2, 4), 16)
    _check(m, {"x": x, "y": y})


def test_gather_and_scatter_elements_with_constant_indices():
    rng = np.random.default_rng(17)
    gidx = rng.integers(-4, 4, (2, 3, 2, 5)).astype(np.int64)
    sidx = np.asarray([[1, 0, 3], [2, 2, 0]], np.int64)
    nd_idx = np.asarray([[0, 1], [1, 2], [0, 2]], np.int64)
    nodes = [
        helper.make_node("GatherElements", ["x", "gidx"], ["g"], axis=2),
        helper.make_node("ScatterElements", ["m", "sidx", "u"], ["s"], axis=1),
        helper.make_node("ScatterND", ["x", "nd_idx", "v"], ["n"]),
    ]
    m = _model(nodes, [("x", (2, 3, 4, 5)), ("m", (2, 4)), ("u", (2, 3)), ("v", (3, 4, 5))], ["g", "s", "n"],
               [("gidx", gidx), ("sidx", sidx), ("nd_idx", nd_idx)])
    _check(m, {"x": _rand((2, 3, 4, 5), 18), "m": _rand((2, 4), 19), "u": _rand((2, 3), 20),
               "v": _rand((3, 4, 5), 21)})


@pytest.mark.parametrize("p", [1, 2, 3])
def test_lp_pool(p):
    node = helper.make_node("LpPool", ["x"], ["y"], kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1], p=p)
    m = _model([node], [("x", (1, 3, 6, 5))], ["y"])
    _check(m, {"x": _rand((1, 3, 6, 5), 22)}, rtol=3e-5)


def test_instance_norm_and_lrn():
    rng = np.random.default_rng(25)
    nodes = [helper.make_node("InstanceNormalization", ["x", "s", "b"], ["n"], epsilon=1e-3),
             helper.make_node("LRN", ["n"], ["y"], size=3, alpha=2e-3, beta=0.7, bias=1.5)]
    m = _model(nodes, [("x", (2, 5, 4, 3))], ["y"], [("s", rng.random(5).astype(np.float32) + 0.5),
                                                   ("b", rng.standard_normal(5).astype(np.float32))])
    _check(m, {"x": _rand((2, 5, 4, 3), 26)})


def test_run_time_comparisons_logic_and_where():
    """Comparisons of float tensors, logic on their results and a run-time Where, with
    ties (equal elements) and a constant -inf compared for equality."""
    x = np.round(_rand((3, 4), 27))  # many exact ties with y
    y = np.round(_rand((4,), 28))
    nodes = [
        helper.make_node("Greater", ["x", "y"], ["gt"]), helper.make_node("Less", ["x", "y"], ["lt"]),
        helper.make_node("GreaterOrEqual", ["x", "y"], ["ge"]), helper.make_node("LessOrEqual", ["x", "y"], ["le"]),
        helper.make_node("Equal", ["x", "y"], ["eq"]),
        helper.make_node("And", ["ge", "le"], ["both"]), helper.make_node("Or", ["gt", "lt"], ["either"]),
        helper.make_node("Xor", ["both", "either"], ["one"]), helper.make_node("Not", ["one"], ["none"]),
        helper.make_node("Log", ["x2"], ["lg"]),  # -inf where x2 is 0
        helper.make_node("Equal", ["lg", "neginf"], ["isneg"]),
        helper.make_node("Where", ["gt", "lg", "x"], ["w"]),
    ]
    outs = ["gt", "lt", "ge", "le", "eq", "none", "isneg", "w"]
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4]),
                     helper.make_tensor_value_info("y", TensorProto.FLOAT, [4]),
                     helper.make_tensor_value_info("x2", TensorProto.FLOAT, [3, 4])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT if o == "w" else TensorProto.BOOL, [3, 4])
         for o in outs],
        [numpy_helper.from_array(np.asarray(-np.inf, np.float32), "neginf")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    x2 = np.abs(x)  # zeros where x rounded to 0: log gives -inf there
    feeds = {"x": x, "y": y, "x2": x2}
    want = exact_session(m).run(None, feeds)
    gr = load_onnx(m)
    got = Interpreter(gr).run(feeds, layout="source")
    for name, w in zip(outs, want):
        np.testing.assert_array_equal(got[name], w, err_msg=name)
    assert (x2 == 0).any() and (x == y).any()


def test_bool_graph_inputs():
    m = helper.make_model(helper.make_graph(
        [helper.make_node("And", ["a", "b"], ["c"]), helper.make_node("Not", ["c"], ["d"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.BOOL, [2, 3]),
         helper.make_tensor_value_info("b", TensorProto.BOOL, [3])],
        [helper.make_tensor_value_info("d", TensorProto.BOOL, [2, 3])]),
        opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    rng = np.random.default_rng(29)
    feeds = {"a": rng.random((2, 3)) > 0.5, "b": rng.random(3) > 0.5}
    got = Interpreter(load_onnx(m)).run(feeds, layout="source")["d"]
    np.testing.assert_array_equal(got, exact_session(m).run(None, feeds)[0])
    from edgekit.errors import BadInputError

    with pytest.raises(BadInputError, match="'a' is bool"):
        Interpreter(load_onnx(m)).run({"a": np.full((2, 3), 2), "b": feeds["b"]}, layout="source")


@pytest.mark.parametrize("flag", [True, False])
def test_if_with_a_constant_condition_inlines_its_branch(flag):
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 3])])
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)
    m = _model([node], [("x", (2, 3))], ["y"], [("cond", np.asarray(flag))])
    _check(m, {"x": _rand((2, 3), 30)})


def test_scan_unrolled_running_sum_and_reverse_output():
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x_t"], ["s_out"]), helper.make_node("Mul", ["s_out", "x_t"], ["y_t"])],
        "body", [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [3]),
                 helper.make_tensor_value_info("x_t", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("y_t", TensorProto.FLOAT, [3])])
    node = helper.make_node("Scan", ["s0", "x"], ["s", "y"], body=body, num_scan_inputs=1,
                            scan_input_axes=[1], scan_output_directions=[1])
    m = _model([node], [("x", (3, 5))], ["s", "y"], [("s0", np.ones(3, np.float32))], opset=16)
    _check(m, {"x": _rand((3, 5), 31)})


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatter_reductions_apply_repeated_updates_in_order(reduction):
    idx = np.asarray([[0, 1], [1, 2], [0, 1], [0, 1]], np.int64)  # (0, 1) three times
    node = helper.make_node("ScatterND", ["x", "idx", "u"], ["y"], reduction=reduction)
    m = _model([node], [("x", (2, 3, 4)), ("u", (4, 4))], ["y"], [("idx", idx)], opset=18)
    _check(m, {"x": _rand((2, 3, 4), 32), "u": _rand((4, 4), 33)})


def test_dilated_max_pool_with_padding_and_strides():
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 2], dilations=[2, 3], strides=[2, 1],
                            pads=[1, 1, 2, 0])
    m = _model([node], [("x", (1, 3, 9, 8))], ["y"])
    _check(m, {"x": _rand((1, 3, 9, 8), 34)})


def test_training_dropout_with_ratio_zero_is_the_identity():
    node = helper.make_node("Dropout", ["x", "r", "t"], ["y"], seed=0)
    m = _model([node], [("x", (2, 3))], ["y"], [("r", np.float32(0)), ("t", np.asarray(True))], opset=13)
    _check(m, {"x": _rand((2, 3), 35)})


@pytest.mark.parametrize("op,attrs", [("MaxPool", {"dilations": [1, 2, 1], "strides": [2, 1, 2]}),
                                      ("AveragePool", {"strides": [1, 2, 1]})])
def test_3d_pooling_without_padding(op, attrs):
    node = helper.make_node(op, ["x"], ["y"], kernel_shape=[2, 3, 2], **attrs)
    m = _model([node], [("x", (1, 2, 5, 7, 6))], ["y"])
    _check(m, {"x": _rand((1, 2, 5, 7, 6), 36)})
