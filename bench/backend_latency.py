"""The per-target latency table ``edgekit compile --backend auto`` reads when the target is
not this machine (docs/targets.md, "Latency tables"): each Linux backend's latency on this
machine's target (x86_64) for KWS (int8), AD (float) and the demo's digits CNN (int8 and
float), through edgekit.runtime, 1 thread, after each bundle passes its self-test.

    .venv/bin/python bench/backend_latency.py [--seconds 2] [--table targets/latency/x86_64.json]
        [--out bench/results/backend_latency.md] [--dry-run]

Each figure is the median of single calls over about --seconds (the median resists the
other jobs of a shared machine). --dry-run measures and writes the Markdown but not the
table. Only the host can be measured here: tables for ARM boards come from runs on them.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from report import Report, default_out  # noqa: E402

import edgekit  # noqa: E402
import edgekit.runtime as rt  # noqa: E402
from edgekit.bundle import compile_bundle  # noqa: E402
from edgekit.bundle.backend_choice import TABLE_FORMAT, applicable_backends, detect_host, median_latency  # noqa: E402

TARGET = "x86_64"


def models() -> list:
    """(name, graph) of each model measured: KWS and AD from ../shared when present."""
    from edgekit.quantize import quantize

    digits = edgekit.load_model(str(REPO / "edgekit" / "data" / "digits_cnn.onnx"))
    with np.load(REPO / "edgekit" / "data" / "digits_samples.npz") as z:
        calib = z["x"]                                  # the ONNX model's NCHW, as edgekit quantize takes it
    out = [("digits-int8", quantize(digits, calib).graph), ("digits-float", digits)]
    for name, rel in (("kws-int8", "models/mlperf-tiny/kws_ref_model_int8.tflite"),
                      ("ad-float", "models/mlperf-tiny/ad01_fp32.tflite")):
        if (SHARED / rel).is_file():
            out.append((name, edgekit.load_model(str(SHARED / rel))))
        else:
            print(f"note: {SHARED / rel} is absent: {name} not measured", flush=True)
    return out


def one_thread(backend: str) -> dict:
    return {"num_threads": 1} if backend in ("litert", "onnxruntime") else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--table", type=Path, default=REPO / "targets" / "latency" / f"{TARGET}.json")
    ap.add_argument("--out", type=Path, default=default_out(__file__))
    ap.add_argument("--dry-run", action="store_true", help="measure and report, but do not write the table")
    args = ap.parse_args()
    if args.seconds <= 0:
        ap.error("--seconds must be positive")
    report = Report(args.out)
    host = detect_host()
    if host.machine != "x86_64":
        print(f"error: this machine is {host.machine}; this bench measures the {TARGET} target", file=sys.stderr)
        return 2
    os.environ.setdefault("TVM_NUM_THREADS", "1")   # TVM's pool reads it when it starts
    command = "python bench/backend_latency.py " + " ".join(sys.argv[1:])
    machine = (f"{host.model or 'x86_64 CPU'}, {platform.system()} {platform.machine()}, "
               f"Python {platform.python_version()}")
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    report.line(f"# Backend latency on {TARGET} (what --backend auto reads for this target)\n")
    report.line(f"{machine}; {date}; 1 thread; median of single calls over {args.seconds:g} s; `{command}`\n")
    report.line("| model | backend | median us | calls |")
    report.line("| --- | --- | ---: | ---: |")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-backend-latency-") as tmp:
        for name, graph in models():
            names, skipped = applicable_backends(graph)
            latency = {}
            for backend in names:
                path = compile_bundle(graph, TARGET, Path(tmp) / f"{name}-{backend}.ekb", backend=backend).bundle.path
                with rt.open(path, engine_options=one_thread(backend)) as model:
                    check = model.self_test()
                    if not check:
                        report.line(f"| {name} | {backend} | failed self-test: {check.failures[0]} | |")
                        continue
                    ins, _ = model.bundle.golden()
                    feeds = {s.name: np.ascontiguousarray(a[0]) for s, a in zip(model.inputs, ins)}
                    seconds, calls = median_latency(model, feeds, args.seconds, max_calls=100_000)
                latency[backend] = round(seconds * 1e6, 2)
                report.line(f"| {name} | {backend} | {latency[backend]:.1f} | {calls} |")
            for s in skipped:
                report.line(f"| {name} | {s.backend} | not measured: {s.reason} | |")
            rows.append({"model": name, "precision": "int8" if name.endswith("int8") else "float32",
                         "latency_us": latency})
    table = {"format": TABLE_FORMAT, "target": TARGET,
             "source": {"command": command, "machine": machine, "date": date, "threads": 1,
                        "statistic": f"median of single calls over {args.seconds:g} s, through edgekit.runtime"},
             "models": rows}
    report.save()
    if not args.dry_run:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(json.dumps(table, indent=1) + "\n")
        print(f"wrote {args.table}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
