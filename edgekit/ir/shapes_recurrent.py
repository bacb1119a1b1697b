"""Shape rules and MAC counts of the recurrent ops (UNIDIRECTIONAL_SEQUENCE_LSTM, SVDF).

Loaded through ``edgekit.ir.shapes`` on the device images too: Python 3.8 syntax.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from edgekit.ir.ops import OpType

Shape = Tuple[int, ...]

RECURRENT_OPS = (OpType.UNIDIRECTIONAL_SEQUENCE_LSTM, OpType.SVDF)


def lstm_dims(in_shapes: Sequence[Optional[Shape]], time_major: bool) -> Tuple[int, int, int, int]:
    """(batch, time steps, input size, hidden size) of an LSTM, checking every operand."""
    x = in_shapes[0]
    if x is None or len(x) != 3:
        raise ValueError(f"LSTM input must be 3-D [batch, time, features], got {None if x is None else list(x)}")
    t, b = (x[0], x[1]) if time_major else (x[1], x[0])
    n_in = x[2]
    if len(in_shapes) != 13 or any(s is None for s in in_shapes):
        raise ValueError("LSTM needs 13 operands: input, 4 input weights, 4 recurrent weights, 4 biases")
    w = in_shapes[1]
    if len(w) != 2:
        raise ValueError(f"LSTM input weights must be 2-D [hidden, input], got {list(w)}")
    hidden = w[0]
    for i in range(1, 5):
        if tuple(in_shapes[i]) != (hidden, n_in):
            raise ValueError(f"LSTM input weight {i - 1} has shape {list(in_shapes[i])}, expected {[hidden, n_in]}")
    for i in range(5, 9):
        if tuple(in_shapes[i]) != (hidden, hidden):
            raise ValueError(f"LSTM recurrent weight {i - 5} has shape {list(in_shapes[i])}, "
                             f"expected {[hidden, hidden]}")
    for i in range(9, 13):
        if tuple(in_shapes[i]) != (hidden,):
            raise ValueError(f"LSTM bias {i - 9} has shape {list(in_shapes[i])}, expected {[hidden]}")
    return b, t, n_in, hidden


def svdf_dims(in_shapes: Sequence[Optional[Shape]], rank: int) -> Tuple[int, int, int, int, int]:
    """(batch, input size, features, memory size, units) of an SVDF, checking every operand."""
    x, wf, wt = in_shapes[0], in_shapes[1], in_shapes[2]
    if x is None or len(x) != 2:
        raise ValueError(f"SVDF input must be 2-D [batch, input], got {None if x is None else list(x)}")
    if wf is None or len(wf) != 2 or wf[1] != x[1]:
        raise ValueError(f"SVDF weights_feature must be [features, {x[1]}], got {None if wf is None else list(wf)}")
    features = wf[0]
    if wt is None or len(wt) != 2 or wt[0] != features:
        raise ValueError(f"SVDF weights_time must be [{features}, memory], got {None if wt is None else list(wt)}")
    if rank < 1 or features % rank:
        raise ValueError(f"SVDF rank {rank} does not divide its {features} features")
    units = features // rank
    b = in_shapes[3] if len(in_shapes) > 3 else None
    if b is not None and tuple(b) != (units,):
        raise ValueError(f"SVDF bias must have shape [{units}], got {list(b)}")
    return x[0], x[1], features, wt[1], units


def infer_recurrent_shapes(op_type: OpType, in_shapes, attrs: dict):
    if op_type is OpType.UNIDIRECTIONAL_SEQUENCE_LSTM:
        b, t, _, hidden = lstm_dims(in_shapes, attrs["time_major"])
        return [(t, b, hidden) if attrs["time_major"] else (b, t, hidden)]
    batch, _, _, _, units = svdf_dims(in_shapes, attrs["rank"])
    return [(batch, units)]


def recurrent_macs(op_type: OpType, in_shapes, attrs: dict) -> int:
    if op_type is OpType.UNIDIRECTIONAL_SEQUENCE_LSTM:
        b, t, n_in, hidden = lstm_dims(in_shapes, attrs["time_major"])
        # four gates of input and recurrent products, then the three elementwise products
        return b * t * (4 * hidden * (n_in + hidden) + 3 * hidden)
    batch, n_in, features, memory, _ = svdf_dims(in_shapes, attrs["rank"])
    return batch * (features * n_in + features * memory)
