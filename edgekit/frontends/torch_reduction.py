"""torch importer handlers of the reductions, normalizations and matrix products:
torch.matmul / bmm / @ on activations (BATCH_MATMUL), scaled_dot_product_attention,
nn.LayerNorm (decomposed), amax / max(dim) (REDUCE_MAX), sum (SUM), argmax / argmin
(ARG_MAX / ARG_MIN, int32 indices where torch has int64) and F.normalize
(L2_NORMALIZATION over the IR's last axis: channels of a 4-D tensor directly, other axes
between TRANSPOSEs).

Layout (see torch_importer): a 4-D activation is held in NHWC, so a matrix product of
4-D operands runs in torch's axis order between TRANSPOSEs (the passes cancel pairs).
A transpose of the last two axes feeding a matrix product becomes adj_x / adj_y.

Layer normalization is decomposed as the TFLite converter decomposes it: MEAN, SUB,
MUL (the squares), MEAN, ADD epsilon, RSQRT, MUL, then MUL gamma, ADD beta. TFLite
Micro has no fused layer-norm kernel, so this is the form that runs bit-exact there
(docs/ops-notes.md gives the measurements behind the choice).
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.dtypes import DType
from edgekit.ir.ops import OpType

NCHW_TO_NHWC = (0, 2, 3, 1)


def _ti():
    from edgekit.frontends import torch_importer as ti

    return ti


# ----------------------------------------------------------------------------- matmul


def _swaps_last_two(im, node) -> bool:
    """Whether FX ``node`` is a transpose/permute that swaps only the last two axes."""
    ti = _ti()
    if not isinstance(node, im.torch.fx.Node) or node.op != "call_function":
        return False
    key = ti._op_key(node.target)
    shape = node.meta.get("val")
    if shape is None or not hasattr(shape, "shape"):
        return False
    r = len(shape.shape)
    if r < 2:
        return False
    if key in ("aten.transpose", "aten.swapaxes", "aten.transpose_copy"):
        d0, d1 = (int(v) % r for v in node.args[1:3])
        return {d0, d1} == {r - 2, r - 1}
    if key in ("aten.permute", "aten.permute_copy"):
        dims = [int(d) % r for d in node.args[1]]
        return dims == list(range(r - 2)) + [r - 1, r - 2]
    if key in ("aten.t", "aten.numpy_T", "aten.t_copy"):
        return r == 2
    return False


def _matmul_operand(im, arg, what: str) -> tuple[str, tuple[int, ...], bool]:
    """(IR tensor in torch's axis order, its torch shape, adj) of a matmul operand."""
    ti = _ti()
    adj = False
    if _swaps_last_two(im, arg):
        src = arg.args[0]
        v = im.vals.get(src)
        if isinstance(v, ti._Val) and not v.is_const:
            arg, adj = src, True
    v = im.val(arg)
    if v.is_const:
        arr = np.asarray(v.const, np.float32)
        if adj:  # pragma: no cover - a constant transpose is folded by the importer
            arr = np.swapaxes(arr, -1, -2)
        return im.const_tensor(arr, im.tmp(what)), arr.shape, False
    return im.source_order(v), v.shape, adj


def matmul(im, node, a):
    """aten.matmul / aten.bmm: BATCH_MATMUL when an operand is computed; a constant
    right operand keeps the FULLY_CONNECTED lowering."""
    ti = _ti()
    lhs_arg = a.get("self", a.get("input"))
    rhs_arg = a.get("other", a.get("mat2"))
    lhs_v, rhs_v = im.val(lhs_arg), im.val(rhs_arg)
    if rhs_v.is_const and not lhs_v.is_const and rhs_v.const.ndim == 2:
        return ti._mm(im, node, {"self": lhs_arg, "mat2": rhs_arg})
    if len(lhs_v.shape) < 2 or len(rhs_v.shape) < 2:
        raise im.unsupported("matrix products of 1-D tensors (vector products) are not supported")
    out = im.out_shape()
    if len(out) > 5:
        raise im.unsupported(f"rank-{len(out)} matrix products (at most 5)")
    lhs, _, adj_x = _matmul_operand(im, lhs_arg, "lhs")
    rhs, _, adj_y = _matmul_operand(im, rhs_arg, "rhs")
    name = im.emit(OpType.BATCH_MATMUL, [lhs, rhs], out, {"adj_x": adj_x, "adj_y": adj_y},
                   hint=im.tmp("matmul") if len(out) == 4 else node.name)
    return im.result(im.from_source_order(name, node.name))


def scaled_dot_product_attention(im, node, a):
    """softmax(Q K^T * scale) V, without mask or dropout."""
    if a.get("attn_mask") is not None or a.get("is_causal"):
        raise im.unsupported("attention with a mask (attn_mask or is_causal) is not supported")
    if a.get("dropout_p"):
        raise im.unsupported("attention dropout; put the model in eval() mode")
    if a.get("enable_gqa"):
        raise im.unsupported("grouped-query attention (enable_gqa) is not supported")
    q, k, v = im.act(a["query"]), im.act(a["key"]), im.act(a["value"])
    dh = q.shape[-1]
    scale = a.get("scale")
    scale = 1.0 / float(np.sqrt(dh)) if scale is None else float(scale)
    qs, ks, vs = im.source_order(q), im.source_order(k), im.source_order(v)
    scores_shape = q.shape[:-1] + (k.shape[-2],)
    s = im.emit(OpType.BATCH_MATMUL, [qs, ks], scores_shape, {"adj_y": True}, hint=im.tmp("scores"))
    s = im.scalar_op(OpType.MUL, s, scale, scores_shape, im.tmp("scaled"))
    p = im.emit(OpType.SOFTMAX, [s], scores_shape, {"beta": 1.0}, hint=im.tmp("weights"))
    o = im.emit(OpType.BATCH_MATMUL, [p, vs], im.out_shape(), hint=im.tmp("attend"))
    return im.result(im.from_source_order(o, node.name))


# ----------------------------------------------------------------------------- reductions


def _reduce(im, x, dims, keepdim: bool, op_type: OpType, hint: str, out=None) -> str:
    """MEAN-style reduction of ``x`` over torch ``dims`` (None: all), in the IR layout."""
    ti = _ti()
    r = len(x.shape)
    if r == 0:
        return x.name
    if dims is None or (isinstance(dims, (list, tuple)) and not dims):
        dims = list(range(r))
    elif isinstance(dims, int):
        dims = [dims]
    torch_axes = sorted({int(d) % r for d in dims})
    ir_axes = tuple(sorted(ti._ir_axis(d, r) for d in torch_axes))
    if keepdim:
        out = im.out_shape() if out is None else out
        return im.emit(op_type, [x.name], ti._ir_shape(out), {"axes": ir_axes, "keep_dims": True},
                       hint=hint)
    order = ti._ir_to_torch_axes(r)
    rest = [order[i] for i in range(r) if i not in ir_axes]  # torch axes in the IR result's order
    ir_out = tuple(x.shape[t] for t in rest)
    m = im.emit(op_type, [x.name], ir_out, {"axes": ir_axes, "keep_dims": False},
                hint=f"{hint}_{op_type.value.lower()}" if rest != sorted(rest) else hint)
    if rest != sorted(rest):
        m = im.transpose(m, [rest.index(t) for t in sorted(rest)], hint)
    return m


def amax(im, node, a):
    x = im.act(a["self"])
    return im.result(_reduce(im, x, a.get("dim"), bool(a.get("keepdim", False)), OpType.REDUCE_MAX, node.name))


def max_dim(im, node, a):
    """torch.max(x): REDUCE_MAX over everything; torch.max(x, dim): the values (REDUCE_MAX),
    the indices are not supported; torch.max(x, y) is the elementwise MAXIMUM."""
    ti = _ti()
    if "other" in a:
        maximum = ti._HANDLERS.get("aten.maximum")
        if maximum is None:
            raise im.unsupported("elementwise maximum")
        return maximum(im, node, {"self": a["self"], "other": a["other"]})
    x = im.act(a["self"])
    if "dim" not in a:
        return im.result(_reduce(im, x, None, False, OpType.REDUCE_MAX, node.name))
    out = tuple(int(d) for d in node.meta["val"][0].shape)
    name = _reduce(im, x, [int(a["dim"])], bool(a.get("keepdim", False)), OpType.REDUCE_MAX, node.name, out)
    return (ti._Val(name, out), ti._Unusable(str(node.target), 1))


def reduce_sum(im, node, a):
    x = im.act(a["self"])
    return im.result(_reduce(im, x, a.get("dim"), bool(a.get("keepdim", False)), OpType.SUM, node.name))


def _arg(im, node, a, op_type: OpType):
    ti = _ti()
    x = im.act(a["self"])
    r = len(x.shape)
    dim = a.get("dim")
    keepdim = bool(a.get("keepdim", False))
    out = im.out_shape()
    if dim is None:  # over the flattened tensor (torch's element order)
        src = im.reshape(im.source_order(x), (int(np.prod(x.shape)),), im.tmp("flat"))
        axis, in_rank, ir_x = 0, 1, src
    else:
        axis, in_rank, ir_x = ti._ir_axis(int(dim), r), r, x.name
    shape_in = im.g.tensor(ir_x).shape
    idx_shape = shape_in[:axis] + shape_in[axis + 1:]
    name = im.g.unique_name(node.name if not keepdim and dim is not None and in_rank != 4 else im.tmp("idx"))
    im.g.add_tensor(name, idx_shape, DType.INT32)
    im.g.add_op(op_type, [ir_x], [name], {"axis": axis}, name=im.g.unique_name(node.name, ops=True))
    if in_rank == 4 and not keepdim:
        # the kept IR axes hold torch axes in NHWC order: bring them back to torch's order
        order = [t for i, t in enumerate(NCHW_TO_NHWC) if i != axis]
        perm = [order.index(t) for t in sorted(order)]
        name = _int_op(im, OpType.TRANSPOSE, name, tuple(idx_shape[p] for p in perm), {"perm": tuple(perm)},
                       node.name)
    elif keepdim or dim is None:
        target = ti._ir_shape(out) if len(out) == 4 else tuple(out)
        if tuple(im.g.tensor(name).shape) != tuple(target):
            name = _int_op(im, OpType.RESHAPE, name, target, {"shape": target}, node.name)
    return ti._Val(name, out)


def _int_op(im, op_type: OpType, x: str, shape, attrs: dict, hint: str) -> str:
    name = im.g.unique_name(hint)
    im.g.add_tensor(name, shape, DType.INT32)
    im.g.add_op(op_type, [x], [name], attrs, name=im.g.unique_name(hint, ops=True))
    return name


def argmax(im, node, a):
    return _arg(im, node, a, OpType.ARG_MAX)


def argmin(im, node, a):
    return _arg(im, node, a, OpType.ARG_MIN)


# ----------------------------------------------------------------------------- normalization


def layer_norm(im, node, a):
    """nn.LayerNorm over the last axis, decomposed (see the module docstring)."""
    ti = _ti()
    x = im.act(a["input"])
    normalized = [int(d) for d in a["normalized_shape"]]
    r = len(x.shape)
    if len(normalized) != 1 or r == 0 or x.shape[-1] != normalized[0]:
        raise im.unsupported(f"layer norm over {normalized} (only over the last axis of the input)")
    eps = float(a.get("eps") or 1e-5)
    axis = ti._ir_axis(r - 1, r)
    shape = ti._ir_shape(x.shape)
    kept = tuple(1 if i == axis else d for i, d in enumerate(shape))
    n = node.name
    mean = im.emit(OpType.MEAN, [x.name], kept, {"axes": (axis,), "keep_dims": True}, hint=f"{n}_mean")
    d = im.emit(OpType.SUB, [x.name, mean], shape, hint=f"{n}_centered")
    sq = im.emit(OpType.MUL, [d, d], shape, hint=f"{n}_squares")
    var = im.emit(OpType.MEAN, [sq], kept, {"axes": (axis,), "keep_dims": True}, hint=f"{n}_variance")
    var_eps = im.scalar_op(OpType.ADD, var, eps, kept, f"{n}_variance_eps")
    inv = im.emit(OpType.RSQRT, [var_eps], kept, hint=f"{n}_inv_std")
    y = im.emit(OpType.MUL, [d, inv], shape, hint=f"{n}_normalized" if a.get("weight") is not None
                or a.get("bias") is not None else n)
    if a.get("weight") is not None:
        w = ti._Val(None, (x.shape[-1],), im.const(a["weight"], "the layer norm weight").reshape(-1))
        y = im.emit(OpType.MUL, [y, im.operand(w, r, f"{n}_gamma")], shape,
                    hint=f"{n}_scaled" if a.get("bias") is not None else n)
    if a.get("bias") is not None:
        b = ti._Val(None, (x.shape[-1],), im.const(a["bias"], "the layer norm bias").reshape(-1))
        y = im.emit(OpType.ADD, [y, im.operand(b, r, f"{n}_beta")], shape, hint=n)
    return im.result(y)


def vector_norm(im, node, a):
    """F.normalize(x, dim=-1) as exported (linalg_vector_norm, clamp_min, expand_as, div)
    becomes one L2_NORMALIZATION; a norm used otherwise is not supported."""
    ti = _ti()
    x = im.act(a["self"])
    r = len(x.shape)
    dims = a.get("dim")
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    if float(a.get("ord", 2)) != 2.0 or len(dims) != 1 or r == 0 or not a.get("keepdim"):
        raise im.unsupported("only the L2 norm over one axis (as F.normalize computes it) is supported")
    users = list(node.users)
    clamp = users[0] if len(users) == 1 else None
    chain = []
    cur = clamp
    while cur is not None and ti._op_key(cur.target) in ("aten.clamp_min", "aten.clamp", "aten.expand_as",
                                                          "aten.expand") and len(cur.users) == 1:
        chain.append(cur)
        cur = next(iter(cur.users))
    div = cur
    if (div is None or ti._op_key(div.target) != "aten.div" or div.args[0] is not node.args[0]
            or (chain and div.args[1] is not chain[-1]) or (not chain and div.args[1] is not node)):
        raise im.unsupported("an L2 norm that does not feed x / norm (F.normalize) is not supported")
    for c in chain:
        if ti._op_key(c.target) in ("aten.clamp_min", "aten.clamp"):
            lo = c.args[1] if len(c.args) > 1 else c.kwargs.get("min")
            if lo is None or float(lo) > 1e-6:
                raise im.unsupported(f"F.normalize with eps {lo} (TFLite's L2 normalization uses 1e-6)")
    axis = ti._ir_axis(int(dims[0]), r)  # L2_NORMALIZATION works on the IR's last axis
    perm = [i for i in range(r) if i != axis] + [axis]
    src = im.transpose(x.name, perm, im.tmp("last")) if axis != r - 1 else x.name
    y = im.emit(OpType.L2_NORMALIZATION, [src], im.g.tensor(src).shape,
                hint=div.name if axis == r - 1 else im.tmp("l2"))
    if axis != r - 1:
        y = im.transpose(y, [int(v) for v in np.argsort(perm)], div.name)
    im.preset[div] = ti._Val(y, x.shape)
    for c in chain:
        im.preset[c] = None
    return None


HANDLERS = {
    "aten.matmul": matmul,
    "aten.bmm": matmul,
    "aten.scaled_dot_product_attention": scaled_dot_product_attention,
    "aten.amax": amax,
    "aten.max": max_dim,
    "aten.sum": reduce_sum,
    "aten.argmax": argmax,
    "aten.argmin": argmin,
    "aten.layer_norm": layer_norm,
    "aten.linalg_vector_norm": vector_norm,
}
# Handlers whose output is not float32 (int32 indices where torch gives int64).
INTEGER_OUTPUT = ("aten.argmax", "aten.argmin")
