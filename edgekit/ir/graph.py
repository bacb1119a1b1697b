"""The IR graph: tensors, constant buffers, ops and graph inputs/outputs.

One op type (``Op``) over one op enum (``OpType``). Tensors are referred to by
name; a tensor with ``data`` is a constant buffer. Layout is NHWC everywhere.
``Graph.ops`` is always kept in a valid execution (topological) order.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.ops import OpType


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: DType
    quant: QuantParams | None = None
    data: np.ndarray | None = None

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        self.dtype = DType(self.dtype)
        if self.data is not None:
            self.data = np.array(self.data, dtype=self.dtype.np, order="C")  # keeps 0-d arrays 0-d
            if tuple(self.data.shape) != self.shape:
                raise ValueError(f"tensor {self.name!r}: data shape {self.data.shape} != {self.shape}")

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass
class Op:
    type: OpType
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self):
        self.type = OpType(self.type)
        self.inputs = list(self.inputs)
        self.outputs = list(self.outputs)

    def input(self, i: int) -> str | None:
        """Name of input ``i``, or None when it is absent ("" marks an absent optional input)."""
        if i < len(self.inputs) and self.inputs[i]:
            return self.inputs[i]
        return None


class Graph:
    """A typed dataflow graph in NHWC layout."""

    def __init__(self, name: str = "model"):
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.ops: list[Op] = []
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        # Free-form facts carried along the pipeline: source format, the source's
        # layout of each graph input/output (e.g. "NCHW"), producer, ...
        self.metadata: dict[str, Any] = {}
        self._names = itertools.count()

    # -- building -----------------------------------------------------------
    def add_tensor(self, name: str, shape: Iterable[int], dtype: DType | str,
                   quant: QuantParams | None = None, data: np.ndarray | None = None) -> Tensor:
        if name in self.tensors:
            raise ValueError(f"tensor {name!r} already exists")
        t = Tensor(name, tuple(shape), DType(dtype), quant, data)
        self.tensors[name] = t
        return t

    def add_const(self, name: str, data: np.ndarray, quant: QuantParams | None = None,
                  dtype: DType | str | None = None) -> Tensor:
        arr = np.asarray(data)
        dt = DType(dtype) if dtype is not None else DType.from_numpy(arr.dtype)
        return self.add_tensor(self.unique_name(name), arr.shape, dt, quant, arr.astype(dt.np))

    def add_op(self, type: OpType | str, inputs: list[str], outputs: list[str],
               attrs: dict[str, Any] | None = None, name: str = "") -> Op:
        name = name or self.unique_name(OpType(type).value.lower(), ops=True)
        op = Op(OpType(type), inputs, outputs, dict(attrs or {}), name)
        self.ops.append(op)
        return op

    def unique_name(self, base: str, ops: bool = False) -> str:
        taken = {o.name for o in self.ops} if ops else self.tensors
        if base not in taken:
            return base
        while True:
            cand = f"{base}_{next(self._names)}"
            if cand not in taken:
                return cand

    # -- queries ------------------------------------------------------------
    def tensor(self, name: str) -> Tensor:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in graph {self.name!r}") from None

    def producers(self) -> dict[str, Op]:
        return {out: op for op in self.ops for out in op.outputs}

    def consumers(self) -> dict[str, list[Op]]:
        users: dict[str, list[Op]] = {name: [] for name in self.tensors}
        for op in self.ops:
            for i in op.inputs:
                if i:
                    users.setdefault(i, []).append(op)
        return users

    def const(self, name: str | None) -> np.ndarray | None:
        if not name:
            return None
        t = self.tensors.get(name)
        return None if t is None else t.data

    def input_tensors(self) -> list[Tensor]:
        return [self.tensors[n] for n in self.inputs]

    def output_tensors(self) -> list[Tensor]:
        return [self.tensors[n] for n in self.outputs]

    def op_types(self) -> list[str]:
        return [op.type.value for op in self.ops]

    def copy(self) -> "Graph":
        return copy.deepcopy(self)

    # -- maintenance --------------------------------------------------------
    def replace_uses(self, old: str, new: str) -> None:
        """Point every consumer (and graph output) of ``old`` at ``new``."""
        for op in self.ops:
            op.inputs = [new if i == old else i for i in op.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def remove_unused(self) -> int:
        """Drop ops whose outputs nobody needs, then tensors nobody references."""
        removed = 0
        while True:
            used = set(self.outputs)
            for op in self.ops:
                used.update(i for i in op.inputs if i)
            keep = [op for op in self.ops if any(o in used for o in op.outputs)]
            if len(keep) == len(self.ops):
                break
            removed += len(self.ops) - len(keep)
            self.ops = keep
        referenced = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            referenced.update(n for n in op.inputs + op.outputs if n)
        for name in list(self.tensors):
            if name not in referenced:
                del self.tensors[name]
        return removed

    def toposort(self) -> None:
        """Reorder ``ops`` so every op comes after the producers of its inputs.

        Stable: keeps the current order where it is already valid.
        """
        from edgekit.errors import VerifyError

        produced_by = {}
        for idx, op in enumerate(self.ops):
            for o in op.outputs:
                produced_by[o] = idx
        available = set(self.inputs) | {n for n, t in self.tensors.items() if t.is_const}
        pending = list(self.ops)
        order: list[Op] = []
        while pending:
            progressed = False
            rest = []
            for op in pending:
                if all((not i) or i in available or i not in produced_by for i in op.inputs):
                    order.append(op)
                    available.update(op.outputs)
                    progressed = True
                else:
                    rest.append(op)
            if not progressed:
                names = ", ".join(o.name for o in rest[:5])
                raise VerifyError(f"graph {self.name!r} has a cycle through ops: {names}")
            pending = rest
        self.ops = order

    def __repr__(self) -> str:
        return (f"Graph({self.name!r}, {len(self.ops)} ops, {len(self.tensors)} tensors, "
                f"inputs={self.inputs}, outputs={self.outputs})")
