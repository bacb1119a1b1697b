"""ONNX import of the reductions, normalizations and matrix products:

- ReduceMax -> REDUCE_MAX, ReduceSum -> SUM (axes as an attribute or as a constant input,
  noop_with_empty_axes);
- ArgMax / ArgMin -> ARG_MAX / ARG_MIN: int32 indices where ONNX has int64 (the values
  are the same); select_last_index=1 is refused (TFLite's kernels take the first);
- LpNormalization with p=2 over the last axis -> L2_NORMALIZATION (TFLite divides by
  max(norm, 1e-6): the same as ONNX except for rows whose norm is below 1e-6); over
  NCHW channels directly (the IR's last axis), over other axes between TRANSPOSEs;
  p=1 -> x / SUM(ABS(x)) (DIV);
- MatMul of two run-time tensors -> BATCH_MATMUL (batched, broadcasting; a constant
  second operand keeps the FULLY_CONNECTED lowering of ``handlers``), in the source's
  axis order (4-D operands are transposed from NHWC and back);
- Einsum of a batched matrix product (same batch letters, one contracted letter) ->
  BATCH_MATMUL with adj_x / adj_y; other equations are refused naming them;
- LayerNormalization (opset 17) -> decomposed as the TFLite converter does: MEAN, SUB,
  MUL, MEAN, ADD epsilon, RSQRT, MUL, MUL scale, ADD bias (see torch_reduction); its
  Mean / InvStdDev outputs are the MEAN and RSQRT results.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx import convert
from edgekit.frontends.onnx.convert import Converter, axes_input_or_attr, handler
from edgekit.frontends.onnx.handlers_composite import reduce_source_axes
from edgekit.frontends.onnx.values import Act, QConst, ir_axis
from edgekit.ir.dtypes import DType
from edgekit.ir.ops import OpType

_CONST_MATMUL = convert._HANDLERS.get("MatMul")  # FULLY_CONNECTED for a constant right operand


@handler("ReduceMax", "ReduceSum")
def _reduce(c: Converter, node, a):
    x = c.act_inp(node, 0)
    r = c.g.tensor(x).rank
    since = 13 if node.op_type == "ReduceSum" else 18
    axes = axes_input_or_attr(c, node, a, 1, since)
    keep = bool(a.get("keepdims", 1))
    out = c.out_name(node.output[0])
    if not axes:
        if a.get("noop_with_empty_axes", 0) or r == 0:
            c.set_out(node, 0, Act(x))
            return
        axes = list(range(r))
    op = OpType.REDUCE_MAX if node.op_type == "ReduceMax" else OpType.SUM
    if op is OpType.REDUCE_MAX and any(c.sshape(x)[c.norm_axis(ax, r)] == 0 for ax in axes):
        raise c.malformed("ReduceMax over an empty axis")
    c.set_out(node, 0, Act(reduce_source_axes(c, x, op, axes, keep, out)))


@handler("ArgMax", "ArgMin")
def _arg(c: Converter, node, a):
    if a.get("select_last_index", 0):
        raise c.unsupported("select_last_index=1 (TFLite's ARG_MAX/ARG_MIN return the first index)")
    x = c.act_inp(node, 0)
    r = c.g.tensor(x).rank
    if r == 0:
        raise c.malformed("ArgMax/ArgMin of a scalar")
    axis = c.norm_axis(int(a.get("axis", 0)), r)
    keep = bool(a.get("keepdims", 1))
    op = OpType.ARG_MAX if node.op_type == "ArgMax" else OpType.ARG_MIN
    out = c.out_name(node.output[0])
    src = x
    if r == 4:  # run in source order so the kept axes stay in order
        src = c.to_src(x)
    direct = not keep
    idx = c.emit(op, [src], {"axis": axis}, out=out if direct else None, dtype=DType.INT32)
    if keep:
        shape = list(c.g.tensor(src).shape)
        shape[axis] = 1
        idx = c.emit(OpType.RESHAPE, [idx], {"shape": tuple(shape)}, out=out if r != 4 else None)
        if r == 4:
            idx = c.from_src(idx, out)
    c.set_out(node, 0, Act(idx))


@handler("LpNormalization")
def _lp_normalization(c: Converter, node, a):
    x = c.act_inp(node, 0)
    r = c.g.tensor(x).rank
    p = int(a.get("p", 2))
    if p not in (1, 2):
        raise c.unsupported(f"p={p} (only p=1 and p=2)")
    if r == 0:
        raise c.malformed("LpNormalization of a scalar")
    axis = c.norm_axis(int(a.get("axis", -1)), r)
    out = c.out_name(node.output[0])
    if p == 1:
        total = reduce_source_axes(c, c.emit(OpType.ABS, [x]), OpType.SUM, [axis], True, None)
        c.set_out(node, 0, Act(c.emit(OpType.DIV, [x, total], out=out)))
        return
    ax = ir_axis(axis, r)  # L2_NORMALIZATION works on the IR's last axis (NCHW channels: directly)
    if ax == r - 1:
        c.set_out(node, 0, Act(c.emit(OpType.L2_NORMALIZATION, [x], out=out)))
        return
    perm = [i for i in range(r) if i != ax] + [ax]
    t = c.emit(OpType.TRANSPOSE, [x], {"perm": tuple(perm)})
    y = c.emit(OpType.L2_NORMALIZATION, [t])
    inv = tuple(int(v) for v in np.argsort(perm))
    c.set_out(node, 0, Act(c.emit(OpType.TRANSPOSE, [y], {"perm": inv}, out=out)))


@handler("MatMul")
def _matmul(c: Converter, node, a):
    va, vb = c.inp(node, 0), c.inp(node, 1)
    if not isinstance(vb, Act) and isinstance(va, Act) and _CONST_MATMUL is not None:
        _CONST_MATMUL(c, node, a)
        return
    if not isinstance(va, Act) and not isinstance(vb, Act):  # pragma: no cover - folded before
        raise c.unsupported("MatMul of two constants")
    names = []
    for i, v in enumerate((va, vb)):
        if isinstance(v, Act):
            names.append(c.to_src(c.act_inp(node, i)))
        else:
            arr = v.value() if isinstance(v, QConst) else np.asarray(v, np.float32)
            names.append(c.const(arr, f"{c.node_name()}_operand{i}", ir_layout=True))
    shapes = [c.g.tensor(n).shape for n in names]
    if any(len(s) < 2 for s in shapes):
        raise c.unsupported(f"MatMul of shapes {[list(s) for s in shapes]}: 1-D operands (vector products) "
                            "of two run-time tensors are not supported")
    out = c.out_name(node.output[0])
    rank = max(len(s) for s in shapes)
    y = c.emit(OpType.BATCH_MATMUL, names, out=out if rank != 4 else None, dtype=DType.FLOAT32)
    c.set_out(node, 0, Act(c.from_src(y, out) if rank == 4 else y))


@handler("LayerNormalization")
def _layer_norm(c: Converter, node, a):
    x = c.act_inp(node, 0)
    r = c.g.tensor(x).rank
    if r == 0:
        raise c.malformed("LayerNormalization of a scalar")
    axis = c.norm_axis(int(a.get("axis", -1)), r)
    eps = float(a.get("epsilon", 1e-5))
    src_axes = list(range(axis, r))
    ir_axes = tuple(sorted(ir_axis(s, r) for s in src_axes))
    sshape = c.sshape(x)
    scale = c.const_inp(node, 1, "the scale")
    bias = c.const_inp(node, 2, "the bias", required=False)
    name = c.node_name()

    def laid_out(arr, what):
        arr = np.asarray(arr, np.float32)
        full = np.broadcast_to(arr, sshape[axis:]) if arr.ndim <= r - axis else None
        if full is None:
            raise c.malformed(f"{what} of shape {list(arr.shape)} does not broadcast to {list(sshape[axis:])}")
        return c.const(np.ascontiguousarray(full).reshape((1,) * axis + full.shape), f"{name}_{what}")

    mean = c.emit(OpType.MEAN, [x], {"axes": ir_axes, "keep_dims": True})
    d = c.emit(OpType.SUB, [x, mean])
    sq = c.emit(OpType.MUL, [d, d])
    var = c.emit(OpType.MEAN, [sq], {"axes": ir_axes, "keep_dims": True})
    var_eps = c.emit(OpType.ADD, [var, c.const(np.array([eps], np.float32), f"{name}_epsilon")])
    inv = c.emit(OpType.RSQRT, [var_eps])
    out = c.out_name(node.output[0])
    last = "scale" if bias is None else "bias"
    y = c.emit(OpType.MUL, [d, inv])
    y = c.emit(OpType.MUL, [y, laid_out(scale, "scale")], out=out if last == "scale" else None)
    if bias is not None:
        y = c.emit(OpType.ADD, [y, laid_out(bias, "bias")], out=out)
    c.set_out(node, 0, Act(y))
    c.set_out(node, 1, Act(mean))  # Mean and InvStdDev: the statistics, reduced axes kept as 1
    c.set_out(node, 2, Act(inv))


def _einsum_matmul(eq: str):
    """(adj_x, adj_y) when ``eq`` is a batched matrix product of two operands: the same
    batch letters in front of each, one shared contracted letter and one free letter per
    operand, the output batch + (lhs free, rhs free). None otherwise."""
    eq = eq.replace(" ", "")
    if "->" not in eq or "." in eq:
        return None
    ins, out = eq.split("->")
    parts = ins.split(",")
    if len(parts) != 2 or any(len(set(p)) != len(p) for p in parts + [out]):
        return None
    a, b = parts
    if len(a) < 2 or len(a) != len(b) or a[:-2] != b[:-2] or out[:-2] != a[:-2] or len(out) != len(a):
        return None
    am, bm, om = set(a[-2:]), set(b[-2:]), out[-2:]
    shared = am & bm
    if len(shared) != 1:
        return None
    (k,) = shared
    (i,) = am - shared
    (j,) = bm - shared
    if om != i + j:
        return None
    return a[-1] != k, b[-2] != k  # adj_x: lhs stored [k, i]; adj_y: rhs stored [j, k]


@handler("Einsum")
def _einsum(c: Converter, node, a):
    eq = a.get("equation", "")
    eq = eq.decode() if isinstance(eq, bytes) else str(eq)
    adj = _einsum_matmul(eq)
    if adj is None or len(node.input) != 2:
        raise c.unsupported(f"equation {eq!r}: only batched matrix products of two operands "
                            "(e.g. 'bij,bjk->bik', 'bhqd,bhkd->bhqk') are supported")
    names = []
    for i in range(2):
        v = c.inp(node, i)
        if isinstance(v, Act):
            names.append(c.to_src(c.act_inp(node, i)))
        else:
            arr = v.value() if isinstance(v, QConst) else np.asarray(v, np.float32)
            names.append(c.const(arr, f"{c.node_name()}_operand{i}", ir_layout=True))
    out = c.out_name(node.output[0])
    rank = c.g.tensor(names[0]).rank
    y = c.emit(OpType.BATCH_MATMUL, names, {"adj_x": adj[0], "adj_y": adj[1]}, out=out if rank != 4 else None,
               dtype=DType.FLOAT32)
    c.set_out(node, 0, Act(c.from_src(y, out) if rank == 4 else y))
