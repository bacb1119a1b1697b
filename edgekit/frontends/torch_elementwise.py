"""torch -> IR for the elementwise ops (handlers of ``torch_importer``; each takes the
importer, the FX node and its bound arguments).

- ``nn.Hardswish`` / ``F.hardswish``: HARD_SWISH (TFLite's builtin; TFLM has an int8
  kernel). ``nn.Hardsigmoid`` stays ADD(+3, fused RELU6) + MUL(1/6) in the importer, as
  the TFLite converter builds it.
- ``nn.LeakyReLU``: LEAKY_RELU; ``nn.PReLU``: PRELU with the slope broadcast over the
  channel axis; ``nn.GELU``: GELU (``approximate="tanh"`` sets ``approximate``).
- ``abs``, ``exp``, ``log``, ``sqrt``, ``rsqrt``: one op each; ``maximum`` / ``minimum``:
  MAXIMUM / MINIMUM; ``pow`` with a constant exponent 2, 0.5 or -0.5 and ``square``:
  MUL(x, x), SQRT, RSQRT; ``div`` by a computed tensor: DIV (by a constant it stays a MUL
  by the reciprocal).
"""

from __future__ import annotations


from edgekit.ir.ops import OpType


def _ti():
    from edgekit.frontends import torch_importer as ti

    return ti


def _unary(op_type: OpType, attrs: dict | None = None):
    def handler(im, node, a):
        x = im.act(a.get("self", a.get("input")))
        return im.result(im.emit(op_type, [x.name], _ti()._ir_shape(x.shape), attrs))
    return handler


hardswish = _unary(OpType.HARD_SWISH)
abs_ = _unary(OpType.ABS)
exp = _unary(OpType.EXP)
log = _unary(OpType.LOG)
sqrt = _unary(OpType.SQRT)
rsqrt = _unary(OpType.RSQRT)


def leaky_relu(im, node, a):
    x = im.act(a["self"])
    slope = float(a.get("negative_slope", 0.01))
    return im.result(im.emit(OpType.LEAKY_RELU, [x.name], _ti()._ir_shape(x.shape), {"alpha": slope}))


def gelu(im, node, a):
    x = im.act(a["self"])
    approximate = a.get("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise im.unsupported(f"gelu with approximate={approximate!r}")
    return im.result(im.emit(OpType.GELU, [x.name], _ti()._ir_shape(x.shape), {"approximate": approximate == "tanh"}))


def prelu(im, node, a):
    ti = _ti()
    x = im.act(a["self"])
    w = im.const(a["weight"], "the PReLU slope")
    r = len(x.shape)
    if w.size != 1 and (r < 2 or w.size != x.shape[1]):
        raise im.unsupported(f"PReLU slope of {w.size} values for input {list(x.shape)}")
    # torch applies the slope along axis 1 (channels): shape (C, 1, ..., 1) right-aligned.
    alpha = w.reshape(-1) if w.size == 1 else w.reshape((w.size,) + (1,) * (r - 2))
    a_name = im.operand(ti._Val(None, alpha.shape, alpha), r, im.tmp("alpha"))
    return im.result(im.emit(OpType.PRELU, [x.name, a_name], ti._ir_shape(x.shape)))


def maximum(im, node, a):
    return im.result(im.binary(OpType.MAXIMUM, im.val(a["self"]), im.val(a["other"])))


def minimum(im, node, a):
    return im.result(im.binary(OpType.MINIMUM, im.val(a["self"]), im.val(a["other"])))


def square(im, node, a):
    x = im.act(a["self"])
    return im.result(im.emit(OpType.MUL, [x.name, x.name], _ti()._ir_shape(x.shape)))


def pow_(im, node, a):
    x = im.act(a["self"])
    e = _ti()._num(im.val(a["exponent"]))
    if e is None:
        raise im.unsupported("pow with a computed exponent (a constant 2, 1, 0.5 or -0.5 is supported)")
    shape = _ti()._ir_shape(x.shape)
    if e == 2.0:
        return im.result(im.emit(OpType.MUL, [x.name, x.name], shape))
    if e == 1.0:
        return x
    if e == 0.5:
        return im.result(im.emit(OpType.SQRT, [x.name], shape))
    if e == -0.5:
        return im.result(im.emit(OpType.RSQRT, [x.name], shape))
    raise im.unsupported("pow is supported with a constant exponent of 2, 1, 0.5 or -0.5")


def divide(im, x, d):
    """DIV of two values where the divisor is computed (a constant divisor is a MUL)."""
    return im.result(im.binary(OpType.DIV, x, d))


HANDLERS = {
    "aten.hardswish": hardswish, "aten.abs": abs_, "aten.exp": exp, "aten.log": log, "aten.sqrt": sqrt,
    "aten.rsqrt": rsqrt, "aten.leaky_relu": leaky_relu, "aten.gelu": gelu, "aten.prelu": prelu,
    "aten._prelu_kernel": prelu, "aten.maximum": maximum, "aten.minimum": minimum, "aten.square": square,
    "aten.pow": pow_,
}
