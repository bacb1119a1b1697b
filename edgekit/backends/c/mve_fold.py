"""Compile-time input-offset folding for the Helium (mve) conv kernel.

The mve conv2d folds the input offset out of its products: it sums every output
channel's weights and adds ``input_offset * sum(weights)`` to the bias, once per call
(runtimes/micro/src/mve/conv2d.c). A compiler knows the weights, so where the fold is
exact for the portable semantics too it is done here instead, and the kernel's per-call
work goes (which matters when a conv runs as one call per output row: the arena plan's
rows in reverse, edgekit.backends.c.codegen).

Exact when no tap of any window falls in the padding: TFLM skips padding taps, so
``sum over taps of w * (x + off) + bias`` equals ``sum w * x + (bias + off * sum w)``
(mod 2^32, as the kernels compute) only if every tap is read. The call then gets
``input_offset = 0`` and the folded int32 bias; every variant computes the same bytes
from it, the portable reference included.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.c.params import ConstArray, KernelCall, Struct


def _every_tap_inside(params: dict, din: dict, dw: dict, dout: dict) -> bool:
    if params["pad_top"] or params["pad_left"]:
        return False
    last_y = (dout["h"] - 1) * params["stride_h"] + (dw["h"] - 1) * params["dilation_h"]
    last_x = (dout["w"] - 1) * params["stride_w"] + (dw["w"] - 1) * params["dilation_w"]
    return last_y < din["h"] and last_x < din["w"]


def fold_input_offset(call: KernelCall | None, features, variant: str = "auto") -> KernelCall | None:
    """``call`` with the input offset folded into its bias when the target's conv2d kernel
    is the mve variant and the fold is exact (no padding taps); else ``call`` unchanged."""
    from edgekit.backends.c import library

    if call is None or call.kernel != "conv2d" or call.function != "ek_conv2d_s8":
        return call
    if library.choose("conv2d", features, variant).variant != "mve":
        return call
    params, mult, shift, din, x, dw, w, bias, dout, y = call.args
    pv = params.values
    if pv["input_offset"] == 0 or not _every_tap_inside(pv, din.values, dw.values, dout.values):
        return call
    cout = dw.values["n"]
    wsum = np.asarray(w.data, np.int64).reshape(cout, -1).sum(axis=1)
    b = np.zeros(cout, np.int64) if bias is None else np.asarray(bias.data, np.int64)
    folded = (b + pv["input_offset"] * wsum) & 0xFFFFFFFF  # int32 wrap, as the kernels add
    folded = np.where(folded >= 2**31, folded - 2**32, folded).astype(np.int32)
    new_bias = ConstArray("int32_t", folded, "bias", bias.tensor if bias is not None else None)
    new_params = Struct(params.ctype, {**pv, "input_offset": 0})
    notes = {**call.notes, "input_offset_folded": pv["input_offset"]}
    return KernelCall(call.op, call.op_type, call.kernel, call.function,
                      [new_params, mult, shift, din, x, dw, w, new_bias, dout, y], notes)
