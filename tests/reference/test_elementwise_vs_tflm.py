"""edgekit's elementwise kernels (edgekit.reference.elementwise_kernels) against the
oracles: int8 against the TFLite Micro interpreter where TFLM has the int8 kernel
(HARD_SWISH, LEAKY_RELU, PRELU, ABS, RSQRT, MAXIMUM, MINIMUM, DIV, SQUARED_DIFFERENCE)
and against LiteRT's reference kernels where only LiteRT has it (EXP, LOG, SQRT, GELU,
NEG); float32 against LiteRT's reference kernels. Each example is a one-operator
.tflite model with random shapes, quantization parameters and inputs.
"""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is needed for the oracle tests")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from edgekit.errors import BadInputError  # noqa: E402
from edgekit.ir.dtypes import QuantParams  # noqa: E402
from edgekit.reference import elementwise_kernels as ew  # noqa: E402
from tests.support import tflite_oracle as orc  # noqa: E402
from tests.support.oracle_tests import needs_tflm, needs_litert, profile  # noqa: E402


S = orc.schema
OPS = S.BuiltinOperator if S is not None else None
OPTS = S.BuiltinOptions if S is not None else None


def f32(v) -> float:
    return float(np.float32(v))


def draw_qp(d, lo=-3.0, hi=0.0) -> QuantParams:
    scale = f32(10.0 ** d(st.floats(lo, hi, allow_nan=False)))
    return QuantParams.per_tensor(scale, d(st.integers(-128, 127)))


def spec(shape, dtype=np.int8, quant=None, data=None):
    s = {"shape": tuple(int(v) for v in shape), "dtype": dtype, "quant": quant}
    if data is not None:
        s["data"] = data
    return s


def assert_same(expected, got, what):
    expected, got = np.asarray(expected), np.asarray(got)
    assert expected.shape == got.shape, f"{what}: shape {expected.shape} != {got.shape}"
    bad = np.flatnonzero(expected.ravel() != got.ravel())
    assert bad.size == 0, (f"{what}: {bad.size} of {expected.size} values differ; first at {bad[0]}: "
                           f"edgekit {expected.ravel()[bad[0]]} vs {got.ravel()[bad[0]]}")


def options(op: str, attrs: dict):
    if op == "LEAKY_RELU":
        o = S.LeakyReluOptionsT()
        o.alpha = attrs["alpha"]
        return OPTS.LeakyReluOptions, o
    if op == "GELU":
        o = S.GeluOptionsT()
        o.approximate = attrs["approximate"]
        return OPTS.GeluOptions, o
    if op == "DIV":
        o = S.DivOptionsT()
        o.fusedActivationFunction = orc.ACT[attrs.get("activation", "NONE")]
        return OPTS.DivOptions, o
    if op in ("MAXIMUM", "MINIMUM"):
        return OPTS.MaximumMinimumOptions, S.MaximumMinimumOptionsT()
    if op == "SQUARED_DIFFERENCE":
        return OPTS.SquaredDifferenceOptions, S.SquaredDifferenceOptionsT()
    if op == "EXP":
        return OPTS.ExpOptions, S.ExpOptionsT()
    return 0, None


def shape_of(d, max_rank=4, max_dim=5):
    rank = d(st.integers(1, max_rank))
    return tuple(d(st.integers(1, max_dim)) for _ in range(rank))


def broadcast_pair(d, max_rank=4):
    out = shape_of(d, max_rank, max_dim=4 if max_rank > 4 else 5)
    a = tuple(1 if d(st.booleans()) and d(st.booleans()) else s for s in out)
    b = tuple(1 if d(st.booleans()) else s for s in out)
    b = b[d(st.integers(0, len(b) - 1)):]  # the shorter one is right-aligned
    return (a, b) if d(st.booleans()) else (b, a)


# ---------------------------------------------------------------------------------- int8 unary

TFLM_UNARY = ["HARD_SWISH", "LEAKY_RELU", "ABS", "RSQRT"]
LITERT_UNARY = ["EXP", "LOG", "SQRT", "GELU", "NEG"]


def _unary_case(d, op):
    shape = shape_of(d)
    q_in = draw_qp(d, -3.0, 0.0)
    q_out = draw_qp(d, -3.0, 0.0)
    attrs = {"alpha": f32(d(st.floats(-1.0, 1.0))), "approximate": d(st.booleans())}
    if op == "NEG":  # LiteRT negates raw values: only right for (s, -zp) output parameters
        z = d(st.integers(-127, 127))
        q_in = QuantParams.per_tensor(q_in.scale[0], z)
        q_out = QuantParams.per_tensor(q_in.scale[0], -z)
    if op == "HARD_SWISH" and q_out.scale[0] < q_in.scale[0] / 128:  # TFLM's Prepare rejects these
        q_out = QuantParams.per_tensor(f32(q_in.scale[0] / 100), int(q_out.zero_point[0]))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    lo = int(q_in.zero_point[0]) if op in ("RSQRT", "SQRT") else -128
    lo = max(lo, -127) if op == "NEG" else lo
    x = rng.integers(lo, 128, size=shape).astype(np.int8)
    t, o = options(op, attrs)
    model = orc.single_op_model(getattr(OPS, op), [spec(shape, quant=q_in)], [spec(shape, quant=q_out)], t, o)
    return model, x, ew.unary_s8(op, x, q_in, q_out, attrs)


@needs_tflm
@pytest.mark.parametrize("op", TFLM_UNARY)
@profile(60)
@given(data=st.data())
def test_int8_unary_matches_tflm(op, data):
    model, x, expected = _unary_case(data.draw, op)
    assert_same(expected, orc.run_tflm(model, [x])[0], f"TFLite Micro {op}")


@needs_litert
@pytest.mark.parametrize("op", LITERT_UNARY)
@profile(60)
@given(data=st.data())
def test_int8_unary_matches_litert_reference(op, data):
    model, x, expected = _unary_case(data.draw, op)
    assert_same(expected, orc.run_litert(model, [x])[0], f"LiteRT reference {op}")


@needs_tflm
@pytest.mark.parametrize("op", TFLM_UNARY)
def test_int8_unary_every_input_byte(op):
    """All 256 inputs at once for a few parameter pairs, including extreme scale ratios."""
    for s_in, z_in, s_out, z_out in [(0.05, -10, 0.03, -100), (0.5, 127, 0.002, -128), (1e-3, -128, 0.4, 30)]:
        q_in, q_out = QuantParams.per_tensor(s_in, z_in), QuantParams.per_tensor(s_out, z_out)
        x = np.arange(z_in if op == "RSQRT" else -128, 128, dtype=np.int8).reshape(1, -1)
        attrs = {"alpha": 0.1}
        if op == "HARD_SWISH" and s_out < s_in / 128:
            continue
        t, o = options(op, attrs)
        model = orc.single_op_model(getattr(OPS, op), [spec(x.shape, quant=q_in)], [spec(x.shape, quant=q_out)], t, o)
        assert_same(ew.unary_s8(op, x, q_in, q_out, attrs), orc.run_tflm(model, [x])[0], f"TFLite Micro {op}")


def test_int8_domain_errors_are_named():
    q = QuantParams.per_tensor(0.1, 0)
    with pytest.raises(BadInputError, match="rsqrt"):
        ew.unary_s8("RSQRT", np.array([-1, 3], np.int8), q, q)
    with pytest.raises(BadInputError, match="sqrt"):
        ew.unary_s8("SQRT", np.array([-5], np.int8), q, q)
    with pytest.raises(BadInputError, match="division by zero"):
        ew.div_s8(np.array([1], np.int8), np.array([0], np.int8), q, q, q)
    with pytest.raises(BadInputError, match="share their quantization"):
        ew.maximum_s8(np.array([1], np.int8), np.array([0], np.int8), q, QuantParams.per_tensor(0.2, 0), q)
    with pytest.raises(BadInputError, match="do not broadcast"):
        ew.minimum_s8(np.zeros((2, 3), np.int8), np.zeros((4,), np.int8), q, q, q)


# ---------------------------------------------------------------------------------- int8 binary


def _binary_case(d, op):
    sa, sb = broadcast_pair(d, max_rank=5)  # TFLM's binary ops broadcast up to rank 5
    out = tuple(np.broadcast_shapes(sa, sb))
    qa, qb, qo = draw_qp(d, -2.5, 0.0), draw_qp(d, -2.5, 0.0), draw_qp(d, -2.5, 0.5)
    if op in ("MAXIMUM", "MINIMUM"):
        qb = qo = qa
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    a = rng.integers(-128, 128, size=sa).astype(np.int8)
    b = rng.integers(-128, 128, size=sb).astype(np.int8)
    attrs = {"activation": d(st.sampled_from(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]))}
    if op == "DIV":
        zb = int(qb.zero_point[0])
        b = np.where(b == zb, np.int8(zb + 1 if zb < 127 else zb - 1), b).astype(np.int8)
    t, o = options(op, attrs)
    model = orc.single_op_model(getattr(OPS, op), [spec(sa, quant=qa), spec(sb, quant=qb)],
                                [spec(out, quant=qo)], t, o)
    expected = ew.run_int8(op, attrs, [a, b], [qa, qb], qo)
    return model, [a, b], expected, (qa, qb, qo)


@needs_tflm
@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM", "DIV", "SQUARED_DIFFERENCE"])
@profile(60)
@given(data=st.data())
def test_int8_binary_matches_tflm(op, data):
    model, inputs, expected, qps = _binary_case(data.draw, op)
    got = orc.run_tflm(model, inputs)[0]
    if op == "DIV":  # TFLM shifts an int32 by >= 32 bits there (undefined; see div_s8)
        ok = np.broadcast_to(ew.div_exponents(*inputs, *qps) > -32, expected.shape)
        expected, got = expected[ok], got[ok]
    assert_same(expected, got, f"TFLite Micro {op}")


@needs_tflm
@profile(80)
@given(data=st.data())
def test_int8_prelu_matches_tflm(data):
    d = data.draw
    n, h, w, c = (d(st.integers(1, 3)), d(st.integers(1, 5)), d(st.integers(1, 5)), d(st.integers(1, 6)))
    alpha_shape = d(st.sampled_from([(c,), (1, 1, c), (w, c), (1,), (h, w, c)]))
    q_in, q_alpha, q_out = draw_qp(d, -2.5, 0.0), draw_qp(d, -3.0, -1.0), draw_qp(d, -2.5, 0.0)
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = rng.integers(-128, 128, size=(n, h, w, c)).astype(np.int8)
    alpha = rng.integers(-128, 128, size=alpha_shape).astype(np.int8)
    model = orc.single_op_model(OPS.PRELU, [spec(x.shape, quant=q_in), spec(alpha.shape, quant=q_alpha, data=alpha)],
                                [spec(x.shape, quant=q_out)])
    assert_same(ew.prelu_s8(x, alpha, q_in, q_alpha, q_out), orc.run_tflm(model, [x])[0], "TFLite Micro PRELU")


# ---------------------------------------------------------------------------------- float


FLOAT_UNARY = ["HARD_SWISH", "LEAKY_RELU", "ABS", "NEG", "EXP", "LOG", "SQRT", "RSQRT", "GELU"]


@needs_litert
@pytest.mark.parametrize("op", FLOAT_UNARY)
@profile(15)
@given(data=st.data())
def test_float_unary_matches_litert(op, data):
    d = data.draw
    shape = shape_of(d)
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    x = (rng.standard_normal(shape) * 4).astype(np.float32)
    if op in ("LOG", "SQRT", "RSQRT"):
        x = np.abs(x) + np.float32(1e-3)
    attrs = {"alpha": f32(d(st.floats(-1.0, 1.0))), "approximate": d(st.booleans())}
    t, o = options(op, attrs)
    model = orc.single_op_model(getattr(OPS, op), [spec(shape, np.float32)], [spec(shape, np.float32)], t, o)
    got = orc.run_litert(model, [x])[0]
    np.testing.assert_allclose(ew.run_float(op, attrs, [x]), got, rtol=2e-6, atol=1e-6, err_msg=op)


@needs_litert
@pytest.mark.parametrize("op", ["MAXIMUM", "MINIMUM", "DIV", "SQUARED_DIFFERENCE", "PRELU"])
@profile(15)
@given(data=st.data())
def test_float_binary_matches_litert(op, data):
    d = data.draw
    sa, sb = broadcast_pair(d)
    if op == "PRELU":
        sa = tuple(np.broadcast_shapes(sa, sb))
    out = tuple(np.broadcast_shapes(sa, sb))
    rng = np.random.default_rng(d(st.integers(0, 2**32 - 1)))
    a = rng.standard_normal(sa).astype(np.float32)
    b = rng.standard_normal(sb).astype(np.float32)
    if op == "DIV":
        b = np.where(np.abs(b) < 0.1, np.float32(0.5), b).astype(np.float32)
    attrs = {"activation": d(st.sampled_from(["NONE", "RELU", "RELU6"]))}
    t, o = options(op, attrs)
    model = orc.single_op_model(getattr(OPS, op), [spec(sa, np.float32), spec(sb, np.float32)],
                                [spec(out, np.float32)], t, o)
    got = orc.run_litert(model, [a, b])[0]
    np.testing.assert_allclose(ew.run_float(op, attrs, [a, b]), got, rtol=1e-6, atol=1e-7, err_msg=op)
