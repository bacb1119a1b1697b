"""Compile-time operands of the packed convolution and fully-connected kernels
(``ek_conv2d_packed_s8``, ``ek_fully_connected_packed_s8``; layouts in kernels.h), and
the per-layer choice between them and the generic kernels.

What an interpreter cannot do and the compiler does here, once per layer:

- weights reordered into the layout the kernel's inner loop reads (channel pairs in
  groups of 4 taps for conv, blocks of 4 rows for fully connected);
- the input offset folded into the bias: ``sum_k w (x + off) + bias = sum_k w x +
  (bias + off * sum_k w)``, an identity of int32 arithmetic mod 2^32, so the kernels
  sum raw inputs (a padding tap reads the input zero point and adds ``w * zp``, which
  the folded term ``-zp * w`` cancels);
- a proof, per layer, that the SMMULR requantization of the dsp kernels equals TFLM's
  ``MultiplyByQuantizedMultiplier`` (``fast_requant_ok``: every shift in [-31, -1] and
  every channel's accumulator bounded by 2^29 for any input);
- a cost model (``conv_cost`` / ``fc_cost``, instructions on Cortex-M4 fitted to
  measured counts) that picks the cheaper kernel per layer.

``prefer_packed(call, features)`` turns a generic ``KernelCall`` of ``lower_op`` into the
packed one where the target's packed kernel is not the portable reference (the generic
portable kernels keep their OHWI layout) and the cost model says it pays.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

FAST_BOUND = 1 << 29  # |acc| below this: the SMMULR form is exact (runtimes/micro/src/dsp/packed.h)
CONV_KERNEL = "conv2d_packed"
FC_KERNEL = "fully_connected_packed"


@dataclass(frozen=True)
class Scratch:
    """A work buffer of ``nbytes`` bytes (4-byte aligned) a kernel may use during its call;
    the code generator passes one static buffer to every call (``int16_t *``)."""

    nbytes: int


# ----------------------------------------------------------------------------- layouts


def round_up(n: int, m: int) -> int:
    return -(-int(n) // m) * m


def pack_conv_filter(w: np.ndarray) -> np.ndarray:
    """OHWI int8 filters -> the ``ek_conv2d_packed_s8`` layout (channel pairs, groups of 4
    taps, zero-padded): [pairs, Kp / 4, 2, 4] flattened."""
    cout = w.shape[0]
    flat = np.asarray(w, np.int8).reshape(cout, -1)
    k = flat.shape[1]
    padded = np.zeros((round_up(cout, 2), round_up(k, 4)), np.int8)
    padded[:cout, :k] = flat
    pairs, kp = padded.shape[0] // 2, padded.shape[1]
    return np.ascontiguousarray(padded.reshape(pairs, 2, kp // 4, 4).transpose(0, 2, 1, 3)).ravel()


def pack_fc_filter(w: np.ndarray) -> np.ndarray:
    """[Cout, K] int8 weights -> the ``ek_fully_connected_packed_s8`` layout (blocks of 4
    rows, groups of 4 inputs, zero-padded): [blocks, Kp / 4, 4, 4] flattened."""
    w = np.asarray(w, np.int8)
    cout, k = w.shape
    padded = np.zeros((round_up(cout, 4), round_up(k, 4)), np.int8)
    padded[:cout, :k] = w
    blocks, kp = padded.shape[0] // 4, padded.shape[1]
    return np.ascontiguousarray(padded.reshape(blocks, 4, kp // 4, 4).transpose(0, 2, 1, 3)).ravel()


def fold_bias(w2d: np.ndarray, bias, input_offset: int) -> np.ndarray:
    """bias + input_offset * sum_k w, per output, wrapped to int32 (bias may be None)."""
    w2d = np.asarray(w2d, np.int64)
    b = np.zeros(w2d.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    folded = b + int(input_offset) * w2d.sum(axis=1)
    return ((folded + 2**31) % 2**32 - 2**31).astype(np.int32)


def accumulator_bound(w2d: np.ndarray, bias, input_zero_point: int) -> np.ndarray:
    """Per output, the largest |acc| any int8 input can give: |bias| + max|x - zp| * sum|w|
    (acc: the true sum of w * (x - zp) plus bias; padding taps add 0)."""
    w2d = np.asarray(w2d, np.int64)
    b = np.zeros(w2d.shape[0], np.int64) if bias is None else np.abs(np.asarray(bias, np.int64))
    span = max(127 - int(input_zero_point), int(input_zero_point) + 128)
    return b + span * np.abs(w2d).sum(axis=1)


def fast_requant_ok(w2d, bias, input_zero_point: int, shift) -> bool:
    """Whether the SMMULR requantization is exact for every output of the layer."""
    shift = np.asarray(shift, np.int64)
    if shift.size == 0 or shift.max() > -1 or shift.min() < -31:
        return False
    return bool(accumulator_bound(w2d, bias, input_zero_point).max() < FAST_BOUND)


def fast_requant(acc, mult, shift, output_offset: int, act_min: int, act_max: int) -> np.ndarray:
    """The dsp kernels' SMMULR requantization in numpy, instruction by instruction
    (``ek_packed_fast_out``): for checking it against TFLM's rounding."""
    acc = np.asarray(acc, np.int64)
    x = ((acc << 1) + 2**31) % 2**32 - 2**31                       # LSL #1 (int32)
    r = (x * np.asarray(mult, np.int64) + 2**31) >> 32             # SMMULR
    t = r - (r < 0)                                                # SUB r, r, LSR #31
    v = ((t >> (~np.asarray(shift, np.int64))) + (1 + 2 * output_offset)) >> 1
    return np.clip(v, act_min, act_max)


# ----------------------------------------------------------------------------- cost model
# Instructions on Cortex-M4 (qemu -icount), fitted to counts measured per kernel on a few
# shapes (bench/packed_kernels.py); tests/runtimes/test_packed_cost_model.py checks that
# the model orders measured shapes as the board does.


def edge_fraction(in_w: int, out_w: int, kw: int, stride_w: int = 1, pad_left: int = 0,
                  dilation_w: int = 1) -> float:
    """The share of output columns whose window reaches into the left or right padding."""
    span = (kw - 1) * dilation_w + 1
    edge = sum(1 for x in range(out_w) if x * stride_w - pad_left < 0
               or x * stride_w - pad_left + span > in_w)
    return edge / max(out_w, 1)


def conv_cost(kind: str, *, pixels: int, cout: int, kh: int, kw: int, cin: int,
              edge: float = 0.0) -> float:
    """Predicted instructions of one CONV_2D call on Cortex-M4: ``kind`` "generic"
    (ek_conv2d_s8, dsp) or "packed" (ek_conv2d_packed_s8, dsp); ``edge``: the share of
    output pixels whose window is cut by the left or right padding (``edge_fraction``).
    Coefficients fitted to the counts of bench/packed_cost.py: per (pixel, channel pair),
    per 4-tap group, and the im2col fill per pixel."""
    k = kh * kw * cin
    pairs = round_up(cout, 2) // 2
    if kind == "packed":
        groups = round_up(k, 4) // 4
        row = kw * cin
        whole = 30 + kh * 12 + 5 * groups if row % 4 == 0 else 30 + kh * (40 + 8 * row) + 6 * groups
        cut = 30 + kh * (60 + 8 * row) + 6 * groups
        fill = (1 - edge) * whole + edge * cut
        pixel_pairs, single = pixels // 2, pixels % 2
        return (pixel_pairs * (2 * fill + 20 + pairs * (72 + 16 * groups))
                + single * (fill + 20 + pairs * (45 + 11 * groups)) + 150)
    if kh == 1 and kw == 1:
        per_pair = 122 + 5.2 * cin
    else:
        run = kw * cin
        per_pair = 122 + kh * (64 + 5.2 * (run - run % 4) + 10 * (run % 4))
    return pixels * pairs * per_pair + 60


def fc_cost(kind: str, *, batches: int, k: int, cout: int) -> float:
    """Predicted instructions of one FULLY_CONNECTED call on Cortex-M4 (dsp variants)."""
    if kind == "packed":
        blocks = round_up(cout, 4) // 4
        return batches * blocks * (60 + 22 * (k // 4) + 30 * (k % 4) + 4 * 14) + 60
    pairs, odd = cout // 2, cout % 2
    return batches * (pairs * (110 + 3.6 * k) + odd * (70 + 2.2 * k)) + 60


# ----------------------------------------------------------------------------- choice


def packed_variant(kernel: str, generic: str, features, variant: str = "auto") -> str | None:
    """The variant of a packed kernel the target gets, or None when the packed form is not
    for it: its packed kernel would be the portable reference (then the generic kernels,
    with their OHWI layout, run), or its generic kernel has an "mve" variant (Helium
    kernels read the generic layout)."""
    from edgekit.backends.c import library

    if library.choose(generic, features, variant).variant == "mve":
        return None
    choice = library.choose(kernel, features, variant)
    return None if choice.variant == "portable" else choice.variant


_FORCED: list[str] = []  # "generic" / "packed": the choice forced_choice() imposes


@contextlib.contextmanager
def forced_choice(kind: str):
    """Within the block, every conv / fully-connected layer takes ``kind`` ("generic" or
    "packed", where the target has one) whatever the cost model says: for measuring both
    kernels on the same layer (the model's calibration and its test)."""
    if kind not in ("generic", "packed"):
        raise ValueError(f"kind must be 'generic' or 'packed', not {kind!r}")
    _FORCED.append(kind)
    try:
        yield
    finally:
        _FORCED.pop()


def prefer_packed(call, features, *, variant: str = "auto", force: bool = False):
    """``call`` (a generic conv2d / fully_connected ``KernelCall``), or its packed form when
    the target has a non-portable packed kernel and the cost model prefers it (``force``:
    whenever the target has one)."""
    if call is None or features is None:
        return call
    if _FORCED:
        if _FORCED[-1] == "generic":
            return call
        force = True
    if call.kernel == "conv2d":
        return _conv(call, features, variant, force)
    if call.kernel == "fully_connected":
        return _fc(call, features, variant, force)
    return call


def _conv(call, features, variant, force):
    from edgekit.backends.c.params import ConstArray, KernelCall, Struct

    if packed_variant(CONV_KERNEL, "conv2d", features, variant) is None:
        return call
    params, mult, shift, din, x, dw, w, bias, dout, y = call.args
    cout, kh, kw, cin = (dw.values[k] for k in ("n", "h", "w", "c"))
    pixels = dout.values["n"] * dout.values["h"] * dout.values["w"]
    pv = params.values
    edge = edge_fraction(din.values["w"], dout.values["w"], kw, pv["stride_w"], pv["pad_left"],
                         pv["dilation_w"])
    costs = {kind: conv_cost(kind, pixels=pixels, cout=cout, kh=kh, kw=kw, cin=cin, edge=edge)
             for kind in ("generic", "packed")}
    if not force and costs["packed"] >= costs["generic"]:
        call.notes["cost"] = costs
        return call
    zp_in = -pv["input_offset"]
    w2d = np.asarray(w.data, np.int64).reshape(cout, -1)
    b = None if bias is None else bias.data
    fast = fast_requant_ok(w2d, b, zp_in, shift.data)
    struct = Struct("ek_conv_packed_params", {
        "stride_h": pv["stride_h"], "stride_w": pv["stride_w"], "dilation_h": pv["dilation_h"],
        "dilation_w": pv["dilation_w"], "pad_top": pv["pad_top"], "pad_left": pv["pad_left"],
        "input_zero_point": zp_in, "output_offset": pv["output_offset"],
        "act_min": pv["act_min"], "act_max": pv["act_max"], "fast_requant": int(fast),
        "reverse": 0})  # codegen sets 1 where the plan put the output above its input
    kp = round_up(kh * kw * cin, 4)
    args = [struct, mult, shift, din, x, dw,
            ConstArray("int8_t", pack_conv_filter(w.data), "weights", w.tensor),
            ConstArray("int32_t", fold_bias(w2d, b, pv["input_offset"]), "bias",
                       bias.tensor if bias is not None else None),
            dout, y, Scratch(5 * kp)]
    return KernelCall(call.op, call.op_type, CONV_KERNEL, "ek_conv2d_packed_s8", args,
                      {**call.notes, "cost": costs, "fast_requant": fast})


def _fc(call, features, variant, force):
    from edgekit.backends.c.params import ConstArray, KernelCall, Struct

    if packed_variant(FC_KERNEL, "fully_connected", features, variant) is None:
        return call
    params, mult, shift, batches, k, cout, x, w, bias, y = call.args
    pv = params.values
    if pv["filter_offset"] != 0:
        return call
    costs = {kind: fc_cost(kind, batches=batches, k=k, cout=cout) for kind in ("generic", "packed")}
    if not force and costs["packed"] >= costs["generic"]:
        call.notes["cost"] = costs
        return call
    zp_in = -pv["input_offset"]
    w2d = np.asarray(w.data, np.int64).reshape(cout, k)
    b = None if bias is None else bias.data
    shifts = np.asarray(shift.data)
    fast = fast_requant_ok(w2d, b, zp_in, shifts)
    struct = Struct("ek_fc_packed_params", {
        "output_offset": pv["output_offset"], "act_min": pv["act_min"], "act_max": pv["act_max"],
        "per_channel": pv["per_channel"], "fast_requant": int(fast)})
    args = [struct, mult, shift, batches, k, cout, x,
            ConstArray("int8_t", pack_fc_filter(w.data), "weights", w.tensor),
            ConstArray("int32_t", fold_bias(w2d, b, pv["input_offset"]), "bias",
                       bias.tensor if bias is not None else None), y]
    return KernelCall(call.op, call.op_type, FC_KERNEL, "ek_fully_connected_packed_s8", args,
                      {**call.notes, "cost": costs, "fast_requant": fast})
