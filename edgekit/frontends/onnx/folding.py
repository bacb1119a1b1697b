"""Evaluate ONNX nodes whose inputs are all constants (shape arithmetic and friends).

Exported models compute reshape targets from static shapes (Shape -> Gather ->
Unsqueeze -> Concat -> Reshape); these folders turn such chains into constants so
only real computation reaches the IR. Registered with ``convert.folder``.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx.convert import (MAX_CONST_ELEMENTS, flatten_shape, folder, onnx_quantize,
                                            resolve_reshape, squeeze_shape, unsqueeze_shape)
from edgekit.frontends.onnx.loader import np_dtype_of


@folder("Cast")
def _f_cast(c, node, a, v):
    dt = np_dtype_of(a.get("to", 1), c.label, "Cast target")
    if dt.kind not in "fiub":
        raise c.unsupported(f"Cast to {dt}")
    return [np.asarray(v[0]).astype(dt)]


@folder("Gather")
def _f_gather(c, node, a, v):
    data, idx = np.asarray(v[0]), np.asarray(v[1]).astype(np.int64)
    axis = c.norm_axis(a.get("axis", 0), data.ndim)
    if idx.size and (idx.max() >= data.shape[axis] or idx.min() < -data.shape[axis]):
        raise c.malformed("Gather index out of range")
    return [np.take(data, idx, axis=axis)]


@folder("ConstantOfShape")
def _f_constant_of_shape(c, node, a, v):
    shape = [int(s) for s in np.asarray(v[0]).reshape(-1)]
    if any(s < 0 for s in shape) or int(np.prod(shape, dtype=np.float64)) > MAX_CONST_ELEMENTS:
        raise c.malformed(f"invalid shape {shape}")
    value = a.get("value")
    value = np.zeros(1, np.float32) if value is None else np.asarray(value).reshape(-1)
    if value.size != 1:
        raise c.malformed("value must hold one element")
    return [np.full(shape, value[0], dtype=value.dtype)]


@folder("Slice")
def _f_slice(c, node, a, v):
    data = np.asarray(v[0])
    if c.opset < 10:
        starts, ends = a.get("starts"), a.get("ends")
        axes, steps = a.get("axes"), None
        if starts is None or ends is None:
            raise c.malformed("Slice needs starts and ends")
    else:
        starts, ends = v[1], v[2]
        axes = v[3] if len(v) > 3 else None
        steps = v[4] if len(v) > 4 else None
    starts = [int(s) for s in np.asarray(starts).reshape(-1)]
    ends = [int(s) for s in np.asarray(ends).reshape(-1)]
    axes = list(range(len(starts))) if axes is None else [int(s) for s in np.asarray(axes).reshape(-1)]
    steps = [1] * len(starts) if steps is None else [int(s) for s in np.asarray(steps).reshape(-1)]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise c.malformed("starts, ends, axes and steps differ in length")
    out = data
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax = c.norm_axis(ax, data.ndim)
        dim = data.shape[ax]
        if sp == 0:
            raise c.malformed("slice step 0")
        st = st + dim if st < 0 else st
        en = en + dim if en < 0 else en
        if sp > 0:
            st, en = min(max(st, 0), dim), min(max(en, 0), dim)
        else:
            st, en = min(max(st, 0), dim - 1), min(max(en, -1), dim - 1)
        out = np.take(out, np.arange(st, en, sp, dtype=np.int64), axis=ax)
    return [out]


@folder("Range")
def _f_range(c, node, a, v):
    start, limit, delta = (np.asarray(x).reshape(()) for x in v[:3])
    if delta == 0:
        raise c.malformed("Range delta is 0")
    n = max(int(np.ceil((float(limit) - float(start)) / float(delta))), 0)
    if n > MAX_CONST_ELEMENTS:
        raise c.malformed("Range too long")
    return [(start + np.arange(n) * delta).astype(start.dtype)]


@folder("Shape")
def _f_shape(c, node, a, v):
    x = v[0]
    return [shape_slice(c, np.shape(x), a)]


def shape_slice(c, shape, a) -> np.ndarray:
    start, end = int(a.get("start", 0)), a.get("end")
    shape = list(shape)
    return np.asarray(shape[start:] if end is None else shape[start:int(end)], dtype=np.int64)


@folder("Size")
def _f_size(c, node, a, v):
    return [np.asarray(np.size(v[0]), np.int64)]


@folder("Concat")
def _f_concat(c, node, a, v):
    arrs = [np.asarray(x) for x in v]
    if "axis" not in a:
        raise c.malformed("Concat needs an axis")
    axis = c.norm_axis(a["axis"], arrs[0].ndim)
    return [np.concatenate(arrs, axis=axis)]


@folder("Reshape")
def _f_reshape(c, node, a, v):
    x = np.asarray(v[0])
    if c.opset < 5:
        raise c.unsupported("Reshape before opset 5")
    return [x.reshape(resolve_reshape(c, x.shape, v[1], bool(a.get("allowzero", 0))))]


@folder("Flatten")
def _f_flatten(c, node, a, v):
    x = np.asarray(v[0])
    return [x.reshape(flatten_shape(c, x.shape, int(a.get("axis", 1))))]


def _axes(c, a, v):
    if c.opset < 13:
        return a.get("axes")
    return None if len(v) < 2 or v[1] is None else list(np.asarray(v[1]).reshape(-1))


@folder("Squeeze")
def _f_squeeze(c, node, a, v):
    x = np.asarray(v[0])
    axes = _axes(c, a, v)
    return [x.reshape(squeeze_shape(c, x.shape, axes))]


@folder("Unsqueeze")
def _f_unsqueeze(c, node, a, v):
    x = np.asarray(v[0])
    axes = _axes(c, a, v)
    return [x.reshape(unsqueeze_shape(c, x.shape, axes))]


@folder("Transpose")
def _f_transpose(c, node, a, v):
    x = np.asarray(v[0])
    perm = a.get("perm", list(range(x.ndim))[::-1])
    if sorted(perm) != list(range(x.ndim)):
        raise c.malformed(f"perm {list(perm)} is not a permutation of rank {x.ndim}")
    return [x.transpose(perm)]


@folder("Add", "Sub", "Mul", "Div")
def _f_arith(c, node, a, v):
    x, y = np.asarray(v[0]), np.asarray(v[1])
    op = node.op_type
    if op == "Add":
        r = x + y
    elif op == "Sub":
        r = x - y
    elif op == "Mul":
        r = x * y
    elif x.dtype.kind in "iu" and y.dtype.kind in "iu":
        if np.any(y == 0):
            raise c.malformed("integer division by zero")
        r = np.trunc(x.astype(np.float64) / y).astype(np.result_type(x, y))
    else:
        r = x / y
    return [np.asarray(r).astype(np.result_type(x, y))]


@folder("Relu")
def _f_relu(c, node, a, v):
    return [np.maximum(v[0], 0).astype(np.asarray(v[0]).dtype)]


@folder("Sigmoid")
def _f_sigmoid(c, node, a, v):
    x = np.asarray(v[0], np.float32)
    return [(1 / (1 + np.exp(-x))).astype(np.float32)]


@folder("Tanh")
def _f_tanh(c, node, a, v):
    return [np.tanh(np.asarray(v[0], np.float32))]


@folder("QuantizeLinear")
def _f_quantize(c, node, a, v):
    x, scale = np.asarray(v[0]), np.asarray(v[1])
    zp = v[2] if len(v) > 2 and v[2] is not None else None
    if a.get("block_size", 0):
        raise c.unsupported("blocked quantization")
    dt = np.dtype(zp.dtype) if zp is not None else np_dtype_of(a.get("output_dtype", 0) or 2, c.label,
                                                                 "QuantizeLinear output")
    if dt.kind not in "iu":
        raise c.unsupported(f"quantization to {dt}")
    axis = c.norm_axis(a.get("axis", 1), max(x.ndim, 1)) if scale.size > 1 else None
    return [onnx_quantize(x, scale, 0 if zp is None else zp, axis, dt)]


# -- comparisons, logic and elementwise math on constants ----------------------------
# (masks and index arithmetic of exported attention / normalization graphs)

_COMPARE = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
            "GreaterOrEqual": np.greater_equal}
_LOGIC = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}
_UNARY = {"Neg": np.negative, "Abs": np.abs, "Sqrt": np.sqrt, "Exp": np.exp, "Log": np.log,
          "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil, "Sign": np.sign, "Erf": None}


@folder(*_COMPARE)
def _f_compare(c, node, a, v):
    return [_COMPARE[node.op_type](np.asarray(v[0]), np.asarray(v[1]))]


@folder(*_LOGIC)
def _f_logic(c, node, a, v):
    return [_LOGIC[node.op_type](np.asarray(v[0], bool), np.asarray(v[1], bool))]


@folder("Not")
def _f_not(c, node, a, v):
    return [np.logical_not(np.asarray(v[0], bool))]


@folder(*_UNARY)
def _f_unary(c, node, a, v):
    x = np.asarray(v[0])
    if node.op_type == "Erf":
        from math import erf
        return [np.vectorize(erf, otypes=[np.float64])(x).astype(x.dtype)]
    return [np.asarray(_UNARY[node.op_type](x)).astype(x.dtype)]


@folder("Max", "Min", "Sum", "Mean")
def _f_variadic(c, node, a, v):
    arrs = [np.asarray(x) for x in v if x is not None]
    if not arrs:
        raise c.malformed("needs at least one input")
    fn = {"Max": np.maximum, "Min": np.minimum, "Sum": np.add, "Mean": np.add}[node.op_type]
    r = arrs[0]
    for x in arrs[1:]:
        r = fn(r, x)
    if node.op_type == "Mean":
        r = r / len(arrs)
    return [np.asarray(r).astype(arrs[0].dtype)]


@folder("Pow")
def _f_pow(c, node, a, v):
    x, y = np.asarray(v[0]), np.asarray(v[1])
    return [np.power(x, y).astype(x.dtype)]


@folder("Mod")
def _f_mod(c, node, a, v):
    x, y = np.asarray(v[0]), np.asarray(v[1])
    if x.dtype.kind in "iu" and np.any(y == 0):
        raise c.malformed("integer modulo by zero")
    if a.get("fmod", 0):
        return [np.fmod(x, y).astype(x.dtype)]
    if x.dtype.kind == "f":
        raise c.malformed("Mod of floating-point values needs fmod=1")
    return [np.mod(x, y).astype(x.dtype)]


@folder("Where")
def _f_where(c, node, a, v):
    x = np.asarray(v[1])
    return [np.where(np.asarray(v[0], bool), x, np.asarray(v[2])).astype(x.dtype)]


@folder("Expand")
def _f_expand(c, node, a, v):
    x = np.asarray(v[0])
    shape = [int(s) for s in np.asarray(v[1]).reshape(-1)]
    out = np.broadcast_shapes(x.shape, tuple(shape))
    if int(np.prod(out, dtype=np.float64)) > MAX_CONST_ELEMENTS:
        raise c.malformed("constant result too large")
    return [np.broadcast_to(x, out).copy()]


@folder("CastLike")
def _f_cast_like(c, node, a, v):
    dt = np.asarray(v[1]).dtype
    if dt.kind not in "fiub":
        raise c.unsupported(f"CastLike to {dt}")
    return [np.asarray(v[0]).astype(dt)]


@folder("Identity")
def _f_identity(c, node, a, v):
    return [np.asarray(v[0])]


@folder("Trilu")
def _f_trilu(c, node, a, v):
    x = np.asarray(v[0])
    k = 0 if len(v) < 2 or v[1] is None else int(np.asarray(v[1]).reshape(-1)[0])
    if x.ndim < 2:
        raise c.malformed("Trilu needs a tensor of rank 2 or more")
    return [np.triu(x, k) if a.get("upper", 1) else np.tril(x, k)]


@folder("ReduceSum", "ReduceMax", "ReduceMin", "ReduceMean", "ReduceProd")
def _f_reduce(c, node, a, v):
    x = np.asarray(v[0])
    since = 13 if node.op_type == "ReduceSum" else 18
    if c.opset >= since:
        axes = None if len(v) < 2 or v[1] is None else [int(s) for s in np.asarray(v[1]).reshape(-1)]
    else:
        axes = a.get("axes")
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.ndim))
    axes = tuple(c.norm_axis(ax, x.ndim) for ax in axes)
    fn = {"ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min, "ReduceMean": np.mean,
          "ReduceProd": np.prod}[node.op_type]
    return [np.asarray(fn(x, axis=axes, keepdims=bool(a.get("keepdims", 1)))).astype(x.dtype)]
