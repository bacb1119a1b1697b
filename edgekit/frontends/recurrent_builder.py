"""Recurrent layers in the IR, shared by the torch, ONNX and Keras importers.

An importer hands over the weights in a common form (gates in TFLite's LSTM order
input, forget, cell, output; GRU gates reset, update, new) and two callbacks:
``emit(op_type, inputs, shape, attrs, hint) -> tensor name`` and
``const(array, hint) -> tensor name``. The input is batch-major ``[B, T, I]``.

LSTM becomes one UNIDIRECTIONAL_SEQUENCE_LSTM (TFLite Micro's fused kernel).

GRU has no TFLite builtin: it is unrolled over its static time steps into the
primitives TFLite's converter produces for an unrolled Keras GRU. Per gate, one
FULLY_CONNECTED over the whole sequence computes the input products (with the input
bias), a SLICE takes step t; the recurrent product is a FULLY_CONNECTED of the hidden
state (with the recurrent bias). Then r = LOGISTIC(xr + hr), z = LOGISTIC(xz + hz),
n = TANH(xn + r * hn) (``linear_before_reset``, torch's and Keras' reset_after form) or
TANH(xn + FC(r * h)) (ONNX's default), h = n + z * (h - n). The step outputs are joined
with one CONCATENATION (only when the whole sequence is used). Why unrolled and not a
fused op: docs/ops-notes.md (recurrent section).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgekit.ir.ops import OpType

Emit = Callable[..., str]
Const = Callable[[np.ndarray, str], str]


def reverse_time(emit: Emit, int_const: Const, x: str, shape, hint: str) -> str:
    """``x`` [B, T, F] with its time steps in reverse order (a GATHER on axis 1)."""
    t = int(shape[1])
    if t == 1:
        return x
    idx = int_const(np.arange(t - 1, -1, -1, dtype=np.int32), f"{hint}_reverse_indices")
    return emit(OpType.GATHER, [x, idx], tuple(int(d) for d in shape), {"axis": 1}, f"{hint}_reversed")


def emit_lstm(emit: Emit, const: Const, x: str, x_shape, w_ih: np.ndarray, w_hh: np.ndarray,
              bias: np.ndarray | None, hint: str) -> str:
    """One forward LSTM layer over ``x`` [B, T, I]; returns the output sequence [B, T, H].

    ``w_ih`` [4H, I], ``w_hh`` [4H, H] and ``bias`` [4H] hold the gates in the order
    input, forget, cell, output (torch's and Keras' order)."""
    b, t, n_in = (int(d) for d in x_shape)
    w_ih = np.asarray(w_ih, np.float32)
    w_hh = np.asarray(w_hh, np.float32)
    hidden = w_ih.shape[0] // 4
    if w_ih.shape != (4 * hidden, n_in) or w_hh.shape != (4 * hidden, hidden):
        raise ValueError(f"LSTM weights {list(w_ih.shape)} / {list(w_hh.shape)} do not fit input size {n_in}")
    bias = np.zeros(4 * hidden, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(4 * hidden)
    names = [const(w_ih[k * hidden:(k + 1) * hidden], f"{hint}_w{k}") for k in range(4)]
    names += [const(w_hh[k * hidden:(k + 1) * hidden], f"{hint}_r{k}") for k in range(4)]
    names += [const(bias[k * hidden:(k + 1) * hidden], f"{hint}_b{k}") for k in range(4)]
    return emit(OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, [x] + names, (b, t, hidden), {}, hint)


def emit_lstm_reverse(emit: Emit, const: Const, int_const: Const, x: str, x_shape, w_ih, w_hh, bias,
                      hint: str) -> tuple[str, str]:
    """A reverse-direction LSTM layer: the fused LSTM over the time-reversed input, its
    output reversed back. Returns (sequence [B, T, H], the final state [B, H], which is
    the output at step 0)."""
    b, t, _ = (int(d) for d in x_shape)
    hidden = np.asarray(w_ih).shape[0] // 4
    xr = reverse_time(emit, int_const, x, x_shape, f"{hint}_in")
    yr = emit_lstm(emit, const, xr, x_shape, w_ih, w_hh, bias, hint)
    y = reverse_time(emit, int_const, yr, (b, t, hidden), f"{hint}_out")
    return y, last_step(emit, yr, (b, t, hidden), hint)


def first_step(emit: Emit, y: str, y_shape, hint: str) -> str:
    """The first time step [B, H] of a sequence [B, T, H]."""
    b, t, h = (int(d) for d in y_shape)
    s = emit(OpType.SLICE, [y], (b, 1, h), {"begin": (0, 0, 0), "size": (b, 1, h)}, f"{hint}_first")
    return emit(OpType.RESHAPE, [s], (b, h), {"shape": (b, h)}, f"{hint}_first2d")


def last_step(emit: Emit, y: str, y_shape, hint: str) -> str:
    """The last time step [B, H] of a sequence [B, T, H]."""
    b, t, h = (int(d) for d in y_shape)
    s = emit(OpType.SLICE, [y], (b, 1, h), {"begin": (0, t - 1, 0), "size": (b, 1, h)}, f"{hint}_last")
    return emit(OpType.RESHAPE, [s], (b, h), {"shape": (b, h)}, f"{hint}_last2d")


def emit_gru(emit: Emit, const: Const, x: str, x_shape, w_ih: np.ndarray, w_hh: np.ndarray,
             b_ih: np.ndarray | None, b_hh: np.ndarray | None, hint: str, *,
             linear_before_reset: bool = True, need_sequence: bool = True,
             reverse: bool = False) -> tuple[str | None, str]:
    """One forward GRU layer over ``x`` [B, T, I], unrolled. ``w_ih`` [3H, I], ``w_hh`` [3H, H]
    and the biases [3H] hold the gates in torch's order reset, update, new. Returns
    (the output sequence [B, T, H] or None when not ``need_sequence``, the last state [B, H])."""
    b, t, n_in = (int(d) for d in x_shape)
    w_ih = np.asarray(w_ih, np.float32)
    w_hh = np.asarray(w_hh, np.float32)
    hidden = w_ih.shape[0] // 3
    if w_ih.shape != (3 * hidden, n_in) or w_hh.shape != (3 * hidden, hidden):
        raise ValueError(f"GRU weights {list(w_ih.shape)} / {list(w_hh.shape)} do not fit input size {n_in}")
    zeros = np.zeros(3 * hidden, np.float32)
    b_ih = zeros if b_ih is None else np.asarray(b_ih, np.float32).reshape(-1)
    b_hh = zeros if b_hh is None else np.asarray(b_hh, np.float32).reshape(-1)
    gates = ("r", "z", "n")

    def part(a, k):
        return a[k * hidden:(k + 1) * hidden]

    # Input products of every step at once, one FULLY_CONNECTED per gate; the recurrent
    # biases of r and z (and of n without linear_before_reset) fold into their biases.
    seq = {}
    for k, gname in enumerate(gates):
        bias = part(b_ih, k) if (linear_before_reset and gname == "n") else part(b_ih, k) + part(b_hh, k)
        seq[gname] = emit(OpType.FULLY_CONNECTED,
                          [x, const(part(w_ih, k), f"{hint}_w{gname}"), const(bias, f"{hint}_bw{gname}")],
                          (b, t, hidden), {"keep_num_dims": True}, f"{hint}_x{gname}")
    rec_w = {g: const(part(w_hh, k), f"{hint}_r{g}") for k, g in enumerate(gates)}
    b_hn = part(b_hh, 2)
    rec_bn = const(b_hn, f"{hint}_brn") if linear_before_reset else None
    h = None  # zero state: the first step skips every recurrent product
    outs = {}
    for step in (range(t - 1, -1, -1) if reverse else range(t)):
        p = f"{hint}_t{step}"

        def at(gname, step=step, p=p):
            s = emit(OpType.SLICE, [seq[gname]], (b, 1, hidden),
                     {"begin": (0, step, 0), "size": (b, 1, hidden)}, f"{p}_x{gname}_slice")
            return emit(OpType.RESHAPE, [s], (b, hidden), {"shape": (b, hidden)}, f"{p}_x{gname}")

        xr, xz, xn = at("r"), at("z"), at("n")
        if h is None:
            z = emit(OpType.LOGISTIC, [xz], (b, hidden), {}, f"{p}_z")
            if linear_before_reset and np.any(b_hn != 0):
                # the recurrent product of the zero state is its bias b_hn
                r = emit(OpType.LOGISTIC, [xr], (b, hidden), {}, f"{p}_r")
                rn = emit(OpType.MUL, [r, rec_bn], (b, hidden), {}, f"{p}_rn")
                n = emit(OpType.TANH, [emit(OpType.ADD, [xn, rn], (b, hidden), {}, f"{p}_an")],
                         (b, hidden), {}, f"{p}_n")
            else:
                n = emit(OpType.TANH, [xn], (b, hidden), {}, f"{p}_n")
            # h = (1 - z) * n
            zn = emit(OpType.MUL, [z, n], (b, hidden), {}, f"{p}_zn")
            h = emit(OpType.SUB, [n, zn], (b, hidden), {}, f"{p}_h")
        else:
            hr = emit(OpType.FULLY_CONNECTED, [h, rec_w["r"]], (b, hidden), {}, f"{p}_hr")
            hz = emit(OpType.FULLY_CONNECTED, [h, rec_w["z"]], (b, hidden), {}, f"{p}_hz")
            r = emit(OpType.LOGISTIC, [emit(OpType.ADD, [xr, hr], (b, hidden), {}, f"{p}_ar")],
                     (b, hidden), {}, f"{p}_r")
            z = emit(OpType.LOGISTIC, [emit(OpType.ADD, [xz, hz], (b, hidden), {}, f"{p}_az")],
                     (b, hidden), {}, f"{p}_z")
            if linear_before_reset:
                hn = emit(OpType.FULLY_CONNECTED, [h, rec_w["n"], rec_bn], (b, hidden), {}, f"{p}_hn")
                rn = emit(OpType.MUL, [r, hn], (b, hidden), {}, f"{p}_rn")
            else:
                rh = emit(OpType.MUL, [r, h], (b, hidden), {}, f"{p}_rh")
                rn = emit(OpType.FULLY_CONNECTED, [rh, rec_w["n"]], (b, hidden), {}, f"{p}_rn")
            n = emit(OpType.TANH, [emit(OpType.ADD, [xn, rn], (b, hidden), {}, f"{p}_an")], (b, hidden), {}, f"{p}_n")
            d = emit(OpType.SUB, [h, n], (b, hidden), {}, f"{p}_d")
            zd = emit(OpType.MUL, [z, d], (b, hidden), {}, f"{p}_zd")
            h = emit(OpType.ADD, [n, zd], (b, hidden), {}, f"{p}_h")
        outs[step] = h
    if not need_sequence:
        return None, h
    steps = [emit(OpType.RESHAPE, [outs[i]], (b, 1, hidden), {"shape": (b, 1, hidden)}, f"{hint}_y{i}")
             for i in range(t)]
    y = steps[0] if t == 1 else emit(OpType.CONCATENATION, steps, (b, t, hidden), {"axis": 1}, f"{hint}_y")
    return y, h


def emit_rnn(emit: Emit, const: Const, x: str, x_shape, w_ih: np.ndarray, w_hh: np.ndarray,
             bias: np.ndarray | None, hint: str, *, need_sequence: bool = True,
             reverse: bool = False) -> tuple[str | None, str]:
    """One forward tanh RNN layer (torch nn.RNN, ONNX RNN, Keras SimpleRNN) over ``x``
    [B, T, I], unrolled: h = TANH(W x + b + R h). ``bias`` is the sum of both biases.
    Returns (the sequence [B, T, H] or None, the last state [B, H])."""
    b, t, n_in = (int(d) for d in x_shape)
    w_ih = np.asarray(w_ih, np.float32)
    w_hh = np.asarray(w_hh, np.float32)
    hidden = w_ih.shape[0]
    if w_ih.shape != (hidden, n_in) or w_hh.shape != (hidden, hidden):
        raise ValueError(f"RNN weights {list(w_ih.shape)} / {list(w_hh.shape)} do not fit input size {n_in}")
    bias = np.zeros(hidden, np.float32) if bias is None else np.asarray(bias, np.float32).reshape(hidden)
    seq = emit(OpType.FULLY_CONNECTED, [x, const(w_ih, f"{hint}_w"), const(bias, f"{hint}_b")],
               (b, t, hidden), {"keep_num_dims": True}, f"{hint}_x")
    rec = const(w_hh, f"{hint}_r")
    h = None
    outs = {}
    for step in (range(t - 1, -1, -1) if reverse else range(t)):
        p = f"{hint}_t{step}"
        s = emit(OpType.SLICE, [seq], (b, 1, hidden), {"begin": (0, step, 0), "size": (b, 1, hidden)}, f"{p}_slice")
        s = emit(OpType.RESHAPE, [s], (b, hidden), {"shape": (b, hidden)}, f"{p}_x")
        if h is not None:
            s = emit(OpType.ADD, [s, emit(OpType.FULLY_CONNECTED, [h, rec], (b, hidden), {}, f"{p}_rh")],
                     (b, hidden), {}, f"{p}_a")
        h = emit(OpType.TANH, [s], (b, hidden), {}, f"{p}_h")
        outs[step] = h
    if not need_sequence:
        return None, h
    steps = [emit(OpType.RESHAPE, [outs[i]], (b, 1, hidden), {"shape": (b, 1, hidden)}, f"{hint}_y{i}")
             for i in range(t)]
    y = steps[0] if t == 1 else emit(OpType.CONCATENATION, steps, (b, t, hidden), {"axis": 1}, f"{hint}_y")
    return y, h
