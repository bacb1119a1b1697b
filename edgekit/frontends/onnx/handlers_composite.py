"""ONNX ops imported as exact compositions of IR ops, and ops taken only on constants.

Each composition follows the arithmetic of ONNX's own definition step by step in
float32, so it matches onnxruntime / the ONNX reference to rounding:

- HardSigmoid ``min(1, relu(x * alpha + beta))``; Softplus ``log(exp(x) + 1)``;
  Softsign ``x / (1 + |x|)``; Elu ``relu(x) + (exp(min(x, 0)) - 1) * alpha``;
  Selu ``relu(x) * gamma + (exp(min(x, 0)) - 1) * alpha * gamma``;
  Celu ``relu(x) + min(0, (exp(x / alpha) - 1) * alpha)``; Mish ``x * tanh(log(exp(x) + 1))``.
- LogSoftmax ``(x - max) - log(sum(exp(x - max)))``, and Softmax over an axis that is
  not the IR's last one ``exp(x - max) / sum(exp(x - max))`` (the last one is SOFTMAX).
- ReduceL1 ``sum(|x|)``, ReduceL2 ``sqrt(sum(x * x))``, ReduceSumSquare ``sum(x * x)``,
  ReduceLogSum ``log(sum(x))``, ReduceLogSumExp ``log(sum(exp(x)))`` (no max shift,
  as ONNX defines it), ReduceMin ``-max(-x)``.
- Sum (a chain of Add), Mean (Sum, then Div by the count), Expand of a run-time tensor
  (Mul by ones of the broadcast shape: exact, -0.0, infinities and NaN included).
- Where with a constant condition: both sides broadcast (Mul by ones), flattened and
  concatenated, the picked elements gathered by constant indices (GATHER), reshaped:
  data movement only, exact for every value.
- Mod exists only to be evaluated on constants (index arithmetic of exported attention
  graphs; ``folding`` computes it, as it computes comparisons and logic on constants);
  on a run-time tensor it is rejected. Run-time comparisons and logic: ``handlers_logic``.
- LpPool (integer p): |x| multiplied p times, summed by a depthwise Conv with weights 1,
  then Sqrt (p = 2) or exp(log(sum) / p).
- InstanceNormalization ``scale * (x - mean) / sqrt(var + eps) + B`` over the spatial
  axes; LRN ``x / (bias + alpha / size * window_sum(x^2)) ^ beta`` with the channel
  window summed by a 1x1 Conv of a constant band of ones, the power exp(beta * log).
- Trilu of a run-time tensor (any element type): the kept triangle gathered from the
  data, the rest from one zero (``select_elements``).

Parts that are themselves ONNX ops (Add, Mul, Div for broadcasting, Cast) are handed
to their own converters as sub-nodes, so NCHW -> NHWC broadcasting has one rule.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import UnsupportedOpError
from edgekit.frontends.onnx import convert
from edgekit.frontends.onnx.convert import Converter, axes_input_or_attr, handler
from edgekit.frontends.onnx.values import Act, QConst, ir_axis, ir_perm
from edgekit.ir.dtypes import DType
from edgekit.ir.ops import OpType

# ONNX ops edgekit evaluates only when all their inputs are constants.
CONST_ONLY_OPS = ("Mod",)


@handler(*CONST_ONLY_OPS)
def _const_only(c: Converter, node, a):
    raise c.unsupported("evaluated only at compile time, on constant inputs (edgekit has no run-time "
                        "integer arithmetic for it); here an input is computed at run time")


# -- small builders ---------------------------------------------------------------------

def _scalar(c: Converter, value: float, what: str) -> str:
    return c.const(np.asarray([value], np.float32), f"{c.node_name()}_{what}", ir_layout=True)


def _e(c: Converter, op: OpType, inputs: list[str], out: str | None = None, attrs: dict | None = None) -> str:
    return c.emit(op, inputs, attrs, out=out, dtype=DType.FLOAT32)


def _out(c: Converter, node) -> str:
    return c.out_name(node.output[0])


def sub_node(c: Converter, node, op_type: str, inputs: list, out: str | None = None, **attrs) -> str:
    """Convert one ONNX node (opset 18 form) made up for part of ``node``; returns its
    output's ONNX name. ``inputs`` are ONNX names or numpy constants."""
    from onnx import helper

    names = []
    for i, v in enumerate(inputs):
        if isinstance(v, str):
            names.append(v)
        else:
            name = _fresh(c, f"{c.node_name(node)}_{op_type.lower()}_c{i}")
            c.env[name] = np.asarray(v)
            names.append(name)
    out = out or _fresh(c, f"{c.node_name(node)}_{op_type.lower()}")
    sub = helper.make_node(op_type, names, [out], name=f"{c.node_name(node)}/{op_type}", **attrs)
    saved_node, saved_opset = c.node, c.opset
    c.node, c.opset = sub, 18
    try:
        c.convert_node(sub)
    except UnsupportedOpError as exc:
        c.node, c.opset = saved_node, saved_opset
        detail = exc.args[0].split('. Supported:')[0]
        raise c.unsupported(f"imported as a composition that needs {op_type} ({detail})") from None
    finally:
        c.node, c.opset = saved_node, saved_opset
    return out


def _fresh(c: Converter, base: str) -> str:
    name = c.new_name(base)
    while name in c.env:
        name = c.new_name(base + "_")
    c.reserved.add(name)
    return name


def _float_act(c: Converter, node, i: int) -> str:
    return c.act_inp(node, i)


# -- activations ----------------------------------------------------------------------

@handler("HardSigmoid")
def _hard_sigmoid(c: Converter, node, a):
    x = _float_act(c, node, 0)
    y = _e(c, OpType.MUL, [x, _scalar(c, float(a.get("alpha", 0.2)), "alpha")])
    y = _e(c, OpType.ADD, [y, _scalar(c, float(a.get("beta", 0.5)), "beta")])
    y = _e(c, OpType.RELU, [y])
    c.set_out(node, 0, Act(_e(c, OpType.MINIMUM, [y, _scalar(c, 1.0, "one")], out=_out(c, node))))


def _softplus_of(c: Converter, x: str, out: str | None = None) -> str:
    e = _e(c, OpType.EXP, [x])
    return _e(c, OpType.LOG, [_e(c, OpType.ADD, [e, _scalar(c, 1.0, "one")])], out=out)


@handler("Softplus")
def _softplus(c: Converter, node, a):
    c.set_out(node, 0, Act(_softplus_of(c, _float_act(c, node, 0), _out(c, node))))


@handler("Softsign")
def _softsign(c: Converter, node, a):
    x = _float_act(c, node, 0)
    d = _e(c, OpType.ADD, [_e(c, OpType.ABS, [x]), _scalar(c, 1.0, "one")])
    c.set_out(node, 0, Act(_e(c, OpType.DIV, [x, d], out=_out(c, node))))


def _expm1_of_negative_part(c: Converter, x: str) -> str:
    """exp(min(x, 0)) - 1."""
    neg = _e(c, OpType.MINIMUM, [x, _scalar(c, 0.0, "zero")])
    return _e(c, OpType.SUB, [_e(c, OpType.EXP, [neg]), _scalar(c, 1.0, "one")])


@handler("Elu")
def _elu(c: Converter, node, a):
    x = _float_act(c, node, 0)
    n = _e(c, OpType.MUL, [_expm1_of_negative_part(c, x), _scalar(c, float(a.get("alpha", 1.0)), "alpha")])
    c.set_out(node, 0, Act(_e(c, OpType.ADD, [_e(c, OpType.RELU, [x]), n], out=_out(c, node))))


@handler("Selu")
def _selu(c: Converter, node, a):
    x = _float_act(c, node, 0)
    alpha = float(a.get("alpha", 1.67326319217681884765625))
    gamma = float(a.get("gamma", 1.05070102214813232421875))
    p = _e(c, OpType.MUL, [_e(c, OpType.RELU, [x]), _scalar(c, gamma, "gamma")])
    n = _e(c, OpType.MUL, [_expm1_of_negative_part(c, x), _scalar(c, alpha, "alpha")])
    n = _e(c, OpType.MUL, [n, _scalar(c, gamma, "gamma")])
    c.set_out(node, 0, Act(_e(c, OpType.ADD, [p, n], out=_out(c, node))))


@handler("Celu")
def _celu(c: Converter, node, a):
    x = _float_act(c, node, 0)
    alpha = float(a.get("alpha", 1.0))
    if alpha == 0:
        raise c.malformed("alpha must not be 0")
    s = _e(c, OpType.DIV, [x, _scalar(c, alpha, "alpha")])
    n = _e(c, OpType.SUB, [_e(c, OpType.EXP, [s]), _scalar(c, 1.0, "one")])
    n = _e(c, OpType.MINIMUM, [_e(c, OpType.MUL, [n, _scalar(c, alpha, "alpha")]), _scalar(c, 0.0, "zero")])
    c.set_out(node, 0, Act(_e(c, OpType.ADD, [_e(c, OpType.RELU, [x]), n], out=_out(c, node))))


@handler("Mish")
def _mish(c: Converter, node, a):
    x = _float_act(c, node, 0)
    t = _e(c, OpType.TANH, [_softplus_of(c, x)])
    c.set_out(node, 0, Act(_e(c, OpType.MUL, [x, t], out=_out(c, node))))


# -- softmax family ---------------------------------------------------------------------

def _softmax_axes(c: Converter, node, a, rank: int) -> list[int]:
    """Source axes the (Log)Softmax normalizes over: one axis from opset 13, before
    that every axis from ``axis`` on (the input is flattened to 2-D there)."""
    if rank == 0:
        raise c.unsupported("softmax of a scalar")
    if c.opset >= 13:
        return [c.norm_axis(a.get("axis", -1), rank)]
    axis = c.norm_axis(a.get("axis", 1), rank)
    return list(range(axis, rank))


def _reduce_keep(c: Converter, op: OpType, x: str, src_axes, out: str | None = None) -> str:
    r = c.g.tensor(x).rank
    axes = tuple(sorted(ir_axis(ax, r) for ax in src_axes))
    return c.emit(op, [x], {"axes": axes, "keep_dims": True}, out=out, dtype=DType.FLOAT32)


@handler("Softmax", "LogSoftmax")
def _softmax(c: Converter, node, a):
    x = _float_act(c, node, 0)
    r = c.g.tensor(x).rank
    src_axes = _softmax_axes(c, node, a, r)
    out = _out(c, node)
    ir_axes = sorted(ir_axis(ax, r) for ax in src_axes)
    dims = c.g.tensor(x).shape
    # SOFTMAX normalizes over the IR's last axis: the same when every other axis
    # normalized over has size 1 (and the last is one of them, or has size 1 too).
    if node.op_type == "Softmax" and all(dims[ax] == 1 for ax in ir_axes if ax != r - 1) \
            and (r - 1 in ir_axes or dims[r - 1] == 1):
        c.set_out(node, 0, Act(c.emit(OpType.SOFTMAX, [x], {"beta": 1.0}, out=out)))
        return
    m = _reduce_keep(c, OpType.REDUCE_MAX, x, src_axes)
    s = _e(c, OpType.SUB, [x, m])
    e = _e(c, OpType.EXP, [s])
    total = _reduce_keep(c, OpType.SUM, e, src_axes)
    if node.op_type == "Softmax":
        y = _e(c, OpType.DIV, [e, total], out=out)
    else:
        y = _e(c, OpType.SUB, [s, _e(c, OpType.LOG, [total])], out=out)
    c.set_out(node, 0, Act(y))


# -- reductions -------------------------------------------------------------------------

def _reduce(c: Converter, node, a, x: str, op: OpType, since: int, out: str | None) -> str | None:
    """One IR reduction over the node's axes, with its keepdims; None when the node
    reduces nothing (empty axes with noop_with_empty_axes)."""
    r = c.g.tensor(x).rank
    axes = axes_input_or_attr(c, node, a, 1, since)
    if not axes:
        if a.get("noop_with_empty_axes", 0) or r == 0:
            return None
        axes = list(range(r))
    return reduce_source_axes(c, x, op, axes, bool(a.get("keepdims", 1)), out)


def reduce_source_axes(c: Converter, x: str, op: OpType, src_axes, keep: bool, out: str | None) -> str:
    """An IR reduction (MEAN, SUM, REDUCE_MAX) over source axes, the result in the IR
    layout of its source shape (a transpose where dropping axes reorders them)."""
    r = c.g.tensor(x).rank
    src = sorted({c.norm_axis(ax, r) for ax in src_axes})
    ir_axes = tuple(sorted(ir_axis(ax, r) for ax in src))
    if keep:
        return c.emit(op, [x], {"axes": ir_axes, "keep_dims": True}, out=out, dtype=DType.FLOAT32)
    remaining = [p for i, p in enumerate(ir_perm(r)) if i not in ir_axes]  # source axes in IR order
    q = tuple(remaining.index(s) for s in sorted(remaining))
    final_rank = len(remaining)
    direct = q == tuple(range(final_rank)) and final_rank != 4
    y = c.emit(op, [x], {"axes": ir_axes, "keep_dims": False}, out=out if direct else None, dtype=DType.FLOAT32)
    if not direct:
        if q != tuple(range(final_rank)):
            y = c.emit(OpType.TRANSPOSE, [y], {"perm": q}, out=out if final_rank != 4 else None)
        y = c.from_src(y, out)
    return y


_SQUARE = ("ReduceL2", "ReduceSumSquare")


@handler("ReduceL1", "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp", "ReduceMin")
def _reductions(c: Converter, node, a):
    x = _float_act(c, node, 0)
    op = node.op_type
    out = _out(c, node)
    since = 18
    if op == "ReduceL1":
        pre = _e(c, OpType.ABS, [x])
    elif op in _SQUARE:
        pre = _e(c, OpType.MUL, [x, x])
    elif op == "ReduceLogSumExp":
        pre = _e(c, OpType.EXP, [x])
    elif op == "ReduceMin":
        pre = _e(c, OpType.NEG, [x])
    else:
        pre = x
    post = {"ReduceL2": OpType.SQRT, "ReduceLogSum": OpType.LOG, "ReduceLogSumExp": OpType.LOG,
            "ReduceMin": OpType.NEG}.get(op)
    red = OpType.REDUCE_MAX if op == "ReduceMin" else OpType.SUM
    y = _reduce(c, node, a, pre, red, since, None if post else out)
    if y is None:  # nothing reduced (noop_with_empty_axes): the elementwise parts alone
        y = pre if post is None else _e(c, post, [pre], out=out)
        c.set_out(node, 0, Act(y))
        return
    if post is not None:
        y = _e(c, post, [y], out=out)
    c.set_out(node, 0, Act(y))


# -- variadic arithmetic, broadcasting ----------------------------------------------------

def _chain_add(c: Converter, node, names: list[str], out: str | None) -> str:
    acc = names[0]
    for k, n in enumerate(names[1:], start=1):
        acc = sub_node(c, node, "Add", [acc, n], out=out if k == len(names) - 1 else None)
    return acc


@handler("Sum", "Mean")
def _sum_mean(c: Converter, node, a):
    names = [n for n in node.input if n]
    if not names:
        raise c.malformed("needs at least one input")
    for n in names:
        c.inp(node, list(node.input).index(n))
    if len(names) == 1:
        v = c.env[names[0]]
        if isinstance(v, Act):
            _float_act(c, node, 0)
        c.set_out(node, 0, v)
        return
    if node.op_type == "Sum":
        _chain_add(c, node, names, node.output[0])
        return
    total = _chain_add(c, node, names, None)
    sub_node(c, node, "Div", [total, np.float32(len(names))], out=node.output[0])


@handler("Expand")
def _expand(c: Converter, node, a):
    x = c.inp(node, 0)
    shape = [int(s) for s in np.asarray(c.const_inp(node, 1, "the shape")).reshape(-1)]
    xshape = c.sshape(x.name) if isinstance(x, Act) else np.shape(x.q if isinstance(x, QConst) else x)
    try:
        out_shape = np.broadcast_shapes(tuple(xshape), tuple(shape))
    except ValueError:
        raise c.malformed(f"cannot expand {list(xshape)} to {shape}") from None
    _float_act(c, node, 0)
    if tuple(out_shape) == tuple(xshape):
        c.set_out(node, 0, x)
        return
    sub_node(c, node, "Mul", [node.input[0], np.ones(out_shape, np.float32)], out=node.output[0])


@handler("Where")
def _where(c: Converter, node, a):
    cond = c.const_inp(node, 0, "the condition")
    cond = np.asarray(cond).astype(bool)
    vx, vy = c.inp(node, 1), c.inp(node, 2)

    def shape_of(v):
        return c.sshape(v.name) if isinstance(v, Act) else np.shape(v.q if isinstance(v, QConst) else v)

    for i, v in ((1, vx), (2, vy)):
        if isinstance(v, Act):
            _float_act(c, node, i)
    try:
        out_shape = np.broadcast_shapes(cond.shape, tuple(shape_of(vx)), tuple(shape_of(vy)))
    except ValueError:
        raise c.malformed("condition, X and Y do not broadcast together") from None
    ones = np.ones(out_shape, np.float32)
    if cond.all() or not cond.any():
        pick = node.input[1] if cond.all() else node.input[2]
        sub_node(c, node, "Mul", [pick, ones], out=node.output[0])
        return
    # Mixed: both sides broadcast to the output, flattened and concatenated, then the
    # elements the condition picks gathered by constant indices: data movement only, so
    # every value (infinities and NaN included) passes through unchanged.
    sources = []
    for i, v in ((1, vx), (2, vy)):
        if isinstance(v, Act):
            sources.append(node.input[i] if tuple(shape_of(v)) == tuple(out_shape) else
                           sub_node(c, node, "Mul", [node.input[i], ones]))
        else:
            val = v.value() if isinstance(v, QConst) else np.asarray(v, np.float32)
            sources.append(np.broadcast_to(val.astype(np.float32), out_shape).copy())
    n = int(np.prod(out_shape, dtype=np.int64))
    picks = np.where(np.broadcast_to(cond, out_shape).reshape(n), np.arange(n), n + np.arange(n))
    select_elements(c, node, sources, [n, n], picks.reshape(out_shape), node.output[0])


def select_elements(c: Converter, node, sources: list, sizes: list[int], picks: np.ndarray, out: str) -> str:
    """``out`` = the elements of the sources (ONNX names of run-time tensors or numpy
    constants; ``sizes`` their element counts), flattened in source order and joined,
    at the constant flat positions ``picks`` (whose shape is the output's): RESHAPE,
    CONCATENATION, GATHER, RESHAPE, so every value moves unchanged, of any element type."""
    flat, dtype = [], None
    for v, n in zip(sources, sizes):
        if isinstance(v, str):
            name = c.env[v].name if isinstance(c.env.get(v), Act) else c.tensor_of(c.env[v])
            dtype = dtype or c.g.tensor(name).dtype
            flat.append(c.emit(OpType.RESHAPE, [c.to_src(name)], {"shape": (n,)}))
        else:
            flat.append(np.asarray(v).reshape(n))
    dtype = dtype or DType.FLOAT32
    names = [f if isinstance(f, str) else c.const(f.astype(dtype.np), f"{c.node_name(node)}_values", ir_layout=True)
             for f in flat]
    if len(names) == 1:
        both = names[0]
    elif dtype is not DType.FLOAT32 and len(set(sizes)) == 1:
        # PACK is data movement for every element type (CONCATENATION's kernels are numeric)
        packed = c.emit(OpType.PACK, names, {"axis": 0})
        both = c.emit(OpType.RESHAPE, [packed], {"shape": (sum(sizes),)})
    else:
        both = c.emit(OpType.CONCATENATION, names, {"axis": 0})
    index = c.const(np.asarray(picks, np.int32).reshape(-1), f"{c.node_name(node)}_picks", ir_layout=True)
    gathered = c.emit(OpType.GATHER, [both, index], {"axis": 0})
    shape = tuple(int(d) for d in picks.shape)
    final = c.out_name(out)
    y = c.emit(OpType.RESHAPE, [gathered], {"shape": shape}, out=final if len(shape) != 4 else None)
    if len(shape) == 4:
        y = c.from_src(y, final)
    c.env[out] = Act(y)
    return out


@handler("CastLike")
def _cast_like(c: Converter, node, a):
    from onnx import helper

    target = c.inp(node, 1)
    if isinstance(target, Act):
        dt = c.g.tensor(target.name).dtype.np
    else:
        dt = (target.q if isinstance(target, QConst) else np.asarray(target)).dtype
        if isinstance(target, QConst):
            dt = np.dtype(np.float32)
    x = c.inp(node, 0)
    if not isinstance(x, Act):  # a constant cast like a run-time tensor: only the constant's type changes
        c.set_out(node, 0, (x.value() if isinstance(x, QConst) else np.asarray(x)).astype(dt))
        return
    if np.dtype(dt) == np.float32 and isinstance(x, Act) and c.g.tensor(x.name).dtype is DType.FLOAT32:
        c.set_out(node, 0, x)
        return
    cast = convert._HANDLERS.get("Cast")
    if cast is None:
        raise c.unsupported(f"a run-time cast to {np.dtype(dt)}")
    cast(c, node, {"to": helper.np_dtype_to_tensor_dtype(np.dtype(dt))})


@handler("Trilu")
def _trilu(c: Converter, node, a):
    x = c.act_inp(node, 0, float_only=False)  # data movement: any element type
    shape = c.sshape(x)
    if len(shape) < 2:
        raise c.malformed("Trilu needs a tensor of rank 2 or more")
    k = c.const_inp(node, 1, "k", required=False)
    k = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
    ones = np.ones(shape[-2:], bool)
    keep = np.broadcast_to(np.triu(ones, k) if a.get("upper", 1) else np.tril(ones, k), shape)
    n = int(np.prod(shape, dtype=np.int64))
    dtype = c.g.tensor(x).dtype.np
    picks = np.where(keep.reshape(n), np.arange(n), n + np.arange(n))  # else from the zeros after the data
    select_elements(c, node, [node.input[0], np.zeros(n, dtype)], [n, n], picks.reshape(shape), node.output[0])


@handler("LpPool")
def _lp_pool(c: Converter, node, a):
    """(sum over the window of |x|^p)^(1/p) for integer p: Abs, p - 1 Muls, a depthwise
    Conv with weights 1 (the window sum, zero padding as ONNX pads), then Sqrt (p = 2)
    or exp(log(sum) / p)."""
    x = _float_act(c, node, 0)
    shape = c.sshape(x)
    if len(shape) < 3:
        raise c.malformed(f"input of rank {len(shape)}; expected [N, C, spatial...]")
    if a.get("ceil_mode", 0):
        raise c.unsupported("ceil_mode=1")
    if "kernel_shape" not in a:
        raise c.malformed("kernel_shape is required")
    p = float(a.get("p", 2))
    if p <= 0:
        raise c.malformed(f"p={p:g} must be positive")
    kernel = [int(k) for k in a["kernel_shape"]]
    ch = shape[1]
    conv_attrs = {"kernel_shape": kernel, "group": ch}
    for key in ("strides", "pads", "dilations", "auto_pad"):
        if key in a:
            conv_attrs[key] = a[key]
    if p != int(p):
        raise c.unsupported(f"p={p:g} (integer p only)")
    mag = sub_node(c, node, "Abs", [node.input[0]])
    powered = mag
    for _ in range(int(p) - 1):  # |x|^p as repeated products
        powered = sub_node(c, node, "Mul", [powered, mag])
    ones = np.ones([ch, 1] + kernel, np.float32)
    summed = sub_node(c, node, "Conv", [powered, ones], **conv_attrs)
    out = node.output[0]
    if p == 1:
        sub_node(c, node, "Identity", [summed], out=out)
    elif p == 2:
        sub_node(c, node, "Sqrt", [summed], out=out)
    else:  # the p-th root as exp(log(s) / p); log(0) = -inf gives exactly 0
        scaled = sub_node(c, node, "Mul", [sub_node(c, node, "Log", [summed]), np.float32(1.0 / p)])
        sub_node(c, node, "Exp", [scaled], out=out)


@handler("InstanceNormalization")
def _instance_norm(c: Converter, node, a):
    """scale * (x - mean) / sqrt(var + epsilon) + B over each sample's spatial axes."""
    x = _float_act(c, node, 0)
    shape = c.sshape(x)
    if len(shape) < 3:
        raise c.malformed(f"input of rank {len(shape)}; expected [N, C, spatial...]")
    ch = shape[1]
    per_channel = (ch,) + (1,) * (len(shape) - 2)
    scale = np.asarray(c.const_inp(node, 1, "the scale"), np.float32)
    bias = np.asarray(c.const_inp(node, 2, "B"), np.float32)
    if scale.size != ch or bias.size != ch:
        raise c.malformed(f"scale and B need {ch} values, have {scale.size} and {bias.size}")
    axes = np.arange(2, len(shape), dtype=np.int64)
    mean = sub_node(c, node, "ReduceMean", [node.input[0], axes])
    d = sub_node(c, node, "Sub", [node.input[0], mean])
    var = sub_node(c, node, "ReduceMean", [sub_node(c, node, "Mul", [d, d]), axes])
    den = sub_node(c, node, "Sqrt", [sub_node(c, node, "Add", [var, np.float32(a.get("epsilon", 1e-5))])])
    scaled = sub_node(c, node, "Mul", [d, scale.reshape(per_channel)])
    sub_node(c, node, "Add", [sub_node(c, node, "Div", [scaled, den]), bias.reshape(per_channel)],
             out=node.output[0])


@handler("LRN")
def _lrn(c: Converter, node, a):
    """x / (bias + alpha / size * (sum of x^2 over the channel window)) ^ beta; the window
    sum is a 1x1 Conv with a constant band of ones, the power exp(beta * log(.))."""
    x = _float_act(c, node, 0)
    shape = c.sshape(x)
    if len(shape) != 4:
        raise c.unsupported(f"LRN of a rank-{len(shape)} input (4-D NCHW is imported)")
    if "size" not in a:
        raise c.malformed("size is required")
    size = int(a["size"])
    alpha, beta, bias = float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)), float(a.get("bias", 1.0))
    ch = shape[1]
    lo, hi = (size - 1) // 2, -(-(size - 1) // 2)
    band = np.zeros((ch, ch, 1, 1), np.float32)
    for out_c in range(ch):
        band[out_c, max(0, out_c - lo):min(ch, out_c + hi + 1), 0, 0] = 1.0
    sq = sub_node(c, node, "Mul", [node.input[0], node.input[0]])
    window = sub_node(c, node, "Conv", [sq, band], kernel_shape=[1, 1])
    base = sub_node(c, node, "Add", [sub_node(c, node, "Mul", [window, np.float32(alpha / size)]),
                                     np.float32(bias)])
    power = sub_node(c, node, "Exp", [sub_node(c, node, "Mul", [sub_node(c, node, "Log", [base]),
                                                                np.float32(beta)])])
    sub_node(c, node, "Div", [node.input[0], power], out=node.output[0])
