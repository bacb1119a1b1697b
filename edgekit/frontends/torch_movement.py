"""torch importer handlers of the data-movement ops: slicing (``x[a:b:s]``, ``narrow``),
``select`` (``x[:, i]``), ``split`` / ``chunk`` / ``split_with_sizes`` / ``unbind``
(SPLIT / UNPACK with several outputs), ``stack`` (PACK), ``index_select`` with constant
indices (GATHER), ``pixel_shuffle`` / ``pixel_unshuffle`` (DEPTH_TO_SPACE /
SPACE_TO_DEPTH with a channel GATHER: PyTorch orders the channels CRD, TFLite DCR).

Layout (see torch_importer): a 4-D activation is held in NHWC. An op that keeps the rank
of a 4-D tensor works on the mapped IR axis; one that changes the rank (select, unbind,
stack) runs in torch's axis order between TRANSPOSEs, which the passes cancel where
they can.
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.dtypes import DType
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.ir.shapes import infer_op_shapes

NCHW_TO_NHWC = (0, 2, 3, 1)


def _ti():
    from edgekit.frontends import torch_importer as ti

    return ti


def _emit_multi(im, op_type: OpType, inputs: list[str], attrs: dict, hint: str) -> list[str]:
    shapes = infer_op_shapes(op_type, [im.g.tensor(i).shape for i in inputs], normalize_attrs(op_type, attrs))
    names = []
    for k, shape in enumerate(shapes):
        name = im.g.unique_name(f"{hint}_{k}")
        im.g.add_tensor(name, shape, DType.FLOAT32)
        names.append(name)
    im.g.add_op(op_type, inputs, names, attrs, name=im.g.unique_name(hint, ops=True))
    return names


def _dim(im, a, key: str, rank: int) -> int:
    d = int(a.get(key) or 0)
    if not -rank <= d < max(rank, 1):
        raise im.unsupported(f"dim {d} out of range for rank {rank}")
    return d % rank


def _ir(rank: int, d: int) -> int:
    return NCHW_TO_NHWC.index(d) if rank == 4 else d


def slice_(im, node, a):
    ti = _ti()
    x = im.act(a["self"])
    r = len(x.shape)
    d = _dim(im, a, "dim", r)
    step = int(a.get("step") or 1)
    if step < 1:
        raise im.unsupported(f"step {step} (torch slices step forward)")
    start, stop, _ = slice(a.get("start"), a.get("end"), step).indices(x.shape[d])
    if (start, stop, step) == (0, x.shape[d], 1):
        return x
    shape = ti._ir_shape(im.out_shape())
    ir = im.g.tensor(x.name).shape
    axis = _ir(r, d)
    begin = [0] * r
    end = list(ir)
    strides = [1] * r
    begin[axis], end[axis], strides[axis] = start, stop, step
    if step == 1:
        size = list(ir)
        size[axis] = max(stop - start, 0)
        return im.result(im.emit(OpType.SLICE, [x.name], shape, {"begin": begin, "size": size}))
    return im.result(im.emit(OpType.STRIDED_SLICE, [x.name], shape,
                             {"begin": begin, "end": end, "strides": strides}))


def narrow(im, node, a):
    x = im.act(a["self"])
    d = _dim(im, a, "dim", len(x.shape))
    start = int(a["start"]) % x.shape[d] if int(a["start"]) < 0 else int(a["start"])
    return slice_(im, node, {"self": a["self"], "dim": d, "start": start, "end": start + int(a["length"]),
                             "step": 1})


def select(im, node, a):
    """``x[..., i, ...]``: a STRIDED_SLICE with that axis shrunk (in torch order for 4-D)."""
    x = im.act(a["self"])
    r = len(x.shape)
    d = _dim(im, a, "dim", r)
    i = int(a["index"])
    if not -x.shape[d] <= i < x.shape[d]:
        raise im.unsupported(f"index {i} out of range for size {x.shape[d]}")
    i %= x.shape[d]
    src = im.source_order(x)
    shape = tuple(x.shape)
    begin, end = [0] * r, list(shape)
    begin[d], end[d] = i, i + 1
    out = im.out_shape()
    y = im.emit(OpType.STRIDED_SLICE, [src], out, {"begin": begin, "end": end, "strides": [1] * r,
                                                    "shrink_axis_mask": 1 << d}, hint=im.tmp("select"))
    return im.result(im.from_source_order(y, node.name))


def split(im, node, a):
    x = im.act(a["self"])
    r = len(x.shape)
    d = _dim(im, a, "dim", r)
    n = x.shape[d]
    if "split_sizes" in a and a["split_sizes"] is not None:
        sizes = [int(s) for s in a["split_sizes"]]
    else:
        size = int(a.get("split_size") or 0)
        if size < 1:
            raise im.unsupported(f"split size {size}")
        sizes = [size] * (n // size) + ([n % size] if n % size else [])
    if sum(sizes) != n:
        raise im.unsupported(f"split sizes {sizes} do not add up to {n}")
    if len(sizes) == 1:
        return (x,)
    names = _emit_multi(im, OpType.SPLIT, [x.name], {"axis": _ir(r, d), "sizes": sizes}, node.name)
    ti = _ti()
    outs = []
    for name, s in zip(names, sizes):
        shape = list(x.shape)
        shape[d] = s
        outs.append(ti._Val(name, shape))
    return tuple(outs)


def unbind(im, node, a):
    ti = _ti()
    x = im.act(a["self"])
    r = len(x.shape)
    d = _dim(im, a, "dim", r)
    src = im.source_order(x)
    names = _emit_multi(im, OpType.UNPACK, [src], {"axis": d}, node.name)
    shape = x.shape[:d] + x.shape[d + 1:]
    return tuple(ti._Val(im.from_source_order(n, f"{n}_nhwc"), shape) for n in names)


def stack(im, node, a):
    vals = [im.val(t) for t in a["tensors"]]
    if any(v.is_const for v in vals):
        raise im.unsupported("stacking constants with activations is not supported")
    r = len(vals[0].shape)
    d = int(a.get("dim") or 0)
    if not -(r + 1) <= d <= r:
        raise im.unsupported(f"dim {d} out of range for rank {r + 1}")
    d %= r + 1
    srcs = [im.source_order(v) for v in vals]
    out = im.out_shape()
    y = im.emit(OpType.PACK, srcs, out, {"axis": d}, hint=im.tmp("stack"))
    return im.result(im.from_source_order(y, node.name))


def index_select(im, node, a):
    ti = _ti()
    x = im.act(a["self"])
    r = len(x.shape)
    d = _dim(im, a, "dim", r)
    idx_v = im.val(a["index"])
    if not idx_v.is_const:
        raise im.unsupported("index_select needs constant indices")
    idx = np.asarray(idx_v.const).astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < -x.shape[d] or idx.max() >= x.shape[d]):
        raise im.unsupported(f"index out of range for size {x.shape[d]}")
    idx = np.where(idx < 0, idx + x.shape[d], idx).astype(np.int32)
    c = im.g.add_const(im.tmp("indices"), idx).name
    return im.result(im.emit(OpType.GATHER, [x.name, c], ti._ir_shape(im.out_shape()), {"axis": _ir(r, d)}))


def _channel_gather(im, name: str, perm: np.ndarray, hint: str) -> str:
    shape = im.g.tensor(name).shape
    c = im.g.add_const(f"{hint}_order", perm.astype(np.int32)).name
    return im.emit(OpType.GATHER, [name, c], shape, {"axis": 3}, hint=hint)


def pixel_shuffle(im, node, a):
    ti = _ti()
    x = im.act(a["self"])
    if len(x.shape) != 4:
        raise im.unsupported("pixel_shuffle of a tensor that is not 4-D")
    rr = int(a["upscale_factor"])
    ch = x.shape[1]
    oc = ch // (rr * rr)
    perm = np.arange(ch).reshape(oc, rr * rr).T.reshape(-1)  # DCR position k*oc + c reads c*r^2 + k
    g = _channel_gather(im, x.name, perm, im.tmp("crd_to_dcr"))
    return im.result(im.emit(OpType.DEPTH_TO_SPACE, [g], ti._ir_shape(im.out_shape()), {"block_size": rr}))


def pixel_unshuffle(im, node, a):
    ti = _ti()
    x = im.act(a["self"])
    if len(x.shape) != 4:
        raise im.unsupported("pixel_unshuffle of a tensor that is not 4-D")
    rr = int(a["downscale_factor"])
    c = x.shape[1]
    s = im.emit(OpType.SPACE_TO_DEPTH, [x.name], ti._ir_shape(im.out_shape()), {"block_size": rr},
                hint=im.tmp("s2d"))
    k = np.arange(c * rr * rr)
    perm = (k % (rr * rr)) * c + k // (rr * rr)  # torch channel c*r^2 + m sits at DCR (m * C + c)
    return im.result(_channel_gather(im, s, perm, node.name))


HANDLERS = {
    "aten.slice": slice_, "aten.slice_copy": slice_,
    "aten.narrow": narrow, "aten.narrow_copy": narrow,
    "aten.select": select, "aten.select_copy": select,
    "aten.split": split, "aten.split_with_sizes": split, "aten.split_copy": split,
    "aten.split_with_sizes_copy": split,
    "aten.unbind": unbind, "aten.unbind_copy": unbind,
    "aten.stack": stack,
    "aten.index_select": index_select,
    "aten.pixel_shuffle": pixel_shuffle, "aten.pixel_unshuffle": pixel_unshuffle,
}
