"""Calibration and evaluation data: load arrays from files or Python, preprocess them,
and check them against the model input before any statistics are collected.

Specs: an ``.npz`` (array ``x``, or its only array besides ``y``; optional labels
``y``), an ``.npy``, a folder of ``.npy`` files (each one sample or a batch, in name
order), or ``"module:function"`` / ``"path/file.py:function"`` whose function returns
(or yields) arrays or ``(x, y)`` batches.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from edgekit.errors import BadInputError

MIN_SAMPLES = 50
RECOMMENDED_SAMPLES = 200
_LAYOUTS = {"nhwc->nchw": (0, 3, 1, 2), "nchw->nhwc": (0, 2, 3, 1), "nchw": None, "nhwc": None}


class FewSamplesWarning(UserWarning):
    """Fewer calibration samples than ranges can be trusted from."""


@dataclass
class Dataset:
    x: np.ndarray          # [N, ...] in the model's source layout, preprocessed
    y: np.ndarray | None   # labels, one per sample, when the source has them
    source: str            # where the data came from, for reports

    def __len__(self) -> int:
        return int(len(self.x))


def load_dataset(spec, *, input_shape: tuple, input_dtype: str = "float32", scale: float | None = None,
                 mean: float | list | None = None, layout: str | None = None, limit: int | None = None,
                 what: str = "calibration data") -> Dataset:
    """Load, preprocess (``x * scale - mean``, then cast) and validate a data set.

    ``input_shape`` is the model input's shape in its source layout, batch first
    (e.g. ``(1, 49, 10, 1)``). ``layout`` ("nhwc->nchw" or "nchw->nhwc") transposes
    4-D data first. ``limit`` keeps the first N samples. Raises ``BadInputError`` with
    the expected shape on any mismatch; warns ``FewSamplesWarning`` under 50 samples.
    """
    input_shape = tuple(int(d) for d in input_shape)
    if not input_shape:
        raise BadInputError(f"{what}: the model input is a scalar; nothing to calibrate over")
    if layout is not None and layout.lower() not in _LAYOUTS:
        raise BadInputError(f"{what}: unknown layout {layout!r}; use 'nhwc->nchw' or 'nchw->nhwc'")
    if limit is not None and int(limit) < 1:
        raise BadInputError(f"{what}: limit must be at least 1, got {limit}")
    x, y, source = _read(spec, input_shape, limit, what)
    x = _as_batch(x, input_shape, what, layout)
    if limit is not None:
        x = x[: int(limit)]
        y = None if y is None else y[: int(limit)]
    _check_numeric(x, what)
    x = _preprocess(x, scale, mean, layout, input_shape, what)
    _check_shape(x, input_shape, what)
    _check_finite(x, what)
    x = _cast(x, input_dtype, what)
    if y is not None:
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != len(x):
            raise BadInputError(f"{what}: {len(x)} samples but {y.size if y.ndim == 0 else len(y)} labels in {source}")
    if len(x) < MIN_SAMPLES:
        warnings.warn(f"{what}: only {len(x)} sample{'s' if len(x) != 1 else ''} in {source}; ranges from so few "
                      f"are unreliable, use at least {RECOMMENDED_SAMPLES}", FewSamplesWarning, stacklevel=2)
    return Dataset(x=x, y=y, source=source)


# -- reading ---------------------------------------------------------------------------

def _read(spec, input_shape, limit, what) -> tuple[np.ndarray, np.ndarray | None, str]:
    if isinstance(spec, np.ndarray):
        return spec, None, "array"
    s = str(spec)
    path = Path(s)
    if path.is_dir():
        return _read_folder(path, input_shape, what) + (s,)
    if path.is_file():
        x, y = _read_file(path, what)
        return x, y, s
    if ":" in s and not s.lower().endswith((".npz", ".npy")):
        x, y = _read_callable(s, input_shape, limit, what)
        return x, y, s
    raise BadInputError(f"{what}: {s} not found (expected an .npz or .npy file, a folder of .npy files, "
                        "or 'module:function')")


def _read_file(path: Path, what) -> tuple[np.ndarray, np.ndarray | None]:
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".npy"):
        raise BadInputError(f"{what}: {path} is not an .npz or .npy file")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False), None
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInputError(f"{what}: cannot read {path}: {exc}") from None
    if "x" in arrays:
        x = arrays["x"]
    else:
        rest = [k for k in arrays if k != "y"]
        if len(rest) != 1:
            raise BadInputError(f"{what}: {path} holds arrays {sorted(arrays)}; name the inputs 'x' "
                                "(and the labels 'y')")
        x = arrays[rest[0]]
    return x, arrays.get("y")


def _read_folder(folder: Path, input_shape, what) -> tuple[np.ndarray, np.ndarray | None]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".npy" and p.is_file())
    if not files:
        raise BadInputError(f"{what}: folder {folder} holds no .npy files (empty data set)")
    parts = []
    for f in files:
        arr, _ = _read_file(f, what)
        _check_numeric(arr, f"{what} ({f.name})")
        parts.append(_as_batch(arr, input_shape, f"{what} ({f.name})", None, allow_layout=True))
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise BadInputError(f"{what}: the .npy files in {folder} have different sample shapes "
                            f"{sorted(list(s) for s in shapes)}")
    return np.concatenate(parts), None


def _read_callable(spec: str, input_shape, limit, what) -> tuple[np.ndarray, np.ndarray | None]:
    from edgekit.user_code import load_callable

    fn = load_callable(spec, what)
    try:
        result = fn()
        return _collect(result, input_shape, limit, what, spec)
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"{what}: {spec} failed: {type(exc).__name__}: {exc}") from exc


def _collect(result: Any, input_shape, limit, what, spec) -> tuple[np.ndarray, np.ndarray | None]:
    """A function's result: an array, an (x, y) pair, a dict with x/y, or an iterable of these."""
    if isinstance(result, dict):
        if "x" not in result:
            raise BadInputError(f"{what}: {spec} returned a dict without 'x'")
        return np.asarray(result["x"]), None if result.get("y") is None else np.asarray(result["y"])
    if isinstance(result, np.ndarray):
        return result, None
    if isinstance(result, tuple) and len(result) == 2:
        return np.asarray(result[0]), None if result[1] is None else np.asarray(result[1])
    if not isinstance(result, Iterable) or isinstance(result, (str, bytes)):
        raise BadInputError(f"{what}: {spec} returned {type(result).__name__}; expected an array, "
                            "(x, y), or an iterable of batches")
    xs, ys, n = [], [], 0
    for i, batch in enumerate(result):
        if isinstance(batch, dict):
            bx, by = batch.get("x"), batch.get("y")
        elif isinstance(batch, tuple) and len(batch) == 2:
            bx, by = batch
        else:
            bx, by = batch, None
        if bx is None:
            raise BadInputError(f"{what}: batch {i} from {spec} has no x")
        bx = np.asarray(bx)
        _check_numeric(bx, f"{what} (batch {i})")
        bx = _as_batch(bx, input_shape, f"{what} (batch {i})", None, allow_layout=True)
        xs.append(bx)
        if by is not None:
            by = np.asarray(by).reshape(-1) if np.ndim(by) <= 1 else np.asarray(by)
            if len(by) != len(bx):
                raise BadInputError(f"{what}: batch {i} from {spec} has {len(bx)} samples but {len(by)} labels")
        ys.append(by)
        n += len(bx)
        if limit is not None and n >= int(limit):
            break
    if not xs:
        raise BadInputError(f"{what}: {spec} yielded no batches (empty data set)")
    shapes = {b.shape[1:] for b in xs}
    if len(shapes) > 1:
        raise BadInputError(f"{what}: batches from {spec} have different sample shapes "
                            f"{sorted(list(s) for s in shapes)}")
    if any(v is None for v in ys) and not all(v is None for v in ys):
        raise BadInputError(f"{what}: some batches from {spec} have labels and some do not")
    y = None if ys[0] is None else np.concatenate(ys)
    return np.concatenate(xs), y


# -- checks and preprocessing -------------------------------------------------------------

def _fmt(shape) -> str:
    return "[" + ", ".join(str(int(d)) for d in shape) + "]"


def _as_batch(x: np.ndarray, input_shape, what, layout, allow_layout: bool = False) -> np.ndarray:
    """Add the batch axis to a single sample (a sample with the model input's rank - 1)."""
    x = np.asarray(x)
    sample = tuple(input_shape[1:])
    if x.ndim == len(input_shape) - 1 and x.ndim > 0:
        if x.shape == sample or (layout or allow_layout) and x.ndim == 3 and sorted(x.shape) == sorted(sample):
            return x[None]
    return x


def _check_numeric(x: np.ndarray, what) -> None:
    if x.dtype.kind not in "iuf":
        raise BadInputError(f"{what}: values must be numbers (integer or float), got {x.dtype}")


def _check_shape(x: np.ndarray, input_shape, what) -> None:
    want = tuple(input_shape[1:])
    expected = "[N" + "".join(f", {d}" for d in want) + "]"
    if x.ndim == 0:
        raise BadInputError(f"{what}: got a single number, expected an array {expected}")
    if len(x) == 0:
        raise BadInputError(f"{what}: the data set is empty (no samples; expected {expected})")
    if x.ndim != len(input_shape) or tuple(x.shape[1:]) != want:
        raise BadInputError(f"{what}: sample shape {_fmt(x.shape[1:])} does not match the model input "
                            f"{_fmt(input_shape)} (expected {expected})")
    if input_shape[0] not in (1, x.shape[0]) and input_shape[0] > 0:
        raise BadInputError(f"{what}: {x.shape[0]} samples but the model input takes exactly "
                            f"{input_shape[0]} ({_fmt(input_shape)})")


def _check_finite(x: np.ndarray, what) -> None:
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    n_nan = int(np.isnan(x).sum())
    n_inf = int(bad.sum()) - n_nan
    samples = np.unique(np.nonzero(bad.reshape(len(x), -1).any(axis=1))[0])
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    shown = ", ".join(str(int(s)) for s in samples[:10]) + (", ..." if len(samples) > 10 else "")
    raise BadInputError(f"{what}: {n_nan} NaN and {n_inf} inf values in {len(samples)} sample(s) "
                        f"(samples {shown}; first at index {list(first)})")


def _channel_axis(x: np.ndarray, n: int, layout, input_shape, what) -> int:
    target = None if layout is None else layout.lower().split("->")[-1]
    if target == "nchw":
        return 1
    if target == "nhwc":
        return x.ndim - 1
    last = x.ndim >= 2 and x.shape[-1] == n
    second = x.ndim >= 3 and x.shape[1] == n
    if last and second and x.ndim == 4:
        raise BadInputError(f"{what}: {n} mean values fit both axis 1 and the last axis of "
                            f"{_fmt(input_shape)}; pass layout='nchw' or 'nhwc'")
    if last:
        return x.ndim - 1
    if second:
        return 1
    raise BadInputError(f"{what}: {n} mean values match no channel axis of the model input {_fmt(input_shape)}")


def _preprocess(x, scale, mean, layout, input_shape, what) -> np.ndarray:
    if layout is not None and _LAYOUTS[layout.lower()] is not None:
        if x.ndim != 4:
            raise BadInputError(f"{what}: layout {layout!r} needs 4-D data, got shape {_fmt(x.shape)}")
        x = np.ascontiguousarray(x.transpose(_LAYOUTS[layout.lower()]))
    if scale is None and mean is None:
        return x
    x = x.astype(np.float32) if x.dtype != np.float64 else x
    if scale is not None:
        x = x * np.float32(scale)
    if mean is not None:
        m = np.asarray(mean, dtype=np.float32)
        if m.ndim == 0 or m.size == 1:
            x = x - m.reshape(())
        elif m.ndim == 1:
            axis = _channel_axis(x, m.size, layout, input_shape, what)
            shape = [1] * x.ndim
            shape[axis] = m.size
            x = x - m.reshape(shape)
        else:
            raise BadInputError(f"{what}: mean must be a number or a list of per-channel values")
    return x


def _cast(x: np.ndarray, dtype, what) -> np.ndarray:
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return np.ascontiguousarray(x, dtype=dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        if x.dtype.kind == "f" and np.any(x != np.round(x)):
            raise BadInputError(f"{what}: the model takes {dt.name} input but the data has fractional values")
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise BadInputError(f"{what}: values {x.min():g}..{x.max():g} do not fit the model's "
                                f"{dt.name} input")
        return np.ascontiguousarray(x, dtype=dt)
    raise BadInputError(f"{what}: unsupported input type {dt}")
