"""torch importer handlers of ``aten.lstm``, ``aten.gru`` and ``aten.rnn_tanh`` (nn.LSTM,
nn.GRU, nn.RNN with tanh): forward
direction, any number of layers, batch_first or not, initial states absent or zero.

The layers are built by ``edgekit.frontends.recurrent_builder`` (LSTM: one fused
UNIDIRECTIONAL_SEQUENCE_LSTM per layer; GRU: unrolled primitives). Outputs: the
sequence of the last layer, and h_n ([layers, B, H]) as the last steps of each
layer's sequence; c_n of an LSTM is not available (TFLite's LSTM keeps the cell state
inside).
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends import recurrent_builder as rb
from edgekit.ir.ops import OpType


def _callbacks(im):
    def emit(op_type, inputs, shape, attrs, hint):
        return im.emit(op_type, inputs, shape, attrs or {}, hint)

    def const(arr, hint):
        return im.const_tensor(arr, hint)

    return emit, const


def _check_common(im, a, kind: str):
    if a.get("train"):
        raise im.unsupported(f"{kind} in training mode; export the model in eval mode")
    if a.get("bidirectional"):
        raise im.unsupported(f"bidirectional {kind} is not supported (forward direction only)")
    hx = a.get("hx")
    states = hx if isinstance(hx, (list, tuple)) else [hx]
    for s in states:
        if s is None:
            continue
        v = im.val(s)
        if not v.is_const or np.any(np.asarray(v.const) != 0):
            raise im.unsupported(f"{kind} with a non-zero initial state is not supported (TFLite's recurrent "
                                 "kernels start from zero)")


def _layers(im, a, n_gates: int, kind: str):
    params = [im.const(p, f"{kind} parameter") for p in a["params"]]
    layers = int(a["num_layers"])
    per = 4 if a["has_biases"] else 2
    if len(params) != per * layers:
        raise im.unsupported(f"{kind} has {len(params)} parameter tensors, expected {per * layers} "
                             "(projections are not supported)")
    out = []
    for i in range(layers):
        p = params[i * per:(i + 1) * per]
        w_ih, w_hh = p[0], p[1]
        if w_hh.shape[1] * n_gates != w_hh.shape[0]:
            raise im.unsupported(f"{kind} with projections (proj_size) is not supported")
        b_ih, b_hh = (p[2], p[3]) if per == 4 else (None, None)
        out.append((w_ih, w_hh, b_ih, b_hh))
    return out


def _sequence_in(im, x, batch_first: bool):
    """The input as a batch-major [B, T, I] IR tensor."""
    if len(x.shape) != 3:
        raise im.unsupported(f"the input must be 3-D (batched), got {list(x.shape)}")
    if batch_first:
        return x.name, tuple(x.shape)
    t, b, i = x.shape
    return im.transpose(x.name, (1, 0, 2), im.tmp("batch_major")), (b, t, i)


def _outputs(im, y, y_shape, lasts, batch_first: bool):
    from edgekit.frontends.torch_importer import _Val

    b, t, h = y_shape
    if batch_first:
        seq = _Val(y, (b, t, h))
    else:
        seq = _Val(im.transpose(y, (1, 0, 2), im.tmp("time_major")), (t, b, h))
    emit, _ = _callbacks(im)
    stacked = [emit(OpType.RESHAPE, [s], (1, b, h), {"shape": (1, b, h)}, im.tmp(f"h_n{k}"))
               for k, s in enumerate(lasts)]
    h_n = stacked[0] if len(stacked) == 1 else emit(OpType.CONCATENATION, stacked, (len(stacked), b, h),
                                                    {"axis": 0}, im.tmp("h_n"))
    return seq, _Val(h_n, (len(stacked), b, h))


def lstm(im, node, a):
    from edgekit.frontends.torch_importer import _Unusable

    _check_common(im, a, "LSTM")
    emit, const = _callbacks(im)
    x = im.act(a["input"])
    name, shape = _sequence_in(im, x, bool(a["batch_first"]))
    lasts = []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(_layers(im, a, 4, "LSTM")):
        bias = None if b_ih is None else b_ih + b_hh
        try:
            name = rb.emit_lstm(emit, const, name, shape, w_ih, w_hh, bias, im.tmp(f"l{k}"))
        except ValueError as exc:
            raise im.unsupported(str(exc)) from None
        shape = (shape[0], shape[1], w_hh.shape[1])
        lasts.append(rb.last_step(emit, name, shape, im.tmp(f"l{k}")))
    seq, h_n = _outputs(im, name, shape, lasts, bool(a["batch_first"]))
    return (seq, h_n, _Unusable("aten.lstm (c_n)", 2))


def gru(im, node, a):
    _check_common(im, a, "GRU")
    emit, const = _callbacks(im)
    x = im.act(a["input"])
    name, shape = _sequence_in(im, x, bool(a["batch_first"]))
    lasts = []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(_layers(im, a, 3, "GRU")):
        try:
            name, last = rb.emit_gru(emit, const, name, shape, w_ih, w_hh, b_ih, b_hh, im.tmp(f"l{k}"),
                                     linear_before_reset=True)
        except ValueError as exc:
            raise im.unsupported(str(exc)) from None
        shape = (shape[0], shape[1], w_hh.shape[1])
        lasts.append(last)
    seq, h_n = _outputs(im, name, shape, lasts, bool(a["batch_first"]))
    return (seq, h_n)


def rnn_tanh(im, node, a):
    _check_common(im, a, "RNN")
    emit, const = _callbacks(im)
    x = im.act(a["input"])
    name, shape = _sequence_in(im, x, bool(a["batch_first"]))
    lasts = []
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(_layers(im, a, 1, "RNN")):
        bias = None if b_ih is None else b_ih + b_hh
        try:
            name, last = rb.emit_rnn(emit, const, name, shape, w_ih, w_hh, bias, im.tmp(f"l{k}"))
        except ValueError as exc:
            raise im.unsupported(str(exc)) from None
        shape = (shape[0], shape[1], w_hh.shape[1])
        lasts.append(last)
    seq, h_n = _outputs(im, name, shape, lasts, bool(a["batch_first"]))
    return (seq, h_n)
