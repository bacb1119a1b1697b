"""int8 reference kernels, bit-exact with TensorFlow Lite Micro's reference kernels.

Every kernel takes int8 arrays (batch-first, NHWC for images), constants, and the
``QuantParams`` of its tensors, derives its fixed-point parameters the way TFLite
Micro's ``Prepare`` does, and returns int8 arrays (``dequantize`` returns float32).
The semantics are TFLite Micro's (double-rounding requantization in every kernel,
per-channel FULLY_CONNECTED included), checked byte for byte against the
``tflite_micro`` interpreter.

Accumulations run as float64 matrix products of the integer values (exact below
2^53) and are then converted to int64; int32 wrap-around is applied where the C++
code would wrap. Layout and padding conventions are those of ``float_kernels``.

Where TFLite Micro would silently compute something that does not represent the
model (a CONCATENATION of tensors with different scales, a LOGISTIC whose output is
not quantized as 1/256, -128, ...), these kernels raise ``BadInputError`` instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import QuantParams
from edgekit.reference import fixedpoint as fp
from edgekit.reference.float_kernels import (
    _axes,
    _check_nhwc,
    _conv_accumulate,
    _depthwise_accumulate,
    _fc_shapes,
    _pad_hw,
    _pair,
    _resolve_pads,
    _window_taps,
    output_hw,
    same_pads,
)

__all__ = [
    "same_pads",
    "output_hw",
    "conv2d",
    "depthwise_conv2d",
    "fully_connected",
    "average_pool2d",
    "max_pool2d",
    "add",
    "sub",
    "mul",
    "softmax",
    "logistic",
    "tanh",
    "mean",
    "pad",
    "concatenation",
    "relu",
    "relu6",
    "quantize",
    "requantize",
    "dequantize",
    "reshape",
]

QMIN, QMAX = -128, 127


def _per_tensor(qp: QuantParams, what: str) -> tuple[float, int]:
    if qp is None:
        raise BadInputError(f"{what} needs quantization parameters")
    if not qp.is_per_tensor and len(qp.scale) != 1:
        raise BadInputError(f"{what} must be quantized per tensor, got {len(qp.scale)} scales")
    return float(qp.scale[0]), int(qp.zero_point[0])


def _i8(x, what="input") -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise BadInputError(f"{what} must be int8, got {x.dtype}")
    return x


def _to_int8(v, lo=QMIN, hi=QMAX) -> np.ndarray:
    return np.clip(v, lo, hi).astype(np.int8)


def _channel_scales(w_qp: QuantParams, n: int, axis: int, what: str) -> np.ndarray:
    scales = w_qp.scales
    if w_qp.is_per_tensor or len(scales) == 1:
        return np.full(n, scales[0], dtype=np.float32)
    if w_qp.axis != axis:
        raise BadInputError(f"{what} weights must be quantized along axis {axis}, not {w_qp.axis}")
    if len(scales) != n:
        raise BadInputError(f"{what} has {n} output channels but {len(scales)} weight scales")
    return scales


_STEP_ELEMS = 1 << 16  # elements requantized per step (keeps the int64 temporaries in cache)


def _requant_out(acc, bias, mult, shift, zp_out, act_min, act_max) -> np.ndarray:
    """Accumulators [..., C] (exact integers, any numeric dtype) + int32 bias ->
    wrap to int32 -> MultiplyByQuantizedMultiplier (per channel) -> + zp -> clamp -> int8."""
    c = acc.shape[-1]
    if bias is not None:
        b = np.asarray(bias)
        if b.shape != (c,):
            raise BadInputError(f"bias must have shape ({c},), got {b.shape}")
        b = b.astype(np.int64)
    flat = acc.reshape(-1, c)
    out = np.empty(flat.shape, dtype=np.int8)
    step = max(1, _STEP_ELEMS // max(1, c))
    for r0 in range(0, flat.shape[0], step):
        v = flat[r0:r0 + step].astype(np.int64)  # float sums hold exact integers
        if bias is not None:
            v += b
        v = fp.multiply_by_quantized_multiplier(fp.wrap_int32(v), mult, shift)
        v += zp_out
        np.clip(v, act_min, act_max, out=v)
        out[r0:r0 + step] = v
    return out.reshape(acc.shape)


def _exact_dtype(depth: int):
    """float32 when every partial sum of ``depth`` int8 products (|x - zp| <= 255,
    |w| <= 127) is an integer below 2^24, so any summation order is exact; else float64
    (exact below 2^53)."""
    return np.float32 if depth * 255 * 128 < (1 << 24) else np.float64


# ----------------------------------------------------------------------------------
# convolutions and fully connected
# ----------------------------------------------------------------------------------


def conv2d(x, w, bias, x_qp: QuantParams, w_qp: QuantParams, out_qp: QuantParams, *,
           stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), activation: str = "NONE") -> np.ndarray:
    """CONV_2D int8 (TFLM ``ConvPerChannel``). ``w`` [Cout,KH,KW,Cin] int8 with per-tensor
    or per-channel (axis 0) scales and zero points 0; ``bias`` int32 [Cout] or None.

    acc = sum w * (x - zp_in) over in-bounds taps + bias; per channel
    out = MultiplyByQuantizedMultiplier(acc, m[c], s[c]) + zp_out, clamped to the
    fused activation's range. Multipliers: double(s_in) * double(s_w[c]) / double(s_out).
    """
    x = _i8(x)
    w = _i8(w, "filter")
    _check_nhwc(x)
    if w.ndim != 4 or w.shape[3] != x.shape[3]:
        raise BadInputError(f"filter shape {w.shape} does not match input {x.shape}")
    if any(z != 0 for z in w_qp.zero_point):
        raise BadInputError("int8 conv2d needs filter zero points of 0")
    s_in, zp_in = _per_tensor(x_qp, "conv2d input")
    s_out, zp_out = _per_tensor(out_qp, "conv2d output")
    cout, kh, kw, _ = w.shape
    fscales = _channel_scales(w_qp, cout, 0, "conv2d")
    mult, shift = fp.conv_per_channel_multipliers(s_in, fscales, s_out)
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    stride, dilation = _pair(stride), _pair(dilation)
    p = _resolve_pads(pads, x.shape[1:3], (kh, kw), stride, dilation)
    out_hw = output_hw(x.shape[1:3], (kh, kw), stride, dilation, p)
    dtype = _exact_dtype(kh * kw * w.shape[3])
    xo = x.astype(dtype) - dtype(zp_in)  # padded taps then contribute 0, as TFLM skips them
    acc = _conv_accumulate(_pad_hw(xo, p), w, stride, dilation, out_hw, dtype)
    return _requant_out(acc, bias, mult, shift, zp_out, act_min, act_max)


def depthwise_conv2d(x, w, bias, x_qp: QuantParams, w_qp: QuantParams, out_qp: QuantParams, *,
                     stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), depth_multiplier: int = 1,
                     activation: str = "NONE") -> np.ndarray:
    """DEPTHWISE_CONV_2D int8 (TFLM ``DepthwiseConvPerChannel``). ``w`` [1,KH,KW,Cin*M]
    with per-tensor or per-channel (axis 3) scales; output channel ic*M + m reads
    input channel ic."""
    x = _i8(x)
    w = _i8(w, "filter")
    _check_nhwc(x)
    m = int(depth_multiplier)
    if w.ndim != 4 or w.shape[0] != 1 or w.shape[3] != x.shape[3] * m:
        raise BadInputError(f"depthwise filter shape {w.shape} does not match input {x.shape} "
                            f"and depth_multiplier {m}")
    if any(z != 0 for z in w_qp.zero_point):
        raise BadInputError("int8 depthwise_conv2d needs filter zero points of 0")
    s_in, zp_in = _per_tensor(x_qp, "depthwise_conv2d input")
    s_out, zp_out = _per_tensor(out_qp, "depthwise_conv2d output")
    _, kh, kw, cout = w.shape
    fscales = _channel_scales(w_qp, cout, 3, "depthwise_conv2d")
    mult, shift = fp.conv_per_channel_multipliers(s_in, fscales, s_out)
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    stride, dilation = _pair(stride), _pair(dilation)
    p = _resolve_pads(pads, x.shape[1:3], (kh, kw), stride, dilation)
    out_hw = output_hw(x.shape[1:3], (kh, kw), stride, dilation, p)
    xo = x.astype(np.int32) - np.int32(zp_in)  # |sum| <= KH*KW*255*127: int32 is exact
    acc = _depthwise_accumulate(_pad_hw(xo, p), w, m, stride, dilation, out_hw, np.int32)
    return _requant_out(acc, bias, mult, shift, zp_out, act_min, act_max)


def fully_connected(x, w, bias, x_qp: QuantParams, w_qp: QuantParams, out_qp: QuantParams, *,
                    activation: str = "NONE", keep_num_dims: bool = False) -> np.ndarray:
    """FULLY_CONNECTED int8. ``w`` [Cout, K]; ``x`` is flattened to [-1, K].

    Per-tensor weights (one scale): acc = sum (w - zp_w) * (x - zp_in) + bias and the
    multiplier comes from float32(s_in * s_w) / double(s_out). Per-channel weights
    (several scales, axis 0): the weight zero point is ignored (TFLite requires it to
    be 0) and each channel has double(s_in) * double(s_w[c]) / double(s_out).
    Both use TFLM's double-rounding MultiplyByQuantizedMultiplier.
    """
    x = _i8(x)
    w = _i8(w, "weights")
    if w.ndim != 2:
        raise BadInputError(f"weights must be [Cout, K], got {w.shape}")
    s_in, zp_in = _per_tensor(x_qp, "fully_connected input")
    s_out, zp_out = _per_tensor(out_qp, "fully_connected output")
    cout = w.shape[0]
    x2, out_shape = _fc_shapes(x, w, keep_num_dims)
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    per_channel = not (w_qp.is_per_tensor or len(w_qp.scale) == 1)
    if per_channel:
        fscales = _channel_scales(w_qp, cout, 0, "fully_connected")
        mult, shift = fp.fc_per_channel_multipliers(s_in, fscales, s_out)
        w_zp = 0
    else:
        mult, shift = fp.fc_per_tensor_multiplier(s_in, w_qp.scale[0], s_out)
        w_zp = int(w_qp.zero_point[0])
    dtype = _exact_dtype(2 * w.shape[1])  # |w - zp_w| may reach 255 when zp_w != 0
    acc = (x2.astype(dtype) - dtype(zp_in)) @ (w.astype(dtype) - dtype(w_zp)).T
    out = _requant_out(acc, bias, mult, shift, zp_out, act_min, act_max)
    return out.reshape(out_shape)


# ----------------------------------------------------------------------------------
# pooling
# ----------------------------------------------------------------------------------


def _pool_setup(x, x_qp, out_qp, pool, stride, pads, what):
    x = _i8(x)
    _check_nhwc(x)
    s_in, zp_in = _per_tensor(x_qp, f"{what} input")
    s_out, zp_out = _per_tensor(out_qp, f"{what} output")
    if abs(float(s_in) - float(s_out)) > 1e-6 or zp_in != zp_out:
        raise BadInputError(f"{what} needs equal input and output quantization (TFLite Micro)")
    pool, stride = _pair(pool), _pair(stride)
    p = _resolve_pads(pads, x.shape[1:3], pool, stride, (1, 1))
    out_hw = output_hw(x.shape[1:3], pool, stride, (1, 1), p)
    return x, s_out, zp_out, pool, stride, p, out_hw


def average_pool2d(x, x_qp: QuantParams, out_qp: QuantParams, *, pool=(2, 2), stride=(2, 2),
                   pads=(0, 0, 0, 0), activation: str = "NONE") -> np.ndarray:
    """AVERAGE_POOL_2D int8: sum of the in-bounds raw values divided by their count,
    rounded half away from zero ((acc +- count/2) / count, truncating division)."""
    x, s_out, zp_out, pool, stride, p, out_hw = _pool_setup(x, x_qp, out_qp, pool, stride, pads, "average_pool2d")
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    xp = _pad_hw(x.astype(np.int64), p)
    ones = _pad_hw(np.ones((1,) + x.shape[1:3] + (1,), dtype=np.int64), p)
    acc = np.zeros((x.shape[0],) + out_hw + (x.shape[3],), dtype=np.int64)
    count = np.zeros((1,) + out_hw + (1,), dtype=np.int64)
    for _, _, view in _window_taps(xp, pool, stride, (1, 1), out_hw):
        acc += view
    for _, _, view in _window_taps(ones, pool, stride, (1, 1), out_hw):
        count += view
    if np.any(count == 0):
        raise BadInputError("average_pool2d window lies entirely in the padding")
    half = count // 2
    q = fp.trunc_div(np.where(acc > 0, acc + half, acc - half), count)
    return _to_int8(q, act_min, act_max)


def max_pool2d(x, x_qp: QuantParams, out_qp: QuantParams, *, pool=(2, 2), stride=(2, 2),
               pads=(0, 0, 0, 0), activation: str = "NONE") -> np.ndarray:
    """MAX_POOL_2D int8: maximum of the in-bounds values, clamped to the activation range."""
    x, s_out, zp_out, pool, stride, p, out_hw = _pool_setup(x, x_qp, out_qp, pool, stride, pads, "max_pool2d")
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    xp = _pad_hw(x, p, value=QMIN)
    out = None
    for _, _, view in _window_taps(xp, pool, stride, (1, 1), out_hw):
        out = view.copy() if out is None else np.maximum(out, view)
    return _to_int8(out.astype(np.int64), act_min, act_max)


# ----------------------------------------------------------------------------------
# elementwise binary
# ----------------------------------------------------------------------------------


def _binary_setup(a, b, a_qp, b_qp, out_qp, what):
    a = _i8(a, f"{what} input 1")
    b = _i8(b, f"{what} input 2")
    s1, z1 = _per_tensor(a_qp, f"{what} input 1")
    s2, z2 = _per_tensor(b_qp, f"{what} input 2")
    so, zo = _per_tensor(out_qp, f"{what} output")
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        raise BadInputError(f"{what}: shapes {a.shape} and {b.shape} do not broadcast") from None
    return a.astype(np.int64), b.astype(np.int64), (s1, z1), (s2, z2), (so, zo)


def _add_sub(a, b, a_qp, b_qp, out_qp, activation, what, params_fn, sign):
    a, b, (s1, z1), (s2, z2), (so, zo) = _binary_setup(a, b, a_qp, b_qp, out_qp, what)
    left_shift = 20
    (m1, sh1), (m2, sh2), (mo, sho) = params_fn(s1, s2, so, left_shift)
    act_min, act_max = fp.activation_range_quantized(activation, so, zo)
    x1 = fp.wrap_int32((a - z1) << left_shift)
    x2 = fp.wrap_int32((b - z2) << left_shift)
    y1 = fp.multiply_by_quantized_multiplier_smaller_than_one_exp(x1, m1, sh1)
    y2 = fp.multiply_by_quantized_multiplier_smaller_than_one_exp(x2, m2, sh2)
    raw = fp.wrap_int32(y1 + sign * y2)
    out = fp.multiply_by_quantized_multiplier_smaller_than_one_exp(raw, mo, sho) + zo
    return _to_int8(out, act_min, act_max)


def add(a, b, a_qp: QuantParams, b_qp: QuantParams, out_qp: QuantParams, *, activation: str = "NONE") -> np.ndarray:
    """ADD int8 with numpy broadcasting: both inputs shifted left by 20, rescaled to
    twice the larger input scale, summed, rescaled to the output (TFLM ``AddFunc``)."""
    return _add_sub(a, b, a_qp, b_qp, out_qp, activation, "add", fp.add_multipliers, 1)


def sub(a, b, a_qp: QuantParams, b_qp: QuantParams, out_qp: QuantParams, *, activation: str = "NONE") -> np.ndarray:
    """SUB int8 with numpy broadcasting (as ADD; the multipliers come from float32 ratios)."""
    return _add_sub(a, b, a_qp, b_qp, out_qp, activation, "sub", fp.sub_multipliers, -1)


def mul(a, b, a_qp: QuantParams, b_qp: QuantParams, out_qp: QuantParams, *, activation: str = "NONE") -> np.ndarray:
    """MUL int8 with numpy broadcasting: zp_out + MBQM((a - zp_a) * (b - zp_b), m, s)."""
    a, b, (s1, z1), (s2, z2), (so, zo) = _binary_setup(a, b, a_qp, b_qp, out_qp, "mul")
    mult, shift = fp.mul_multiplier(s1, s2, so)
    act_min, act_max = fp.activation_range_quantized(activation, so, zo)
    out = fp.multiply_by_quantized_multiplier((a - z1) * (b - z2), mult, shift) + zo
    return _to_int8(out, act_min, act_max)


# ----------------------------------------------------------------------------------
# softmax, logistic, tanh
# ----------------------------------------------------------------------------------


def softmax(x, x_qp: QuantParams, out_qp: QuantParams, *, beta: float = 1.0) -> np.ndarray:
    """SOFTMAX int8 over the last axis; the output must be quantized with scale 1/256
    and zero point -128. gemmlowp fixed point: differences to the row maximum are
    rescaled to Q5.26, exponentiated, summed in Q12.19, and multiplied by the
    fixed-point reciprocal of the sum."""
    x = _i8(x)
    s_in, _ = _per_tensor(x_qp, "softmax input")
    s_out, zp_out = _per_tensor(out_qp, "softmax output")
    if zp_out != -128 or np.float32(s_out) != np.float32(1.0 / 256):
        raise BadInputError("int8 softmax needs output scale 1/256 and zero point -128")
    integer_bits = 5
    mult, left_shift = fp.preprocess_softmax_scaling(float(np.float32(beta)), s_in, integer_bits)
    diff_min = -fp.calculate_input_radius(integer_bits, left_shift, 31)
    xi = x.astype(np.int64)
    diff = xi - xi.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    rescaled = fp.multiply_by_quantized_multiplier_greater_than_one(diff, mult, left_shift)
    exps = fp.exp_on_negative_values(rescaled, integer_bits)
    accum = np.where(valid, fp.rounding_divide_by_pot(exps, 12), 0)  # Rescale<12>
    sum_of_exps = fp.wrap_int32(accum.sum(axis=-1, keepdims=True))
    shifted_scale, bits_over_unit = fp.get_reciprocal(sum_of_exps, 12)
    exponent = bits_over_unit + 31 - 8
    unsat = fp.rounding_divide_by_pot(fp.saturating_rounding_doubling_high_mul(shifted_scale, exps), exponent)
    out = np.where(valid, np.clip(unsat - 128, QMIN, QMAX), QMIN)
    return out.astype(np.int8)


def _logistic_tanh(x, x_qp, fn, out_shift, out_offset):
    x = _i8(x)
    s_in, zp_in = _per_tensor(x_qp, "input")
    mult, shift, radius = fp.logistic_tanh_input_params(s_in, 4)
    inp = x.astype(np.int64) - zp_in
    q4 = fp.multiply_by_quantized_multiplier(inp, mult, shift)
    q0 = fn(q4, 4)
    mid = np.clip(fp.rounding_divide_by_pot(q0, out_shift) + out_offset, QMIN, QMAX)
    out = np.where(inp <= -radius, QMIN, np.where(inp >= radius, QMAX, mid))
    return out.astype(np.int8)


def logistic(x, x_qp: QuantParams, out_qp: QuantParams) -> np.ndarray:
    """LOGISTIC int8 (TFLM): input rescaled to Q4.27, gemmlowp logistic, output with
    scale 1/256 and zero point -128 (required). Inputs beyond the radius saturate."""
    s_out, zp_out = _per_tensor(out_qp, "logistic output")
    if zp_out != -128 or np.float32(s_out) != np.float32(1.0 / 256):
        raise BadInputError("int8 logistic needs output scale 1/256 and zero point -128")
    return _logistic_tanh(x, x_qp, fp.logistic, 23, -128)


def tanh(x, x_qp: QuantParams, out_qp: QuantParams) -> np.ndarray:
    """TANH int8 (TFLM): input rescaled to Q4.27, gemmlowp tanh, output with scale
    1/128 and zero point 0 (required). Inputs beyond the radius saturate."""
    s_out, zp_out = _per_tensor(out_qp, "tanh output")
    if zp_out != 0 or np.float32(s_out) != np.float32(1.0 / 128):
        raise BadInputError("int8 tanh needs output scale 1/128 and zero point 0")
    return _logistic_tanh(x, x_qp, fp.tanh, 24, 0)


# ----------------------------------------------------------------------------------
# reductions and data movement
# ----------------------------------------------------------------------------------


def mean(x, x_qp: QuantParams, out_qp: QuantParams, *, axes, keep_dims: bool = False) -> np.ndarray:
    """MEAN int8 over ``axes`` as TFLite Micro computes it (``QuantizedMeanOrSum``, used
    whether or not the input and output quantization are equal): (sum - zp_in * n)
    times the multiplier of double(s_in) / double(s_out) folded with 1/n
    ((m << k) / n with k = floor(log2 n), capped at 32 and 31 + shift), double-rounding
    requantization, + zp_out, clamped. (Older TFLM builds truncated sum / n when the
    quantization was equal; the pinned tflite_micro does not.)
    """
    x = _i8(x)
    s_in, zp_in = _per_tensor(x_qp, "mean input")
    s_out, zp_out = _per_tensor(out_qp, "mean output")
    ax = _axes(axes, x.ndim)
    n = int(np.prod([x.shape[a] for a in ax])) if ax else 1
    total = fp.wrap_int32(x.astype(np.int64).sum(axis=ax, keepdims=keep_dims))
    if n == 0:
        return np.zeros(total.shape, dtype=np.int8)
    mult, shift = fp.requantize_multiplier(s_in, s_out)
    k = n.bit_length() - 1
    k = min(k, 32, 31 + shift)
    mult = int(fp.wrap_int32((mult << k) // n))
    shift = shift - k
    shifted = fp.wrap_int32(total - zp_in * n)
    out = fp.multiply_by_quantized_multiplier(shifted, mult, shift) + zp_out
    return _to_int8(out)


def pad(x, x_qp: QuantParams, out_qp: QuantParams, paddings, *, constant: int | None = None) -> np.ndarray:
    """PAD / PADV2 int8: pads with ``constant`` (raw int8) or, by default, with the output
    zero point. ``paddings``: one (before, after) pair per dimension, batch included."""
    x = _i8(x)
    s_in, zp_in = _per_tensor(x_qp, "pad input")
    s_out, zp_out = _per_tensor(out_qp, "pad output")
    if np.float32(s_in) != np.float32(s_out) or zp_in != zp_out:
        raise BadInputError("int8 pad needs equal input and output quantization")
    paddings = [tuple(int(v) for v in p) for p in paddings]
    if len(paddings) != x.ndim or any(v < 0 for p in paddings for v in p):
        raise BadInputError(f"bad paddings {paddings} for a rank-{x.ndim} input")
    value = zp_out if constant is None else int(constant)
    return np.pad(x, paddings, mode="constant", constant_values=np.int8(value))


def concatenation(xs: Sequence[np.ndarray], qps: Sequence[QuantParams], out_qp: QuantParams, *,
                  axis: int) -> np.ndarray:
    """CONCATENATION int8. TFLite Micro copies the raw bytes, so every input must have
    the output's scale and zero point; otherwise this raises (insert a requantize)."""
    if len(xs) != len(qps):
        raise BadInputError("concatenation needs one QuantParams per input")
    s_out, zp_out = _per_tensor(out_qp, "concatenation output")
    for i, (v, q) in enumerate(zip(xs, qps)):
        _i8(v, f"concatenation input {i}")
        s, z = _per_tensor(q, f"concatenation input {i}")
        if np.float32(s) != np.float32(s_out) or z != zp_out:
            raise BadInputError(
                f"concatenation input {i} has scale {s}, zero point {z} but the output has "
                f"{s_out}, {zp_out}; TFLite Micro needs them equal")
    return np.concatenate([np.asarray(v) for v in xs], axis=axis)


def relu(x, x_qp: QuantParams, out_qp: QuantParams) -> np.ndarray:
    """RELU int8 (TFLM ``ReluQuantized``): zp_out + MBQM(x - zp_in, s_in / s_out),
    clamped to [max(-128, zp_out), 127]."""
    x = _i8(x)
    s_in, zp_in = _per_tensor(x_qp, "relu input")
    s_out, zp_out = _per_tensor(out_qp, "relu output")
    mult, shift = fp.requantize_multiplier(s_in, s_out)
    out = zp_out + fp.multiply_by_quantized_multiplier(x.astype(np.int64) - zp_in, mult, shift)
    return _to_int8(out, max(QMIN, zp_out), QMAX)


def relu6(x, x_qp: QuantParams, out_qp: QuantParams | None = None) -> np.ndarray:
    """RELU6 int8 (TFLM ``Relu6Quantized``): clamps the raw values to
    [zp_in, round(6 / s_in) + zp_in] with no requantization; TFLite Micro ignores the
    output quantization, so ``out_qp`` (if given) must equal ``x_qp``."""
    x = _i8(x)
    s_in, zp_in = _per_tensor(x_qp, "relu6 input")
    if out_qp is not None:
        s_out, zp_out = _per_tensor(out_qp, "relu6 output")
        if np.float32(s_out) != np.float32(s_in) or zp_out != zp_in:
            raise BadInputError("int8 relu6 needs equal input and output quantization (TFLite Micro)")
    six = int(np.clip(fp.round_half_away(float(np.float32(6.0) / np.float32(s_in))) + zp_in, QMIN, QMAX))
    lo = zp_in
    v = x.astype(np.int64)
    return np.where(v > six, six, np.where(v < lo, lo, v)).astype(np.int8)


def quantize(x, out_qp: QuantParams, x_qp: QuantParams | None = None) -> np.ndarray:
    """QUANTIZE to int8.

    float input: round-half-away(float32(x) / float32(scale)) + zero point, clamped
    (per-tensor as TFLM's ``AffineQuantize``, or per-axis along ``out_qp.axis``).
    int8 input (requantize, needs ``x_qp``): MBQM(x - zp_in, s_in / s_out) + zp_out.
    """
    x = np.asarray(x)
    if x.dtype == np.int8:
        if x_qp is None:
            raise BadInputError("int8 -> int8 quantize needs the input QuantParams")
        return requantize(x, x_qp, out_qp)
    if x.dtype.kind != "f":
        raise BadInputError(f"quantize takes float32 or int8 input, got {x.dtype}")
    xf = x.astype(np.float32)
    if out_qp.is_per_tensor:
        scale = np.float32(out_qp.scale[0])
        zp = np.int64(out_qp.zero_point[0])
    else:
        ax = out_qp.axis if out_qp.axis >= 0 else out_qp.axis + xf.ndim
        shape = [1] * xf.ndim
        shape[ax] = -1
        scale = out_qp.scales.reshape(shape)
        zp = out_qp.zero_points.reshape(shape)
    r = fp.round_half_away_f32((xf / scale).astype(np.float32)).astype(np.float64)
    r = np.clip(r, -(2.0 ** 31), 2.0 ** 31 - 1).astype(np.int64)
    return _to_int8(r + zp)


def requantize(x, x_qp: QuantParams, out_qp: QuantParams) -> np.ndarray:
    """int8 -> int8 QUANTIZE (TFLM ``Requantize``): MBQM(x - zp_in, m, s) + zp_out, clamped,
    with the multiplier from double(s_in) / double(s_out)."""
    x = _i8(x)
    s_in, zp_in = _per_tensor(x_qp, "requantize input")
    s_out, zp_out = _per_tensor(out_qp, "requantize output")
    mult, shift = fp.requantize_multiplier(s_in, s_out)
    out = fp.multiply_by_quantized_multiplier(x.astype(np.int64) - zp_in, mult, shift) + zp_out
    return _to_int8(out)


def dequantize(x, x_qp: QuantParams) -> np.ndarray:
    """DEQUANTIZE int8 -> float32: float32(scale) * float32(x - zero_point)
    (per-tensor, or per-axis along ``x_qp.axis``)."""
    x = np.asarray(x)
    if x.dtype not in (np.int8, np.int16, np.int32):
        raise BadInputError(f"dequantize takes an integer input, got {x.dtype}")
    xi = x.astype(np.int64)
    if x_qp.is_per_tensor:
        return (np.float32(x_qp.scale[0]) * (xi - x_qp.zero_point[0]).astype(np.float32)).astype(np.float32)
    ax = x_qp.axis if x_qp.axis >= 0 else x_qp.axis + x.ndim
    shape = [1] * x.ndim
    shape[ax] = -1
    scale = x_qp.scales.reshape(shape)
    zp = x_qp.zero_points.reshape(shape)
    return (scale * (xi - zp).astype(np.float32)).astype(np.float32)


def reshape(x, shape) -> np.ndarray:
    """RESHAPE: the raw values are unchanged; ``shape`` is the full target shape."""
    return np.reshape(x, tuple(int(s) for s in shape))
