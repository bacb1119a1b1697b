"""Compile-time input-offset folding for the mve conv kernel (edgekit.backends.c.mve_fold):
the folded call's accumulators equal the original's for every output (mod 2^32, as the
kernels compute), only for convs without padding taps and only where the target's conv
kernel is the mve variant."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c import lower_op
from edgekit.backends.c.mve_fold import fold_input_offset
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType

M55 = frozenset({"dsp", "mve"})
M4 = frozenset({"dsp"})


def _conv(h, w, cin, cout, k, pads, zp_in, seed):
    rng = np.random.default_rng(seed)
    g = Graph("c")
    g.add_tensor("x", (1, h, w, cin), DType.INT8, QuantParams.per_tensor(0.05, zp_in))
    g.add_tensor("w", (cout, k, k, cin), DType.INT8, QuantParams.per_tensor(0.02, 0),
                 data=rng.integers(-128, 128, (cout, k, k, cin), dtype=np.int8))
    g.add_tensor("b", (cout,), DType.INT32, QuantParams.per_tensor(0.001, 0),
                 data=rng.integers(-2**31, 2**31, cout, dtype=np.int64).astype(np.int32))
    oh, ow = h - k + 1 + pads[0] + pads[2], w - k + 1 + pads[1] + pads[3]
    g.add_tensor("y", (1, oh, ow, cout), DType.INT8, QuantParams.per_tensor(0.1, 3))
    g.inputs, g.outputs = ["x"], ["y"]
    op = g.add_op(OpType.CONV_2D, ["x", "w", "b"], ["y"], {"pads": pads}, name="conv")
    return g, op, rng


def _accumulators(call, x):
    """sum over in-bounds taps of w * (x + input_offset) + bias, mod 2^32 (the kernels' int32 sums)."""
    params, _, _, din, _, dw, w, bias, dout, _ = call.args
    p = params.values
    cout, kh, kw, cin = (dw.values[k] for k in "nhwc")
    wt = np.asarray(w.data, np.int64).reshape(cout, kh, kw, cin)
    xi = x.astype(np.int64) + p["input_offset"]
    out = np.zeros((dout.values["h"], dout.values["w"], cout), np.int64)
    for oy in range(dout.values["h"]):
        for ox in range(dout.values["w"]):
            for ky in range(kh):
                iy = oy * p["stride_h"] - p["pad_top"] + ky
                for kx in range(kw):
                    ix = ox * p["stride_w"] - p["pad_left"] + kx
                    if 0 <= iy < din.values["h"] and 0 <= ix < din.values["w"]:
                        out[oy, ox] += wt[:, ky, kx, :] @ xi[iy, ix]
    out += np.asarray(bias.data, np.int64)
    return out & 0xFFFFFFFF


def test_folded_accumulators_equal_the_original():
    for seed, (k, zp) in enumerate([(1, -128), (3, 17), (2, 127)]):
        g, op, rng = _conv(5, 4, 6, 5, k, (0, 0, 0, 0), zp, seed)
        call = lower_op(g, op)
        folded = fold_input_offset(call, M55)
        assert folded is not call and folded.args[0].values["input_offset"] == 0
        assert folded.notes["input_offset_folded"] == -zp
        x = rng.integers(-128, 128, (5, 4, 6), dtype=np.int64)
        assert np.array_equal(_accumulators(folded, x), _accumulators(call, x))
        assert lower_op(g, op, M55).args[0].values["input_offset"] == 0  # what the C backend gets


def test_no_fold_with_padding_taps_or_without_mve():
    g, op, _ = _conv(5, 4, 6, 5, 3, (1, 1, 1, 1), 17, 0)
    call = lower_op(g, op)
    assert fold_input_offset(call, M55) is call  # TFLM skips padding taps: not exact
    g, op, _ = _conv(5, 4, 6, 5, 1, (0, 0, 0, 0), 17, 0)
    call = lower_op(g, op)
    assert fold_input_offset(call, M4) is call
    assert fold_input_offset(None, M55) is None
