"""Fixed-point primitives: hand-computed values, and the vectorized numpy versions
against a plain-Python, one-value-at-a-time statement of the C++ int32 semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekit.reference import fixedpoint as fp

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
int32s = st.integers(I32_MIN, I32_MAX)


def profile(n: int):
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------------------------- scalar statements


def c_div(a: int, b: int) -> int:
    """C++ integer division (truncation toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def wrap(v: int) -> int:
    return ((v + 2**31) % 2**32) - 2**31


def s_srdhm(a: int, b: int) -> int:
    if a == b == I32_MIN:
        return I32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else (1 - (1 << 30))
    return c_div(ab + nudge, 1 << 31)


def s_rdbp(x: int, e: int) -> int:
    mask = (1 << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if remainder > threshold else 0)


def s_mbqm(x: int, m: int, shift: int) -> int:
    left = shift if shift > 0 else 0
    right = -shift if shift < 0 else 0
    return s_rdbp(s_srdhm(wrap(x * (1 << left)), m), right)


# ---------------------------------------------------------------------------------- hand-computed values


def test_quantize_multiplier_known_values():
    assert fp.quantize_multiplier(0.5) == (2**30, 0)
    assert fp.quantize_multiplier(1.0) == (2**30, 1)
    assert fp.quantize_multiplier(0.75) == (3 * 2**29, 0)
    assert fp.quantize_multiplier(0.25) == (2**30, -1)
    assert fp.quantize_multiplier(3.0) == (3 * 2**29, 2)
    assert fp.quantize_multiplier(0.0) == (0, 0)
    assert fp.quantize_multiplier(-0.5) == (-(2**30), 0)
    # q * 2^31 rounds up to 2^31: carried into the exponent
    assert fp.quantize_multiplier(1.0 - 2.0**-40) == (2**30, 1)
    # round half away from zero: q * 2^31 = 2^30 + 0.5 exactly
    assert fp.quantize_multiplier((2**30 + 0.5) / 2**31) == (2**30 + 1, 0)
    # shifts below -31 flush to zero
    assert fp.quantize_multiplier(2.0**-33) == (0, 0)
    assert fp.quantize_multiplier(2.0**-32) == (2**30, -31)


def test_rounding_divide_by_pot_known_values():
    vals = [(-5, 1, -3), (5, 1, 3), (-4, 1, -2), (-3, 1, -2), (3, 1, 2), (-6, 2, -2), (6, 2, 2),
            (-2, 2, -1), (-1, 2, 0), (7, 0, 7), (-7, 0, -7), (I32_MIN, 31, -1), (I32_MAX, 31, 1)]
    for x, e, want in vals:
        assert int(fp.rounding_divide_by_pot(x, e)) == want, (x, e)
        assert s_rdbp(x, e) == want
    arr = fp.rounding_divide_by_pot(np.array([[-5, 5, 6]]), np.array([1, 0, 2]))
    assert arr.tolist() == [[-3, 5, 2]]


def test_srdhm_known_values():
    assert int(fp.saturating_rounding_doubling_high_mul(I32_MIN, I32_MIN)) == I32_MAX
    assert int(fp.saturating_rounding_doubling_high_mul(2**30, 2**30)) == 2**29
    assert int(fp.saturating_rounding_doubling_high_mul(I32_MIN, I32_MAX)) == -(2**31 - 1)
    assert int(fp.saturating_rounding_doubling_high_mul(-1, 2**30)) == 0  # -0.5 rounds up
    assert int(fp.saturating_rounding_doubling_high_mul(1, 2**30)) == 1  # 0.5 rounds up
    assert int(fp.saturating_rounding_doubling_high_mul(-3, 2**30)) == -1  # -1.5 -> -1


def test_multiply_by_quantized_multiplier_known_values():
    assert int(fp.multiply_by_quantized_multiplier(100, 2**30, 0)) == 50
    assert int(fp.multiply_by_quantized_multiplier(100, 2**30, 1)) == 100
    assert int(fp.multiply_by_quantized_multiplier(100, 2**30, -2)) == 13  # 12.5 -> 13
    assert int(fp.multiply_by_quantized_multiplier(-100, 2**30, -2)) == -13
    # double rounding: 3 * 0.375 = 1.125 ... and a case where it differs from single rounding
    m, s = fp.quantize_multiplier(0.3)
    xs = np.arange(-20000, 20000)
    double = fp.multiply_by_quantized_multiplier(xs, m, s)
    single = (xs * m + (1 << (30 - s))) >> (31 - s)
    assert (double != single).any()  # the two TFLite rounding modes are not the same
    assert all(int(d) == s_mbqm(int(x), m, s) for x, d in zip(xs[::97], double[::97]))
    # the left shift wraps as int32 before the high multiply
    assert int(fp.multiply_by_quantized_multiplier(2**30, 2**30, 2)) == s_mbqm(2**30, 2**30, 2)
    # per-channel broadcasting along the last axis
    out = fp.multiply_by_quantized_multiplier(np.array([[8, 8]]), np.array([2**30, 2**30]), np.array([0, 1]))
    assert out.tolist() == [[4, 8]]


def test_wrap_and_trunc_div():
    assert fp.wrap_int32(np.array([2**31, -(2**31) - 1, 5])).tolist() == [I32_MIN, I32_MAX, 5]
    assert fp.trunc_div(np.array([-7, 7, -7, 7]), np.array([2, 2, -2, -2])).tolist() == [-3, 3, 3, -3]
    assert fp.round_half_away(2.5) == 3 and fp.round_half_away(-2.5) == -3
    assert fp.round_half_away(0.49999999999999994) == 0
    assert fp.round_half_away_f32(np.array([-1.5, -0.5, 0.5, 1.5], np.float32)).tolist() == [-2, -1, 1, 2]


def test_transcendentals_known_values():
    one = 2**31 - 1
    assert int(fp.exp_on_negative_values(0, 5)) == one
    assert int(fp.logistic(0, 4)) == 2**30
    assert int(fp.tanh(0, 4)) == 0
    x = np.linspace(-30, 0, 301)
    raw = np.round(x * 2**26).astype(np.int64)
    got = fp.exp_on_negative_values(raw, 5) / 2**31
    assert np.max(np.abs(got - np.exp(raw / 2**26))) < 1e-6
    # 1 / (1 + x) on [0, 1)
    a = np.linspace(0, 0.999, 200)
    got = fp.one_over_one_plus_x_for_x_in_0_1(np.round(a * 2**31).astype(np.int64)) / 2**31
    assert np.max(np.abs(got - 1 / (1 + a))) < 1e-6
    got = fp.one_minus_x_over_one_plus_x_for_x_in_0_1(np.round(a * 2**31).astype(np.int64)) / 2**31
    assert np.max(np.abs(got - (1 - a) / (1 + a))) < 1e-6
    t = np.linspace(-15.9, 15.9, 501)
    raw = np.round(t * 2**27).astype(np.int64)
    assert np.max(np.abs(fp.logistic(raw, 4) / 2**31 - 1 / (1 + np.exp(-raw / 2**27)))) < 1e-6
    assert np.max(np.abs(fp.tanh(raw, 4) / 2**31 - np.tanh(raw / 2**27))) < 1e-6
    # odd / complementary symmetry, exactly as gemmlowp selects the negative branch
    assert (fp.tanh(-raw, 4) == -fp.tanh(raw, 4)).all()
    pos = raw[raw > 0]
    assert (fp.logistic(-pos, 4) == one - fp.logistic(pos, 4)).all()


def test_reciprocal_and_clz():
    assert fp.count_leading_zeros32(np.array([0, 1, 2, 3, 2**31 - 1, -1, 2**19])).tolist() == [32, 31, 30, 30, 1, 0, 12]
    # sum of exps equal to 1.0 in Q12.19 -> reciprocal 1.0 with 0 bits over unit... (1.0 -> x = 0)
    scale, bits = fp.get_reciprocal(np.array([1 << 19]), 12)
    assert bits.tolist() == [0] and abs(int(scale[0]) / 2**31 - 1.0) < 1e-6
    scale, bits = fp.get_reciprocal(np.array([3 << 19]), 12)  # 3.0 = 1.5 * 2^1
    assert bits.tolist() == [1] and abs(int(scale[0]) / 2**31 - 1 / 1.5) < 1e-6


def test_softmax_and_radius_params():
    assert fp.preprocess_softmax_scaling(1.0, 1 / 16, 5) == (2**30, 23)
    assert fp.calculate_input_radius(5, 23) == 248  # floor(31 * 2^26 / 2^23)
    assert fp.calculate_input_radius(4, 20) == 15 * 2**27 // 2**20
    # capped at 2^31 - 1 for huge beta * scale
    m, s = fp.preprocess_softmax_scaling(1e9, 1.0, 5)
    assert (m, s) == fp.quantize_multiplier(2.0**31 - 1)


def test_prepare_multipliers_follow_tflm_casts():
    rng = np.random.default_rng(0)
    differ_fc = differ_sub = 0
    for _ in range(3000):
        a, b, c = (float(np.float32(10 ** rng.uniform(-4, 0))) for _ in range(3))
        conv = fp.conv_per_channel_multipliers(a, [b], c)
        fc = fp.fc_per_tensor_multiplier(a, b, c)
        assert fc == fp.quantize_multiplier(float(np.float32(a) * np.float32(b)) / c)
        assert (int(conv[0][0]), int(conv[1][0])) == fp.quantize_multiplier(a * b / c)
        differ_fc += fc != (int(conv[0][0]), int(conv[1][0]))
        differ_sub += fp.sub_multipliers(a, b, c) != fp.add_multipliers(a, b, c)
    assert differ_fc > 0 and differ_sub > 0  # the float32 vs double products do matter


def test_activation_range_quantized():
    assert fp.activation_range_quantized("NONE", 0.1, 3) == (-128, 127)
    assert fp.activation_range_quantized("RELU", 0.1, 3) == (3, 127)
    assert fp.activation_range_quantized("RELU6", 0.1, -128) == (-128, -68)
    assert fp.activation_range_quantized("RELU_N1_TO_1", 0.1, 0) == (-10, 10)
    assert fp.activation_range_quantized("RELU6", 0.01, 0) == (0, 127)
    with pytest.raises(ValueError):
        fp.activation_range_quantized("GELU", 0.1, 0)


def test_logistic_tanh_input_params():
    m, s, r = fp.logistic_tanh_input_params(0.1)
    real = float(np.float32(0.1)) * 2**27
    q, e = math.frexp(real)
    assert (m, s) == (fp.round_half_away(q * 2**31), e)
    assert r == fp.calculate_input_radius(4, e)


# ---------------------------------------------------------------------------------- property tests


@profile(300)
@given(int32s, int32s)
def test_srdhm_matches_scalar_statement(a, b):
    assert int(fp.saturating_rounding_doubling_high_mul(a, b)) == s_srdhm(a, b)


@profile(300)
@given(int32s, st.integers(0, 31))
def test_rdbp_matches_scalar_statement(x, e):
    assert int(fp.rounding_divide_by_pot(x, e)) == s_rdbp(x, e)
    assert int(fp.rounding_divide_by_pot(np.array([x]), np.array([e]))[0]) == s_rdbp(x, e)


@profile(300)
@given(int32s, st.floats(1e-9, 100.0, allow_nan=False))
def test_mbqm_matches_scalar_statement(x, real):
    m, s = fp.quantize_multiplier(real)
    assert int(fp.multiply_by_quantized_multiplier(x, m, s)) == s_mbqm(x, m, s)


@profile(200)
@given(st.floats(1e-12, 1e6, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_reconstructs(real):
    m, s = fp.quantize_multiplier(real)
    if m == 0:
        assert real < 2.0**-31
        return
    assert 2**30 <= m < 2**31
    assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0**-31


@profile(100)
@given(st.lists(int32s, min_size=1, max_size=20))
def test_vectorized_equals_elementwise(xs):
    arr = np.array(xs, dtype=np.int64)
    m, s = fp.quantize_multiplier(0.0123)
    vec = fp.multiply_by_quantized_multiplier(arr, m, s)
    assert vec.tolist() == [s_mbqm(x, m, s) for x in xs]
    for bits in (0, 4, 5, 12):
        neg = -np.abs(arr)
        full = fp.exp_on_negative_values(neg, bits)
        one = [int(fp.exp_on_negative_values(int(v), bits)) for v in neg]
        assert full.tolist() == one
