"""Kernel calls of RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and TRANSPOSE_CONV for
runtimes/micro (parameters as TFLM's Prepare derives them; see
edgekit.reference.resample_kernels for the arithmetic)."""

from __future__ import annotations

import numpy as np

from edgekit.backends.c.params import ConstArray, KernelCall, TensorRef, conv_params, dims4, resize_bilinear_params
from edgekit.ir.ops import OpType
from edgekit.reference.resample_kernels import nearest_indices

RESAMPLE_OPS = (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR, OpType.TRANSPOSE_CONV)


def lower_resample(low) -> KernelCall:
    """``low``: edgekit.backends.c.params._Lowering of the op."""
    if low.op.type is OpType.TRANSPOSE_CONV:
        return _transpose_conv(low)
    x, y = low.int8(low.t(0), "input"), low.int8(low.out, "output")
    low.require_4d(x)
    xq, yq = low.per_tensor(x), low.per_tensor(y)
    if np.float32(xq.scale[0]) != np.float32(yq.scale[0]) or xq.zero_point[0] != yq.zero_point[0]:
        raise low.unsupported("int8 resizing needs equal input and output quantization")
    a = low.attrs
    size = tuple(a["size"])
    align, half = bool(a["align_corners"]), bool(a["half_pixel_centers"])
    if low.op.type is OpType.RESIZE_NEAREST_NEIGHBOR:
        rows = nearest_indices(x.shape[1], size[0], align, half).astype(np.int32)
        cols = nearest_indices(x.shape[2], size[1], align, half).astype(np.int32)
        return low.call("resize_nearest", "ek_resize_nearest_s8", [
            dims4(x.shape), ConstArray("int32_t", rows, "table"), ConstArray("int32_t", cols, "table"),
            dims4(y.shape), TensorRef(x.name), low.output()])
    return low.call("resize_bilinear", "ek_resize_bilinear_s8", [
        resize_bilinear_params(x.shape[1:3], size, align, half), dims4(x.shape), dims4(y.shape),
        TensorRef(x.name), low.output()])


def _transpose_conv(low) -> KernelCall:
    x, w, b = low.int8(low.t(0), "input"), low.int8(low.t(1), "filter"), low.t(2)
    y = low.int8(low.out, "output")
    low.require_4d(x)
    if not w.is_const:
        raise low.unsupported("the filter must be a constant")
    w_qp = low.qp(w)
    if any(z != 0 for z in w_qp.zero_point):
        raise low.unsupported("int8 transposed convolutions need filter zero points of 0")
    a = low.attrs
    channels = w.shape[0]
    struct, mult, shift = conv_params(low.per_tensor(x), w_qp, low.per_tensor(y), channels,
                                      stride=a["strides"], pads=a["pads"], dilation=(1, 1),
                                      activation=a["activation"])
    return low.call("transpose_conv", "ek_transpose_conv_s8", [
        struct, ConstArray("int32_t", mult, "multiplier"), ConstArray("int32_t", shift, "shift"),
        dims4(x.shape), TensorRef(x.name), dims4(w.shape),
        ConstArray("int8_t", np.ascontiguousarray(w.data, np.int8), "weights", w.name),
        low._bias(b, channels), dims4(y.shape), low.output()])
