"""Save and load IR graphs: a readable JSON file plus an .npz of constant buffers.

``save(graph, "m.json")`` writes ``m.json`` and ``m.npz`` side by side. The JSON
holds everything but the weights, so a diff of two models is readable.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from edgekit.errors import ModelFormatError
from edgekit.files import write_atomic
from edgekit.ir.dtypes import DType, QuantParams
from edgekit.ir.graph import Graph
from edgekit.ir.ops import OpType

FORMAT = "edgekit-ir"
VERSION = 1


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, np.generic):
        return v.item()
    return v


def to_dict(graph: Graph) -> dict:
    tensors = []
    for t in graph.tensors.values():
        d = {"name": t.name, "shape": list(t.shape), "dtype": t.dtype.value}
        if t.quant is not None:
            d["quant"] = t.quant.to_dict()
        if t.is_const:
            d["const"] = True
        tensors.append(d)
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "inputs": list(graph.inputs),
        "outputs": list(graph.outputs),
        "metadata": _jsonable(graph.metadata),
        "tensors": tensors,
        "ops": [{"type": op.type.value, "name": op.name, "inputs": op.inputs, "outputs": op.outputs,
                 "attrs": _jsonable(op.attrs)} for op in graph.ops],
    }


def save(graph: Graph, path: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``path`` (JSON) and its ``.npz`` weights atomically; returns both paths."""
    path = Path(path)
    if path.suffix != ".json":
        path = path.with_suffix(path.suffix + ".json") if path.suffix else path.with_suffix(".json")
    npz = path.with_suffix(".npz")
    doc = to_dict(graph)
    doc["weights"] = npz.name
    consts = {t.name: t.data for t in graph.tensors.values() if t.is_const}
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write to temporaries first, then rename: a full disk or a kill never leaves a half file.
    write_atomic(npz, lambda f: np.savez(f, **{f"t{i}": a for i, a in enumerate(consts.values())}))
    doc["weight_keys"] = {name: f"t{i}" for i, name in enumerate(consts)}
    write_atomic(path, lambda f: f.write(json.dumps(doc, indent=1).encode()))
    return path, npz


def load(path: str | os.PathLike) -> Graph:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{path}: not a readable edgekit IR file ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelFormatError(f"{path}: not an edgekit IR file (missing format: {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ModelFormatError(f"{path}: IR version {doc.get('version')} is not supported "
                               f"(this edgekit reads {VERSION})")
    npz_path = path.parent / doc.get("weights", path.with_suffix(".npz").name)
    try:
        weights = dict(np.load(npz_path, allow_pickle=False)) if doc.get("weight_keys") else {}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelFormatError(f"{npz_path}: cannot read the weights of {path.name} ({exc})") from None
    try:
        return _from_dict(doc, weights)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{path}: malformed IR ({type(exc).__name__}: {exc})") from None


def _from_dict(doc: dict, weights: dict[str, np.ndarray]) -> Graph:
    g = Graph(doc["name"])
    keys = doc.get("weight_keys", {})
    for td in doc["tensors"]:
        data = None
        if td.get("const"):
            data = weights[keys[td["name"]]]
        quant = QuantParams.from_dict(td["quant"]) if td.get("quant") else None
        g.add_tensor(td["name"], td["shape"], DType(td["dtype"]), quant, data)
    for od in doc["ops"]:
        attrs = {k: tuple(v) if isinstance(v, list) else v for k, v in od["attrs"].items()}
        g.add_op(OpType(od["type"]), od["inputs"], od["outputs"], attrs, od["name"])
    g.inputs = list(doc["inputs"])
    g.outputs = list(doc["outputs"])
    g.metadata = dict(doc.get("metadata", {}))
    return g
