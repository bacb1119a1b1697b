"""MCU lowering of the elementwise ops (runtimes/micro ek_lut_s8, ek_maximum_s8,
ek_minimum_s8, ek_prelu_s8, ek_squared_difference_s8, ek_div_s8).

The unary ops (HARD_SWISH, LEAKY_RELU, ABS, NEG, EXP, LOG, SQRT, RSQRT, GELU) become a
256-byte table computed here by the reference kernel
(``edgekit.reference.elementwise_kernels.unary_table``) and one lookup per element on
the device: bit-exact with the reference by construction, and cheaper than any of the
fixed-point paths (TFLM's HARD_SWISH takes some 30 operations per element). The binary
ops get their parameters as TFLM's Prepare derives them.
"""

from __future__ import annotations

import numpy as np

from edgekit.backends.c.params import (ConstArray, Struct, TensorRef, _ints, _pt, as4d,
                                       broadcast_strides, dims4)
from edgekit.ir.ops import OpType
from edgekit.ir.shapes_elementwise import UNARY_OPS
from edgekit.reference import elementwise_kernels as ew
from edgekit.reference import fixedpoint as fp

ELEMENTWISE_C_OPS = UNARY_OPS | {OpType.MAXIMUM, OpType.MINIMUM, OpType.PRELU, OpType.SQUARED_DIFFERENCE,
                                 OpType.DIV}
SQUARED_DIFFERENCE_LEFT_SHIFT = 7


def prelu_params(x_qp, alpha_qp, out_qp) -> Struct:
    (s_in, zp_in), (s_a, zp_a), (s_out, zp_out) = _pt(x_qp), _pt(alpha_qp), _pt(out_qp)
    (m1, sh1), (m2, sh2) = ew.prelu_params(s_in, s_a, s_out)
    return Struct("ek_prelu_params", _ints({
        "input_offset": -zp_in, "alpha_offset": -zp_a, "output_offset": zp_out,
        "output_multiplier_1": m1, "output_shift_1": sh1, "output_multiplier_2": m2, "output_shift_2": sh2}))


def squared_difference_params(a_qp, b_qp, out_qp) -> Struct:
    (s1, z1), (s2, z2), (so, zo) = _pt(a_qp), _pt(b_qp), _pt(out_qp)
    (m1, sh1), (m2, sh2), (mo, sho) = ew.squared_difference_params(s1, s2, so, SQUARED_DIFFERENCE_LEFT_SHIFT)
    return Struct("ek_add_params", _ints({
        "input1_offset": -z1, "input2_offset": -z2, "left_shift": SQUARED_DIFFERENCE_LEFT_SHIFT,
        "input1_multiplier": m1, "input1_shift": sh1, "input2_multiplier": m2, "input2_shift": sh2,
        "output_multiplier": mo, "output_shift": sho, "output_offset": zo, "act_min": -128, "act_max": 127}))


def div_params(a_qp, b_qp, out_qp, activation: str) -> Struct:
    (s1, z1), (s2, z2), (so, zo) = _pt(a_qp), _pt(b_qp), _pt(out_qp)
    m, s = ew.div_multiplier(s1, s2, so)
    act_min, act_max = fp.activation_range_quantized(activation, so, zo)
    return Struct("ek_mul_params", _ints({
        "input1_offset": -z1, "input2_offset": -z2, "output_multiplier": m, "output_shift": s,
        "output_offset": zo, "act_min": act_min, "act_max": act_max}))


def lower_elementwise(low):
    """The KernelCall of ``low.op`` (``low`` is edgekit.backends.c.params._Lowering)."""
    t = low.op.type
    y = low.int8(low.out, "output")
    if t in UNARY_OPS:
        x = low.int8(low.t(0), "input")
        try:
            table = ew.unary_table(t.value, low.per_tensor(x), low.per_tensor(y), low.attrs)
        except Exception as exc:  # noqa: BLE001 - a parameter the kernel rejects, named
            raise low.unsupported(str(exc)) from None
        return low.call("lut", "ek_lut_s8", [ConstArray("int8_t", table, "table"), x.size, TensorRef(x.name),
                                             low.output()])
    a, b = low.int8(low.t(0), "input"), low.int8(low.t(1), "input")
    for tt in (a, b, y):
        low.rank_le4(tt)
    if len(a.shape) > len(y.shape) or len(b.shape) > len(y.shape):
        raise low.unsupported("an input has a higher rank than the output")
    qa, qb, qy = low.per_tensor(a), low.per_tensor(b), low.per_tensor(y)
    walk = [dims4(as4d(y.shape)), low.operand(a), broadcast_strides(a.shape), low.operand(b),
            broadcast_strides(b.shape), low.output()]
    if t in (OpType.MAXIMUM, OpType.MINIMUM):
        if not (_pt(qa) == _pt(qb) == _pt(qy)):
            raise low.unsupported("int8 maximum/minimum needs equal quantization of both inputs and the output")
        kind = t.value.lower()
        return low.call(kind, f"ek_{kind}_s8", walk)
    if t is OpType.PRELU:
        return low.call("prelu", "ek_prelu_s8", [prelu_params(qa, qb, qy)] + walk)
    if t is OpType.SQUARED_DIFFERENCE:
        return low.call("squared_difference", "ek_squared_difference_s8",
                        [squared_difference_params(qa, qb, qy)] + walk)
    if b.is_const and np.any(np.asarray(b.data).astype(np.int32) == int(qb.zero_point[0])):
        raise low.unsupported("a constant divisor holds zero")
    return low.call("div", "ek_div_s8", [div_params(qa, qb, qy, low.attrs["activation"])] + walk)
