"""IR -> TFLite for the elementwise ops (HARD_SWISH ... SQUARED_DIFFERENCE): one builtin each."""

from __future__ import annotations

from edgekit.frontends.tflite.schema_enums import ActivationFunctionType, BuiltinOperator, BuiltinOptions
from edgekit.ir import Op, OpType
from edgekit.ir.shapes_elementwise import ELEMENTWISE_OPS, UNARY_OPS

ELEMENTWISE_IR_OPS = tuple(sorted(t.value for t in ELEMENTWISE_OPS))

# Options table of each op (None: the op has no options table in the schema).
_OPTIONS = {
    OpType.HARD_SWISH: BuiltinOptions.HardSwishOptions, OpType.LEAKY_RELU: BuiltinOptions.LeakyReluOptions,
    OpType.ABS: BuiltinOptions.AbsOptions, OpType.NEG: BuiltinOptions.NegOptions,
    OpType.EXP: BuiltinOptions.ExpOptions, OpType.GELU: BuiltinOptions.GeluOptions,
    OpType.MAXIMUM: BuiltinOptions.MaximumMinimumOptions, OpType.MINIMUM: BuiltinOptions.MaximumMinimumOptions,
    OpType.DIV: BuiltinOptions.DivOptions, OpType.SQUARED_DIFFERENCE: BuiltinOptions.SquaredDifferenceOptions,
}


def lower_elementwise(low, op: Op, a: dict) -> None:
    """Emit ``op`` into the lowering ``low`` (edgekit.backends.tflite.writer._Lowering)."""
    t = op.type
    n_in = 1 if t in UNARY_OPS else 2
    ins = [low.tensor(i) for i in op.inputs[:n_in]]
    out = [low.tensor(o) for o in op.outputs]
    fields: list = []
    if t is OpType.LEAKY_RELU:
        fields = [(0, "f32", a["alpha"])]
    elif t is OpType.GELU:
        fields = [(0, "bool", a["approximate"])]
    elif t is OpType.DIV:
        fields = [(0, "i8", int(ActivationFunctionType[a["activation"]]))]
    opt_type = _OPTIONS.get(t)
    if opt_type is None:
        low.emit(BuiltinOperator[t.value], 1, ins, out)
    else:
        low.emit(BuiltinOperator[t.value], 1, ins, out, opt_type, fields)
