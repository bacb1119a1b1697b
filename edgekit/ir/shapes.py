"""Shape inference and cost (MACs) of IR ops."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from edgekit.ir.ops import OpType

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
    raise ValueError(f"no shape rule for {op_type.value}")


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
    # Pools, adds and data movement: no multiplies (counted as MLPerf Tiny counts MACs).
    return 0
