"""Comparisons, logic and Where on run-time tensors, as exact compositions through CAST.

The IR has boolean tensors (CAST makes them: nonzero -> true, and back to 0.0 / 1.0)
but no comparison or logic op; these ONNX ops are composed from float arithmetic
whose sign or zeroness is exact in IEEE float32:

- ``Greater(a, b)`` = ``bool(relu(a - b))``: with gradual underflow ``a - b`` is zero
  only when ``a == b`` and positive exactly when ``a > b``; ``Less(a, b)`` =
  ``Greater(b, a)``; ``GreaterOrEqual`` / ``LessOrEqual`` = ``Not`` of the strict one;
  ``Equal(a, b)`` = ``Not(bool(a - b))``, and against a constant infinity (the
  "fully masked row" test of attention) ``bool(relu(a - FLT_MAX))`` for +inf (``-a``
  for -inf), since ``inf - inf`` is NaN. (NaN and infinite graph inputs are refused;
  other comparisons of two infinities computed inside the graph would differ.)
- ``Not(x)`` = ``bool(1 - float(x))``; ``And`` = ``bool(float(x) * float(y))``;
  ``Or`` = ``bool(float(x) + float(y))``; ``Xor`` = ``bool(float(x) - float(y))``.
- ``Where(c, x, y)`` with a run-time condition: both sides broadcast, flattened and
  joined as ``[y, x]``, and GATHERed at ``i + n * c_i`` (the index computed in float32,
  exact below 2^24 elements, then CAST to int32): data movement, so every value of the
  picked side, infinities and NaN included, passes unchanged. A constant condition is
  ``handlers_composite``'s Where.

Integer operands are rejected (edgekit has no run-time integer arithmetic for them);
on constant operands ``folding`` evaluates these ops at import.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto

from edgekit.frontends.onnx import convert
from edgekit.frontends.onnx.convert import Converter, handler
from edgekit.frontends.onnx.handlers_composite import sub_node
from edgekit.frontends.onnx.values import Act, QConst
from edgekit.ir.dtypes import DType

MAX_GATHER_ELEMENTS = 1 << 24  # float32 holds every index below this exactly


def _operand(c: Converter, node, i: int, want: str) -> str | np.ndarray:
    """Input i as a float operand (ONNX name or float32 constant); ``want`` "float"
    refuses booleans, "bool" takes booleans (made 0.0 / 1.0)."""
    v = c.inp(node, i)
    if not isinstance(v, Act):
        arr = v.value() if isinstance(v, QConst) else np.asarray(v)
        if want == "float" and arr.dtype.kind not in "f":
            raise c.unsupported(f"input {i} is {arr.dtype}; run-time comparisons are imported for float32")
        return arr.astype(np.float32)
    dt = c.g.tensor(v.name).dtype
    if want == "bool":
        if dt is not DType.BOOL:
            raise c.unsupported(f"input {i} is {dt.value}; logic ops take boolean tensors")
        return sub_node(c, node, "Cast", [node.input[i]], to=TensorProto.FLOAT)
    if dt is not DType.FLOAT32:
        raise c.unsupported(f"input {i} is {dt.value}; run-time comparisons are imported for float32 "
                            "(edgekit has no run-time integer arithmetic)")
    return node.input[i]


def _to_bool(c: Converter, node, x, out: str | None = None) -> str:
    return sub_node(c, node, "Cast", [x], out=out, to=TensorProto.BOOL)


def _not_of_float(c: Converter, node, f, out: str | None = None) -> str:
    """not(bool(f)) for f in {0, 1}: bool(1 - f)."""
    return _to_bool(c, node, sub_node(c, node, "Sub", [np.float32(1), f]), out)


@handler("Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal")
def _compare(c: Converter, node, a):
    op = node.op_type
    x, y = _operand(c, node, 0, "float"), _operand(c, node, 1, "float")
    out = node.output[0]
    if op == "Equal":
        var, const = (x, y) if isinstance(y, np.ndarray) else (y, x)
        if isinstance(const, np.ndarray) and const.size and np.isinf(const).all() \
                and len(np.unique(np.sign(const))) == 1:
            # a == +inf exactly when a - FLT_MAX > 0 (a - inf would be NaN for a = inf)
            big = np.finfo(np.float32).max
            sign = np.float32(np.sign(const.reshape(-1)[0]))
            diff = sub_node(c, node, "Sub", [var, np.full(const.shape, sign * big, np.float32)])
            if sign < 0:
                diff = sub_node(c, node, "Neg", [diff])
            _to_bool(c, node, sub_node(c, node, "Relu", [diff]), out)
            return
        differs = _to_bool(c, node, sub_node(c, node, "Sub", [x, y]))
        _not_of_float(c, node, sub_node(c, node, "Cast", [differs], to=TensorProto.FLOAT), out)
        return
    big, small = (x, y) if op in ("Greater", "LessOrEqual") else (y, x)
    strict = sub_node(c, node, "Relu", [sub_node(c, node, "Sub", [big, small])])
    if op in ("Greater", "Less"):
        _to_bool(c, node, strict, out)
    else:
        flag = sub_node(c, node, "Cast", [_to_bool(c, node, strict)], to=TensorProto.FLOAT)
        _not_of_float(c, node, flag, out)


@handler("Not")
def _not(c: Converter, node, a):
    _not_of_float(c, node, _operand(c, node, 0, "bool"), node.output[0])


@handler("And", "Or", "Xor")
def _logic(c: Converter, node, a):
    x, y = _operand(c, node, 0, "bool"), _operand(c, node, 1, "bool")
    combine = {"And": "Mul", "Or": "Add", "Xor": "Sub"}[node.op_type]
    _to_bool(c, node, sub_node(c, node, combine, [x, y]), node.output[0])


_CONST_WHERE = convert._HANDLERS.get("Where")  # handlers_composite: a constant condition


@handler("Where")
def _where(c: Converter, node, a):
    cond = c.inp(node, 0)
    if not isinstance(cond, Act):
        _CONST_WHERE(c, node, a)
        return
    if c.g.tensor(cond.name).dtype is not DType.BOOL:
        raise c.unsupported("the condition must be a boolean tensor")

    def shape_of(i):
        v = c.inp(node, i)
        if isinstance(v, Act):
            return tuple(c.sshape(v.name))
        return tuple(np.shape(v.q if isinstance(v, QConst) else v))

    try:
        out_shape = tuple(np.broadcast_shapes(shape_of(0), shape_of(1), shape_of(2)))
    except ValueError:
        raise c.malformed("condition, X and Y do not broadcast together") from None
    n = int(np.prod(out_shape, dtype=np.int64))
    if n >= MAX_GATHER_ELEMENTS:
        raise c.unsupported(f"a run-time Where over {n} elements (at most {MAX_GATHER_ELEMENTS - 1})")
    ones = np.ones(out_shape, np.float32)
    flat = []
    for i in (2, 1):  # y first: index i picks y, i + n picks x
        v = c.inp(node, i)
        if isinstance(v, Act):
            c.act_inp(node, i)
            full = node.input[i] if shape_of(i) == out_shape else sub_node(c, node, "Mul", [node.input[i], ones])
            flat.append(sub_node(c, node, "Reshape", [full, np.asarray([n], np.int64)]))
        else:
            val = v.value() if isinstance(v, QConst) else np.asarray(v, np.float32)
            flat.append(np.broadcast_to(val.astype(np.float32), out_shape).reshape(n).copy())
    both = sub_node(c, node, "Concat", flat, axis=0)
    fc = sub_node(c, node, "Cast", [node.input[0]], to=TensorProto.FLOAT)
    fc = sub_node(c, node, "Mul", [fc, ones])  # broadcast the condition to the output
    offsets = sub_node(c, node, "Mul", [sub_node(c, node, "Reshape", [fc, np.asarray([n], np.int64)]),
                                        np.float32(n)])
    index = sub_node(c, node, "Add", [offsets, np.arange(n, dtype=np.float32)])
    index = sub_node(c, node, "Cast", [index], to=TensorProto.INT32)
    picked = sub_node(c, node, "Gather", [both, index], axis=0)
    sub_node(c, node, "Reshape", [picked, np.asarray(out_shape, np.int64)], out=node.output[0])
