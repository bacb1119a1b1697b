"""PyTorch frontend: an nn.Module (or a torch.export program) to edgekit IR.

The model is traced with ``torch.export`` (non-strict), normalized to functional
ATen ops, and the FX graph of ATen ops is walked node by node to build the IR
directly; there is no ONNX round trip.

Layout: PyTorch is NCHW, the IR is NHWC. Every 4-D activation is held in NHWC in
the IR (the torch tensor permuted by ``(0, 2, 3, 1)``); every other activation
keeps torch's axis order. Handlers translate axes accordingly, lay constants out
for the op that reads them, and put a TRANSPOSE back to NCHW in front of an op
that depends on torch's element order of a 4-D tensor (flatten, view, ...); the
IR passes fold that transpose into a following FULLY_CONNECTED.

torch is imported inside :func:`load_torch` only, so the rest of edgekit works
without it.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import operator
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.errors import BadInputError, EdgekitError, ModelFormatError, UnsupportedOpError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.ir.ops import FUSABLE, OpType
from edgekit.ir.passes import run_passes
from edgekit.ir.passes.base import single_consumer
from edgekit.ir.verify import verify

__all__ = ["load_torch", "load_state_dict_into", "resolve_torch_spec", "SUPPORTED_TORCH_OPS"]

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)

_INSTALL_HINT = "PyTorch import needs torch: pip install 'edgekit[torch]'"


# ---------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------

def load_torch(spec, example_inputs: tuple | None = None,
               input_shapes: list[list[int]] | None = None,
               state_dict: str | Path | None = None) -> Graph:
    """Import a PyTorch model into an IR graph (NHWC, float32, cleaned by the default passes).

    ``spec`` is one of:
      - ``"path/to/file.py:factory"``: the file is imported by path and ``factory()``
        called; it returns an ``nn.Module`` or ``(module, example_inputs)``;
      - a ``.pt2`` file written by ``torch.export.save``;
      - an ``nn.Module``;
      - a ``torch.export.ExportedProgram``.

    Example inputs for tracing come from, in order: ``example_inputs``, random tensors
    of ``input_shapes``, the ones the factory returned, and an ``example_inputs`` /
    ``input_shape`` / ``input_shapes`` attribute of the module (or of the model file).
    ``state_dict`` names a ``torch.save``-d state dict loaded into the model first.
    """
    torch = _import_torch()
    module, ep, name, found_examples, pyfile = _resolve_spec(torch, spec)
    overrides = None
    if ep is None:
        if state_dict is not None:
            _load_state_dict_into(torch, module, state_dict)
        module.eval()
        examples = _example_inputs(torch, module, example_inputs, input_shapes, found_examples, pyfile)
        ep = _export(torch, module, examples, name)
    else:
        if state_dict is not None:
            overrides = _read_state_dict(torch, state_dict)
        if input_shapes is not None:
            _check_program_shapes(ep, input_shapes)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            ep = ep.run_decompositions({})  # functional ATen, composite ops kept
    except Exception:  # noqa: BLE001 - an already-normalized program is fine as is
        pass
    return _Importer(torch, ep, name, overrides).run()


def resolve_torch_spec(spec):
    """The model a spec names (any form :func:`load_torch` takes), not imported to IR:
    -> (nn.Module or None, ExportedProgram or None, name); exactly one of the two is set."""
    module, ep, name, _examples, _pyfile = _resolve_spec(_import_torch(), spec)
    return module, ep, name


def load_state_dict_into(module, path) -> None:
    """Load the state dict ``torch.save``-d at ``path`` into ``module`` (strictly: every key
    must fit); BadInputError / ModelFormatError name the file and what is wrong."""
    _load_state_dict_into(_import_torch(), module, path)


# ---------------------------------------------------------------------------
# spec resolution, example inputs, export
# ---------------------------------------------------------------------------

def _import_torch():
    try:
        import torch
        import torch.export  # noqa: F401
    except ImportError:
        raise BadInputError(_INSTALL_HINT) from None
    return torch


def _resolve_spec(torch, spec):
    """-> (module or None, exported program or None, name, factory examples, python module)."""
    nn = torch.nn
    if isinstance(spec, torch.export.ExportedProgram):
        return None, spec, "model", None, None
    if isinstance(spec, nn.Module):
        return spec, None, type(spec).__name__, None, None
    if not isinstance(spec, (str, Path)):
        raise BadInputError(f"cannot import a {type(spec).__name__} as a PyTorch model; give "
                            "'file.py:factory', a .pt2 file, an nn.Module or an ExportedProgram")
    text = str(spec)
    file_part, sep, factory = text.rpartition(":")
    if sep and file_part.endswith(".py"):
        return _load_factory(torch, Path(file_part), factory.strip())
    path = Path(text)
    if path.suffix == ".py":
        raise BadInputError(f"{path}: name the factory that builds the model, as '{path}:factory_name'")
    if path.suffix == ".pt2":
        if not path.is_file():
            raise BadInputError(f"{path}: no such file")
        try:
            ep = torch.export.load(str(path))
        except Exception as exc:  # noqa: BLE001
            raise ModelFormatError(f"{path}: not a readable torch.export archive ({_first_line(exc)})") from None
        return None, ep, path.stem, None, None
    raise BadInputError(f"{text}: not a PyTorch model spec; give 'file.py:factory' or a .pt2 file "
                        "written by torch.export.save")


def _load_factory(torch, path: Path, factory: str):
    if not factory:
        raise BadInputError(f"{path}: empty factory name; give '{path}:factory_name'")
    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    mod_name = f"_edgekit_torch_model_{path.stem}_{uuid.uuid4().hex[:8]}"
    ispec = importlib.util.spec_from_file_location(mod_name, path)
    if ispec is None or ispec.loader is None:
        raise BadInputError(f"{path}: cannot be imported as a Python file")
    pymod = importlib.util.module_from_spec(ispec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # let the model file import its neighbours
    sys.modules[mod_name] = pymod
    try:
        ispec.loader.exec_module(pymod)
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"{path}: importing it failed: {type(exc).__name__}: {_first_line(exc)}") from exc
    finally:
        sys.modules.pop(mod_name, None)
        try:
            sys.path.remove(folder)
        except ValueError:
            pass
    fn = getattr(pymod, factory, None)
    if fn is None or not callable(fn):
        names = sorted(n for n, v in vars(pymod).items()
                       if inspect.isfunction(v) and not n.startswith("_") and v.__module__ == mod_name)
        have = f"; it defines: {', '.join(names)}" if names else ""
        raise BadInputError(f"{path}: no factory function named {factory!r}{have}")
    try:
        made = fn()
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"{path}:{factory}() failed: {type(exc).__name__}: {_first_line(exc)}") from exc
    examples = None
    if isinstance(made, (tuple, list)) and len(made) == 2 and isinstance(made[0], torch.nn.Module):
        made, examples = made
    if not isinstance(made, torch.nn.Module):
        raise BadInputError(f"{path}:{factory}() returned a {type(made).__name__}, not an nn.Module "
                            "(or a (module, example_inputs) pair)")
    return made, None, type(made).__name__, examples, pymod


def _as_tuple(torch, examples, where: str) -> tuple:
    if isinstance(examples, torch.Tensor):
        return (examples,)
    if isinstance(examples, (list, tuple)):
        return tuple(examples)
    raise BadInputError(f"{where}: example inputs must be a tensor or a tuple of tensors, "
                        f"got {type(examples).__name__}")


def _shapes_to_inputs(torch, shapes, where: str) -> tuple:
    try:
        shapes = [list(s) for s in shapes]
    except TypeError:
        # one flat shape, e.g. [1, 3, 32, 32]
        shapes = [list(shapes)]
    out = []
    for s in shapes:
        if not s or any(isinstance(d, bool) or int(d) != d or int(d) <= 0 for d in s):
            raise BadInputError(f"{where}: input shape {s} must be a list of positive integers")
        out.append(torch.randn(*[int(d) for d in s]))
    return tuple(out)


def _example_inputs(torch, module, example_inputs, input_shapes, found, pyfile) -> tuple:
    if example_inputs is not None:
        return _as_tuple(torch, example_inputs, "example_inputs")
    if input_shapes is not None:
        return _shapes_to_inputs(torch, input_shapes, "input_shapes")
    if found is not None:
        return _as_tuple(torch, found, "the factory's example inputs")
    for owner in (module, pyfile):
        if owner is None:
            continue
        ex = getattr(owner, "example_inputs", None)
        if ex is not None:
            if callable(ex) and not isinstance(ex, torch.Tensor):
                ex = ex()
            return _as_tuple(torch, ex, "example_inputs attribute")
        shape = getattr(owner, "input_shapes", None)
        if shape is None:
            shape = getattr(owner, "input_shape", None)
            if shape is not None and shape and all(isinstance(d, int) for d in shape):
                shape = [shape]
        if shape is not None:
            return _shapes_to_inputs(torch, shape, "input_shape attribute")
    raise BadInputError(
        f"no example inputs for {type(module).__name__}: torch.export needs concrete input shapes. "
        "Give input shapes (--input-shape / input_shapes=[[1, 3, 32, 32]]), example inputs, have the "
        "factory return (module, example_inputs), or set an 'example_inputs' or 'input_shape' "
        "attribute on the module")


def _export(torch, module, examples: tuple, name: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return torch.export.export(module, examples, strict=False)
    except EdgekitError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"torch.export could not trace {name}: {type(exc).__name__}: "
                            f"{_first_line(exc)}") from exc


def _read_state_dict(torch, path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such state_dict file")
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ModelFormatError(f"{path}: not a loadable torch state_dict ({_first_line(exc)})") from None
    if isinstance(sd, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(sd.get(key), dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ModelFormatError(f"{path}: does not hold a state_dict (a dict of tensors)")
    return sd


def _load_state_dict_into(torch, module, path) -> None:
    sd = _read_state_dict(torch, path)
    try:
        module.load_state_dict(sd, strict=True)
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"{path}: state_dict does not fit {type(module).__name__}: "
                            f"{' '.join(str(exc).split())[:500]}") from None


def _check_program_shapes(ep, input_shapes) -> None:
    user = [s.arg.name for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    have = [list(nodes[u].meta["val"].shape) for u in user if hasattr(nodes[u].meta.get("val"), "shape")]
    want = [list(s) for s in input_shapes]
    if want and all(isinstance(d, int) for d in want):
        want = [want]
    if [[int(d) for d in s] for s in have] != [[int(d) for d in s] for s in want]:
        raise BadInputError(f"the exported program takes inputs of shapes {have}, not {want}")


def _first_line(exc: BaseException) -> str:
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


# ---------------------------------------------------------------------------
# the FX -> IR walk
# ---------------------------------------------------------------------------

class _Val:
    """What an FX node evaluates to: an IR activation tensor, or a constant array.

    ``shape`` is always torch's shape; a 4-D activation's IR tensor is that shape in NHWC.
    """

    __slots__ = ("name", "shape", "const")

    def __init__(self, name: str | None, shape, const: np.ndarray | None = None):
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.const = const

    @property
    def is_const(self) -> bool:
        return self.const is not None


class _Unusable:
    """A secondary output of a multi-output op (indices, saved statistics, masks)."""

    def __init__(self, op: str, index: int):
        self.op, self.index = op, index


_HANDLERS: dict[str, Callable] = {}
_IDENTITY = {"aten.clone", "aten.contiguous", "aten.alias", "aten.detach", "aten.lift_fresh_copy",
             "aten.dropout", "aten.feature_dropout", "aten.alpha_dropout", "aten.feature_alpha_dropout",
             "aten._to_copy", "aten.to", "aten.type_as"}
_SKIP = {"aten._assert_tensor_metadata", "aten._assert_async", "aten._assert_scalar",
         "aten.sym_constrain_range", "aten.sym_constrain_range_for_size", "aten._functional_assert_async",
         "aten._functional_assert_scalar", "aten._functional_sym_constrain_range"}
_SKIP_TARGETS_STR = ("_assert",)


def _handles(*names: str):
    def deco(fn):
        for n in names:
            _HANDLERS[n] = fn
        return fn
    return deco


def _op_key(target) -> str:
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return str(packet)
    return str(getattr(target, "__name__", target))


def _pair(v) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = list(v)
    if not v:
        return None
    if len(v) == 1:
        return int(v[0]), int(v[0])
    if len(v) != 2:
        raise ValueError(f"expected 1 or 2 values, got {v}")
    return int(v[0]), int(v[1])


def _ir_shape(shape) -> tuple[int, ...]:
    shape = tuple(shape)
    if len(shape) == 4:
        return tuple(shape[p] for p in NCHW_TO_NHWC)
    return shape


def _ir_to_torch_axes(rank: int) -> tuple[int, ...]:
    """For each IR axis, the torch axis it holds."""
    return NCHW_TO_NHWC if rank == 4 else tuple(range(rank))


def _ir_axis(axis: int, rank: int) -> int:
    axis = int(axis)
    if not -rank <= axis < max(rank, 1):
        raise ValueError(f"axis {axis} out of range for rank {rank}")
    axis %= max(rank, 1)
    return _ir_to_torch_axes(rank).index(axis) if rank == 4 else axis


def _flatten_args(x):
    if isinstance(x, (list, tuple)):
        for i in x:
            yield from _flatten_args(i)
    elif isinstance(x, dict):
        for i in x.values():
            yield from _flatten_args(i)
    else:
        yield x


def _num(v) -> float | None:
    if v is None:
        return None
    if isinstance(v, _Val):
        if not v.is_const or v.const.size != 1:
            return None
        return float(v.const.reshape(-1)[0])
    return float(v)


class _Importer:
    def __init__(self, torch, ep, name: str, overrides: dict | None):
        self.torch = torch
        self.ep = ep
        self.g = Graph(name)
        self.vals: dict[Any, Any] = {}
        self.overrides = dict(overrides) if overrides else None
        self.relu_src: dict[str, str] = {}   # RELU output -> its input (to form RELU6 from clamp chains)
        self.clamp_chains: list[tuple] = []  # hardtanh(-1, 1) decompositions, fused after the passes
        self.zero_pads: dict[str, tuple] = {}  # PAD output -> (input, (top, left, bottom, right)), H/W only
        self.node = None
        self.preset: dict[Any, Any] = {}  # FX node -> value decided by a pattern at an earlier node

    # -- errors -------------------------------------------------------------
    def unsupported(self, detail: str = "", node=None, op: str | None = None):
        node = node or self.node
        return UnsupportedOpError(op or str(node.target), node.name, SUPPORTED_TORCH_OPS, detail)

    # -- IR building --------------------------------------------------------
    def emit(self, op_type: OpType, inputs: list[str], shape, attrs: dict | None = None,
             hint: str | None = None) -> str:
        hint = hint or (self.node.name if self.node is not None else "t")
        name = self.g.unique_name(hint)
        self.g.add_tensor(name, shape, DType.FLOAT32)
        self.g.add_op(op_type, inputs, [name], attrs or {}, name=self.g.unique_name(hint, ops=True))
        return name

    def const_tensor(self, arr, hint: str) -> str:
        return self.g.add_const(hint, np.asarray(arr, dtype=np.float32)).name

    def tmp(self, suffix: str) -> str:
        return f"{self.node.name}_{suffix}"

    def transpose(self, name: str, perm, hint: str) -> str:
        """TRANSPOSE, or a RESHAPE when only size-1 axes move."""
        perm = tuple(int(p) for p in perm)
        shape = self.g.tensor(name).shape
        if perm == tuple(range(len(shape))):
            return name
        out = tuple(shape[p] for p in perm)
        moved = [p for p in perm if shape[p] != 1]
        if moved == sorted(moved):
            return self.emit(OpType.RESHAPE, [name], out, {"shape": out}, hint)
        return self.emit(OpType.TRANSPOSE, [name], out, {"perm": perm}, hint)

    def reshape(self, name: str, shape, hint: str) -> str:
        shape = tuple(int(d) for d in shape)
        if self.g.tensor(name).shape == shape:
            return name
        return self.emit(OpType.RESHAPE, [name], shape, {"shape": shape}, hint)

    def source_order(self, v: _Val) -> str:
        """The IR tensor of ``v`` in torch's axis order."""
        if len(v.shape) == 4:
            return self.transpose(v.name, NHWC_TO_NCHW, self.tmp("nchw"))
        return v.name

    def from_source_order(self, name: str, hint: str) -> str:
        """Bring a tensor in torch order into the IR layout (NHWC when 4-D)."""
        if len(self.g.tensor(name).shape) == 4:
            return self.transpose(name, NCHW_TO_NHWC, hint)
        return name

    # -- values -------------------------------------------------------------
    def val(self, arg) -> _Val:
        """The value of a node argument: an activation, a constant or a Python scalar."""
        torch = self.torch
        fx = torch.fx
        if isinstance(arg, fx.Node):
            v = self.vals.get(arg)
            if isinstance(v, _Unusable):
                raise self.unsupported(f"output {v.index} of {v.op} is not supported (only its first)",
                                       op=v.op)
            if not isinstance(v, _Val):
                raise self.unsupported(f"input {arg.name!r} is not a tensor")
            return v
        if isinstance(arg, bool) or not isinstance(arg, (int, float, np.number)):
            raise self.unsupported(f"argument {arg!r} is not a tensor or a number")
        return _Val(None, (), np.asarray(arg, dtype=np.float32))

    def act(self, arg, what: str = "input") -> _Val:
        v = self.val(arg)
        if v.is_const:
            raise self.unsupported(f"{what} must be computed from the model inputs, not a constant")
        return v

    def const(self, arg, what: str) -> np.ndarray:
        v = self.val(arg)
        if not v.is_const:
            raise self.unsupported(f"{what} must be a constant (a parameter or buffer)")
        return np.asarray(v.const, dtype=np.float32)

    def operand(self, v: _Val, rank: int, hint: str) -> str:
        """An IR tensor for ``v`` as an operand of an elementwise op with a rank-``rank`` result."""
        if v.is_const:
            arr = np.asarray(v.const, dtype=np.float32)
            if arr.size == 1 and rank >= 1:
                return self.const_tensor(arr.reshape(1), hint)
            if rank == 4:
                arr = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(NCHW_TO_NHWC)
            return self.const_tensor(arr, hint)
        r = len(v.shape)
        if r == rank:
            return v.name
        if r == 4:
            raise self.unsupported(f"broadcasting a 4-D tensor to rank {rank} is not supported")
        # torch aligns trailing axes: give the operand the result's rank with leading 1s
        src = self.reshape(v.name, (1,) * (rank - r) + v.shape, f"{hint}_rank{rank}")
        return self.from_source_order(src, f"{hint}_nhwc") if rank == 4 else src

    def out_shape(self, node=None) -> tuple[int, ...]:
        node = node or self.node
        val = node.meta.get("val")
        if val is None or not hasattr(val, "shape"):
            raise self.unsupported("the exported graph has no shape for this node")
        try:
            return tuple(int(d) for d in val.shape)
        except Exception:  # noqa: BLE001 - symbolic sizes
            raise self.unsupported("dynamic shapes are not supported; export with static shapes") from None

    def result(self, name: str) -> _Val:
        return _Val(name, self.out_shape())

    # -- the walk -------------------------------------------------------------
    def run(self) -> Graph:
        torch = self.torch
        ep = self.ep
        specs = {s.arg.name: s for s in ep.graph_signature.input_specs if hasattr(s.arg, "name")}
        io_layout: dict[str, str] = {}
        outputs: list[str] = []
        for node in ep.graph.nodes:
            self.node = node
            if node.op == "placeholder":
                self._placeholder(node, specs.get(node.name), io_layout)
            elif node.op == "get_attr":
                obj = operator.attrgetter(node.target)(ep.graph_module)
                if not isinstance(obj, torch.Tensor):
                    raise self.unsupported("only tensor attributes are supported", op=f"get_attr {node.target}")
                self.vals[node] = _Val(None, obj.shape, obj.detach().cpu().numpy())
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                outputs = self._outputs(node, io_layout)
            else:
                raise self.unsupported(f"FX {node.op} nodes are not supported", op=f"{node.op} {node.target}")
        self.node = None
        g = self.g
        g.outputs = outputs
        g.metadata["source_format"] = "torch"
        g.metadata["producer"] = f"torch {torch.__version__}"
        g.metadata["io_layout"] = io_layout
        run_passes(g)
        if self._fuse_clamp_chains():
            run_passes(g)
        verify(g)
        return g

    def _placeholder(self, node, spec, io_layout) -> None:
        torch = self.torch
        kind = spec.kind.name if spec is not None else "USER_INPUT"
        target = getattr(spec, "target", None)
        if kind == "USER_INPUT":
            meta = node.meta.get("val")
            if not isinstance(meta, torch.Tensor):
                raise BadInputError(f"model input {node.name!r} is not a tensor ({type(meta).__name__}); "
                                    "edgekit imports models whose inputs are tensors")
            if meta.dtype != torch.float32:
                raise BadInputError(f"model input {node.name!r} is {meta.dtype}; edgekit's PyTorch import "
                                    "takes float32 inputs")
            shape = self.out_shape(node)
            name = self.g.unique_name(node.name)
            self.g.add_tensor(name, _ir_shape(shape), DType.FLOAT32)
            self.g.inputs.append(name)
            if len(shape) == 4:
                io_layout[name] = "NCHW"
            self.vals[node] = _Val(name, shape)
        elif kind in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
            if self.overrides is not None and target in self.overrides:
                t = self.overrides.pop(target)
            elif target in self.ep.state_dict:
                t = self.ep.state_dict[target]
            else:
                t = self.ep.constants.get(target)
            if not isinstance(t, torch.Tensor):
                raise self.unsupported(f"constant {target!r} is not a tensor", op=f"{kind.lower()} {target}")
            meta = node.meta.get("val")
            if self.overrides is not None and hasattr(meta, "shape") and tuple(meta.shape) != tuple(t.shape):
                raise BadInputError(f"state_dict entry {target!r} has shape {list(t.shape)}, the model "
                                    f"expects {list(meta.shape)}")
            self.vals[node] = _Val(None, t.shape, t.detach().cpu().numpy())
        elif kind == "TOKEN":
            self.vals[node] = None
        else:
            raise self.unsupported(f"{kind.lower()} inputs are not supported", op=f"{kind.lower()} {target}")

    def _outputs(self, node, io_layout) -> list[str]:
        if self.overrides:
            raise BadInputError(f"state_dict has entries the model does not use: {sorted(self.overrides)[:10]}")
        names = []
        for i, arg in enumerate(_flatten_args(node.args[0])):
            if arg is None:
                continue
            v = self.vals.get(arg) if isinstance(arg, self.torch.fx.Node) else None
            if isinstance(v, _Unusable):
                raise self.unsupported(f"output {v.index} of {v.op} is not supported (only its first)",
                                       op=v.op)
            if not isinstance(v, _Val) or v.is_const:
                raise BadInputError(f"model output {i} ({getattr(arg, 'name', arg)!r}) does not depend on "
                                    "the model inputs; edgekit needs outputs computed from inputs")
            names.append(v.name)
            if len(v.shape) == 4:
                io_layout[v.name] = "NCHW"
        if not names:
            raise BadInputError("the model has no tensor outputs")
        return names

    def _call(self, node) -> None:
        torch = self.torch
        target = node.target
        if target is operator.getitem:
            src, idx = node.args
            v = self.vals.get(src)
            if isinstance(v, (tuple, list)):
                self.vals[node] = v[idx]
                return
            if isinstance(v, _Val) and v.is_const:
                self.vals[node] = _Val(None, v.const[idx].shape, np.asarray(v.const[idx]))
                return
            raise self.unsupported("getitem on a value that is not a tuple", op="getitem")
        if node in self.preset:  # e.g. the division of F.normalize (torch_reduction.vector_norm)
            self.vals[node] = self.preset.pop(node)
            return
        key = _op_key(target)
        if key in _SKIP or (key.startswith("aten._") and any(s in key for s in _SKIP_TARGETS_STR)):
            self.vals[node] = None
            return
        args = list(_flatten_args((node.args, node.kwargs)))
        fx_args = [a for a in args if isinstance(a, torch.fx.Node)]
        if all(isinstance(self.vals.get(a), _Val) and self.vals[a].is_const for a in fx_args) \
                and isinstance(target, torch._ops.OpOverload):
            self.vals[node] = self._fold(node)
            return
        meta = node.meta.get("val")
        if isinstance(meta, torch.Tensor) and meta.dtype != torch.float32 and key not in ("aten._to_copy", "aten.to") \
                and key not in _reduction.INTEGER_OUTPUT:
            raise self.unsupported(f"it produces {meta.dtype} values; edgekit imports float32 models")
        if key in _IDENTITY:
            if isinstance(meta, torch.Tensor) and meta.dtype != torch.float32:
                raise self.unsupported(f"conversion to {meta.dtype} is not supported")
            self.vals[node] = self.act(node.args[0])
            return
        handler = _HANDLERS.get(key)
        if handler is None or not isinstance(target, torch._ops.OpOverload):
            raise self.unsupported()
        self.vals[node] = handler(self, node, self._bind(node))

    def _bind(self, node) -> dict[str, Any]:
        out = {}
        for i, a in enumerate(node.target._schema.arguments):
            if i < len(node.args):
                out[a.name] = node.args[i]
            elif a.name in node.kwargs:
                out[a.name] = node.kwargs[a.name]
            elif a.has_default_value():
                out[a.name] = a.default_value
            else:
                out[a.name] = None
        return out

    def _fold(self, node):
        """Evaluate a node whose inputs are all constants with torch itself."""
        torch = self.torch
        fx = torch.fx

        def conv(a):
            if isinstance(a, fx.Node):
                v = self.vals[a]
                return torch.from_numpy(np.array(v.const))
            if isinstance(a, (list, tuple)):
                return type(a)(conv(x) for x in a)
            return a

        try:
            with torch.no_grad():
                res = node.target(*conv(tuple(node.args)), **{k: conv(v) for k, v in node.kwargs.items()})
        except Exception as exc:  # noqa: BLE001
            raise self.unsupported(f"evaluating it on constants failed: {_first_line(exc)}") from None

        def back(r):
            if isinstance(r, torch.Tensor):
                return _Val(None, r.shape, r.detach().cpu().numpy())
            if isinstance(r, (tuple, list)):
                return tuple(back(x) for x in r)
            if isinstance(r, (int, float, bool)):
                return _Val(None, (), np.asarray(r))
            return None

        return back(res)

    # -- post-pass fusion of hardtanh(-1, 1) ----------------------------------
    def _fuse_clamp_chains(self) -> bool:
        g = self.g
        changed = False
        for ops in self.clamp_chains:
            if not all(op in g.ops for op in ops):
                continue
            first, last = ops[0], ops[-1]
            src = first.inputs[0]
            if any(ops[i + 1].inputs[0] != ops[i].outputs[0] for i in range(len(ops) - 1)):
                continue
            prod = g.producers().get(src)
            if (prod is None or prod.type not in FUSABLE or prod.attrs.get("activation", "NONE") != "NONE"
                    or not single_consumer(g, src) or len(prod.outputs) != 1):
                continue
            if any(not single_consumer(g, op.outputs[0]) for op in ops[:-1]):
                continue
            acts = [op.attrs.get("activation", "NONE") for op in ops]
            if acts != ["NONE", "RELU6", "NONE", "NONE"]:
                continue  # a later pass fused something into the chain
            prod.attrs["activation"] = "RELU_N1_TO_1"
            prod.outputs = [last.outputs[0]]
            for op in ops:
                g.ops.remove(op)
            changed = True
        if changed:
            g.remove_unused()
        return changed

    # -- shared lowering helpers ---------------------------------------------
    def fully_connected(self, x: _Val, w: np.ndarray, b: np.ndarray | None, hint: str | None = None) -> str:
        node = self.node
        hint = hint or node.name
        w = np.asarray(w, dtype=np.float32)
        if w.ndim != 2:
            raise self.unsupported(f"weights must be 2-D, are {w.ndim}-D")
        cout, k = w.shape
        if not x.shape or x.shape[-1] != k:
            raise self.unsupported(f"input {list(x.shape)} does not end in {k} features")
        ins = [x.name, self.const_tensor(w, f"{hint}_weights")]
        if b is not None:
            b = np.broadcast_to(np.asarray(b, np.float32).reshape(-1) if np.asarray(b).size == cout
                                else np.asarray(b, np.float32), (cout,))
            ins.append(self.const_tensor(np.array(b), f"{hint}_bias"))
        r = len(x.shape)
        out = x.shape[:-1] + (cout,)
        if r == 1:
            ins[0] = self.reshape(x.name, (1, k), f"{hint}_2d")
            fc = self.emit(OpType.FULLY_CONNECTED, ins, (1, cout), hint=f"{hint}_fc")
            return self.reshape(fc, (cout,), hint)
        if r == 2:
            return self.emit(OpType.FULLY_CONNECTED, ins, out, hint=hint)
        if r == 4:
            ins[0] = self.source_order(x)
            fc = self.emit(OpType.FULLY_CONNECTED, ins, out, {"keep_num_dims": True}, hint=f"{hint}_fc")
            return self.from_source_order(fc, hint)
        return self.emit(OpType.FULLY_CONNECTED, ins, out, {"keep_num_dims": True}, hint=hint)

    def binary(self, op_type: OpType, a: _Val, b: _Val, activation: str = "NONE") -> str:
        shape = self.out_shape()
        r = len(shape)
        if r > 4 and (len(a.shape) == 4 or len(b.shape) == 4):
            raise self.unsupported(f"rank-{r} elementwise ops on 4-D tensors are not supported")
        ins = [self.operand(a, r, self.tmp("a")), self.operand(b, r, self.tmp("b"))]
        attrs = {"activation": activation} if activation != "NONE" else {}
        return self.emit(op_type, ins, _ir_shape(shape), attrs)

    def scalar_op(self, op_type: OpType, x: str, value: float, shape, hint: str, activation="NONE",
                  swap: bool = False) -> str:
        c = self.const_tensor(np.full((1,), value, np.float32), f"{hint}_c")
        ins = [c, x] if swap else [x, c]
        attrs = {"activation": activation} if activation != "NONE" else {}
        return self.emit(op_type, ins, shape, attrs, hint)

    def clamp(self, x: _Val, lo: float | None, hi: float | None) -> _Val:
        node = self.node
        lo = None if lo is None or lo == -math.inf else float(lo)
        hi = None if hi is None or hi == math.inf else float(hi)
        shape = _ir_shape(x.shape)
        if lo is None and hi is None:
            return x
        if lo is not None and hi is not None and lo > hi:
            raise self.unsupported(f"clamp with min {lo} > max {hi}")
        if lo == 0.0 and hi is None:
            out = self.emit(OpType.RELU, [x.name], shape)
            self.relu_src[out] = x.name
            return self.result(out)
        if lo == 0.0 and hi == 6.0:
            return self.result(self.emit(OpType.RELU6, [x.name], shape))
        src_node = node.args[0]
        if (lo is None and hi == 6.0 and x.name in self.relu_src
                and isinstance(src_node, self.torch.fx.Node) and len(src_node.users) == 1):
            return self.result(self.emit(OpType.RELU6, [self.relu_src[x.name]], shape))
        n = node.name
        if lo is not None and hi is not None:
            # clamp(x, lo, hi) = lo + (hi - lo) / 6 * relu6((x - lo) * 6 / (hi - lo))
            s = 6.0 / (hi - lo)
            t1 = self.scalar_op(OpType.MUL, x.name, s, shape, f"{n}_scale")
            t2 = self.scalar_op(OpType.ADD, t1, -lo * s, shape, f"{n}_shift", activation="RELU6")
            t3 = self.scalar_op(OpType.MUL, t2, (hi - lo) / 6.0, shape, f"{n}_unscale")
            out = self.scalar_op(OpType.ADD, t3, lo, shape, n)
            if lo == -1.0 and hi == 1.0:
                prods = self.g.producers()
                self.clamp_chains.append(tuple(prods[t] for t in (t1, t2, t3, out)))
            return self.result(out)
        if lo is not None:  # max(x, lo) = relu(x - lo) + lo
            t1 = self.scalar_op(OpType.SUB, x.name, lo, shape, f"{n}_shift")
            t2 = self.emit(OpType.RELU, [t1], shape, hint=f"{n}_relu")
            return self.result(self.scalar_op(OpType.ADD, t2, lo, shape, n))
        # min(x, hi) = hi - relu(hi - x)
        t1 = self.scalar_op(OpType.SUB, x.name, hi, shape, f"{n}_flip", swap=True)
        t2 = self.emit(OpType.RELU, [t1], shape, hint=f"{n}_relu")
        return self.result(self.scalar_op(OpType.SUB, t2, hi, shape, n, swap=True))


# ---------------------------------------------------------------------------
# op handlers: (importer, node, bound args) -> _Val | tuple
# ---------------------------------------------------------------------------

@_handles("aten.conv2d", "aten.convolution", "aten._convolution")
def _conv(im: _Importer, node, a) -> _Val:
    x = im.act(a["input"])
    if a.get("transposed"):
        return _resample.conv_transpose2d(im, node, a)
    if len(x.shape) == 3:
        return _resample.conv1d(im, node, a)
    if len(x.shape) != 4:
        raise im.unsupported(f"only 1-D and 2-D convolution is supported (input is {len(x.shape)}-D)")
    w = im.const(a["weight"], "the convolution weight")
    b = None if a.get("bias") is None else im.const(a["bias"], "the convolution bias")
    stride, dil = _pair(a["stride"]) or (1, 1), _pair(a["dilation"]) or (1, 1)
    groups = int(a.get("groups") or 1)
    kh, kw = w.shape[2], w.shape[3]
    pad = a["padding"]
    if isinstance(pad, str):
        if pad == "valid":
            pads = (0, 0, 0, 0)
        elif pad == "same":
            th, tw = dil[0] * (kh - 1), dil[1] * (kw - 1)
            pads = (th // 2, tw // 2, th - th // 2, tw - tw // 2)
        else:
            raise im.unsupported(f"padding mode {pad!r}")
    else:
        ph, pw = _pair(pad) or (0, 0)
        pads = (ph, pw, ph, pw)
    cin, cout = x.shape[1], w.shape[0]
    src = x.name
    padded = im.zero_pads.get(x.name)
    if padded is not None and len(node.args[0].users) == 1:
        # an explicit zero padding of H/W just before the conv: let the conv pad instead
        src = padded[0]
        pads = tuple(p + q for p, q in zip(pads, padded[1]))
    attrs = {"strides": stride, "dilations": dil, "pads": pads}
    if groups == 1:
        op, filt = OpType.CONV_2D, w.transpose(0, 2, 3, 1)
    elif groups == cin and w.shape[1] == 1 and cout % cin == 0:
        op, filt = OpType.DEPTHWISE_CONV_2D, w.transpose(1, 2, 3, 0)
        attrs["depth_multiplier"] = cout // cin
    else:
        raise im.unsupported(f"grouped convolution (groups={groups} with {cin} input channels) is not "
                             "supported; only groups=1 and depthwise (groups=in_channels)")
    ins = [src, im.const_tensor(filt, f"{node.name}_filter")]
    if b is not None:
        ins.append(im.const_tensor(b.reshape(-1), f"{node.name}_bias"))
    return im.result(im.emit(op, ins, _ir_shape(im.out_shape()), attrs))


@_handles("aten.linear")
def _linear(im: _Importer, node, a) -> _Val:
    x = im.act(a["input"])
    w = im.const(a["weight"], "the linear weight")
    b = None if a.get("bias") is None else im.const(a["bias"], "the linear bias")
    return im.result(im.fully_connected(x, w, b))


@_handles("aten.mm", "aten.matmul")
def _mm(im: _Importer, node, a) -> _Val:
    x = im.act(a["self"], "the left operand")
    w = im.const(a.get("mat2", a.get("other")), "the right operand")
    if w.ndim != 2:
        raise im.unsupported("only matrix products with a constant 2-D right operand are supported")
    return im.result(im.fully_connected(x, w.T, None))


@_handles("aten.addmm")
def _addmm(im: _Importer, node, a) -> _Val:
    x = im.act(a["mat1"], "the left operand")
    w = im.const(a["mat2"], "the right operand")
    alpha, beta = float(a.get("alpha", 1) or 0), float(a.get("beta", 1) or 0)
    bias_v = im.val(a["self"])
    wt = w.T * np.float32(alpha) if alpha != 1.0 else w.T
    cout = wt.shape[0]
    if bias_v.is_const and bias_v.const.size in (1, cout) and bias_v.const.ndim <= 2:
        bias = np.broadcast_to(np.asarray(bias_v.const, np.float32).reshape(-1), (cout,)) * np.float32(beta)
        return im.result(im.fully_connected(x, wt, bias))
    fc = im.fully_connected(x, wt, None, hint=im.tmp("mm"))
    if beta != 1.0:
        if bias_v.is_const:
            bias_v = _Val(None, bias_v.shape, bias_v.const * np.float32(beta))
        else:
            raise im.unsupported("addmm with beta != 1 and a computed bias")
    return im.result(im.binary(OpType.ADD, _Val(fc, im.out_shape()), bias_v))


@_handles("aten.relu")
def _relu(im, node, a):
    return im.clamp(im.act(a["self"]), 0.0, None)


@_handles("aten.relu6")
def _relu6(im, node, a):
    return im.clamp(im.act(a["self"]), 0.0, 6.0)


@_handles("aten.hardtanh")
def _hardtanh(im, node, a):
    return im.clamp(im.act(a["self"]), _num(a["min_val"]), _num(a["max_val"]))


@_handles("aten.clamp")
def _clamp(im, node, a):
    lo, hi = a.get("min"), a.get("max")
    lo_n, hi_n = _num(im.val(lo)) if lo is not None else None, _num(im.val(hi)) if hi is not None else None
    if (lo is not None and lo_n is None) or (hi is not None and hi_n is None):
        raise im.unsupported("clamp bounds must be constant scalars")
    return im.clamp(im.act(a["self"]), lo_n, hi_n)


@_handles("aten.clamp_min")
def _clamp_min(im, node, a):
    lo = _num(im.val(a["min"]))
    if lo is None:
        raise im.unsupported("clamp bounds must be constant scalars")
    return im.clamp(im.act(a["self"]), lo, None)


@_handles("aten.clamp_max")
def _clamp_max(im, node, a):
    hi = _num(im.val(a["max"]))
    if hi is None:
        raise im.unsupported("clamp bounds must be constant scalars")
    return im.clamp(im.act(a["self"]), None, hi)


@_handles("aten.sigmoid")
def _sigmoid(im, node, a):
    x = im.act(a["self"])
    return im.result(im.emit(OpType.LOGISTIC, [x.name], _ir_shape(x.shape)))


@_handles("aten.tanh")
def _tanh(im, node, a):
    x = im.act(a["self"])
    return im.result(im.emit(OpType.TANH, [x.name], _ir_shape(x.shape)))


@_handles("aten.silu")
def _silu(im, node, a):
    x = im.act(a["self"])
    shape = _ir_shape(x.shape)
    s = im.emit(OpType.LOGISTIC, [x.name], shape, hint=im.tmp("sigmoid"))
    return im.result(im.emit(OpType.MUL, [x.name, s], shape))


@_handles("aten.hardsigmoid")
def _hardsigmoid(im, node, a):
    x = im.act(a["self"])
    shape = _ir_shape(x.shape)
    t = im.scalar_op(OpType.ADD, x.name, 3.0, shape, im.tmp("plus3"), activation="RELU6")
    return im.result(im.scalar_op(OpType.MUL, t, 1.0 / 6.0, shape, node.name))


@_handles("aten.neg")
def _neg(im, node, a):
    x = im.act(a["self"])
    return im.result(im.scalar_op(OpType.MUL, x.name, -1.0, _ir_shape(x.shape), node.name))


def _scaled(im: _Importer, v: _Val, alpha) -> _Val:
    alpha = 1.0 if alpha is None else float(alpha)
    if alpha == 1.0:
        return v
    if v.is_const:
        return _Val(None, v.shape, np.asarray(v.const, np.float32) * np.float32(alpha))
    return _Val(im.scalar_op(OpType.MUL, v.name, alpha, _ir_shape(v.shape), im.tmp("alpha")), v.shape)


@_handles("aten.add")
def _add(im, node, a):
    return im.result(im.binary(OpType.ADD, im.val(a["self"]), _scaled(im, im.val(a["other"]), a.get("alpha"))))


@_handles("aten.sub")
def _sub(im, node, a):
    return im.result(im.binary(OpType.SUB, im.val(a["self"]), _scaled(im, im.val(a["other"]), a.get("alpha"))))


@_handles("aten.rsub")
def _rsub(im, node, a):
    return im.result(im.binary(OpType.SUB, im.val(a["other"]), _scaled(im, im.val(a["self"]), a.get("alpha"))))


@_handles("aten.mul")
def _mul(im, node, a):
    return im.result(im.binary(OpType.MUL, im.val(a["self"]), im.val(a["other"])))


@_handles("aten.div")
def _div(im, node, a):
    if a.get("rounding_mode") is not None:
        raise im.unsupported(f"division with rounding_mode={a['rounding_mode']!r}")
    x, d = im.val(a["self"]), im.val(a["other"])
    if not d.is_const:
        return _elementwise.divide(im, x, d)
    with np.errstate(divide="ignore"):
        recip = (1.0 / np.asarray(d.const, np.float64)).astype(np.float32)
    return im.result(im.binary(OpType.MUL, x, _Val(None, d.shape, recip)))


def _pool_common(im: _Importer, a, kind: str):
    x = im.act(a["self"])
    if len(x.shape) != 4:
        raise im.unsupported(f"only 2-D pooling on 4-D input is supported (input is {len(x.shape)}-D)")
    k = _pair(a["kernel_size"])
    s = _pair(a.get("stride")) or k
    p = _pair(a.get("padding")) or (0, 0)
    out = im.out_shape() if kind != "max_idx" else tuple(int(d) for d in im.node.meta["val"][0].shape)
    pads = [p[0], p[1], p[0], p[1]]
    extra = [0, 0]
    for i, (size, kk, ss, pp, o) in enumerate(zip(x.shape[2:], k, s, p, out[2:])):
        extra[i] = max(0, (o - 1) * ss + kk - (size + 2 * pp))
    return x, k, s, p, pads, extra, out


def _max_pool(im: _Importer, node, a, out_shape_kind: str) -> str:
    x, k, s, p, pads, extra, out = _pool_common(im, a, out_shape_kind)
    if (_pair(a.get("dilation")) or (1, 1)) != (1, 1):
        raise im.unsupported("dilated max pooling is not supported")
    pads[2] += extra[0]  # ceil_mode: windows that run past the end see only real values
    pads[3] += extra[1]
    attrs = {"kernel": k, "strides": s, "pads": tuple(pads)}
    return im.emit(OpType.MAX_POOL_2D, [x.name], _ir_shape(out), attrs, hint=node.name)


@_handles("aten.max_pool2d")
def _max_pool2d(im, node, a):
    return im.result(_max_pool(im, node, a, "max"))


@_handles("aten.max_pool2d_with_indices")
def _max_pool2d_idx(im, node, a):
    name = _max_pool(im, node, a, "max_idx")
    shape = tuple(int(d) for d in node.meta["val"][0].shape)
    return (_Val(name, shape), _Unusable(str(node.target), 1))


@_handles("aten.avg_pool2d")
def _avg_pool2d(im, node, a):
    x, k, s, p, pads, extra, out = _pool_common(im, a, "avg")
    if any(extra):
        raise im.unsupported("avg_pool2d with ceil_mode=True that adds a partial window is not supported")
    include = bool(a.get("count_include_pad", True))
    divisor = a.get("divisor_override")
    src = x.name
    if any(p) and include:
        # torch counts the zero padding in the average: pad explicitly, then pool VALID.
        ir = _ir_shape(x.shape)
        padded = (ir[0], ir[1] + 2 * p[0], ir[2] + 2 * p[1], ir[3])
        src = im.emit(OpType.PAD, [x.name], padded,
                      {"pads": (0, 0, p[0], p[0], p[1], p[1], 0, 0), "value": 0.0}, hint=im.tmp("pad"))
        pads = [0, 0, 0, 0]
    attrs = {"kernel": k, "strides": s, "pads": tuple(pads)}
    shape = _ir_shape(out)
    if divisor:
        if any(pads):
            raise im.unsupported("divisor_override with count_include_pad=False padding")
        pooled = im.emit(OpType.AVERAGE_POOL_2D, [src], shape, attrs, hint=im.tmp("pool"))
        return im.result(im.scalar_op(OpType.MUL, pooled, k[0] * k[1] / float(divisor), shape, node.name))
    return im.result(im.emit(OpType.AVERAGE_POOL_2D, [src], shape, attrs))


def _adaptive(im: _Importer, node, a, op_type: OpType, out) -> str:
    x = im.act(a["self"])
    if len(x.shape) != 4:
        raise im.unsupported("only 4-D input is supported")
    h, w = x.shape[2:]
    oh, ow = out[2:]
    shape = _ir_shape(out)
    if (oh, ow) == (h, w):
        return x.name
    if (oh, ow) == (1, 1) and op_type is OpType.AVERAGE_POOL_2D:
        return im.emit(OpType.MEAN, [x.name], shape, {"axes": (1, 2), "keep_dims": True})
    if h % oh or w % ow:
        raise im.unsupported(f"adaptive pooling from {h}x{w} to {oh}x{ow} (sizes must divide evenly)")
    kh, kw = h // oh, w // ow
    return im.emit(op_type, [x.name], shape, {"kernel": (kh, kw), "strides": (kh, kw)})


@_handles("aten.adaptive_avg_pool2d", "aten._adaptive_avg_pool2d")
def _adaptive_avg(im, node, a):
    return im.result(_adaptive(im, node, a, OpType.AVERAGE_POOL_2D, im.out_shape()))


@_handles("aten.adaptive_max_pool2d")
def _adaptive_max(im, node, a):
    out = tuple(int(d) for d in node.meta["val"][0].shape)
    return (_Val(_adaptive(im, node, a, OpType.MAX_POOL_2D, out), out), _Unusable(str(node.target), 1))


def _reduce_mean(im: _Importer, x: _Val, dims, keepdim: bool, hint: str | None = None) -> str:
    hint = hint or im.node.name
    r = len(x.shape)
    if r == 0:
        return x.name
    dims = list(range(r)) if dims is None or (isinstance(dims, (list, tuple)) and not dims) else \
        ([dims] if isinstance(dims, int) else list(dims))
    torch_axes = sorted({int(d) % r for d in dims})
    ir_axes = sorted(_ir_axis(d, r) for d in torch_axes)
    out = im.out_shape()
    if keepdim:
        return im.emit(OpType.MEAN, [x.name], _ir_shape(out), {"axes": tuple(ir_axes), "keep_dims": True},
                       hint=hint)
    order = _ir_to_torch_axes(r)
    rest = [order[i] for i in range(r) if i not in ir_axes]  # torch axes in the IR result's order
    ir_out = tuple(x.shape[t] for t in rest)
    m = im.emit(OpType.MEAN, [x.name], ir_out, {"axes": tuple(ir_axes), "keep_dims": False},
                hint=f"{hint}_mean" if rest != sorted(rest) else hint)
    if rest != sorted(rest):
        perm = [rest.index(t) for t in sorted(rest)]
        m = im.transpose(m, perm, hint)
    return m


@_handles("aten.mean")
def _mean(im, node, a):
    x = im.act(a["self"])
    return im.result(_reduce_mean(im, x, a.get("dim"), bool(a.get("keepdim", False))))


@_handles("aten.sum")
def _sum(im, node, a):
    x = im.act(a["self"])
    dims = a.get("dim")
    r = len(x.shape)
    axes = range(r) if not dims else ([dims] if isinstance(dims, int) else dims)
    count = int(np.prod([x.shape[int(d) % r] for d in axes])) if r else 1
    m = _reduce_mean(im, x, dims, bool(a.get("keepdim", False)), hint=im.tmp("avg"))
    shape = im.g.tensor(m).shape
    return im.result(im.scalar_op(OpType.MUL, m, float(count), shape, node.name))


@_handles("aten.batch_norm", "aten._native_batch_norm_legit_no_training", "aten.native_batch_norm",
          "aten._native_batch_norm_legit", "aten.cudnn_batch_norm", "aten.miopen_batch_norm")
def _batch_norm(im, node, a):
    x = im.act(a["input"])
    if a.get("training"):
        raise im.unsupported("batch norm in training mode; put the model in eval() mode")
    if a.get("running_mean") is None or a.get("running_var") is None:
        raise im.unsupported("batch norm without running statistics")
    mean = im.const(a["running_mean"], "the running mean").reshape(-1)
    var = im.const(a["running_var"], "the running variance").reshape(-1)
    c = mean.size
    r = len(x.shape)
    if r not in (2, 3, 4) or x.shape[1] != c:
        raise im.unsupported(f"batch norm over a {r}-D input (only [N, C], [N, C, L] and [N, C, H, W])")
    gamma = np.ones(c, np.float32) if a.get("weight") is None else im.const(a["weight"], "the weight").reshape(-1)
    beta = np.zeros(c, np.float32) if a.get("bias") is None else im.const(a["bias"], "the bias").reshape(-1)
    eps = a.get("eps", a.get("epsilon"))
    eps = 1e-5 if eps is None else float(eps)
    n = node.name
    ins = [x.name, im.const_tensor(gamma, f"{n}_gamma"), im.const_tensor(beta, f"{n}_beta"),
           im.const_tensor(mean, f"{n}_mean"), im.const_tensor(var, f"{n}_var")]
    if r == 3:  # BatchNorm1d over [N, C, L]: on the NHWC [N, 1, L, C] view, as 1-D convs run
        out = _resample.batch_norm_1d(im, ins, x, eps, a["input"])
    else:
        out = im.emit(OpType.BATCH_NORM, ins, _ir_shape(x.shape), {"epsilon": eps})
    v = _Val(out, x.shape)
    meta = node.meta.get("val")
    if isinstance(meta, (tuple, list)):
        return (v,) + tuple(_Unusable(str(node.target), i) for i in range(1, len(meta)))
    return v


@_handles("aten.cat", "aten.concat", "aten.concatenate")
def _cat(im, node, a):
    vals = [im.val(t) for t in a["tensors"]]
    out = im.out_shape()
    r = len(out)
    vals = [v for v in vals if not (v.shape == (0,))]  # torch ignores empty 1-D tensors
    if all(v.is_const for v in vals):
        raise im.unsupported("concatenation of constants only")
    if len(vals) == 1:
        return vals[0]
    if any(len(v.shape) != r for v in vals):
        raise im.unsupported("concatenation of tensors of different ranks")
    names = []
    for i, v in enumerate(vals):
        if v.is_const:
            arr = np.asarray(v.const, np.float32)
            names.append(im.const_tensor(arr.transpose(NCHW_TO_NHWC) if r == 4 else arr, im.tmp(f"in{i}")))
        else:
            names.append(v.name)
    axis = _ir_axis(int(a.get("dim", 0) or 0), r)
    return im.result(im.emit(OpType.CONCATENATION, names, _ir_shape(out), {"axis": axis}))


@_handles("aten.view", "aten.reshape", "aten._unsafe_view", "aten.flatten", "aten.unflatten",
          "aten.squeeze", "aten.unsqueeze", "aten.view_as", "aten.reshape_as", "aten.view_copy",
          "aten.squeeze_copy", "aten.unsqueeze_copy")
def _reshape(im, node, a):
    x = im.act(next(iter(a.values())))
    out = im.out_shape()
    if out == x.shape:
        return x
    src = im.source_order(x)
    if len(out) == 4:
        r = im.reshape(src, out, im.tmp("nchw_out"))
        return im.result(im.from_source_order(r, node.name))
    return im.result(im.reshape(src, out, node.name))


@_handles("aten.expand", "aten.expand_as", "aten.expand_copy")
def _expand(im, node, a):
    x = im.act(a["self"])
    if im.out_shape() != x.shape:
        raise im.unsupported("expand that repeats values is not supported")
    return x


@_handles("aten.slice", "aten.slice_copy")
def _slice(im, node, a):
    x = im.act(a["self"])
    if im.out_shape() != x.shape or int(a.get("step") or 1) != 1:
        raise im.unsupported("slicing is not supported (only slices that keep the whole tensor)")
    return x


@_handles("aten.permute", "aten.permute_copy", "aten.transpose", "aten.t", "aten.numpy_T", "aten.swapaxes",
          "aten.transpose_copy", "aten.t_copy")
def _permute(im, node, a):
    x = im.act(a["self"])
    r = len(x.shape)
    key = _op_key(node.target)
    if key in ("aten.permute", "aten.permute_copy"):
        dims = [int(d) % r for d in a["dims"]]
    elif key in ("aten.transpose", "aten.swapaxes", "aten.transpose_copy"):
        d0 = int(a.get("dim0", a.get("axis0"))) % r
        d1 = int(a.get("dim1", a.get("axis1"))) % r
        dims = list(range(r))
        dims[d0], dims[d1] = dims[d1], dims[d0]
    else:
        dims = list(range(r))[::-1]
    in_l = _ir_to_torch_axes(r)
    out_l = _ir_to_torch_axes(r)
    perm = [in_l.index(dims[out_l[k]]) for k in range(r)]
    if perm == list(range(r)):
        return x
    return im.result(im.transpose(x.name, perm, node.name))


@_handles("aten.softmax", "aten._softmax")
def _softmax(im, node, a):
    x = im.act(a["self"])
    r = len(x.shape)
    if a.get("half_to_float"):
        raise im.unsupported("half_to_float softmax")
    axis = _ir_axis(int(a["dim"]), max(r, 1)) if r else 0
    shape = _ir_shape(x.shape)
    if r == 0 or axis == r - 1:
        return im.result(im.emit(OpType.SOFTMAX, [x.name], shape, {"beta": 1.0}))
    perm = [i for i in range(r) if i != axis] + [axis]
    inv = list(np.argsort(perm))
    t = im.transpose(x.name, perm, im.tmp("last"))
    s = im.emit(OpType.SOFTMAX, [t], im.g.tensor(t).shape, {"beta": 1.0}, hint=im.tmp("softmax"))
    return im.result(im.transpose(s, inv, node.name))


@_handles("aten.constant_pad_nd", "aten.pad")
def _pad(im, node, a):
    x = im.act(a["self"])
    mode = a.get("mode", "constant") or "constant"
    if mode != "constant":
        raise im.unsupported(f"{mode} padding is not supported (only constant)")
    value = float(a.get("value") or 0.0)
    pad = [int(p) for p in a["pad"]]
    r = len(x.shape)
    if len(pad) % 2 or len(pad) // 2 > r:
        raise im.unsupported(f"bad pad list {pad}")
    if any(p < 0 for p in pad):
        raise im.unsupported("negative padding (cropping) is not supported")
    per_axis = [[0, 0] for _ in range(r)]
    for i in range(len(pad) // 2):
        per_axis[r - 1 - i] = [pad[2 * i], pad[2 * i + 1]]
    order = _ir_to_torch_axes(r)
    flat = tuple(v for i in range(r) for v in per_axis[order[i]])
    if not any(flat):
        return x
    out = im.emit(OpType.PAD, [x.name], _ir_shape(im.out_shape()), {"pads": flat, "value": value})
    if r == 4 and value == 0.0 and not any(flat[:2]) and not any(flat[6:]):
        im.zero_pads[out] = (x.name, (flat[2], flat[4], flat[3], flat[5]))
    return im.result(out)


@_handles("aten.native_dropout")
def _native_dropout(im, node, a):
    if a.get("train"):
        raise im.unsupported("dropout in training mode; put the model in eval() mode")
    return (im.act(a["input"]), _Unusable(str(node.target), 1))


# Recurrent layers (nn.LSTM, nn.GRU): edgekit.frontends.torch_recurrent.
from edgekit.frontends import torch_recurrent as _recurrent  # noqa: E402
from edgekit.frontends import torch_resample as _resample  # noqa: E402
from edgekit.frontends import torch_elementwise as _elementwise  # noqa: E402

_handles("aten.lstm")(_recurrent.lstm)

# Elementwise ops (hard-swish, leaky/parametric ReLU, GELU, ...): edgekit.frontends.torch_elementwise.
for _name, _fn in _elementwise.HANDLERS.items():
    _handles(_name)(_fn)
_handles("aten.gru")(_recurrent.gru)
_handles("aten.rnn_tanh")(_recurrent.rnn_tanh)

# Resizing, transposed and 1-D convolution and pooling: edgekit.frontends.torch_resample.
_handles("aten.upsample_nearest2d")(_resample.upsample_nearest)
_handles("aten._upsample_nearest_exact2d")(_resample.upsample_nearest_exact)
_handles("aten.upsample_bilinear2d")(_resample.upsample_bilinear)
_handles("aten.conv_transpose2d")(_resample.conv_transpose2d)
_handles("aten.conv_transpose1d")(_resample.conv_transpose1d)
_handles("aten.upsample_nearest1d")(_resample.upsample_nearest1d)
_handles("aten._upsample_nearest_exact1d")(_resample.upsample_nearest_exact1d)
_handles("aten.upsample_linear1d")(_resample.upsample_linear1d)
_handles("aten.conv1d")(_resample.conv1d)
_handles("aten.max_pool1d")(_resample.max_pool1d)
_handles("aten.max_pool1d_with_indices")(_resample.max_pool1d_with_indices)
_handles("aten.avg_pool1d")(_resample.avg_pool1d)
_handles("aten.adaptive_avg_pool1d")(_resample.adaptive_avg_pool1d)
_handles("aten.adaptive_max_pool1d")(_resample.adaptive_max_pool1d)

# Reductions, normalizations, matrix products: edgekit.frontends.torch_reduction.
from edgekit.frontends import torch_reduction as _reduction  # noqa: E402

for _name, _fn in _reduction.HANDLERS.items():
    _handles(_name)(_fn)

# Slicing, splitting, stacking, index_select, pixel (un)shuffle: edgekit.frontends.torch_movement.
from edgekit.frontends import torch_movement as _movement  # noqa: E402

for _name, _fn in _movement.HANDLERS.items():
    _handles(_name)(_fn)

SUPPORTED_TORCH_OPS: tuple[str, ...] = tuple(sorted(set(_HANDLERS) | _IDENTITY))

