"""torch importer handlers of ``aten.lstm``, ``aten.gru`` and ``aten.rnn_tanh`` (nn.LSTM,
nn.GRU, nn.RNN with tanh): one or both directions, any number of layers, batch_first or
not, initial states absent or zero.

The layers are built by ``edgekit.frontends.recurrent_builder`` (LSTM: one fused
UNIDIRECTIONAL_SEQUENCE_LSTM per layer and direction, the reverse one between two
time-reversing GATHERs; GRU and RNN: unrolled primitives). A bidirectional layer
concatenates both directions' features, as torch does. Outputs: the sequence of the
last layer, and h_n ([layers * directions, B, H]) from the final state of each layer
and direction; c_n of an LSTM is not available (TFLite's LSTM keeps the cell state
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

    def int_const(arr, hint):
        return im.g.add_const(hint, np.asarray(arr, np.int32)).name

    return emit, const, int_const


def _check_common(im, a, kind: str):
    if a.get("train"):
        raise im.unsupported(f"{kind} in training mode; export the model in eval mode")
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
    """Per layer, per direction: (w_ih, w_hh, b_ih, b_hh)."""
    params = [im.const(p, f"{kind} parameter") for p in a["params"]]
    layers = int(a["num_layers"])
    dirs = 2 if a.get("bidirectional") else 1
    per = 4 if a["has_biases"] else 2
    if len(params) != per * layers * dirs:
        raise im.unsupported(f"{kind} has {len(params)} parameter tensors, expected {per * layers * dirs} "
                             "(projections are not supported)")
    out = []
    for i in range(layers):
        layer = []
        for d in range(dirs):
            p = params[(i * dirs + d) * per:(i * dirs + d + 1) * per]
            w_ih, w_hh = p[0], p[1]
            if w_hh.shape[1] * n_gates != w_hh.shape[0]:
                raise im.unsupported(f"{kind} with projections (proj_size) is not supported")
            b_ih, b_hh = (p[2], p[3]) if per == 4 else (None, None)
            layer.append((w_ih, w_hh, b_ih, b_hh))
        out.append(layer)
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

    b, t, f = y_shape
    h = int(im.g.tensor(lasts[0]).shape[1])
    if batch_first:
        seq = _Val(y, (b, t, f))
    else:
        seq = _Val(im.transpose(y, (1, 0, 2), im.tmp("time_major")), (t, b, f))
    emit, _, _ = _callbacks(im)
    stacked = [emit(OpType.RESHAPE, [s], (1, b, h), {"shape": (1, b, h)}, im.tmp(f"h_n{k}"))
               for k, s in enumerate(lasts)]
    h_n = stacked[0] if len(stacked) == 1 else emit(OpType.CONCATENATION, stacked, (len(stacked), b, h),
                                                    {"axis": 0}, im.tmp("h_n"))
    return seq, _Val(h_n, (len(stacked), b, h))


def _run_layers(im, a, kind: str, n_gates: int, one_direction):
    """Build every layer and direction; ``one_direction(name, shape, weights, hint, reverse)``
    returns (sequence [B, T, H], final state [B, H])."""
    _check_common(im, a, kind)
    emit, _, _ = _callbacks(im)
    x = im.act(a["input"])
    name, shape = _sequence_in(im, x, bool(a["batch_first"]))
    lasts = []
    for k, layer in enumerate(_layers(im, a, n_gates, kind)):
        seqs = []
        hidden = layer[0][1].shape[1]
        for d, weights in enumerate(layer):
            hint = im.tmp(f"l{k}" + ("_reverse" if d else ""))
            try:
                y, last = one_direction(name, shape, weights, hint, bool(d))
            except ValueError as exc:
                raise im.unsupported(str(exc)) from None
            seqs.append(y)
            lasts.append(last)
        shape = (shape[0], shape[1], hidden * len(layer))
        name = seqs[0] if len(seqs) == 1 else emit(OpType.CONCATENATION, seqs, shape, {"axis": 2},
                                                   im.tmp(f"l{k}_both"))
    return _outputs(im, name, shape, lasts, bool(a["batch_first"]))


def lstm(im, node, a):
    from edgekit.frontends.torch_importer import _Unusable

    emit, const, int_const = _callbacks(im)

    def one(name, shape, weights, hint, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        bias = None if b_ih is None else b_ih + b_hh
        if reverse:
            return rb.emit_lstm_reverse(emit, const, int_const, name, shape, w_ih, w_hh, bias, hint)
        y = rb.emit_lstm(emit, const, name, shape, w_ih, w_hh, bias, hint)
        return y, rb.last_step(emit, y, (shape[0], shape[1], w_hh.shape[1]), hint)

    seq, h_n = _run_layers(im, a, "LSTM", 4, one)
    return (seq, h_n, _Unusable("aten.lstm (c_n)", 2))


def gru(im, node, a):
    emit, const, _ = _callbacks(im)

    def one(name, shape, weights, hint, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        return rb.emit_gru(emit, const, name, shape, w_ih, w_hh, b_ih, b_hh, hint, linear_before_reset=True,
                           reverse=reverse)

    return _run_layers(im, a, "GRU", 3, one)


def rnn_tanh(im, node, a):
    emit, const, _ = _callbacks(im)

    def one(name, shape, weights, hint, reverse):
        w_ih, w_hh, b_ih, b_hh = weights
        bias = None if b_ih is None else b_ih + b_hh
        return rb.emit_rnn(emit, const, name, shape, w_ih, w_hh, bias, hint, reverse=reverse)

    return _run_layers(im, a, "RNN", 1, one)
