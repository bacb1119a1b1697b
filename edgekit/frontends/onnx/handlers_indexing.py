"""GatherElements, ScatterElements / Scatter and ScatterND with constant indices.

With the indices known at import, each output element is one element of the data
(or of the updates) at a position computed here, so the op is data movement: the
sources flattened and joined, then a GATHER with constant flat indices
(``handlers_composite.select_elements``); every value moves unchanged. Scatters take
``reduction="none"`` (later updates to the same position win, as in ONNX's reference);
the accumulating reductions and run-time indices are rejected.
"""

from __future__ import annotations

import numpy as np

from edgekit.frontends.onnx.convert import Converter, handler
from edgekit.frontends.onnx.handlers_composite import select_elements
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


def _scatter_picks(c: Converter, a, dshape, n_data: int) -> np.ndarray:
    if a.get("reduction", "none") != "none":
        raise c.unsupported(f"reduction={a['reduction']!r} (only 'none': the updates replace the data)")
    return np.arange(n_data, dtype=np.int64).reshape(dshape)


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
    picks = _scatter_picks(c, a, dshape, n_data)
    pos = list(np.indices(ushape))
    pos[axis] = idx
    targets = np.ravel_multi_index(tuple(pos), dshape).reshape(-1) if n_upd else np.zeros(0, np.int64)
    flat = picks.reshape(-1)
    for k, t in enumerate(targets):  # in order: a later update to the same place wins
        flat[t] = n_data + k
    select_elements(c, node, [_source(c, node, 0), _source(c, node, 2)], [n_data, n_upd], picks, node.output[0])


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
    picks = _scatter_picks(c, a, dshape, n_data)
    n_inner = int(np.prod(inner, dtype=np.int64))
    starts = (np.ravel_multi_index(tuple(idx.reshape(-1, k).T), dshape[:k]) * n_inner
              if idx.size else np.zeros(0, np.int64))
    flat = picks.reshape(-1)
    for j, start in enumerate(starts):  # in order: a later update to the same slice wins
        flat[start:start + n_inner] = n_data + j * n_inner + np.arange(n_inner)
    select_elements(c, node, [_source(c, node, 0), _source(c, node, 2)], [n_data, n_upd], picks, node.output[0])
