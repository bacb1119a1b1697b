"""IR graph -> ONNX model: the inverse of the ONNX frontend.

Layout: ONNX's Conv and pooling operators work on NCHW, so inside the written graph
every 4-D run-time tensor is NCHW (the IR's NHWC tensor permuted by ``(0, 3, 1, 2)``);
tensors of every other rank keep the IR's axis order. Each IR op is written with its
axes, pads and weights re-laid out for that convention:

- conv filters OHWI -> OIHW; depthwise ``[1, KH, KW, C*M]`` -> ``[C*M, 1, KH, KW]``
  with ``group = C``; pads ``(top, left, bottom, right)`` are already ONNX's order
  ``[x1_begin, x2_begin, x1_end, x2_end]``;
- fused activations become a following Relu / Clip(0, 6) / Clip(-1, 1);
- ops that depend on element order (RESHAPE, FULLY_CONNECTED of a feature map) see
  the tensor in NHWC order through a Transpose, so the IR's flattening order is kept;
- constants broadcast against a 4-D tensor are re-laid out (``[C]`` -> ``[C, 1, 1]``).

Graph inputs and outputs: with ``layout="source"`` a 4-D input/output whose
``graph.metadata["io_layout"]`` entry is ``"NCHW"`` is exposed as NCHW (as in the
original ONNX / PyTorch model); every other one is exposed as the IR holds it (NHWC),
with a Transpose inside the graph. ``layout="ir"`` exposes every input/output in the
IR's layout.

int8 graphs are written in QDQ form: int8 tensors stay int8 between ops; each int8
op reads its inputs through DequantizeLinear (weights as int8 initializers with
per-axis scales on the ONNX weight's output-channel axis, biases as int32), computes
in float and writes its output through QuantizeLinear with the output's parameters.
Hybrid ops (float activations, int8 weights) are refused: run the
``dequantize_weights`` pass first.
"""

from __future__ import annotations

import os
from typing import Callable

import numpy as np

from edgekit.errors import BadInputError
from edgekit.files import write_atomic
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.ir.shapes_movement import MOVEMENT_OPS
from edgekit.backends.onnx.movement import emit_movement
from edgekit.backends.onnx.reduction import REDUCTION_OPS, emit_reduction, index_output
from edgekit.backends.onnx.recurrent import emit_lstm, emit_svdf
from edgekit.backends.onnx.resample import RESAMPLE_OPS, emit_resample
from edgekit.backends.onnx.elementwise import ELEMENTWISE_ONNX_OPS, emit_elementwise

__all__ = ["to_onnx", "write_onnx", "MIN_OPSET", "SUPPORTED_IR_OPS"]

MIN_OPSET = 13  # per-axis Softmax, Clip/Pad/Reshape bounds as inputs, per-axis DequantizeLinear

TO_NCHW = (0, 3, 1, 2)  # onnx_tensor = ir_tensor.transpose(TO_NCHW)
TO_NHWC = (0, 2, 3, 1)  # ir_tensor = onnx_tensor.transpose(TO_NHWC)
# IR axis a of a 4-D tensor sits at ONNX axis IR_TO_ONNX_AXIS[a] (H->2, W->3, C->1).
IR_TO_ONNX_AXIS = TO_NHWC

_ACT_BOUNDS = {"RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


def _compose(a, b) -> tuple[int, ...]:
    """The single permutation equal to transposing by ``a`` and then by ``b``."""
    return tuple(int(a[i]) for i in b)


def _inverse(p) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argsort(p))


def _onnx_layout(rank: int) -> tuple[int, ...]:
    """The permutation from IR axis order to the written graph's axis order."""
    return TO_NCHW if rank == 4 else tuple(range(rank))


def _order_preserving(shape, perm) -> bool:
    """True when transposing ``shape`` by ``perm`` keeps the elements' memory order
    (only size-1 axes move), so a following Reshape needs no Transpose."""
    moved = [p for p in perm if shape[p] != 1]
    return moved == sorted(moved)


class _Writer:
    def __init__(self, graph: Graph, opset: int, layout: str, dynamic_batch: bool):
        import onnx
        from onnx import TensorProto, helper, numpy_helper

        self.onnx, self.helper, self.numpy_helper, self.TP = onnx, helper, numpy_helper, TensorProto
        self.g = graph
        self.opset = opset
        self.layout = layout
        self.nodes: list = []
        self.inits: list = []
        self.used: set[str] = set(graph.tensors)
        self.used_nodes: set[str] = set()
        self.val: dict[str, str] = {}  # IR run-time tensor -> ONNX value (ONNX layout)
        self.target: dict[str, str] = {}  # IR tensor -> the ONNX name its producer writes
        self.cache: dict[tuple, str] = {}
        self.op: Op | None = None
        self.io_layout = dict(graph.metadata.get("io_layout", {}) or {})
        self.dynamic_batch = dynamic_batch and bool(graph.inputs) and all(
            graph.tensor(n).rank >= 1 and graph.tensor(n).shape[0] == 1 for n in graph.inputs)

    # -- names, nodes, initializers ----------------------------------------------
    def fresh(self, base: str) -> str:
        base = base or "t"
        name, k = base, 0
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return name

    def node(self, op_type: str, inputs: list[str], out: str | None = None, base: str | None = None,
             **attrs) -> str:
        """Append one ONNX node; returns its (single) output name."""
        prefix = self.op.name if self.op is not None else "io"
        if out is None:
            out = self.fresh(f"{base or prefix}_{op_type.lower()}")
        name = f"{prefix}/{op_type}"
        k = 0
        while name in self.used_nodes:
            k += 1
            name = f"{prefix}/{op_type}_{k}"
        self.used_nodes.add(name)
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    def init(self, arr: np.ndarray, base: str) -> str:
        name = self.fresh(base)
        self.inits.append(self.numpy_helper.from_array(np.require(arr, requirements="C"), name))
        return name

    def scalar(self, value, dtype, base: str) -> str:
        key = ("scalar", np.dtype(dtype).str, repr(value))
        if key not in self.cache:
            self.cache[key] = self.init(np.asarray(value, dtype=dtype), base)
        return self.cache[key]

    def ints(self, values, base: str) -> str:
        key = ("ints", tuple(int(v) for v in values))
        if key not in self.cache:
            self.cache[key] = self.init(np.asarray(values, dtype=np.int64).reshape(-1), base)
        return self.cache[key]

    def unsupported(self, detail: str) -> BadInputError:
        op = self.op
        where = f"op {op.name!r} ({op.type.value})" if op is not None else f"graph {self.g.name!r}"
        return BadInputError(f"ONNX export: {where}: {detail}")

    # -- values -----------------------------------------------------------------------
    def qparams(self, t, base: str) -> tuple[str, str, int | None]:
        """(scale, zero point, axis) initializers of a quantized tensor's parameters."""
        q = t.quant
        if q is None:
            raise self.unsupported(f"tensor {t.name!r} is {t.dtype.value} without quantization parameters")
        zdt = {DType.INT8: np.int8, DType.INT32: np.int32}.get(t.dtype)
        if zdt is None:
            raise self.unsupported(f"tensor {t.name!r}: {t.dtype.value} tensors are not supported "
                                   "(float32, and int8 in QDQ form)")
        if q.is_per_tensor or len(q.scale) == 1:
            return (self.scalar(np.float32(q.scale[0]), np.float32, f"{base}_scale"),
                    self.scalar(int(q.zero_point[0]), zdt, f"{base}_zero_point"), None)
        key = ("qparams", t.name)
        if key not in self.cache:
            self.cache[key] = (self.init(q.scales.astype(np.float32), f"{base}_scale"),
                               self.init(q.zero_points.astype(zdt), f"{base}_zero_point"))
        s, z = self.cache[key]
        return s, z, q.axis

    def raw(self, name: str) -> str:
        """The ONNX value of an IR tensor as stored (int8 stays int8), in ONNX layout."""
        t = self.g.tensor(name)
        if t.is_const:
            return self.const(name, expand=0, perm=_onnx_layout(t.rank), strip=0, dequantize=False)
        return self.val[name]

    def f(self, name: str) -> str:
        """The float32 ONNX value of an IR tensor, in ONNX layout (int8 goes through
        DequantizeLinear)."""
        t = self.g.tensor(name)
        if t.is_const:
            return self.const(name, expand=0, perm=_onnx_layout(t.rank), strip=0)
        if t.dtype is DType.FLOAT32:
            return self.val[name]
        if t.dtype is DType.INT8:
            key = ("dq", name)
            if key not in self.cache:
                s, z, axis = self.qparams(t, name)
                if axis is not None:
                    raise self.unsupported(f"run-time tensor {name!r} is quantized per axis; activations "
                                           "must be quantized per tensor")
                self.cache[key] = self.node("DequantizeLinear", [self.val[name], s, z],
                                            out=self.fresh(f"{name}_dequantized"))
            return self.cache[key]
        raise self.unsupported(f"tensor {name!r} is {t.dtype.value}; the ONNX writer handles float32 "
                               "and int8 tensors")

    def const(self, name: str, expand: int, perm, strip: int, dequantize: bool = True) -> str:
        """An IR constant as an ONNX initializer: given ``expand`` leading 1-axes,
        transposed by ``perm``, its first ``strip`` (size-1) axes dropped; int8/int32
        constants are written as integers followed by a DequantizeLinear."""
        t = self.g.tensor(name)
        perm = tuple(perm)
        key = ("const", name, expand, perm, strip, dequantize)
        if key in self.cache:
            return self.cache[key]
        arr = t.data.reshape((1,) * expand + t.data.shape)
        arr = np.ascontiguousarray(arr.transpose(perm)) if arr.ndim > 1 else arr
        arr = arr.reshape(arr.shape[strip:])
        if t.dtype is DType.FLOAT32 or not dequantize:
            if t.dtype not in (DType.FLOAT32, DType.INT8, DType.INT32, DType.INT64):
                raise self.unsupported(f"constant {name!r} of type {t.dtype.value}")
            out = self.init(arr.astype(t.dtype.np), name)
        elif t.dtype in (DType.INT8, DType.INT32):
            s, z, axis = self.qparams(t, name)
            q = self.init(arr.astype(t.dtype.np), f"{name}_quantized")
            extra = {}
            if axis is not None:
                a = axis + expand
                a = perm.index(a) if len(perm) > 1 else a
                extra["axis"] = a - strip
            out = self.node("DequantizeLinear", [q, s, z], out=self.fresh(name), **extra)
        else:
            raise self.unsupported(f"constant {name!r} of type {t.dtype.value}")
        self.cache[key] = out
        return out

    def weight(self, name: str, perm) -> str:
        """A weight tensor re-laid out by ``perm`` (float32 value; int8 through DQ)."""
        t = self.g.tensor(name)
        if not t.is_const:
            raise self.unsupported(f"weights {name!r} are computed at run time; only constant weights "
                                   "are supported")
        return self.const(name, expand=0, perm=perm, strip=0)

    def bias(self, name: str | None, n: int, x: str, w: str) -> str | None:
        if name is None:
            return None
        t = self.g.tensor(name)
        if not t.is_const:
            raise self.unsupported(f"bias {name!r} is computed at run time; only a constant bias "
                                   "is supported")
        if t.dtype is DType.INT32 and t.quant is None:
            # TFLite's int8 rule: bias scale = input scale x weight scale (per channel).
            xs = self.g.tensor(x).quant
            wq = self.g.tensor(w).quant
            if xs is None or wq is None:
                raise self.unsupported(f"int32 bias {name!r} without quantization parameters")
            scales = (np.float64(xs.scale[0]) * np.broadcast_to(wq.scales.astype(np.float64), (n,))
                      ).astype(np.float32)
            key = ("bias", name)
            if key not in self.cache:
                q = self.init(t.data.astype(np.int32), f"{name}_quantized")
                s = self.init(scales, f"{name}_scale")
                z = self.init(np.zeros(n, np.int32), f"{name}_zero_point")
                self.cache[key] = self.node("DequantizeLinear", [q, s, z], out=self.fresh(name), axis=0)
            return self.cache[key]
        return self.const(name, expand=0, perm=(0,), strip=0)

    # -- graph ---------------------------------------------------------------------
    def exposed_nchw(self, name: str) -> bool:
        t = self.g.tensor(name)
        return t.rank == 4 and self.layout == "source" and self.io_layout.get(name) == "NCHW"

    def value_info(self, name: str, shape, dtype: DType):
        elem = {DType.FLOAT32: self.TP.FLOAT, DType.INT8: self.TP.INT8, DType.INT32: self.TP.INT32}.get(dtype)
        if elem is None:
            raise self.unsupported(f"graph input/output {name!r} is {dtype.value}; inputs and outputs must "
                                   "be float32 or int8")
        dims = list(shape)
        if self.dynamic_batch and dims and dims[0] == 1:
            dims[0] = "N"
        return self.helper.make_tensor_value_info(name, elem, dims)

    def build(self):
        g = self.g
        if len(set(g.outputs)) != len(g.outputs):
            raise self.unsupported("a tensor is listed twice as a graph output")
        inputs, outputs = [], []
        for name in g.inputs:
            t = g.tensor(name)
            if t.dtype is DType.INT8 and t.quant is None:
                raise self.unsupported(f"int8 input {name!r} has no quantization parameters")
            if t.rank == 4 and not self.exposed_nchw(name):
                inputs.append(self.value_info(name, t.shape, t.dtype))
                self.val[name] = self.node("Transpose", [name], out=self.fresh(f"{name}_nchw"),
                                           perm=list(TO_NCHW))
            else:
                inputs.append(self.value_info(name, [t.shape[p] for p in _onnx_layout(t.rank)], t.dtype))
                self.val[name] = name
        for name in g.outputs:
            t = g.tensor(name)
            if name in g.inputs or t.is_const:
                continue
            if t.rank == 4 and not self.exposed_nchw(name):
                self.target[name] = self.fresh(f"{name}_nchw")
        for op in g.ops:
            self.op = op
            self.emit(op)
        self.op = None
        for name in g.outputs:
            t = g.tensor(name)
            nchw = self.exposed_nchw(name)
            if name in g.inputs:
                raise self.unsupported(f"graph input {name!r} is also a graph output")
            if t.is_const:
                src = self.raw(name)
                if t.rank == 4 and not nchw:
                    self.node("Transpose", [src], out=name, perm=list(TO_NHWC))
                else:
                    self.node("Identity", [src], out=name)
            elif t.rank == 4 and not nchw:
                self.node("Transpose", [self.val[name]], out=name, perm=list(TO_NHWC))
            shape = [t.shape[p] for p in TO_NCHW] if nchw else list(t.shape)
            outputs.append(self.value_info(name, shape, t.dtype))
        graph = self.helper.make_graph(self.nodes, g.name or "model", inputs, outputs, self.inits)
        return graph

    # -- ops ---------------------------------------------------------------------------
    def emit(self, op: Op) -> None:
        g = self.g
        try:
            attrs = normalize_attrs(op.type, op.attrs)
        except ValueError as exc:
            raise self.unsupported(str(exc)) from None
        if op.type in MOVEMENT_OPS:  # SPLIT / UNPACK have several outputs
            emit_movement(self, op, attrs)
            return
        if len(op.outputs) != 1:
            raise self.unsupported(f"{len(op.outputs)} outputs")
        out_name = op.outputs[0]
        out_t = g.tensor(out_name)
        target = self.target.get(out_name, out_name)
        start = len(self.nodes)
        in_t = g.tensor(op.inputs[0])

        if op.type is OpType.QUANTIZE:
            if out_t.dtype is not DType.INT8:
                raise self.unsupported(f"quantization to {out_t.dtype.value} (only int8)")
            s, z, _ = self.qparams(out_t, out_name)
            self.val[out_name] = self.node("QuantizeLinear", [self.f(op.inputs[0]), s, z], out=target)
            return
        if op.type is OpType.DEQUANTIZE:
            if out_t.dtype is not DType.FLOAT32:
                raise self.unsupported(f"dequantization to {out_t.dtype.value}")
            self.val[out_name] = self.finish(self.f(op.inputs[0]), start, target)
            return
        if out_t.dtype not in (DType.FLOAT32, DType.INT8) and not index_output(op, out_t.dtype):
            raise self.unsupported(f"output {out_name!r} is {out_t.dtype.value}; the ONNX writer handles "
                                   "float32 and int8 graphs")
        if op.type in (OpType.RESHAPE, OpType.TRANSPOSE) and in_t.dtype == out_t.dtype and (
                out_t.dtype is DType.FLOAT32 or in_t.quant == out_t.quant):
            # Pure data movement: on the stored values (int8 stays int8).
            y = self.movement(op, attrs, self.raw(op.inputs[0]))
            self.val[out_name] = self.finish(y, start, target)
            return
        if op.type in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED, OpType.TRANSPOSE_CONV):
            w = g.tensor(op.inputs[1])
            if in_t.dtype is DType.FLOAT32 and w.dtype is not DType.FLOAT32:
                raise self.unsupported(f"hybrid op: float activations with {w.dtype.value} weights "
                                       f"{w.name!r}; run the 'dequantize_weights' pass first "
                                       "(edgekit.ir.passes.run_passes(graph, ['dequantize_weights']))")
        fn = _EMITTERS.get(op.type)
        if fn is None:
            raise self.unsupported("this op has no ONNX lowering")
        y = fn(self, op, attrs)
        act = attrs.get("activation", "NONE")
        if out_t.dtype is DType.INT8:
            y = self.activation(y, act, None)
            s, z, _ = self.qparams(out_t, out_name)
            self.val[out_name] = self.node("QuantizeLinear", [y, s, z], out=target)
            return
        if act != "NONE":
            self.val[out_name] = self.activation(y, act, target)
            return
        self.val[out_name] = self.finish(y, start, target)

    def finish(self, y: str, start: int, target: str) -> str:
        """Make the op's result carry ``target``: rename the node that made it when this
        op made it, else copy with Identity."""
        if y == target:
            return y
        shared = set(v for v in self.cache.values() if isinstance(v, str))
        for node in self.nodes[start:]:
            if list(node.output) == [y] and y not in shared and \
                    not any(y in n.input for n in self.nodes[start:]):
                node.output[0] = target
                self.used.add(target)
                return target
        return self.node("Identity", [y], out=target)

    def activation(self, y: str, act: str, out: str | None) -> str:
        if act == "NONE":
            return y if out is None else self.node("Identity", [y], out=out)
        if act == "RELU":
            return self.node("Relu", [y], out=out)
        lo, hi = _ACT_BOUNDS[act]
        return self.node("Clip", [y, self.scalar(np.float32(lo), np.float32, "clip_min"),
                                  self.scalar(np.float32(hi), np.float32, "clip_max")], out=out)

    def to_ir_order(self, x: str, rank: int) -> str:
        """A 4-D ONNX (NCHW) value transposed back to the IR's NHWC order."""
        return self.node("Transpose", [x], perm=list(TO_NHWC)) if rank == 4 else x

    def reshape(self, x: str, shape) -> str:
        shape = [int(d) for d in shape]
        if self.dynamic_batch and shape:
            shape[0] = -1
        return self.node("Reshape", [x, self.ints(shape, "shape")])

    def movement(self, op: Op, attrs: dict, x: str) -> str:
        g = self.g
        in_shape = g.tensor(op.inputs[0]).shape
        out_shape = g.tensor(op.outputs[0]).shape
        rin, rout = len(in_shape), len(out_shape)
        if op.type is OpType.TRANSPOSE:
            perm = tuple(attrs["perm"])
            q = _compose(_compose(_inverse(_onnx_layout(rin)), perm), _onnx_layout(rout))
            if q == tuple(range(rin)):
                return self.node("Identity", [x])
            return self.node("Transpose", [x], perm=list(q))
        # RESHAPE: the IR reshapes in NHWC element order.
        if rin == 4 and not _order_preserving([in_shape[p] for p in TO_NCHW], TO_NHWC):
            x = self.node("Transpose", [x], perm=list(TO_NHWC))
        if rout == 4:
            mid = out_shape
            if _order_preserving(out_shape, TO_NCHW):
                return self.reshape(x, [out_shape[p] for p in TO_NCHW])
            y = self.reshape(x, mid)
            return self.node("Transpose", [y], perm=list(TO_NCHW))
        return self.reshape(x, out_shape)


# -- per-op lowerings (float32 semantics; int8 ops read DQ'd inputs and are requantized) --

def _conv(w: _Writer, op: Op, a: dict) -> str:
    g = w.g
    x = w.f(op.inputs[0])
    wt = g.tensor(op.inputs[1])
    if op.type is OpType.CONV_2D:
        cout, kh, kw, _ = wt.shape
        weights = w.weight(op.inputs[1], (0, 3, 1, 2))  # OHWI -> OIHW
        group = 1
    else:
        _, kh, kw, cout = wt.shape
        weights = w.weight(op.inputs[1], (3, 0, 1, 2))  # [1,KH,KW,C*M] -> [C*M,1,KH,KW]
        group = g.tensor(op.inputs[0]).shape[3]
    inputs = [x, weights]
    b = w.bias(op.input(2), cout, op.inputs[0], op.inputs[1])
    if b is not None:
        inputs.append(b)
    return w.node("Conv", inputs, kernel_shape=[kh, kw], strides=list(a["strides"]),
                  dilations=list(a["dilations"]), pads=list(a["pads"]), group=group)


def _fully_connected(w: _Writer, op: Op, a: dict) -> str:
    g = w.g
    xt = g.tensor(op.inputs[0])
    cout, k = g.tensor(op.inputs[1]).shape
    x = w.f(op.inputs[0])
    b = w.bias(op.input(2), cout, op.inputs[0], op.inputs[1])
    if a["keep_num_dims"]:
        x = w.to_ir_order(x, xt.rank)
        y = w.node("MatMul", [x, w.weight(op.inputs[1], (1, 0))])
        if b is not None:
            y = w.node("Add", [y, b])
        if xt.rank == 4:
            y = w.node("Transpose", [y], perm=list(TO_NCHW))
        return y
    if xt.rank == 4 and not _order_preserving([xt.shape[p] for p in TO_NCHW], TO_NHWC):
        x = w.to_ir_order(x, 4)  # the IR flattens in NHWC order
    if not (xt.rank == 2 and xt.shape[1] == k):
        x = w.node("Reshape", [x, w.ints([-1, k], "shape")])
    inputs = [x, w.weight(op.inputs[1], (0, 1))]
    if b is not None:
        inputs.append(b)
    return w.node("Gemm", inputs, transB=1)


def _pool(w: _Writer, op: Op, a: dict) -> str:
    kh, kw = a["kernel"]
    t, l, b, r = a["pads"]
    if max(t, b) >= kh or max(l, r) >= kw:
        raise w.unsupported(f"pads {list(a['pads'])} as large as the window {kh}x{kw} "
                            "(ONNX pools need pads smaller than the kernel)")
    x = w.f(op.inputs[0])
    common = dict(kernel_shape=[kh, kw], strides=list(a["strides"]), pads=list(a["pads"]))
    if op.type is OpType.AVERAGE_POOL_2D:
        # The IR averages over the in-bounds elements of each window.
        return w.node("AveragePool", [x], count_include_pad=0, **common)
    return w.node("MaxPool", [x], **common)


def _binary(w: _Writer, op: Op, a: dict) -> str:
    g = w.g
    rout = g.tensor(op.outputs[0]).rank
    ts = [g.tensor(n) for n in op.inputs[:2]]
    runtime4 = [t.rank == 4 and not t.is_const for t in ts]
    names = []
    for i, t in enumerate(ts):
        if rout != 4:
            names.append(w.f(t.name))
            continue
        if t.is_const:
            # numpy broadcasting aligns on the right: as 4-D NHWC, then NCHW; drop the
            # leading 1s when the other operand is a 4-D run-time tensor.
            expand = 4 - t.rank
            shape4 = (1,) * expand + t.shape
            nchw = [shape4[p] for p in TO_NCHW]
            strip = 0
            if runtime4[1 - i]:
                while strip < 3 and nchw[strip] == 1:
                    strip += 1
            names.append(w.const(t.name, expand=expand, perm=TO_NCHW, strip=strip))
        elif t.rank == 4:
            names.append(w.f(t.name))
        else:
            x = w.node("Reshape", [w.f(t.name), w.ints((1,) * (4 - t.rank) + t.shape, "shape")])
            names.append(w.node("Transpose", [x], perm=list(TO_NCHW)))
    typ = {OpType.ADD: "Add", OpType.SUB: "Sub", OpType.MUL: "Mul"}[op.type]
    return w.node(typ, names)


def _softmax(w: _Writer, op: Op, a: dict) -> str:
    x = w.f(op.inputs[0])
    rank = w.g.tensor(op.inputs[0]).rank
    if rank == 0:
        raise w.unsupported("softmax of a scalar")
    beta = float(np.float32(a["beta"]))
    if beta != 1.0:
        x = w.node("Mul", [x, w.scalar(np.float32(beta), np.float32, "softmax_beta")])
    return w.node("Softmax", [x], axis=1 if rank == 4 else rank - 1)


def _unary(onnx_type: str):
    def fn(w: _Writer, op: Op, a: dict) -> str:
        return w.node(onnx_type, [w.f(op.inputs[0])])
    return fn


def _relu6(w: _Writer, op: Op, a: dict) -> str:
    return w.activation(w.f(op.inputs[0]), "RELU6", None)


def _pad(w: _Writer, op: Op, a: dict) -> str:
    rank = w.g.tensor(op.inputs[0]).rank
    flat = a["pads"]
    pairs = [(int(flat[2 * i]), int(flat[2 * i + 1])) for i in range(rank)]
    order = _onnx_layout(rank)
    pads = [pairs[p][0] for p in order] + [pairs[p][1] for p in order]
    value = w.scalar(np.float32(a["value"]), np.float32, "pad_value")
    return w.node("Pad", [w.f(op.inputs[0]), w.ints(pads, "pads"), value], mode="constant")


def _concat(w: _Writer, op: Op, a: dict) -> str:
    rank = w.g.tensor(op.outputs[0]).rank
    axis = a["axis"] % rank
    if rank == 4:
        axis = IR_TO_ONNX_AXIS[axis]
    return w.node("Concat", [w.f(n) for n in op.inputs], axis=axis)


def _mean(w: _Writer, op: Op, a: dict) -> str:
    rank = w.g.tensor(op.inputs[0]).rank
    x = w.f(op.inputs[0])
    axes = sorted({ax % rank for ax in a["axes"]}) if rank else []
    if not axes:
        return w.node("Identity", [x])
    keep = a["keep_dims"]
    onnx_axes = sorted(IR_TO_ONNX_AXIS[ax] for ax in axes) if rank == 4 else axes
    if w.opset >= 18:
        y = w.node("ReduceMean", [x, w.ints(onnx_axes, "axes")], keepdims=int(keep))
    else:
        y = w.node("ReduceMean", [x], axes=onnx_axes, keepdims=int(keep))
    if rank == 4 and not keep:
        # The remaining axes come out in NCHW order; the IR keeps them in NHWC order.
        remaining = [TO_NCHW[j] for j in range(4) if TO_NCHW[j] not in axes]  # IR axes, ONNX order
        perm = [remaining.index(ax) for ax in sorted(remaining)]
        if perm != list(range(len(perm))):
            y = w.node("Transpose", [y], perm=perm)
    return y


def _movement_float(w: _Writer, op: Op, a: dict) -> str:
    return w.movement(op, a, w.f(op.inputs[0]))


def _batch_norm(w: _Writer, op: Op, a: dict) -> str:
    g = w.g
    rank = g.tensor(op.inputs[0]).rank
    if rank < 2:
        raise w.unsupported(f"batch norm of a rank-{rank} tensor")
    x = w.f(op.inputs[0])
    params = []
    for n in op.inputs[1:5]:
        t = g.tensor(n)
        if not t.is_const:
            raise w.unsupported(f"batch norm parameter {n!r} is computed at run time")
        params.append(w.const(n, expand=0, perm=tuple(range(t.rank)), strip=0))
    if rank in (2, 4):
        return w.node("BatchNormalization", [x] + params, epsilon=float(a["epsilon"]))
    to_first = [0, rank - 1] + list(range(1, rank - 1))  # channels (last IR axis) to axis 1
    x = w.node("Transpose", [x], perm=to_first)
    y = w.node("BatchNormalization", [x] + params, epsilon=float(a["epsilon"]))
    return w.node("Transpose", [y], perm=list(_inverse(to_first)))


_EMITTERS: dict[OpType, Callable[[_Writer, Op, dict], str]] = {
    OpType.CONV_2D: _conv,
    OpType.DEPTHWISE_CONV_2D: _conv,
    OpType.FULLY_CONNECTED: _fully_connected,
    OpType.AVERAGE_POOL_2D: _pool,
    OpType.MAX_POOL_2D: _pool,
    OpType.ADD: _binary,
    OpType.SUB: _binary,
    OpType.MUL: _binary,
    OpType.RESHAPE: _movement_float,
    OpType.TRANSPOSE: _movement_float,
    OpType.SOFTMAX: _softmax,
    OpType.RELU: _unary("Relu"),
    OpType.RELU6: _relu6,
    OpType.LOGISTIC: _unary("Sigmoid"),
    OpType.TANH: _unary("Tanh"),
    OpType.PAD: _pad,
    OpType.CONCATENATION: _concat,
    OpType.MEAN: _mean,
    OpType.BATCH_NORM: _batch_norm,
}
_EMITTERS.update({t: emit_reduction for t in REDUCTION_OPS})
_EMITTERS[OpType.UNIDIRECTIONAL_SEQUENCE_LSTM] = emit_lstm
_EMITTERS[OpType.SVDF] = emit_svdf
_EMITTERS.update({t: emit_resample for t in RESAMPLE_OPS})
_EMITTERS.update({t: emit_elementwise for t in ELEMENTWISE_ONNX_OPS})

SUPPORTED_IR_OPS: tuple[str, ...] = tuple(sorted(
    [t.value for t in _EMITTERS] + [OpType.QUANTIZE.value, OpType.DEQUANTIZE.value]
    + [t.value for t in MOVEMENT_OPS]))


# -- public API ----------------------------------------------------------------------

def to_onnx(graph: Graph, opset: int = 17, layout: str = "source", dynamic_batch: bool = False):
    """Lower an IR graph to an ``onnx.ModelProto`` that onnxruntime runs.

    ``opset``: the default-domain opset to write (13 or later).
    ``layout``: ``"source"`` exposes 4-D inputs/outputs the model's source had as NCHW
    in NCHW (``graph.metadata["io_layout"]``) and all others in NHWC; ``"ir"`` exposes
    every input/output in the IR's NHWC layout.
    ``dynamic_batch``: declare the batch dimension of inputs/outputs as ``"N"`` (for
    graphs whose inputs have batch 1), so a batch of any size runs at once, each sample
    computed as the IR's interpreter computes a batch.

    Raises ``BadInputError`` naming the op for anything the writer cannot express.
    """
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a dependency of the ONNX backend
        raise BadInputError("ONNX export needs the onnx package: pip install onnx") from None
    from edgekit.errors import VerifyError
    from edgekit.ir.verify import verify

    if layout not in ("source", "ir"):
        raise BadInputError(f"layout must be 'source' or 'ir', not {layout!r}")
    max_opset = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) \
            or not MIN_OPSET <= opset <= max_opset:
        raise BadInputError(f"opset {opset!r} is not supported: the ONNX writer writes opsets "
                            f"{MIN_OPSET} to {max_opset}")
    opset = int(opset)
    try:
        verify(graph)
    except VerifyError as exc:
        raise BadInputError(f"ONNX export: the graph is not valid: {exc}") from None
    w = _Writer(graph, opset, layout, dynamic_batch)
    gp = w.build()
    helper = onnx.helper
    opsets = [helper.make_opsetid("", opset)]
    model = helper.make_model(gp, opset_imports=opsets, producer_name="edgekit",
                              producer_version=_version(),
                              ir_version=helper.find_min_ir_version_for(opsets))
    source = graph.metadata.get("source_format", "IR")
    model.doc_string = f"Written by edgekit from {source} graph {graph.name!r}."
    helper.set_model_props(model, {"edgekit.layout": layout,
                                   "edgekit.exposed_nchw": ",".join(n for n in graph.inputs + graph.outputs
                                                                    if w.exposed_nchw(n))})
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise BadInputError(f"ONNX export of graph {graph.name!r} produced an invalid model: {exc}") from exc
    return model


def write_onnx(graph: Graph, path: str | os.PathLike, **kw) -> int:
    """Write ``graph`` as an ONNX file (atomically); returns the number of bytes written.

    Keyword arguments are those of :func:`to_onnx`.
    """
    data = to_onnx(graph, **kw).SerializeToString()
    write_atomic(path, lambda f: f.write(data))
    return len(data)


def _version() -> str:
    try:
        from edgekit import __version__
        return str(__version__)
    except ImportError:  # pragma: no cover
        return ""
