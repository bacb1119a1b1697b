"""Exact integer arithmetic of TFLite / TFLite Micro, vectorized with numpy.

Every function takes and returns int64 numpy arrays (or Python ints) that hold
int32 values, and reproduces the C++ int32 semantics of TFLite's kernels exactly,
including the saturating corner cases and the two's-complement wrap-around that
the C++ code relies on in practice.

Multipliers are derived from float32 scales the way TFLite Micro's ``Prepare``
functions derive them; the comments say where a product is formed in float32
before the cast to double and where each factor is cast first, because the two
give different multipliers for some scales.

Rounding of the requantization follows TFLite Micro's default build: the
"double rounding" ``MultiplyByQuantizedMultiplier`` (a rounding doubling high
multiply followed by a rounding right shift), not the single-rounding variant.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1

__all__ = [
    "INT32_MIN",
    "INT32_MAX",
    "wrap_int32",
    "trunc_div",
    "round_half_away",
    "round_half_away_f32",
    "saturating_rounding_doubling_high_mul",
    "rounding_divide_by_pot",
    "saturating_rounding_multiply_by_pot",
    "rounding_half_sum",
    "multiply_by_quantized_multiplier",
    "multiply_by_quantized_multiplier_smaller_than_one_exp",
    "multiply_by_quantized_multiplier_greater_than_one",
    "multiply_by_quantized_multiplier_int64",
    "quantize_multiplier",
    "quantize_multiplier_array",
    "quantize_multiplier_smaller_than_one_exp",
    "quantize_multiplier_greater_than_one",
    "exp_on_negative_values",
    "exp_on_interval_between_negative_one_quarter_and_0_excl",
    "one_over_one_plus_x_for_x_in_0_1",
    "one_minus_x_over_one_plus_x_for_x_in_0_1",
    "logistic",
    "tanh",
    "get_reciprocal",
    "count_leading_zeros32",
    "preprocess_softmax_scaling",
    "calculate_input_radius",
    "conv_per_channel_multipliers",
    "fc_per_tensor_multiplier",
    "fc_per_channel_multipliers",
    "add_multipliers",
    "sub_multipliers",
    "mul_multiplier",
    "requantize_multiplier",
    "logistic_tanh_input_params",
    "activation_range_quantized",
]


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x) -> np.ndarray:
    """Wrap int64 values to the int32 range (two's complement), as C++ does in practice."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def trunc_div(num, den) -> np.ndarray:
    """Integer division rounding toward zero (C/C++ ``/``)."""
    num = _i64(num)
    den = _i64(den)
    q = np.abs(num) // np.abs(den)
    return np.where((num < 0) != (den < 0), -q, q)


def round_half_away(x: float) -> int:
    """``std::round`` on a double: nearest integer, halves away from zero (exact)."""
    ax = abs(x)
    r = math.floor(ax)
    if ax - r >= 0.5:
        r += 1
    return int(-r if x < 0 else r)


def round_half_away_f32(x) -> np.ndarray:
    """``std::round`` applied elementwise; exact for float32 and float64 inputs."""
    x = np.asarray(x)
    ax = np.abs(x)
    r = np.floor(ax)
    r = np.where(ax - r >= 0.5, r + 1, r)
    return np.copysign(r, x)


# ----------------------------------------------------------------------------------
# gemmlowp primitives (int32 semantics)
# ----------------------------------------------------------------------------------


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` for int32 (ARM VQRDMULH).

    gemmlowp adds a nudge of 2^30 (1 - 2^30 for negative products) and divides by
    2^31 truncating toward zero; for every int64 product that equals
    floor((a * b + 2^30) / 2^31), which is what is computed here. The one overflow
    case, -2^31 * -2^31, saturates to 2^31 - 1.
    """
    a = _i64(a)
    b = _i64(b)
    ab = np.asarray(a * b)  # |a*b| <= 2^62: exact in int64
    ab += 1 << 30
    ab >>= 31
    if np.any(a == INT32_MIN) and np.any(b == INT32_MIN):
        overflow = np.broadcast_to((a == INT32_MIN) & (b == INT32_MIN), ab.shape)
        ab = np.where(overflow, INT32_MAX, ab)
    return ab


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: x / 2^exponent rounded to nearest, halves away
    from zero (``exponent`` in [0, 31], scalar or array broadcast against ``x``).

    gemmlowp's mask/threshold formulation equals floor((x + 2^(e-1) - [x < 0]) / 2^e)
    for e > 0, which is what is computed here.
    """
    x = _i64(x)
    e = _i64(exponent)
    if e.ndim == 0:
        ei = int(e)
        if ei == 0:
            return np.array(x, copy=True)
        out = np.asarray(x + ((1 << (ei - 1)) - 1))
        out += (x >= 0)
        out >>= ei
        return out
    half = (np.int64(1) << e) >> 1
    neg = (x >> 63) * (e > 0)
    return (x + half + neg) >> e


def saturating_rounding_multiply_by_pot(x, exponent: int) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` for int32 raw values:
    saturating left shift for positive exponents, rounding right shift otherwise."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    res = wrap_int32(x << exponent)
    res = np.where(x > threshold, INT32_MAX, res)
    return np.where(x < -threshold, INT32_MIN, res)


def rounding_half_sum(a, b) -> np.ndarray:
    """gemmlowp ``RoundingHalfSum`` for int32: (a + b) / 2 rounded half away from zero."""
    s = _i64(a) + _i64(b)
    sign = np.where(s >= 0, 1, -1)
    return trunc_div(s + sign, 2)


# ----------------------------------------------------------------------------------
# requantization
# ----------------------------------------------------------------------------------


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(int32 x, int32 multiplier, int shift)``,
    double-rounding variant (TFLite Micro's default build).

    ``shift`` > 0 is a left shift applied before the high multiply (``x * (1 << shift)``
    wraps as int32, as in the C++ code), ``shift`` < 0 a rounding right shift after it.
    ``multiplier`` and ``shift`` may be arrays broadcast against ``x`` (per channel).
    """
    x = _i64(x)
    shift = _i64(shift)
    if np.any(shift > 0):
        x = wrap_int32(x << np.maximum(shift, 0))
    r = saturating_rounding_doubling_high_mul(x, multiplier)
    if np.any(shift < 0):
        r = rounding_divide_by_pot(r, np.maximum(-shift, 0))
    return r


def multiply_by_quantized_multiplier_smaller_than_one_exp(x, multiplier, left_shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplierSmallerThanOneExp`` (``left_shift`` <= 0)."""
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -_i64(left_shift))


def multiply_by_quantized_multiplier_greater_than_one(x, multiplier, left_shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplierGreaterThanOne`` (``left_shift`` >= 0)."""
    return saturating_rounding_doubling_high_mul(wrap_int32(_i64(x) << _i64(left_shift)), multiplier)


def multiply_by_quantized_multiplier_int64(x, multiplier, shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier(int64 x, ...)`` (used by 16-bit kernels):
    the multiplier is reduced to 16 bits and a single rounding shift is applied."""
    x = _i64(x)
    m = _i64(multiplier)
    shift = _i64(shift)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total_shift = 15 - shift
    res = (x * reduced + (np.int64(1) << (total_shift - 1))) >> total_shift
    return wrap_int32(res)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: real = multiplier * 2^(shift - 31).

    frexp, round half away from zero of q * 2^31, the q == 2^31 carry into the
    exponent, and the flush of shifts below -31 to (0, 0). Returns Python ints.
    """
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * float(1 << 31))
    if abs(q_fixed) > (1 << 31):
        raise ValueError(f"quantize_multiplier: bad multiplier {real!r}")
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if q_fixed > INT32_MAX:
        raise ValueError(f"quantize_multiplier: bad multiplier {real!r}")
    if shift < -31:
        shift = 0
        q_fixed = 0
    return int(q_fixed), int(shift)


def quantize_multiplier_array(reals) -> tuple[np.ndarray, np.ndarray]:
    """``quantize_multiplier`` applied to each element; returns int64 arrays."""
    reals = np.asarray(reals, dtype=np.float64).ravel()
    pairs = [quantize_multiplier(float(r)) for r in reals]
    mult = np.array([p[0] for p in pairs], dtype=np.int64)
    shift = np.array([p[1] for p in pairs], dtype=np.int64)
    return mult, shift


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplierSmallerThanOneExp`` (0 < real < 1, shift <= 0)."""
    if not (0.0 < real < 1.0):
        raise ValueError(f"multiplier {real!r} must be in (0, 1)")
    mult, shift = quantize_multiplier(real)
    if shift > 0:
        raise ValueError(f"multiplier {real!r} gives a positive shift")
    return mult, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplierGreaterThanOne`` (real > 1, shift >= 0)."""
    if not real > 1.0:
        raise ValueError(f"multiplier {real!r} must be > 1")
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real!r} gives a negative shift")
    return mult, shift


# ----------------------------------------------------------------------------------
# gemmlowp fixed-point transcendental functions on raw int32 values
# ----------------------------------------------------------------------------------

_ONE_Q0 = INT32_MAX  # FixedPoint<int32, 0>::One()


def exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """exp(a) for Q0.31 raw ``a`` in [-1/4, 0), result Q0.31 (gemmlowp)."""
    a = _i64(a)
    constant_term = 1895147668  # exp(-1/8)
    constant_1_over_3 = 715827883
    x = wrap_int32(a + (1 << 28))  # a + 1/8
    srdhm = saturating_rounding_doubling_high_mul
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    t = rounding_divide_by_pot(wrap_int32(srdhm(wrap_int32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap_int32(constant_term + srdhm(constant_term, wrap_int32(x + t)))


_EXP_BARREL = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values``: exp(a) for a <= 0 given as raw int32 with
    ``integer_bits`` integer bits; the result is Q0.31 raw."""
    a = _i64(a)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod = wrap_int32((a & mask) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod, integer_bits)
    )
    remainder = wrap_int32(a_mod - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            shift_amount = frac_bits + exponent
            bit_set = (remainder & (np.int64(1) << shift_amount)) != 0
            result = np.where(bit_set, saturating_rounding_doubling_high_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, _ONE_Q0, result)


def _newton_reciprocal_f2(a) -> np.ndarray:
    """Shared Newton-Raphson core of gemmlowp's 1/(1+x) helpers; returns F2 raw x."""
    half_denominator = rounding_half_sum(a, _ONE_Q0)
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    srdhm = saturating_rounding_doubling_high_mul
    x = wrap_int32(constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17))
    one_f2 = 1 << 29  # F2::One()
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = wrap_int32(one_f2 - half_denominator_times_x)
        x = wrap_int32(x + saturating_rounding_multiply_by_pot(srdhm(x, one_minus), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp: 1 / (1 + a) for Q0.31 raw ``a`` in [0, 1); result Q0.31 raw."""
    x = _newton_reciprocal_f2(a)
    return saturating_rounding_multiply_by_pot(x, 1)  # ExactMulByPot<-1> then Rescale<0>


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp: (1 - a) / (1 + a) for Q0.31 raw ``a`` in [0, 1); result Q0.31 raw."""
    x = _newton_reciprocal_f2(a)
    return saturating_rounding_multiply_by_pot(wrap_int32(x - (1 << 29)), 2)


def logistic(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``logistic`` of raw int32 ``a`` with ``integer_bits``; result Q0.31."""
    a = _i64(a)
    positive = a > 0
    abs_input = np.where(positive, a, wrap_int32(-a))
    r_pos = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap_int32(-abs_input), integer_bits))
    r_neg = wrap_int32(_ONE_Q0 - r_pos)
    return np.where(a == 0, 1 << 30, np.where(positive, r_pos, r_neg))


def tanh(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``tanh`` of raw int32 ``a`` with ``integer_bits``; result Q0.31."""
    a = _i64(a)
    negative = a < 0
    n = np.where(negative, a, wrap_int32(-a))
    # neg_tanh_on_negative_values: exp of 2n (ExactMulByPot<1> keeps the raw value).
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, wrap_int32(-t), t))


def count_leading_zeros32(x) -> np.ndarray:
    """Leading zero bits of ``x`` viewed as uint32 (32 for 0)."""
    u = _i64(x) & 0xFFFFFFFF
    _, bit_length = np.frexp(u.astype(np.float64))  # exact: u < 2^53
    return np.where(u == 0, 32, 32 - bit_length.astype(np.int64))


def get_reciprocal(x, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``GetReciprocal``: returns (Q0.31 raw of the scaled reciprocal,
    num_bits_over_unit) for positive int32 ``x`` with ``x_integer_digits``."""
    x = _i64(x)
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = ((x & 0xFFFFFFFF) << headroom_plus_one) & 0xFFFFFFFF
    shifted_sum_minus_one = wrap_int32(shifted - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


# ----------------------------------------------------------------------------------
# Prepare-time parameter derivations (TFLite Micro)
# ----------------------------------------------------------------------------------


def preprocess_softmax_scaling(beta: float, input_scale: float, input_integer_bits: int) -> tuple[int, int]:
    """TFLite ``PreprocessSoftmaxScaling`` (double-rounding build): (multiplier, left_shift).

    beta * input_scale * 2^(31 - input_integer_bits) in double, capped at 2^31 - 1.
    """
    max_real_multiplier = float((1 << 31) - 1)
    real = min(float(beta) * float(input_scale) * float(1 << (31 - input_integer_bits)), max_real_multiplier)
    return quantize_multiplier_greater_than_one(real)


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLite ``CalculateInputRadius``: floor(((2^ib - 1) * 2^(tsb - ib)) / 2^left_shift)."""
    max_input_rescaled = (
        1.0 * ((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits - input_integer_bits))
        / math.ldexp(1.0, input_left_shift)
    )
    return int(math.floor(max_input_rescaled))


def conv_per_channel_multipliers(input_scale: float, filter_scales, output_scale: float):
    """Per-channel conv / depthwise / per-channel FC multipliers, as TFLite's
    ``PopulateConvolutionQuantizationParams``: each factor is cast to double first,
    effective = (double(s_in) * double(s_f[c])) / double(s_out)."""
    fs = np.asarray(filter_scales, dtype=np.float32).astype(np.float64).ravel()
    s_in = float(np.float32(input_scale))
    s_out = float(np.float32(output_scale))
    effective = [(s_in * float(f)) / s_out for f in fs]
    return quantize_multiplier_array(effective)


fc_per_channel_multipliers = conv_per_channel_multipliers


def fc_per_tensor_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """Per-tensor FULLY_CONNECTED multiplier, as ``GetQuantizedConvolutionMultipler``:
    the product input_scale * filter_scale is formed in float32, then cast to double
    and divided by double(output_scale)."""
    prod = float(np.float32(input_scale) * np.float32(filter_scale))
    return quantize_multiplier(prod / float(np.float32(output_scale)))


def add_multipliers(s1: float, s2: float, s_out: float, left_shift: int = 20):
    """ADD int8 parameters as TFLite Micro's ``CalculateOpDataAdd`` (double math).

    Returns ((m1, sh1), (m2, sh2), (m_out, sh_out)); shifts are <= 0.
    """
    f1, f2, fo = (float(np.float32(v)) for v in (s1, s2, s_out))
    twice_max = 2.0 * max(f1, f2)
    r1 = f1 / twice_max
    r2 = f2 / twice_max
    ro = twice_max / (float(1 << left_shift) * fo)
    return (
        quantize_multiplier_smaller_than_one_exp(r1),
        quantize_multiplier_smaller_than_one_exp(r2),
        quantize_multiplier_smaller_than_one_exp(ro),
    )


def sub_multipliers(s1: float, s2: float, s_out: float, left_shift: int = 20):
    """SUB int8 parameters as TFLite Micro's ``CalculateOpDataSub``: unlike ADD, the
    ratios are computed in float32 and only then cast to double."""
    f1, f2, fo = (np.float32(v) for v in (s1, s2, s_out))
    twice_max = np.float32(2.0) * max(f1, f2)
    r1 = float(np.float32(f1 / twice_max))
    r2 = float(np.float32(f2 / twice_max))
    ro = float(np.float32(twice_max / (np.float32(1 << left_shift) * fo)))
    return (
        quantize_multiplier_smaller_than_one_exp(r1),
        quantize_multiplier_smaller_than_one_exp(r2),
        quantize_multiplier_smaller_than_one_exp(ro),
    )


def mul_multiplier(s1: float, s2: float, s_out: float) -> tuple[int, int]:
    """MUL int8 multiplier: double(s1) * double(s2) / double(s_out)."""
    f1, f2, fo = (float(np.float32(v)) for v in (s1, s2, s_out))
    return quantize_multiplier(f1 * f2 / fo)


def requantize_multiplier(s_in: float, s_out: float) -> tuple[int, int]:
    """double(s_in) / double(s_out) (QUANTIZE int8->int8, RELU, MEAN)."""
    return quantize_multiplier(float(np.float32(s_in)) / float(np.float32(s_out)))


def logistic_tanh_input_params(input_scale: float, input_integer_bits: int = 4) -> tuple[int, int, int]:
    """int8 LOGISTIC / TANH Prepare in TFLite Micro: (multiplier, shift, range_radius).

    frexp of input_scale * 2^(31 - integer_bits); the multiplier is round(q * 2^31)
    cast to int32 with no carry handling (a q rounding to 2^31 wraps, as in C++).
    """
    real = float(np.float32(input_scale)) * float(1 << (31 - input_integer_bits))
    q, shift = math.frexp(real)
    mult = int(wrap_int32(round_half_away(q * float(1 << 31))))
    radius = calculate_input_radius(input_integer_bits, shift, 31)
    return mult, shift, radius


def activation_range_quantized(activation: str, scale: float, zero_point: int,
                               qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """TFLite ``CalculateActivationRangeQuantized``: the fused activation's bounds,
    quantized with round-half-away of (float32 value / float32 scale)."""
    act = (activation or "NONE").upper()

    def q(v: float) -> int:
        tmp = np.float32(v) / np.float32(scale)
        return int(zero_point) + int(round_half_away(float(tmp)))

    if act == "NONE":
        return qmin, qmax
    if act == "RELU":
        return max(qmin, q(0.0)), qmax
    if act == "RELU6":
        return max(qmin, q(0.0)), min(qmax, q(6.0))
    if act in ("RELU_N1_TO_1", "RELU1"):
        return max(qmin, q(-1.0)), min(qmax, q(1.0))
    raise ValueError(f"unknown fused activation {activation!r}")
