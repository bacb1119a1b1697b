"""REDUCE_MAX, SUM, ARG_MAX, ARG_MIN, L2_NORMALIZATION and BATCH_MATMUL: the int8
reference kernels against the TFLite Micro interpreter (0 mismatching bytes) and the
float kernels against LiteRT's reference kernels (BUILTIN_REF).

Each example is a one-operator IR graph written to .tflite by edgekit's own writer, so
the writer's lowering of these ops is checked on the way. The reference interpreter
(``edgekit.reference.run``) runs the same graph, so dispatch and shape rules are in
the loop too.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the oracle tests")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgekit.backends.tflite.writer import tflite_bytes  # noqa: E402
from edgekit.errors import BadInputError  # noqa: E402
from edgekit.frontends.tflite.importer import load_tflite  # noqa: E402
from edgekit.ir import DType, Graph, OpType, QuantParams, verify  # noqa: E402
from edgekit.ir.shapes import infer_op_shapes  # noqa: E402
from edgekit.ir.ops import normalize_attrs  # noqa: E402
from edgekit.reference import reduction_kernels as R  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.support.oracle_tests import needs_tflm, needs_litert, profile  # noqa: E402



def qp(d, lo=-3.0, hi=0.0) -> QuantParams:
    scale = float(np.float32(10.0 ** d(st.floats(lo, hi, allow_nan=False))))
    return QuantParams.per_tensor(scale, d(st.integers(-128, 127)))


def one_op_graph(op: OpType, in_specs, attrs, out_dtype, out_qp=None) -> Graph:
    """in_specs: [(shape, dtype, quant, const data or None)]."""
    g = Graph("one_op")
    names = []
    for i, (shape, dtype, quant, data) in enumerate(in_specs):
        name = f"in{i}"
        if data is not None:
            g.add_const(name, data, quant, dtype)
        else:
            g.add_tensor(name, shape, dtype, quant)
            g.inputs.append(name)
        names.append(name)
    full = normalize_attrs(op, attrs)
    out_shape = infer_op_shapes(op, [s for s, *_ in in_specs], full)[0]
    g.add_tensor("out", out_shape, out_dtype, out_qp)
    g.add_op(op, names, ["out"], attrs, "the_op")
    g.outputs = ["out"]
    verify(g)
    return g


def ref_run(g: Graph, inputs) -> np.ndarray:
    return Interpreter(g).run(dict(zip(g.inputs, inputs)))[g.outputs[0]]


def same(expected, got, what):
    expected, got = np.asarray(expected), np.asarray(got)
    assert expected.shape == got.shape, f"{what}: shape {expected.shape} != {got.shape}"
    bad = np.flatnonzero(expected.ravel() != got.ravel())
    assert bad.size == 0, (f"{what}: {bad.size} of {expected.size} differ; first at {bad[0]}: "
                           f"edgekit {expected.ravel()[bad[0]]} vs {got.ravel()[bad[0]]}")


def draw_shape(d, min_rank=1, max_rank=4, max_dim=6):
    rank = d(st.integers(min_rank, max_rank))
    return tuple(d(st.integers(1, max_dim)) for _ in range(rank))


def draw_axes(d, rank):
    axes = d(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
    return tuple(sorted(axes))


def rand_i8(rng, shape):
    return rng.integers(-128, 128, size=shape).astype(np.int8)


# ---------------------------------------------------------------------------------- int8 vs TFLM


@needs_tflm
@profile(40)
@given(st.data())
def test_reduce_max_and_sum_int8_match_tflm(data):
    d = data.draw
    op = d(st.sampled_from([OpType.REDUCE_MAX, OpType.SUM]))
    shape = draw_shape(d)
    axes = draw_axes(d, len(shape))
    keep = d(st.booleans())
    x_qp = qp(d)
    out_qp = x_qp if op is OpType.REDUCE_MAX else qp(d, -2.0, 1.0)
    g = one_op_graph(op, [(shape, DType.INT8, x_qp, None)], {"axes": axes, "keep_dims": keep}, DType.INT8, out_qp)
    x = rand_i8(np.random.default_rng(d(st.integers(0, 2**31))), shape)
    expected = ref_run(g, [x])
    same(expected, orc.run_tflm(tflite_bytes(g), [x])[0], f"TFLM {op.value}")


@needs_tflm
@profile(30)
@given(st.data())
def test_arg_max_min_int8_match_tflm_ties_take_the_lowest_index(data):
    d = data.draw
    op = d(st.sampled_from([OpType.ARG_MAX, OpType.ARG_MIN]))
    shape = draw_shape(d)
    axis = d(st.integers(0, len(shape) - 1))
    g = one_op_graph(op, [(shape, DType.INT8, qp(d), None)], {"axis": axis}, DType.INT32)
    rng = np.random.default_rng(d(st.integers(0, 2**31)))
    x = rng.integers(-3, 3, size=shape).astype(np.int8)  # few values: many ties
    expected = ref_run(g, [x])
    assert expected.dtype == np.int32
    same(expected, orc.run_tflm(tflite_bytes(g), [x])[0], f"TFLM {op.value}")


@needs_tflm
@profile(40)
@given(st.data())
def test_l2_normalization_int8_matches_tflm(data):
    d = data.draw
    shape = draw_shape(d, max_dim=20)
    x_qp = qp(d)
    out_qp = QuantParams.per_tensor(1.0 / 128, 0)
    g = one_op_graph(OpType.L2_NORMALIZATION, [(shape, DType.INT8, x_qp, None)], {}, DType.INT8, out_qp)
    rng = np.random.default_rng(d(st.integers(0, 2**31)))
    spread = d(st.sampled_from([1, 4, 128]))  # tiny sums exercise the acc <= 1 branch
    zp = int(x_qp.zero_point[0])
    x = np.clip(zp + rng.integers(-spread, spread + 1, size=shape), -128, 127).astype(np.int8)
    expected = ref_run(g, [x])
    same(expected, orc.run_tflm(tflite_bytes(g), [x])[0], "TFLM L2_NORMALIZATION")


@needs_tflm
@profile(50)
@given(st.data())
def test_batch_matmul_int8_matches_tflm(data):
    d = data.draw
    m, k, n = d(st.integers(1, 9)), d(st.integers(1, 40)), d(st.integers(1, 9))
    batch = tuple(d(st.integers(1, 3)) for _ in range(d(st.integers(0, 2))))
    a_batch = tuple(d(st.sampled_from([1, s])) for s in batch)
    b_batch = tuple(d(st.sampled_from([1, s])) for s in batch)[d(st.integers(0, len(batch))):]
    adj_x, adj_y = d(st.booleans()), d(st.booleans())
    a_shape = a_batch + ((k, m) if adj_x else (m, k))
    b_shape = b_batch + ((n, k) if adj_y else (k, n))
    a_qp, b_qp, o_qp = qp(d), qp(d), qp(d, -2.0, 1.0)
    rng = np.random.default_rng(d(st.integers(0, 2**31)))
    const_b = d(st.booleans())
    b = rand_i8(rng, b_shape)
    specs = [(a_shape, DType.INT8, a_qp, None), (b_shape, DType.INT8, b_qp, b if const_b else None)]
    g = one_op_graph(OpType.BATCH_MATMUL, specs, {"adj_x": adj_x, "adj_y": adj_y}, DType.INT8, o_qp)
    a = rand_i8(rng, a_shape)
    inputs = [a] if const_b else [a, b]
    expected = ref_run(g, inputs)
    same(expected, orc.run_tflm(tflite_bytes(g), inputs)[0], "TFLM BATCH_MATMUL")


# ---------------------------------------------------------------------------------- float vs LiteRT


@needs_litert
@profile(40)
@given(st.data())
def test_float_kernels_match_litert_reference(data):
    d = data.draw
    op = d(st.sampled_from([OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN,
                            OpType.L2_NORMALIZATION, OpType.BATCH_MATMUL]))
    rng = np.random.default_rng(d(st.integers(0, 2**31)))
    shape = draw_shape(d)
    out_dtype = DType.FLOAT32
    specs = [(shape, DType.FLOAT32, None, None)]
    if op in (OpType.REDUCE_MAX, OpType.SUM):
        attrs = {"axes": draw_axes(d, len(shape)), "keep_dims": d(st.booleans())}
    elif op in (OpType.ARG_MAX, OpType.ARG_MIN):
        attrs = {"axis": d(st.integers(0, len(shape) - 1))}
        out_dtype = DType.INT32
    elif op is OpType.L2_NORMALIZATION:
        attrs = {}
    else:
        m, k, n = (d(st.integers(1, 8)) for _ in range(3))
        batch = tuple(d(st.integers(1, 3)) for _ in range(d(st.integers(0, 2))))
        adj_x, adj_y = d(st.booleans()), d(st.booleans())
        shape = batch + ((k, m) if adj_x else (m, k))
        specs = [(shape, DType.FLOAT32, None, None),
                 (batch[-1:] + ((n, k) if adj_y else (k, n)), DType.FLOAT32, None, None)]
        attrs = {"adj_x": adj_x, "adj_y": adj_y}
    g = one_op_graph(op, specs, attrs, out_dtype)
    inputs = [rng.standard_normal(s).astype(np.float32) for s, *_ in specs]
    expected = ref_run(g, inputs)
    got = orc.run_litert(tflite_bytes(g), inputs)[0]
    if out_dtype is DType.INT32:
        same(expected, got, f"LiteRT {op.value}")
    else:
        np.testing.assert_allclose(expected, got, rtol=1e-5, atol=1e-5, err_msg=op.value)


# ---------------------------------------------------------------------------------- import, errors


def test_tflite_round_trip_keeps_the_attributes():
    g = one_op_graph(OpType.BATCH_MATMUL, [((2, 3, 4), DType.FLOAT32, None, None), ((2, 5, 4), DType.FLOAT32,
                                                                                     None, None)],
                     {"adj_y": True}, DType.FLOAT32)
    back = load_tflite(tflite_bytes(g))
    (op,) = back.ops
    assert op.type is OpType.BATCH_MATMUL and op.attrs["adj_y"] is True and not op.attrs["adj_x"]
    g = one_op_graph(OpType.SUM, [((2, 3, 4), DType.FLOAT32, None, None)], {"axes": (2, 0), "keep_dims": True},
                     DType.FLOAT32)
    (op,) = load_tflite(tflite_bytes(g)).ops
    assert op.type is OpType.SUM and tuple(op.attrs["axes"]) == (0, 2) and op.attrs["keep_dims"]
    g = one_op_graph(OpType.ARG_MIN, [((2, 3), DType.FLOAT32, None, None)], {"axis": 1}, DType.INT32)
    back = load_tflite(tflite_bytes(g))
    assert back.ops[0].type is OpType.ARG_MIN and back.ops[0].attrs["axis"] == 1
    assert back.tensor(back.outputs[0]).dtype is DType.INT32


def test_inverse_sqrt_is_close_to_the_real_one():
    acc = np.array([2, 3, 100, 12345, 2**20 + 7, 2**29 + 3, 2**31 - 1])
    mult, shift = R.inv_sqrt_multiplier(acc)
    approx = mult.astype(np.float64) * 2.0 ** (shift.astype(np.float64) - 31)
    np.testing.assert_allclose(approx, 1 / np.sqrt(acc.astype(np.float64)), rtol=3e-6)


def test_bad_inputs_are_named():
    q = QuantParams.per_tensor(0.1, 0)
    with pytest.raises(BadInputError, match="equal input and output quantization"):
        R.reduce_max_int8(np.zeros((2, 2), np.int8), q, QuantParams.per_tensor(0.2, 0), axes=(1,))
    with pytest.raises(BadInputError, match="1/128"):
        R.l2_normalization_int8(np.zeros((2, 2), np.int8), q, q)
    with pytest.raises(BadInputError, match="inner dimensions"):
        R.batch_matmul(np.zeros((2, 3)), np.zeros((4, 2)))
    with pytest.raises(BadInputError, match="do not broadcast"):
        R.batch_matmul(np.zeros((2, 2, 3)), np.zeros((3, 3, 2)))
    with pytest.raises(BadInputError, match="NaN"):
        R.arg_max(np.array([1.0, np.nan], np.float32), axis=0)
    with pytest.raises(ValueError, match="out of range"):
        infer_op_shapes(OpType.SUM, [(2, 3)], {"axes": (2,), "keep_dims": False})
