"""int8 quantization of UNIDIRECTIONAL_SEQUENCE_LSTM, with the parameters TFLite's
converter gives it for TensorFlow Lite Micro's 8x8->16 integer LSTM:

- the output (and so the hidden state, which TFLM copies to the output) has its own
  calibrated asymmetric int8 range;
- the eight weight matrices are symmetric int8, one scale per tensor (max|w| / 127);
  TFLM's LSTM reads a single multiplier per product, so never per channel;
- the four gate biases are int32 with scale s_input * s_weight of their gate's input
  weights (the recurrent product has no bias);
- the cell state is int16 with the power-of-two scale 2^e, e = ceil(log2(max|c|)) - 15,
  where max|c| is the largest cell value over the calibration data (the float LSTM run
  on the op's calibrated inputs): the smallest such scale that holds the range;
- the gate pre-activations (Q3.12) and gate outputs (Q0.15) have fixed scales inside
  the kernel: there are no intermediate tensors to calibrate.

SVDF, for TFLite Micro's integer SVDF (int8 input and output, int16 state):
- weights_feature symmetric int8 per tensor; weights_time symmetric int16 per tensor
  (max|w| / 32767);
- the state int16 symmetric with scale max|W_f x| / 32767 over the calibration data
  (``state_scale``);
- the bias int32 with scale float32(s_state) * float32(s_wt) (zeros when the float op
  has none: TFLM's integer SVDF reads the bias scale);
- the output its own calibrated range, taken after the fused activation: TFLM's integer
  path does not apply it, the int8 clamp of a range starting at 0 does RELU's work.
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.quantize import scheme

RECURRENT_QUANTIZABLE = {OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, OpType.SVDF}


def unquantizable_reason(g: Graph, op: Op) -> str:
    """Why ``op`` cannot be quantized ("" when it can)."""
    for name in op.inputs[1:]:
        if name and not g.tensor(name).is_const:
            return f"its weights and biases must be constant ({name!r} is not)"
    return ""


def lstm_cell_max(x: np.ndarray, weights, recurrent, biases, *, time_major: bool, cell_clip: float) -> float:
    """The largest |cell state| of the float LSTM over inputs ``x`` (all steps, all samples)."""
    from edgekit.reference.float_kernels import logistic

    x = np.asarray(x, np.float32)
    if time_major:
        x = np.swapaxes(x, 0, 1)
    w = [np.asarray(v, np.float32) for v in weights]
    r = [np.asarray(v, np.float32) for v in recurrent]
    b = [np.asarray(v, np.float32) for v in biases]
    hidden = w[0].shape[0]
    h = np.zeros((x.shape[0], hidden), np.float32)
    c = np.zeros_like(h)
    top = 0.0
    for t in range(x.shape[1]):
        pre = [x[:, t] @ w[k].T + b[k] + h @ r[k].T for k in range(4)]
        c = logistic(pre[1]) * c + logistic(pre[0]) * np.tanh(pre[2])
        if cell_clip > 0:
            c = np.clip(c, -cell_clip, cell_clip)
        h = logistic(pre[3]) * np.tanh(c)
        top = max(top, float(np.abs(c).max()) if c.size else 0.0)
    return top


def cell_state_exponent(max_abs: float) -> int:
    """e of the int16 cell-state scale 2^e covering [-max_abs, max_abs] (at least 2^-30 wide)."""
    if not np.isfinite(max_abs):
        raise BadInputError(f"the LSTM cell state reached {max_abs} during calibration")
    max_abs = max(float(max_abs), 2.0 ** -15)
    return max(-30, min(0, math.ceil(math.log2(max_abs)) - 15))


def set_state_params(fg: Graph, arrays, batch_size: int = 64) -> dict[str, float]:
    """Run the float graph on the calibration ``arrays`` and store each LSTM's cell-state
    exponent and each SVDF's state scale in its attributes (``fg`` is the quantizer's own
    copy). Returns them by op."""
    lstms = [op for op in fg.ops if op.type in RECURRENT_QUANTIZABLE]
    if not lstms:
        return {}
    from edgekit.reference.interpreter import Interpreter

    interp = Interpreter(fg, check=False)
    n = len(arrays[0])
    tops = {op.name: 0.0 for op in lstms}
    for s in range(0, n, batch_size):
        env = interp.run([a[s:s + batch_size] for a in arrays], dump=True)
        for op in lstms:
            attrs = normalize_attrs(op.type, op.attrs)
            x = env[op.inputs[0]] if op.inputs[0] in env else fg.tensor(op.inputs[0]).data
            if op.type is OpType.SVDF:
                state = np.asarray(x, np.float32) @ fg.const(op.inputs[1]).astype(np.float32).T
                tops[op.name] = max(tops[op.name], float(np.abs(state).max()) if state.size else 0.0)
                continue
            consts = [fg.const(i) for i in op.inputs[1:]]
            tops[op.name] = max(tops[op.name], lstm_cell_max(x, consts[0:4], consts[4:8], consts[8:12],
                                                             time_major=attrs["time_major"],
                                                             cell_clip=attrs["cell_clip"]))
    out = {}
    for op in lstms:
        if op.type is OpType.SVDF:
            top = tops[op.name]
            if not np.isfinite(top):
                raise BadInputError(f"the SVDF state of {op.name!r} reached {top} during calibration")
            op.attrs = {**op.attrs, "state_scale": float(np.float32(max(top, 1e-8) / 32767.0))}
            out[op.name] = op.attrs["state_scale"]
            continue
        op.attrs = {**op.attrs, "cell_state_exponent": cell_state_exponent(tops[op.name])}
        out[op.name] = op.attrs["cell_state_exponent"]
    return out


def operands(q: Graph, g: Graph, op: Op, input_scale: float) -> list[str]:
    """The int8 graph's operands of recurrent ``op`` (slot 0, the input, left to the caller)."""
    if op.type is OpType.UNIDIRECTIONAL_SEQUENCE_LSTM:
        return lstm_operands(q, g, op, input_scale)
    return svdf_operands(q, g, op, input_scale)


def svdf_operands(q: Graph, g: Graph, op: Op, input_scale: float) -> list[str]:
    attrs = normalize_attrs(op.type, op.attrs)
    wf = g.const(op.inputs[1]).astype(np.float32)
    wt = g.const(op.inputs[2]).astype(np.float32)
    s_wf = scheme.weight_scales(wf, None)
    s_wt = np.float32(max(float(np.abs(wt).max()) if wt.size else 0.0, 1e-12) / 32767.0)
    units = wf.shape[0] // attrs["rank"]
    s_state = np.float32(attrs["state_scale"])
    b = g.const(op.input(3)) if op.input(3) else np.zeros(units, np.float32)
    s_bias = float(np.float32(s_state * s_wt))
    bias = np.clip(np.round(np.asarray(b, np.float64) / s_bias), -2**31, 2**31 - 1).astype(np.int32)
    wt_q = np.clip(np.round(wt.astype(np.float64) / float(s_wt)), -32767, 32767).astype(np.int16)
    return [None,
            q.add_const(op.inputs[1], scheme.quantize_weights(wf, s_wf, None),
                        QuantParams.per_tensor(float(s_wf[0]), 0), DType.INT8).name,
            q.add_const(op.inputs[2], wt_q, QuantParams.per_tensor(float(s_wt), 0), DType.INT16).name,
            q.add_const(op.input(3) or f"{op.name}_bias", bias, QuantParams.per_tensor(s_bias, 0), DType.INT32).name]


def lstm_operands(q: Graph, g: Graph, op: Op, input_scale: float) -> list[str]:
    """The int8 graph's operand names of LSTM ``op``: the input name is left to the caller
    (slot 0 is None here), then 8 per-tensor int8 weights and 4 int32 biases."""
    names: list[str | None] = [None]
    w_scales = []
    for j in range(1, 9):
        w = g.const(op.inputs[j]).astype(np.float32)
        scales = scheme.weight_scales(w, None)
        if j <= 4:
            b = g.const(op.inputs[j + 8])
            scales = scheme.fit_bias(b, input_scale, scales)
            w_scales.append(scales)
        data = scheme.quantize_weights(w, scales, None)
        names.append(q.add_const(op.inputs[j], data, QuantParams.per_tensor(float(scales[0]), 0), DType.INT8).name)
    for k in range(4):
        b = g.const(op.inputs[9 + k]).astype(np.float32)
        data = scheme.quantize_bias(b, input_scale, w_scales[k], b.shape[0])
        bs = float(scheme.bias_scales(input_scale, w_scales[k])[0])
        names.append(q.add_const(op.inputs[9 + k], data, QuantParams.per_tensor(bs, 0), DType.INT32).name)
    return names
