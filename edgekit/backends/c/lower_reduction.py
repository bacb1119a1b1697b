"""MCU lowering of REDUCE_MAX, SUM, ARG_MAX/ARG_MIN, L2_NORMALIZATION and BATCH_MATMUL
(runtimes/micro kernels ek_reduce_max_s8, ek_mean_s8, ek_arg_min_max_s8,
ek_l2_normalization_s8, ek_batch_matmul_s8), with their parameters derived as TFLM's
Prepare derives them (edgekit.reference.reduction_kernels holds the definitions).

SUM runs on ek_mean_s8: TFLM computes MEAN and SUM with one routine
(QuantizedMeanOrSum) that differs only in folding 1/count into the multiplier.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.c.params import ConstArray, Struct, TensorRef, _pt, _ints, as4d, dims4
from edgekit.ir.dtypes import DType
from edgekit.ir.ops import OpType
from edgekit.reference import reduction_kernels as R

REDUCTION_C_OPS = frozenset({OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN,
                             OpType.L2_NORMALIZATION, OpType.BATCH_MATMUL})


def sum_params(x_qp, out_qp) -> Struct:
    """``ek_mean_params`` of SUM: double(s_in) / double(s_out), no 1/count."""
    (s_in, zp_in), (s_out, zp_out) = _pt(x_qp), _pt(out_qp)
    m, s = R.sum_multiplier(s_in, s_out)
    return Struct("ek_mean_params", _ints({"input_offset": -zp_in, "output_offset": zp_out,
                                           "multiplier": m, "shift": s}))


def batch_matmul_params(a_qp, b_qp, out_qp, *, adj_x: bool, adj_y: bool) -> Struct:
    (s_a, zp_a), (s_b, zp_b), (s_out, zp_out) = _pt(a_qp), _pt(b_qp), _pt(out_qp)
    m, s = R.batch_matmul_multiplier(s_a, s_b, s_out)
    return Struct("ek_batch_matmul_params", _ints({
        "lhs_offset": -zp_a, "rhs_offset": -zp_b, "output_offset": zp_out, "multiplier": m, "shift": s,
        "adj_x": int(adj_x), "adj_y": int(adj_y)}))


def _axis_mask(rank: int, axes) -> int:
    return sum(1 << (int(a) + 4 - rank) for a in axes)


def lower_reduction(low):
    """The KernelCall of ``low.op`` (``low`` a params._Lowering)."""
    t = low.op.type
    a = low.attrs
    x = low.int8(low.t(0), "input")
    low.rank_le4(x)
    rank = len(x.shape)
    if t in (OpType.REDUCE_MAX, OpType.SUM):
        y = low.int8(low.out, "output")
        axes = sorted({int(v) for v in a["axes"]})
        if any(x.shape[v] == 0 for v in axes):
            raise low.unsupported("a reduction over an empty axis")
        xq, yq = low.per_tensor(x), low.per_tensor(y)
        if t is OpType.REDUCE_MAX:
            if np.float32(xq.scale[0]) != np.float32(yq.scale[0]) or xq.zero_point[0] != yq.zero_point[0]:
                raise low.unsupported("int8 REDUCE_MAX needs equal input and output quantization")
            return low.call("reduce_max", "ek_reduce_max_s8", [
                dims4(as4d(x.shape)), _axis_mask(rank, axes), low.operand(x), low.output()])
        return low.call("mean", "ek_mean_s8", [sum_params(xq, yq), dims4(as4d(x.shape)), _axis_mask(rank, axes),
                                               low.operand(x), low.output()])
    if t in (OpType.ARG_MAX, OpType.ARG_MIN):
        if low.out.dtype is not DType.INT32:
            raise low.unsupported(f"the index output must be int32, is {low.out.dtype.value}")
        axis = int(a["axis"])
        outer = int(np.prod(x.shape[:axis], dtype=np.int64))
        inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
        return low.call("arg_min_max", "ek_arg_min_max_s8", [
            outer, int(x.shape[axis]), inner, int(t is OpType.ARG_MIN), low.operand(x), low.output("int32_t")])
    if t is OpType.L2_NORMALIZATION:
        y = low.int8(low.out, "output")
        s_out, zp_out = _pt(low.per_tensor(y))
        if zp_out != R.L2_OUTPUT[1] or np.float32(s_out) != R.L2_OUTPUT[0]:
            raise low.unsupported("int8 L2_NORMALIZATION needs output scale 1/128 and zero point 0")
        if a["activation"] != "NONE":
            raise low.unsupported("int8 L2_NORMALIZATION takes no fused activation")
        depth = int(x.shape[-1]) if x.shape else 1
        return low.call("l2_normalization", "ek_l2_normalization_s8", [
            -int(low.per_tensor(x).zero_point[0]), x.size // max(depth, 1), depth, low.operand(x), low.output()])
    # BATCH_MATMUL
    b = low.int8(low.t(1), "rhs")
    y = low.int8(low.out, "output")
    low.rank_le4(b)
    low.rank_le4(y)
    struct = batch_matmul_params(low.per_tensor(x), low.per_tensor(b), low.per_tensor(y),
                                 adj_x=a["adj_x"], adj_y=a["adj_y"])
    return low.call("batch_matmul", "ek_batch_matmul_s8", [
        struct, dims4(as4d(x.shape)), _operand(low, x), dims4(as4d(b.shape)), _operand(low, b),
        dims4(as4d(y.shape)), low.output()])


def _operand(low, tensor):
    if tensor.is_const:
        return ConstArray("int8_t", np.ascontiguousarray(tensor.data, np.int8), "weights", tensor.name)
    return TensorRef(tensor.name)
