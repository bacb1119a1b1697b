"""Cases of the packed kernels (ek_conv2d_packed_s8, ek_fully_connected_packed_s8): a
generic conv2d / fully_connected case of micro_cases (whose expected bytes come from the
reference interpreter) with its operands packed by edgekit/backends/c/packed.py, and the
boundary cases of the SMMULR requantization."""

from __future__ import annotations

import zlib

import numpy as np

from edgekit.backends.c import packed
from edgekit.ir.dtypes import QuantParams
from tests.runtimes import micro_cases as mc
from tests.runtimes.micro_abi import KernelCall, Struct


def conv_packed(kc: KernelCall, reverse: bool = False) -> KernelCall:
    """The packed form of an ``ek_conv2d_s8`` case (same expected bytes; ``reverse``: the
    kernel writes its pixels from the last)."""
    params, mult, shift, din, x, dw, w, bias, dout = kc.args
    pv = params.values
    cout = w.shape[0]
    w2d = np.asarray(w, np.int64).reshape(cout, -1)
    zp_in = -pv["input_offset"]
    fast = packed.fast_requant_ok(w2d, bias, zp_in, shift)
    struct = Struct("ek_conv_packed_params", {
        **{k: pv[k] for k in ("stride_h", "stride_w", "dilation_h", "dilation_w", "pad_top",
                              "pad_left", "output_offset", "act_min", "act_max")},
        "input_zero_point": zp_in, "fast_requant": int(fast), "reverse": int(reverse)})
    kp = packed.round_up(w2d.shape[1], 4)
    return KernelCall(kc.name + "/packed", "ek_conv2d_packed_s8",
                      [struct, mult, shift, din, x, dw, packed.pack_conv_filter(w),
                       packed.fold_bias(w2d, bias, pv["input_offset"]), dout, 5 * kp],
                      kc.expected, {"fast_requant": fast})


def fc_packed(kc: KernelCall) -> KernelCall:
    """The packed form of an ``ek_fully_connected_s8`` case with filter offset 0."""
    params, mult, shift, batches, k, cout, x, w, bias = kc.args
    pv = params.values
    assert pv["filter_offset"] == 0
    w2d = np.asarray(w, np.int64)
    fast = packed.fast_requant_ok(w2d, bias, -pv["input_offset"], shift)
    struct = Struct("ek_fc_packed_params", {
        "output_offset": pv["output_offset"], "act_min": pv["act_min"],
        "act_max": pv["act_max"], "per_channel": pv["per_channel"], "fast_requant": int(fast)})
    return KernelCall(kc.name + "/packed", "ek_fully_connected_packed_s8",
                      [struct, mult, shift, batches, k, cout, x, packed.pack_fc_filter(w),
                       packed.fold_bias(w2d, bias, pv["input_offset"])],
                      kc.expected, {"fast_requant": fast})


def sample_conv2d_packed(d, name="conv2d_packed"):
    return conv_packed(mc.sample_conv2d(d, name), reverse=d.bool("reverse"))


def sample_fully_connected_packed(d, name="fully_connected_packed"):
    # filter zero point 0: per-channel weights, or per-tensor ones with zp 0
    return fc_packed(mc.sample_fully_connected(_Pin(d, zp_w_kind="zero"), name))


class _Pin:
    """A draw with some names pinned (for either draw class)."""

    def __init__(self, d, **pinned):
        self._d = d
        self._pinned = pinned

    def __getattr__(self, attr):
        method = getattr(self._d, attr)
        if attr in ("int", "choice", "bool", "scale"):
            def pinned(name, *a):
                return self._pinned[name] if name in self._pinned else method(name, *a)
            return pinned
        return method


SAMPLERS = {"conv2d_packed": sample_conv2d_packed,
            "fully_connected_packed": sample_fully_connected_packed}

_PLAIN = dict(act="NONE", zp_out_kind="any", bias="small")
PINNED = {
    "conv2d_packed": [
        dict(kh=1, kw=1, padding="valid", cin=8, cout=6, h=5, w=4, sh=1, sw=1, **_PLAIN),  # in place
        dict(kh=1, kw=1, padding="valid", cin=7, cout=5, h=3, w=3, **_PLAIN),  # Cin % 4, odd Cout
        dict(kh=4, kw=4, cin=1, cout=8, padding="same", sh=2, sw=2, dh=1, dw=1, h=9, w=6,
             **_PLAIN),  # the KWS shape: rows of 4 taps, padding on every side
        dict(kh=3, kw=3, padding="same", cin=12, cout=7, dh=1, dw=1, **_PLAIN),
        dict(kh=3, kw=2, padding="explicit", dh=2, dw=3, cin=5, **_PLAIN),  # dilated, gathered
        dict(kh=3, kw=3, padding="same", cin=3, cout=4, dh=1, dw=1, act="RELU6"),  # RGB stem
        dict(kh=1, kw=1, padding="valid", cin=12, cout=6, h=1, w=5, n=1, sh=1, sw=1,
             **_PLAIN),  # one output row of 5: an odd last pixel on its own (fast path)
        dict(kh=3, kw=3, padding="same", cin=4, cout=8, h=3, w=3, n=1, sh=1, sw=1, dh=1, dw=1,
             act="RELU6"),  # 9 pixels, clamped requantization
    ],
    "fully_connected_packed": [
        dict(per_channel=True, k=40, cout=9, batches=2, **_PLAIN),
        dict(per_channel=False, k=37, cout=6, **_PLAIN),  # tail group
        dict(per_channel=False, k=3, cout=1, **_PLAIN),  # tail only
        dict(per_channel=True, k=64, cout=12, batches=1, act="RELU"),
    ],
}
RANDOM_PER_OP = 6


def fast_bound_conv_case(name: str, *, margin: int) -> KernelCall:
    """A pointwise conv whose accumulators reach the SMMULR bound: channel 0 sums to
    +(2^29 - 1 - margin) and channel 1 to -(2^29 - 1 - margin) on pixel 0 (every input
    127, zero point -128, extreme weights), which is also the bound the compiler proves
    for them; every shift is in [-31, -1]. margin < 0 crosses the bound (exact path)."""
    rng = np.random.default_rng(7)
    cin, cout = 64, 4
    w = rng.integers(-128, 128, size=(cout, 1, 1, cin)).astype(np.int8)
    w[0], w[1] = 127, -128
    x = rng.integers(-128, 128, size=(1, 1, 3, cin)).astype(np.int8)
    x[0, 0, 0] = 127
    peak = packed.FAST_BOUND - 1 - margin
    bias = rng.integers(-1000, 1000, size=cout).astype(np.int64)
    bias[0] = peak - 255 * 127 * cin
    bias[1] = -(peak - 255 * 128 * cin)
    x_qp = QuantParams.per_tensor(0.02, -128)
    w_qp = QuantParams.per_axis(np.array([0.004, 0.003, 0.002, 0.001], np.float32), [0] * cout, 0)
    out_qp = QuantParams.per_tensor(2000.0, 3)  # shifts around -24
    kc = mc.conv2d_case(name, x, w, bias.astype(np.int32), x_qp, w_qp, out_qp, stride=(1, 1),
                        pads=(0, 0, 0, 0), dilation=(1, 1), activation="NONE")
    return conv_packed(kc)


def exact_path_cases() -> list[KernelCall]:
    """Layers whose shift is 0 or positive (an effective scale of 0.5 and more): no fast
    requantization, the exact path runs."""
    rng = np.random.default_rng(11)
    out = []
    for i, ratio in enumerate((0.6, 1.5)):
        x = (4 + rng.integers(-3, 4, size=(1, 5, 3, 6))).astype(np.int8)
        w = rng.integers(-2, 3, size=(5, 3, 3, 6)).astype(np.int8)
        x_qp, w_qp = QuantParams.per_tensor(0.05, 4), QuantParams.per_tensor(0.01, 0)
        out_qp = QuantParams.per_tensor(0.05 * 0.01 / ratio, -2)
        kc = mc.conv2d_case(f"conv2d_packed[exact {i}]", x, w, None, x_qp, w_qp, out_qp,
                            stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), activation="RELU")
        out.append(conv_packed(kc))
        xf = (-9 + rng.integers(-6, 7, size=(2, 13))).astype(np.int8)
        wf = rng.integers(-3, 4, size=(6, 13)).astype(np.int8)
        kf = mc.fully_connected_case(f"fully_connected_packed[exact {i}]", xf, wf, None,
                                     QuantParams.per_tensor(0.05, -9), QuantParams.per_tensor(0.01, 0),
                                     QuantParams.per_tensor(0.05 * 0.01 / ratio, 5),
                                     activation="NONE")
        out.append(fc_packed(kf))
    return out


def qemu_cases() -> list[KernelCall]:
    cases = []
    for op, sampler in SAMPLERS.items():
        draws = [{}] * RANDOM_PER_OP + PINNED.get(op, [])
        for i, pinned in enumerate(draws):
            rng = np.random.default_rng([zlib.crc32(op.encode()), i])
            cases.append(sampler(mc.RngDraw(rng, **pinned), name=f"{op}[{i}]"))
    cases += exact_path_cases()
    cases.append(fast_bound_conv_case("conv2d_packed[fast bound]", margin=0))
    cases.append(fast_bound_conv_case("conv2d_packed[over bound]", margin=-1))
    return cases
