"""Elementwise kernels, float32 and int8: HARD_SWISH, LEAKY_RELU, PRELU, ABS, NEG, EXP,
LOG, SQRT, RSQRT, GELU, MAXIMUM, MINIMUM, DIV, SQUARED_DIFFERENCE.

Float kernels compute what LiteRT's reference kernels compute, in float32.

int8 kernels are bit-exact with TensorFlow Lite Micro's reference kernels where TFLM
has an int8 kernel: HARD_SWISH (int16 fixed point with its "reluish" and output
multipliers), LEAKY_RELU (an identity and an alpha multiplier), PRELU (per-element
alpha, broadcast), ABS, RSQRT, MAXIMUM / MINIMUM (a raw compare: inputs and output
must share their quantization), DIV and SQUARED_DIFFERENCE (left shift 7). Binary ops
broadcast with numpy's rules, as TFLM's 4-D / 5-D broadcast walks do.

Where TFLM has no int8 kernel the rule is LiteRT's reference kernel:

- EXP, LOG, GELU: LiteRT fills a 256-entry table from float (``LUTPopulate``):
  ``q = clamp(round(f(s_in * (v - zp_in)) * (1 / s_out)) + zp_out)``, all in float32,
  ``round`` half away from zero; LOG maps inputs <= 0 to the lowest output value.
  GELU's ``f`` is ``0.5 x (1 + erf(x / sqrt 2))`` or, with ``approximate``, the tanh
  form ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``.
- SQRT: LiteRT (2.3) computes ``zp_out + trunc(sqrt(s_in * (v - zp_in)) / s_out)`` in
  float32, truncating toward zero (not rounding), and rejects inputs below the zero
  point; so does edgekit (checked against LiteRT's reference kernel).
- NEG: LiteRT negates the raw int8 value, which is the negation only when the output
  has the input's scale and minus its zero point; edgekit requires exactly those
  parameters (anything else raises) and negates likewise, except that -(-128)
  saturates to 127 where LiteRT's int8 cast wraps it to -128. edgekit's quantizer
  never makes an int8 NEG: it quantizes NEG as MUL by -1 (TFLM's MUL rescales).

Every int8 unary kernel is a function of the input byte alone, so it is computed once
over the 256 possible inputs (``unary_table``) and applied by lookup: the MCU kernel
uses the same table, which makes it bit-exact with this reference by construction.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import QuantParams
from edgekit.reference import fixedpoint as fp
from edgekit.reference.float_kernels import apply_activation

QMIN, QMAX = -128, 127
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
UNARY_INT8_OPS = ("HARD_SWISH", "LEAKY_RELU", "ABS", "NEG", "EXP", "LOG", "SQRT", "RSQRT", "GELU")


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _broadcast(a, b, what: str):
    try:
        return np.broadcast_arrays(a, b)
    except ValueError:
        raise BadInputError(f"{what}: shapes {np.shape(a)} and {np.shape(b)} do not broadcast") from None


# ----------------------------------------------------------------------------------
# float32
# ----------------------------------------------------------------------------------


def hard_swish(x) -> np.ndarray:
    x = _f32(x)
    return (x * np.minimum(np.float32(6), np.maximum(np.float32(0), x + np.float32(3))) / np.float32(6)).astype(
        np.float32)


def leaky_relu(x, alpha: float) -> np.ndarray:
    x = _f32(x)
    return np.where(x > 0, x, x * np.float32(alpha)).astype(np.float32)


def prelu(x, alpha) -> np.ndarray:
    x, alpha = _broadcast(_f32(x), _f32(alpha), "prelu")
    return np.where(x >= 0, x, x * alpha).astype(np.float32)


def abs_(x) -> np.ndarray:
    return np.abs(_f32(x))


def neg(x) -> np.ndarray:
    return np.negative(_f32(x))


def exp(x) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.exp(_f32(x))


def log(x) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(_f32(x))


def sqrt(x) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.sqrt(_f32(x))


def rsqrt(x) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return (np.float32(1) / np.sqrt(_f32(x))).astype(np.float32)


_SQRT1_2 = np.float32(math.sqrt(0.5))
_SQRT_2_OVER_PI = np.float32(math.sqrt(2.0 / math.pi))


def _erf_f32(x: np.ndarray) -> np.ndarray:
    # math.erf is correctly rounded in double; float32 of it is what std::erf(float) returns
    # to within 1 ulp, which the float tests' tolerance covers.
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)).astype(np.float32)


def gelu(x, approximate: bool = False) -> np.ndarray:
    x = _f32(x)
    half = np.float32(0.5)
    one = np.float32(1)
    if approximate:
        inner = _SQRT_2_OVER_PI * (x + np.float32(0.044715) * x * x * x)
        return (half * x * (one + np.tanh(inner))).astype(np.float32)
    return (half * x * (one + _erf_f32(x * _SQRT1_2))).astype(np.float32)


def maximum(a, b) -> np.ndarray:
    return np.maximum(_f32(a), _f32(b))


def minimum(a, b) -> np.ndarray:
    return np.minimum(_f32(a), _f32(b))


def div(a, b, *, activation: str = "NONE") -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return apply_activation(_f32(a) / _f32(b), activation).astype(np.float32)


def squared_difference(a, b) -> np.ndarray:
    d = _f32(a) - _f32(b)
    return (d * d).astype(np.float32)


# ----------------------------------------------------------------------------------
# int8 helpers
# ----------------------------------------------------------------------------------


def _per_tensor(qp: QuantParams | None, what: str) -> tuple[float, int]:
    if qp is None:
        raise BadInputError(f"{what} needs quantization parameters")
    if not qp.is_per_tensor and len(qp.scale) != 1:
        raise BadInputError(f"{what} must be quantized per tensor, got {len(qp.scale)} scales")
    return float(np.float32(qp.scale[0])), int(qp.zero_point[0])


def _i8(x, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise BadInputError(f"{what} must be int8, got {x.dtype}")
    return x


def _clamp8(v, lo: int = QMIN, hi: int = QMAX) -> np.ndarray:
    return np.clip(v, lo, hi).astype(np.int8)


def _sat16(v) -> np.ndarray:
    return np.clip(v, INT16_MIN, INT16_MAX)


def _srdhm16(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul for int16."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    out = fp.trunc_div(ab + nudge, 1 << 15)
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, out)


def _sdhm16(a, b) -> np.ndarray:
    """TFLite SaturatingDoublingHighMul for int16 (no rounding: (a * b) / 2^15 truncated)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    out = fp.trunc_div(a * b, 1 << 15)
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, out)


def _rounding_divide_by_pot16(x, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT on int16 values. For exponents of 16 and more its mask
    ``(1 << e) - 1`` truncates to int16 -1, so the result is x >> e plus 1 when x >= 0
    (0 + 1 = 1 for 0 and positive x, -1 for negative x), as TFLM computes it."""
    x = np.asarray(x, np.int64)
    mask = ((1 << exponent) - 1) & 0xFFFF
    mask = mask - 0x10000 if mask >= 0x8000 else mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def _sat_left_shift16(v, shift: int) -> np.ndarray:
    return _sat16(np.asarray(v, np.int64) * (1 << shift))


def downscale_multiplier_16(m32: int) -> int:
    """TFLite DownScaleInt32ToInt16Multiplier: round the Q31 multiplier to Q15."""
    if m32 < 0:
        raise ValueError("negative multiplier")
    rounding = 1 << 15
    if m32 >= fp.INT32_MAX - rounding:
        return INT16_MAX
    return int((m32 + rounding) >> 16)



def hard_swish_params(s_in: float, s_out: float) -> dict:
    """TFLM HardSwishPrepare: the int16 output and reluish multipliers and their exponents."""
    hires = np.float32(np.float32(1.0 / 128.0) * np.float32(s_in))
    reluish_scale = np.float32(3.0 / 32768.0)
    out_m, out_e = fp.quantize_multiplier(float(np.float32(hires / np.float32(s_out))))
    rel_m, rel_e = fp.quantize_multiplier(float(np.float32(hires / reluish_scale)))
    if out_e > 0:
        raise BadInputError("int8 hard_swish: output scale must be at least input scale / 128")
    return {"output_multiplier": downscale_multiplier_16(out_m), "output_exponent": out_e,
            "reluish_multiplier": downscale_multiplier_16(rel_m), "reluish_exponent": rel_e}


def _hard_swish_values(v, zp_in: int, zp_out: int, p: dict) -> np.ndarray:
    x = np.asarray(v, np.int64) - zp_in
    hires = x * 128  # fits int16: |x| <= 255
    pre_out = _srdhm16(hires, p["output_multiplier"])
    reluish = hires
    e = p["reluish_exponent"]
    if e > 0:
        reluish = _sat_left_shift16(reluish, e - 1)
    reluish = _srdhm16(reluish, p["reluish_multiplier"])
    if e > 0:
        reluish = _sat_left_shift16(reluish, 1)
    if e < 0:
        reluish = _rounding_divide_by_pot16(reluish, -e)
    reluish = (reluish + (1 << 15)) >> 1
    pre_shift = _sdhm16(reluish, pre_out)
    out = _rounding_divide_by_pot16(pre_shift, -p["output_exponent"]) + zp_out
    return _clamp8(out)


def leaky_relu_params(s_in: float, s_out: float, alpha: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """TFLM CalculateOpDataLeakyRelu: ((alpha multiplier, shift), (identity multiplier, shift)),
    each ratio computed in float32 and then widened to double."""
    f_in, f_out, f_a = np.float32(s_in), np.float32(s_out), np.float32(alpha)
    alpha_m = fp.quantize_multiplier(float(np.float32(np.float32(f_in * f_a) / f_out)))
    ident_m = fp.quantize_multiplier(float(np.float32(f_in / f_out)))
    return alpha_m, ident_m


def _leaky_relu_values(v, zp_in, zp_out, alpha_m, ident_m) -> np.ndarray:
    x = np.asarray(v, np.int64) - zp_in
    am, ash = alpha_m
    pos = fp.multiply_by_quantized_multiplier(x, ident_m[0], ident_m[1])
    neg_scaled = fp.multiply_by_quantized_multiplier(x, abs(am), ash)
    neg_v = -neg_scaled if am < 0 else neg_scaled
    return _clamp8(zp_out + np.where(x >= 0, pos, neg_v))


def abs_multiplier(s_in: float, s_out: float) -> tuple[int, int]:
    """TFLM SetAbsOutputMultiplier: double(float32 s_in / s_out)."""
    return fp.quantize_multiplier(float(np.float32(np.float32(s_in) / np.float32(s_out))))


def rsqrt_multiplier(s_in: float, s_out: float) -> tuple[int, int]:
    """TFLM SetRsqrtOutputMultiplier: 1 / double(sqrtf(s_in) * s_out) (product in float32)."""
    prod = np.float32(np.sqrt(np.float32(s_in)) * np.float32(s_out))
    return fp.quantize_multiplier(1.0 / float(prod))


def _srdhm_int(a: int, b: int) -> int:
    """SaturatingRoundingDoublingHighMul on Python ints (the scalar loops below)."""
    if a == b == fp.INT32_MIN:
        return fp.INT32_MAX
    return (a * b + (1 << 30)) >> 31


def _sat_shift_int(x: int, exponent: int) -> int:
    """SaturatingRoundingMultiplyByPOT on Python ints (exponent > 0: saturating left shift)."""
    if exponent <= 0:
        e = -exponent
        return x if e == 0 else (x + (1 << (e - 1)) - (1 if x < 0 else 0)) >> e
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return fp.INT32_MAX
    if x < -threshold:
        return fp.INT32_MIN
    return x << exponent


def _wrap_int(x: int) -> int:
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def inv_sqrt_multiplier_exp(value: int) -> tuple[int, int]:
    """TFLite GetInvSqrtQuantizedMultiplierExp(value, reverse_shift=-1) for one int32 > 0:
    five Newton steps on Q3.28 values (products Rescale'd back to 3 integer bits)."""
    if value <= 1:
        return fp.INT32_MAX, 0
    shift = 11
    while value >= (1 << 29):
        value //= 4
        shift += 1
    clz = 32 - value.bit_length()
    left_pairs = (clz - 1) // 2 - 1
    shift -= left_pairs
    value <<= 2 * left_pairs
    x_in = value >> 1  # F3 raw
    half_in = _sat_shift_int(x_in, -1)
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28  # F3::One()
    for _ in range(5):
        x3 = _sat_shift_int(_srdhm_int(_srdhm_int(x, x), x), 6)  # F9 -> F3
        a = _srdhm_int(half_three, x)  # F6
        b = _srdhm_int(half_in, x3)    # F6
        x = _sat_shift_int(_wrap_int(a - b), 3)  # F6 -> F3
    x = _srdhm_int(x, 1518500250)  # F3 * F0 -> F3
    if shift < 0:
        x = _wrap_int(x << -shift)
        shift = 0
    return x, -shift


def _rsqrt_values(v, zp_in, zp_out, mult, shift) -> np.ndarray:
    out = np.empty(np.shape(v), np.int64)
    flat = np.asarray(v, np.int64).ravel()
    res = out.ravel()
    k = 20
    for i, raw in enumerate(flat):
        value = int(raw) - zp_in
        if value < 0:
            res[i] = QMIN  # invalid; TFLM stops with an error (checked by rsqrt_s8)
            continue
        if value == 0:
            res[i] = QMAX
            continue
        m, s = inv_sqrt_multiplier_exp(value)
        data = int(fp.multiply_by_quantized_multiplier(1, m, s + k))
        o = int(fp.multiply_by_quantized_multiplier(data, mult, shift - k)) + zp_out
        res[i] = min(max(o, QMIN), QMAX)
    return out.reshape(np.shape(v)).astype(np.int8)


def lut_populate(fn, s_in: float, zp_in: int, s_out: float, zp_out: int, values) -> np.ndarray:
    """LiteRT LUTPopulateInt8 evaluated at ``values``: float32 dequantize, ``fn``, multiply by
    the float32 inverse output scale, round half away, add the zero point, clamp."""
    v = np.asarray(values, np.int64)
    deq = (np.float32(s_in) * (v - zp_in).astype(np.float32)).astype(np.float32)
    with np.errstate(all="ignore"):
        y = _f32(fn(deq))
        inv = np.float32(np.float32(1) / np.float32(s_out))
        rescaled = fp.round_half_away_f32((y * inv).astype(np.float32))
        total = (rescaled + np.float32(zp_out)).astype(np.float32)
    # Out of the int32 range (an overflowing exp) LiteRT's table saturates; NaN gives the zero point.
    total = np.where(np.isnan(total), np.float32(zp_out), total)
    return _clamp8(np.clip(total.astype(np.float64), -(2.0 ** 31), 2.0 ** 31 - 1).astype(np.int64))


def _log_fn(s_out: float, zp_out: int):
    out_min = np.float32(np.float32(QMIN - zp_out) * np.float32(s_out))

    def f(x):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(x <= 0, out_min, np.log(np.where(x > 0, x, 1))).astype(np.float32)
    return f


# ----------------------------------------------------------------------------------
# int8 unary ops: one table of 256 bytes each
# ----------------------------------------------------------------------------------


def unary_table(op: str, x_qp: QuantParams, out_qp: QuantParams, attrs: dict | None = None) -> np.ndarray:
    """The int8 output for each int8 input -128..127 of a unary elementwise op (index
    ``v + 128``). ``op`` is the IR op type name; ``attrs`` its attributes. Read-only:
    tables are computed once per op and parameters."""
    what = op.lower()
    s_in, zp_in = _per_tensor(x_qp, f"{what} input")
    s_out, zp_out = _per_tensor(out_qp, f"{what} output")
    key = tuple(sorted((k, v) for k, v in (attrs or {}).items() if k in ("alpha", "approximate")))
    return _cached_table(op, s_in, zp_in, s_out, zp_out, key)


@functools.lru_cache(maxsize=512)
def _cached_table(op: str, s_in: float, zp_in: int, s_out: float, zp_out: int, attr_items: tuple) -> np.ndarray:
    table = _compute_table(op, s_in, zp_in, s_out, zp_out, dict(attr_items))
    table.setflags(write=False)
    return table


def _compute_table(op: str, s_in: float, zp_in: int, s_out: float, zp_out: int, attrs: dict) -> np.ndarray:
    v = np.arange(QMIN, QMAX + 1, dtype=np.int64)
    if op == "HARD_SWISH":
        return _hard_swish_values(v, zp_in, zp_out, hard_swish_params(s_in, s_out))
    if op == "LEAKY_RELU":
        alpha_m, ident_m = leaky_relu_params(s_in, s_out, attrs.get("alpha", 0.2))
        return _leaky_relu_values(v, zp_in, zp_out, alpha_m, ident_m)
    if op == "ABS":
        a = np.abs(v - zp_in)
        if np.float32(s_in) == np.float32(s_out):
            return _clamp8(a + zp_out)
        m, s = abs_multiplier(s_in, s_out)
        return _clamp8(fp.multiply_by_quantized_multiplier(a, m, s) + zp_out)
    if op == "NEG":
        if np.float32(s_in) != np.float32(s_out) or zp_out != -zp_in:
            raise BadInputError(f"int8 neg negates raw values (LiteRT): the output must have the input's "
                                f"scale and zero point {-zp_in}, got scale {s_out} and zero point {zp_out}")
        return _clamp8(-v)
    if op == "RSQRT":
        m, s = rsqrt_multiplier(s_in, s_out)
        return _rsqrt_values(v, zp_in, zp_out, m, s)
    if op == "EXP":
        return lut_populate(np.exp, s_in, zp_in, s_out, zp_out, v)
    if op == "LOG":
        return lut_populate(_log_fn(s_out, zp_out), s_in, zp_in, s_out, zp_out, v)
    if op == "SQRT":
        deq = (np.float32(s_in) * (v - zp_in).astype(np.float32)).astype(np.float32)
        with np.errstate(invalid="ignore"):
            y = np.trunc(np.sqrt(np.maximum(deq, np.float32(0))) / np.float32(s_out))
        return _clamp8(np.clip(y, -(2.0 ** 31), 2.0 ** 31 - 1).astype(np.int64) + zp_out)
    if op == "GELU":
        approximate = bool(attrs.get("approximate", False))
        return lut_populate(lambda x: gelu(x, approximate), s_in, zp_in, s_out, zp_out, v)
    raise BadInputError(f"no int8 elementwise table for {op}")


def unary_s8(op: str, x, x_qp: QuantParams, out_qp: QuantParams, attrs: dict | None = None) -> np.ndarray:
    """Apply the int8 unary op ``op`` (see ``unary_table``) to int8 ``x``."""
    x = _i8(x, f"{op.lower()} input")
    if op in ("RSQRT", "SQRT"):
        zp_in = _per_tensor(x_qp, f"{op.lower()} input")[1]
        if x.size and int(x.min()) < zp_in:
            raise BadInputError(f"int8 {op.lower()}: an input below the zero point (a negative value); "
                                "TFLite stops there with an error")
    table = unary_table(op, x_qp, out_qp, attrs)
    return table[x.astype(np.int64) + 128]


# ----------------------------------------------------------------------------------
# int8 binary ops (numpy broadcasting)
# ----------------------------------------------------------------------------------


def _binary_setup(a, b, a_qp, b_qp, out_qp, what):
    a = _i8(a, f"{what} input 1")
    b = _i8(b, f"{what} input 2")
    q1 = _per_tensor(a_qp, f"{what} input 1")
    q2 = _per_tensor(b_qp, f"{what} input 2")
    qo = _per_tensor(out_qp, f"{what} output")
    a, b = _broadcast(a, b, what)
    return a.astype(np.int64), b.astype(np.int64), q1, q2, qo


def _min_max(a, b, a_qp, b_qp, out_qp, what, fn) -> np.ndarray:
    a, b, q1, q2, qo = _binary_setup(a, b, a_qp, b_qp, out_qp, what)
    if not (q1 == q2 == qo):
        raise BadInputError(f"int8 {what}: both inputs and the output must share their quantization "
                            f"(TFLite Micro compares raw values), got {q1}, {q2} -> {qo}")
    return fn(a, b).astype(np.int8)


def maximum_s8(a, b, a_qp, b_qp, out_qp) -> np.ndarray:
    """MAXIMUM int8 (TFLM MaximumMinimumBroadcast: raw compare)."""
    return _min_max(a, b, a_qp, b_qp, out_qp, "maximum", np.maximum)


def minimum_s8(a, b, a_qp, b_qp, out_qp) -> np.ndarray:
    """MINIMUM int8 (TFLM MaximumMinimumBroadcast: raw compare)."""
    return _min_max(a, b, a_qp, b_qp, out_qp, "minimum", np.minimum)


def prelu_params(s_in: float, s_alpha: float, s_out: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """TFLM CalculatePreluParams (double math): (identity multiplier, shift), (alpha multiplier, shift)."""
    f_in, f_a, f_out = (float(np.float32(v)) for v in (s_in, s_alpha, s_out))
    return fp.quantize_multiplier(f_in / f_out), fp.quantize_multiplier(f_in * f_a / f_out)


def prelu_s8(x, alpha, x_qp, alpha_qp, out_qp) -> np.ndarray:
    """PRELU int8 (TFLM BroadcastPrelu4DSlow): x >= zp_in rescaled by s_in/s_out, else
    (x - zp_in) * (alpha - zp_alpha) rescaled by s_in * s_alpha / s_out."""
    x, a, (s_in, z_in), (s_a, z_a), (s_out, z_out) = _binary_setup(x, alpha, x_qp, alpha_qp, out_qp, "prelu")
    (m1, sh1), (m2, sh2) = prelu_params(s_in, s_a, s_out)
    xv = x - z_in
    pos = fp.multiply_by_quantized_multiplier(xv, m1, sh1)
    neg_v = fp.multiply_by_quantized_multiplier(xv * (a - z_a), m2, sh2)
    return _clamp8(np.where(xv >= 0, pos, neg_v) + z_out)


def squared_difference_params(s1: float, s2: float, s_out: float, left_shift: int = 7):
    """TFLM squared_difference PrepareQuantized: ((m1, sh1), (m2, sh2), (m_out, sh_out))."""
    f1, f2, fo = np.float32(s1), np.float32(s2), np.float32(s_out)
    twice = 2.0 * float(max(f1, f2))
    r1 = float(f1) / twice
    r2 = float(f2) / twice
    ro = (twice * twice) / float(np.float32(np.float32(1 << (2 * left_shift)) * fo))
    return (fp.quantize_multiplier_smaller_than_one_exp(r1), fp.quantize_multiplier_smaller_than_one_exp(r2),
            fp.quantize_multiplier(ro))


def squared_difference_s8(a, b, a_qp, b_qp, out_qp) -> np.ndarray:
    """SQUARED_DIFFERENCE int8 (TFLM): both inputs shifted left by 7, rescaled to twice the
    larger scale, subtracted, squared (int32) and rescaled to the output."""
    a, b, (s1, z1), (s2, z2), (so, zo) = _binary_setup(a, b, a_qp, b_qp, out_qp, "squared_difference")
    (m1, sh1), (m2, sh2), (mo, sho) = squared_difference_params(s1, s2, so)
    sa = fp.multiply_by_quantized_multiplier_smaller_than_one_exp((a - z1) * 128, m1, sh1)
    sb = fp.multiply_by_quantized_multiplier_smaller_than_one_exp((b - z2) * 128, m2, sh2)
    d = sa - sb
    return _clamp8(fp.multiply_by_quantized_multiplier(fp.wrap_int32(d * d), mo, sho) + zo)


def div_multiplier(s1: float, s2: float, s_out: float) -> tuple[int, int]:
    """TFLM CalculateOpDataDiv: double(float32 s1 / float32(s2 * s_out))."""
    f1, f2, fo = np.float32(s1), np.float32(s2), np.float32(s_out)
    return fp.quantize_multiplier(float(np.float32(f1 / np.float32(f2 * fo))))


def count_leading_sign_bits32(x) -> np.ndarray:
    """TFLite CountLeadingSignBits for int32 (31 for 0)."""
    x = np.asarray(x, np.int64)
    mag = np.where(x >= 0, x, ~x)  # ~x = -x - 1
    return np.where(x == 0, 31, fp.count_leading_zeros32(mag) - 1)


def _div_parts(a, b, z1, z2, shift):
    n = a - z1
    d = b - z2
    n = np.where(d < 0, -n, n)
    d = np.abs(d)
    inv, recip_shift = fp.get_reciprocal(d, 31)
    headroom = count_leading_sign_bits32(n)
    unscaled = fp.saturating_rounding_doubling_high_mul(fp.wrap_int32(n << headroom), inv)
    return unscaled, shift - recip_shift - headroom


def div_exponents(a, b, a_qp, b_qp, out_qp) -> np.ndarray:
    """The final rounding shift of each DIV int8 output (TFLM's ``total_shift``)."""
    a, b, (s1, z1), (s2, z2), (so, _) = _binary_setup(a, b, a_qp, b_qp, out_qp, "div")
    return _div_parts(a, b, z1, z2, div_multiplier(s1, s2, so)[1])[1]


def div_s8(a, b, a_qp, b_qp, out_qp, *, activation: str = "NONE") -> np.ndarray:
    """DIV int8 (TFLM DivElementwise): the reciprocal of the divisor in Q31 (GetReciprocal),
    the dividend shifted by its headroom, then one rescale to the output.

    Where TFLM's final right shift is 32 or more (a quotient far below one output step)
    its C++ shifts an int32 by its width, which is undefined (x86 hosts saturate the
    output, Arm gives 0 or -1); edgekit rounds correctly there, which gives 0."""
    a, b, (s1, z1), (s2, z2), (so, zo) = _binary_setup(a, b, a_qp, b_qp, out_qp, "div")
    if np.any(b == z2):
        raise BadInputError("int8 div: a divisor equals its zero point (division by zero)")
    mult, shift = div_multiplier(s1, s2, so)
    act_min, act_max = fp.activation_range_quantized(activation, so, zo)
    unscaled, total_shift = _div_parts(a, b, z1, z2, shift)
    # MultiplyByQuantizedMultiplierSmallerThanOneExp: high multiply, then a rounding right shift.
    r = fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(unscaled, mult),
                                  np.clip(-total_shift, 0, 62))
    return _clamp8(r + zo, act_min, act_max)


# ----------------------------------------------------------------------------------
# dispatch from the interpreter (edgekit.reference.kernels)
# ----------------------------------------------------------------------------------

OPS = frozenset(UNARY_INT8_OPS) | {"PRELU", "MAXIMUM", "MINIMUM", "DIV", "SQUARED_DIFFERENCE"}

_FLOAT_UNARY = {"HARD_SWISH": hard_swish, "ABS": abs_, "NEG": neg, "EXP": exp, "LOG": log, "SQRT": sqrt,
                "RSQRT": rsqrt}


def run_float(op: str, attrs: dict, args: list) -> np.ndarray:
    """The float32 kernel of elementwise op ``op`` (an IR op type name) on ``args``."""
    x = args[0]
    if op in _FLOAT_UNARY:
        return _FLOAT_UNARY[op](x)
    if op == "LEAKY_RELU":
        return leaky_relu(x, attrs["alpha"])
    if op == "GELU":
        return gelu(x, attrs["approximate"])
    if op == "PRELU":
        return prelu(x, args[1])
    if op == "MAXIMUM":
        return maximum(x, args[1])
    if op == "MINIMUM":
        return minimum(x, args[1])
    if op == "DIV":
        return div(x, args[1], activation=attrs["activation"])
    if op == "SQUARED_DIFFERENCE":
        return squared_difference(x, args[1])
    raise BadInputError(f"no float elementwise kernel for {op}")


def run_int8(op: str, attrs: dict, args: list, qps: list, out_qp: QuantParams) -> np.ndarray:
    """The int8 kernel of elementwise op ``op``; ``qps`` are the inputs' parameters."""
    if op in UNARY_INT8_OPS:
        return unary_s8(op, args[0], qps[0], out_qp, attrs)
    a, b = args[0], args[1]
    if op == "PRELU":
        return prelu_s8(a, b, qps[0], qps[1], out_qp)
    if op == "MAXIMUM":
        return maximum_s8(a, b, qps[0], qps[1], out_qp)
    if op == "MINIMUM":
        return minimum_s8(a, b, qps[0], qps[1], out_qp)
    if op == "DIV":
        return div_s8(a, b, qps[0], qps[1], out_qp, activation=attrs["activation"])
    if op == "SQUARED_DIFFERENCE":
        return squared_difference_s8(a, b, qps[0], qps[1], out_qp)
    raise BadInputError(f"no int8 elementwise kernel for {op}")
