"""Converters of ONNX nodes to IR ops, one function per ONNX op (``convert.handler``).

Layout rules: see ``values``. A handler reads its inputs through the ``Converter``
(constants stay numpy until an op needs them in the IR), emits IR ops with shapes
from the IR's own shape rules, and binds the node's outputs.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx.convert import (Converter, Value, axes_input_or_attr, flatten_shape, handler,
                                            resolve_reshape, squeeze_shape, unsqueeze_shape)
from edgekit.frontends.onnx.folding import shape_slice
from edgekit.frontends.onnx.loader import np_dtype_of
from edgekit.frontends.onnx.values import NHWC, Act, QConst, ir_axis, ir_perm
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.ops import FUSABLE, OpType


@handler("Identity")
def _identity(c: Converter, node, a):
    c.set_out(node, 0, c.inp(node, 0))


@handler("Dropout")
def _dropout(c: Converter, node, a):
    if c.opset >= 12:
        train = c.inp(node, 2, required=False)
        if isinstance(train, Act):
            raise c.unsupported("training_mode given at run time")
        if train is not None and bool(np.asarray(train).reshape(-1)[0]):
            ratio = c.inp(node, 1, required=False)
            if isinstance(ratio, Act) or ratio is None or float(np.asarray(ratio).reshape(-1)[0]) != 0.0:
                raise c.unsupported("training_mode=True (random; only ratio 0, which drops nothing, is imported)")
    if c.opset < 7 and not a.get("is_test", 0):
        raise c.unsupported("training mode (is_test=0)")
    if c.used(node, 1):
        raise c.unsupported("the mask output")
    c.set_out(node, 0, c.inp(node, 0))


@handler("Constant")
def _constant(c: Converter, node, a):
    if "value" in a and isinstance(a["value"], np.ndarray):
        v = a["value"]
    elif "value_float" in a:
        v = np.asarray(a["value_float"], np.float32)
    elif "value_floats" in a:
        v = np.asarray(a["value_floats"], np.float32)
    elif "value_int" in a:
        v = np.asarray(a["value_int"], np.int64)
    elif "value_ints" in a:
        v = np.asarray(a["value_ints"], np.int64)
    else:
        raise c.unsupported(f"constant attributes {sorted(a)} (only numeric tensors)")
    c.set_out(node, 0, v)


@handler("Shape")
def _shape(c: Converter, node, a):
    v = c.inp(node, 0)
    shape = c.sshape(v.name) if isinstance(v, Act) else np.shape(v.q if isinstance(v, QConst) else v)
    c.set_out(node, 0, shape_slice(c, shape, a))


@handler("Size")
def _size(c: Converter, node, a):
    v = c.inp(node, 0)
    c.set_out(node, 0, np.asarray(int(np.prod(c.sshape(v.name), dtype=np.int64)), np.int64))


@handler("Gather", "ConstantOfShape", "Slice", "Range")
def _const_only(c: Converter, node, a):
    raise c.unsupported("supported only when it can be computed at compile time (constant inputs "
                        "or static shapes); here an input is a run-time tensor")


@handler("Cast")
def _cast(c: Converter, node, a):
    x = c.inp(node, 0)
    dt = np_dtype_of(a.get("to", 1), c.label, "Cast target")
    if dt == np.float32 and c.g.tensor(x.name).dtype is DType.FLOAT32:
        c.set_out(node, 0, x)
        return
    raise c.unsupported(f"Cast of a run-time {c.g.tensor(x.name).dtype.value} tensor to {dt} "
                        "(only float32 -> float32 is a no-op edgekit accepts)")


@handler("Relu", "Sigmoid", "Tanh")
def _unary(c: Converter, node, a):
    x = c.act_inp(node, 0)
    typ = {"Relu": OpType.RELU, "Sigmoid": OpType.LOGISTIC, "Tanh": OpType.TANH}[node.op_type]
    c.set_out(node, 0, Act(c.emit(typ, [x], out=c.out_name(node.output[0]))))


@handler("Clip")
def _clip(c: Converter, node, a):
    x = c.act_inp(node, 0)
    if c.opset < 11:
        lo, hi = float(a.get("min", -np.inf)), float(a.get("max", np.inf))
    else:
        vlo = c.const_inp(node, 1, "min", required=False)
        vhi = c.const_inp(node, 2, "max", required=False)
        lo = -np.inf if vlo is None else float(np.asarray(vlo).reshape(-1)[0])
        hi = np.inf if vhi is None else float(np.asarray(vhi).reshape(-1)[0])
    out = c.out_name(node.output[0])
    if lo == -np.inf and hi == np.inf:
        c.set_out(node, 0, Act(x))
        return
    if lo == 0 and hi == 6:
        c.set_out(node, 0, Act(c.emit(OpType.RELU6, [x], out=out)))
        return
    if lo == 0 and hi == np.inf:
        c.set_out(node, 0, Act(c.emit(OpType.RELU, [x], out=out)))
        return
    if lo == -1 and hi == 1:
        prod = next((op for op in c.g.ops if x in op.outputs), None)
        if (prod is not None and prod.type in FUSABLE and prod.attrs.get("activation", "NONE") == "NONE"
                and c.uses[node.input[0]] == 1 and x not in c.g.outputs):
            prod.attrs["activation"] = "RELU_N1_TO_1"
            c.set_out(node, 0, Act(x))
            return
    # Any other bounds: max(x, lo) then min(., hi), as np.clip computes them.
    y = x
    if lo != -np.inf:
        y = c.emit(OpType.MAXIMUM, [y, c.const(np.float32(lo), f"{c.node_name()}_min")],
                   out=out if hi == np.inf else None)
    if hi != np.inf:
        y = c.emit(OpType.MINIMUM, [y, c.const(np.float32(hi), f"{c.node_name()}_max")], out=out)
    c.set_out(node, 0, Act(y))


# Softmax and LogSoftmax: handlers_composite.


@handler("Add", "Sub", "Mul", "Div")
def _binary(c: Converter, node, a):
    va, vb = c.inp(node, 0), c.inp(node, 1)
    op = node.op_type
    if op == "Div":
        if isinstance(vb, Act):
            raise c.unsupported("division by a run-time tensor (only division by a constant)")
        b = vb.value() if isinstance(vb, QConst) else np.asarray(vb, np.float32)
        vb = (np.float32(1) / b.astype(np.float32)).astype(np.float32)
        op = "Mul"
    rank_of = lambda v: c.g.tensor(v.name).rank if isinstance(v, Act) else np.ndim(v.q if isinstance(v, QConst) else v)
    r = max(rank_of(va), rank_of(vb))
    act_ranks = [c.g.tensor(v.name).rank for v in (va, vb) if isinstance(v, Act)]
    names = []
    for i, v in enumerate((va, vb)):
        if isinstance(v, Act):
            name = v.name
            t = c.g.tensor(name)
            if t.dtype is not DType.FLOAT32:
                raise c.unsupported(f"input {i} is {t.dtype.value}; arithmetic is imported for float32 tensors")
            if t.rank < r and r == 4:
                # Lower-rank run-time operand of a 4-D op: make it 4-D, then NHWC.
                src = (1,) * (4 - t.rank) + c.sshape(name)
                name = c.from_src(c.emit(OpType.RESHAPE, [name], {"shape": src}))
            names.append(name)
        else:
            arr = v.value() if isinstance(v, QConst) else np.asarray(v)
            if arr.dtype.kind not in "fiub":
                raise c.unsupported(f"constant operand of type {arr.dtype}")
            arr = arr.astype(np.float32)
            if r == 4:
                arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(NHWC)
            keep = max(act_ranks) if act_ranks else 0
            while arr.ndim > keep and arr.ndim > 0 and arr.shape[0] == 1:
                arr = arr.reshape(arr.shape[1:])
            name = c.const(arr, f"{c.node_name()}_operand{i}", ir_layout=True)
            if isinstance(v, QConst) and v.per_tensor:
                c.qinfo[name] = QConst(v.q.reshape(arr.shape), v.scale, v.zp, None)
            names.append(name)
    typ = {"Add": OpType.ADD, "Sub": OpType.SUB, "Mul": OpType.MUL}[op]
    if r == 0 and any(c.g.tensor(n).rank for n in names):
        # Scalar op scalar: the constant is stored with shape [1] (IR constants have rank
        # >= 1); the result keeps the source's rank 0.
        y = c.emit(typ, names, dtype=DType.FLOAT32)
        c.set_out(node, 0, Act(c.emit(OpType.RESHAPE, [y], {"shape": ()}, out=c.out_name(node.output[0]))))
        return
    c.set_out(node, 0, Act(c.emit(typ, names, out=c.out_name(node.output[0]), dtype=DType.FLOAT32)))


def _weights(c: Converter, v: Value, perm, base: str, what: str) -> str:
    """An IR float constant for a weight, with its int8 form recorded when it came from DQ."""
    if isinstance(v, Act):
        raise c.unsupported(f"{what} must be constant (run-time {what} are not supported)")
    if isinstance(v, QConst):
        qc = v.transpose(perm) if perm is not None else v
        name = c.const(qc.value(), base, ir_layout=True)
        c.qinfo[name] = qc
        return name
    arr = np.asarray(v).astype(np.float32)
    return c.const(arr.transpose(perm) if perm is not None else arr, base, ir_layout=True)


def _bias(c: Converter, v: Value, n: int, base: str) -> str:
    if isinstance(v, Act):
        raise c.unsupported("the bias must be constant")
    shape = (v.q if isinstance(v, QConst) else np.asarray(v)).shape
    if int(np.prod(shape, dtype=np.int64)) != n:
        raise c.malformed(f"bias has shape {list(shape)}, expected {n} values")
    if isinstance(v, QConst):
        qc = QConst(v.q.reshape(n), v.scale.reshape(-1) if v.axis is not None else v.scale,
                    v.zp.reshape(-1) if v.axis is not None else v.zp, 0 if v.axis is not None else None)
        return _weights(c, qc, None, base, "bias")
    return c.const(np.asarray(v, np.float32).reshape(n), base, ir_layout=True)


@handler("Conv")
def _conv(c: Converter, node, a):
    x = c.act_inp(node, 0)
    xs = c.sshape(x)
    if len(xs) != 4:
        raise c.unsupported(f"only 2-D convolution (4-D NCHW input) is supported; the input has rank {len(xs)}")
    w = c.inp(node, 1)
    if isinstance(w, Act):
        raise c.unsupported("the weights must be constant")
    wshape = (w.q if isinstance(w, QConst) else np.asarray(w)).shape
    if len(wshape) != 4:
        raise c.malformed(f"weights of shape {list(wshape)}, expected [O, I/group, KH, KW]")
    cout, cin_g, kh, kw = wshape
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != (kh, kw):
        raise c.malformed(f"kernel_shape {list(a['kernel_shape'])} does not match the weights {list(wshape)}")
    group = int(a.get("group", 1))
    cin = xs[1]
    strides = c.ints(a, "strides", (1, 1), 2)
    dil = c.ints(a, "dilations", (1, 1), 2)
    pads = c.pads2d(a, xs[2:], (kh, kw), strides, dil)
    base = c.node_name()
    if group == 1:
        if cin_g != cin:
            raise c.malformed(f"weights take {cin_g} input channels, the input has {cin}")
        typ, perm, extra = OpType.CONV_2D, (0, 2, 3, 1), {}
    elif group == cin and cin_g == 1 and cout % cin == 0:
        typ, perm, extra = OpType.DEPTHWISE_CONV_2D, (1, 2, 3, 0), {"depth_multiplier": cout // cin}
    else:
        raise c.unsupported(f"grouped convolution with group={group} ({cin} input, {cout} output channels): "
                            "only group=1 and depthwise (group = input channels) are supported")
    inputs = [x, _weights(c, w, perm, f"{base}_filter", "weights")]
    b = c.inp(node, 2, required=False)
    if b is not None:
        inputs.append(_bias(c, b, cout, f"{base}_bias"))
    out = c.emit(typ, inputs, {"strides": strides, "dilations": dil, "pads": pads, **extra},
                 out=c.out_name(node.output[0]), dtype=DType.FLOAT32)
    c.set_out(node, 0, Act(out))


def _fc(c: Converter, x: str, weights: Value, perm, bias: Value | None, base: str, out: str | None,
        keep_dims: bool = False, alpha: float = 1.0) -> str:
    """FULLY_CONNECTED with weights given as [K, N] (perm (1, 0)) or [N, K] (perm None)."""
    if alpha != 1.0:
        w = weights.value() if isinstance(weights, QConst) else np.asarray(weights, np.float32)
        weights = (w * np.float32(alpha)).astype(np.float32)
    wname = _weights(c, weights, perm, f"{base}_weights", "weights (B)")
    n = c.g.tensor(wname).shape[0]
    inputs = [x, wname]
    if bias is not None:
        inputs.append(_bias(c, bias, n, f"{base}_bias"))
    return c.emit(OpType.FULLY_CONNECTED, inputs, {"keep_num_dims": keep_dims}, out=out, dtype=DType.FLOAT32)


@handler("Gemm")
def _gemm(c: Converter, node, a):
    x = c.act_inp(node, 0)
    if c.g.tensor(x).rank != 2:
        raise c.malformed(f"Gemm input A must be 2-D, is {list(c.sshape(x))}")
    b = c.inp(node, 1)
    if isinstance(b, Act):
        raise c.unsupported("input B must be a constant (run-time matrix products are not supported)")
    bshape = (b.q if isinstance(b, QConst) else np.asarray(b)).shape
    if len(bshape) != 2:
        raise c.malformed(f"B must be 2-D, is {list(bshape)}")
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    if a.get("transA", 0):
        x = c.emit(OpType.TRANSPOSE, [x], {"perm": (1, 0)})
    perm = None if a.get("transB", 0) else (1, 0)
    n = bshape[0] if perm is None else bshape[1]
    m, k = c.g.tensor(x).shape
    if (bshape[1] if perm is None else bshape[0]) != k:
        raise c.malformed(f"A is [{m}, {k}] but B is {list(bshape)} (transB={a.get('transB', 0)})")
    cv = c.inp(node, 2, required=False)
    bias, add = None, None
    if cv is not None and beta != 0:
        if isinstance(cv, Act):
            add = cv.name
            if beta != 1.0:
                add = c.emit(OpType.MUL, [add, c.const(np.float32(beta), f"{c.node_name()}_beta")])
        else:
            cshape = (cv.q if isinstance(cv, QConst) else np.asarray(cv)).shape
            if int(np.prod(cshape, dtype=np.int64)) in (1, n) and (len(cshape) < 2 or cshape[0] == 1) \
                    and (len(cshape) == 0 or cshape[-1] in (1, n)):
                if isinstance(cv, QConst) and beta == 1.0 and int(np.prod(cshape)) == n:
                    bias = cv
                else:
                    val = cv.value() if isinstance(cv, QConst) else np.asarray(cv, np.float32)
                    bias = np.broadcast_to((val * np.float32(beta)).reshape(-1), (n,)).astype(np.float32)
            else:
                val = cv.value() if isinstance(cv, QConst) else np.asarray(cv, np.float32)
                add = c.const((val * np.float32(beta)).astype(np.float32), f"{c.node_name()}_C")
    out = c.out_name(node.output[0])
    y = _fc(c, x, b, perm, bias, c.node_name(), None if add else out, alpha=alpha)
    if add:
        y = c.emit(OpType.ADD, [y, add], out=out, dtype=DType.FLOAT32)
    c.set_out(node, 0, Act(y))


@handler("MatMul")
def _matmul(c: Converter, node, a):
    vb = c.inp(node, 1)
    if isinstance(vb, Act):
        raise c.unsupported("the second operand must be a constant (run-time matrix products are not supported)")
    x = c.act_inp(node, 0)
    bshape = (vb.q if isinstance(vb, QConst) else np.asarray(vb)).shape
    xs = c.sshape(x)
    out = c.out_name(node.output[0])
    if len(bshape) > 2 and len(xs) >= 2:
        # A stack of constant matrices (attention with constant keys/values): BATCH_MATMUL
        # with a constant right operand, batch dimensions broadcast.
        if xs[-1] != bshape[-2]:
            raise c.malformed(f"cannot multiply {list(xs)} by {list(bshape)}")
        arr = vb.value() if isinstance(vb, QConst) else np.asarray(vb, np.float32)
        names = [c.to_src(x), c.const(arr.astype(np.float32), f"{c.node_name()}_operand1", ir_layout=True)]
        rank = max(len(xs), len(bshape))
        y = c.emit(OpType.BATCH_MATMUL, names, out=out if rank != 4 else None, dtype=DType.FLOAT32)
        c.set_out(node, 0, Act(c.from_src(y, out) if rank == 4 else y))
        return
    if len(bshape) not in (1, 2) or len(xs) == 0:
        raise c.unsupported(f"MatMul of shapes {list(xs)} and {list(bshape)}: the constant operand must be 1-D or 2-D")
    k = bshape[0]
    if xs[-1] != k:
        raise c.malformed(f"cannot multiply {list(xs)} by {list(bshape)}")
    vec = len(bshape) == 1
    if vec:
        vb = QConst(vb.q.reshape(k, 1), vb.scale, vb.zp, None if vb.axis is None else 0) \
            if isinstance(vb, QConst) else np.asarray(vb).reshape(k, 1)
    n = 1 if vec else bshape[1]
    if len(xs) == 1:
        x2 = c.emit(OpType.RESHAPE, [x], {"shape": (1, k)})
        y = _fc(c, x2, vb, (1, 0), None, c.node_name(), None)
        final = () if vec else (n,)
        c.set_out(node, 0, Act(c.emit(OpType.RESHAPE, [y], {"shape": final}, out=out)))
        return
    raw = c.to_src(x)
    keep = len(xs) > 2
    y_shape = tuple(xs[:-1]) + (() if vec else (n,))
    if vec:
        y = _fc(c, raw, vb, (1, 0), None, c.node_name(), None, keep_dims=keep)
        y = c.emit(OpType.RESHAPE, [y], {"shape": y_shape}, out=out if len(y_shape) != 4 else None)
    else:
        y = _fc(c, raw, vb, (1, 0), None, c.node_name(), out if len(y_shape) != 4 else None, keep_dims=keep)
    c.set_out(node, 0, Act(c.from_src(y, out) if len(y_shape) == 4 else y))


def _pool_pads_ceil(c: Converter, a, xs, k, s, pads, include: bool):
    """Apply ceil_mode: extra bottom/right padding when it lengthens the output."""
    if not a.get("ceil_mode", 0):
        return pads
    t, l, b, r = pads
    extra = []
    for i in range(2):
        size = xs[2 + i] + pads[i] + pads[i + 2]
        floor_n = (size - k[i]) // s[i] + 1
        ceil_n = -(-(size - k[i]) // s[i]) + 1
        if (ceil_n - 1) * s[i] >= xs[2 + i] + pads[i]:
            ceil_n -= 1  # the last window would start in the end padding
        extra.append(max(0, (ceil_n - 1) * s[i] + k[i] - size) if ceil_n > floor_n else 0)
    if any(extra):
        if include:
            raise c.unsupported("ceil_mode=1 with count_include_pad=1 where it changes the output size")
        b, r = b + extra[0], r + extra[1]
    return t, l, b, r


def _pool_3d_by_views(c: Converter, node, a, x: str, xs) -> None:
    """3-D pooling without padding: the k_d * k_h * k_w strided views of the input (one
    STRIDED_SLICE each) combined by MAXIMUM, or summed (ADD) and divided by the window
    size for AveragePool. Rank-5 tensors keep the source layout in the IR."""
    k = c.ints(a, "kernel_shape", None, 3)
    st = c.ints(a, "strides", (1, 1, 1), 3)
    dil = c.ints(a, "dilations", (1, 1, 1), 3)
    if any(a.get("pads", [0])) or (a.get("auto_pad", "NOTSET") or "NOTSET") not in ("NOTSET", "VALID") \
            or a.get("ceil_mode", 0):
        raise c.unsupported("3-D pooling with padding or ceil_mode (only unpadded 3-D windows)")
    if node.op_type == "AveragePool" and dil != (1, 1, 1):
        raise c.unsupported("dilated 3-D average pooling")
    span = [(k[i] - 1) * dil[i] + 1 for i in range(3)]
    outs = [(xs[2 + i] - span[i]) // st[i] + 1 for i in range(3)]
    if min(outs) < 1:
        raise c.malformed(f"the window {span} is larger than the input {list(xs[2:])}")
    views = []
    for offs in np.ndindex(*k):
        begin = (0, 0) + tuple(o * d for o, d in zip(offs, dil))
        end = tuple(xs[:2]) + tuple(b + (n - 1) * s + 1 for b, n, s in zip(begin[2:], outs, st))
        views.append(c.emit(OpType.STRIDED_SLICE, [x], {"begin": begin, "end": end, "strides": (1, 1) + st}))
    out = c.out_name(node.output[0])
    combine = OpType.MAXIMUM if node.op_type == "MaxPool" else OpType.ADD
    y = views[0]
    for v in views[1:]:
        y = c.emit(combine, [y, v])
    if node.op_type == "AveragePool":
        y = c.emit(OpType.DIV, [y, c.const(np.float32(len(views)), f"{c.node_name()}_count")], out=out)
    else:
        y = c.emit(OpType.RESHAPE, [y], {"shape": c.g.tensor(y).shape}, out=out)
    c.set_out(node, 0, Act(y))


def _dilated_max_pool(c: Converter, node, a, x: str, xs, k, s, dil) -> None:
    """MaxPool with dilations: the maximum of the k_h * k_w strided views of the input
    (padded with -inf), one STRIDED_SLICE each, combined by MAXIMUM: exact."""
    if node.op_type != "MaxPool":
        raise c.unsupported("dilated average pooling")
    if a.get("ceil_mode", 0):
        raise c.unsupported("dilated pooling with ceil_mode=1")
    t, l, b, r = c.pads2d(a, xs[2:], k, s, dil)
    n, ch, h, w = xs
    span = [(k[i] - 1) * dil[i] + 1 for i in range(2)]
    oh, ow = (h + t + b - span[0]) // s[0] + 1, (w + l + r - span[1]) // s[1] + 1
    if oh < 1 or ow < 1:
        raise c.malformed(f"the dilated window {span} is larger than the padded input")
    if t or l or b or r:
        x = c.emit(OpType.PAD, [x], {"pads": (0, 0, t, b, l, r, 0, 0), "value": float("-inf")})
    out = c.out_name(node.output[0])
    views = []
    for i in range(k[0]):
        for j in range(k[1]):
            begin = (0, i * dil[0], j * dil[1], 0)
            end = (n, begin[1] + (oh - 1) * s[0] + 1, begin[2] + (ow - 1) * s[1] + 1, ch)
            views.append(c.emit(OpType.STRIDED_SLICE, [x], {"begin": begin, "end": end, "strides": (1, s[0], s[1], 1)}))
    y = views[0]
    for m, v in enumerate(views[1:], start=2):
        y = c.emit(OpType.MAXIMUM, [y, v], out=out if m == len(views) else None)
    if len(views) == 1:
        y = c.emit(OpType.RESHAPE, [y], {"shape": c.g.tensor(y).shape}, out=out)
    c.set_out(node, 0, Act(y))


@handler("MaxPool", "AveragePool")
def _pool(c: Converter, node, a):
    x = c.act_inp(node, 0)
    xs = c.sshape(x)
    if len(xs) == 5 and "kernel_shape" in a:
        _pool_3d_by_views(c, node, a, x, xs)
        return
    if len(xs) != 4:
        raise c.unsupported(f"only 2-D pooling (4-D NCHW input) is supported; the input has rank {len(xs)}")
    if "kernel_shape" not in a:
        raise c.malformed("kernel_shape is required")
    k = c.ints(a, "kernel_shape", None, 2)
    s = c.ints(a, "strides", (1, 1), 2)
    if c.used(node, 1):
        raise c.unsupported("the Indices output of MaxPool")
    dil = c.ints(a, "dilations", (1, 1), 2)
    if dil != (1, 1):
        _dilated_max_pool(c, node, a, x, xs, k, s, dil)
        return
    include = node.op_type == "AveragePool" and bool(a.get("count_include_pad", 0))
    pads = c.pads2d(a, xs[2:], k, s, (1, 1))
    pads = _pool_pads_ceil(c, a, xs, k, s, pads, include)
    if include and any(pads):
        t, l, b, r = pads
        x = c.emit(OpType.PAD, [x], {"pads": (0, 0, t, b, l, r, 0, 0), "value": 0.0})
        pads = (0, 0, 0, 0)
    typ = OpType.MAX_POOL_2D if node.op_type == "MaxPool" else OpType.AVERAGE_POOL_2D
    c.set_out(node, 0, Act(c.emit(typ, [x], {"kernel": k, "strides": s, "pads": pads},
                                  out=c.out_name(node.output[0]))))


@handler("GlobalAveragePool")
def _global_avg(c: Converter, node, a):
    x = c.act_inp(node, 0)
    r = c.g.tensor(x).rank
    if r < 3:
        raise c.malformed(f"input of rank {r}; expected [N, C, spatial...]")
    axes = tuple(sorted(ir_axis(i, r) for i in range(2, r)))
    c.set_out(node, 0, Act(c.emit(OpType.MEAN, [x], {"axes": axes, "keep_dims": True},
                                  out=c.out_name(node.output[0]))))


@handler("GlobalMaxPool")
def _global_max(c: Converter, node, a):
    x = c.act_inp(node, 0)
    xs = c.sshape(x)
    if len(xs) != 4:
        raise c.unsupported(f"only 4-D NCHW input is supported; the input has rank {len(xs)}")
    c.set_out(node, 0, Act(c.emit(OpType.MAX_POOL_2D, [x], {"kernel": xs[2:], "strides": (1, 1)},
                                  out=c.out_name(node.output[0]))))


@handler("ReduceMean")
def _reduce_mean(c: Converter, node, a):
    x = c.act_inp(node, 0)
    r = c.g.tensor(x).rank
    axes = axes_input_or_attr(c, node, a, 1, 18)
    keep = bool(a.get("keepdims", 1))
    if not axes:
        if a.get("noop_with_empty_axes", 0) or r == 0:
            c.set_out(node, 0, Act(x))
            return
        axes = list(range(r))
    axes_s = sorted({c.norm_axis(ax, r) for ax in axes})
    ir_axes = tuple(sorted(ir_axis(ax, r) for ax in axes_s))
    out = c.out_name(node.output[0])
    if keep:
        c.set_out(node, 0, Act(c.emit(OpType.MEAN, [x], {"axes": ir_axes, "keep_dims": True}, out=out)))
        return
    remaining = [p for i, p in enumerate(ir_perm(r)) if i not in ir_axes]  # source axes in IR order
    q = tuple(remaining.index(s) for s in sorted(remaining))
    final_rank = len(remaining)
    direct = q == tuple(range(final_rank)) and final_rank != 4
    m = c.emit(OpType.MEAN, [x], {"axes": ir_axes, "keep_dims": False}, out=out if direct else None)
    if not direct:
        if q != tuple(range(final_rank)):
            m = c.emit(OpType.TRANSPOSE, [m], {"perm": q}, out=out if final_rank != 4 else None)
        m = c.from_src(m, out)
    c.set_out(node, 0, Act(m))


@handler("Flatten")
def _flatten(c: Converter, node, a):
    x = c.act_inp(node, 0, float_only=False)
    new = flatten_shape(c, c.sshape(x), int(a.get("axis", 1)))
    c.set_out(node, 0, Act(c.reshape_src(x, new, c.out_name(node.output[0]))))


@handler("Reshape")
def _reshape(c: Converter, node, a):
    if c.opset < 5:
        raise c.unsupported("Reshape before opset 5 (shape as an attribute)")
    x = c.act_inp(node, 0, float_only=False)
    target = c.const_inp(node, 1, "the target shape")
    new = resolve_reshape(c, c.sshape(x), target, bool(a.get("allowzero", 0)))
    c.set_out(node, 0, Act(c.reshape_src(x, new, c.out_name(node.output[0]))))


@handler("Squeeze", "Unsqueeze")
def _squeeze(c: Converter, node, a):
    x = c.act_inp(node, 0, float_only=False)
    axes = axes_input_or_attr(c, node, a, 1, 13)
    fn = squeeze_shape if node.op_type == "Squeeze" else unsqueeze_shape
    new = fn(c, c.sshape(x), axes)
    c.set_out(node, 0, Act(c.reshape_src(x, new, c.out_name(node.output[0]))))


@handler("Transpose")
def _transpose(c: Converter, node, a):
    x = c.act_inp(node, 0, float_only=False)
    r = c.g.tensor(x).rank
    perm = tuple(int(p) for p in a.get("perm", range(r - 1, -1, -1)))
    if sorted(perm) != list(range(r)):
        raise c.malformed(f"perm {list(perm)} is not a permutation of rank {r}")
    p = ir_perm(r)
    inv = tuple(int(i) for i in np.argsort(p))
    q = tuple(inv[perm[p[k]]] for k in range(r))
    if q == tuple(range(r)):
        c.set_out(node, 0, Act(x))
        return
    c.set_out(node, 0, Act(c.emit(OpType.TRANSPOSE, [x], {"perm": q}, out=c.out_name(node.output[0]))))


@handler("Concat")
def _concat(c: Converter, node, a):
    if "axis" not in a:
        raise c.malformed("Concat needs an axis")
    vals = [c.inp(node, i) for i in range(len(node.input))]
    names = [c.tensor_of(v, f"{c.node_name()}_in{i}") for i, v in enumerate(vals)]
    r = c.g.tensor(names[0]).rank
    if r == 0:
        raise c.malformed("cannot concatenate scalars")
    axis = c.norm_axis(a["axis"], r)
    for n in names:
        if c.g.tensor(n).dtype is not DType.FLOAT32:
            raise c.unsupported(f"concatenation of {c.g.tensor(n).dtype.value} tensors")
    c.set_out(node, 0, Act(c.emit(OpType.CONCATENATION, names, {"axis": ir_axis(axis, r)},
                                  out=c.out_name(node.output[0]))))


@handler("Pad")
def _pad(c: Converter, node, a):
    x = c.act_inp(node, 0)
    r = c.g.tensor(x).rank
    mode = a.get("mode", "constant")
    if mode != "constant":
        raise c.unsupported(f"mode={mode!r}; only constant padding is supported")
    if c.opset < 11:
        pads = list(a.get("pads", a.get("paddings", [])))
        value = float(a.get("value", 0.0))
        axes = list(range(r))
    else:
        pads = [int(v) for v in np.asarray(c.const_inp(node, 1, "pads")).reshape(-1)]
        cv = c.const_inp(node, 2, "the pad value", required=False)
        value = 0.0 if cv is None or np.size(cv) == 0 else float(np.asarray(cv).reshape(-1)[0])
        ax = c.const_inp(node, 3, "axes", required=False) if c.opset >= 18 else None
        axes = list(range(r)) if ax is None else [c.norm_axis(v, r) for v in np.asarray(ax).reshape(-1)]
    if len(pads) != 2 * len(axes):
        raise c.malformed(f"{len(pads)} pad values for {len(axes)} axes")
    begin, end = [0] * r, [0] * r
    for j, ax in enumerate(axes):
        begin[ax], end[ax] = int(pads[j]), int(pads[j + len(axes)])
    if any(v < 0 for v in begin + end):
        raise c.unsupported("negative pads (cropping)")
    flat = []
    for s in ir_perm(r):
        flat += [begin[s], end[s]]
    c.set_out(node, 0, Act(c.emit(OpType.PAD, [x], {"pads": tuple(flat), "value": value},
                                  out=c.out_name(node.output[0]))))


@handler("BatchNormalization")
def _batchnorm(c: Converter, node, a):
    if a.get("training_mode", 0):
        raise c.unsupported("training_mode=1")
    if c.opset < 9 and not a.get("spatial", 1):
        raise c.unsupported("spatial=0")
    if any(c.used(node, i) for i in range(1, len(node.output))):
        raise c.unsupported("the running mean/variance outputs (training)")
    x = c.act_inp(node, 0)
    xs = c.sshape(x)
    if len(xs) < 2:
        raise c.malformed(f"input of rank {len(xs)}")
    ch = xs[1]
    params = []
    for i, what in enumerate(("scale", "B", "mean", "var"), start=1):
        v = np.asarray(c.const_inp(node, i, what), np.float32)
        if v.size != ch:
            raise c.malformed(f"{what} has {v.size} values for {ch} channels")
        params.append(c.const(v.reshape(ch), f"{c.node_name()}_{what}", ir_layout=True))
    eps = float(a.get("epsilon", 1e-5))
    out = c.out_name(node.output[0])
    if len(xs) in (2, 4):
        c.set_out(node, 0, Act(c.emit(OpType.BATCH_NORM, [x] + params, {"epsilon": eps}, out=out)))
        return
    perm = (0,) + tuple(range(2, len(xs))) + (1,)  # channels last
    t = c.emit(OpType.TRANSPOSE, [x], {"perm": perm})
    bn = c.emit(OpType.BATCH_NORM, [t] + params, {"epsilon": eps})
    inv = tuple(int(i) for i in np.argsort(perm))
    c.set_out(node, 0, Act(c.emit(OpType.TRANSPOSE, [bn], {"perm": inv}, out=out)))


@handler("QuantizeLinear")
def _quantize(c: Converter, node, a):
    x = c.act_inp(node, 0)
    scale = c.const_inp(node, 1, "the scale")
    zpv = c.inp(node, 2, required=False)
    if isinstance(zpv, Act):
        raise c.unsupported("the zero point must be a constant")
    if a.get("block_size", 0):
        raise c.unsupported("blocked quantization")
    if np.size(scale) != 1:
        raise c.unsupported("per-axis quantization of a run-time tensor (activations are quantized per tensor)")
    zp = None if zpv is None else (zpv.q if isinstance(zpv, QConst) else np.asarray(zpv))
    dt = np.dtype(zp.dtype) if zp is not None else np_dtype_of(a.get("output_dtype", 0) or 2, c.label,
                                                                 "QuantizeLinear output")
    zp_val = 0 if zp is None else int(np.asarray(zp).reshape(-1)[0])
    s = float(np.asarray(scale, np.float32).reshape(-1)[0])
    if not np.isfinite(s) or s <= 0:
        raise c.malformed(f"scale {s} must be positive")
    if dt == np.uint8:
        out_dt, zp_val = DType.INT8, zp_val - 128
    elif dt == np.int8:
        out_dt = DType.INT8
    else:
        raise c.unsupported(f"quantization to {dt} (int8 and uint8 are supported)")
    q = QuantParams.per_tensor(s, zp_val)
    y = c.emit(OpType.QUANTIZE, [x], out=c.out_name(node.output[0]), dtype=out_dt, quant=q)
    if dt == np.uint8:
        c.uint8.add(y)
    c.set_out(node, 0, Act(y))


@handler("DequantizeLinear")
def _dequantize(c: Converter, node, a):
    xv = c.inp(node, 0)
    scale = np.asarray(c.const_inp(node, 1, "the scale"), np.float32)
    zpv = c.inp(node, 2, required=False)
    if isinstance(zpv, Act):
        raise c.unsupported("the zero point must be a constant")
    if a.get("block_size", 0):
        raise c.unsupported("blocked quantization")
    zp = None if zpv is None else (zpv.q if isinstance(zpv, QConst) else np.asarray(zpv))
    if np.any(~np.isfinite(scale)):
        raise c.malformed("non-finite scale")
    if not isinstance(xv, Act):
        q = xv.q if isinstance(xv, QConst) else np.asarray(xv)
        if q.dtype.kind not in "iu" or q.dtype.itemsize > 4 or q.dtype == np.uint32:
            raise c.unsupported(f"dequantization of {q.dtype} data")
        axis = None
        if scale.size > 1:
            axis = c.norm_axis(a.get("axis", 1), max(q.ndim, 1))
            if q.ndim and scale.size not in (1, q.shape[axis]):
                raise c.malformed(f"{scale.size} scales for axis {axis} of size {q.shape[axis]}")
        if zp is not None and np.size(zp) != scale.size:
            raise c.malformed("zero point and scale differ in size")
        c.set_out(node, 0, QConst.make(q, scale, zp, axis))
        return
    t = c.g.tensor(xv.name)
    if scale.size != 1:
        raise c.unsupported("per-axis dequantization of a run-time tensor")
    s = float(scale.reshape(-1)[0])
    if s <= 0:
        raise c.malformed(f"scale {s} must be positive")
    zp_val = 0 if zp is None else int(np.asarray(zp).reshape(-1)[0])
    src_dt = None if zp is None else np.dtype(zp.dtype)
    if xv.name in c.uint8 or src_dt == np.uint8:
        if src_dt is not None and src_dt != np.uint8 or xv.name not in c.uint8:
            raise c.malformed("zero point type does not match the quantized input")
        zp_val -= 128
    if t.dtype not in (DType.INT8, DType.INT16):
        raise c.unsupported(f"dequantization of a run-time {t.dtype.value} tensor")
    qp = QuantParams.per_tensor(s, zp_val)
    if t.quant is None:
        t.quant = qp  # an int8 graph input: its parameters come from here
    elif t.quant != qp:
        raise c.unsupported("DequantizeLinear with other parameters than the QuantizeLinear that made "
                            "its input (requantization)")
    c.set_out(node, 0, Act(c.emit(OpType.DEQUANTIZE, [xv.name], out=c.out_name(node.output[0]),
                                  dtype=DType.FLOAT32)))
