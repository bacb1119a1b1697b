"""Reference kernels of the recurrent ops: UNIDIRECTIONAL_SEQUENCE_LSTM (float and int8)
and SVDF (float and int8).

SVDF (TFLM's svdf_common.cc): the state [B, F * M] starts at zero and the op is one
invocation of TFLM's kernel: the state shifts left by one element, each filter's new
value W_f x goes into its last memory slot, each filter's output is its state row times
its weights_time row, the rank filters of a unit are summed with the unit's bias, then
the fused activation. edgekit runs every invocation of a model independently, so the
state never carries over between invocations (TFLM's first invocation after it
allocates the state; streaming SVDF models that rely on the carried state are not
reproduced). int8: int8 input and weights_feature, int16 weights_time and state (zero
point 0), int32 bias at s_state * s_wt; W_f x requantized with float32(s_x * s_wf) /
s_state, the output with float32(s_state * s_wt) / s_out, both with TFLM's
double-rounding MultiplyByQuantizedMultiplier; no fused activation in the integer path
(as in TFLM).

LSTM, float: i = sigmoid(W_i x + R_i h + b_i), f = sigmoid(W_f x + R_f h + b_f),
g = tanh(W_c x + R_c h + b_c), o = sigmoid(W_o x + R_o h + b_o), c = f * c + i * g
(clipped to +-cell_clip when cell_clip > 0), h = o * tanh(c); the output holds h of
every step. States start at zero; batches are independent.

LSTM, int8 (TensorFlow Lite Micro's lstm_eval, 8-bit activations x 8-bit weights
-> 16-bit cell, bit for bit):
- each gate: two int8 x int8 FULLY_CONNECTED products, of the input (with the gate's
  int32 bias, quantized with s_x * s_w) and of the hidden state (no bias), each
  requantized to int16 with scale 2^-12 (Q3.12) with the per-tensor multiplier
  float32(s_in * s_w) / 2^-12, then a saturating int16 add;
- sigmoid / tanh of a gate: TFLite's 16-bit LUT kernels (a 256-entry table of
  sigmoid(i/24) in 0.16 and linear interpolation), output Q0.15 (scale 2^-15);
- cell state: int16 with scale 2^e (cell_state_exponent, a power of two as TFLM
  requires): c = sat16(MulQ(f, c; 2^-15) + MulQ(i, g; 2^-30 / 2^e)), clipped to
  +-int16(cell_clip / 2^e) when cell_clip > 0;
- hidden state: h = MulQ(tanh(c), o; 2^-30 / s_h) + zp_h, clamped to int8, where the
  tanh input is rescaled from Q(15+e) to Q3.12 by TFLM's shift rule. The hidden state
  has the output's scale and zero point (TFLM copies it to the output) and starts at
  its zero point; the cell state starts at 0.
MulQ is MulElementwise: (a * b) through TFLM's double-rounding
MultiplyByQuantizedMultiplier with the multiplier QuantizeMultiplier(double(s_a) *
double(s_b) / double(s_out)). Weights must be per-tensor int8 (TFLM's LSTM reads one
multiplier per product).

The int8 weights, biases and scales are what TFLite's converter produces (see
edgekit.quantize.recurrent): per-tensor symmetric weights, int32 biases at
s_x * s_w, hidden state at the output's calibrated range, cell state at the smallest
power-of-two scale that covers its calibrated range.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import QuantParams
from edgekit.reference import fixedpoint as fp
from edgekit.reference.float_kernels import logistic as _f_logistic

__all__ = ["lstm_float", "lstm_int8", "svdf_float", "svdf_int8", "sigmoid_int16", "tanh_int16", "GATE_SCALE_LOG2",
           "GATE_OUT_SCALE_LOG2"]

# The fixed scales of TFLM's integer LSTM: gate pre-activations Q3.12, activations Q0.15.
GATE_SCALE_LOG2 = -12
GATE_OUT_SCALE_LOG2 = -15

# TFLite's sigmoid look-up table: sigmoid(i / 24) in 0.16 fixed point (the values the
# 16-bit logistic and tanh kernels interpolate; they are data, not derivable from a
# rounding rule, and the LSTM bit-exactness tests check them against TFLM).
SIGMOID_TABLE_U16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794,
    41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443,
    48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374,
    54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544,
    58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279,
    61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990,
    63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030,
    64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652,
    64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019,
    65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234,
    65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476,
    65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516,
    65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529,
    65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532,
    65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534,
    65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535
], dtype=np.int64)
assert SIGMOID_TABLE_U16.shape == (256,)


# ----------------------------------------------------------------------------------
# float
# ----------------------------------------------------------------------------------


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _check_lstm_operands(x, weights, recurrent, biases, time_major):
    x = np.asarray(x)
    if x.ndim != 3:
        raise BadInputError(f"LSTM input must be 3-D, got shape {list(x.shape)}")
    if len(weights) != 4 or len(recurrent) != 4 or len(biases) != 4:
        raise BadInputError("LSTM needs 4 input weights, 4 recurrent weights and 4 biases")
    hidden = np.asarray(weights[0]).shape[0]
    n_in = x.shape[2]
    for w in weights:
        if np.asarray(w).shape != (hidden, n_in):
            raise BadInputError(f"LSTM input weight has shape {list(np.asarray(w).shape)}, expected {[hidden, n_in]}")
    for r in recurrent:
        if np.asarray(r).shape != (hidden, hidden):
            raise BadInputError(f"LSTM recurrent weight has shape {list(np.asarray(r).shape)}, "
                                f"expected {[hidden, hidden]}")
    for b in biases:
        if b is not None and np.asarray(b).shape != (hidden,):
            raise BadInputError(f"LSTM bias has shape {list(np.asarray(b).shape)}, expected {[hidden]}")
    # Batch-major [B, T, I] inside.
    return (np.swapaxes(x, 0, 1) if time_major else x), hidden


def lstm_float(x, weights, recurrent, biases, *, time_major: bool = False, cell_clip: float = 0.0) -> np.ndarray:
    """UNIDIRECTIONAL_SEQUENCE_LSTM float32 (gate order input, forget, cell, output)."""
    xb, hidden = _check_lstm_operands(x, weights, recurrent, biases, time_major)
    xb = _f32(xb)
    w = [_f32(v) for v in weights]
    r = [_f32(v) for v in recurrent]
    b = [np.zeros(hidden, np.float32) if v is None else _f32(v) for v in biases]
    batch, steps = xb.shape[0], xb.shape[1]
    h = np.zeros((batch, hidden), np.float32)
    c = np.zeros((batch, hidden), np.float32)
    out = np.empty((batch, steps, hidden), np.float32)
    clip = np.float32(cell_clip)
    for t in range(steps):
        xt = xb[:, t]
        pre = [(xt @ w[k].T + b[k]) + h @ r[k].T for k in range(4)]
        i = _f_logistic(pre[0])
        f = _f_logistic(pre[1])
        g = np.tanh(pre[2])
        o = _f_logistic(pre[3])
        c = (f * c + i * g).astype(np.float32)
        if clip > 0:
            c = np.clip(c, -clip, clip)
        h = (o * np.tanh(c)).astype(np.float32)
        out[:, t] = h
    return np.swapaxes(out, 0, 1).copy() if time_major else out


# ----------------------------------------------------------------------------------
# int8 (TFLM's 8x8->16 integer LSTM)
# ----------------------------------------------------------------------------------


def sigmoid_int16(x) -> np.ndarray:
    """TFLite's 16-bit Logistic with input Q3.12 (multiplier 0, shift 0): Q0.15 output."""
    v = np.asarray(x, dtype=np.int64) * 3
    a = np.abs(v)
    uh = a >> 9
    idx = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_U16[idx]
    ub = SIGMOID_TABLE_U16[idx + 1]
    res = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    res = np.where(v >= 0, res + (1 << 9), (1 << 25) - res + (1 << 9) - 1)
    return (res >> 10).astype(np.int16)


def tanh_int16(x, input_multiplier: int = 0, input_left_shift: int = 0) -> np.ndarray:
    """TFLite's 16-bit Tanh (the power-of-two form when input_multiplier is 0)."""
    if input_multiplier == 0:
        input_multiplier, input_left_shift = 3 << input_left_shift, 0
    rnd = (1 << (input_left_shift - 1)) if input_left_shift > 0 else 0
    v = (np.asarray(x, dtype=np.int64) * input_multiplier + rnd) >> input_left_shift
    a = np.abs(v)
    uh = a >> 8
    idx = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_U16[idx]
    ub = SIGMOID_TABLE_U16[idx + 1]
    res = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + (a & 0xFF) * (ub - ua))
    res = np.where(v >= 0, res - (1 << 23) + (1 << 7), -res + (1 << 23) + (1 << 7) - 1)
    return (res >> 8).astype(np.int16)


def cell_tanh_params(cell_state_exponent: int) -> tuple[int, int]:
    """TFLM's (input_multiplier, input_left_shift) for tanh of a cell state with scale 2^e."""
    shift = 15 + cell_state_exponent - 3
    if shift < 0:
        return 3, -shift
    return 0, shift


def _per_tensor(qp: QuantParams | None, what: str) -> tuple[float, int]:
    if qp is None:
        raise BadInputError(f"{what} has no quantization parameters")
    if len(qp.scale) != 1:
        raise BadInputError(f"{what} must be quantized per tensor (TFLM's LSTM reads one scale), "
                            f"got {len(qp.scale)} scales")
    return float(qp.scale[0]), int(qp.zero_point[0])


def mul_params(s1: float, s2: float, s_out: float) -> tuple[int, int]:
    """CreateInterGateMulParams: QuantizeMultiplier(double(s1) * double(s2) / double(s_out))."""
    return fp.quantize_multiplier(float(np.float32(s1)) * float(np.float32(s2)) / float(np.float32(s_out)))


def _mul(a, b, mult: int, shift: int, zp: int, lo: int, hi: int) -> np.ndarray:
    prod = a.astype(np.int64) * b.astype(np.int64)
    return np.clip(fp.multiply_by_quantized_multiplier(prod, mult, shift) + zp, lo, hi)


def _fc16(x, w, bias, in_zp: int, mult: int, shift: int) -> np.ndarray:
    acc = (x.astype(np.int64) - in_zp) @ w.astype(np.int64).T
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    v = fp.multiply_by_quantized_multiplier(fp.wrap_int32(acc), mult, shift)
    return np.clip(v, -32768, 32767)


class LstmInt8Params:
    """The fixed-point parameters TFLM's Prepare derives for one integer LSTM.

    Shared by the reference kernel and the C lowering, so both use the same numbers."""

    def __init__(self, x_qp: QuantParams, w_qps, r_qps, out_qp: QuantParams, cell_state_exponent: int,
                 cell_clip: float):
        s_x, self.x_zp = _per_tensor(x_qp, "LSTM input")
        s_h, self.h_zp = _per_tensor(out_qp, "LSTM output")
        gate = 2.0 ** GATE_SCALE_LOG2
        self.input_fc = []
        self.recurrent_fc = []
        for k in range(4):
            s_w, zp_w = _per_tensor(w_qps[k], f"LSTM input weight {k}")
            s_r, zp_r = _per_tensor(r_qps[k], f"LSTM recurrent weight {k}")
            if zp_w or zp_r:
                raise BadInputError("LSTM weights must be symmetric (zero point 0)")
            self.input_fc.append(fp.fc_per_tensor_multiplier(s_x, s_w, gate))
            self.recurrent_fc.append(fp.fc_per_tensor_multiplier(s_h, s_r, gate))
        if not -30 <= cell_state_exponent <= 0:
            raise BadInputError(f"LSTM cell state exponent {cell_state_exponent} is out of range [-30, 0]")
        s_c = 2.0 ** cell_state_exponent
        s_go = 2.0 ** GATE_OUT_SCALE_LOG2
        self.cell_state_exponent = int(cell_state_exponent)
        self.forget_mul = mul_params(s_go, s_c, s_c)
        self.input_mul = mul_params(s_go, s_go, s_c)
        self.output_mul = mul_params(s_go, s_go, s_h)
        self.cell_tanh = cell_tanh_params(cell_state_exponent)
        # static_cast<int16_t> of the clamped double truncates toward zero
        self.quantized_clip = int(np.trunc(min(max(float(np.float32(cell_clip)) / s_c, -32768.0), 32767.0)))
        self.clip = float(cell_clip) > 0


def lstm_int8(x, weights, recurrent, biases, x_qp: QuantParams, w_qps, r_qps, out_qp: QuantParams, *,
              cell_state_exponent: int, time_major: bool = False, cell_clip: float = 0.0) -> np.ndarray:
    """UNIDIRECTIONAL_SEQUENCE_LSTM int8 with an int16 cell state, as TFLM computes it."""
    xb, hidden = _check_lstm_operands(x, weights, recurrent, biases, time_major)
    if xb.dtype != np.int8:
        raise BadInputError(f"LSTM int8 input must be int8, got {xb.dtype}")
    p = LstmInt8Params(x_qp, w_qps, r_qps, out_qp, cell_state_exponent, cell_clip)
    w = [np.asarray(v, np.int8) for v in weights]
    r = [np.asarray(v, np.int8) for v in recurrent]
    b = [None if v is None else np.asarray(v, np.int32) for v in biases]
    batch, steps = xb.shape[0], xb.shape[1]
    h = np.full((batch, hidden), p.h_zp, np.int64)
    c = np.zeros((batch, hidden), np.int64)
    out = np.empty((batch, steps, hidden), np.int8)

    def gate(k, xt, act):
        a = _fc16(xt, w[k], b[k], p.x_zp, *p.input_fc[k])
        rr = _fc16(h, r[k], None, p.h_zp, *p.recurrent_fc[k])
        s = np.clip(a + rr, -32768, 32767)
        return sigmoid_int16(s) if act == "sigmoid" else tanh_int16(s, 0, 0)

    for t in range(steps):
        xt = xb[:, t]
        f = gate(1, xt, "sigmoid")
        i = gate(0, xt, "sigmoid")
        g = gate(2, xt, "tanh")
        c = _mul(f, c, *p.forget_mul, 0, -32768, 32767)
        ig = _mul(i, g, *p.input_mul, 0, -32768, 32767)
        c = np.clip(c + ig, -32768, 32767)
        if p.clip:
            c = np.clip(c, -p.quantized_clip, p.quantized_clip)
        o = gate(3, xt, "sigmoid")
        tc = tanh_int16(c, *p.cell_tanh)
        h = _mul(tc, o, *p.output_mul, p.h_zp, -128, 127)
        out[:, t] = h
    return np.swapaxes(out, 0, 1).copy() if time_major else out


# ----------------------------------------------------------------------------------
# SVDF (TFLM's svdf_common.cc): one invocation from a zero state
# ----------------------------------------------------------------------------------


def _svdf_dims(x, wf, wt, bias, rank: int):
    x, wf, wt = np.asarray(x), np.asarray(wf), np.asarray(wt)
    if x.ndim != 2 or wf.ndim != 2 or wt.ndim != 2:
        raise BadInputError(f"SVDF expects 2-D input, weights_feature and weights_time, got "
                            f"{list(x.shape)}, {list(wf.shape)}, {list(wt.shape)}")
    features, memory = wt.shape
    if wf.shape != (features, x.shape[1]):
        raise BadInputError(f"SVDF weights_feature {list(wf.shape)} do not match input {list(x.shape)} "
                            f"and {features} features")
    if rank < 1 or features % rank:
        raise BadInputError(f"SVDF rank {rank} does not divide its {features} features")
    units = features // rank
    if bias is not None and np.asarray(bias).shape != (units,):
        raise BadInputError(f"SVDF bias has shape {list(np.asarray(bias).shape)}, expected {[units]}")
    return x.shape[0], features, memory, units


def _svdf_state(batch: int, features: int, memory: int, new, dtype):
    """The state after one step from zero: TFLM shifts the whole [B, F * M] buffer left by
    one element and writes each filter's new value into its last memory slot."""
    state = np.zeros((batch, features * memory), dtype)
    state[:, :-1] = state[:, 1:]
    state = state.reshape(batch, features, memory)
    state[:, :, memory - 1] = new
    return state


def svdf_float(x, weights_feature, weights_time, bias=None, *, rank: int, activation: str = "NONE") -> np.ndarray:
    """SVDF float32, one invocation from a zero state (TFLM's EvalFloatSvdfReference)."""
    from edgekit.reference.float_kernels import apply_activation

    batch, features, memory, units = _svdf_dims(x, weights_feature, weights_time, bias, rank)
    x = _f32(x)
    new = (x @ _f32(weights_feature).T).astype(np.float32)
    state = _svdf_state(batch, features, memory, new, np.float32)
    scratch = (state * _f32(weights_time)[None]).sum(axis=2, dtype=np.float32)
    out = scratch.reshape(batch, units, rank).sum(axis=2, dtype=np.float32)
    if bias is not None:
        out = (out + _f32(bias)).astype(np.float32)
    return apply_activation(out, activation).astype(np.float32)


def svdf_int8_params(x_qp: QuantParams, wf_qp: QuantParams, wt_qp: QuantParams, out_qp: QuantParams,
                     state_scale: float):
    """TFLM's PrepareSvdf: ((m1, s1), (m2, s2), input zp, output zp), the effective scales
    formed in float32 as the C++ code does (float products, then double)."""
    s_in, zp_in = _per_tensor(x_qp, "SVDF input")
    s_wf, _ = _per_tensor(wf_qp, "SVDF weights_feature")
    s_wt, _ = _per_tensor(wt_qp, "SVDF weights_time")
    s_out, zp_out = _per_tensor(out_qp, "SVDF output")
    if not state_scale > 0:
        raise BadInputError("an int8 SVDF needs its int16 state scale (state_scale > 0)")
    f = np.float32
    eff1 = float(f(f(s_in) * f(s_wf)) / f(state_scale))
    eff2 = float(f(f(state_scale) * f(s_wt)) / f(s_out))
    return fp.quantize_multiplier(eff1), fp.quantize_multiplier(eff2), zp_in, zp_out


def svdf_int8(x, weights_feature, weights_time, bias, x_qp: QuantParams, wf_qp: QuantParams, wt_qp: QuantParams,
              out_qp: QuantParams, *, rank: int, activation: str = "NONE", state_scale: float) -> np.ndarray:
    """SVDF int8 with an int16 state (zero point 0) and int16 weights_time, one invocation
    from a zero state, as TFLM's EvalIntegerSvdfReference computes it. TFLM's integer path
    applies no fused activation (only the int8 clamp), so neither does this kernel: the
    quantizer gives a RELU output a range starting at 0 instead."""
    batch, features, memory, units = _svdf_dims(x, weights_feature, weights_time, bias, rank)
    if np.asarray(x).dtype != np.int8 or np.asarray(weights_feature).dtype != np.int8:
        raise BadInputError("int8 SVDF needs int8 input and weights_feature")
    if np.asarray(weights_time).dtype != np.int16:
        raise BadInputError("int8 SVDF needs int16 weights_time")
    if bias is None:
        raise BadInputError("int8 SVDF needs an int32 bias (TFLM reads its scale)")
    (m1, s1), (m2, s2), zp_in, zp_out = svdf_int8_params(x_qp, wf_qp, wt_qp, out_qp, state_scale)
    dot = (np.asarray(x, np.int64) - zp_in) @ np.asarray(weights_feature, np.int64).T
    dot = fp.multiply_by_quantized_multiplier(fp.wrap_int32(dot), m1, s1)
    new = np.clip(dot, -32768, 32767)  # + state zero point 0
    state = _svdf_state(batch, features, memory, new, np.int64)
    scratch = fp.wrap_int32((state * np.asarray(weights_time, np.int64)[None]).sum(axis=2))
    acc = scratch.reshape(batch, units, rank).sum(axis=2) + np.asarray(bias, np.int64)
    out = fp.multiply_by_quantized_multiplier(fp.wrap_int32(acc), m2, s2) + zp_out
    return np.clip(out, -128, 127).astype(np.int8)


# ----------------------------------------------------------------------------------
# dispatch from edgekit.reference.kernels
# ----------------------------------------------------------------------------------


def run_recurrent(graph, op, attrs: dict, args: list) -> list[np.ndarray]:
    """Run one UNIDIRECTIONAL_SEQUENCE_LSTM or SVDF op of ``graph`` on ``args``."""
    from edgekit.ir.dtypes import DType
    from edgekit.ir.ops import OpType

    xt = graph.tensor(op.inputs[0])
    where = f"op {op.name!r} ({op.type.value})"
    q = [graph.tensor(i).quant if i else None for i in op.inputs]
    oq = graph.tensor(op.outputs[0]).quant
    try:
        if op.type is OpType.UNIDIRECTIONAL_SEQUENCE_LSTM:
            w, r, b = args[1:5], args[5:9], args[9:13]
            if xt.dtype is DType.FLOAT32:
                if any(graph.tensor(n).dtype is not DType.FLOAT32 for n in op.inputs[1:9]):
                    raise BadInputError("hybrid LSTM (int8 weights, float input) is not supported")
                return [lstm_float(args[0], w, r, b, time_major=attrs["time_major"], cell_clip=attrs["cell_clip"])]
            if xt.dtype is DType.INT8:
                return [lstm_int8(args[0], w, r, b, q[0], q[1:5], q[5:9], oq,
                                  cell_state_exponent=attrs["cell_state_exponent"],
                                  time_major=attrs["time_major"], cell_clip=attrs["cell_clip"])]
        else:
            bias = args[3] if len(args) > 3 else None
            if xt.dtype is DType.FLOAT32:
                return [svdf_float(args[0], args[1], args[2], bias, rank=attrs["rank"],
                                   activation=attrs["activation"])]
            if xt.dtype is DType.INT8:
                return [svdf_int8(args[0], args[1], args[2], bias, q[0], q[1], q[2], oq, rank=attrs["rank"],
                                  activation=attrs["activation"], state_scale=attrs["state_scale"])]
    except BadInputError as exc:
        raise BadInputError(f"{where}: {exc}") from None
    raise BadInputError(f"{where}: {xt.dtype.value} inputs are not supported")
