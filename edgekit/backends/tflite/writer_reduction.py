"""``.tflite`` lowering of REDUCE_MAX, SUM, ARG_MAX, ARG_MIN, L2_NORMALIZATION and
BATCH_MATMUL: each maps onto the TFLite builtin of the same name (axes as an int32
constant input; ARG_MAX/MIN's axis as a one-element int32 input and output_type
INT32). Operator versions are the ones the TFLite converter assigns."""

from __future__ import annotations

import numpy as np

from edgekit.frontends.tflite.schema_enums import ActivationFunctionType, BuiltinOperator, BuiltinOptions, TensorType
from edgekit.ir import DType, Op, OpType

REDUCTION_IR_OPS = ("REDUCE_MAX", "SUM", "ARG_MAX", "ARG_MIN", "L2_NORMALIZATION", "BATCH_MATMUL")


def lower_reduction(low, op: Op, a: dict) -> None:
    """Emit the TFLite operator of ``op`` through the writer's ``_Lowering`` ``low``."""
    t = op.type
    g = low.g
    xdt = g.tensor(op.inputs[0]).dtype
    int8 = xdt is DType.INT8
    x = low.tensor(op.inputs[0])
    out = [low.tensor(o) for o in op.outputs]
    if t in (OpType.REDUCE_MAX, OpType.SUM):
        axes = low.const(f"{op.name}/axes", np.asarray(a["axes"], np.int32), DType.INT32)
        code = BuiltinOperator.REDUCE_MAX if t is OpType.REDUCE_MAX else BuiltinOperator.SUM
        low.emit(code, 2 if int8 else 1, [x, axes], out, BuiltinOptions.ReducerOptions,
                 [(0, "bool", a["keep_dims"])])
    elif t in (OpType.ARG_MAX, OpType.ARG_MIN):
        axis = low.const(f"{op.name}/axis", np.asarray([a["axis"]], np.int32), DType.INT32)
        if t is OpType.ARG_MAX:
            code, opt = BuiltinOperator.ARG_MAX, BuiltinOptions.ArgMaxOptions
        else:
            code, opt = BuiltinOperator.ARG_MIN, BuiltinOptions.ArgMinOptions
        low.emit(code, 2 if int8 else 1, [x, axis], out, opt, [(0, "i8", int(TensorType.INT32))])
    elif t is OpType.L2_NORMALIZATION:
        low.emit(BuiltinOperator.L2_NORMALIZATION, 2 if int8 else 1, [x], out, BuiltinOptions.L2NormOptions,
                 [(0, "i8", int(ActivationFunctionType[a["activation"]]))])
    elif t is OpType.BATCH_MATMUL:
        y = low.tensor(op.inputs[1])
        low.emit(BuiltinOperator.BATCH_MATMUL, 2 if int8 else 1, [x, y], out, BuiltinOptions.BatchMatMulOptions,
                 [(0, "bool", a["adj_x"]), (1, "bool", a["adj_y"])])
    else:  # pragma: no cover - the writer dispatches only REDUCTION_IR_OPS here
        raise AssertionError(t)
