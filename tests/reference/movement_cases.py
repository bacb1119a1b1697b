"""One-op IR graphs of the data-movement ops, for the oracle tests (TFLM, LiteRT) and the
C kernel tests: a ``Case`` holds the graph and its input arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType, normalize_attrs
from edgekit.ir.shapes import infer_op_shapes


@dataclass
class Case:
    graph: Graph
    inputs: list[np.ndarray]


def one_op(op_type: OpType, attrs: dict, xs: list[np.ndarray], dtype: DType, quant: QuantParams | None,
           *, consts: dict[int, np.ndarray] | None = None, out_dtype: DType | None = None,
           out_quant: QuantParams | None = None) -> Case:
    """A graph of one op over graph inputs ``xs`` (all of ``dtype``/``quant``) and constant
    operands ``consts`` (input slot -> array) placed after them."""
    g = Graph(op_type.value.lower())
    names = []
    for i, x in enumerate(xs):
        n = f"x{i}"
        g.add_tensor(n, x.shape, dtype, quant)
        g.inputs.append(n)
        names.append(n)
    for slot, arr in sorted((consts or {}).items()):
        names.insert(slot, g.add_const(f"c{slot}", arr).name)
    shapes = [g.tensor(n).shape for n in names]
    outs = infer_op_shapes(op_type, shapes, normalize_attrs(op_type, attrs))
    odt = out_dtype or dtype
    oq = out_quant if out_dtype is not None else quant
    out_names = []
    for k, s in enumerate(outs):
        g.add_tensor(f"y{k}", s, odt, oq)
        out_names.append(f"y{k}")
    g.add_op(op_type, names, out_names, attrs, "op")
    g.outputs = out_names
    return Case(g, list(xs))
