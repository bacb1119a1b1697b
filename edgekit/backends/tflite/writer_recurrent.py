"""IR -> TFLite for UNIDIRECTIONAL_SEQUENCE_LSTM and SVDF.

Both keep their state in variable tensors (``is_variable``), which TFLite Micro zeroes
(int8: sets to the zero point) when it allocates them, so the IR's "states start at
zero" holds. The LSTM is written with TFLite's 24 operands (peephole, projection and
layer-norm slots empty, -1), the hidden state tensor with the output's parameters and
the cell state float32 or int16 with scale 2^cell_state_exponent, the form TFLite
Micro's integer LSTM reads (no intermediate tensors: its gate scales are fixed).
"""

from __future__ import annotations

from edgekit.backends.tflite.flatbuf import QuantSpec, TensorSpec
from edgekit.errors import BadInputError
from edgekit.frontends.tflite.schema_enums import ActivationFunctionType, BuiltinOperator, BuiltinOptions, TensorType
from edgekit.ir import DType, Op, OpType


_TYPES = {DType.FLOAT32: TensorType.FLOAT32, DType.INT8: TensorType.INT8, DType.INT16: TensorType.INT16}


def _variable(low, base: str, shape, dtype: DType, scale: float | None, zero_point: int = 0) -> int:
    q = QuantSpec([float(scale)], [int(zero_point)], 0) if scale is not None else None
    low.m.tensors.append(TensorSpec(low._new_name(base), tuple(int(d) for d in shape), int(_TYPES[dtype]), 0, q,
                                    is_variable=True))
    return len(low.m.tensors) - 1


def lower_recurrent(low, op: Op, a: dict) -> None:
    """Emit ``op`` into the lowering ``low`` (edgekit.backends.tflite.writer._Lowering)."""
    g = low.g
    xt = g.tensor(op.inputs[0])
    ot = g.tensor(op.outputs[0])
    int8 = xt.dtype is DType.INT8
    where = f"op {op.name!r} ({op.type.value})"
    if xt.dtype not in (DType.FLOAT32, DType.INT8):
        raise BadInputError(f"{where}: {xt.dtype.value} inputs cannot be written (float32 or int8 only)")
    out = [low.tensor(o) for o in op.outputs]
    if op.type is OpType.UNIDIRECTIONAL_SEQUENCE_LSTM:
        batch = xt.shape[1] if a["time_major"] else xt.shape[0]
        hidden = g.tensor(op.inputs[1]).shape[0]
        if int8:
            if ot.quant is None:
                raise BadInputError(f"{where}: the int8 output has no quantization parameters")
            h = _variable(low, f"{op.name}/output_state", (batch, hidden), DType.INT8, ot.quant.scale[0],
                          ot.quant.zero_point[0])
            c = _variable(low, f"{op.name}/cell_state", (batch, hidden), DType.INT16,
                          2.0 ** a["cell_state_exponent"])
        else:
            h = _variable(low, f"{op.name}/output_state", (batch, hidden), DType.FLOAT32, None)
            c = _variable(low, f"{op.name}/cell_state", (batch, hidden), DType.FLOAT32, None)
        ins = [low.tensor(i) for i in op.inputs[:9]] + [-1, -1, -1] + [low.tensor(i) for i in op.inputs[9:13]]
        ins += [-1, -1, h, c, -1, -1, -1, -1]
        opts = [(0, "i8", int(ActivationFunctionType.TANH)), (1, "f32", a["cell_clip"]), (2, "f32", 0.0),
                (3, "bool", bool(a["time_major"])), (4, "bool", False)]
        low.emit(BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM, 3 if int8 else 1, ins, out,
                 BuiltinOptions.UnidirectionalSequenceLSTMOptions, opts)
        return
    if op.type is not OpType.SVDF:
        raise BadInputError(f"{where}: no TFLite lowering for this op")
    batch = xt.shape[0]
    features, memory = g.tensor(op.inputs[2]).shape
    if int8:
        if not a["state_scale"] > 0:
            raise BadInputError(f"{where}: an int8 SVDF needs its state scale (state_scale > 0)")
        state = _variable(low, f"{op.name}/state", (batch, features * memory), DType.INT16, a["state_scale"])
    else:
        state = _variable(low, f"{op.name}/state", (batch, features * memory), DType.FLOAT32, None)
    bias = low.tensor(op.inputs[3]) if op.input(3) else -1
    ins = [low.tensor(op.inputs[0]), low.tensor(op.inputs[1]), low.tensor(op.inputs[2]), bias, state]
    opts = [(0, "i32", a["rank"]), (1, "i8", int(ActivationFunctionType[a["activation"]])), (2, "bool", False)]
    low.emit(BuiltinOperator.SVDF, 3 if int8 else 1, ins, out, BuiltinOptions.SVDFOptions, opts)
