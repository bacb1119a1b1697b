"""ONNX graph -> edgekit IR, node by node, converting NCHW to NHWC.

Every 4-D run-time tensor is NHWC in the IR (see ``values``); ops that work on a
source axis map it through the layout, and ops that depend on element order
(Reshape, Flatten, ...) read the tensor back in source order with a TRANSPOSE,
which the IR passes later fold or cancel. Nodes whose inputs are all constants are
evaluated with numpy (``folding``); the op converters live in ``handlers``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np

from edgekit.errors import BadInputError, ModelFormatError, UnsupportedOpError
from edgekit.frontends.onnx.loader import (MAX_CONST_ELEMENTS, attributes, np_dtype_of,
                                           opset_version, tensor_to_numpy)
from edgekit.frontends.onnx.values import (NCHW, NHWC, Act, QConst, ir_to_src_shape, src_to_ir_array,
                                           src_to_ir_shape)
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType, normalize_attrs
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


_EXPANDERS: list[Callable] = []  # tried in order for ops no handler claims (``functions``)


def register_expander(fn: Callable) -> Callable:
    """``fn(converter, node) -> bool``: converts a node no handler claims (True), or declines."""
    _EXPANDERS.append(fn)
    return fn


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
        if arr.ndim == 0:
            arr = arr.reshape(1)  # IR constants have rank >= 1; broadcasting is unchanged
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
        for _ in gp.sparse_initializer:
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
            if any(expand(self, node) for expand in _EXPANDERS):
                return
            raise UnsupportedOpError(op, self.node_name(node), self.supported)
        a = attributes(node, self.label)
        fold = _FOLDERS.get(op)
        if fold is not None and op in _QCONST_MOVES and self._move_qconst(node, a, fold):
            return
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


    def _move_qconst(self, node, a: dict, fold) -> bool:
        """Data movement of a dequantized constant (a weight reshaped or transposed
        after its DequantizeLinear): apply it to the integers, keep the parameters."""
        names = [n for n in node.input if n]
        if not names or any(n not in self.env or isinstance(self.env[n], Act) for n in names):
            return False
        qc = self.env[node.input[0]]
        if not isinstance(qc, QConst):
            return False
        if node.op_type == "Transpose":
            perm = a.get("perm", list(range(qc.q.ndim))[::-1])
            if sorted(perm) != list(range(qc.q.ndim)):
                raise self.malformed(f"perm {list(perm)} is not a permutation of rank {qc.q.ndim}")
            self.set_out(node, 0, qc.transpose(perm))
            return True
        if not qc.per_tensor:
            return False
        vals = [qc.q] + [None if not n else (self.env[n].value() if isinstance(self.env[n], QConst)
                                             else self.env[n]) for n in node.input[1:]]
        try:
            q = np.asarray(fold(self, node, a, vals)[0])
        except (ValueError, IndexError, TypeError) as exc:
            raise self.malformed(f"cannot evaluate on its constant inputs ({exc})") from None
        self.set_out(node, 0, QConst(q, qc.scale, qc.zp, None))
        return True


_QCONST_MOVES = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze")


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


def axes_input_or_attr(c: Converter, node, a: dict, idx: int, since: int) -> list[int] | None:
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


def handled_ops() -> tuple[str, ...]:
    return tuple(sorted(_HANDLERS))
