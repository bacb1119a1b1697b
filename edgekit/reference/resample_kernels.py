"""Resampling and transposed convolution: RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and
TRANSPOSE_CONV, float32 and int8, as TensorFlow Lite Micro's reference kernels compute
them (NHWC; TRANSPOSE_CONV's filter is ``[Cout, KH, KW, Cin]`` as TFLite stores it).

Rules, all from TFLM's ``reference_ops`` / ``reference_integer_ops``:

- RESIZE_NEAREST_NEIGHBOR picks, per output row ``y``, the input row
  ``min(f((y + offset) * scale), in - 1)`` (then ``max(0, .)`` with half-pixel centres)
  where ``scale`` is the float32 ``in / out`` (``(in - 1) / (out - 1)`` with
  ``align_corners`` and ``out > 1``), ``offset`` 0.5 with ``half_pixel_centers``, and ``f``
  rounds half away from zero with ``align_corners``, else floors. The int8 kernel is a
  byte copy: input and output share their quantization parameters.
- RESIZE_BILINEAR float32 evaluates TFLM's expression in float32 in TFLM's order. Its
  int8 kernel works in 1/1024 steps: ``scale_10 = (1024 * in + out / 2) / out``
  (integer division; ``(1024 * (in - 1) + (out - 1) / 2) / (out - 1)`` with
  ``align_corners``), source position ``y * scale_10`` (``+ scale_10 / 2 - 512`` with
  half-pixel centres), the four taps weighted in 1/2^20 and rounded half away from zero
  (``(acc + sign * 2^19) / 2^20``, C division). No requantization: input and output
  share their quantization parameters (TFLM ignores them).
- TRANSPOSE_CONV scatters every input pixel through the filter into an int32 (float)
  accumulator: ``out[b, iy*sh - pad_top + ky, ix*sw - pad_left + kx, oc] +=
  (x[b, iy, ix, ic] - zp_in) * w[oc, ky, kx, ic]`` for the positions inside the output;
  then bias, the per-channel ``MultiplyByQuantizedMultiplier`` (double rounding), the
  output zero point and the fused activation's clamp, as CONV_2D. Output rows and
  columns that no tap reaches hold the bias alone. The IR expresses the geometry as
  ``pads = (top, left, bottom, right)``: the amounts cropped from the full
  ``(H - 1) * sh + KH`` result; ``bottom``/``right`` may be negative (ONNX's
  ``output_padding``: extra rows that only get the bias).
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import QuantParams
from edgekit.reference import fixedpoint as fp
from edgekit.reference.float_kernels import apply_activation

__all__ = [
    "nearest_indices",
    "resize_nearest_neighbor",
    "resize_bilinear",
    "resize_bilinear_int8",
    "bilinear_scale_10",
    "transpose_conv",
    "transpose_conv_int8",
    "transpose_conv_output_hw",
]

F32 = np.float32


def _check_resize(x, size, align_corners, half_pixel_centers, what):
    x = np.asarray(x)
    if x.ndim != 4:
        raise BadInputError(f"{what}: expects a 4-D NHWC input, got shape {list(x.shape)}")
    oh, ow = (int(s) for s in size)
    if oh <= 0 or ow <= 0:
        raise BadInputError(f"{what}: output size must be positive, got {[oh, ow]}")
    if align_corners and half_pixel_centers:
        raise BadInputError(f"{what}: align_corners and half_pixel_centers cannot both be set")
    return x, oh, ow


def nearest_indices(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """The input index each output index reads (TFLM's ``GetNearestNeighbor``)."""
    if align_corners and out_size > 1:
        scale = F32(in_size - 1) / F32(out_size - 1)
    else:
        scale = F32(in_size) / F32(out_size)
    offset = F32(0.5) if half_pixel_centers else F32(0.0)
    pos = (np.arange(out_size, dtype=F32) + offset) * F32(scale)
    if align_corners:
        idx = np.floor(np.abs(pos) + F32(0.5)) * np.sign(pos)  # TfLiteRound: half away from zero
    else:
        idx = np.floor(pos)
    idx = np.minimum(idx.astype(np.int64), in_size - 1)
    if half_pixel_centers:
        idx = np.maximum(idx, 0)
    return idx


def resize_nearest_neighbor(x, size, *, align_corners: bool = False, half_pixel_centers: bool = False) -> np.ndarray:
    """Any element type: a gather of whole pixels."""
    x, oh, ow = _check_resize(x, size, align_corners, half_pixel_centers, "RESIZE_NEAREST_NEIGHBOR")
    iy = nearest_indices(x.shape[1], oh, align_corners, half_pixel_centers)
    ix = nearest_indices(x.shape[2], ow, align_corners, half_pixel_centers)
    return np.ascontiguousarray(x[:, iy][:, :, ix])


def _float_scale(in_size: int, out_size: int, align_corners: bool):
    if align_corners and out_size > 1:
        return F32(in_size - 1) / F32(out_size - 1)
    return F32(in_size) / F32(out_size)


def _float_positions(out_size, scale, half_pixel_centers, in_size):
    v = np.arange(out_size, dtype=F32)
    pos = (v + F32(0.5)) * scale - F32(0.5) if half_pixel_centers else v * scale
    pos = pos.astype(F32)
    lo = np.maximum(np.floor(pos).astype(np.int64), 0)
    hi = np.minimum(np.ceil(pos).astype(np.int64), in_size - 1)
    return pos, lo, hi


def resize_bilinear(x, size, *, align_corners: bool = False, half_pixel_centers: bool = False) -> np.ndarray:
    """float32, TFLM's ``reference_ops::ResizeBilinear``."""
    x, oh, ow = _check_resize(x, size, align_corners, half_pixel_centers, "RESIZE_BILINEAR")
    x = x.astype(F32, copy=False)
    _, h, w, _ = x.shape
    py, y0, y1 = _float_positions(oh, _float_scale(h, oh, align_corners), half_pixel_centers, h)
    px, x0, x1 = _float_positions(ow, _float_scale(w, ow, align_corners), half_pixel_centers, w)
    dy = (py - y0.astype(F32)).astype(F32)[None, :, None, None]
    dx = (px - x0.astype(F32)).astype(F32)[None, None, :, None]
    one = F32(1)
    a = x[:, y0][:, :, x0]
    b = x[:, y1][:, :, x0]
    c = x[:, y0][:, :, x1]
    d = x[:, y1][:, :, x1]
    # The C++ expression, term by term, left to right in float32.
    out = a * (one - dy) * (one - dx)
    out = out + b * dy * (one - dx)
    out = out + c * (one - dy) * dx
    out = out + d * dy * dx
    return np.ascontiguousarray(out.astype(F32))


def bilinear_scale_10(in_size: int, out_size: int, align_corners: bool) -> int:
    """TFLM's 10-bit fixed-point ratio of input to output size."""
    if align_corners and out_size > 1:
        return (1024 * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    return (1024 * in_size + out_size // 2) // out_size


def _c_div(a: np.ndarray, b: int) -> np.ndarray:
    """C integer division (truncates toward zero)."""
    return np.sign(a) * (np.abs(a) // b)


def _int_positions(out_size, scale_10, half_pixel_centers, in_size):
    v = np.arange(out_size, dtype=np.int64)
    pos = v * scale_10 + scale_10 // 2 - 512 if half_pixel_centers else v * scale_10
    lo = np.maximum(_c_div(pos, 1024), 0)
    hi = np.minimum(_c_div(pos + 1023, 1024), in_size - 1)
    return pos, lo, hi


def resize_bilinear_int8(x, size, x_qp: QuantParams | None = None, out_qp: QuantParams | None = None, *,
                         align_corners: bool = False, half_pixel_centers: bool = False) -> np.ndarray:
    """int8, TFLM's ``reference_ops::ResizeBilinearInteger`` (double rounding build)."""
    x, oh, ow = _check_resize(x, size, align_corners, half_pixel_centers, "RESIZE_BILINEAR")
    if x.dtype != np.int8:
        raise BadInputError(f"RESIZE_BILINEAR: expected int8 input, got {x.dtype}")
    same_quant(x_qp, out_qp, "RESIZE_BILINEAR")
    _, h, w, _ = x.shape
    py, y0, y1 = _int_positions(oh, bilinear_scale_10(h, oh, align_corners), half_pixel_centers, h)
    px, x0, x1 = _int_positions(ow, bilinear_scale_10(w, ow, align_corners), half_pixel_centers, w)
    fy = (py - 1024 * y0)[None, :, None, None]
    fx = (px - 1024 * x0)[None, None, :, None]
    xi = x.astype(np.int64)
    acc = (xi[:, y0][:, :, x0] * (1024 - fy) * (1024 - fx) + xi[:, y1][:, :, x0] * fy * (1024 - fx)
           + xi[:, y0][:, :, x1] * (1024 - fy) * fx + xi[:, y1][:, :, x1] * fy * fx)
    rnd = np.where(acc > 0, 1 << 19, -(1 << 19))
    out = _c_div(acc + rnd, 1 << 20)
    # static_cast<int8_t>: the weights sum to at most 2^20, so the value stays in range
    return np.ascontiguousarray(out.astype(np.int8))


def same_quant(x_qp, out_qp, what):
    if x_qp is None or out_qp is None:
        return
    if (F32(x_qp.scale[0]) != F32(out_qp.scale[0]) or int(x_qp.zero_point[0]) != int(out_qp.zero_point[0])):
        raise BadInputError(f"{what}: int8 input and output must share quantization parameters "
                            f"(TFLite Micro copies raw values), got scale/zero point "
                            f"{float(x_qp.scale[0])}/{int(x_qp.zero_point[0])} and "
                            f"{float(out_qp.scale[0])}/{int(out_qp.zero_point[0])}")


# ------------------------------------------------------------------------------ transposed conv


def transpose_conv_output_hw(in_hw, kernel_hw, strides, pads) -> tuple[int, int]:
    top, left, bottom, right = (int(p) for p in pads)
    oh = (in_hw[0] - 1) * strides[0] + kernel_hw[0] - top - bottom
    ow = (in_hw[1] - 1) * strides[1] + kernel_hw[1] - left - right
    return oh, ow


def _check_tconv(x, w, bias, strides, pads, what):
    x, w = np.asarray(x), np.asarray(w)
    if x.ndim != 4 or w.ndim != 4:
        raise BadInputError(f"{what}: expects 4-D input and filter, got {list(x.shape)} and {list(w.shape)}")
    if w.shape[3] != x.shape[3]:
        raise BadInputError(f"{what}: filter has {w.shape[3]} input channels, input has {x.shape[3]}")
    if bias is not None and np.asarray(bias).shape != (w.shape[0],):
        raise BadInputError(f"{what}: bias shape {list(np.asarray(bias).shape)} does not match "
                            f"{w.shape[0]} output channels")
    if min(strides) < 1:
        raise BadInputError(f"{what}: strides must be positive, got {list(strides)}")
    if pads[0] < 0 or pads[1] < 0:
        raise BadInputError(f"{what}: top/left pads must be >= 0, got {list(pads)}")
    oh, ow = transpose_conv_output_hw(x.shape[1:3], w.shape[1:3], strides, pads)
    if oh <= 0 or ow <= 0:
        raise BadInputError(f"{what}: pads {list(pads)} leave no output for input {list(x.shape)}")
    return x, w, oh, ow


def _scatter(xv: np.ndarray, wv: np.ndarray, strides, pads, oh: int, ow: int, dtype) -> np.ndarray:
    """sum over taps of x[b, iy, ix, :] . w[oc, ky, kx, :] into out[b, iy*sh - top + ky, ...]."""
    n, h, w_, _ = xv.shape
    cout, kh, kw, _ = wv.shape
    sh, sw = strides
    top, left = pads[0], pads[1]
    full_h, full_w = (h - 1) * sh + kh, (w_ - 1) * sw + kw
    acc = np.zeros((n, max(full_h, top + oh), max(full_w, left + ow), cout), dtype)
    for ky in range(kh):
        for kx in range(kw):
            contrib = xv @ wv[:, ky, kx, :].T.astype(dtype)  # [n, h, w, cout]
            acc[:, ky:ky + (h - 1) * sh + 1:sh, kx:kx + (w_ - 1) * sw + 1:sw, :] += contrib
    return acc[:, top:top + oh, left:left + ow, :]


def transpose_conv(x, w, bias=None, *, strides=(1, 1), pads=(0, 0, 0, 0), activation: str = "NONE") -> np.ndarray:
    """float32 (accumulated in float64, then rounded once)."""
    x, w, oh, ow = _check_tconv(x, w, bias, strides, pads, "TRANSPOSE_CONV")
    acc = _scatter(x.astype(np.float64), w.astype(np.float64), strides, pads, oh, ow, np.float64)
    if bias is not None:
        acc = acc + np.asarray(bias, np.float64)
    return np.ascontiguousarray(apply_activation(acc.astype(F32), activation))


def transpose_conv_int8(x, w, bias, x_qp: QuantParams, w_qp: QuantParams, out_qp: QuantParams, *,
                        strides=(1, 1), pads=(0, 0, 0, 0), activation: str = "NONE") -> np.ndarray:
    """int8 per-channel, TFLM's ``reference_integer_ops::TransposeConv``."""
    what = "TRANSPOSE_CONV"
    x, w, oh, ow = _check_tconv(x, w, bias, strides, pads, what)
    if x.dtype != np.int8 or w.dtype != np.int8:
        raise BadInputError(f"{what}: expected int8 input and filter, got {x.dtype} and {w.dtype}")
    if x_qp is None or w_qp is None or out_qp is None:
        raise BadInputError(f"{what}: int8 input, filter and output need quantization parameters")
    if any(int(z) != 0 for z in w_qp.zero_point):
        raise BadInputError(f"{what}: int8 filters need zero points of 0")
    cout = w.shape[0]
    s_in, zp_in = float(x_qp.scale[0]), int(x_qp.zero_point[0])
    s_out, zp_out = float(out_qp.scale[0]), int(out_qp.zero_point[0])
    fscales = np.full(cout, w_qp.scale[0], np.float32) if len(w_qp.scale) == 1 else np.asarray(w_qp.scale, np.float32)
    if fscales.size != cout:
        raise BadInputError(f"{what}: filter has {fscales.size} scales for {cout} output channels")
    mult, shift = fp.conv_per_channel_multipliers(s_in, fscales, s_out)
    xv = x.astype(np.int64) - zp_in
    # float64 sums of integers are exact below 2^53; the C++ int32 accumulator wraps.
    acc = _scatter(xv.astype(np.float64), w.astype(np.float64), strides, pads, oh, ow, np.float64)
    acc = fp.wrap_int32(acc.astype(np.int64))
    if bias is not None:
        acc = fp.wrap_int32(acc + np.asarray(bias, np.int64))
    out = fp.multiply_by_quantized_multiplier(acc, np.asarray(mult), np.asarray(shift)) + zp_out
    lo, hi = fp.activation_range_quantized(activation, s_out, zp_out)
    return np.ascontiguousarray(np.clip(out, lo, hi).astype(np.int8))
