"""torch -> IR for resampling, transposed and 1-D convolution (handlers of
``torch_importer``; each takes the importer, the FX node and its bound arguments).

- ``interpolate`` / ``nn.Upsample``: nearest becomes RESIZE_NEAREST_NEIGHBOR (torch's
  ``floor(dst * in / out)``), nearest-exact the same with half-pixel centres, bilinear
  RESIZE_BILINEAR (``align_corners=False`` is TFLite's half-pixel rule: both clamp a
  source position below 0 to the first pixel). Where torch's scale (``1 / scale_factor``)
  would pick other source pixels than ``in / out``, the node is refused.
- ``nn.ConvTranspose2d`` (groups 1, dilation 1): TRANSPOSE_CONV, weight ``[Cin, Cout, KH, KW]``
  -> ``[Cout, KH, KW, Cin]``, pads ``(p, p, p - output_padding, ...)``.
- ``nn.ConvTranspose1d`` and 1-D ``interpolate`` (nearest, nearest-exact, linear): the same
  ops with a ``1 x K`` filter / ``1 x L`` size on the NHWC view below.
- ``nn.Conv1d`` / ``max_pool1d`` / ``avg_pool1d`` / ``adaptive_*_pool1d`` / ``BatchNorm1d``: as the TFLite
  converter builds them: the ``[N, C, L]`` tensor viewed as NHWC ``[N, 1, L, C]`` (a
  TRANSPOSE and a RESHAPE), CONV_2D / DEPTHWISE_CONV_2D / pooling with a ``1 x K``
  window, and back. Between two such layers the TRANSPOSE pairs cancel (the
  ``hoist_elementwise`` pass moves activations in between above them first).
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.ops import OpType
from edgekit.reference.resample_kernels import nearest_indices

F32 = np.float32


def _helpers():
    from edgekit.frontends import torch_importer as ti

    return ti


# ------------------------------------------------------------------------------ resizing


def _torch_scales(in_hw, out_hw, scale_factors, align_corners: bool) -> list[float]:
    """The float32 scale torch uses per axis (``area_pixel_compute_scale``)."""
    out = []
    for i, (size, o) in enumerate(zip(in_hw, out_hw)):
        if align_corners:
            out.append(F32(size - 1) / F32(o - 1) if o > 1 else F32(0))
        elif scale_factors is not None and scale_factors[i] is not None and scale_factors[i] > 0:
            out.append(F32(1.0 / float(scale_factors[i])))
        else:
            out.append(F32(size) / F32(o))
    return out


def _upsample(im, node, a, mode: str):
    x = im.act(a.get("input", a.get("self")))
    if len(x.shape) != 4:
        raise im.unsupported(f"only 2-D resizing of 4-D input is supported (input is {len(x.shape)}-D)")
    out = im.out_shape()
    in_hw, out_hw = x.shape[2:], out[2:]
    scales = a.get("scale_factors")
    if scales is None and (a.get("scales_h") is not None or a.get("scales_w") is not None):
        scales = [a.get("scales_h"), a.get("scales_w")]
    align = bool(a.get("align_corners") or False)
    half = mode in ("nearest-exact", "bilinear") and not align
    ts = _torch_scales(in_hw, out_hw, scales, align)
    if mode.startswith("nearest"):
        off = F32(0.5) if half else F32(0.0)
        for size, o, s in zip(in_hw, out_hw, ts):
            theirs = np.minimum(np.floor((np.arange(o, dtype=F32) + off) * s).astype(np.int64), size - 1)
            if not np.array_equal(theirs, nearest_indices(size, o, False, half)):
                raise im.unsupported(f"{mode} resize from {size} to {o} with scale factor {scales}: torch's "
                                     "source pixels differ from TFLite's (in / out); give the output size instead")
        op = OpType.RESIZE_NEAREST_NEIGHBOR
    else:
        for size, o, s in zip(in_hw, out_hw, ts):
            mine = F32(size - 1) / F32(o - 1) if align and o > 1 else (F32(0) if align else F32(size) / F32(o))
            if s != mine:
                raise im.unsupported(f"bilinear resize from {size} to {o} with scale factor {scales}: torch's "
                                     "scale differs from TFLite's (in / out); give the output size instead")
        op = OpType.RESIZE_BILINEAR
    attrs = {"size": tuple(out_hw), "align_corners": align, "half_pixel_centers": half}
    return im.result(im.emit(op, [x.name], _helpers()._ir_shape(out), attrs))


def upsample_nearest(im, node, a):
    return _upsample(im, node, a, "nearest")


def upsample_nearest_exact(im, node, a):
    return _upsample(im, node, a, "nearest-exact")


def upsample_bilinear(im, node, a):
    if a.get("antialias"):
        raise im.unsupported("antialiased bilinear resizing is not supported")
    return _upsample(im, node, a, "bilinear")


# ------------------------------------------------------------------------------ transposed conv


def conv_transpose1d(im, node, a):
    """ConvTranspose1d: TRANSPOSE_CONV with a 1 x K filter on the NHWC view."""
    x = im.act(a["input"])
    _check_3d(im, x, "1-D transposed convolution")
    w = im.const(a["weight"], "the transposed convolution weight")  # [Cin, Cout, K]
    b = None if a.get("bias") is None else im.const(a["bias"], "the transposed convolution bias")
    if int(a.get("groups") or 1) != 1:
        raise im.unsupported(f"grouped transposed convolution (groups={a.get('groups')}) is not supported")
    if _one(a.get("dilation"), 1) != 1:
        raise im.unsupported("dilated transposed convolution is not supported")
    s, p, op = _one(a.get("stride"), 1), _one(a.get("padding"), 0), _one(a.get("output_padding"), 0)
    out = im.out_shape()
    shape = (out[0], 1, out[2], out[1])
    attrs = {"output_shape": shape, "strides": (1, s), "pads": (0, p, 0, p - op)}
    ins = [_to_nhwc_view(im, x, a["input"]),
           im.const_tensor(np.ascontiguousarray(w.transpose(1, 2, 0)[:, None]), f"{node.name}_filter")]
    if b is not None:
        ins.append(im.const_tensor(b.reshape(-1), f"{node.name}_bias"))
    y = im.emit(OpType.TRANSPOSE_CONV, ins, shape, attrs, hint=im.tmp("tconv"))
    return im.result(_from_nhwc_view(im, y, out))


def upsample_1d(im, node, a, mode: str):
    """upsample_nearest1d / upsample_linear1d: a 1 x L resize of the NHWC view, checked
    against torch's source positions as the 2-D resizes are."""
    x = im.act(a.get("input", a.get("self")))
    _check_3d(im, x, f"1-D {mode} resizing")
    out = im.out_shape()
    length, o = x.shape[2], out[2]
    scales = a.get("scale_factors") or ([a["scales"]] if a.get("scales") is not None else None)
    align = bool(a.get("align_corners") or False)
    half = mode in ("nearest-exact", "linear") and not align
    (s,) = _torch_scales((length,), (o,), scales, align)
    if mode.startswith("nearest"):
        off = F32(0.5) if half else F32(0.0)
        theirs = np.minimum(np.floor((np.arange(o, dtype=F32) + off) * s).astype(np.int64), length - 1)
        if not np.array_equal(theirs, nearest_indices(length, o, False, half)):
            raise im.unsupported(f"{mode} resize from {length} to {o} with scale factor {scales}: torch's "
                                 "source pixels differ from TFLite's (in / out); give the output size instead")
        op = OpType.RESIZE_NEAREST_NEIGHBOR
    else:
        mine = F32(length - 1) / F32(o - 1) if align and o > 1 else (F32(0) if align else F32(length) / F32(o))
        if s != mine:
            raise im.unsupported(f"linear resize from {length} to {o} with scale factor {scales}: torch's scale "
                                 "differs from TFLite's (in / out); give the output size instead")
        op = OpType.RESIZE_BILINEAR
    y = im.emit(op, [_to_nhwc_view(im, x, a.get("input", a.get("self")))], (out[0], 1, o, out[1]),
                {"size": (1, o), "align_corners": align, "half_pixel_centers": half}, hint=im.tmp("resize"))
    return im.result(_from_nhwc_view(im, y, out))


def upsample_nearest1d(im, node, a):
    return upsample_1d(im, node, a, "nearest")


def upsample_nearest_exact1d(im, node, a):
    return upsample_1d(im, node, a, "nearest-exact")


def upsample_linear1d(im, node, a):
    return upsample_1d(im, node, a, "linear")


def conv_transpose2d(im, node, a):
    ti = _helpers()
    x = im.act(a["input"])
    if len(x.shape) == 3:
        return conv_transpose1d(im, node, a)
    if len(x.shape) != 4:
        raise im.unsupported(f"only 1-D and 2-D transposed convolution is supported (input is {len(x.shape)}-D)")
    w = im.const(a["weight"], "the transposed convolution weight")  # [Cin, Cout / groups, KH, KW]
    b = None if a.get("bias") is None else im.const(a["bias"], "the transposed convolution bias")
    if int(a.get("groups") or 1) != 1:
        raise im.unsupported(f"grouped transposed convolution (groups={a.get('groups')}) is not supported")
    if (ti._pair(a.get("dilation")) or (1, 1)) != (1, 1):
        raise im.unsupported("dilated transposed convolution is not supported")
    stride = ti._pair(a.get("stride")) or (1, 1)
    ph, pw = ti._pair(a.get("padding")) or (0, 0)
    oph, opw = ti._pair(a.get("output_padding")) or (0, 0)
    out = ti._ir_shape(im.out_shape())
    attrs = {"output_shape": out, "strides": stride, "pads": (ph, pw, ph - oph, pw - opw)}
    ins = [x.name, im.const_tensor(w.transpose(1, 2, 3, 0), f"{node.name}_filter")]
    if b is not None:
        ins.append(im.const_tensor(b.reshape(-1), f"{node.name}_bias"))
    return im.result(im.emit(OpType.TRANSPOSE_CONV, ins, out, attrs))


# ------------------------------------------------------------------------------ 1-D as 2-D


def _views(im) -> dict[str, str]:
    """[N, C, L] tensors made by ``_from_nhwc_view`` -> the NHWC tensor they came from."""
    return im.__dict__.setdefault("nhwc_views", {})


def _to_nhwc_view(im, x, arg=None) -> str:
    """[N, C, L] -> NHWC [N, 1, L, C] (the NHWC tensor itself when ``x`` was made from one).

    ``arg``: the FX node ``x`` comes from; when this node is its only user, the ops that
    made ``x`` from the NHWC tensor are dropped at once (later passes such as
    fold_batchnorm want the NHWC tensor to have a single reader)."""
    known = _views(im).get(x.name)
    if known is not None:
        if isinstance(arg, im.torch.fx.Node) and len(arg.users) == 1:
            _drop_back_conversion(im, x.name, known)
        return known
    n, c, length = x.shape
    nlc = im.transpose(x.name, (0, 2, 1), im.tmp("nlc"))
    return im.reshape(nlc, (n, 1, length, c), im.tmp("nhwc"))


def _drop_back_conversion(im, ncl: str, nhwc: str) -> None:
    g = im.g
    producers = g.producers()
    chain, name = [], ncl
    while name != nhwc:
        op = producers.get(name)
        if op is None or op.type not in (OpType.RESHAPE, OpType.TRANSPOSE):
            return
        chain.append(op)
        name = op.inputs[0]
    made = {o for op in chain for o in op.outputs}
    if any(i in made for op in g.ops if op not in chain for i in op.inputs):
        return  # something else reads an intermediate
    for op in chain:
        g.ops.remove(op)
        del g.tensors[op.outputs[0]]
    del _views(im)[ncl]


def _from_nhwc_view(im, name: str, out_shape) -> str:
    """NHWC [N, 1, L, C] -> [N, C, L] (torch's order)."""
    n, c, length = out_shape
    nlc = im.reshape(name, (n, length, c), im.tmp("nlc_out"))
    out = im.transpose(nlc, (0, 2, 1), im.node.name)
    _views(im)[out] = name
    return out


def _check_3d(im, x, what):
    if len(x.shape) != 3:
        raise im.unsupported(f"{what} expects a 3-D [N, C, L] input, got {len(x.shape)}-D")


def conv1d(im, node, a):
    x = im.act(a["input"])
    _check_3d(im, x, "1-D convolution")
    w = im.const(a["weight"], "the convolution weight")  # [Cout, Cin / groups, K]
    b = None if a.get("bias") is None else im.const(a["bias"], "the convolution bias")
    stride = int((a.get("stride") or [1])[0]) if not isinstance(a.get("stride"), int) else int(a["stride"])
    dil = int((a.get("dilation") or [1])[0]) if not isinstance(a.get("dilation"), int) else int(a["dilation"])
    groups = int(a.get("groups") or 1)
    k = w.shape[2]
    pad = a.get("padding") or [0]
    if isinstance(pad, str):
        if pad == "valid":
            lo = hi = 0
        elif pad == "same":
            total = dil * (k - 1)
            lo, hi = total // 2, total - total // 2
        else:
            raise im.unsupported(f"padding mode {pad!r}")
    else:
        lo = hi = int(pad if isinstance(pad, int) else pad[0])
    cin, cout = x.shape[1], w.shape[0]
    attrs = {"strides": (1, stride), "dilations": (1, dil), "pads": (0, lo, 0, hi)}
    if groups == 1:
        op, filt = OpType.CONV_2D, w.transpose(0, 2, 1)[:, None]  # [Cout, 1, K, Cin]
    elif groups == cin and w.shape[1] == 1 and cout % cin == 0:
        op, filt = OpType.DEPTHWISE_CONV_2D, w[:, 0, :].T[None, None]  # [1, 1, K, Cout]
        attrs["depth_multiplier"] = cout // cin
    else:
        raise im.unsupported(f"grouped 1-D convolution (groups={groups} with {cin} input channels) is not "
                             "supported; only groups=1 and depthwise (groups=in_channels)")
    out = im.out_shape()
    ins = [_to_nhwc_view(im, x, a["input"]), im.const_tensor(np.ascontiguousarray(filt), f"{node.name}_filter")]
    if b is not None:
        ins.append(im.const_tensor(b.reshape(-1), f"{node.name}_bias"))
    y = im.emit(op, ins, (out[0], 1, out[2], out[1]), attrs, hint=im.tmp("conv2d"))
    return im.result(_from_nhwc_view(im, y, out))


def _one(v, default):
    if v is None or (isinstance(v, (list, tuple)) and not v):
        return default
    return int(v if isinstance(v, int) else v[0])


def _pool1d(im, node, a, op: OpType):
    x = im.act(a["self"])
    _check_3d(im, x, "1-D pooling")
    k = _one(a.get("kernel_size"), 1)
    s = _one(a.get("stride"), k)
    p = _one(a.get("padding"), 0)
    if _one(a.get("dilation"), 1) != 1:
        raise im.unsupported("dilated 1-D pooling is not supported")
    out = im.out_shape()
    extra = max(0, (out[2] - 1) * s + k - (x.shape[2] + 2 * p))  # ceil_mode's partial window
    src = _to_nhwc_view(im, x, a["self"])
    pads = (0, p, 0, p + extra)
    if op is OpType.AVERAGE_POOL_2D:
        if extra:
            raise im.unsupported("avg_pool1d with ceil_mode=True that adds a partial window is not supported")
        if a.get("divisor_override"):
            raise im.unsupported("avg_pool1d with divisor_override is not supported")
        if p and bool(a.get("count_include_pad", True)):
            # torch averages over the zero padding too: pad explicitly, then pool VALID.
            n, c, length = x.shape
            src = im.emit(OpType.PAD, [src], (n, 1, length + 2 * p, c),
                          {"pads": (0, 0, 0, 0, p, p, 0, 0), "value": 0.0}, hint=im.tmp("pad"))
            pads = (0, 0, 0, 0)
    attrs = {"kernel": (1, k), "strides": (1, s), "pads": pads}
    y = im.emit(op, [src], (out[0], 1, out[2], out[1]), attrs, hint=im.tmp("pool"))
    return _from_nhwc_view(im, y, out)


def max_pool1d(im, node, a):
    return im.result(_pool1d(im, node, a, OpType.MAX_POOL_2D))


def max_pool1d_with_indices(im, node, a):
    ti = _helpers()
    name = _pool1d(im, node, a, OpType.MAX_POOL_2D)
    return (ti._Val(name, tuple(int(d) for d in node.meta["val"][0].shape)), ti._Unusable(str(node.target), 1))


def avg_pool1d(im, node, a):
    return im.result(_pool1d(im, node, a, OpType.AVERAGE_POOL_2D))


def _adaptive1d(im, node, a, op: OpType, out) -> str:
    x = im.act(a["self"])
    _check_3d(im, x, "1-D adaptive pooling")
    length, o = x.shape[2], out[2]
    if o == length:
        return x.name
    if o == 1 and op is OpType.AVERAGE_POOL_2D:  # global average: MEAN over L of the NHWC view
        y = im.emit(OpType.MEAN, [_to_nhwc_view(im, x, a["self"])], (out[0], 1, 1, out[1]),
                    {"axes": (2,), "keep_dims": True}, hint=im.tmp("mean"))
        return _from_nhwc_view(im, y, out)
    if length % o:
        raise im.unsupported(f"adaptive pooling from {length} to {o} (sizes must divide evenly)")
    k = length // o
    y = im.emit(op, [_to_nhwc_view(im, x, a["self"])], (out[0], 1, o, out[1]), {"kernel": (1, k), "strides": (1, k)},
                hint=im.tmp("pool"))
    return _from_nhwc_view(im, y, out)


def adaptive_avg_pool1d(im, node, a):
    return im.result(_adaptive1d(im, node, a, OpType.AVERAGE_POOL_2D, im.out_shape()))


def adaptive_max_pool1d(im, node, a):
    ti = _helpers()
    out = tuple(int(d) for d in node.meta["val"][0].shape)
    return (ti._Val(_adaptive1d(im, node, a, OpType.MAX_POOL_2D, out), out), ti._Unusable(str(node.target), 1))


def batch_norm_1d(im, ins: list[str], x, eps: float, arg=None) -> str:
    """BatchNorm1d over [N, C, L] (``ins``: input, gamma, beta, mean, var): BATCH_NORM on
    the NHWC view, so it folds into the 1-D convolution before it."""
    n, c, length = x.shape
    y = im.emit(OpType.BATCH_NORM, [_to_nhwc_view(im, x, arg)] + ins[1:], (n, 1, length, c), {"epsilon": eps},
                hint=im.tmp("bn"))
    return _from_nhwc_view(im, y, x.shape)
