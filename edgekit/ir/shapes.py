"""Shape inference and cost (MACs) of IR ops."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from edgekit.ir.ops import OpType
from edgekit.ir.shapes_recurrent import RECURRENT_OPS, infer_recurrent_shapes, recurrent_macs
from edgekit.ir.shapes_movement import MOVEMENT_OPS, movement_shapes
from edgekit.ir.shapes_reduction import REDUCTION_OPS, reduction_macs, reduction_shapes
from edgekit.ir.shapes_elementwise import ELEMENTWISE_OPS, elementwise_macs, elementwise_shapes

# typing.Tuple: `edgekit device infer` loads this module (through edgekit.reference.inputs) on
# the device images' Python 3.8, where tuple[...] outside an annotation is a TypeError.
Shape = Tuple[int, ...]


def conv_output_hw(in_hw, kernel_hw, strides, dilations, pads) -> tuple[int, int]:
    top, left, bottom, right = pads
    out = []
    for size, k, s, d, lo, hi in zip(in_hw, kernel_hw, strides, dilations, (top, left), (bottom, right)):
        eff = (k - 1) * d + 1
        n = (size + lo + hi - eff) // s + 1
        if n <= 0:
            raise ValueError(f"window {k} (dilation {d}) does not fit input size {size} with pads {lo},{hi}")
        out.append(n)
    return out[0], out[1]


def same_pads(in_hw, kernel_hw, strides, dilations=(1, 1)) -> tuple[int, int, int, int]:
    """Explicit pads equal to TFLite's SAME padding (the extra one goes after)."""
    pads = []
    for size, k, s, d in zip(in_hw, kernel_hw, strides, dilations):
        out = -(-size // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
        pads.append((total // 2, total - total // 2))
    (t, b), (l, r) = pads
    return t, l, b, r


def broadcast_shape(a: Shape, b: Shape) -> Shape:
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ValueError(f"shapes {list(a)} and {list(b)} do not broadcast") from None


def infer_op_shapes(op_type: OpType, in_shapes: list[Shape | None], attrs: dict) -> list[Shape]:
    """Output shapes of one op from its input shapes (None for absent inputs)."""
    x = in_shapes[0]
    if op_type in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D):
        w = in_shapes[1]
        if len(x) != 4 or len(w) != 4:
            raise ValueError(f"expects 4-D input and filter, got {list(x)} and {list(w)}")
        n, h, wd, cin = x
        if op_type is OpType.CONV_2D:
            cout, kh, kw, wcin = w
            if wcin != cin:
                raise ValueError(f"filter has {wcin} input channels, input has {cin}")
        else:
            _, kh, kw, cout = w
            if cout != cin * attrs["depth_multiplier"]:
                raise ValueError(f"filter has {cout} channels, expected {cin} x depth_multiplier "
                                 f"{attrs['depth_multiplier']}")
        b = in_shapes[2] if len(in_shapes) > 2 else None
        if b is not None and tuple(b) != (cout,):
            raise ValueError(f"bias shape {list(b)} does not match {cout} output channels")
        oh, ow = conv_output_hw((h, wd), (kh, kw), attrs["strides"], attrs["dilations"], attrs["pads"])
        return [(n, oh, ow, cout)]
    if op_type is OpType.FULLY_CONNECTED:
        w = in_shapes[1]
        if len(w) != 2:
            raise ValueError(f"weights must be 2-D [out, in], got {list(w)}")
        cout, k = w
        total = int(np.prod(x))
        if total % k:
            raise ValueError(f"input {list(x)} has {total} elements, not a multiple of {k}")
        b = in_shapes[2] if len(in_shapes) > 2 else None
        if b is not None and tuple(b) != (cout,):
            raise ValueError(f"bias shape {list(b)} does not match {cout} outputs")
        if attrs["keep_num_dims"]:
            if x[-1] != k:
                raise ValueError(f"keep_num_dims needs last dim {k}, input is {list(x)}")
            return [tuple(x[:-1]) + (cout,)]
        return [(total // k, cout)]
    if op_type in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        if len(x) != 4:
            raise ValueError(f"expects 4-D input, got {list(x)}")
        oh, ow = conv_output_hw(x[1:3], attrs["kernel"], attrs["strides"], (1, 1), attrs["pads"])
        return [(x[0], oh, ow, x[3])]
    if op_type in (OpType.ADD, OpType.SUB, OpType.MUL):
        return [broadcast_shape(x, in_shapes[1])]
    if op_type is OpType.RESHAPE:
        return [resolve_reshape(x, attrs["shape"])]
    if op_type in (OpType.SOFTMAX, OpType.RELU, OpType.RELU6, OpType.LOGISTIC, OpType.TANH,
                   OpType.QUANTIZE, OpType.DEQUANTIZE, OpType.BATCH_NORM):
        return [tuple(x)]
    if op_type is OpType.PAD:
        p = attrs["pads"]
        if len(p) != 2 * len(x):
            raise ValueError(f"pads has {len(p)} values, needs {2 * len(x)} for rank {len(x)}")
        if any(v < 0 for v in p):
            raise ValueError(f"negative pads {list(p)}")
        return [tuple(d + p[2 * i] + p[2 * i + 1] for i, d in enumerate(x))]
    if op_type is OpType.CONCATENATION:
        axis = attrs["axis"] % len(x)
        out = list(x)
        for s in in_shapes[1:]:
            if len(s) != len(x) or any(a != b for i, (a, b) in enumerate(zip(s, x)) if i != axis):
                raise ValueError(f"cannot concatenate {list(s)} with {list(x)} on axis {axis}")
            out[axis] += s[axis]
        return [tuple(out)]
    if op_type is OpType.MEAN:
        axes = sorted({a % len(x) for a in attrs["axes"]})
        if attrs["keep_dims"]:
            return [tuple(1 if i in axes else d for i, d in enumerate(x))]
        return [tuple(d for i, d in enumerate(x) if i not in axes)]
    if op_type is OpType.TRANSPOSE:
        perm = attrs["perm"]
        if sorted(perm) != list(range(len(x))):
            raise ValueError(f"perm {list(perm)} is not a permutation of rank {len(x)}")
        return [tuple(x[p] for p in perm)]
    if op_type in MOVEMENT_OPS:
        return movement_shapes(op_type, in_shapes, attrs)
    if op_type in RECURRENT_OPS:
        return infer_recurrent_shapes(op_type, in_shapes, attrs)
    if op_type in REDUCTION_OPS:
        return reduction_shapes(op_type, in_shapes, attrs)
    if op_type in ELEMENTWISE_OPS:
        return elementwise_shapes(op_type, in_shapes, attrs)
    if op_type in (OpType.RESIZE_NEAREST_NEIGHBOR, OpType.RESIZE_BILINEAR):
        return [_resize_shape(x, attrs)]
    if op_type is OpType.TRANSPOSE_CONV:
        return [_transpose_conv_shape(x, in_shapes[1], in_shapes[2] if len(in_shapes) > 2 else None, attrs)]
    raise ValueError(f"no shape rule for {op_type.value}")


def _resize_shape(x: Shape, attrs: dict) -> Shape:
    if len(x) != 4:
        raise ValueError(f"expects a 4-D NHWC input, got {list(x)}")
    oh, ow = attrs["size"]
    if oh <= 0 or ow <= 0:
        raise ValueError(f"output size must be positive, got {[oh, ow]}")
    if attrs["align_corners"] and attrs["half_pixel_centers"]:
        raise ValueError("align_corners and half_pixel_centers cannot both be set")
    return (x[0], oh, ow, x[3])


def _transpose_conv_shape(x: Shape, w: Shape, b: Shape | None, attrs: dict) -> Shape:
    """pads (top, left, bottom, right) crop the full (H - 1) * stride + K result; a
    negative bottom/right adds rows/columns that only get the bias (ONNX output_padding)."""
    if len(x) != 4 or len(w) != 4:
        raise ValueError(f"expects 4-D input and filter [Cout, KH, KW, Cin], got {list(x)} and {list(w)}")
    cout, kh, kw, cin = w
    if cin != x[3]:
        raise ValueError(f"filter has {cin} input channels, input has {x[3]}")
    if b is not None and tuple(b) != (cout,):
        raise ValueError(f"bias shape {list(b)} does not match {cout} output channels")
    (sh, sw), (top, left, bottom, right) = attrs["strides"], attrs["pads"]
    if sh < 1 or sw < 1:
        raise ValueError(f"strides must be positive, got {[sh, sw]}")
    if top < 0 or left < 0:
        raise ValueError(f"top/left pads must be >= 0, got {list(attrs['pads'])}")
    oh = (x[1] - 1) * sh + kh - top - bottom
    ow = (x[2] - 1) * sw + kw - left - right
    want = (x[0], oh, ow, cout)
    if oh <= 0 or ow <= 0:
        raise ValueError(f"pads {list(attrs['pads'])} leave no output for input {list(x)}")
    if tuple(attrs["output_shape"])[1:] != want[1:]:
        raise ValueError(f"output_shape {list(attrs['output_shape'])} does not match input {list(x)}, "
                         f"filter {list(w)}, strides {[sh, sw]} and pads {list(attrs['pads'])} "
                         f"(which give {list(want)})")
    return want


def resolve_reshape(x: Shape, shape) -> Shape:
    total = int(np.prod(x))
    shape = [int(s) for s in shape]
    if shape.count(-1) > 1:
        raise ValueError(f"reshape to {shape}: more than one -1")
    known = int(np.prod([s for s in shape if s != -1])) if shape else 1
    if -1 in shape:
        if known == 0 or total % known:
            raise ValueError(f"cannot reshape {list(x)} to {shape}")
        shape[shape.index(-1)] = total // known
    if int(np.prod(shape)) != total:
        raise ValueError(f"cannot reshape {list(x)} ({total} elements) to {shape}")
    return tuple(shape)


def op_macs(op_type: OpType, in_shapes: list[Shape | None], out_shapes: list[Shape], attrs: dict) -> int:
    """Multiply-accumulates of one op (0 for pooling, adds and data movement)."""
    out = out_shapes[0]
    if op_type is OpType.CONV_2D:
        _, kh, kw, cin = in_shapes[1]
        return int(np.prod(out)) * kh * kw * cin
    if op_type is OpType.DEPTHWISE_CONV_2D:
        _, kh, kw, _ = in_shapes[1]
        return int(np.prod(out)) * kh * kw
    if op_type is OpType.FULLY_CONNECTED:
        cout, k = in_shapes[1]
        return int(np.prod(out)) // cout * cout * k
    if op_type in (OpType.MUL, OpType.BATCH_NORM):
        return int(np.prod(out))
    if op_type is OpType.TRANSPOSE_CONV:  # every input pixel meets every filter tap
        cout, kh, kw, cin = in_shapes[1]
        return int(np.prod(in_shapes[0][:3])) * kh * kw * cin * cout
    if op_type in RECURRENT_OPS:
        return recurrent_macs(op_type, in_shapes, attrs)
    if op_type in REDUCTION_OPS:
        return reduction_macs(op_type, in_shapes, out_shapes, attrs)
    if op_type in ELEMENTWISE_OPS:
        return elementwise_macs(op_type, out_shapes)
    # Pools, adds and data movement: no multiplies (counted as MLPerf Tiny counts MACs).
    return 0
