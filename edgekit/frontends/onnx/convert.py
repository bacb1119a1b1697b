"""ONNX graph -> edgekit IR, node by node, converting NCHW to NHWC.

Every 4-D run-time tensor is NHWC in the IR (see ``values``); ops that work on a
source axis map it through the layout, and ops that depend on element order
(Reshape, Flatten, ...) read the tensor back in source order with a TRANSPOSE,
which the IR passes later fold or cancel. Nodes whose inputs are all constants are
evaluated here with numpy (shape arithmetic: Shape, Gather, Concat, ...).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from edgekit.errors import BadInputError, ModelFormatError, UnsupportedOpError
from edgekit.frontends.onnx.loader import (MAX_CONST_ELEMENTS, attributes, np_dtype_of,
                                           opset_version, tensor_to_numpy)
from edgekit.frontends.onnx.values import (NCHW, NHWC, Act, QConst, ir_axis, ir_perm,
                                           ir_to_src_shape, src_to_ir_array, src_to_ir_shape)
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph
from edgekit.ir.ops import FUSABLE, OpType, normalize_attrs
from edgekit.ir.shapes import infer_op_shapes, same_pads

Value = Any  # Act | QConst | np.ndarray
_HANDLERS: dict[str, Callable] = {}
_FOLDERS: dict[str, Callable] = {}


def handler(*names: str):
    def deco(fn):
        for n in names:
            _HANDLERS[n] = fn
        return fn
    return deco


def folder(*names: str):
    def deco(fn):
        for n in names:
            _FOLDERS[n] = fn
        return fn
    return deco


class Converter:
    def __init__(self, proto, label: str, input_shapes: dict[str, list[int]] | None, supported):
        self.proto = proto
        self.label = label
        self.supported = supported
        self.opset = opset_version(proto)
        self.input_shapes = dict(input_shapes or {})
        self.g = Graph(proto.graph.name or "onnx_model")
        self.env: dict[str, Value] = {}
        self.qinfo: dict[str, QConst] = {}  # IR float constant -> its integer form (same layout)
        self.uint8: set[str] = set()  # IR tensors that hold uint8 source data (shifted to int8)
        self.reserved: set[str] = set()
        self.uses: Counter = Counter()
        self._op_names: set[str] = set()
        self._counter = 0
        self.node = None

    # -- messages -------------------------------------------------------------
    def node_name(self, node=None) -> str:
        node = node or self.node
        if node is None:
            return "?"
        return node.name or (node.output[0] if len(node.output) and node.output[0] else node.op_type)

    def unsupported(self, detail: str = "") -> UnsupportedOpError:
        return UnsupportedOpError(self.node.op_type, self.node_name(), self.supported, detail)

    def malformed(self, msg: str) -> ModelFormatError:
        return ModelFormatError(f"{self.label}: node {self.node_name()!r} ({self.node.op_type}): {msg}")

    # -- names and IR building ---------------------------------------------------
    def new_name(self, base: str) -> str:
        base = base or "t"
        if base not in self.g.tensors and base not in self.reserved:
            return base
        while True:
            self._counter += 1
            cand = f"{base}_{self._counter}"
            if cand not in self.g.tensors and cand not in self.reserved:
                return cand

    def out_name(self, onnx_name: str) -> str:
        return onnx_name if onnx_name and onnx_name not in self.g.tensors else self.new_name(onnx_name or "t")

    def op_name(self, base: str) -> str:
        name = base
        while name in self._op_names:
            self._counter += 1
            name = f"{base}_{self._counter}"
        self._op_names.add(name)
        return name

    def emit(self, op_type: OpType, inputs: list[str], attrs: dict | None = None, out: str | None = None,
             dtype: DType | None = None, quant: QuantParams | None = None) -> str:
        """Add one op; its output shape comes from the IR's shape rules.

        dtype None: the output has the element type and quantization of input 0.
        """
        attrs = dict(attrs or {})
        shapes = [self.g.tensor(i).shape if i else None for i in inputs]
        try:
            out_shape = infer_op_shapes(op_type, shapes, normalize_attrs(op_type, attrs))[0]
        except ValueError as exc:
            raise self.malformed(str(exc)) from None
        if dtype is None:
            src = self.g.tensor(inputs[0])
            dtype, quant = src.dtype, src.quant
        name = out or self.new_name(f"{self.node_name()}_{op_type.value.lower()}")
        self.g.add_tensor(name, out_shape, dtype, quant)
        base = self.node_name() if self.node is not None else op_type.value.lower()
        self.g.add_op(op_type, inputs, [name], attrs, name=self.op_name(base))
        return name

    def const(self, arr: np.ndarray, base: str, ir_layout: bool = False) -> str:
        """An IR constant from a source-layout array (float64/16 stored as float32)."""
        arr = np.asarray(arr)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        elif arr.dtype == np.uint8 or arr.dtype == np.uint16 or arr.dtype == np.uint32:
            arr = arr.astype(np.int64)
        if not ir_layout:
            arr = src_to_ir_array(arr)
        try:
            dt = DType.from_numpy(arr.dtype)
        except ValueError:
            raise self.unsupported(f"constants of element type {arr.dtype}") from None
        name = self.new_name(base)
        self.g.add_tensor(name, arr.shape, dt, None, arr)
        return name

    # -- reading node inputs ----------------------------------------------------
    def inp(self, node, i: int, required: bool = True) -> Value | None:
        if i >= len(node.input) or not node.input[i]:
            if required:
                raise self.malformed(f"missing input {i}")
            return None
        name = node.input[i]
        if name not in self.env:
            raise self.malformed(f"input {name!r} is not produced by an earlier node, an initializer "
                                 "or a graph input")
        return self.env[name]

    def const_inp(self, node, i: int, what: str, required: bool = True) -> np.ndarray | None:
        v = self.inp(node, i, required)
        if v is None:
            return None
        if isinstance(v, Act):
            raise self.unsupported(f"{what} must be a constant (here it is computed at run time)")
        return v.value() if isinstance(v, QConst) else v

    def tensor_of(self, v: Value, base: str = "const") -> str:
        """IR tensor name for a value (constants are materialised in IR layout)."""
        if isinstance(v, Act):
            return v.name
        if isinstance(v, QConst):
            return self.const(v.value(), base)
        return self.const(v, base)

    def act_inp(self, node, i: int, float_only: bool = True) -> str:
        name = self.tensor_of(self.inp(node, i), f"{self.node_name()}_in{i}")
        t = self.g.tensor(name)
        if float_only and t.dtype is not DType.FLOAT32:
            raise self.unsupported(f"input {i} is {t.dtype.value}; this op is imported for float32 tensors "
                                   "(int8 arithmetic comes from QuantizeLinear/DequantizeLinear pairs)")
        return name

    def sshape(self, name: str) -> tuple[int, ...]:
        return ir_to_src_shape(self.g.tensor(name).shape)

    def set_out(self, node, i: int, v: Value) -> None:
        if i < len(node.output) and node.output[i]:
            self.env[node.output[i]] = v

    def used(self, node, i: int) -> bool:
        return i < len(node.output) and bool(node.output[i]) and self.uses[node.output[i]] > 0

    # -- layout helpers ------------------------------------------------------------
    def to_src(self, name: str) -> str:
        """The tensor in source (NCHW) element order; a no-op below rank 4."""
        if self.g.tensor(name).rank != 4:
            return name
        return self.emit(OpType.TRANSPOSE, [name], {"perm": NCHW})

    def from_src(self, raw: str, out: str | None = None) -> str:
        """A source-ordered tensor back into the IR layout."""
        if self.g.tensor(raw).rank != 4:
            return raw
        return self.emit(OpType.TRANSPOSE, [raw], {"perm": NHWC}, out=out)

    def reshape_src(self, x: str, new_shape, out: str) -> str:
        new_shape = tuple(int(d) for d in new_shape)
        raw = self.to_src(x)
        if self.g.tensor(raw).shape == new_shape and len(new_shape) != 4:
            return raw
        r = self.emit(OpType.RESHAPE, [raw], {"shape": new_shape},
                      out=out if len(new_shape) != 4 else None)
        return self.from_src(r, out)

    # -- attribute helpers -----------------------------------------------------
    def ints(self, a: dict, key: str, default, n: int | None = None) -> tuple[int, ...]:
        v = a.get(key, default)
        try:
            v = tuple(int(x) for x in v)
        except (TypeError, ValueError):
            raise self.malformed(f"attribute {key!r} must be a list of integers") from None
        if n is not None and len(v) != n:
            raise self.unsupported(f"attribute {key}={list(v)}: only 2-D (two values) is supported")
        return v

    def norm_axis(self, axis: int, rank: int, what: str = "axis") -> int:
        axis = int(axis)
        if not -rank <= axis < max(rank, 1):
            raise self.malformed(f"{what} {axis} is out of range for rank {rank}")
        return axis % rank if rank else 0

    def pads2d(self, a: dict, in_hw, kernel, strides, dilations) -> tuple[int, int, int, int]:
        auto = a.get("auto_pad", "NOTSET") or "NOTSET"
        if auto == "NOTSET":
            p = self.ints(a, "pads", (0, 0, 0, 0))
            if len(p) != 4:
                raise self.malformed(f"pads {list(p)} must have 4 values for a 2-D window")
            if any(v < 0 for v in p):
                raise self.unsupported(f"negative pads {list(p)}")
            return p[0], p[1], p[2], p[3]
        if auto == "VALID":
            return 0, 0, 0, 0
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            t, l, b, r = same_pads(in_hw, kernel, strides, dilations)
            return (t, l, b, r) if auto == "SAME_UPPER" else (b, r, t, l)
        raise self.malformed(f"unknown auto_pad {auto!r}")

    # -- driver ------------------------------------------------------------------
    def run(self) -> Graph:
        gp = self.proto.graph
        for vi in list(gp.input) + list(gp.output) + list(gp.value_info):
            self.reserved.add(vi.name)
        for t in gp.initializer:
            self.reserved.add(t.name)
        for node in gp.node:
            self.reserved.update(o for o in node.output if o)
            self.uses.update(i for i in node.input if i)
        self.uses.update(o.name for o in gp.output)
        unknown = set(self.input_shapes) - {vi.name for vi in gp.input}
        if unknown:
            raise BadInputError(f"{self.label}: input_shapes names unknown input(s) {sorted(unknown)}; the "
                                f"model's inputs are {[vi.name for vi in gp.input]}")
        for t in gp.initializer:
            self.env[t.name] = tensor_to_numpy(t, self.label)
        for t in gp.sparse_initializer:
            raise ModelFormatError(f"{self.label}: sparse initializers are not supported")
        for vi in gp.input:
            if vi.name not in self.env:
                self.add_input(vi)
        for node in gp.node:
            self.node = node
            self.convert_node(node)
        self.node = None
        self.add_outputs()
        return self.g

    def add_input(self, vi) -> None:
        label, name = self.label, vi.name
        if not vi.type.HasField("tensor_type"):
            raise BadInputError(f"{label}: input {name!r} is not a tensor (sequence, map or optional "
                                "inputs are not supported)")
        tt = vi.type.tensor_type
        dt = np_dtype_of(tt.elem_type, label, f"input {name!r}")
        if dt == np.uint8:
            raise BadInputError(f"{label}: input {name!r} is uint8; edgekit's graphs take float32 or int8 "
                                "inputs (re-export the model with an int8 or float input)")
        try:
            dtype = DType.from_numpy(dt)
        except ValueError:
            raise BadInputError(f"{label}: input {name!r} has element type {dt}; edgekit takes float32 "
                                "or int8 inputs") from None
        declared = list(tt.shape.dim) if tt.HasField("shape") else None
        given = self.input_shapes.get(name)
        if given is not None:
            shape = [int(d) for d in given]
            if declared is not None and len(declared) != len(shape):
                raise BadInputError(f"{label}: input_shapes gives {name!r} rank {len(shape)}, the model "
                                    f"declares rank {len(declared)}")
            for i, d in enumerate(declared or []):
                if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != shape[i]:
                    raise BadInputError(f"{label}: input_shapes gives {name!r} shape {shape}, but dimension "
                                        f"{i} is fixed at {d.dim_value} in the model")
        else:
            if declared is None:
                raise BadInputError(f"{label}: input {name!r} has no declared shape; pass "
                                    f"input_shapes={{{name!r}: [...]}}")
            shape = []
            for i, d in enumerate(declared):
                if d.HasField("dim_value"):
                    shape.append(int(d.dim_value))
                elif i == 0:
                    shape.append(1)  # unknown batch: compile for one sample
                else:
                    what = d.dim_param or "unknown"
                    raise BadInputError(f"{label}: input {name!r} dimension {i} is dynamic ({what!r}); pass "
                                        f"input_shapes={{{name!r}: [...]}} with its size")
        if any(d <= 0 for d in shape):
            raise BadInputError(f"{label}: input {name!r} has shape {shape}; every dimension must be positive")
        if int(np.prod(shape, dtype=np.float64)) > MAX_CONST_ELEMENTS:
            raise BadInputError(f"{label}: input {name!r} shape {shape} is too large")
        self.g.add_tensor(name, src_to_ir_shape(shape), dtype)
        self.g.inputs.append(name)
        if len(shape) == 4:
            self.g.metadata.setdefault("io_layout", {})[name] = "NCHW"
        self.env[name] = Act(name)

    def add_outputs(self) -> None:
        for vi in self.proto.graph.output:
            name = vi.name
            if name not in self.env:
                raise ModelFormatError(f"{self.label}: graph output {name!r} is not produced by any node")
            v = self.env[name]
            if not isinstance(v, Act):
                raise BadInputError(f"{self.label}: output {name!r} is a constant (it does not depend on "
                                    "any input); edgekit compiles outputs computed from the inputs")
            if v.name in self.uint8:
                raise BadInputError(f"{self.label}: output {name!r} is uint8; edgekit's graphs return "
                                    "float32 or int8 outputs")
            t = self.g.tensor(v.name)
            if v.name != name or name in self.g.outputs:
                # Give the IR output the model's name: an identity copy (the clean-up
                # passes let the producer write it directly where that is safe).
                out = name if name not in self.g.tensors else self.new_name(name)
                self.g.add_tensor(out, t.shape, t.dtype, t.quant)
                self.g.add_op(OpType.RESHAPE, [v.name], [out], {"shape": t.shape},
                              name=self.op_name(f"{out}_output"))
                name = out
            self.g.outputs.append(name)
            if t.rank == 4:
                self.g.metadata.setdefault("io_layout", {})[name] = "NCHW"

    def convert_node(self, node) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"{node.domain}.{op}", self.node_name(node), self.supported,
                                     "operators outside the default ONNX domain are not supported")
        fn = _HANDLERS.get(op)
        if fn is None:
            raise UnsupportedOpError(op, self.node_name(node), self.supported)
        a = attributes(node, self.label)
        fold = _FOLDERS.get(op)
        if fold is not None:
            present = [node.input[i] for i in range(len(node.input)) if node.input[i]]
            for n in present:
                if n not in self.env:
                    raise self.malformed(f"input {n!r} is not produced by an earlier node, an initializer "
                                         "or a graph input")
            if all(not isinstance(self.env[n], Act) for n in present):
                vals = [None if not n else (self.env[n].value() if isinstance(self.env[n], QConst)
                                            else self.env[n]) for n in node.input]
                try:
                    with np.errstate(all="ignore"):
                        outs = fold(self, node, a, vals)
                except (ModelFormatError, UnsupportedOpError, BadInputError):
                    raise
                except (ValueError, IndexError, TypeError, OverflowError, KeyError) as exc:
                    raise self.malformed(f"cannot evaluate on its constant inputs ({exc})") from None
                for i, v in enumerate(outs):
                    v = np.asarray(v)
                    if v.size > MAX_CONST_ELEMENTS:
                        raise self.malformed("constant result too large")
                    self.set_out(node, i, v)
                return
        with np.errstate(all="ignore"):
            fn(self, node, a)


# -- shape-like helpers shared by folding and conversion ----------------------------

def resolve_reshape(c: Converter, in_shape, target, allowzero: bool) -> tuple[int, ...]:
    target = [int(v) for v in np.asarray(target).reshape(-1)]
    out = []
    for i, s in enumerate(target):
        if s == 0 and not allowzero:
            if i >= len(in_shape):
                raise c.malformed(f"shape {target}: a 0 at position {i} has no input dimension to copy")
            s = in_shape[i]
        out.append(s)
    total = int(np.prod(in_shape, dtype=np.int64))
    if out.count(-1) > 1 or any(s < -1 for s in out):
        raise c.malformed(f"invalid target shape {target}")
    if -1 in out:
        known = int(np.prod([s for s in out if s != -1], dtype=np.int64))
        if known == 0 or total % known:
            raise c.malformed(f"cannot reshape {list(in_shape)} to {target}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != total:
        raise c.malformed(f"cannot reshape {list(in_shape)} ({total} elements) to {target}")
    return tuple(out)


def _axes_input_or_attr(c: Converter, node, a: dict, idx: int, since: int) -> list[int] | None:
    if c.opset >= since:
        v = c.const_inp(node, idx, "axes", required=False)
        return None if v is None else [int(x) for x in np.asarray(v).reshape(-1)]
    return list(a["axes"]) if "axes" in a else None


def squeeze_shape(c: Converter, shape, axes) -> tuple[int, ...]:
    r = len(shape)
    if axes is None:
        return tuple(d for d in shape if d != 1)
    axes = {c.norm_axis(ax, r, "squeeze axis") for ax in axes}
    for ax in axes:
        if shape[ax] != 1:
            raise c.malformed(f"cannot squeeze axis {ax} of size {shape[ax]}")
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def unsqueeze_shape(c: Converter, shape, axes) -> tuple[int, ...]:
    if axes is None:
        raise c.malformed("Unsqueeze needs axes")
    r = len(shape) + len(axes)
    axes_n = sorted(c.norm_axis(ax, r, "unsqueeze axis") for ax in axes)
    if len(set(axes_n)) != len(axes_n):
        raise c.malformed(f"repeated axes {list(axes)}")
    out, it = [], iter(shape)
    for i in range(r):
        out.append(1 if i in axes_n else next(it))
    return tuple(out)


def flatten_shape(c: Converter, shape, axis: int) -> tuple[int, int]:
    r = len(shape)
    if axis < 0:
        axis += r
    if not 0 <= axis <= r:
        raise c.malformed(f"axis {axis} out of range for rank {r}")
    return int(np.prod(shape[:axis], dtype=np.int64)), int(np.prod(shape[axis:], dtype=np.int64))


def onnx_quantize(x: np.ndarray, scale, zp, axis, dtype: np.dtype) -> np.ndarray:
    x = np.asarray(x, np.float32)
    scale = np.asarray(scale, np.float32)
    zp = np.asarray(zp).astype(np.int64)
    if scale.ndim == 1 and scale.size > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    q = np.rint(x / scale).astype(np.float64) + zp
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


# -- constant folding (all inputs constant) ------------------------------------------

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
    return [_shape_slice(c, np.shape(x), a)]


def _shape_slice(c, shape, a) -> np.ndarray:
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


@folder("Squeeze")
def _f_squeeze(c, node, a, v):
    x = np.asarray(v[0])
    axes = a.get("axes") if c.opset < 13 else (None if len(v) < 2 or v[1] is None else list(np.asarray(v[1]).reshape(-1)))
    return [x.reshape(squeeze_shape(c, x.shape, axes))]


@folder("Unsqueeze")
def _f_unsqueeze(c, node, a, v):
    x = np.asarray(v[0])
    axes = a.get("axes") if c.opset < 13 else (None if len(v) < 2 or v[1] is None else list(np.asarray(v[1]).reshape(-1)))
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


# -- op handlers -----------------------------------------------------------------------

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
            raise c.unsupported("training_mode=True")
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
    c.set_out(node, 0, _shape_slice(c, shape, a))


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
        raise c.unsupported("Clip(-1, 1) is imported as the fused activation RELU_N1_TO_1 and needs a "
                            "producer that takes one (conv, fully connected, add, pool, ...) with no other reader")
    raise c.unsupported(f"Clip({lo:g}, {hi:g}); supported bounds are (0, 6), (0, inf) and (-1, 1)")


@handler("Softmax")
def _softmax(c: Converter, node, a):
    x = c.act_inp(node, 0)
    shape = c.sshape(x)
    r = len(shape)
    if r == 0:
        raise c.unsupported("softmax of a scalar")
    out = c.out_name(node.output[0])
    if c.opset >= 13:
        axis = c.norm_axis(a.get("axis", -1), r)
    else:
        axis = c.norm_axis(a.get("axis", 1), r)
        if axis != r - 1 and any(d != 1 for d in shape[axis + 1:]):
            # Before opset 13 Softmax flattens to 2-D at ``axis``: a reshape pair around it.
            if r == 4:
                raise c.unsupported(f"softmax over axes {axis}.. of a 4-D tensor (opset {c.opset} semantics)")
            two = flatten_shape(c, shape, axis)
            flat = c.emit(OpType.RESHAPE, [x], {"shape": two})
            sm = c.emit(OpType.SOFTMAX, [flat], {"beta": 1.0})
            c.set_out(node, 0, Act(c.emit(OpType.RESHAPE, [sm], {"shape": shape}, out=out)))
            return
        if axis != r - 1:
            # The dims after ``axis`` are all 1: the same as a softmax over ``axis`` alone.
            if ir_axis(axis, r) != r - 1:
                raise c.unsupported(f"softmax over source axis {axis} of a rank-{r} tensor; only the "
                                    "innermost axis of the NHWC layout is supported")
            c.set_out(node, 0, Act(c.emit(OpType.SOFTMAX, [x], {"beta": 1.0}, out=out)))
            return
    if ir_axis(axis, r) != r - 1:
        raise c.unsupported(f"softmax over axis {axis} of a rank-{r} tensor; only the last axis of the IR "
                            "layout is supported (for 4-D NCHW tensors that is the channel axis 1)")
    c.set_out(node, 0, Act(c.emit(OpType.SOFTMAX, [x], {"beta": 1.0}, out=out)))


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
    va, vb = c.inp(node, 0), c.inp(node, 1)
    if isinstance(vb, Act):
        raise c.unsupported("the second operand must be a constant (run-time matrix products are not supported)")
    x = c.act_inp(node, 0)
    bshape = (vb.q if isinstance(vb, QConst) else np.asarray(vb)).shape
    xs = c.sshape(x)
    out = c.out_name(node.output[0])
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


@handler("MaxPool", "AveragePool")
def _pool(c: Converter, node, a):
    x = c.act_inp(node, 0)
    xs = c.sshape(x)
    if len(xs) != 4:
        raise c.unsupported(f"only 2-D pooling (4-D NCHW input) is supported; the input has rank {len(xs)}")
    if "kernel_shape" not in a:
        raise c.malformed("kernel_shape is required")
    k = c.ints(a, "kernel_shape", None, 2)
    s = c.ints(a, "strides", (1, 1), 2)
    if c.ints(a, "dilations", (1, 1), 2) != (1, 1):
        raise c.unsupported("dilated pooling")
    if c.used(node, 1):
        raise c.unsupported("the Indices output of MaxPool")
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
    axes = _axes_input_or_attr(c, node, a, 1, 18)
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
    axes = _axes_input_or_attr(c, node, a, 1, 13)
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


def handled_ops() -> tuple[str, ...]:
    return tuple(sorted(_HANDLERS))
