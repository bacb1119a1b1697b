"""Untuned TVM (edgekit's tvm backend and engine) against onnxruntime on float models:
latency per inference on this machine (x86_64 target), 1 thread each, same inputs, in one
process; plus TVM's compile time per model.

    .venv/bin/python bench/tvm_untuned.py [--runs 2000] [--rounds 5]

Each model is compiled twice by edgekit (``--backend tvm`` and ``--backend onnxruntime``)
and timed through the runtime (``Model.run``), and onnxruntime is also called directly on
the same .onnx with its default graph optimizations (what users run). Rounds alternate
between the three so drift of the machine hits each; a figure is the median over rounds
of each round's median. Prints markdown tables and writes them to bench/results/tvm_untuned.md
(or --out).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# TVM's thread pool reads this when it starts: one thread, like the onnxruntime sessions.
os.environ["TVM_NUM_THREADS"] = "1"

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Report, default_out  # noqa: E402

import edgekit.runtime as rt  # noqa: E402
from edgekit.bundle import compile_bundle  # noqa: E402
from edgekit.frontends import load_model  # noqa: E402

MODELS = [("AD fp32 (MLPerf Tiny)", SHARED / "models/mlperf-tiny/ad01_fp32.tflite"),
          ("KWS fp32 (MLPerf Tiny)", SHARED / "models/mlperf-tiny/kws_ref_model_float32.tflite"),
          ("digits CNN float", REPO / "edgekit/data/digits_cnn.onnx")]


def raw_onnxruntime(model: bytes, feeds: list):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    run = sess.run
    return lambda: run(None, dict(zip(names, feeds)))


def raw_tvm(library: bytes, feeds: list, tmp: str):
    """TVM's VM called directly on the bundle's module: numpy -> tvm tensor -> numpy, as the
    engine does, without the runtime's checks."""
    import tvm
    from tvm.runtime import vm

    # A new file per model: dlopen of a path already loaded returns that library, and
    # rewriting a mapped file crashes the process that maps it.
    fd, name = tempfile.mkstemp(suffix=".so", dir=tmp)
    os.close(fd)
    path = Path(name)
    path.write_bytes(library)
    dev = tvm.cpu()
    main = vm.VirtualMachine(tvm.runtime.load_module(str(path)), dev)["main"]
    tensor = tvm.runtime.tensor
    return lambda: main(*[tensor(x, dev) for x in feeds]).numpy()


def runtime_call(model, feeds: list):
    named = {s.name: x for s, x in zip(model.inputs, feeds)}
    run = model.run
    return lambda: run(named)


def round_median(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2000, help="calls per round and path")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(default_out(__file__)))
    args = ap.parse_args()
    if args.runs < 1 or args.rounds < 1:
        print("error: --runs and --rounds must be at least 1", file=sys.stderr)
        return 2
    report = Report(args.out)
    import onnxruntime

    from edgekit.backends.tvm import import_tvm_compiler

    tvm = import_tvm_compiler()     # TVM without importing torch, as edgekit compile does

    report.line("# Untuned TVM vs onnxruntime, float models (x86_64 target, 1 thread)\n")
    report.line(f"Machine: {platform.machine()}, {os.cpu_count()} cores; Apache TVM {tvm.__version__} (untuned, "
                f"target x86-64-v3), onnxruntime {onnxruntime.__version__} (default graph optimizations). "
                f"{args.rounds} rounds x {args.runs} calls; median of round medians.\n")
    report.line("| model | TVM compile (s) | TVM via runtime (us) | TVM direct (us) | onnxruntime via runtime (us) | "
                "onnxruntime direct (us) | TVM / onnxruntime direct |")
    report.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in MODELS:
            if not path.is_file():
                report.line(f"| {label} | model file {path} absent | | | | | |")
                continue
            graph = load_model(path)
            t0 = time.perf_counter()
            tvm_bundle = compile_bundle(graph, "x86_64", Path(tmp) / "tvm.ekb", backend="tvm").bundle
            compile_s = time.perf_counter() - t0
            ort_bundle = compile_bundle(graph, "x86_64", Path(tmp) / "ort.ekb", backend="onnxruntime").bundle
            with rt.open(tvm_bundle.path) as m_tvm, \
                    rt.open(ort_bundle.path, engine_options={"num_threads": 1}) as m_ort:
                feeds = [rng.standard_normal(s.shape).astype(s.dtype) for s in m_tvm.inputs]
                calls = {"tvm": runtime_call(m_tvm, feeds),
                         "tvm_raw": raw_tvm(tvm_bundle.read(tvm_bundle.payload("model")), feeds, tmp),
                         "ort_rt": runtime_call(m_ort, feeds),
                         "ort": raw_onnxruntime(ort_bundle.read(ort_bundle.payload("model")), feeds)}
                for call in calls.values():       # warm-up
                    for _ in range(min(50, args.runs)):
                        call()
                medians = {k: [] for k in calls}
                for _ in range(args.rounds):
                    for k, call in calls.items():
                        medians[k].append(round_median(call, args.runs))
            us = {k: statistics.median(v) * 1e6 for k, v in medians.items()}
            report.line(f"| {label} | {compile_s:.2f} | {us['tvm']:,.1f} | {us['tvm_raw']:,.1f} | "
                        f"{us['ort_rt']:,.1f} | {us['ort']:,.1f} | {us['tvm'] / us['ort']:.2f}x |")
    report.line("\nTVM here is untuned (no MetaSchedule search): its default schedules are plain loops. "
                "TVM compile time includes the ONNX export and linking the shared library, not importing TVM.")
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
