"""ONNX converters of the data-movement ops on run-time tensors: Slice, Split, Gather,
Cast, DepthToSpace, SpaceToDepth (constant inputs are folded by ``folding``).

Layout (see ``values``): a 4-D tensor is NHWC in the IR, so a source axis maps through
``ir_axis``. Slice and Split keep the rank and work on the mapped axes directly. Gather
changes the rank unless its indices are 1-D: then it reads the tensor back in source
order first (a TRANSPOSE the passes usually cancel) and takes the source axis.

Shapes, axes, starts/ends/steps and split sizes must be constant once folded (inputs
computed from static shapes are). Gather's indices may be a run-time int32/int64
tensor (an embedding lookup): run-time indices must then be in ``[0, dim)``, as TFLite
requires; constant ones may be negative (resolved here).

DepthToSpace / SpaceToDepth: mode DCR is TFLite's DEPTH_TO_SPACE / SPACE_TO_DEPTH on
NHWC; mode CRD (PyTorch's PixelShuffle order) adds a constant channel GATHER (before
DEPTH_TO_SPACE, after SPACE_TO_DEPTH).
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx.convert import Converter, handler
from edgekit.frontends.onnx.loader import np_dtype_of
from edgekit.frontends.onnx.values import NHWC, Act, ir_axis
from edgekit.ir.dtypes import DType
from edgekit.ir.movement_types import CAST_TYPES
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.ir.shapes import infer_op_shapes


def _emit_outputs(c: Converter, op_type: OpType, inputs: list[str], attrs: dict, node) -> list[str]:
    """An op with one output per ``node`` output (SPLIT); unused outputs get fresh names."""
    try:
        shapes = infer_op_shapes(op_type, [c.g.tensor(i).shape for i in inputs], normalize_attrs(op_type, attrs))
    except ValueError as exc:
        raise c.malformed(str(exc)) from None
    src = c.g.tensor(inputs[0])
    names = []
    for k, shape in enumerate(shapes):
        onnx_name = node.output[k] if k < len(node.output) else ""
        name = c.out_name(onnx_name) if onnx_name else c.new_name(f"{c.node_name()}_{k}")
        c.g.add_tensor(name, shape, src.dtype, src.quant)
        names.append(name)
    c.g.add_op(op_type, inputs, names, attrs, name=c.op_name(c.node_name()))
    return names


def _ints(v) -> list[int]:
    return [int(s) for s in np.asarray(v).reshape(-1)]


def resolve_onnx_slice(shape, starts, ends, axes, steps, norm_axis) -> tuple[list, list, list]:
    """Per-axis (begin, end, stride) in the IR's resolved form for ONNX Slice semantics."""
    rank = len(shape)
    begin, end, stride = [0] * rank, list(shape), [1] * rank
    for st, en, ax, sp in zip(starts, ends, axes, steps):
        ax = norm_axis(ax, rank)
        dim = shape[ax]
        st = st + dim if st < 0 else st
        en = en + dim if en < 0 else en
        if sp > 0:
            st, en = min(max(st, 0), dim), min(max(en, 0), dim)
        else:
            st, en = min(max(st, 0), dim - 1), min(max(en, -1), dim - 1)
        begin[ax], end[ax], stride[ax] = st, en, sp
    return begin, end, stride


@handler("Slice")
def _slice(c: Converter, node, a):
    x = c.act_inp(node, 0, float_only=False)
    shape = c.sshape(x)
    if c.opset < 10:
        starts, ends, axes, steps = a.get("starts"), a.get("ends"), a.get("axes"), None
        if starts is None or ends is None:
            raise c.malformed("Slice needs starts and ends")
    else:
        starts = c.const_inp(node, 1, "starts")
        ends = c.const_inp(node, 2, "ends")
        axes = c.const_inp(node, 3, "axes", required=False)
        steps = c.const_inp(node, 4, "steps", required=False)
    starts, ends = _ints(starts), _ints(ends)
    axes = list(range(len(starts))) if axes is None else _ints(axes)
    steps = [1] * len(starts) if steps is None else _ints(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise c.malformed("starts, ends, axes and steps differ in length")
    if any(s == 0 for s in steps):
        raise c.malformed("slice step 0")
    if len({c.norm_axis(ax, len(shape)) for ax in axes}) != len(axes):
        raise c.malformed(f"repeated axes {axes}")
    begin, end, stride = resolve_onnx_slice(shape, starts, ends, axes, steps, c.norm_axis)
    perm = NHWC if len(shape) == 4 else tuple(range(len(shape)))
    begin, end, stride = ([v[p] for p in perm] for v in (begin, end, stride))
    out = c.out_name(node.output[0])
    if all(s == 1 for s in stride):
        size = [max(e - b, 0) for b, e in zip(begin, end)]
        y = c.emit(OpType.SLICE, [x], {"begin": begin, "size": size}, out=out)
    else:
        y = c.emit(OpType.STRIDED_SLICE, [x], {"begin": begin, "end": end, "strides": stride}, out=out)
    c.set_out(node, 0, Act(y))


@handler("Split")
def _split(c: Converter, node, a):
    x = c.act_inp(node, 0, float_only=False)
    shape = c.sshape(x)
    axis = c.norm_axis(a.get("axis", 0), len(shape))
    n = len(node.output)
    if c.opset >= 13:
        split = c.const_inp(node, 1, "split", required=False)
    else:
        split = a.get("split")
    dim = shape[axis]
    if split is not None and len(_ints(split)):
        sizes = _ints(split)
    else:
        parts = int(a.get("num_outputs", n))
        if parts < 1:
            raise c.malformed(f"cannot split into {parts} parts")
        chunk = -(-dim // parts)  # ONNX (opset 18): the last part may be smaller
        sizes = [chunk] * (parts - 1) + [dim - chunk * (parts - 1)]
        if sizes[-1] <= 0:
            raise c.malformed(f"dimension {dim} does not split into {parts} parts")
    if len(sizes) != n or sum(sizes) != dim or any(s < 0 for s in sizes):
        raise c.malformed(f"split sizes {sizes} do not match {n} outputs over dimension {dim}")
    names = _emit_outputs(c, OpType.SPLIT, [x], {"axis": ir_axis(axis, len(shape)), "sizes": sizes}, node)
    for k, name in enumerate(names):
        c.set_out(node, k, Act(name))


@handler("Gather")
def _gather(c: Converter, node, a):
    data = c.inp(node, 0)
    idx_v = c.inp(node, 1)
    x = c.tensor_of(data, f"{c.node_name()}_data")
    shape = c.sshape(x)
    axis = c.norm_axis(a.get("axis", 0), len(shape))
    if isinstance(idx_v, Act):
        idx = idx_v.name
        it = c.g.tensor(idx)
        if it.dtype not in (DType.INT32, DType.INT64):
            raise c.unsupported(f"indices of type {it.dtype.value}")
        idx_rank = it.rank
    else:
        arr = np.asarray(idx_v.value() if hasattr(idx_v, "value") else idx_v).astype(np.int64)
        if arr.size and (arr.max() >= shape[axis] or arr.min() < -shape[axis]):
            raise c.malformed(f"Gather index out of range for dimension {shape[axis]}")
        arr = np.where(arr < 0, arr + shape[axis], arr)
        idx_rank = arr.ndim
        if arr.ndim == 0:
            arr = arr.reshape(1)  # IR constants have rank >= 1: gather 1, then drop the axis
        idx = c.const(arr.astype(np.int32), f"{c.node_name()}_indices", ir_layout=True)
    out = c.out_name(node.output[0])
    out_rank = len(shape) - 1 + idx_rank
    if len(shape) == 4 and out_rank == 4:  # layout kept: gather along the mapped axis
        y = c.emit(OpType.GATHER, [x, idx], {"axis": ir_axis(axis, 4)}, out=out)
    else:
        raw = c.to_src(x)
        final_rank4 = out_rank == 4
        y = c.emit(OpType.GATHER, [raw, idx], {"axis": axis},
                   out=None if (final_rank4 or idx_rank == 0) else out)
        if idx_rank == 0:  # a scalar index: the gathered axis disappears
            new = tuple(d for i, d in enumerate(c.g.tensor(y).shape) if i != axis)
            y = c.emit(OpType.RESHAPE, [y], {"shape": new}, out=None if final_rank4 else out)
        if final_rank4:
            y = c.from_src(y, out)
    c.set_out(node, 0, Act(y))


@handler("Cast")
def _cast(c: Converter, node, a):
    x = c.inp(node, 0)
    src = c.g.tensor(x.name).dtype
    dt = np_dtype_of(a.get("to", 1), c.label, "Cast target")
    try:
        to = DType.from_numpy(dt)
    except ValueError:
        to = None
    if to is src:
        c.set_out(node, 0, x)
        return
    if to not in CAST_TYPES or src not in CAST_TYPES or src in (DType.INT8, DType.INT16):
        raise c.unsupported(f"Cast of a run-time {src.value} tensor to {dt}: edgekit casts between "
                            "float32, int32 and bool (and to int8/int16) at run time")
    if to in (DType.INT8, DType.INT16):
        raise c.unsupported(f"Cast to {dt}: a quantized graph comes from QuantizeLinear, and a raw "
                            "integer cast has no quantization parameters")
    y = c.emit(OpType.CAST, [x.name], {}, out=c.out_name(node.output[0]), dtype=to)
    c.set_out(node, 0, Act(y))


@handler("DepthToSpace", "SpaceToDepth")
def _depth_space(c: Converter, node, a):
    x = c.act_inp(node, 0, float_only=False)
    if c.g.tensor(x).rank != 4:
        raise c.malformed(f"expects a 4-D NCHW input, got rank {c.g.tensor(x).rank}")
    bs = int(a.get("blocksize", 0))
    if bs < 1:
        raise c.malformed(f"blocksize {bs} must be at least 1")
    out = c.out_name(node.output[0])
    mode = a.get("mode", "DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in ("DCR", "CRD"):
        raise c.malformed(f"unknown mode {mode!r}")
    if node.op_type == "SpaceToDepth":
        if mode == "DCR":
            c.set_out(node, 0, Act(c.emit(OpType.SPACE_TO_DEPTH, [x], {"block_size": bs}, out=out)))
            return
        # CRD puts channel c, block offset k at c * bs^2 + k; TFLite (DCR) at k * C + c.
        y = c.emit(OpType.SPACE_TO_DEPTH, [x], {"block_size": bs})
        ch = c.g.tensor(x).shape[3]
        k = np.arange(ch * bs * bs)
        idx = c.const(((k % (bs * bs)) * ch + k // (bs * bs)).astype(np.int32), f"{c.node_name()}_dcr_to_crd",
                      ir_layout=True)
        c.set_out(node, 0, Act(c.emit(OpType.GATHER, [y, idx], {"axis": 3}, out=out)))
        return
    ch = c.g.tensor(x).shape[3]
    if ch % (bs * bs):
        raise c.malformed(f"{ch} channels are not a multiple of blocksize^2 = {bs * bs}")
    if mode == "CRD":
        # CRD reads channel c * bs^2 + k where DCR reads k * C' + c: permute the channels.
        oc = ch // (bs * bs)
        perm = np.arange(ch).reshape(oc, bs * bs).T.reshape(-1).astype(np.int32)
        idx = c.const(perm, f"{c.node_name()}_crd_to_dcr", ir_layout=True)
        x = c.emit(OpType.GATHER, [x, idx], {"axis": 3})
    c.set_out(node, 0, Act(c.emit(OpType.DEPTH_TO_SPACE, [x], {"block_size": bs}, out=out)))

