"""MetaSchedule-tuned TVM against untuned TVM and onnxruntime on float models: latency
per inference on this machine (x86_64 target), 1 thread each, same inputs, in one
process; plus what the tuning cost.

    .venv/bin/python bench/tvm_tuned.py [--trials 160] [--runs 2000] [--rounds 5] [--tune-db DIR]

Each model is compiled three times by edgekit: ``--backend tvm`` untuned, ``--backend tvm
--tune-trials N`` (into a fresh tuning database unless --tune-db names one, so every
model is tuned from scratch) and ``--backend onnxruntime``. The TVM modules are called
directly through TVM's VM and onnxruntime directly on the same .onnx with its default
graph optimizations (what users run), as in bench/tvm_untuned.py. Rounds alternate
between the three; a figure is the median over rounds of each round's median. Prints a
markdown table and writes it to bench/results/tvm_tuned.md (or --out).
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
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Report, default_out  # noqa: E402
from tvm_untuned import MODELS, raw_onnxruntime, raw_tvm, round_median  # noqa: E402

from edgekit.bundle import compile_bundle  # noqa: E402
from edgekit.frontends import load_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=160, help="MetaSchedule trials per model")
    ap.add_argument("--runs", type=int, default=2000, help="calls per round and path")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--models", default="", help="comma-separated words; only models whose label holds one")
    ap.add_argument("--tune-db", default=None, help="tuning database folder (default: a fresh one per run)")
    ap.add_argument("--out", default=str(default_out(__file__)))
    args = ap.parse_args()
    if args.runs < 1 or args.rounds < 1 or args.trials < 1:
        print("error: --trials, --runs and --rounds must be at least 1", file=sys.stderr)
        return 2
    report = Report(args.out)
    import onnxruntime

    from edgekit.backends.tvm import TuningOptions, import_tvm_compiler

    tvm = import_tvm_compiler()     # TVM without importing torch, as edgekit compile does
    words = [w.strip().lower() for w in args.models.split(",") if w.strip()]
    models = [(label, path) for label, path in MODELS if not words or any(w in label.lower() for w in words)]

    report.line("# MetaSchedule-tuned TVM vs untuned TVM and onnxruntime, float models (x86_64 target, 1 thread)\n")
    report.line(f"Machine: {platform.machine()}, {os.cpu_count()} cores; Apache TVM {tvm.__version__} (target "
                f"x86-64-v3; tuned with `--tune-trials {args.trials}`: MetaSchedule's evolutionary search with its "
                f"random cost model, for one thread), onnxruntime {onnxruntime.__version__} (default graph "
                f"optimizations). {args.rounds} rounds x {args.runs} calls; median of round medians.\n")
    report.line("| model | trials run | tuning (s) | TVM untuned (us) | TVM tuned (us) | onnxruntime (us) | "
                "untuned / onnxruntime | tuned / onnxruntime | tuned / untuned |")
    report.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        db_root = Path(args.tune_db) if args.tune_db else Path(tmp) / "tuning"
        for label, path in models:
            if not path.is_file():
                report.line(f"| {label} | model file {path} absent | | | | | | | |")
                continue
            graph = load_model(path)
            plain = compile_bundle(graph, "x86_64", Path(tmp) / "plain.ekb", backend="tvm").bundle
            t0 = time.perf_counter()
            result = compile_bundle(graph, "x86_64", Path(tmp) / "tuned.ekb", backend="tvm",
                                    backend_options={"tuning": TuningOptions(args.trials, db_root)})
            tune_s = time.perf_counter() - t0
            tuning = result.manifest["compile"]["tvm"]["tuning"]
            tuned = result.bundle
            ort = compile_bundle(graph, "x86_64", Path(tmp) / "ort.ekb", backend="onnxruntime").bundle
            feeds = [rng.standard_normal(s["shape"]).astype(s["dtype"]) for s in tuned.manifest["inputs"]]
            calls = {"untuned": raw_tvm(plain.read(plain.payload("model")), feeds, tmp),
                     "tuned": raw_tvm(tuned.read(tuned.payload("model")), feeds, tmp),
                     "ort": raw_onnxruntime(ort.read(ort.payload("model")), feeds)}
            np.testing.assert_allclose(calls["tuned"](), calls["ort"]()[0], rtol=1e-3, atol=1e-4)
            for call in calls.values():       # warm-up
                for _ in range(min(50, args.runs)):
                    call()
            medians = {k: [] for k in calls}
            for _ in range(args.rounds):
                for k, call in calls.items():
                    medians[k].append(round_median(call, args.runs))
            us = {k: statistics.median(v) * 1e6 for k, v in medians.items()}
            report.line(f"| {label} | {tuning['trials_run']} | {tune_s:.0f} | {us['untuned']:,.1f} | "
                        f"{us['tuned']:,.1f} | {us['ort']:,.1f} | {us['untuned'] / us['ort']:.2f}x | "
                        f"{us['tuned'] / us['ort']:.2f}x | {us['tuned'] / us['untuned']:.2f}x |")
    report.line("\nTuning time is the whole tuned compile (search, building candidates, timing them in a "
                "worker process, final build). Trials run can be fewer than requested: a kernel whose "
                "schedule space is exhausted stops early. The goal of issue 10 is tuned / onnxruntime <= 1.")
    report.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
