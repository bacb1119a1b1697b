"""``Model``: one bundle opened on its engine, with numpy in and out (docs/runtime.md).
Python 3.8 syntax: this runs on the system Pythons of old board images."""

from __future__ import annotations

import collections
import time

import numpy as np

from edgekit.errors import BadInputError

# Latencies kept for stats(): enough for a stable p99, bounded for a long-running daemon.
LATENCY_WINDOW = 1000


class TensorSpec(collections.namedtuple("TensorSpec", "name shape dtype quantization layout")):
    """An input or output: name, shape (tuple), dtype (numpy dtype), quantization
    ({"scale": [...], "zero_point": [...], "axis": int or None} or None) and layout
    ("NHWC" for 4-D tensors)."""

    @classmethod
    def from_manifest(cls, spec: dict) -> "TensorSpec":
        return cls(spec["name"], tuple(spec["shape"]), np.dtype(spec["dtype"]), spec.get("quantization"),
                   spec.get("layout"))


class SelfTestResult(collections.namedtuple("SelfTestResult", "passed count failures")):
    """``passed``: every golden vector reproduced within the manifest's tolerance;
    ``failures``: one line per output that was not."""

    def __bool__(self) -> bool:
        return bool(self.passed)


class Model:
    """A verified bundle opened on its engine. Use ``edgekit.runtime.open``."""

    def __init__(self, bundle, engine):
        self.bundle = bundle
        self.manifest = bundle.manifest
        self._engine = engine
        self.inputs = [TensorSpec.from_manifest(s) for s in self.manifest["inputs"]]
        self.outputs = [TensorSpec.from_manifest(s) for s in self.manifest["outputs"]]
        self._in_names = [s.name for s in self.inputs]
        self._in_checks = [(s.name, s.shape, s.dtype) for s in self.inputs]
        self._out_names = [s.name for s in self.outputs]
        self._latencies = collections.deque(maxlen=LATENCY_WINDOW)
        self.calls = 0

    @property
    def engine(self) -> str:
        return self._engine.name

    def describe(self) -> str:
        return self._engine.describe()

    def healthy(self) -> bool:
        """Whether the model can run now: False once closed, else the engine's answer (a
        cheap ping for a board behind the serial engine, True for in-process engines)."""
        engine = self._engine
        return engine is not None and engine.healthy()

    def run(self, feeds: dict) -> dict:
        """{input name: array} -> {output name: array}. Each array must have exactly the
        input's dtype and shape (no silent casts); raises BadInputError naming the input."""
        if self._engine is None:
            raise BadInputError("the model is closed")
        try:
            arrays = [feeds[n] for n in self._in_names]
        except (KeyError, TypeError):
            raise BadInputError(self._feed_problem(feeds)) from None
        if len(feeds) != len(arrays):
            raise BadInputError(self._feed_problem(feeds))
        for (name, shape, dtype), x in zip(self._in_checks, arrays):
            if type(x) is not np.ndarray or x.dtype != dtype or x.shape != shape:
                raise BadInputError(_array_problem(name, shape, dtype, x))
        t0 = time.perf_counter()
        outs = self._engine.run(arrays)
        self._latencies.append(time.perf_counter() - t0)
        self.calls += 1
        return dict(zip(self._out_names, outs))

    def _feed_problem(self, feeds) -> str:
        if not hasattr(feeds, "keys"):
            return f"inputs must be a dict {{name: array}} of {self._in_names}, not {type(feeds).__name__}"
        missing = [n for n in self._in_names if n not in feeds]
        extra = sorted(str(k) for k in feeds if k not in self._in_names)
        parts = []
        if missing:
            parts.append(f"missing input(s) {missing}")
        if extra:
            parts.append(f"unknown input(s) {extra}")
        return "; ".join(parts) + f" (the model's inputs are {self._in_names})"

    def stats(self) -> dict:
        """Engine latency (seconds) of the calls so far: last, median, p99, over the last
        LATENCY_WINDOW calls; ``calls`` counts them all."""
        lat = sorted(self._latencies)
        if not lat:
            return {"calls": 0, "last_s": None, "median_s": None, "p99_s": None}
        return {"calls": self.calls, "last_s": self._latencies[-1], "median_s": float(np.median(lat)),
                "p99_s": float(np.percentile(lat, 99))}

    def self_test(self) -> SelfTestResult:
        """Run the golden vectors stored in the bundle and compare with the outputs the
        reference interpreter gave at compile time, within the manifest's tolerance
        (integer outputs: ``int_steps`` on an engine with TFLM's integer semantics, else
        ``int_steps_other``; float: ``float_rtol``/``float_atol``)."""
        golden = self.bundle.golden()
        if golden is None:
            return SelfTestResult(False, 0, ["the bundle holds no golden vectors"])
        ins, outs = golden
        info = dict(self.manifest["golden"])
        if not self._engine.tflm_exact:
            info["int_steps"] = info.get("int_steps_other", info.get("int_steps", 0))
        failures = []
        count = int(ins[0].shape[0])
        for k in range(count):
            got = self.run({n: np.ascontiguousarray(a[k]) for n, a in zip(self._in_names, ins)})
            for name, want_all in zip(self._out_names, outs):
                problem = _compare(got[name], want_all[k], info)
                if problem:
                    failures.append(f"vector {k}, output {name!r}: {problem}")
        return SelfTestResult(not failures, count, failures)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _array_problem(name, shape, dtype, x) -> str:
    if type(x) is not np.ndarray:
        return f"input {name!r} is a {type(x).__name__}; give a numpy array of {dtype} {list(shape)}"
    if x.dtype != dtype:
        return f"input {name!r} is {x.dtype}; the model takes {dtype} (no implicit conversion)"
    return f"input {name!r} has shape {list(x.shape)}; the model takes {list(shape)}"


def _compare(got, want, info: dict) -> str:
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"shape {list(got.shape)}, expected {list(want.shape)}"
    if want.dtype.kind in "iu":
        diff = int(np.max(np.abs(got.astype(np.int64) - want.astype(np.int64)))) if want.size else 0
        steps = int(info.get("int_steps", 0))
        return "" if diff <= steps else f"differs by {diff} steps (at most {steps} allowed)"
    rtol, atol = float(info.get("float_rtol", 0)), float(info.get("float_atol", 0))
    bad = np.abs(got.astype(np.float64) - want) > atol + rtol * np.abs(want)
    if not np.isfinite(got).all() or bad.any():
        return (f"max difference {float(np.max(np.abs(got.astype(np.float64) - want))):.3g} over "
                f"rtol {rtol} / atol {atol}")
    return ""
