"""Reference kernels of the recurrent ops: UNIDIRECTIONAL_SEQUENCE_LSTM (float and int8)
and SVDF (float and int8).

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

__all__ = ["lstm_float", "lstm_int8", "sigmoid_int16", "tanh_int16", "GATE_SCALE_LOG2", "GATE_OUT_SCALE_LOG2"]

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
    except BadInputError as exc:
        raise BadInputError(f"{where}: {exc}") from None
    raise BadInputError(f"{where}: {xt.dtype.value} inputs are not supported")
