"""One random elementwise step for the random float graphs of test_onnx_writer.py:
HARD_SWISH, LEAKY_RELU, PRELU, ABS, NEG, EXP, LOG, SQRT, RSQRT, GELU, MAXIMUM, MINIMUM,
DIV, SQUARED_DIFFERENCE. LOG, SQRT, RSQRT and DIV's divisor get a positive operand
(ABS, then ADD of a positive constant), EXP a bounded one (TANH), so every value stays
finite and comparable at the tests' tolerance."""

from __future__ import annotations

import numpy as np

from edgekit.ir import OpType

UNARY = (OpType.HARD_SWISH, OpType.LEAKY_RELU, OpType.ABS, OpType.NEG, OpType.GELU)
POSITIVE = (OpType.LOG, OpType.SQRT, OpType.RSQRT)
BINARY = (OpType.MAXIMUM, OpType.MINIMUM, OpType.DIV, OpType.SQUARED_DIFFERENCE)
TYPES = UNARY + POSITIVE + (OpType.EXP, OpType.PRELU) + BINARY


def _shifted(b, a: str) -> str | None:
    c = b.const((1,))
    b.g.tensor(c).data = np.array([0.5], np.float32)
    return b.op(OpType.ADD, [a, c], {"activation": "NONE"})


def elementwise_step(b, x: str, st) -> str | None:
    """Every op of the family in a chain, starting at a random one (so any elementwise
    step covers the family without crowding out the other families' steps)."""
    start = int(b.rng.integers(len(TYPES)))
    for k in range(len(TYPES)):
        x = _one(b, x, st, TYPES[(start + k) % len(TYPES)]) or x
    return x


def _one(b, x: str, st, typ: OpType) -> str | None:
    d = b.draw
    t = b.g.tensor(x)
    if typ in UNARY:
        attrs = {}
        if typ is OpType.LEAKY_RELU:
            attrs = {"alpha": d(st.sampled_from([0.01, 0.2, -0.3]))}
        elif typ is OpType.GELU:
            attrs = {"approximate": d(st.booleans())}
        return b.op(typ, [x], attrs)
    if typ in POSITIVE:
        p = _shifted(b, b.op(OpType.ABS, [x]) or x)
        return b.op(typ, [p]) if p else None
    if typ is OpType.EXP:
        return b.op(typ, [b.op(OpType.TANH, [x]) or x])
    if typ is OpType.PRELU:
        alpha = b.const(t.shape[-1:] if d(st.booleans()) else (1,))
        return b.op(typ, [x, alpha])
    other = b.const(t.shape[-1:]) if d(st.booleans()) else (b.op(OpType.TANH, [x]) or x)
    if typ is OpType.DIV:
        other = _shifted(b, b.op(OpType.ABS, [other]) or other)
        if other is None:
            return None
        ins = [x, other]
        return b.op(typ, ins, {"activation": d(st.sampled_from(["NONE", "RELU", "RELU6"]))})
    ins = [other, x] if d(st.booleans()) else [x, other]
    return b.op(typ, ins)
