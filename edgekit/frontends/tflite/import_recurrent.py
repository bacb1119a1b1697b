"""``.tflite`` UNIDIRECTIONAL_SEQUENCE_LSTM and SVDF -> IR.

The IR's LSTM is TFLite Micro's: the four gates with input and recurrent weights and
biases, TANH activation, no peepholes, projection, layer normalization or coupled
input gate (CIFG); those variants are refused naming the operand. The two state
operands are variable tensors that start at zero; they are not IR tensors: an int8
model's cell state scale becomes ``cell_state_exponent`` (it must be a power of two, as
TFLM requires), and its hidden state must have the output's parameters (TFLM copies
one into the other).
"""

from __future__ import annotations

import math

import numpy as np

from edgekit.errors import BadInputError, UnsupportedOpError
from edgekit.ir import DType, OpType

_ABSENT = {9: "cell_to_input (peephole) weights", 10: "cell_to_forget (peephole) weights",
           11: "cell_to_output (peephole) weights", 16: "projection weights", 17: "projection bias",
           20: "input layer-norm coefficients", 21: "forget layer-norm coefficients",
           22: "cell layer-norm coefficients", 23: "output layer-norm coefficients"}


def convert_lstm(b, op, node: str, name: str, supported) -> None:
    """Add the IR op for TFLite operator ``op`` to ``b.g`` (b: the importer's _Builder)."""
    opname = "UNIDIRECTIONAL_SEQUENCE_LSTM"

    def refuse(detail: str):
        return UnsupportedOpError(opname, node, supported, detail)

    ins = list(op.inputs) + [-1] * (24 - len(op.inputs))
    if len(op.inputs) != 24:
        raise b.fail(f"{node}: needs 24 operands, has {len(op.inputs)}")
    for i, what in _ABSENT.items():
        if ins[i] >= 0:
            raise refuse(f"{what} are not supported (only the plain LSTM TFLite Micro runs)")
    if ins[1] < 0 or ins[5] < 0:
        raise refuse("the coupled input-forget gate (CIFG) variant is not supported")
    for i in list(range(0, 9)) + list(range(12, 16)) + [18, 19]:
        if ins[i] < 0:
            raise b.fail(f"{node}: operand {i} is missing")
    opts = op.options
    if opts.get("fused_activation_function", "TANH") != "TANH":
        raise refuse(f"activation {opts.get('fused_activation_function')} (only TANH)")
    if opts.get("diagonal_recurrent_tensors"):
        raise refuse("diagonal recurrent weights are not supported")
    x_t = b.sg.tensors[ins[0]]
    w_t = b.sg.tensors[ins[2]]
    out_t = b.sg.tensors[op.outputs[0]]
    for i in (18, 19):
        d = b.data(ins[i])
        if d is not None and np.any(d != 0):
            raise refuse("a state operand with non-zero initial data (the IR's states start at zero)")
    attrs = {"time_major": bool(opts.get("time_major", False)), "cell_clip": float(opts.get("cell_clip", 0.0))}
    int8 = x_t.type == 9  # TensorType.INT8
    if int8:
        cell = b.sg.tensors[ins[19]]
        hidden = b.sg.tensors[ins[18]]
        cq, hq, oq = cell.quantization, hidden.quantization, out_t.quantization
        if cq is None or cq.scale is None or len(cq.scale) != 1:
            raise b.fail(f"{node}: the int16 cell state has no scale")
        e = math.log2(float(cq.scale[0]))
        if e != int(e):
            raise refuse(f"cell state scale {float(cq.scale[0])} is not a power of two (TFLM requires one)")
        attrs["cell_state_exponent"] = int(e)
        same = (hq is not None and oq is not None and len(hq.scale) == 1 and len(oq.scale) == 1
                and np.float32(hq.scale[0]) == np.float32(oq.scale[0])
                and int((hq.zero_point if hq.zero_point is not None and len(hq.zero_point) else [0])[0])
                == int((oq.zero_point if oq.zero_point is not None and len(oq.zero_point) else [0])[0]))
        if not same:
            raise refuse("the hidden state's quantization differs from the output's (TFLM copies one into the "
                         "other, so edgekit keeps them equal)")
    elif w_t.type != x_t.type:
        raise BadInputError(f"{b.source}: {node}: hybrid LSTM ({'int8' if w_t.type == 9 else w_t.type} weights, "
                            "float input) is not supported")
    operands = [b.tensor(ins[i]) for i in list(range(0, 9)) + list(range(12, 16))]
    for j, n in enumerate(operands[9:]):
        t = b.g.tensor(n)
        if int8 and t.dtype is not DType.INT32:
            raise b.fail(f"{node}: bias {j} is {t.dtype.value}, expected int32")
    b.g.add_op(OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, operands, [b.tensor(op.outputs[0])], attrs, name=name)


def convert_svdf(b, op, node: str, name: str, supported) -> None:
    """SVDF: input, weights_feature, weights_time, bias (optional), the variable state
    (its int16 scale becomes ``state_scale``; it must hold no data but zeros)."""
    opname = "SVDF"

    def refuse(detail: str):
        return UnsupportedOpError(opname, node, supported, detail)

    ins = list(op.inputs) + [-1] * (5 - len(op.inputs))
    if len(op.inputs) != 5 or min(ins[0], ins[1], ins[2], ins[4]) < 0:
        raise b.fail(f"{node}: needs 5 operands (input, weights_feature, weights_time, bias, state), "
                     f"has {list(op.inputs)}")
    opts = op.options
    act = opts.get("fused_activation_function", "NONE")
    if act not in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"):
        raise refuse(f"fused activation {act} is not supported")
    d = b.data(ins[4])
    if d is not None and np.any(d != 0):
        raise refuse("a state with non-zero initial data (the IR's state starts at zero)")
    x_t, wf_t = b.sg.tensors[ins[0]], b.sg.tensors[ins[1]]
    attrs = {"rank": int(opts.get("rank", 0)), "activation": act}
    if x_t.type == 9:  # INT8
        st = b.sg.tensors[ins[4]]
        sq = st.quantization
        if st.type != 7 or sq is None or sq.scale is None or len(sq.scale) != 1:  # 7: INT16
            raise refuse("an int8 SVDF needs an int16 state with one scale")
        zp = sq.zero_point[0] if sq.zero_point is not None and len(sq.zero_point) else 0
        if int(zp) != 0:
            raise refuse("an int16 state zero point other than 0")
        if b.sg.tensors[ins[2]].type != 7:
            raise refuse("int8 weights_time (edgekit's int8 SVDF takes TFLite's int16 weights_time)")
        if ins[3] < 0:
            raise refuse("an int8 SVDF without bias (TFLM reads the bias scale)")
        attrs["state_scale"] = float(sq.scale[0])
    elif wf_t.type != x_t.type:
        raise BadInputError(f"{b.source}: {node}: hybrid SVDF (int8 weights, float input) is not supported")
    operands = [b.tensor(ins[i]) for i in range(3)] + ([b.tensor(ins[3])] if ins[3] >= 0 else [])
    b.g.add_op(OpType.SVDF, operands, [b.tensor(op.outputs[0])], attrs, name=name)
