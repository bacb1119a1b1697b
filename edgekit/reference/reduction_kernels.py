"""Reference kernels of the reductions, the L2 normalization and the batched matrix
product: REDUCE_MAX, SUM, ARG_MAX, ARG_MIN, L2_NORMALIZATION, BATCH_MATMUL.

float32: what LiteRT's reference kernels compute (sums and dot products in float64
here, so results agree with LiteRT's float32 loops to a few ulps, not bit for bit).

int8: bit-exact with TensorFlow Lite Micro's reference kernels:

- REDUCE_MAX (``reduce_common.cc``, ``EvalMinMaxHelper``): the raw maximum; TFLM
  requires equal input and output quantization, so these kernels do too.
- SUM (``QuantizedMeanOrSum`` with ``compute_sum``): int32 sum of the raw values,
  minus zp_in * count, times the multiplier of double(s_in) / double(s_out)
  (TFLM's double-rounding ``MultiplyByQuantizedMultiplier``), + zp_out, clamped.
- ARG_MAX / ARG_MIN (``arg_min_max.cc``): compares raw values (the order is the
  order of the real values); ties take the lowest index; int32 output.
- L2_NORMALIZATION (``reference_integer_ops::L2Normalization``): over the last
  axis, acc = sum (x - zp_in)^2, TFLM's integer inverse square root
  (``GetInvSqrtQuantizedMultiplierExp``, Newton-Raphson in gemmlowp Q3.28), output
  scale 1/128 and zero point 0 (required).
- BATCH_MATMUL (``batch_matmul.cc``): acc = sum (a - zp_a)(b - zp_b) in int32, the
  multiplier of float32(s_a * s_b) / double(s_out), + zp_out, clamped; adj_x / adj_y
  transpose the last two axes of an operand; batch dimensions broadcast.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import QuantParams
from edgekit.reference import fixedpoint as fp
from edgekit.reference.float_kernels import _axes

QMIN, QMAX = -128, 127
L2_OUTPUT = (np.float32(1.0 / 128), 0)  # TFLite's fixed int8 output of L2_NORMALIZATION


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def _i8(x, what="input") -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise BadInputError(f"{what} must be int8, got {x.dtype}")
    return x


def _per_tensor(qp: QuantParams | None, what: str) -> tuple[float, int]:
    if qp is None:
        raise BadInputError(f"{what} needs quantization parameters")
    if not qp.is_per_tensor and len(qp.scale) != 1:
        raise BadInputError(f"{what} must be quantized per tensor, got {len(qp.scale)} scales")
    return float(qp.scale[0]), int(qp.zero_point[0])


def _axis(axis: int, ndim: int) -> int:
    a = int(axis)
    a = a + ndim if a < 0 else a
    if not 0 <= a < ndim:
        raise BadInputError(f"axis {axis} out of range for rank {ndim}")
    return a


# ----------------------------------------------------------------------------------
# REDUCE_MAX, SUM
# ----------------------------------------------------------------------------------


def reduce_max(x, *, axes, keep_dims: bool = False) -> np.ndarray:
    """REDUCE_MAX float32 (or any dtype) over ``axes``."""
    x = np.asarray(x)
    ax = _axes(axes, x.ndim)
    if any(x.shape[a] == 0 for a in ax):
        raise BadInputError(f"REDUCE_MAX over an empty axis of shape {list(x.shape)}")
    return np.max(x, axis=ax, keepdims=keep_dims) if ax else x.copy()


def reduce_sum(x, *, axes, keep_dims: bool = False) -> np.ndarray:
    """SUM float32 over ``axes`` (accumulated in float64)."""
    x = _f32(x)
    ax = _axes(axes, x.ndim)
    return x.astype(np.float64).sum(axis=ax, keepdims=keep_dims).astype(np.float32)


def reduce_max_int8(x, x_qp: QuantParams, out_qp: QuantParams, *, axes, keep_dims: bool = False) -> np.ndarray:
    """REDUCE_MAX int8: the raw maximum; input and output quantization must be equal."""
    x = _i8(x)
    s_in, zp_in = _per_tensor(x_qp, "reduce_max input")
    s_out, zp_out = _per_tensor(out_qp, "reduce_max output")
    if np.float32(s_in) != np.float32(s_out) or zp_in != zp_out:
        raise BadInputError("int8 REDUCE_MAX needs equal input and output quantization")
    return reduce_max(x, axes=axes, keep_dims=keep_dims)


def sum_multiplier(s_in: float, s_out: float) -> tuple[int, int]:
    """SUM's (multiplier, shift): double(s_in) / double(s_out), as TFLM's Prepare."""
    return fp.requantize_multiplier(s_in, s_out)


def reduce_sum_int8(x, x_qp: QuantParams, out_qp: QuantParams, *, axes, keep_dims: bool = False) -> np.ndarray:
    """SUM int8 (TFLM ``QuantizedMeanOrSum``, compute_sum): see the module docstring."""
    x = _i8(x)
    s_in, zp_in = _per_tensor(x_qp, "sum input")
    s_out, zp_out = _per_tensor(out_qp, "sum output")
    ax = _axes(axes, x.ndim)
    n = int(np.prod([x.shape[a] for a in ax])) if ax else 1
    total = fp.wrap_int32(x.astype(np.int64).sum(axis=ax, keepdims=keep_dims))
    if n == 0:
        return np.zeros(total.shape, dtype=np.int8)
    mult, shift = sum_multiplier(s_in, s_out)
    shifted = fp.wrap_int32(total - zp_in * n)
    out = fp.multiply_by_quantized_multiplier(shifted, mult, shift) + zp_out
    return np.clip(out, QMIN, QMAX).astype(np.int8)


# ----------------------------------------------------------------------------------
# ARG_MAX, ARG_MIN
# ----------------------------------------------------------------------------------


def arg_max(x, *, axis: int) -> np.ndarray:
    """ARG_MAX over ``axis`` (float32 or int8 raw values): int32 indices, the lowest
    index on ties."""
    x = np.asarray(x)
    a = _axis(axis, x.ndim)
    if x.shape[a] == 0:
        raise BadInputError(f"ARG_MAX over an empty axis of shape {list(x.shape)}")
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise BadInputError("ARG_MAX input holds NaN")
    return np.argmax(x, axis=a).astype(np.int32)


def arg_min(x, *, axis: int) -> np.ndarray:
    """ARG_MIN over ``axis``: int32 indices, the lowest index on ties."""
    x = np.asarray(x)
    a = _axis(axis, x.ndim)
    if x.shape[a] == 0:
        raise BadInputError(f"ARG_MIN over an empty axis of shape {list(x.shape)}")
    if x.dtype.kind == "f" and np.isnan(x).any():
        raise BadInputError("ARG_MIN input holds NaN")
    return np.argmin(x, axis=a).astype(np.int32)


# ----------------------------------------------------------------------------------
# L2_NORMALIZATION
# ----------------------------------------------------------------------------------


def l2_normalization(x, *, epsilon: float = 1e-6) -> np.ndarray:
    """L2_NORMALIZATION float32 over the last axis: x / max(sqrt(sum x^2), epsilon)."""
    x = _f32(x)
    norm = np.sqrt(np.square(x.astype(np.float64)).sum(axis=-1, keepdims=True))
    norm = np.maximum(norm, np.float64(np.float32(epsilon)))
    return (x / norm).astype(np.float32)


def inv_sqrt_multiplier(acc) -> tuple[np.ndarray, np.ndarray]:
    """TFLite's ``GetInvSqrtQuantizedMultiplierExp(acc, kReverseShift)`` elementwise:
    (multiplier, shift) with 1/sqrt(acc) = multiplier * 2^(shift - 31), the shift a
    left shift (the kReverseShift convention); acc <= 1 gives (2^31 - 1, 0)."""
    acc = np.asarray(acc, dtype=np.int64).ravel()
    mult = np.empty(acc.shape, np.int64)
    shift = np.empty(acc.shape, np.int64)
    for i, v in enumerate(acc.tolist()):
        mult[i], shift[i] = _inv_sqrt_one(int(v))
    return mult, shift


def _inv_sqrt_one(value: int) -> tuple[int, int]:
    if value < 0:
        raise BadInputError(f"inverse square root of a negative accumulator {value}")
    if value <= 1:
        return fp.INT32_MAX, 0
    out_shift = 11
    while value >= (1 << 29):
        value //= 4
        out_shift += 1
    max_left_shift_bits = int(fp.count_leading_zeros32(value)) - 1
    left_shift_bit_pairs = max_left_shift_bits // 2 - 1
    out_shift -= left_shift_bit_pairs
    value <<= 2 * left_shift_bit_pairs
    # gemmlowp FixedPoint<int32, 3> Newton-Raphson on 1/sqrt, 5 steps from x = 1.
    half_input = int(fp.saturating_rounding_multiply_by_pot(value >> 1, -1))
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28
    for _ in range(5):
        x2 = int(fp.saturating_rounding_doubling_high_mul(x, x))        # Q6
        x3 = int(fp.saturating_rounding_doubling_high_mul(x2, x))       # Q9
        x3 = int(fp.saturating_rounding_multiply_by_pot(x3, 6))         # Rescale<3>
        a = int(fp.saturating_rounding_doubling_high_mul(half_three, x))  # Q6
        b = int(fp.saturating_rounding_doubling_high_mul(half_input, x3))  # Q6
        diff = int(fp.wrap_int32(a - b))
        x = int(fp.saturating_rounding_multiply_by_pot(diff, 3))        # Rescale<3>
    x = int(fp.saturating_rounding_doubling_high_mul(x, 1518500250))    # * sqrt(2)/2
    if out_shift < 0:
        x = int(fp.wrap_int32(x << -out_shift))
        out_shift = 0
    return x, -out_shift


def l2_normalization_int8(x, x_qp: QuantParams, out_qp: QuantParams) -> np.ndarray:
    """L2_NORMALIZATION int8 over the last axis (TFLM; see the module docstring)."""
    x = _i8(x)
    _, zp_in = _per_tensor(x_qp, "l2_normalization input")
    s_out, zp_out = _per_tensor(out_qp, "l2_normalization output")
    if zp_out != L2_OUTPUT[1] or np.float32(s_out) != L2_OUTPUT[0]:
        raise BadInputError("int8 L2_NORMALIZATION needs output scale 1/128 and zero point 0")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise BadInputError(f"L2_NORMALIZATION needs a non-empty last axis, got shape {list(x.shape)}")
    v = x.astype(np.int64) - zp_in
    acc = fp.wrap_int32((v * v).sum(axis=-1))
    mult, shift = inv_sqrt_multiplier(acc)
    mult = mult.reshape(acc.shape + (1,))
    shift = shift.reshape(acc.shape + (1,))
    out = fp.multiply_by_quantized_multiplier(v, mult, shift + 7)
    return np.clip(out, QMIN, QMAX).astype(np.int8)


# ----------------------------------------------------------------------------------
# BATCH_MATMUL
# ----------------------------------------------------------------------------------


def _matmul_operands(a, b, adj_x: bool, adj_y: bool):
    if a.ndim < 2 or b.ndim < 2:
        raise BadInputError(f"BATCH_MATMUL needs operands of rank >= 2, got {list(a.shape)} and {list(b.shape)}")
    if adj_x:
        a = np.swapaxes(a, -1, -2)
    if adj_y:
        b = np.swapaxes(b, -1, -2)
    if a.shape[-1] != b.shape[-2]:
        raise BadInputError(f"BATCH_MATMUL: {list(a.shape)} @ {list(b.shape)}: inner dimensions differ")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise BadInputError(f"BATCH_MATMUL: batch dimensions {list(a.shape[:-2])} and {list(b.shape[:-2])} "
                            "do not broadcast") from None
    return a, b


def batch_matmul(a, b, *, adj_x: bool = False, adj_y: bool = False) -> np.ndarray:
    """BATCH_MATMUL float32 (products summed in float64)."""
    a, b = _matmul_operands(_f32(a), _f32(b), adj_x, adj_y)
    return np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)


def batch_matmul_multiplier(s_a: float, s_b: float, s_out: float) -> tuple[int, int]:
    """float32(s_a * s_b) / double(s_out) (TFLM's ``GetQuantizedConvolutionMultipler``)."""
    return fp.fc_per_tensor_multiplier(s_a, s_b, s_out)


def batch_matmul_int8(a, b, a_qp: QuantParams, b_qp: QuantParams, out_qp: QuantParams, *,
                      adj_x: bool = False, adj_y: bool = False) -> np.ndarray:
    """BATCH_MATMUL int8 (TFLM; see the module docstring)."""
    a = _i8(a, "lhs")
    b = _i8(b, "rhs")
    s_a, zp_a = _per_tensor(a_qp, "batch_matmul lhs")
    s_b, zp_b = _per_tensor(b_qp, "batch_matmul rhs")
    s_out, zp_out = _per_tensor(out_qp, "batch_matmul output")
    a, b = _matmul_operands(a, b, adj_x, adj_y)
    depth = a.shape[-1]
    # float64 products of |v| <= 255 are exact integers for any depth below 2^37.
    acc = np.matmul(a.astype(np.float64) - zp_a, b.astype(np.float64) - zp_b)
    acc = fp.wrap_int32(acc.astype(np.int64)) if depth else np.zeros(acc.shape, np.int64)
    mult, shift = batch_matmul_multiplier(s_a, s_b, s_out)
    out = fp.multiply_by_quantized_multiplier(acc, mult, shift) + zp_out
    return np.clip(out, QMIN, QMAX).astype(np.int8)


# ----------------------------------------------------------------------------------
# dispatch (from edgekit.reference.kernels)
# ----------------------------------------------------------------------------------

OPS = frozenset({"REDUCE_MAX", "SUM", "ARG_MAX", "ARG_MIN", "L2_NORMALIZATION", "BATCH_MATMUL"})


def run_float(op_type: str, attrs: dict, args: list) -> np.ndarray:
    """One op of this family on float32 inputs (``op_type`` an OpType or its name)."""
    t = getattr(op_type, "value", op_type)
    x = args[0]
    if t == "REDUCE_MAX":
        return reduce_max(_f32(x), axes=attrs["axes"], keep_dims=attrs["keep_dims"])
    if t == "SUM":
        return reduce_sum(x, axes=attrs["axes"], keep_dims=attrs["keep_dims"])
    if t == "ARG_MAX":
        return arg_max(_f32(x), axis=attrs["axis"])
    if t == "ARG_MIN":
        return arg_min(_f32(x), axis=attrs["axis"])
    if t == "L2_NORMALIZATION":
        from edgekit.reference.float_kernels import apply_activation

        return apply_activation(l2_normalization(x), attrs["activation"])
    if t == "BATCH_MATMUL":
        return batch_matmul(x, args[1], adj_x=attrs["adj_x"], adj_y=attrs["adj_y"])
    raise BadInputError(f"no float kernel for {t}")


def run_int8(op_type: str, attrs: dict, args: list, qps: list, out_qp: QuantParams) -> np.ndarray:
    """One op of this family on int8 inputs; ``qps`` the inputs' parameters."""
    t = getattr(op_type, "value", op_type)
    x = args[0]
    if t == "REDUCE_MAX":
        return reduce_max_int8(x, qps[0], out_qp, axes=attrs["axes"], keep_dims=attrs["keep_dims"])
    if t == "SUM":
        return reduce_sum_int8(x, qps[0], out_qp, axes=attrs["axes"], keep_dims=attrs["keep_dims"])
    if t == "ARG_MAX":
        return arg_max(_i8(x), axis=attrs["axis"])
    if t == "ARG_MIN":
        return arg_min(_i8(x), axis=attrs["axis"])
    if t == "L2_NORMALIZATION":
        if attrs["activation"] != "NONE":
            raise BadInputError("int8 L2_NORMALIZATION takes no fused activation (TFLM refuses one)")
        return l2_normalization_int8(x, qps[0], out_qp)
    if t == "BATCH_MATMUL":
        return batch_matmul_int8(x, args[1], qps[0], qps[1], out_qp, adj_x=attrs["adj_x"], adj_y=attrs["adj_y"])
    raise BadInputError(f"no int8 kernel for {t}")
