"""Element-type rules of the data-movement ops, checked by ``verify``.

- CAST: any of float32, int8, int16, int32, bool to any other (TFLite Micro's kernel);
- GATHER: int32 or int64 indices, the values' type for the output;
- the others: every input and output has the input's type, and int8/int16 operands share
  the input's quantization parameters (the kernels copy raw values; see
  ``edgekit.reference.movement_kernels``).
"""

from __future__ import annotations

import numpy as np

from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph, Op
from edgekit.ir.ops import OpType

CAST_TYPES = (DType.FLOAT32, DType.INT8, DType.INT16, DType.INT32, DType.BOOL)


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return (np.array_equal(np.float32(a.scale), np.float32(b.scale))
            and np.array_equal(np.asarray(a.zero_point), np.asarray(b.zero_point)))


def check_movement_types(graph: Graph, op: Op, where: str, bad) -> None:
    x = graph.tensor(op.inputs[0])
    if op.type is OpType.CAST:
        y = graph.tensor(op.outputs[0])
        for t in (x, y):
            if t.dtype not in CAST_TYPES:
                bad(f"{where}: CAST takes {', '.join(d.value for d in CAST_TYPES)}; "
                    f"tensor {t.name!r} is {t.dtype.value}")
        return
    values = [op.inputs[0]] if op.type is OpType.GATHER else [i for i in op.inputs if i]
    if op.type is OpType.GATHER:
        idx = graph.tensor(op.inputs[1])
        if idx.dtype not in (DType.INT32, DType.INT64):
            bad(f"{where}: indices {idx.name!r} must be int32 or int64, are {idx.dtype.value}")
    for name in values[1:] + list(op.outputs):
        t = graph.tensor(name)
        if t.dtype is not x.dtype:
            bad(f"{where}: tensor {name!r} is {t.dtype.value} but the input is {x.dtype.value}")
        elif t.dtype in (DType.INT8, DType.INT16) and not _same(x.quant, t.quant):
            bad(f"{where}: tensor {name!r} must share the input's quantization parameters "
                "(the op copies raw values)")
    if x.dtype is DType.INT8 and x.quant is not None and not x.quant.is_per_tensor:
        bad(f"{where}: int8 activations need per-tensor quantization")
