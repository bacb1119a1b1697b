"""IR -> ONNX for UNIDIRECTIONAL_SEQUENCE_LSTM and SVDF.

UNIDIRECTIONAL_SEQUENCE_LSTM: one ONNX LSTM (forward, layout 0, default
activations) with the gates reordered to ONNX's i, o, f, c; a batch-major IR input is
transposed to ONNX's [T, B, I] and the output [T, 1, B, H] back to [B, T, H].

ONNX's ``clip`` bounds the gate pre-activations, not the cell state, so an IR LSTM with
``cell_clip`` is refused. int8 LSTMs are written like every int8 op of this writer: int8
weights and int32 biases through DequantizeLinear, float arithmetic, the output through
QuantizeLinear. The int16 cell state of TFLite Micro's kernel has no QDQ spelling, so
onnxruntime's results are close to, not equal to, the reference's.

SVDF (no ONNX operator): the IR's invocation starts from a zero state, so only the
newest memory slot contributes: MatMul(x, W_f^T) * W_t[:, -1], summed over each unit's
rank filters (Reshape + ReduceSum), plus the bias, then the fused activation (int8: QDQ
around the float arithmetic, TFLM's int16 state is not spelled out).
"""

from __future__ import annotations

from edgekit.ir.graph import Op


def emit_lstm(w, op: Op, a: dict) -> str:
    """``w``: the writer (edgekit.backends.onnx.writer._Writer); returns the float output."""
    g = w.g
    if a["cell_clip"] > 0:
        raise w.unsupported("cell_clip: ONNX's LSTM clip bounds the gate inputs, not the cell state")
    xt = g.tensor(op.inputs[0])
    hidden = g.tensor(op.inputs[1]).shape[0]
    n_in = xt.shape[2]
    x = w.f(op.inputs[0])
    if not a["time_major"]:
        x = w.node("Transpose", [x], perm=[1, 0, 2])
    order = (0, 3, 1, 2)  # IR i, f, c, o -> ONNX i, o, f, c

    def stacked(first: int, cols: int, base: str) -> str:
        parts = [w.f(op.inputs[first + k]) for k in order]
        cat = w.node("Concat", parts, axis=0)
        return w.node("Reshape", [cat, w.ints([1, 4 * hidden, cols], f"{base}_shape")])

    weights = stacked(1, n_in, "W")
    recurrent = stacked(5, hidden, "R")
    zeros = w.node("Mul", [w.f(op.inputs[9]), w.scalar(0.0, "float32", "zero")])
    bias = w.node("Concat", [w.f(op.inputs[9 + k]) for k in order] + [zeros] * 4, axis=0)
    bias = w.node("Reshape", [bias, w.ints([1, 8 * hidden], "B_shape")])
    y = w.node("LSTM", [x, weights, recurrent, bias], hidden_size=int(hidden))
    y = w.node("Squeeze", [y, w.ints([1], "axis1")])
    if not a["time_major"]:
        y = w.node("Transpose", [y], perm=[1, 0, 2])
    return y


def emit_svdf(w, op: Op, a: dict) -> str:
    import numpy as np

    g = w.g
    xt = g.tensor(op.inputs[0])
    features, _ = g.tensor(op.inputs[2]).shape
    rank = int(a["rank"])
    units = features // rank
    wf = w.weight(op.inputs[1], (1, 0))  # [I, F]
    y = w.node("MatMul", [w.f(op.inputs[0]), wf])
    wt = g.tensor(op.inputs[2])
    last = np.ascontiguousarray(wt.data[:, -1:].T)  # [1, F]
    if wt.quant is not None and wt.dtype.value != "float32":
        last = (last.astype(np.float32) * np.float32(wt.quant.scale[0])).astype(np.float32)
    y = w.node("Mul", [y, w.init(last.astype(np.float32), f"{op.name}_time_weights_last")])
    y = w.node("Reshape", [y, w.ints([xt.shape[0], units, rank], f"{op.name}_units_shape")])
    y = w.node("ReduceSum", [y, w.ints([2], "axis2")], keepdims=0)
    if op.input(3):
        y = w.node("Add", [y, w.f(op.inputs[3])])
    return y
