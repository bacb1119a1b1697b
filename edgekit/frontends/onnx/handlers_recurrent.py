"""ONNX LSTM, GRU and RNN: forward, reverse or bidirectional, batch 1 or N, either layout,
initial states absent or constant zeros, default activations, no peepholes, no clip,
sequence lengths absent or all equal to the sequence length. Anything else is refused
naming what. The reverse direction runs on the time-reversed sequence (LSTM: a GATHER
before and after the fused op; GRU and RNN: their unrolled steps in reverse order).

The layers are built by ``edgekit.frontends.recurrent_builder`` (LSTM: one fused
UNIDIRECTIONAL_SEQUENCE_LSTM; GRU and RNN: unrolled primitives). ONNX's gate orders (LSTM
i, o, f, c; GRU z, r, h) are reordered to the builder's. Y is 4-D ([T, D, B, H], or
[B, T, D, H] with layout=1), so it is NHWC in the IR like every 4-D run-time tensor;
Y_h is [D, B, H] ([B, D, H]); Y_c (the final cell state) is not available.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends import recurrent_builder as rb
from edgekit.frontends.onnx.convert import Converter, handler
from edgekit.frontends.onnx.values import Act
from edgekit.ir.ops import OpType

_DEFAULT_ACTS = {"LSTM": ["sigmoid", "tanh", "tanh"], "GRU": ["sigmoid", "tanh"], "RNN": ["tanh"]}


def _callbacks(c: Converter):
    def emit(op_type, inputs, shape, attrs, hint):
        out = c.emit(op_type, inputs, attrs or {}, out=c.new_name(hint))
        if tuple(c.g.tensor(out).shape) != tuple(int(d) for d in shape):  # pragma: no cover - builder bug
            raise c.malformed(f"internal shape mismatch {c.g.tensor(out).shape} != {shape}")
        return out

    def const(arr, hint):
        return c.const(np.asarray(arr, np.float32), hint, ir_layout=True)

    def int_const(arr, hint):
        return c.const(np.asarray(arr, np.int32), hint, ir_layout=True)

    return emit, const, int_const


_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}


def _directions(c: Converter, a: dict) -> tuple[bool, ...]:
    d = a.get("direction", "forward")
    if d not in _DIRECTIONS:
        raise c.malformed(f"direction {d!r} is not forward, reverse or bidirectional")
    return _DIRECTIONS[d]


def _check(c: Converter, node, a: dict, kind: str, x_shape, layout: int) -> None:
    acts = [s.lower() for s in a.get("activations", [])]
    n_dirs = len(_directions(c, a))
    if acts and acts != _DEFAULT_ACTS[kind] * n_dirs:
        raise c.unsupported(f"activations {a['activations']} (only the defaults {_DEFAULT_ACTS[kind]})")
    if "clip" in a:
        raise c.unsupported("clip (the gate pre-activation clip has no TFLite equivalent)")
    if a.get("input_forget", 0):
        raise c.unsupported("input_forget=1 (coupled input and forget gates)")
    steps = x_shape[1] if layout else x_shape[0]
    lens = c.inp(node, 4, required=False)
    if lens is not None:
        if isinstance(lens, Act):
            raise c.unsupported("sequence_lens given at run time (only constants equal to the sequence length)")
        if np.any(np.asarray(lens).reshape(-1) != steps):
            raise c.unsupported(f"sequence_lens {np.asarray(lens).tolist()} shorter than the sequence ({steps})")
    state_inputs = (5, 6, 7) if kind == "LSTM" else (5,)
    for i in state_inputs:
        v = c.inp(node, i, required=False)
        if v is None:
            continue
        what = {5: "initial_h", 6: "initial_c", 7: "P (peepholes)"}[i]
        if isinstance(v, Act) or np.any(np.asarray(c.const_inp(node, i, what)) != 0):
            raise c.unsupported(f"a non-zero {what} (TFLite's recurrent kernels start from zero, no peepholes)")


def _sequence_in(c: Converter, node, layout: int):
    x = c.act_inp(node, 0)
    shape = c.g.tensor(x).shape
    if len(shape) != 3:
        raise c.malformed(f"X must be 3-D, got {list(shape)}")
    if layout:
        return x, tuple(shape), shape
    t, b, i = shape
    if b == 1 or t == 1:
        xb = c.emit(OpType.RESHAPE, [x], {"shape": (b, t, i)})
    else:
        xb = c.emit(OpType.TRANSPOSE, [x], {"perm": (1, 0, 2)})
    return xb, (b, t, i), shape


def _outputs(c: Converter, node, results, bth, layout: int, kind: str) -> None:
    """``results``: per direction (sequence [B, T, H] or None, final state [B, H])."""
    b, t, h = bth
    d = len(results)
    if c.used(node, 0):
        parts = []
        for y, _ in results:
            if y is None:  # pragma: no cover - the builder returns the sequence when asked
                raise c.malformed("the sequence output was not built")
            if layout:  # Y [B, T, D, H] -> IR (B, D, H, T)
                yt = c.emit(OpType.TRANSPOSE, [y], {"perm": (0, 2, 1)}) if t > 1 and h > 1 else y
                parts.append(c.emit(OpType.RESHAPE, [yt], {"shape": (b, 1, h, t)}))
            else:  # Y [T, D, B, H] -> IR (T, B, H, D)
                yt = c.emit(OpType.TRANSPOSE, [y], {"perm": (1, 0, 2)}) if b > 1 and t > 1 else y
                parts.append(c.emit(OpType.RESHAPE, [yt], {"shape": (t, b, h, 1)}))
        out = c.out_name(node.output[0])
        if d == 1:
            out = c.emit(OpType.RESHAPE, [parts[0]], {"shape": c.g.tensor(parts[0]).shape}, out=out)
        else:
            out = c.emit(OpType.CONCATENATION, parts, {"axis": 1 if layout else 3}, out=out)
        c.set_out(node, 0, Act(out))
    if c.used(node, 1):
        shape = (b, 1, h) if layout else (1, b, h)
        parts = [c.emit(OpType.RESHAPE, [last], {"shape": shape}) for _, last in results]
        out = c.out_name(node.output[1])
        if d == 1:
            out = c.emit(OpType.RESHAPE, [parts[0]], {"shape": shape}, out=out)
        else:
            out = c.emit(OpType.CONCATENATION, parts, {"axis": 1 if layout else 0}, out=out)
        c.set_out(node, 1, Act(out))
    if kind == "LSTM" and c.used(node, 2):
        raise c.unsupported("the Y_c output (TFLite's LSTM keeps the cell state inside the op)")


def _weights(c: Converter, node, n_gates: int, hidden: int, n_in: int, n_dirs: int):
    """Per direction: (W [G*H, I], R [G*H, H], Wb [G*H], Rb [G*H])."""
    w = np.asarray(c.const_inp(node, 1, "W"), np.float32)
    r = np.asarray(c.const_inp(node, 2, "R"), np.float32)
    bias = c.const_inp(node, 3, "B", required=False)
    if w.shape != (n_dirs, n_gates * hidden, n_in) or r.shape != (n_dirs, n_gates * hidden, hidden):
        raise c.malformed(f"W {list(w.shape)} / R {list(r.shape)} do not match hidden_size {hidden}, "
                          f"input size {n_in} and {n_dirs} direction(s)")
    if bias is None:
        bias = np.zeros((n_dirs, 2 * n_gates * hidden), np.float32)
    bias = np.asarray(bias, np.float32)
    if bias.shape != (n_dirs, 2 * n_gates * hidden):
        raise c.malformed(f"B has shape {list(bias.shape)}, expected {[n_dirs, 2 * n_gates * hidden]}")
    return [(w[k], r[k], bias[k, :n_gates * hidden], bias[k, n_gates * hidden:]) for k in range(n_dirs)]


def _reorder(a: np.ndarray, hidden: int, order) -> np.ndarray:
    return np.concatenate([a[k * hidden:(k + 1) * hidden] for k in order], axis=0)


def _setup(c: Converter, node, a: dict, kind: str, n_gates: int):
    layout = int(a.get("layout", 0))
    x, bti, src_shape = _sequence_in(c, node, layout)
    _check(c, node, a, kind, src_shape, layout)
    dirs = _directions(c, a)
    hidden = int(a.get("hidden_size", c.const_inp(node, 2, "R").shape[-1]))
    weights = _weights(c, node, n_gates, hidden, bti[2], len(dirs))
    return layout, x, bti, dirs, hidden, weights


@handler("LSTM")
def _lstm(c: Converter, node, a):
    layout, x, (b, t, n_in), dirs, hidden, weights = _setup(c, node, a, "LSTM", 4)
    order = (0, 2, 3, 1)  # ONNX i, o, f, c -> i, f, c, o
    emit, const, int_const = _callbacks(c)
    results = []
    for reverse, (w, r, wb, rb_) in zip(dirs, weights):
        hint = f"{c.node_name()}_{'reverse' if reverse else 'forward'}"
        args = (x, (b, t, n_in), _reorder(w, hidden, order), _reorder(r, hidden, order),
                _reorder(wb + rb_, hidden, order))
        if reverse:
            results.append(rb.emit_lstm_reverse(emit, const, int_const, *args, hint))
        else:
            y = rb.emit_lstm(emit, const, *args, hint)
            results.append((y, rb.last_step(emit, y, (b, t, hidden), hint) if c.used(node, 1) else None))
    _outputs(c, node, results, (b, t, hidden), layout, "LSTM")


@handler("GRU")
def _gru(c: Converter, node, a):
    layout, x, (b, t, n_in), dirs, hidden, weights = _setup(c, node, a, "GRU", 3)
    order = (1, 0, 2)  # ONNX z, r, h -> r, z, n
    emit, const, _ = _callbacks(c)
    results = []
    for reverse, (w, r, wb, rb_) in zip(dirs, weights):
        results.append(rb.emit_gru(emit, const, x, (b, t, n_in), _reorder(w, hidden, order),
                                   _reorder(r, hidden, order), _reorder(wb, hidden, order),
                                   _reorder(rb_, hidden, order),
                                   f"{c.node_name()}_{'reverse' if reverse else 'forward'}",
                                   linear_before_reset=bool(a.get("linear_before_reset", 0)),
                                   need_sequence=c.used(node, 0), reverse=reverse))
    _outputs(c, node, results, (b, t, hidden), layout, "GRU")


@handler("RNN")
def _rnn(c: Converter, node, a):
    layout, x, (b, t, n_in), dirs, hidden, weights = _setup(c, node, a, "RNN", 1)
    emit, const, _ = _callbacks(c)
    results = []
    for reverse, (w, r, wb, rb_) in zip(dirs, weights):
        results.append(rb.emit_rnn(emit, const, x, (b, t, n_in), w, r, wb + rb_,
                                   f"{c.node_name()}_{'reverse' if reverse else 'forward'}",
                                   need_sequence=c.used(node, 0), reverse=reverse))
    _outputs(c, node, results, (b, t, hidden), layout, "RNN")
