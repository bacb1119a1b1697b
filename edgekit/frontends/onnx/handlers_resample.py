"""ONNX -> IR: Resize / Upsample, ConvTranspose, and 1-D Conv / pooling.

- Resize (opsets 10-19) and Upsample (7-9): the source pixel ONNX picks for each output
  row and column (its ``coordinate_transformation_mode`` and ``nearest_mode``, computed
  here in float32) is compared with what TFLite's RESIZE_NEAREST_NEIGHBOR picks under
  each of its flag settings (none, ``align_corners``, ``half_pixel_centers``); the first
  equal one is used, else the node is refused naming the modes. ``linear``: asymmetric
  -> no flags, ``align_corners`` -> align_corners, ``half_pixel`` (and
  ``pytorch_half_pixel`` with outputs larger than 1) -> half_pixel_centers, each when
  ONNX's scale equals TFLite's ``in / out`` (else refused; give ``sizes``). ``cubic``,
  antialiasing, ``tf_crop_and_resize`` and resizing N or C are refused. ``scales`` and
  ``sizes`` must be constant after folding. A 3-D ``[N, C, L]`` input is resized as a
  ``1 x L`` image on the NHWC view below.
- ConvTranspose (2-D, group 1, dilation 1): TRANSPOSE_CONV, weights
  ``[Cin, Cout, KH, KW]`` -> ``[Cout, KH, KW, Cin]``; explicit pads, ``output_padding``,
  ``auto_pad`` and ``output_shape`` as onnxruntime computes them.
- Conv / ConvTranspose / MaxPool / AveragePool / GlobalMaxPool on 3-D ``[N, C, L]``
  input run as their 2-D forms on an NHWC ``[N, 1, L, C]`` view (a TRANSPOSE and a
  RESHAPE each way, which cancel between consecutive 1-D layers); 4-D input goes to the
  2-D converters of ``handlers``.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx import handlers  # noqa: F401  (the 2-D converters wrapped below)
from edgekit.frontends.onnx.convert import _HANDLERS, Converter, handler
from edgekit.frontends.onnx.values import Act, QConst
from edgekit.ir.dtypes import DType
from edgekit.ir.ops import OpType
from edgekit.reference.resample_kernels import nearest_indices

F32 = np.float32
_FLAGS = ((False, False), (True, False), (False, True))  # (align_corners, half_pixel_centers)


# ------------------------------------------------------------------------------ Resize


def _onnx_source_coords(mode: str, out_size: int, in_size: int, scale: F32) -> np.ndarray:
    """x_original of each output index (the ONNX spec's formulas, float32)."""
    x = np.arange(out_size, dtype=F32)
    if mode == "asymmetric":
        return (x / scale).astype(F32)
    if mode == "align_corners":  # the resized length is in * scale, unrounded (the spec's reference)
        length = F32(in_size) * scale
        return (np.zeros_like(x) if length == 1
                else (x * F32(in_size - 1) / (length - F32(1))).astype(F32))
    if mode == "half_pixel":
        return ((x + F32(0.5)) / scale - F32(0.5)).astype(F32)
    if mode == "pytorch_half_pixel":
        return (np.zeros_like(x) if out_size == 1 else ((x + F32(0.5)) / scale - F32(0.5))).astype(F32)
    if mode == "tf_half_pixel_for_nn":
        return ((x + F32(0.5)) / scale).astype(F32)
    if mode == "half_pixel_symmetric":
        adj = F32(out_size) / (scale * F32(in_size))
        center = F32(in_size) / F32(2)
        offset = center * (F32(1) - adj)
        return (offset + (x + F32(0.5)) / scale - F32(0.5)).astype(F32)
    raise ValueError(mode)


def _onnx_nearest(coords: np.ndarray, nearest_mode: str, in_size: int, scale: F32) -> np.ndarray:
    if nearest_mode == "simple":
        nearest_mode = "ceil" if scale < 1 else "floor"
    if nearest_mode == "floor":
        idx = np.floor(coords)
    elif nearest_mode == "ceil":
        idx = np.ceil(coords)
    elif nearest_mode == "round_prefer_ceil":
        idx = np.floor(coords + F32(0.5))
    elif nearest_mode == "round_prefer_floor":
        idx = np.ceil(coords - F32(0.5))
    else:
        raise ValueError(nearest_mode)
    return np.clip(idx.astype(np.int64), 0, in_size - 1)


def _resize_params(c: Converter, node, a, xs, mode: str, coord: str, scales, sizes):
    """(out_hw, the ONNX float32 scale of H and W)."""
    rank = len(xs)
    axes = a.get("axes")
    if axes is not None:
        axes = [int(v) % rank for v in axes]
    else:
        axes = list(range(rank))
    if sizes is not None and np.asarray(sizes).size:
        sizes = [int(v) for v in np.asarray(sizes).reshape(-1)]
        if len(sizes) != len(axes):
            raise c.malformed(f"sizes {sizes} do not match axes {axes}")
        policy = a.get("keep_aspect_ratio_policy", "stretch")
        if isinstance(policy, bytes):
            policy = policy.decode()
        if policy != "stretch":
            raise c.unsupported(f"keep_aspect_ratio_policy={policy!r} (only 'stretch')")
        full = list(xs)
        for ax, s in zip(axes, sizes):
            full[ax] = s
        onnx_scales = [F32(o) / F32(i) for o, i in zip(full, xs)]
    elif scales is not None and np.asarray(scales).size:
        sc = [float(v) for v in np.asarray(scales, np.float32).reshape(-1)]
        if len(sc) != len(axes):
            raise c.malformed(f"scales {sc} do not match axes {axes}")
        per = [1.0] * rank
        for ax, s in zip(axes, sc):
            per[ax] = s
        if any(s <= 0 for s in per):
            raise c.malformed(f"scales {sc} must be positive")
        full = [int(np.floor(F32(i) * F32(s))) for i, s in zip(xs, per)]
        onnx_scales = [F32(s) for s in per]
    else:
        raise c.malformed("Resize needs constant scales or sizes")
    if full[0] != xs[0] or full[1] != xs[1]:
        raise c.unsupported(f"resizing the batch or channel axis (from {list(xs)} to {full}); only H and W")
    if any(s <= 0 for s in full):
        raise c.malformed(f"output size {full} is empty")
    return (full[2], full[3]), (onnx_scales[2], onnx_scales[3])


def _convert_resize(c: Converter, node, x: str, mode: str, coord: str, nearest_mode: str, scales, sizes, a):
    one_d = c.g.tensor(x).rank == 3
    if one_d:  # [N, C, L]: a 1 x L resize of the NHWC view [N, 1, L, C]
        x = _to_view(c, x)
        a = dict(a)
        if a.get("axes") is not None:
            a["axes"] = [int(v) % 3 + (1 if int(v) % 3 == 2 else 0) for v in a["axes"]]
        if scales is not None and np.asarray(scales).size == 3 and a.get("axes") is None:
            scales = np.insert(np.asarray(scales, np.float32).reshape(-1), 2, 1.0)
        if sizes is not None and np.asarray(sizes).size == 3 and a.get("axes") is None:
            sizes = np.insert(np.asarray(sizes, np.int64).reshape(-1), 2, 1)
    xs = c.sshape(x)
    if len(xs) != 4:
        raise c.unsupported(f"only 1-D and 2-D resizing (3-D or 4-D input) is supported; the input has rank "
                            f"{len(xs)}")
    (oh, ow), (sh, sw) = _resize_params(c, node, a, xs, mode, coord, scales, sizes)
    in_hw = xs[2:]
    if mode == "nearest":
        want = [_onnx_nearest(_onnx_source_coords(coord, o, i, s), nearest_mode, i, s)
                for o, i, s in zip((oh, ow), in_hw, (sh, sw))]
        for align, half in _FLAGS:
            if all(np.array_equal(w, nearest_indices(i, o, align, half))
                   for w, i, o in zip(want, in_hw, (oh, ow))):
                break
        else:
            raise c.unsupported(f"nearest resize with coordinate_transformation_mode={coord!r} and "
                                f"nearest_mode={nearest_mode!r} picks source pixels TFLite's "
                                "RESIZE_NEAREST_NEIGHBOR cannot (for these sizes)")
        op = OpType.RESIZE_NEAREST_NEIGHBOR
    else:
        ok = True
        for o, i, s in zip((oh, ow), in_hw, (sh, sw)):
            if coord in ("asymmetric", "half_pixel") or (coord == "pytorch_half_pixel" and o > 1):
                ok &= F32(1) / s == F32(i) / F32(o) or s == F32(o) / F32(i)
            elif coord == "align_corners":
                ok &= F32(i) * s == F32(o)
            else:
                ok = False
        if not ok:
            raise c.unsupported(f"linear resize with coordinate_transformation_mode={coord!r} and scales "
                                f"{[float(sh), float(sw)]}: TFLite's RESIZE_BILINEAR computes positions "
                                "from in / out; give sizes, or use asymmetric, align_corners or half_pixel")
        align = coord == "align_corners"
        half = coord in ("half_pixel", "pytorch_half_pixel")
        op = OpType.RESIZE_BILINEAR
    attrs = {"size": (oh, ow), "align_corners": align, "half_pixel_centers": half}
    if one_d:
        y = c.emit(op, [x], attrs)
        c.set_out(node, 0, Act(_from_view(c, y, c.out_name(node.output[0]))))
        return
    c.set_out(node, 0, Act(c.emit(op, [x], attrs, out=c.out_name(node.output[0]))))


def _str(a, key, default):
    v = a.get(key, default)
    return v.decode() if isinstance(v, bytes) else str(v)


@handler("Resize")
def _resize(c: Converter, node, a):
    x = c.act_inp(node, 0)
    mode = _str(a, "mode", "nearest")
    default_coord = "asymmetric" if c.opset < 11 else "half_pixel"
    coord = _str(a, "coordinate_transformation_mode", default_coord)
    # before opset 11 there was no nearest_mode: onnxruntime floors when upsampling and
    # takes the ceiling when downsampling ("simple")
    nearest_mode = _str(a, "nearest_mode", "round_prefer_floor") if c.opset >= 11 else "simple"
    if mode not in ("nearest", "linear"):
        raise c.unsupported(f"mode={mode!r} (only nearest and linear)")
    if a.get("antialias", 0):
        raise c.unsupported("antialias=1")
    if coord == "tf_crop_and_resize":
        raise c.unsupported("coordinate_transformation_mode='tf_crop_and_resize'")
    if coord not in ("asymmetric", "align_corners", "half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                     "half_pixel_symmetric"):
        raise c.unsupported(f"coordinate_transformation_mode={coord!r}")
    if c.opset < 11:
        scales, sizes = c.const_inp(node, 1, "the scales"), None
    else:
        scales = c.const_inp(node, 2, "the scales", required=False)
        sizes = c.const_inp(node, 3, "the sizes", required=False)
    _convert_resize(c, node, x, mode, coord, nearest_mode, scales, sizes, a)


@handler("Upsample")
def _upsample(c: Converter, node, a):
    x = c.act_inp(node, 0)
    mode = _str(a, "mode", "nearest")
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear"):
        raise c.unsupported(f"mode={mode!r} (only nearest and linear)")
    scales = a.get("scales") if c.opset < 9 else c.const_inp(node, 1, "the scales")
    # Upsample's nearest is floor(x / scale) (onnxruntime's "simple" rule; it only upsamples)
    _convert_resize(c, node, x, mode, "asymmetric", "simple", scales, None, {})


# ------------------------------------------------------------------------------ ConvTranspose


@handler("ConvTranspose")
def _conv_transpose(c: Converter, node, a):
    if c.g.tensor(c.act_inp(node, 0)).rank == 3:
        return _one_d(c, node, a, _conv_transpose_2d, "ConvTranspose")
    return _conv_transpose_2d(c, node, a)


def _conv_transpose_2d(c: Converter, node, a):
    x = c.act_inp(node, 0)
    xs = c.sshape(x)
    if len(xs) != 4:
        raise c.unsupported(f"only 2-D transposed convolution (4-D NCHW input) is supported; the input has "
                            f"rank {len(xs)}")
    wv = c.inp(node, 1)
    if isinstance(wv, Act):
        raise c.unsupported("the weights must be a constant (here they are computed at run time)")
    wshape = (wv.q if isinstance(wv, QConst) else np.asarray(wv)).shape
    if len(wshape) != 4:
        raise c.malformed(f"weights of shape {list(wshape)}, expected [C, M/group, KH, KW]")
    cin, cout, kh, kw = wshape
    if cin != xs[1]:
        raise c.malformed(f"weights take {cin} input channels, the input has {xs[1]}")
    if int(a.get("group", 1)) != 1:
        raise c.unsupported(f"grouped transposed convolution (group={a.get('group')})")
    if c.ints(a, "dilations", (1, 1), 2) != (1, 1):
        raise c.unsupported("dilated transposed convolution")
    if "kernel_shape" in a and tuple(a["kernel_shape"]) != (kh, kw):
        raise c.malformed(f"kernel_shape {list(a['kernel_shape'])} does not match the weights {list(wshape)}")
    strides = c.ints(a, "strides", (1, 1), 2)
    out_pad = c.ints(a, "output_padding", (0, 0), 2)
    auto = _str(a, "auto_pad", "NOTSET")
    begin, end = [0, 0], [0, 0]
    if "output_shape" in a:
        want = [int(v) for v in a["output_shape"]][-2:]
        for i in range(2):
            total = strides[i] * (xs[2 + i] - 1) + out_pad[i] + (kh, kw)[i] - want[i]
            if total < 0:  # larger than the full result: extra rows at the end (bias only)
                begin[i], end[i] = 0, total
            elif auto == "SAME_UPPER":
                begin[i], end[i] = total // 2, total - total // 2
            else:
                begin[i], end[i] = total - total // 2, total // 2
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        for i in range(2):
            total = strides[i] * (xs[2 + i] - 1) + out_pad[i] + (kh, kw)[i] - xs[2 + i] * strides[i]
            total = max(total, 0)
            if auto == "SAME_UPPER":
                begin[i], end[i] = total // 2, total - total // 2
            else:
                begin[i], end[i] = total - total // 2, total // 2
    elif auto in ("NOTSET", "VALID"):
        p = c.ints(a, "pads", (0, 0, 0, 0)) if auto == "NOTSET" else (0, 0, 0, 0)
        if len(p) != 4:
            raise c.malformed(f"pads {list(p)} must have 4 values")
        begin, end = [p[0], p[1]], [p[2], p[3]]
    else:
        raise c.malformed(f"unknown auto_pad {auto!r}")
    if min(begin) < 0:
        raise c.unsupported(f"negative pads {begin + end}")
    pads = (begin[0], begin[1], end[0] - out_pad[0], end[1] - out_pad[1])
    oh = (xs[2] - 1) * strides[0] + kh - pads[0] - pads[2]
    ow = (xs[3] - 1) * strides[1] + kw - pads[1] - pads[3]
    base_name = c.node_name()
    # [Cin, Cout, KH, KW] -> [Cout, KH, KW, Cin]; a DequantizeLinear'd weight keeps its int8 form
    # (its per-channel axis 1 becomes 0) for the QDQ rewrite (qdq.py)
    inputs = [x, handlers._weights(c, wv, (1, 2, 3, 0), f"{base_name}_filter", "weights")]
    b = c.inp(node, 2, required=False)
    if b is not None:
        inputs.append(handlers._bias(c, b, cout, f"{base_name}_bias"))
    attrs = {"output_shape": (xs[0], oh, ow, cout), "strides": strides, "pads": pads}
    c.set_out(node, 0, Act(c.emit(OpType.TRANSPOSE_CONV, inputs, attrs, out=c.out_name(node.output[0]),
                                  dtype=DType.FLOAT32)))


# ------------------------------------------------------------------------------ 1-D layers


def _to_view(c: Converter, x: str) -> str:
    n, ch, length = c.g.tensor(x).shape
    t = c.emit(OpType.TRANSPOSE, [x], {"perm": (0, 2, 1)})
    return c.emit(OpType.RESHAPE, [t], {"shape": (n, 1, length, ch)})


def _from_view(c: Converter, y: str, out: str) -> str:
    n, _, length, ch = c.g.tensor(y).shape
    r = c.emit(OpType.RESHAPE, [y], {"shape": (n, length, ch)})
    return c.emit(OpType.TRANSPOSE, [r], {"perm": (0, 2, 1)}, out=out)


class _Node2d:
    """A 1-D node's attributes as the 2-D converter reads them (H of size 1)."""

    def __init__(self, node, a):
        self.node, self.a = node, dict(a)
        a2 = self.a
        for key, fill in (("kernel_shape", 1), ("strides", 1), ("dilations", 1), ("output_padding", 0),
                          ("output_shape", 1)):
            if key in a2:
                a2[key] = [fill] + [int(v) for v in a2[key]]
        if "pads" in a2:
            p = [int(v) for v in a2["pads"]]
            if len(p) == 2:
                a2["pads"] = [0, p[0], 0, p[1]]


def _one_d(c: Converter, node, a, two_d, what: str):
    """Run the 2-D converter ``two_d`` on the NHWC view of a 3-D input."""
    x = c.act_inp(node, 0)
    if c.g.tensor(x).rank != 3:
        raise c.unsupported(f"{what} on a rank-{c.g.tensor(x).rank} input (1-D and 2-D are supported)")
    if node.op_type == "MaxPool" and c.used(node, 1):
        raise c.unsupported("the Indices output of MaxPool")
    view = _to_view(c, x)
    env_in = node.input[0]
    saved = c.env.get(env_in)
    c.env[env_in] = Act(view)
    fake_out = c.new_name(f"{c.node_name()}_view_out")
    proxy = _ProxyNode(node, fake_out)
    try:
        if node.op_type in ("Conv", "ConvTranspose"):
            w = c.inp(node, 1)
            if isinstance(w, Act):
                raise c.unsupported("the weights must be constant")
            c.env[_ProxyNode.W] = _expand_weights(c, w)
        two_d(c, proxy, _Node2d(node, a).a)
    finally:
        c.env[env_in] = saved
        c.env.pop(_ProxyNode.W, None)
    y = c.env.pop(fake_out)
    c.set_out(node, 0, Act(_from_view(c, y.name, c.out_name(node.output[0]))))


class _ProxyNode:
    """The node as the 2-D converter sees it: its output renamed, Conv weights with an H axis."""

    W = "\x00edgekit_conv1d_weights"

    def __init__(self, node, out: str):
        self.op_type, self.name = node.op_type, node.name
        inputs = list(node.input)
        if node.op_type in ("Conv", "ConvTranspose") and len(inputs) > 1:
            inputs[1] = self.W
        self.input = inputs
        self.output = [out] + [""] * (len(node.output) - 1)


def _expand_weights(c: Converter, w):
    if isinstance(w, QConst):
        return QConst(w.q[:, :, None, :], w.scale, w.zp, w.axis)
    w = np.asarray(w)
    if w.ndim != 3:
        raise c.malformed(f"1-D weights of shape {list(w.shape)}, expected 3-D")
    return w[:, :, None, :]


_CONV_2D, _POOL_2D = _HANDLERS["Conv"], _HANDLERS["MaxPool"]
_GLOBAL_AVG_2D, _GLOBAL_MAX_2D = _HANDLERS["GlobalAveragePool"], _HANDLERS["GlobalMaxPool"]


@handler("Conv")
def _conv(c: Converter, node, a):
    if c.g.tensor(c.act_inp(node, 0)).rank == 3:
        return _one_d(c, node, a, _CONV_2D, "Conv")
    return _CONV_2D(c, node, a)


@handler("MaxPool", "AveragePool")
def _pool(c: Converter, node, a):
    if c.g.tensor(c.act_inp(node, 0)).rank == 3:
        return _one_d(c, node, a, _POOL_2D, node.op_type)
    return _POOL_2D(c, node, a)


@handler("GlobalMaxPool")
def _global_max(c: Converter, node, a):
    if c.g.tensor(c.act_inp(node, 0)).rank == 3:
        return _one_d(c, node, a, _GLOBAL_MAX_2D, "GlobalMaxPool")
    return _GLOBAL_MAX_2D(c, node, a)

