"""``--backend auto`` for Linux-class targets: the backend with the lowest measured latency
(docs/bundle-format.md, "How auto chooses").

- The target is this machine (same architecture, every CPU feature the target lists
  present): each candidate backend that applies to the model is compiled, opened through
  ``edgekit.runtime``, checked against the bundle's golden vectors, and timed (median of
  calls, 1 thread); the fastest candidate that passes wins.
- Otherwise: the per-target table ``<targets dir>/latency/<target>.json`` that
  ``bench/backend_latency.py`` writes (docs/targets.md); without one, the documented rule
  of ``bundle_backends.choose_backend``, said plainly.

The result is recorded in the manifest as ``compile.backend_choice``.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.bundle.bundle_backends import LINUX_BACKENDS, choose_backend, has_nvidia_gpu, is_int8, payload_files
from edgekit.errors import BadInputError, EdgekitError, UnsupportedOpError

# Time per candidate: enough calls for a stable median on the small models of this field,
# short enough that auto adds about a second per engine to a compile.
MEASURE_SECONDS = 0.5
MEASURE_MAX_CALLS = 200
MEASURE_MIN_CALLS = 5

# The target file's CPU features as the Linux kernel names them in /proc/cpuinfo's flags;
# "fpu"/"fpu-dp" are part of every x86-64 and AArch64 CPU.
_CPUINFO_FLAG = {"sse2": "sse2", "sse4.2": "sse4_2", "avx": "avx", "avx2": "avx2", "fma": "fma",
                 "avx512f": "avx512f", "neon": "asimd", "dotprod": "asimddp", "fp16": "fphp", "i8mm": "i8mm",
                 "sve": "sve"}
_IMPLIED = {"fpu", "fpu-dp"}
# Features of a target that say what it has besides its CPU (not checked against the host).
_NOT_CPU = {"cuda"}


@dataclass(frozen=True)
class HostCPU:
    machine: str            # platform.machine(): x86_64, aarch64
    flags: frozenset        # /proc/cpuinfo flags (x86) or Features (AArch64)
    model: str = ""


@dataclass
class Candidate:
    backend: str
    status: str                     # "measured", "failed self-test", "failed to build", "skipped"
    median_us: float | None = None
    calls: int = 0
    reason: str = ""

    def to_dict(self) -> dict:
        return {"backend": self.backend, "engine": LINUX_BACKENDS[self.backend].engine, "status": self.status,
                "median_us": None if self.median_us is None else round(self.median_us, 2), "calls": self.calls,
                "reason": self.reason}


@dataclass
class AutoChoice:
    backend: object                 # the chosen LinuxBackend
    files: dict                     # its payload files
    reason: str                     # one line for the compile report and manifest
    record: dict = field(default_factory=dict)   # manifest["compile"]["backend_choice"]
    candidates: list = field(default_factory=list)


def detect_host() -> HostCPU:
    """This machine's architecture and CPU flags (empty flags where /proc/cpuinfo is absent)."""
    flags: set = set()
    model = ""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key == "model name" and not model:
            model = value.strip()
    return HostCPU(platform.machine(), frozenset(flags), model)


def _machine_of(arch: str) -> str:
    return "x86_64" if arch in ("x86_64", "x86-64", "amd64") else "aarch64" if arch.startswith("armv8") else arch


def host_mismatch(target, host: HostCPU) -> str:
    """"" when code built for ``target`` runs on ``host``, else why not."""
    want = _machine_of(target.arch)
    if host.machine != want:
        return f"this machine is {host.machine}, target {target.name} is {want}"
    missing = []
    for feature in sorted(set(target.features) - _IMPLIED - _NOT_CPU):
        flag = _CPUINFO_FLAG.get(feature)
        if flag is None or flag not in host.flags:
            missing.append(feature)
    if missing:
        return f"this CPU lacks {', '.join(missing)}, which target {target.name} uses"
    return ""


def applicable_backends(graph, tvm_installed: bool | None = None, target=None) -> tuple[list, list]:
    """(backend names to try, [Candidate] skipped with the reason) for ``graph`` on
    ``target`` (tensorrt only for a target with an NVIDIA GPU)."""
    if tvm_installed is None:
        tvm_installed = importlib.util.find_spec("tvm") is not None
    int8 = is_int8(graph)
    names, skipped = ["litert", "onnxruntime"], []
    if int8:
        names.append("c")
        skipped.append(Candidate("tvm", "skipped", reason="int8 model: TVM 0.27 runs int8 QDQ as float"))
    else:
        skipped.append(Candidate("c", "skipped", reason="float model: the C backend is int8 only"))
        if tvm_installed:
            names.append("tvm")
        else:
            skipped.append(Candidate("tvm", "skipped", reason="TVM is not installed (pip install 'edgekit[tvm]')"))
    if has_nvidia_gpu(target):
        names.append("tensorrt")
    return names, skipped


def median_latency(model, feeds: dict, seconds: float = MEASURE_SECONDS,
                   max_calls: int = MEASURE_MAX_CALLS) -> tuple[float, int]:
    """(median seconds per ``model.run(feeds)``, calls): one warm-up call, then calls until
    ``seconds`` have passed or ``max_calls`` were made (at least MEASURE_MIN_CALLS)."""
    model.run(feeds)
    times = []
    end = time.perf_counter() + seconds
    while len(times) < max_calls and (len(times) < MEASURE_MIN_CALLS or time.perf_counter() < end):
        t0 = time.perf_counter()
        model.run(feeds)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), len(times)


def _one_thread(backend: str) -> dict:
    if backend in ("litert", "onnxruntime"):
        return {"num_threads": 1}
    if backend == "tvm":
        # TVM's thread pool reads this when it first starts (the engine has no option for it).
        os.environ.setdefault("TVM_NUM_THREADS", "1")
    return {}


def measure_on_host(graph, target, write_candidate: Callable, *, host: HostCPU | None = None,
                    measure: Callable | None = None, tvm_installed: bool | None = None) -> AutoChoice:
    """Build, self-test and time every applicable backend on this machine; the fastest one
    that reproduces the golden vectors wins. ``write_candidate(backend, files, folder)``
    writes a bundle of ``files`` for ``backend`` and returns its path; ``measure(model,
    feeds)`` returns (median seconds, calls)."""
    import edgekit.runtime as rt

    host = host or detect_host()
    measure = measure or median_latency
    names, candidates = applicable_backends(graph, tvm_installed, target)
    built: dict = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-auto-") as tmp:
        for name in names:
            backend = LINUX_BACKENDS[name]
            try:
                files = payload_files(backend, graph, target)
            except (EdgekitError, UnsupportedOpError, OSError, ValueError) as exc:
                candidates.append(Candidate(name, "failed to build", reason=_one_line(exc)))
                continue
            path = write_candidate(backend, files, Path(tmp) / name)
            try:
                with rt.open(path, engine_options=_one_thread(name)) as model:
                    check = model.self_test()
                    if not check:
                        candidates.append(Candidate(name, "failed self-test", reason="; ".join(check.failures[:2])))
                        continue
                    ins, _ = model.bundle.golden()
                    feeds = {s.name: np.ascontiguousarray(a[0]) for s, a in zip(model.inputs, ins)}
                    seconds, calls = measure(model, feeds)
            except rt.EngineUnavailableError as exc:
                candidates.append(Candidate(name, "skipped", reason=_one_line(exc)))
                continue
            except (EdgekitError, OSError, RuntimeError, ValueError) as exc:
                candidates.append(Candidate(name, "failed self-test", reason=_one_line(exc)))
                continue
            candidates.append(Candidate(name, "measured", seconds * 1e6, calls))
            built[name] = files
    measured = sorted((c for c in candidates if c.status == "measured"), key=lambda c: c.median_us)
    if not measured:
        raise EdgekitError("--backend auto: no backend ran this model correctly on this machine: "
                           + "; ".join(f"{c.backend}: {c.status} ({c.reason})" for c in candidates))
    best = measured[0]
    why = f"auto chose {best.backend}: fastest measured on this machine, median {best.median_us:.1f} us per call"
    if len(measured) > 1:
        runner_up = measured[1]
        why += (f" ({runner_up.median_us / best.median_us:.2f}x faster than {runner_up.backend}, "
                f"{runner_up.median_us:.1f} us)")
    why += ", 1 thread"
    record = {"method": "measured on host", "chosen": best.backend,
              "host": {"machine": host.machine, "cpu": host.model, "python": platform.python_version()},
              "threads": 1, "candidates": [c.to_dict() for c in _ordered(candidates)]}
    return AutoChoice(LINUX_BACKENDS[best.backend], built[best.backend], why, record, _ordered(candidates))


def _ordered(candidates: list) -> list:
    order = list(LINUX_BACKENDS)
    return sorted(candidates, key=lambda c: order.index(c.backend))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


# --------------------------------------------------------------------------- latency tables

TABLE_FORMAT = "edgekit-latency"


def latency_table_path(target, dirs) -> Path | None:
    """``latency/<target>.json`` next to the target's file, else in the first folder of
    ``dirs`` (the target search path) that has one."""
    folders = []
    source = getattr(target, "source", None)
    if source:
        folders.append(Path(source).parent)
    folders.extend(Path(d) for d in dirs)
    for folder in folders:
        path = folder / "latency" / f"{target.name}.json"
        if path.is_file():
            return path
    return None


def read_latency_table(path: Path, target_name: str) -> dict:
    """The table at ``path``, checked: format, target, source, and per model a precision
    and positive latencies of known backends."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BadInputError(f"latency table {path}: cannot read it as JSON ({exc})") from None
    problem = _table_problem(doc, target_name)
    if problem:
        raise BadInputError(f"latency table {path}: {problem}")
    return doc


def _table_problem(doc, target_name: str) -> str:
    if not isinstance(doc, dict) or doc.get("format") != TABLE_FORMAT:
        return f"not an {TABLE_FORMAT} file (its \"format\" must be {TABLE_FORMAT!r})"
    if doc.get("target") != target_name:
        return f"it is for target {doc.get('target')!r}, not {target_name!r}"
    source = doc.get("source")
    if not isinstance(source, dict) or not all(isinstance(source.get(k), str) and source[k]
                                               for k in ("command", "machine", "date")):
        return "\"source\" must give the measurement's command, machine and date"
    models = doc.get("models")
    if not isinstance(models, list) or not models:
        return "\"models\" must be a non-empty list"
    for i, m in enumerate(models):
        if not isinstance(m, dict) or m.get("precision") not in ("int8", "float32") or not isinstance(
                m.get("model"), str):
            return f"models[{i}] needs \"model\" and \"precision\" (int8 or float32)"
        lat = m.get("latency_us")
        if not isinstance(lat, dict) or not lat:
            return f"models[{i}] ({m['model']}) has no \"latency_us\""
        for backend, value in lat.items():
            if backend not in LINUX_BACKENDS:
                return f"models[{i}] ({m['model']}): unknown backend {backend!r}"
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                return f"models[{i}] ({m['model']}): latency of {backend} must be a positive number, not {value!r}"
    return ""


def choose_from_table(graph, target, table: dict, path: Path, tvm_installed: bool | None = None) -> AutoChoice:
    """The backend with the lowest geometric mean of (latency / fastest latency) over the
    table's models of this model's precision, among the backends that apply to it and are
    measured on every one of those models; a backend whose payload cannot be built gives
    way to the next."""
    precision = "int8" if is_int8(graph) else "float32"
    rows = [m for m in table["models"] if m["precision"] == precision]
    names, _ = applicable_backends(graph, tvm_installed, target)
    common = [b for b in names if rows and all(b in m["latency_us"] for m in rows)]
    if not common:
        return None
    score = {b: math.exp(statistics.fmean(math.log(m["latency_us"][b] / min(m["latency_us"][c] for c in common))
                                          for m in rows)) for b in common}
    ranked = sorted(common, key=lambda b: score[b])
    src = table["source"]
    failures = []
    for name in ranked:
        backend = LINUX_BACKENDS[name]
        try:
            files = payload_files(backend, graph, target)
        except (EdgekitError, UnsupportedOpError, OSError, ValueError) as exc:
            failures.append(f"{name} cannot build this model ({_one_line(exc)})")
            continue
        figures = ", ".join(f"{m['model']} {m['latency_us'][name]:g} us" for m in rows)
        why = (f"auto chose {name}: fastest for {precision} models on {target.name} in {path.name} "
               f"({figures}; {score[name]:.2f}x the fastest on average; measured {src['date']} on {src['machine']})")
        if failures:
            why += "; " + "; ".join(failures)
        record = {"method": "latency table", "chosen": name, "table": str(path), "source": src,
                  "precision": precision,
                  "candidates": [{"backend": b, "engine": LINUX_BACKENDS[b].engine,
                                  "latency_us": {m["model"]: m["latency_us"][b] for m in rows},
                                  "relative_to_fastest": round(score[b], 3)} for b in ranked]}
        return AutoChoice(backend, files, why, record)
    return None


# --------------------------------------------------------------------------- the entry point

def choose_auto(graph, target, write_candidate: Callable, *, table_dirs=(), host: HostCPU | None = None,
                measure: Callable | None = None, tvm_installed: bool | None = None) -> AutoChoice:
    """``--backend auto`` for a Linux-class ``target``: measured on this machine when it is
    the target, else from the target's latency table, else the documented rule."""
    host = host or detect_host()
    mismatch = host_mismatch(target, host)
    if not mismatch:
        return measure_on_host(graph, target, write_candidate, host=host, measure=measure,
                               tvm_installed=tvm_installed)
    path = latency_table_path(target, table_dirs)
    if path is not None:
        choice = choose_from_table(graph, target, read_latency_table(path, target.name), path, tvm_installed)
        if choice is not None:
            return choice
        no_figures = (f"{path.name} has no figures for {'int8' if is_int8(graph) else 'float32'} models "
                      "that cover the backends this model can use")
    else:
        no_figures = f"no latency measured for {target.name}"
    backend, files, rule = choose_backend(graph, "auto", target)
    why = f"{no_figures} ({mismatch}); rule: {rule}"
    record = {"method": "rule", "chosen": backend.name, "why_not_measured": f"{no_figures}; {mismatch}"}
    return AutoChoice(backend, files, why, record)
