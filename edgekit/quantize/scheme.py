"""The int8 scheme edgekit quantizes to: the TFLite int8 spec, as TFLite Micro runs it.

- weights: symmetric int8 in [-127, 127], per output channel (CONV_2D axis 0,
  DEPTHWISE_CONV_2D axis 3, FULLY_CONNECTED axis 0) or per tensor;
- biases: int32 with scale input_scale * weight_scale[c] and zero point 0;
- activations: asymmetric int8 per tensor, range nudged so 0 is exact;
- fixed outputs: SOFTMAX and LOGISTIC 1/256 zp -128, TANH 1/128 zp 0;
- shared parameters: ops TFLite Micro requires equal input/output quantization for.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.dtypes import QuantParams
from edgekit.ir.ops import OpType

WEIGHT_AXIS = {OpType.CONV_2D: 0, OpType.DEPTHWISE_CONV_2D: 3, OpType.FULLY_CONNECTED: 0,
               OpType.TRANSPOSE_CONV: 0}
FIXED_OUTPUT = {OpType.SOFTMAX: (1.0 / 256, -128), OpType.LOGISTIC: (1.0 / 256, -128),
                OpType.TANH: (1.0 / 128, 0)}
# Output takes the input's parameters (TFLite Micro: equal in/out, or a raw copy).
SHARES_INPUT = {OpType.MAX_POOL_2D, OpType.AVERAGE_POOL_2D, OpType.RESHAPE, OpType.TRANSPOSE,
                OpType.PAD, OpType.RELU6}
# Resizing copies (nearest) or interpolates (bilinear) raw int8 values: TFLite Micro
# never requantizes them, so the output shares the input's parameters.
SHARES_INPUT |= {OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR}
# Data movement copies raw int8 values (TFLite Micro never requantizes there): every
# output shares the input's parameters. PACK joins its inputs like CONCATENATION (PACKS_INPUTS).
SHARES_INPUT |= {OpType.SLICE, OpType.STRIDED_SLICE, OpType.SPLIT, OpType.SQUEEZE, OpType.EXPAND_DIMS,
                 OpType.GATHER, OpType.UNPACK, OpType.DEPTH_TO_SPACE, OpType.SPACE_TO_DEPTH}
PACKS_INPUTS = {OpType.CONCATENATION, OpType.PACK}
# Output range of its own (from calibration).
OWN_RANGE = {OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED, OpType.ADD,
             OpType.SUB, OpType.MUL, OpType.MEAN, OpType.RELU}
OWN_RANGE |= {OpType.TRANSPOSE_CONV}
# LSTM: the output (= hidden state) has its own range; SVDF too; weights, biases and the
# states are set by edgekit.quantize.recurrent.
OWN_RANGE |= {OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, OpType.SVDF}
# Reductions and matrix products: REDUCE_MAX keeps its input's parameters (TFLM requires
# it), L2_NORMALIZATION has TFLite's fixed 1/128 output, SUM and BATCH_MATMUL their own
# range; ARG_MAX/MIN output int32 indices that stay int32 (INDEX_OUTPUT).
SHARES_INPUT |= {OpType.REDUCE_MAX}
FIXED_OUTPUT[OpType.L2_NORMALIZATION] = (1.0 / 128, 0)
OWN_RANGE |= {OpType.SUM, OpType.BATCH_MATMUL}
# Elementwise: each output has its own range (TFLM rescales in every one of them), except
# MAXIMUM/MINIMUM, which compare raw values: their inputs and output join one group.
# NEG is quantized as MUL by -1 (edgekit.quantize.elementwise), since LiteRT's int8 NEG
# negates raw values.
OWN_RANGE |= {OpType.HARD_SWISH, OpType.LEAKY_RELU, OpType.PRELU, OpType.ABS, OpType.EXP,
              OpType.LOG, OpType.SQRT, OpType.RSQRT, OpType.GELU, OpType.DIV, OpType.SQUARED_DIFFERENCE}
PACKS_INPUTS |= {OpType.MAXIMUM, OpType.MINIMUM}
INDEX_OUTPUT = {OpType.ARG_MAX, OpType.ARG_MIN}
QUANTIZABLE = set(WEIGHT_AXIS) | set(FIXED_OUTPUT) | SHARES_INPUT | OWN_RANGE | PACKS_INPUTS | INDEX_OUTPUT

INT32_MAX = 2 ** 31 - 1
MIN_RANGE = 1e-8  # a range narrower than this holds only zeros: give it a harmless width


def activation_qparams(lo: float, hi: float) -> QuantParams:
    """Asymmetric int8 for real values in [lo, hi] (widened to include 0):
    scale = (hi - lo) / 255, zero point = round(-128 - lo / scale), clamped."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"activation range [{lo}, {hi}] is not finite")
    if hi - lo < MIN_RANGE:
        hi = lo + 1.0
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(np.round(-128.0 - lo / scale), -128, 127))
    return QuantParams.per_tensor(scale, zp)


def fixed_qparams(op_type: OpType) -> QuantParams:
    scale, zp = FIXED_OUTPUT[op_type]
    return QuantParams.per_tensor(scale, zp)


def representable_range(q: QuantParams) -> tuple[float, float]:
    s, z = q.scale[0], q.zero_point[0]
    return (-128 - z) * s, (127 - z) * s


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def weight_scales(w: np.ndarray, axis: int | None) -> np.ndarray:
    """max|w| / 127 per index along ``axis`` (one value when ``axis`` is None). An all-zero
    channel takes the other channels' median scale (1/127 if all are zero)."""
    w = np.asarray(w, np.float64)
    if axis is None:
        amax = np.array([np.abs(w).max() if w.size else 0.0])
    else:
        amax = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    scales = amax / 127.0
    dead = scales <= 0
    if dead.any():
        scales[dead] = np.median(scales[~dead]) if (~dead).any() else 1.0 / 127
    return scales.astype(np.float32)


def quantize_weights(w: np.ndarray, scales: np.ndarray, axis: int | None) -> np.ndarray:
    w = np.asarray(w, np.float32)
    s = np.asarray(scales, np.float32)
    if axis is not None:
        shape = [1] * w.ndim
        shape[axis] = -1
        s = s.reshape(shape)
    q = _round_half_away((w / s).astype(np.float64))
    return np.clip(q, -127, 127).astype(np.int8)


def dequantize_weights(q: np.ndarray, scales: np.ndarray, axis: int | None) -> np.ndarray:
    s = np.asarray(scales, np.float32)
    if axis is not None:
        shape = [1] * q.ndim
        shape[axis] = -1
        s = s.reshape(shape)
    return (q.astype(np.float32) * s).astype(np.float32)


def bias_scales(input_scale: float, w_scales: np.ndarray) -> np.ndarray:
    return np.float64(np.float32(input_scale)) * np.asarray(w_scales, np.float32).astype(np.float64)


def fit_bias(bias: np.ndarray, input_scale: float, w_scales: np.ndarray) -> np.ndarray:
    """Weight scales widened where the int32 bias would overflow (|b| / scale > 2^31 - 1)."""
    s = np.asarray(w_scales, np.float32).copy()
    b = np.abs(np.asarray(bias, np.float64))
    need = b / (float(np.float32(input_scale)) * (INT32_MAX - 1024))
    if s.size == 1:
        s = np.maximum(s, np.float32(need.max() if need.size else 0.0) * np.float32(1.0001))
    else:
        s = np.maximum(s, (need * 1.0001).astype(np.float32))
    return s.astype(np.float32)


def quantize_bias(bias: np.ndarray, input_scale: float, w_scales: np.ndarray, n_out: int) -> np.ndarray:
    scales = bias_scales(input_scale, w_scales)
    if scales.size == 1:
        scales = np.full(n_out, scales[0])
    q = _round_half_away(np.asarray(bias, np.float64) / scales)
    return np.clip(q, -INT32_MAX - 1, INT32_MAX).astype(np.int32)
