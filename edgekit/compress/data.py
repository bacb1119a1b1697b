"""Training data for compression: train / validation (/ test) arrays and their checks.

Specs accepted by :func:`load_train_data`:

- an ``.npz`` with ``x`` and ``y`` (labels; leave ``y`` out for an autoencoder, whose
  target is its input); optional ``x_val``/``y_val`` and ``x_test``/``y_test`` arrays;
- ``"module:function"`` or ``"path/file.py:function"`` whose function returns
  ``(x, y)`` arrays, a dict with ``x``/``y`` (and optionally ``x_val``...), a torch
  ``Dataset`` of ``(x, y)`` items, or a tuple of two or three datasets
  (train, val[, test]);
- in Python also ``(x, y)`` arrays, a torch ``Dataset``, or a :class:`TrainData`.

Without a validation set, a seeded ``val_fraction`` of the training data (stratified by
label for classification) is held out: it drives early stopping and the reported
accuracies unless a test set is given.
"""

from __future__ import annotations

import hashlib
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import BadInputError

METRICS = ("top1", "mse")


@dataclass
class TrainData:
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_val: np.ndarray
    y_val: np.ndarray | None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    metric: str = "top1"          # "top1" (y: class indices) or "mse" (y: targets, or None = x)
    source: str = "arrays"

    @property
    def eval_split(self) -> tuple[np.ndarray, np.ndarray | None, str]:
        """(x, y, name) of the split accuracies are reported on: test if given, else val."""
        if self.x_test is not None:
            return self.x_test, self.y_test, "test"
        return self.x_val, self.y_val, "val"

    def fingerprint(self) -> str:
        """A short hash of every array (checkpoints resume only on the same data)."""
        h = hashlib.sha1()
        for a in (self.x_train, self.y_train, self.x_val, self.y_val, self.x_test, self.y_test):
            if a is None:
                h.update(b"-")
                continue
            a = np.ascontiguousarray(a)
            h.update(str((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
        h.update(self.metric.encode())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        parts = [f"{len(self.x_train)} train", f"{len(self.x_val)} val"]
        if self.x_test is not None:
            parts.append(f"{len(self.x_test)} test")
        return f"{self.source}: " + ", ".join(parts) + f" samples of shape {list(self.x_train.shape[1:])}"


def load_train_data(data: Any, *, val: Any = None, test: Any = None, val_fraction: float = 0.2, seed: int = 0,
                    metric: str = "auto") -> TrainData:
    """Read and check training data; see the module docstring for the accepted specs."""
    if isinstance(data, TrainData):
        return data
    if not 0.0 < val_fraction < 1.0:
        raise BadInputError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    parts = _read(data, "training data")
    source = parts.pop("source")
    x, y = parts["x"], parts.get("y")
    x, y = _clean(x, y, f"training data {source}")
    if val is not None:
        vp = _read(val, "validation data")
        xv, yv = _clean(vp["x"], vp.get("y"), f"validation data {vp['source']}")
    elif parts.get("x_val") is not None:
        xv, yv = _clean(parts["x_val"], parts.get("y_val"), f"validation data in {source}")
    else:
        x, y, xv, yv = _split(x, y, val_fraction, seed, source)
    xt = yt = None
    if test is not None:
        tp_ = _read(test, "test data")
        xt, yt = _clean(tp_["x"], tp_.get("y"), f"test data {tp_['source']}")
    elif parts.get("x_test") is not None:
        xt, yt = _clean(parts["x_test"], parts.get("y_test"), f"test data in {source}")
    metric = _choose_metric(metric, y)
    if metric == "mse":  # one target per sample: a column, as a model with one output returns it
        y, yv, yt = (None if a is None else (a.reshape(-1, 1) if a.ndim == 1 else a).astype(np.float32)
                     for a in (y, yv, yt))
    td = TrainData(x, y, xv, yv, xt, yt, metric=metric, source=source)
    _check_consistent(td)
    return td


def _choose_metric(metric: str, y: np.ndarray | None) -> str:
    if metric not in ("auto",) + METRICS:
        raise BadInputError(f"unknown metric {metric!r}; choose top1 or mse")
    if metric != "auto":
        if metric == "top1" and y is None:
            raise BadInputError("metric top1 needs labels y in the training data")
        return metric
    if y is None or y.ndim != 1 or not _integral(y):
        return "mse"
    return "top1"


def _integral(y: np.ndarray) -> bool:
    if y.dtype.kind in "iub":
        return True
    return y.dtype.kind == "f" and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))


def _check_consistent(td: TrainData) -> None:
    shape = td.x_train.shape[1:]
    for name, x, y in (("validation", td.x_val, td.y_val), ("test", td.x_test, td.y_test)):
        if x is None:
            continue
        if x.shape[1:] != shape:
            raise BadInputError(f"{name} samples have shape {list(x.shape[1:])} but training samples "
                                f"{list(shape)}")
        if (y is None) != (td.y_train is None):
            raise BadInputError(f"{name} data {'has no' if y is None else 'has'} labels y but the training "
                                f"data {'has' if y is None else 'has no'}")
    if td.metric == "top1":
        for name, y in (("training", td.y_train), ("validation", td.y_val), ("test", td.y_test)):
            if y is None:
                continue
            if not _integral(y) or y.ndim != 1:
                raise BadInputError(f"{name} labels must be class indices (one integer per sample) for "
                                    "metric top1")
            if y.size and y.min() < 0:
                raise BadInputError(f"{name} labels hold negative class index {int(y.min())}")


def _split(x, y, frac, seed, source):
    n = len(x)
    n_val = int(round(n * frac))
    if n_val < 1 or n - n_val < 1:
        raise BadInputError(f"training data {source}: {n} samples are too few to hold out a validation split; "
                            "give a validation set (--val)")
    rng = np.random.default_rng(seed)
    if y is not None and y.ndim == 1 and _integral(y) and len(np.unique(y)) < n_val:
        # stratified: the same share of every class
        val_idx = []
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            rng.shuffle(idx)
            val_idx.extend(idx[: int(round(len(idx) * frac))])
        val_idx = np.array(sorted(val_idx), np.int64)
    else:
        val_idx = np.sort(rng.permutation(n)[:n_val])
    mask = np.zeros(n, bool)
    mask[val_idx] = True
    if mask.all() or not mask.any():
        raise BadInputError(f"training data {source}: cannot hold out a validation split; give --val")
    ys = (None, None) if y is None else (y[~mask], y[mask])
    return x[~mask], ys[0], x[mask], ys[1]


def _clean(x, y, what) -> tuple[np.ndarray, np.ndarray | None]:
    x = _as_array(x, f"{what}: x")
    if x.dtype.kind not in "iuf":
        raise BadInputError(f"{what}: x must be numeric, got {x.dtype}")
    if x.ndim < 2:
        raise BadInputError(f"{what}: x must be [samples, ...], got shape {list(x.shape)}")
    if len(x) == 0:
        raise BadInputError(f"{what}: no samples (empty data set)")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        raise BadInputError(f"{what}: x holds {int(bad.sum())} NaN/inf values (first in sample "
                            f"{int(np.argwhere(bad)[0][0])}); the training loss would be NaN")
    if y is not None:
        y = _as_array(y, f"{what}: y")
        if y.dtype.kind not in "iufb":
            raise BadInputError(f"{what}: labels y must be numeric, got {y.dtype}")
        if y.ndim == 2 and y.shape[1] == 1 and _integral(y):
            y = y.reshape(-1)
        if len(y) != len(x):
            raise BadInputError(f"{what}: {len(x)} samples but {len(y)} labels")
        if y.dtype.kind == "f":
            bad = ~np.isfinite(y)
            if bad.any():
                raise BadInputError(f"{what}: labels y hold {int(bad.sum())} NaN/inf values (first at sample "
                                    f"{int(np.argwhere(bad)[0][0])}); the training loss would be NaN")
        y = y.astype(np.int64) if _integral(y) and y.ndim == 1 else y.astype(np.float32)
    return x, y


def _as_array(a, what) -> np.ndarray:
    try:
        import torch

        if isinstance(a, torch.Tensor):
            return a.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is needed by compress anyway
        pass
    try:
        return np.asarray(a)
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"{what}: not an array ({exc})") from None


# -- reading specs ----------------------------------------------------------------------

def _read(spec: Any, what: str) -> dict:
    if isinstance(spec, tuple) and len(spec) == 2 and not _is_dataset(spec[0]):
        return {"x": spec[0], "y": spec[1], "source": "arrays"}
    if isinstance(spec, np.ndarray):
        return {"x": spec, "y": None, "source": "array"}
    if isinstance(spec, dict):
        return _from_dict(spec, what, "dict")
    if _is_dataset(spec) or (isinstance(spec, (tuple, list)) and spec and all(_is_dataset(s) for s in spec)):
        return _from_datasets(spec, what, "dataset")
    if not isinstance(spec, (str, Path)):
        raise BadInputError(f"{what}: cannot read a {type(spec).__name__}; give an .npz file, 'module:function', "
                            "(x, y) arrays or a torch Dataset")
    s = str(spec)
    path = Path(s)
    if path.suffix.lower() == ".npz" or path.is_file():
        return _read_npz(path, what)
    if ":" in s:
        return _read_callable(s, what)
    raise BadInputError(f"{what}: {s} not found (expected an .npz file with x and y, or 'module:function')")


def _read_npz(path: Path, what: str) -> dict:
    if not path.is_file():
        raise BadInputError(f"{what}: {path}: no such file")
    if path.suffix.lower() != ".npz":
        raise BadInputError(f"{what}: {path} is not an .npz file (expected arrays x and y)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInputError(f"{what}: cannot read {path}: {exc}") from None
    return _from_dict(arrays, what, str(path))


def _from_dict(d: dict, what: str, source: str) -> dict:
    if "x" not in d:
        raise BadInputError(f"{what}: {source} holds {sorted(d)}; name the inputs 'x' and the labels 'y'")
    out = {k: d.get(k) for k in ("x", "y", "x_val", "y_val", "x_test", "y_test")}
    out["source"] = source
    return out


def _read_callable(spec: str, what: str) -> dict:
    from edgekit.user_code import load_callable

    fn = load_callable(spec, what)
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"{what}: {spec}() failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, dict):
        return _from_dict(result, what, spec)
    if isinstance(result, tuple) and len(result) == 2 and not _is_dataset(result[0]):
        return {"x": result[0], "y": result[1], "source": spec}
    if _is_dataset(result) or (isinstance(result, (tuple, list)) and result and all(_is_dataset(r) for r in result)):
        return _from_datasets(result, what, spec)
    raise BadInputError(f"{what}: {spec}() returned {type(result).__name__}; expected (x, y) arrays, a dict "
                        "with x and y, or torch datasets (train[, val[, test]])")


def _is_dataset(obj) -> bool:
    try:
        from torch.utils.data import Dataset
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, Dataset)


def _from_datasets(spec, what: str, source: str) -> dict:
    sets = list(spec) if isinstance(spec, (tuple, list)) else [spec]
    if len(sets) > 3:
        raise BadInputError(f"{what}: {source} gave {len(sets)} datasets; expected train[, val[, test]]")
    names = ("", "_val", "_test")
    out: dict = {"source": source}
    for suffix, ds in zip(names, sets):
        x, y = _dataset_arrays(ds, f"{what} ({source}{suffix or ''})")
        out["x" + suffix], out["y" + suffix] = x, y
    return out


def _dataset_arrays(ds, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        n = len(ds)
    except TypeError:
        raise BadInputError(f"{what}: the dataset has no len(); give a map-style torch Dataset") from None
    if n == 0:
        raise BadInputError(f"{what}: the dataset is empty")
    xs, ys = [], []
    for i in range(n):
        item = ds[i]
        if isinstance(item, (tuple, list)) and len(item) >= 2:
            xs.append(_as_array(item[0], what))
            ys.append(_as_array(item[1], what))
        else:
            xs.append(_as_array(item[0] if isinstance(item, (tuple, list)) else item, what))
    shapes = {a.shape for a in xs}
    if len(shapes) > 1:
        raise BadInputError(f"{what}: samples have different shapes {sorted(map(list, shapes))}")
    x = np.stack(xs)
    y = np.stack(ys) if ys else None
    if y is not None and y.ndim == 2 and y.shape[1] == 1:
        y = y.reshape(-1)
    return x, y
