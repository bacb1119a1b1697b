"""float32 reference kernels, and LiteRT's hybrid (dynamic-range) kernels.

Conventions shared with ``int8_kernels``:

* arrays are batch-first; images are NHWC;
* weights use TFLite layouts: Conv2D ``[Cout, KH, KW, Cin]``, DepthwiseConv2D
  ``[1, KH, KW, Cin * depth_multiplier]``, FullyConnected ``[Cout, K]``;
* padding is explicit, ``pads = (top, left, bottom, right)``; ``same_pads`` computes
  TFLite's SAME padding;
* fused activations are named ``"NONE"``, ``"RELU"``, ``"RELU6"``, ``"RELU_N1_TO_1"``.

Dot products are accumulated in float64 (exact enough to be within a few ulps of the
true sum) and rounded to float32 before the bias is added in float32, as TFLite adds
the bias to the float32 accumulator. Results agree with LiteRT's reference and
XNNPACK kernels to ~1e-6 relative; they are not bit-identical to either, whose
float32 summation orders differ from each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import QuantParams
from edgekit.reference.fixedpoint import round_half_away_f32

__all__ = [
    "same_pads",
    "output_hw",
    "apply_activation",
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
    "relu_n1_to_1",
    "reshape",
    "transpose",
    "batch_norm",
    "conv2d_hybrid",
    "fully_connected_hybrid",
    "symmetric_quantize_rows",
    "asymmetric_quantize_rows",
]

Pads = tuple[int, int, int, int]


# ----------------------------------------------------------------------------------
# geometry helpers (shared with int8_kernels)
# ----------------------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def _pads(pads) -> Pads:
    if pads is None:
        return 0, 0, 0, 0
    t, l, b, r = (int(p) for p in pads)
    if min(t, l, b, r) < 0:
        raise BadInputError(f"negative padding {pads!r}")
    return t, l, b, r


def same_pads(in_hw, kernel_hw, stride, dilation=(1, 1)) -> Pads:
    """TFLite SAME padding (defined once, in ``edgekit.ir.shapes.same_pads``)."""
    from edgekit.ir.shapes import same_pads as _same_pads

    return _same_pads(_pair(in_hw), _pair(kernel_hw), _pair(stride), _pair(dilation))


def output_hw(in_hw, kernel_hw, stride, dilation=(1, 1), pads="VALID") -> tuple[int, int]:
    """Output height/width of a window operation. ``pads`` is an explicit
    (top, left, bottom, right) tuple or ``"SAME"`` / ``"VALID"``."""
    (h, w), (kh, kw), (sh, sw), (dh, dw) = _pair(in_hw), _pair(kernel_hw), _pair(stride), _pair(dilation)
    if isinstance(pads, str):
        mode = pads.upper()
        if mode == "SAME":
            return (h + sh - 1) // sh, (w + sw - 1) // sw
        if mode == "VALID":
            pads = (0, 0, 0, 0)
        else:
            raise BadInputError(f"unknown padding {pads!r}")
    t, l, b, r = _pads(pads)
    oh = (h + t + b - ((kh - 1) * dh + 1)) // sh + 1
    ow = (w + l + r - ((kw - 1) * dw + 1)) // sw + 1
    if oh <= 0 or ow <= 0:
        raise BadInputError(f"window {kh}x{kw} does not fit input {h}x{w} with pads {pads}")
    return oh, ow


def _resolve_pads(pads, in_hw, kernel_hw, stride, dilation) -> Pads:
    if isinstance(pads, str):
        mode = pads.upper()
        if mode == "SAME":
            return same_pads(in_hw, kernel_hw, stride, dilation)
        if mode == "VALID":
            return 0, 0, 0, 0
        raise BadInputError(f"unknown padding {pads!r}")
    return _pads(pads)


def _window_taps(xp, kernel_hw, stride, dilation, out_hw):
    """Yield (ky, kx, view[N, OH, OW, C]) for each kernel tap of padded ``xp``."""
    kh, kw = kernel_hw
    sh, sw = stride
    dh, dw = dilation
    oh, ow = out_hw
    for ky in range(kh):
        y0 = ky * dh
        for kx in range(kw):
            x0 = kx * dw
            yield ky, kx, xp[:, y0:y0 + (oh - 1) * sh + 1:sh, x0:x0 + (ow - 1) * sw + 1:sw, :]


def _pad_hw(x, pads: Pads, value=0):
    t, l, b, r = pads
    if t == l == b == r == 0:
        return x
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), mode="constant", constant_values=value)


def _check_nhwc(x, name="input"):
    if x.ndim != 4:
        raise BadInputError(f"{name} must be NHWC (4-D), got shape {x.shape}")


_CHUNK_BYTES = 64 << 20  # bound on the im2col patch matrix built at once


def _conv_accumulate(xp, w, stride, dilation, out_hw, dtype=np.float64):
    """Convolution sums by im2col + matmul, in chunks of the batch.

    ``xp`` padded [N,H,W,Cin] (already holding the values to multiply), ``w``
    [Cout,KH,KW,Cin]; returns [N,OH,OW,Cout] in ``dtype``.
    """
    n = xp.shape[0]
    cout, kh, kw, cin = w.shape
    oh, ow = out_hw
    k = kh * kw * cin
    wm = np.ascontiguousarray(w.reshape(cout, k).astype(dtype).T)  # [K, Cout], (ky, kx, c) order
    xp = xp.astype(dtype, copy=False)
    out = np.empty((n, oh, ow, cout), dtype=dtype)
    per_item = max(1, oh * ow * k * np.dtype(dtype).itemsize)
    chunk = max(1, _CHUNK_BYTES // per_item)
    for s0 in range(0, n, chunk):
        part = xp[s0:s0 + chunk]
        taps = [view for _, _, view in _window_taps(part, (kh, kw), stride, dilation, out_hw)]
        if len(taps) == 1:
            patches = np.ascontiguousarray(taps[0]).reshape(-1, k)
        else:
            patches = np.stack(taps, axis=3).reshape(-1, k)
        out[s0:s0 + part.shape[0]] = (patches @ wm).reshape(part.shape[0], oh, ow, cout)
    return out


def _depthwise_accumulate(xp, w, depth_multiplier, stride, dilation, out_hw, dtype=np.float64):
    """Depthwise sums, one multiply-add per kernel tap; ``xp`` padded [N,H,W,Cin],
    ``w`` [1,KH,KW,Cin*M]; output channel c*M + m reads input channel c."""
    _, kh, kw, cout = w.shape
    xp = xp.astype(dtype, copy=False)
    if depth_multiplier != 1:
        xp = np.repeat(xp, depth_multiplier, axis=3)
    n = xp.shape[0]
    oh, ow = out_hw
    acc = np.zeros((n, oh, ow, cout), dtype=dtype)
    w = w.astype(dtype, copy=False)
    chunk = max(1, (1 << 18) // max(1, oh * ow * cout))  # keep the working set in cache
    for s0 in range(0, n, chunk):
        a = acc[s0:s0 + chunk]
        tmp = np.empty_like(a)
        for ky, kx, view in _window_taps(xp[s0:s0 + chunk], (kh, kw), stride, dilation, out_hw):
            np.multiply(view, w[0, ky, kx, :], out=tmp)
            a += tmp
    return acc


def apply_activation(x, activation: str | None):
    """Clamp float32 ``x`` for a fused activation (TFLite ``CalculateActivationRange``)."""
    act = (activation or "NONE").upper()
    if act == "NONE":
        return x
    if act == "RELU":
        return np.maximum(x, np.float32(0))
    if act == "RELU6":
        return np.minimum(np.maximum(x, np.float32(0)), np.float32(6))
    if act in ("RELU_N1_TO_1", "RELU1"):
        return np.minimum(np.maximum(x, np.float32(-1)), np.float32(1))
    raise BadInputError(f"unknown fused activation {activation!r}")


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _finish(acc, bias, activation):
    out = acc.astype(np.float32)
    if bias is not None:
        out = out + _f32(bias)
    return apply_activation(out, activation).astype(np.float32, copy=False)


# ----------------------------------------------------------------------------------
# float32 kernels
# ----------------------------------------------------------------------------------


def conv2d(x, w, bias=None, *, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1),
           activation: str = "NONE") -> np.ndarray:
    """CONV_2D float32. ``x`` [N,H,W,Cin], ``w`` [Cout,KH,KW,Cin], ``bias`` [Cout]."""
    x = _f32(x)
    w = _f32(w)
    _check_nhwc(x)
    if w.ndim != 4 or w.shape[3] != x.shape[3]:
        raise BadInputError(f"filter shape {w.shape} does not match input {x.shape}")
    stride, dilation = _pair(stride), _pair(dilation)
    kh, kw = w.shape[1:3]
    p = _resolve_pads(pads, x.shape[1:3], (kh, kw), stride, dilation)
    out_hw = output_hw(x.shape[1:3], (kh, kw), stride, dilation, p)
    acc = _conv_accumulate(_pad_hw(x, p), w, stride, dilation, out_hw)
    return _finish(acc, bias, activation)


def depthwise_conv2d(x, w, bias=None, *, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1),
                     depth_multiplier: int = 1, activation: str = "NONE") -> np.ndarray:
    """DEPTHWISE_CONV_2D float32. ``w`` [1,KH,KW,Cin*depth_multiplier]."""
    x = _f32(x)
    w = _f32(w)
    _check_nhwc(x)
    if w.ndim != 4 or w.shape[0] != 1 or w.shape[3] != x.shape[3] * depth_multiplier:
        raise BadInputError(f"depthwise filter shape {w.shape} does not match input {x.shape} "
                            f"and depth_multiplier {depth_multiplier}")
    stride, dilation = _pair(stride), _pair(dilation)
    kh, kw = w.shape[1:3]
    p = _resolve_pads(pads, x.shape[1:3], (kh, kw), stride, dilation)
    out_hw = output_hw(x.shape[1:3], (kh, kw), stride, dilation, p)
    acc = _depthwise_accumulate(_pad_hw(x, p), w, depth_multiplier, stride, dilation, out_hw)
    return _finish(acc, bias, activation)


def _fc_shapes(x, w, keep_num_dims):
    k = w.shape[1]
    if x.size % k:
        raise BadInputError(f"input of shape {x.shape} cannot be flattened to rows of {k}")
    if keep_num_dims:
        if x.shape[-1] != k:
            raise BadInputError(f"keep_num_dims needs the last input dim {x.shape[-1]} == {k}")
        out_shape = tuple(x.shape[:-1]) + (w.shape[0],)
    else:
        out_shape = (x.size // k, w.shape[0])
    return x.reshape(-1, k), out_shape


def fully_connected(x, w, bias=None, *, activation: str = "NONE", keep_num_dims: bool = False) -> np.ndarray:
    """FULLY_CONNECTED float32. ``w`` [Cout, K]; ``x`` is flattened to [-1, K]."""
    x = _f32(x)
    w = _f32(w)
    x2, out_shape = _fc_shapes(x, w, keep_num_dims)
    acc = x2.astype(np.float64) @ w.astype(np.float64).T
    return _finish(acc, bias, activation).reshape(out_shape)


def average_pool2d(x, *, pool=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0), activation: str = "NONE") -> np.ndarray:
    """AVERAGE_POOL_2D float32: the mean over the in-bounds elements of each window."""
    x = _f32(x)
    _check_nhwc(x)
    pool, stride = _pair(pool), _pair(stride)
    p = _resolve_pads(pads, x.shape[1:3], pool, stride, (1, 1))
    out_hw = output_hw(x.shape[1:3], pool, stride, (1, 1), p)
    xp = _pad_hw(x.astype(np.float64), p)
    ones = _pad_hw(np.ones((1,) + x.shape[1:3] + (1,)), p)
    total = 0.0
    count = 0.0
    for _, _, view in _window_taps(xp, pool, stride, (1, 1), out_hw):
        total = total + view
    for _, _, view in _window_taps(ones, pool, stride, (1, 1), out_hw):
        count = count + view
    out = (total.astype(np.float32) / count.astype(np.float32)).astype(np.float32)
    return apply_activation(out, activation)


def max_pool2d(x, *, pool=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0), activation: str = "NONE") -> np.ndarray:
    """MAX_POOL_2D float32 over the in-bounds elements of each window."""
    x = _f32(x)
    _check_nhwc(x)
    pool, stride = _pair(pool), _pair(stride)
    p = _resolve_pads(pads, x.shape[1:3], pool, stride, (1, 1))
    out_hw = output_hw(x.shape[1:3], pool, stride, (1, 1), p)
    xp = _pad_hw(x, p, value=-np.inf)
    out = None
    for _, _, view in _window_taps(xp, pool, stride, (1, 1), out_hw):
        out = view.copy() if out is None else np.maximum(out, view)
    return apply_activation(out.astype(np.float32), activation)


def add(a, b, *, activation: str = "NONE") -> np.ndarray:
    """ADD float32 with numpy broadcasting."""
    return apply_activation(_f32(a) + _f32(b), activation)


def sub(a, b, *, activation: str = "NONE") -> np.ndarray:
    """SUB float32 with numpy broadcasting."""
    return apply_activation(_f32(a) - _f32(b), activation)


def mul(a, b, *, activation: str = "NONE") -> np.ndarray:
    """MUL float32 with numpy broadcasting."""
    return apply_activation(_f32(a) * _f32(b), activation)


def softmax(x, *, beta: float = 1.0, axis: int = -1) -> np.ndarray:
    """SOFTMAX float32 over the last axis: exp((x - max) * beta) / sum."""
    x = _f32(x)
    d = (x - x.max(axis=axis, keepdims=True)).astype(np.float64) * float(np.float32(beta))
    e = np.exp(d)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def logistic(x) -> np.ndarray:
    """LOGISTIC float32 with TFLite's cut-offs (1 above 16.619..., exp(x) below -9)."""
    x = _f32(x)
    xd = x.astype(np.float64)
    with np.errstate(over="ignore"):
        mid = 1.0 / (1.0 + np.exp(-xd))
    out = np.where(x > np.float32(16.619047164916992188), 1.0, np.where(x < np.float32(-9.0), np.exp(xd), mid))
    return out.astype(np.float32)


def tanh(x) -> np.ndarray:
    """TANH float32."""
    return np.tanh(_f32(x).astype(np.float64)).astype(np.float32)


def _axes(axes, ndim) -> tuple[int, ...]:
    if isinstance(axes, (int, np.integer)):
        axes = (int(axes),)
    res = []
    for a in axes:
        a = int(a)
        a = a + ndim if a < 0 else a
        if not 0 <= a < ndim:
            raise BadInputError(f"axis {a} out of range for rank {ndim}")
        if a not in res:
            res.append(a)
    return tuple(sorted(res))


def mean(x, *, axes, keep_dims: bool = False) -> np.ndarray:
    """MEAN float32 over ``axes`` (sum in float64, divided by the element count)."""
    x = _f32(x)
    ax = _axes(axes, x.ndim)
    n = int(np.prod([x.shape[a] for a in ax])) if ax else 1
    s = x.astype(np.float64).sum(axis=ax, keepdims=keep_dims)
    return (s.astype(np.float32) / np.float32(n)).astype(np.float32)


def pad(x, paddings, *, constant: float = 0.0) -> np.ndarray:
    """PAD / PADV2 float32. ``paddings``: one (before, after) pair per dimension."""
    x = _f32(x)
    paddings = [tuple(int(v) for v in p) for p in paddings]
    if len(paddings) != x.ndim:
        raise BadInputError(f"{len(paddings)} padding pairs for a rank-{x.ndim} input")
    return np.pad(x, paddings, mode="constant", constant_values=np.float32(constant))


def concatenation(xs: Sequence[np.ndarray], *, axis: int, activation: str = "NONE") -> np.ndarray:
    """CONCATENATION float32."""
    return apply_activation(np.concatenate([_f32(v) for v in xs], axis=axis), activation)


def relu(x) -> np.ndarray:
    return apply_activation(_f32(x), "RELU")


def relu6(x) -> np.ndarray:
    return apply_activation(_f32(x), "RELU6")


def relu_n1_to_1(x) -> np.ndarray:
    return apply_activation(_f32(x), "RELU_N1_TO_1")


def reshape(x, shape) -> np.ndarray:
    """RESHAPE: ``shape`` is the full target shape (batch dimension included, -1 allowed)."""
    return np.reshape(x, tuple(int(s) for s in shape))


def transpose(x, perm) -> np.ndarray:
    """TRANSPOSE with permutation ``perm`` over all dimensions (batch included)."""
    return np.ascontiguousarray(np.transpose(x, tuple(int(p) for p in perm)))


def batch_norm(x, mean, variance, gamma=None, beta=None, *, epsilon: float = 1e-3, axis: int = -1) -> np.ndarray:
    """Inference batch normalization along ``axis`` (channels last by default):
    (x - mean) / sqrt(variance + epsilon) * gamma + beta, folded into one float32
    multiply and add as a converter folds it: scale = gamma / sqrt(var + eps),
    offset = beta - mean * scale."""
    x = _f32(x)
    c = x.shape[axis]
    mean = np.broadcast_to(np.asarray(mean, np.float64), (c,))
    var = np.broadcast_to(np.asarray(variance, np.float64), (c,))
    g = np.ones(c) if gamma is None else np.broadcast_to(np.asarray(gamma, np.float64), (c,))
    b = np.zeros(c) if beta is None else np.broadcast_to(np.asarray(beta, np.float64), (c,))
    scale = (g / np.sqrt(var + float(epsilon))).astype(np.float32)
    offset = (b - mean * scale.astype(np.float64)).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = c
    return (x * scale.reshape(shape) + offset.reshape(shape)).astype(np.float32)


# ----------------------------------------------------------------------------------
# hybrid (dynamic-range) kernels: float input, int8 weights, float output
# ----------------------------------------------------------------------------------


def symmetric_quantize_rows(rows) -> tuple[np.ndarray, np.ndarray]:
    """TFLite ``SymmetricQuantizeFloats`` per row: (int8 values, float32 scaling factors).

    range = max(|min|, |max|); factor = range / 127; q = round(v * (127 / range))
    clamped to [-127, 127]; an all-zero row gives q = 0 and factor 1.
    """
    rows = _f32(rows)
    rng = np.maximum(np.abs(rows.min(axis=1)), np.abs(rows.max(axis=1))).astype(np.float32)
    zero = rng == 0
    safe = np.where(zero, np.float32(1), rng)
    factor = np.where(zero, np.float32(1), (safe / np.float32(127)).astype(np.float32)).astype(np.float32)
    inv = (np.float32(127) / safe).astype(np.float32)
    prod = (rows * inv[:, None]).astype(np.float32)
    q = np.clip(round_half_away_f32(prod), -127, 127)
    q = np.where(zero[:, None], 0, q)
    return q.astype(np.int8), factor


def asymmetric_quantize_rows(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TFLite ``AsymmetricQuantizeFloats`` per row: (int8 values, float32 scaling
    factors, int32 offsets), with the range widened to include 0 and the zero point
    chosen and nudged in double as TFLite does."""
    rows = _f32(rows)
    n = rows.shape[0]
    q = np.zeros(rows.shape, dtype=np.int8)
    factors = np.ones(n, dtype=np.float32)
    offsets = np.zeros(n, dtype=np.int32)
    qmin, qmax = -128.0, 127.0
    for i in range(n):
        rmin = min(0.0, float(rows[i].min()))
        rmax = max(0.0, float(rows[i].max()))
        if rmin == rmax:
            continue
        scale = (rmax - rmin) / (qmax - qmin)
        zp_from_min = qmin - rmin / scale
        zp_from_max = qmax - rmax / scale
        err_min = abs(qmin) + abs(rmin / scale)
        err_max = abs(qmax) + abs(rmax / scale)
        zp_double = zp_from_min if err_min < err_max else zp_from_max
        if zp_double <= qmin:
            zp = -128
        elif zp_double >= qmax:
            zp = 127
        else:
            zp = int(round_half_away_f32(zp_double))
        factors[i] = np.float32(scale)
        offsets[i] = zp
        inv = np.float32(1.0) / factors[i]
        vals = (np.float32(zp) + (rows[i] * inv).astype(np.float32)).astype(np.float32)
        q[i] = np.clip(round_half_away_f32(vals), -128, 127).astype(np.int8)
    return q, factors, offsets


def _hybrid_filter_scales(w_qp: QuantParams, n_channels: int, axis: int) -> tuple[np.ndarray, bool]:
    scales = w_qp.scales
    if w_qp.is_per_tensor or len(scales) == 1:
        return np.full(n_channels, scales[0], dtype=np.float32), False
    if w_qp.axis != axis or len(scales) != n_channels:
        raise BadInputError(f"per-channel weight scales must run along axis {axis} ({n_channels} channels)")
    per_channel = bool(np.any(scales != scales[0]))
    return scales.astype(np.float32), per_channel


def conv2d_hybrid(x, w, w_qp: QuantParams, bias=None, *, stride=(1, 1), pads=(0, 0, 0, 0),
                  dilation=(1, 1), activation: str = "NONE") -> np.ndarray:
    """CONV_2D with float input, int8 filter and float output, as LiteRT computes it.

    Per-tensor filter scale (or per-channel scales that are all equal): each batch
    item is quantized symmetrically (``symmetric_quantize_rows``), the int8 products
    are accumulated in int32, and out = float(acc) * (input_factor * filter_scale)
    + bias. Per-channel scales that differ: each batch item is quantized
    asymmetrically and out = float(acc - row_sum * offset) * (filter_scale[c] *
    input_factor) + bias. Padded positions contribute nothing in both cases.
    """
    x = _f32(x)
    _check_nhwc(x)
    w = np.asarray(w)
    if w.dtype != np.int8 or w.ndim != 4 or w.shape[3] != x.shape[3]:
        raise BadInputError(f"hybrid conv needs an int8 [Cout,KH,KW,Cin] filter matching {x.shape}")
    if any(z != 0 for z in w_qp.zero_point):
        raise BadInputError("hybrid conv needs symmetric (zero point 0) filter quantization")
    stride, dilation = _pair(stride), _pair(dilation)
    cout, kh, kw, _ = w.shape
    p = _resolve_pads(pads, x.shape[1:3], (kh, kw), stride, dilation)
    out_hw = output_hw(x.shape[1:3], (kh, kw), stride, dilation, p)
    n = x.shape[0]
    fscales, per_channel = _hybrid_filter_scales(w_qp, cout, 0)
    rows = x.reshape(n, -1)
    if per_channel:
        q, factors, offsets = asymmetric_quantize_rows(rows)
        xq = q.astype(np.float64).reshape(x.shape) - offsets.astype(np.float64)[:, None, None, None]
        acc = _conv_accumulate(_pad_hw(xq, p), w.astype(np.float64), stride, dilation, out_hw)
        scale = (fscales[None, :] * factors[:, None]).astype(np.float32)  # [N, Cout]
    else:
        q, factors = symmetric_quantize_rows(rows)
        factors = (factors * np.float32(fscales[0])).astype(np.float32)
        xq = q.astype(np.float64).reshape(x.shape)
        acc = _conv_accumulate(_pad_hw(xq, p), w.astype(np.float64), stride, dilation, out_hw)
        scale = np.broadcast_to(factors[:, None], (n, cout))
    out = (acc.astype(np.float32) * scale[:, None, None, :].astype(np.float32)).astype(np.float32)
    if bias is not None:
        out = out + _f32(bias)
    return apply_activation(out, activation).astype(np.float32, copy=False)


def fully_connected_hybrid(x, w, w_qp: QuantParams, bias=None, *, activation: str = "NONE",
                           keep_num_dims: bool = False, asymmetric_quantize_inputs: bool = False) -> np.ndarray:
    """FULLY_CONNECTED with float input, int8 weights and float output, as LiteRT.

    Each row of the input flattened to [-1, K] is quantized on the fly
    (symmetric, or asymmetric when ``asymmetric_quantize_inputs``); out = bias +
    float(acc) * scale with scale = row_factor * filter_scale (per-channel scales
    need ``asymmetric_quantize_inputs``, as in TFLite's portable kernel).
    """
    x = _f32(x)
    w = np.asarray(w)
    if w.dtype != np.int8 or w.ndim != 2:
        raise BadInputError("hybrid fully_connected needs int8 [Cout, K] weights")
    if any(z != 0 for z in w_qp.zero_point):
        raise BadInputError("hybrid fully_connected needs symmetric (zero point 0) weights")
    x2, out_shape = _fc_shapes(x, w, keep_num_dims)
    cout = w.shape[0]
    per_channel = not (w_qp.is_per_tensor or len(w_qp.scale) == 1)
    wf = w.astype(np.float64)
    if asymmetric_quantize_inputs:
        q, factors, offsets = asymmetric_quantize_rows(x2)
        dot = q.astype(np.float64) @ wf.T
        row_sums = wf.sum(axis=1)
        acc = dot - offsets.astype(np.float64)[:, None] * row_sums[None, :]
        if per_channel:
            fscales, _ = _hybrid_filter_scales(w_qp, cout, 0)
            scale = (factors[:, None] * fscales[None, :]).astype(np.float32)
        else:
            scale = np.broadcast_to((factors * np.float32(w_qp.scale[0])).astype(np.float32)[:, None],
                                    acc.shape)
    else:
        if per_channel:
            raise BadInputError("per-channel hybrid fully_connected needs asymmetric_quantize_inputs")
        q, factors = symmetric_quantize_rows(x2)
        acc = q.astype(np.float64) @ wf.T
        scale = np.broadcast_to((factors * np.float32(w_qp.scale[0])).astype(np.float32)[:, None], acc.shape)
    prod = (acc.astype(np.float32) * scale).astype(np.float32)
    out = prod if bias is None else (_f32(bias)[None, :] + prod).astype(np.float32)
    return apply_activation(out, activation).astype(np.float32, copy=False).reshape(out_shape)
