"""Kernel cases for runtimes/micro: random operands, the C parameters derived from them
as edgekit's numpy kernels derive them (edgekit.reference.fixedpoint), and the bytes
edgekit.reference.int8_kernels produces (the definition).

Each op has a sampler that draws one case through a ``Draw``: ``HypothesisDraw`` for
the property tests on the host, ``RngDraw`` (seeded numpy) for the fixed vectors the
QEMU tests compile in. Draws are named, so a QEMU case can pin a few of them
(``RngDraw(rng, kh=1, kw=1)``) to reach a given fast path.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from edgekit.ir.dtypes import QuantParams
from edgekit.reference import fixedpoint as fp
from edgekit.reference import int8_kernels as ik
from edgekit.reference.float_kernels import same_pads

from tests.runtimes.micro_abi import KernelCall, Struct, dims4

ACTIVATIONS = ("NONE", "NONE", "RELU", "RELU6", "RELU_N1_TO_1")  # NONE drawn twice as often


# ------------------------------------------------------------------------------ draws


class RngDraw:
    """Draws from a numpy Generator; ``pinned`` names fix a draw's value."""

    def __init__(self, rng: np.random.Generator, **pinned):
        self._rng = rng
        self.pinned = pinned

    def int(self, name: str, lo: int, hi: int) -> int:
        if name in self.pinned:
            return int(self.pinned[name])
        return int(self._rng.integers(lo, hi + 1))

    def choice(self, name: str, options):
        if name in self.pinned:
            return self.pinned[name]
        return options[int(self._rng.integers(0, len(options)))]

    def bool(self, name: str) -> bool:
        return bool(self.choice(name, (False, True)))

    def scale(self, name: str, lo: float, hi: float) -> float:
        """Log-uniform in [lo, hi], as a float32 value."""
        if name in self.pinned:
            return float(np.float32(self.pinned[name]))
        return float(np.float32(math.exp(self._rng.uniform(math.log(lo), math.log(hi)))))

    def rng(self) -> np.random.Generator:
        return self._rng


class HypothesisDraw:
    """Draws through hypothesis' ``st.data()``; array contents come from a drawn seed."""

    def __init__(self, data):
        from hypothesis import strategies as st

        self._data = data
        self._st = st

    def int(self, name: str, lo: int, hi: int) -> int:
        return self._data.draw(self._st.integers(lo, hi), label=name)

    def choice(self, name: str, options):
        return self._data.draw(self._st.sampled_from(list(options)), label=name)

    def bool(self, name: str) -> bool:
        return self._data.draw(self._st.booleans(), label=name)

    def scale(self, name: str, lo: float, hi: float) -> float:
        e = self._data.draw(self._st.floats(math.log(lo), math.log(hi)), label=name)
        return float(np.float32(math.exp(e)))

    def rng(self) -> np.random.Generator:
        return np.random.default_rng(self._data.draw(self._st.integers(0, 2**32 - 1), label="seed"))


def _i8(d, shape, lo=-128, hi=127) -> np.ndarray:
    return d.rng().integers(lo, hi + 1, size=shape, dtype=np.int64).astype(np.int8)


def _qp(scale: float, zp: int) -> QuantParams:
    return QuantParams.per_tensor(scale, zp)


def _zp(d, name: str) -> int:
    kind = d.choice(name + "_kind", ("any", "any", "zero", "edge"))
    if kind == "zero":
        return 0
    if kind == "edge":
        return d.choice(name + "_edge", (-128, 127))
    return d.int(name, -128, 127)


def _bias(d, n: int):
    kind = d.choice("bias", ("none", "small", "small", "large"))
    if kind == "none":
        return None
    lim = 1 << 10 if kind == "small" else 1 << 16
    return d.rng().integers(-lim, lim + 1, size=n).astype(np.int32)


def _pads(d, in_hw, k_hw, stride, dilation):
    """(top, left, bottom, right) for SAME, VALID or explicit padding, and in_hw such that
    at least one output row and column exist."""
    mode = d.choice("padding", ("valid", "same", "explicit"))
    eff = [(k - 1) * dl + 1 for k, dl in zip(k_hw, dilation)]
    if mode == "explicit":
        t, l, b, r = (d.int(n, 0, e - 1) for n, e in zip(("pt", "pl", "pb", "pr"), eff + eff))
    else:
        t = l = b = r = 0
    h = max(in_hw[0], eff[0] - t - b)
    w = max(in_hw[1], eff[1] - l - r)
    if mode == "same":
        t, l, b, r = same_pads((h, w), k_hw, stride, dilation)
    return (h, w), (t, l, b, r)


def _channel_scales(d, n: int) -> np.ndarray:
    """Per-channel filter scales within a factor 4 of each other."""
    base = np.float32(d.scale("s_w", 1e-3, 0.05))
    return (base * d.rng().uniform(0.25, 1.0, n)).astype(np.float32)


def _out_scale(d, base: float) -> float:
    """An output scale that puts typical results within int8 (sometimes saturating)."""
    return float(np.float32(base * d.scale("out_ratio", 0.25, 8.0)))


# ------------------------------------------------------------------------------ conv, fc


def conv2d_case(name, x, w, bias, x_qp, w_qp, out_qp, *, stride, pads, dilation, activation):
    expected = ik.conv2d(x, w, bias, x_qp, w_qp, out_qp, stride=stride, pads=pads,
                         dilation=dilation, activation=activation)
    s_in, zp_in = x_qp.scale[0], x_qp.zero_point[0]
    s_out, zp_out = out_qp.scale[0], out_qp.zero_point[0]
    cout = w.shape[0]
    fscales = np.full(cout, w_qp.scale[0], np.float32) if w_qp.is_per_tensor else w_qp.scales
    mult, shift = fp.conv_per_channel_multipliers(s_in, fscales, s_out)
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    params = Struct("ek_conv_params", {
        "stride_h": stride[0], "stride_w": stride[1], "dilation_h": dilation[0],
        "dilation_w": dilation[1], "pad_top": pads[0], "pad_left": pads[1],
        "input_offset": -zp_in, "output_offset": zp_out, "act_min": act_min, "act_max": act_max})
    return KernelCall(name, "ek_conv2d_s8",
                      [params, mult, shift, dims4(x.shape), x, dims4(w.shape), w, bias,
                       dims4(expected.shape)], expected)


def sample_conv2d(d, name="conv2d"):
    n, cin, cout = d.int("n", 1, 2), d.int("cin", 1, 12), d.int("cout", 1, 9)
    kh, kw = d.int("kh", 1, 4), d.int("kw", 1, 4)
    stride = (d.int("sh", 1, 3), d.int("sw", 1, 3))
    dilation = (d.choice("dh", (1, 1, 2, 3)), d.choice("dw", (1, 1, 2, 3)))
    (h, w_), pads = _pads(d, (d.int("h", 1, 9), d.int("w", 1, 9)), (kh, kw), stride, dilation)
    x = _i8(d, (n, h, w_, cin))
    wt = _i8(d, (cout, kh, kw, cin))
    s_in = d.scale("s_in", 1e-3, 0.2)
    if d.bool("per_channel"):
        fs = _channel_scales(d, cout)
        w_qp = QuantParams.per_axis(fs, [0] * cout, 0)
    else:
        w_qp = _qp(d.scale("s_w", 1e-3, 0.05), 0)
    s_out = _out_scale(d, s_in * max(w_qp.scale) * math.sqrt(kh * kw * cin) * 200)
    return conv2d_case(name, x, wt, _bias(d, cout), _qp(s_in, _zp(d, "zp_in")), w_qp,
                       _qp(s_out, _zp(d, "zp_out")), stride=stride, pads=pads,
                       dilation=dilation, activation=d.choice("act", ACTIVATIONS))


def depthwise_case(name, x, w, bias, x_qp, w_qp, out_qp, *, stride, pads, dilation,
                   depth_multiplier, activation):
    expected = ik.depthwise_conv2d(x, w, bias, x_qp, w_qp, out_qp, stride=stride, pads=pads,
                                   dilation=dilation, depth_multiplier=depth_multiplier,
                                   activation=activation)
    s_in, zp_in = x_qp.scale[0], x_qp.zero_point[0]
    s_out, zp_out = out_qp.scale[0], out_qp.zero_point[0]
    cout = w.shape[3]
    fscales = np.full(cout, w_qp.scale[0], np.float32) if w_qp.is_per_tensor else w_qp.scales
    mult, shift = fp.conv_per_channel_multipliers(s_in, fscales, s_out)
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    params = Struct("ek_depthwise_params", {
        "stride_h": stride[0], "stride_w": stride[1], "dilation_h": dilation[0],
        "dilation_w": dilation[1], "pad_top": pads[0], "pad_left": pads[1],
        "depth_multiplier": depth_multiplier, "input_offset": -zp_in, "output_offset": zp_out,
        "act_min": act_min, "act_max": act_max})
    return KernelCall(name, "ek_depthwise_conv2d_s8",
                      [params, mult, shift, dims4(x.shape), x, dims4(w.shape), w, bias,
                       dims4(expected.shape)], expected)


def sample_depthwise_conv2d(d, name="depthwise_conv2d"):
    n, cin, m = d.int("n", 1, 2), d.int("cin", 1, 13), d.choice("m", (1, 1, 1, 2, 3))
    kh, kw = d.choice("kh", (1, 2, 3, 3, 3, 5)), d.choice("kw", (1, 2, 3, 3, 3, 5))
    stride = (d.int("sh", 1, 3), d.int("sw", 1, 3))
    dilation = (d.choice("dh", (1, 1, 1, 2)), d.choice("dw", (1, 1, 1, 2)))
    (h, w_), pads = _pads(d, (d.int("h", 1, 9), d.int("w", 1, 9)), (kh, kw), stride, dilation)
    cout = cin * m
    x = _i8(d, (n, h, w_, cin))
    wt = _i8(d, (1, kh, kw, cout))
    s_in = d.scale("s_in", 1e-3, 0.2)
    if d.bool("per_channel"):
        fs = _channel_scales(d, cout)
        w_qp = QuantParams.per_axis(fs, [0] * cout, 3)
    else:
        w_qp = _qp(d.scale("s_w", 1e-3, 0.05), 0)
    s_out = _out_scale(d, s_in * max(w_qp.scale) * math.sqrt(kh * kw) * 200)
    return depthwise_case(name, x, wt, _bias(d, cout), _qp(s_in, _zp(d, "zp_in")), w_qp,
                          _qp(s_out, _zp(d, "zp_out")), stride=stride, pads=pads,
                          dilation=dilation, depth_multiplier=m,
                          activation=d.choice("act", ACTIVATIONS))


def fully_connected_case(name, x, w, bias, x_qp, w_qp, out_qp, *, activation):
    expected = ik.fully_connected(x, w, bias, x_qp, w_qp, out_qp, activation=activation)
    s_in, zp_in = x_qp.scale[0], x_qp.zero_point[0]
    s_out, zp_out = out_qp.scale[0], out_qp.zero_point[0]
    per_channel = not (w_qp.is_per_tensor or len(w_qp.scale) == 1)
    if per_channel:
        mult, shift = fp.fc_per_channel_multipliers(s_in, w_qp.scales, s_out)
        filter_offset = 0
    else:
        m, s = fp.fc_per_tensor_multiplier(s_in, w_qp.scale[0], s_out)
        mult, shift = np.array([m]), np.array([s])
        filter_offset = -w_qp.zero_point[0]
    act_min, act_max = fp.activation_range_quantized(activation, s_out, zp_out)
    params = Struct("ek_fc_params", {
        "input_offset": -zp_in, "filter_offset": filter_offset, "output_offset": zp_out,
        "act_min": act_min, "act_max": act_max, "per_channel": int(per_channel)})
    batches, k = x.reshape(-1, w.shape[1]).shape
    return KernelCall(name, "ek_fully_connected_s8",
                      [params, mult, shift, batches, k, w.shape[0], x, w, bias], expected)


def sample_fully_connected(d, name="fully_connected"):
    b, k, cout = d.int("batches", 1, 3), d.int("k", 1, 40), d.int("cout", 1, 9)
    x = _i8(d, (b, k))
    w = _i8(d, (cout, k))
    s_in = d.scale("s_in", 1e-3, 0.2)
    if d.bool("per_channel"):
        fs = _channel_scales(d, cout)
        w_qp = QuantParams.per_axis(fs, [0] * cout, 0)
    else:
        zp_w = 0
        if d.choice("zp_w_kind", ("zero", "zero", "any")) == "any":
            zp_w = d.int("zp_w", -128, 127)
        w_qp = _qp(d.scale("s_w", 1e-3, 0.05), zp_w)
    s_out = _out_scale(d, s_in * max(w_qp.scale) * math.sqrt(k) * 200)
    return fully_connected_case(name, x, w, _bias(d, cout), _qp(s_in, _zp(d, "zp_in")), w_qp,
                                _qp(s_out, _zp(d, "zp_out")),
                                activation=d.choice("act", ACTIVATIONS))


# ------------------------------------------------------------------------------ pooling


def pool_case(name, kind, x, qp, *, pool, stride, pads, activation):
    fn = ik.average_pool2d if kind == "avg" else ik.max_pool2d
    expected = fn(x, qp, qp, pool=pool, stride=stride, pads=pads, activation=activation)
    act_min, act_max = fp.activation_range_quantized(activation, qp.scale[0], qp.zero_point[0])
    params = Struct("ek_pool_params", {
        "stride_h": stride[0], "stride_w": stride[1], "filter_h": pool[0], "filter_w": pool[1],
        "pad_top": pads[0], "pad_left": pads[1], "act_min": act_min, "act_max": act_max})
    return KernelCall(name, f"ek_{kind}_pool2d_s8",
                      [params, dims4(x.shape), x, dims4(expected.shape)], expected)


def _sample_pool(d, kind, name):
    n, c = d.int("n", 1, 2), d.int("c", 1, 10)
    pool = (d.int("fh", 1, 4), d.int("fw", 1, 4))
    stride = (d.int("sh", 1, 3), d.int("sw", 1, 3))
    (h, w), pads = _pads(d, (d.int("h", 1, 9), d.int("w", 1, 9)), pool, stride, (1, 1))
    qp = _qp(d.scale("s", 1e-3, 0.5), _zp(d, "zp"))
    return pool_case(name, kind, _i8(d, (n, h, w, c)), qp, pool=pool, stride=stride, pads=pads,
                     activation=d.choice("act", ACTIVATIONS))


def sample_avg_pool2d(d, name="avg_pool2d"):
    return _sample_pool(d, "avg", name)


def sample_max_pool2d(d, name="max_pool2d"):
    return _sample_pool(d, "max", name)


# ------------------------------------------------------------------------------ binary


def broadcast_strides(shape) -> Struct:
    """Element strides of a (right-aligned) operand in the 4-D output index space: the
    operand's dense strides, 0 along its dimensions of size 1 (broadcast)."""
    s4 = (1,) * (4 - len(shape)) + tuple(shape)
    packed = [int(np.prod(s4[i + 1:])) for i in range(4)]
    strides = [0 if s4[i] == 1 else packed[i] for i in range(4)]
    return Struct("ek_strides4", dict(zip("nhwc", strides)))


def _dims4_of(shape) -> Struct:
    return dims4((1,) * (4 - len(shape)) + tuple(shape))


def binary_case(name, kind, a, b, a_qp, b_qp, out_qp, *, activation):
    expected = {"add": ik.add, "sub": ik.sub, "mul": ik.mul}[kind](
        a, b, a_qp, b_qp, out_qp, activation=activation)
    (s1, z1), (s2, z2) = (a_qp.scale[0], a_qp.zero_point[0]), (b_qp.scale[0], b_qp.zero_point[0])
    so, zo = out_qp.scale[0], out_qp.zero_point[0]
    act_min, act_max = fp.activation_range_quantized(activation, so, zo)
    if kind == "mul":
        m, s = fp.mul_multiplier(s1, s2, so)
        params = Struct("ek_mul_params", {
            "input1_offset": -z1, "input2_offset": -z2, "output_multiplier": m,
            "output_shift": s, "output_offset": zo, "act_min": act_min, "act_max": act_max})
    else:
        derive = fp.add_multipliers if kind == "add" else fp.sub_multipliers
        (m1, sh1), (m2, sh2), (mo, sho) = derive(s1, s2, so, 20)
        params = Struct("ek_add_params", {
            "input1_offset": -z1, "input2_offset": -z2, "left_shift": 20,
            "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2,
            "input2_shift": sh2, "output_multiplier": mo, "output_shift": sho,
            "output_offset": zo, "act_min": act_min, "act_max": act_max})
    out_shape = expected.shape
    return KernelCall(name, f"ek_{kind}_s8",
                      [params, _dims4_of(out_shape), a, broadcast_strides(a.shape),
                       b, broadcast_strides(b.shape)], expected)


def _operand_shape(d, name, out_shape):
    mode = d.choice(name + "_mode", ("full", "full", "broadcast", "scalar", "lower_rank"))
    if mode == "full":
        return out_shape
    if mode == "scalar":
        return (1,) * len(out_shape)
    if mode == "lower_rank":
        return out_shape[d.int(name + "_drop", 0, len(out_shape)):]
    return tuple(1 if d.bool(f"{name}_b{i}") else s for i, s in enumerate(out_shape))


def _sample_binary(d, kind, name):
    rank = d.int("rank", 1, 4)
    out_shape = tuple(d.int(f"d{i}", 1, 5) for i in range(rank))
    a = _i8(d, _operand_shape(d, "a", out_shape))
    b = _i8(d, _operand_shape(d, "b", out_shape))
    s1, s2 = d.scale("s1", 2e-3, 0.5), d.scale("s2", 2e-3, 0.5)
    if kind == "mul":
        so = _out_scale(d, s1 * s2 * 128)
    else:
        so = _out_scale(d, max(s1, s2) * 1.5)
    return binary_case(name, kind, a, b, _qp(s1, _zp(d, "z1")), _qp(s2, _zp(d, "z2")),
                       _qp(so, _zp(d, "zo")), activation=d.choice("act", ACTIVATIONS))


def sample_add(d, name="add"):
    return _sample_binary(d, "add", name)


def sample_sub(d, name="sub"):
    return _sample_binary(d, "sub", name)


def sample_mul(d, name="mul"):
    return _sample_binary(d, "mul", name)


# ------------------------------------------------------------------------------ data movement


def pad_case(name, x, qp, paddings, constant=None):
    expected = ik.pad(x, qp, qp, paddings, constant=constant)
    value = qp.zero_point[0] if constant is None else constant
    params = Struct("ek_pad_params", {"before": [p[0] for p in paddings],
                                      "after": [p[1] for p in paddings], "value": value})
    return KernelCall(name, "ek_pad_s8", [params, dims4(x.shape), x], expected)


def sample_pad(d, name="pad"):
    x = _i8(d, tuple(d.int(f"d{i}", 1, 4) for i in range(4)))
    paddings = [(d.int(f"b{i}", 0, 3), d.int(f"a{i}", 0, 3)) for i in range(4)]
    constant = d.int("value", -128, 127) if d.bool("constant") else None
    return pad_case(name, x, _qp(d.scale("s", 1e-3, 0.5), _zp(d, "zp")), paddings, constant)


def concatenation_case(name, xs, qp, axis):
    expected = ik.concatenation(xs, [qp] * len(xs), qp, axis=axis)
    shape = xs[0].shape
    outer = int(np.prod(shape[:axis]))
    inner = int(np.prod(shape[axis + 1:]))
    sizes = np.array([x.shape[axis] for x in xs], np.int32)
    return KernelCall(name, "ek_concatenation_s8", [len(xs), list(xs), sizes, outer, inner],
                      expected)


def sample_concatenation(d, name="concatenation"):
    rank = d.int("rank", 1, 4)
    axis = d.int("axis", 0, rank - 1)
    shape = [d.int(f"d{i}", 1, 4) for i in range(rank)]
    xs = []
    for i in range(d.int("inputs", 1, 4)):
        shape[axis] = d.int(f"size{i}", 1, 4)
        xs.append(_i8(d, tuple(shape)))
    return concatenation_case(name, xs, _qp(d.scale("s", 1e-3, 0.5), _zp(d, "zp")), axis)


def transpose_case(name, x, perm):
    expected = np.ascontiguousarray(np.transpose(x, perm))
    return KernelCall(name, "ek_transpose_s8",
                      [dims4(x.shape), np.array(perm, np.int32), x], expected)


def sample_transpose(d, name="transpose"):
    x = _i8(d, tuple(d.int(f"d{i}", 1, 5) for i in range(4)))
    perm = d.choice("perm", list(itertools.permutations(range(4))))
    return transpose_case(name, x, tuple(perm))


# ------------------------------------------------------------------------------ mean


def mean_multiplier(s_in: float, s_out: float, count: int) -> tuple[int, int]:
    """MEAN's (multiplier, shift): double(s_in) / double(s_out) folded with 1 / count as
    int8_kernels.mean (TFLM's QuantizedMeanOrSum) folds it."""
    mult, shift = fp.requantize_multiplier(s_in, s_out)
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return int(fp.wrap_int32((mult << k) // count)), shift - k


def mean_case(name, x, x_qp, out_qp, axes, keep_dims):
    expected = ik.mean(x, x_qp, out_qp, axes=axes, keep_dims=keep_dims)
    count = int(np.prod([x.shape[a] for a in axes]))
    mult, shift = mean_multiplier(x_qp.scale[0], out_qp.scale[0], count)
    params = Struct("ek_mean_params", {"input_offset": -x_qp.zero_point[0],
                                       "output_offset": out_qp.zero_point[0],
                                       "multiplier": mult, "shift": shift})
    mask = sum(1 << a for a in axes)
    return KernelCall(name, "ek_mean_s8", [params, dims4(x.shape), mask, x], expected)


def sample_mean(d, name="mean"):
    x = _i8(d, tuple(d.int(f"d{i}", 1, 6) for i in range(4)))
    axes = [i for i in range(4) if d.bool(f"axis{i}")] or [d.int("axis", 0, 3)]
    s_in = d.scale("s_in", 1e-3, 0.5)
    s_out = _out_scale(d, s_in)
    return mean_case(name, x, _qp(s_in, _zp(d, "zp_in")), _qp(s_out, _zp(d, "zp_out")), axes,
                     d.bool("keep_dims"))


# ------------------------------------------------------------------------------ activations


SOFTMAX_OUT = QuantParams.per_tensor(1.0 / 256, -128)
LOGISTIC_OUT = SOFTMAX_OUT
TANH_OUT = QuantParams.per_tensor(1.0 / 128, 0)


def softmax_case(name, x, x_qp, beta):
    expected = ik.softmax(x, x_qp, SOFTMAX_OUT, beta=beta)
    mult, left_shift = fp.preprocess_softmax_scaling(float(np.float32(beta)), x_qp.scale[0], 5)
    diff_min = -fp.calculate_input_radius(5, left_shift, 31)
    params = Struct("ek_softmax_params", {"input_multiplier": mult, "input_left_shift": left_shift,
                                          "diff_min": diff_min})
    depth = x.shape[-1]
    return KernelCall(name, "ek_softmax_s8", [params, x.size // depth, depth, x], expected)


def sample_softmax(d, name="softmax"):
    if d.choice("depth_kind", ("small", "small", "large")) == "large":
        depth = d.int("depth", 21, 300)
    else:
        depth = d.int("depth_small", 1, 20)
    x = _i8(d, (d.int("rows", 1, 4), depth), lo=d.int("lo", -128, 0))
    beta = d.choice("beta", (1.0, 1.0, 0.5, 2.0, 0.1))
    return softmax_case(name, x, _qp(d.scale("s_in", 1e-3, 1.0), _zp(d, "zp")), beta)


def sigmoid_case(name, kind, x, x_qp):
    fn, out_qp = (ik.logistic, LOGISTIC_OUT) if kind == "logistic" else (ik.tanh, TANH_OUT)
    expected = fn(x, x_qp, out_qp)
    mult, shift, radius = fp.logistic_tanh_input_params(x_qp.scale[0], 4)
    params = Struct("ek_sigmoid_params", {"input_offset": -x_qp.zero_point[0],
                                          "input_multiplier": mult, "input_left_shift": shift,
                                          "input_range_radius": radius})
    return KernelCall(name, f"ek_{kind}_s8", [params, x.size, x], expected)


def sample_logistic(d, name="logistic"):
    x = _i8(d, (d.int("size", 1, 300),))
    return sigmoid_case(name, "logistic", x, _qp(d.scale("s_in", 1e-3, 1.0), _zp(d, "zp")))


def sample_tanh(d, name="tanh"):
    x = _i8(d, (d.int("size", 1, 300),))
    return sigmoid_case(name, "tanh", x, _qp(d.scale("s_in", 1e-3, 1.0), _zp(d, "zp")))


def relu_case(name, x, x_qp, out_qp):
    expected = ik.relu(x, x_qp, out_qp)
    m, s = fp.requantize_multiplier(x_qp.scale[0], out_qp.scale[0])
    zo = out_qp.zero_point[0]
    params = Struct("ek_requant_params", {"input_offset": -x_qp.zero_point[0], "output_offset": zo,
                                          "multiplier": m, "shift": s,
                                          "act_min": max(-128, zo), "act_max": 127})
    return KernelCall(name, "ek_relu_s8", [params, x.size, x], expected)


def sample_relu(d, name="relu"):
    x = _i8(d, (d.int("size", 1, 200),))
    s_in = d.scale("s_in", 1e-3, 0.5)
    out_qp = _qp(_out_scale(d, s_in), _zp(d, "zp_out"))
    return relu_case(name, x, _qp(s_in, _zp(d, "zp_in")), out_qp)


def relu6_case(name, x, x_qp):
    expected = ik.relu6(x, x_qp)
    s_in, zp_in = x_qp.scale[0], x_qp.zero_point[0]
    six_q = fp.round_half_away(float(np.float32(6.0) / np.float32(s_in)))
    six = int(np.clip(six_q + zp_in, -128, 127))
    return KernelCall(name, "ek_relu6_s8", [zp_in, six, x.size, x], expected)


def sample_relu6(d, name="relu6"):
    x = _i8(d, (d.int("size", 1, 200),))
    return relu6_case(name, x, _qp(d.scale("s_in", 5e-3, 0.5), _zp(d, "zp")))


def quantize_case(name, x, out_qp):
    expected = ik.quantize(x, out_qp)
    return KernelCall(name, "ek_quantize_f32_s8",
                      [float(np.float32(out_qp.scale[0])), out_qp.zero_point[0], x.size, x],
                      expected)


def sample_quantize(d, name="quantize"):
    scale = d.scale("s", 1e-3, 1.0)
    size = d.int("size", 1, 200)
    rng = d.rng()
    # multiples of scale / 2 (ties after the division), plus ordinary and huge values
    ties = (rng.integers(-600, 600, size) * np.float32(scale / 2)).astype(np.float32)
    normal = (rng.normal(0, 80, size) * scale).astype(np.float32)
    huge = rng.choice(np.array([3e9, -3e9, 1e30, -1e30, 0.0, -0.0], np.float32), size)
    pick = rng.integers(0, 10, size)
    x = np.where(pick < 4, ties, np.where(pick < 9, normal, huge)).astype(np.float32)
    return quantize_case(name, x, _qp(scale, _zp(d, "zp")))


def requantize_case(name, x, x_qp, out_qp):
    expected = ik.requantize(x, x_qp, out_qp)
    m, s = fp.requantize_multiplier(x_qp.scale[0], out_qp.scale[0])
    params = Struct("ek_requant_params", {"input_offset": -x_qp.zero_point[0],
                                          "output_offset": out_qp.zero_point[0],
                                          "multiplier": m, "shift": s,
                                          "act_min": -128, "act_max": 127})
    return KernelCall(name, "ek_requantize_s8", [params, x.size, x], expected)


def sample_requantize(d, name="requantize"):
    x = _i8(d, (d.int("size", 1, 200),))
    s_in = d.scale("s_in", 1e-3, 0.5)
    return requantize_case(name, x, _qp(s_in, _zp(d, "zp_in")),
                           _qp(_out_scale(d, s_in), _zp(d, "zp_out")))


def dequantize_case(name, x, x_qp):
    expected = ik.dequantize(x, x_qp)
    return KernelCall(name, "ek_dequantize_s8_f32",
                      [float(np.float32(x_qp.scale[0])), x_qp.zero_point[0], x.size, x], expected)


def sample_dequantize(d, name="dequantize"):
    x = _i8(d, (d.int("size", 1, 200),))
    return dequantize_case(name, x, _qp(d.scale("s", 1e-4, 10.0), _zp(d, "zp")))


SAMPLERS: dict[str, Callable] = {
    "conv2d": sample_conv2d,
    "depthwise_conv2d": sample_depthwise_conv2d,
    "fully_connected": sample_fully_connected,
    "avg_pool2d": sample_avg_pool2d,
    "max_pool2d": sample_max_pool2d,
    "add": sample_add,
    "sub": sample_sub,
    "mul": sample_mul,
    "pad": sample_pad,
    "concatenation": sample_concatenation,
    "transpose": sample_transpose,
    "mean": sample_mean,
    "softmax": sample_softmax,
    "logistic": sample_logistic,
    "tanh": sample_tanh,
    "relu": sample_relu,
    "relu6": sample_relu6,
    "quantize": sample_quantize,
    "requantize": sample_requantize,
    "dequantize": sample_dequantize,
}

from tests.runtimes.micro_cases_reduction import SAMPLERS as _REDUCTION_SAMPLERS  # noqa: E402

SAMPLERS.update(_REDUCTION_SAMPLERS)

from tests.runtimes.micro_cases_movement import SAMPLERS as _MOVEMENT_SAMPLERS  # noqa: E402

SAMPLERS.update(_MOVEMENT_SAMPLERS)

from tests.runtimes.micro_cases_recurrent import SAMPLERS as _RECURRENT_SAMPLERS  # noqa: E402

SAMPLERS.update(_RECURRENT_SAMPLERS)

from tests.runtimes.micro_cases_elementwise import SAMPLERS as _ELEMENTWISE_SAMPLERS  # noqa: E402

SAMPLERS.update(_ELEMENTWISE_SAMPLERS)
