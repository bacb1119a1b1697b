"""C lowering of UNIDIRECTIONAL_SEQUENCE_LSTM (``ek_lstm_s8``) and SVDF (``ek_svdf_s8``):
the fixed-point parameters come from ``edgekit.reference.recurrent_kernels`` (the same
numbers the reference interpreter uses), so the C kernels reproduce its bytes."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c.params import ConstArray, KernelCall, Struct, TensorRef
from edgekit.errors import BadInputError
from edgekit.ir.dtypes import DType


def lower_lstm(low) -> KernelCall:
    """``low``: edgekit.backends.c.params._Lowering of an UNIDIRECTIONAL_SEQUENCE_LSTM op."""
    from edgekit.reference.recurrent_kernels import LstmInt8Params

    a = low.attrs
    x = low.int8(low.t(0), "input")
    y = low.int8(low.out, "output")
    ws = [low.t(i) for i in range(1, 9)]
    bs = [low.t(i) for i in range(9, 13)]
    for w in ws:
        low.int8(w, "weights")
        if not w.is_const:
            raise low.unsupported(f"the weights {w.name!r} must be constant")
    for b in bs:
        if not b.is_const or b.dtype is not DType.INT32:
            raise low.unsupported(f"the bias {b.name!r} must be a constant int32 tensor")
    try:
        p = LstmInt8Params(low.per_tensor(x), [low.qp(w) for w in ws[:4]], [low.qp(w) for w in ws[4:]],
                           low.per_tensor(y), a["cell_state_exponent"], a["cell_clip"])
    except BadInputError as exc:
        raise low.unsupported(str(exc)) from None
    t_major = bool(a["time_major"])
    steps, batches, n_in = x.shape if t_major else (x.shape[1], x.shape[0], x.shape[2])
    hidden = ws[0].shape[0]
    struct = Struct("ek_lstm_params", {
        "batches": int(batches), "steps": int(steps), "input_size": int(n_in), "hidden": int(hidden),
        "time_major": int(t_major), "input_offset": -p.x_zp, "hidden_offset": -p.h_zp, "output_offset": p.h_zp,
        "input_mult": [int(m) for m, _ in p.input_fc], "input_shift": [int(s) for _, s in p.input_fc],
        "recurrent_mult": [int(m) for m, _ in p.recurrent_fc], "recurrent_shift": [int(s) for _, s in p.recurrent_fc],
        "forget_mult": int(p.forget_mul[0]), "forget_shift": int(p.forget_mul[1]),
        "input_gate_mult": int(p.input_mul[0]), "input_gate_shift": int(p.input_mul[1]),
        "output_mult": int(p.output_mul[0]), "output_shift": int(p.output_mul[1]),
        "cell_tanh_multiplier": int(p.cell_tanh[0]), "cell_tanh_shift": int(p.cell_tanh[1]),
        "use_clip": int(p.clip), "cell_clip": int(p.quantized_clip)})
    w_in = np.concatenate([np.asarray(w.data, np.int8).ravel() for w in ws[:4]])
    w_rec = np.concatenate([np.asarray(w.data, np.int8).ravel() for w in ws[4:]])
    bias = np.concatenate([np.asarray(b.data, np.int32).ravel() for b in bs])
    return low.call("lstm", "ek_lstm_s8", [
        struct, TensorRef(x.name), ConstArray("int8_t", w_in, "weights", ws[0].name),
        ConstArray("int8_t", w_rec, "weights", ws[4].name), ConstArray("int32_t", bias, "bias", bs[0].name),
        low.output()], scratch_stack_bytes=2 * int(hidden))


def lower_svdf(low) -> KernelCall:
    """``low``: edgekit.backends.c.params._Lowering of an SVDF op."""
    from edgekit.reference.recurrent_kernels import svdf_int8_params

    a = low.attrs
    x = low.int8(low.t(0), "input")
    y = low.int8(low.out, "output")
    wf, wt, b = low.int8(low.t(1), "weights_feature"), low.t(2), low.t(3)
    if not wf.is_const or not wt.is_const or wt.dtype is not DType.INT16:
        raise low.unsupported("weights_feature (int8) and weights_time (int16) must be constants")
    if b is None or not b.is_const or b.dtype is not DType.INT32:
        raise low.unsupported("an int8 SVDF needs a constant int32 bias")
    try:
        (m1, s1), (m2, s2), zp_in, zp_out = svdf_int8_params(low.per_tensor(x), low.qp(wf), low.qp(wt),
                                                             low.per_tensor(y), a["state_scale"])
    except BadInputError as exc:
        raise low.unsupported(str(exc)) from None
    features, _ = wt.shape
    struct = Struct("ek_svdf_params", {
        "batches": int(x.shape[0]), "input_size": int(x.shape[1]), "features": int(features), "rank": int(a["rank"]),
        "input_offset": -zp_in, "feature_mult": int(m1), "feature_shift": int(s1), "output_mult": int(m2),
        "output_shift": int(s2), "output_offset": zp_out})
    # Every invocation starts from a zero state: only the newest memory slot contributes.
    last = np.ascontiguousarray(np.asarray(wt.data, np.int16)[:, -1].astype(np.int32))
    return low.call("svdf", "ek_svdf_s8", [
        struct, TensorRef(x.name), ConstArray("int8_t", np.ascontiguousarray(wf.data, np.int8), "weights", wf.name),
        ConstArray("int32_t", last, "weights", wt.name),
        ConstArray("int32_t", np.ascontiguousarray(b.data, np.int32), "bias", b.name), low.output()])
