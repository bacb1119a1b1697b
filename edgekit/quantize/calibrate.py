"""Activation range calibration: run the float graph on calibration data with the
reference interpreter, stream every activation tensor (graph inputs and op
outputs) into a histogram, and turn the histograms into ranges.

Methods: ``minmax``, ``percentile``, ``mse``, ``entropy`` (see ``histogram``), and
``auto``, which picks one of the four per tensor by the error it causes at the
model output (see ``auto_select``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from edgekit.errors import BadInputError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.quantize.histogram import DEFAULT_BINS, ESTIMATORS, TensorHistogram, estimate_range

METHODS = ESTIMATORS + ("auto",)
Progress = Callable[[int, int], None] | None


@dataclass(frozen=True)
class Range:
    """A real-valued activation range and the method that chose it."""

    min: float
    max: float
    method: str = "minmax"

    def __iter__(self):  # lo, hi = rng
        yield self.min
        yield self.max

    def union(self, other: "Range") -> "Range":
        method = self.method if self.method == other.method else "+".join(sorted({self.method, other.method}))
        return Range(min(self.min, other.min), max(self.max, other.max), method)


def activation_tensors(graph: Graph) -> list[str]:
    """Graph inputs and float op outputs, in execution order (integer outputs such as
    ARG_MAX's int32 indices are not activations: they stay as they are)."""
    names = list(graph.inputs)
    for op in graph.ops:
        for o in op.outputs:
            t = graph.tensor(o)
            if not t.is_const and o not in names and t.dtype is DType.FLOAT32:
                names.append(o)
    return names


def as_input_list(graph: Graph, data) -> list[np.ndarray]:
    """The calibration data as one array per graph input (all with the same N)."""
    if hasattr(data, "x") and isinstance(data.x, np.ndarray):  # a Dataset
        data = data.x
    if isinstance(data, np.ndarray):
        arrays = [data]
    elif isinstance(data, Mapping):
        missing = [n for n in graph.inputs if n not in data]
        if missing:
            raise BadInputError(f"calibration data: missing input(s) {missing}; the model's inputs are {graph.inputs}")
        arrays = [np.asarray(data[n]) for n in graph.inputs]
    elif isinstance(data, Sequence):
        arrays = [np.asarray(a) for a in data]
    else:
        raise BadInputError(f"calibration data must be an array, got {type(data).__name__}")
    if len(arrays) != len(graph.inputs):
        raise BadInputError(f"calibration data: the model takes {len(graph.inputs)} input(s) {graph.inputs}, "
                            f"got {len(arrays)} array(s)")
    lengths = {len(a) if a.ndim else 0 for a in arrays}
    if len(lengths) != 1 or 0 in lengths:
        raise BadInputError(f"calibration data: the inputs must hold the same number (>= 1) of samples, "
                            f"got {sorted(lengths)}")
    return arrays


def iter_batches(arrays: list[np.ndarray], batch_size: int):
    n = len(arrays[0])
    for start in range(0, n, batch_size):
        yield [a[start:start + batch_size] for a in arrays]


def collect_stats(graph: Graph, data, *, batch_size: int = 64, bins: int = DEFAULT_BINS,
                  progress: Progress = None, progress_total: int | None = None) -> dict[str, TensorHistogram]:
    """Histograms of every activation tensor over the calibration data, batch by batch."""
    from edgekit.reference.interpreter import Interpreter

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    arrays = as_input_list(graph, data)
    names = activation_tensors(graph)
    hists = {n: TensorHistogram(bins) for n in names}
    interp = Interpreter(graph)
    n_batches = -(-len(arrays[0]) // batch_size)
    total = progress_total or n_batches
    for i, batch in enumerate(iter_batches(arrays, batch_size)):
        values = interp.run(batch, layout="source", dump=True)
        for n in names:
            v = values.get(n)
            if v is not None and np.issubdtype(np.asarray(v).dtype, np.floating):
                hists[n].update(v)
        if progress:
            progress(i + 1, total)
    return hists


def ranges_from_stats(hists: dict[str, TensorHistogram], method: str, percentile: float = 99.99) -> dict[str, Range]:
    return {n: Range(*estimate_range(h, method, percentile), method) for n, h in hists.items()}


def calibrate(graph: Graph, data, method: str = "minmax", percentile: float = 99.99, batch_size: int = 64,
              progress: Progress = None, auto_samples: int = 64) -> dict[str, Range]:
    """Range of every activation tensor of the float ``graph`` over ``data`` (an array
    in the model's source layout, or one per input). ``progress(done, total)`` is called
    after each batch (and, for ``auto``, after each tensor's selection)."""
    if method not in METHODS:
        raise BadInputError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")
    if not 50.0 < float(percentile) <= 100.0:
        raise BadInputError(f"percentile must be in (50, 100], got {percentile}")
    _check_float_graph(graph)
    arrays = as_input_list(graph, data)
    n_batches = -(-len(arrays[0]) // batch_size)
    extra = 0
    if method == "auto":
        from edgekit.quantize.auto_select import selectable_tensors
        extra = len(selectable_tensors(graph))
    hists = collect_stats(graph, arrays, batch_size=batch_size, progress=progress,
                          progress_total=n_batches + extra)
    empty = [n for n, h in hists.items() if h.empty]
    if empty:
        raise BadInputError(f"calibration saw no values for tensor(s) {empty[:5]}")
    if method != "auto":
        return ranges_from_stats(hists, method, percentile)
    from edgekit.quantize.auto_select import select_ranges

    def tick(done: int, total: int) -> None:
        if progress:
            progress(n_batches + done, n_batches + total)

    return select_ranges(graph, arrays, hists, percentile=percentile, max_samples=auto_samples, progress=tick)


def _check_float_graph(graph: Graph) -> None:
    for n in graph.inputs:
        t = graph.tensor(n)
        if t.dtype is not DType.FLOAT32:
            raise BadInputError(f"calibration needs a float model: input {n!r} is {t.dtype.value}")
