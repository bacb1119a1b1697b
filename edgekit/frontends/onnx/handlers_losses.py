"""NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss with constant targets.

A model that ends in its training loss (exported for evaluation) computes
``-x[n, target[n, d...], d...] * weight[target]``: with the targets known, that is the
input multiplied by a constant mask (``-weight[c]`` where ``c`` is the target class,
0 elsewhere; ignored targets all 0) and summed over the class axis. Every product but
one is ``±0``, so the sum is exact; the reductions follow ONNX: ``none``, ``sum``, and
``mean`` = sum / sum of the picked weights (the count of targets not ignored when
there are no weights). SoftmaxCrossEntropyLoss is the same on LogSoftmax over axis 1
(``handlers_composite``), whose result is also its optional second output.
Run-time targets are rejected (edgekit has no run-time integer gather for them).
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx.convert import Converter, handler
from edgekit.frontends.onnx.handlers_composite import reduce_source_axes, sub_node
from edgekit.frontends.onnx.values import Act, QConst
from edgekit.ir.ops import OpType


def _loss_mask(c: Converter, xshape, target, weight, ignore_index) -> tuple[np.ndarray, float]:
    """The constant (-weight) one-hot mask in the input's source shape, and the
    divisor of ``mean``."""
    n, ch = xshape[0], xshape[1]
    target = np.asarray(target).astype(np.int64)
    if target.shape != (n,) + tuple(xshape[2:]):
        raise c.malformed(f"target of shape {list(target.shape)} for input {list(xshape)}: expected "
                          f"{[n] + list(xshape[2:])}")
    valid = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    if np.any((target < 0) | (target >= ch)) and np.any(valid & ((target < 0) | (target >= ch))):
        raise c.malformed(f"target classes must lie in [0, {ch}) (or equal ignore_index)")
    if weight is None:
        picked = valid.astype(np.float32)
    else:
        weight = np.asarray(weight, np.float32).reshape(-1)
        if weight.size != ch:
            raise c.malformed(f"{weight.size} class weights for {ch} classes")
        picked = np.where(valid, np.take(weight, target, mode="clip"), np.float32(0)).astype(np.float32)
    classes = np.arange(ch).reshape((1, ch) + (1,) * (len(xshape) - 2))
    onehot = np.expand_dims(target, 1) == classes
    mask = np.where(onehot, -np.expand_dims(picked, 1), np.float32(0)).astype(np.float32)
    return mask, float(np.sum(picked, dtype=np.float32))


def _loss(c: Converter, node, a, x_onnx: str, out_onnx: str) -> None:
    x = c.inp(node, 0)
    if not isinstance(x, Act):
        raise c.unsupported("a constant input (the loss of constants is itself constant)")
    xshape = c.sshape(x.name)
    if len(xshape) < 2:
        raise c.malformed(f"input of rank {len(xshape)}; expected [N, C, ...]")
    target = c.const_inp(node, 1, "the target")
    wv = c.inp(node, 2, required=False)
    if isinstance(wv, Act):
        raise c.unsupported("run-time class weights")
    weight = None if wv is None else (wv.value() if isinstance(wv, QConst) else np.asarray(wv))
    ignore = a.get("ignore_index")
    reduction = a.get("reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        raise c.malformed(f"unknown reduction {reduction!r}")
    mask, picked = _loss_mask(c, xshape, target, weight, None if ignore is None else int(ignore))
    prod = c.env[sub_node(c, node, "Mul", [x_onnx, mask])].name
    out = c.out_name(out_onnx)
    per_item = reduce_source_axes(c, prod, OpType.SUM, [1], False, out if reduction == "none" else None)
    if reduction != "none":
        rank = c.g.tensor(per_item).rank
        total = reduce_source_axes(c, per_item, OpType.SUM, range(rank), False,
                                   out if reduction == "sum" else None)
        if reduction == "mean":
            div = c.const(np.float32(picked), f"{c.node_name()}_weight_sum")
            total = c.emit(OpType.DIV, [total, div])  # shape (1,): IR constants have rank >= 1
            total = c.emit(OpType.RESHAPE, [total], {"shape": ()}, out=out)
        per_item = total
    c.env[out_onnx] = Act(per_item)


@handler("NegativeLogLikelihoodLoss")
def _nll_loss(c: Converter, node, a):
    c.act_inp(node, 0)
    _loss(c, node, a, node.input[0], node.output[0])


@handler("SoftmaxCrossEntropyLoss")
def _softmax_cross_entropy(c: Converter, node, a):
    c.act_inp(node, 0)
    want_log_prob = len(node.output) > 1 and bool(node.output[1])
    log_prob = node.output[1] if want_log_prob else None
    log_prob = sub_node(c, node, "LogSoftmax", [node.input[0]], out=log_prob, axis=1)
    _loss(c, node, a, log_prob, node.output[0])
