"""GatherElements, ScatterElements / Scatter and ScatterND with constant indices.

With the indices known at import, each output element is one element of the data
(or of the updates) at a position computed here, so the op is data movement: the
sources flattened and joined, then a GATHER with constant flat indices
(``handlers_composite.select_elements``); every value moves unchanged. Scatters with
``reduction="none"``: later updates to the same position win, as in ONNX's reference;
with add / mul / max / min: layer j gathers each position's j-th update (its neutral
element, or the data for max/min, where there are fewer) and the layers are combined
with the data in order (ADD, MUL, MAXIMUM, MINIMUM), as the reference applies them.
Run-time indices are rejected.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx.convert import Converter, handler
from edgekit.frontends.onnx.handlers_composite import select_elements, sub_node
from edgekit.frontends.onnx.values import Act, QConst


def _shape(c: Converter, v) -> tuple[int, ...]:
    if isinstance(v, Act):
        return tuple(c.sshape(v.name))
    return tuple(np.shape(v.q if isinstance(v, QConst) else v))


def _source(c: Converter, node, i: int):
    """An input as a source of select_elements: its ONNX name (run-time) or its value."""
    v = c.inp(node, i)
    if isinstance(v, Act):
        c.act_inp(node, i)  # float32 only
        return node.input[i]
    return (v.value() if isinstance(v, QConst) else np.asarray(v)).astype(np.float32)


def _normalized(c: Converter, idx: np.ndarray, dim: int | np.ndarray) -> np.ndarray:
    idx = np.where(idx < 0, idx + dim, idx)
    if idx.size and (np.any(idx < 0) or np.any(idx >= dim)):
        raise c.malformed("an index is out of range")
    return idx


@handler("GatherElements")
def _gather_elements(c: Converter, node, a):
    data = c.inp(node, 0)
    dshape = _shape(c, data)
    r = len(dshape)
    axis = c.norm_axis(a.get("axis", 0), r)
    idx = np.asarray(c.const_inp(node, 1, "the indices")).astype(np.int64)
    if idx.ndim != r or any(idx.shape[k] > dshape[k] for k in range(r) if k != axis):
        raise c.malformed(f"indices of shape {list(idx.shape)} for data of shape {list(dshape)}")
    idx = _normalized(c, idx, dshape[axis])
    pos = list(np.indices(idx.shape))
    pos[axis] = idx
    picks = np.ravel_multi_index(tuple(pos), dshape) if idx.size else np.zeros(idx.shape, np.int64)
    n = int(np.prod(dshape, dtype=np.int64))
    select_elements(c, node, [_source(c, node, 0)], [n], picks, node.output[0])


_REDUCE = {"add": ("Add", 0.0), "mul": ("Mul", 1.0), "max": ("Max", None), "min": ("Min", None)}


def _scatter(c: Converter, node, a, dshape, n_data: int, n_upd: int, targets: np.ndarray) -> None:
    """The output: the data with update k written to (or, with a reduction, combined
    into) flat position ``targets[k]``, in the updates' order."""
    reduction = a.get("reduction", "none")
    sources = [_source(c, node, 0), _source(c, node, 2)]
    if reduction == "none":
        picks = np.arange(n_data, dtype=np.int64)
        for k, t in enumerate(targets):  # in order: a later update to the same place wins
            picks[t] = n_data + k
        select_elements(c, node, sources, [n_data, n_upd], picks.reshape(dshape), node.output[0])
        return
    if reduction not in _REDUCE:
        raise c.malformed(f"unknown reduction {reduction!r}")
    op, neutral = _REDUCE[reduction]
    # Layer j holds each position's j-th update (the position's neutral element, or the
    # data itself for max/min, where it has fewer): data op layer 1 op layer 2 ..., the
    # order ONNX's reference applies the updates in.
    per_target: dict[int, list[int]] = {}
    for k, t in enumerate(targets):
        per_target.setdefault(int(t), []).append(k)
    layers = max((len(v) for v in per_target.values()), default=0)
    sizes = [n_data, n_upd]
    if neutral is not None:
        sources.append(np.full(1, neutral, np.float32))
        sizes.append(1)
    acc = node.input[0]
    for j in range(layers):
        picks = (np.arange(n_data, dtype=np.int64) if neutral is None
                 else np.full(n_data, n_data + n_upd, np.int64))
        for t, ks in per_target.items():
            if j < len(ks):
                picks[t] = n_data + ks[j]
        last = j == layers - 1
        layer = select_elements(c, node, sources, sizes, picks.reshape(dshape), f"{node.output[0]}__layer{j}")
        acc = sub_node(c, node, op, [acc, layer], out=node.output[0] if last else None)
    if layers == 0:
        sub_node(c, node, "Identity", [acc], out=node.output[0])


@handler("ScatterElements", "Scatter")
def _scatter_elements(c: Converter, node, a):
    dshape, ushape = _shape(c, c.inp(node, 0)), _shape(c, c.inp(node, 2))
    r = len(dshape)
    axis = c.norm_axis(a.get("axis", 0), r)
    idx = np.asarray(c.const_inp(node, 1, "the indices")).astype(np.int64)
    if idx.shape != ushape or idx.ndim != r:
        raise c.malformed(f"indices {list(idx.shape)} and updates {list(ushape)} must have the same shape, "
                          f"of the data's rank {r}")
    idx = _normalized(c, idx, dshape[axis])
    n_data, n_upd = int(np.prod(dshape, dtype=np.int64)), int(np.prod(ushape, dtype=np.int64))
    pos = list(np.indices(ushape))
    pos[axis] = idx
    targets = np.ravel_multi_index(tuple(pos), dshape).reshape(-1) if n_upd else np.zeros(0, np.int64)
    _scatter(c, node, a, dshape, n_data, n_upd, targets)


@handler("ScatterND")
def _scatter_nd(c: Converter, node, a):
    dshape, ushape = _shape(c, c.inp(node, 0)), _shape(c, c.inp(node, 2))
    idx = np.asarray(c.const_inp(node, 1, "the indices")).astype(np.int64)
    if idx.ndim < 1 or idx.shape[-1] > len(dshape):
        raise c.malformed(f"indices of shape {list(idx.shape)} for data of rank {len(dshape)}")
    k = idx.shape[-1]
    inner = dshape[k:]
    if tuple(ushape) != tuple(idx.shape[:-1]) + tuple(inner):
        raise c.malformed(f"updates of shape {list(ushape)}; expected {list(idx.shape[:-1]) + list(inner)}")
    idx = _normalized(c, idx, np.asarray(dshape[:k], np.int64))
    n_data, n_upd = int(np.prod(dshape, dtype=np.int64)), int(np.prod(ushape, dtype=np.int64))
    n_inner = int(np.prod(inner, dtype=np.int64))
    starts = (np.ravel_multi_index(tuple(idx.reshape(-1, k).T), dshape[:k]) * n_inner
              if idx.size else np.zeros(0, np.int64))
    targets = (starts[:, None] + np.arange(n_inner)[None, :]).reshape(-1)
    _scatter(c, node, a, dshape, n_data, n_upd, targets)
