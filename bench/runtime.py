"""The device runtime's own cost per inference: ``edgekit.runtime`` Model.run on a bundle
against the same model file called directly through LiteRT / onnxruntime, 1 thread, same
options, same inputs, in one process (goal: at most 5 us per call). Also cold start
(bundle open to first result) per engine.

    .venv/bin/python bench/runtime.py [--runs 5000] [--rounds 7]

Timed in alternating rounds (raw, runtime, raw, ...) so drift of the machine hits both;
per-call figures are the median over rounds of each round's median. Prints markdown
tables and writes them to bench/results/runtime.md (or --out).
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Report, default_out  # noqa: E402

import edgekit.runtime as rt  # noqa: E402
from edgekit.bundle import compile_bundle  # noqa: E402
from edgekit.frontends import load_model  # noqa: E402

MODELS = [("KWS int8", SHARED / "models/mlperf-tiny/kws_ref_model_int8.tflite"),
          ("AD int8", SHARED / "models/mlperf-tiny/ad01_int8.tflite"),
          ("digits CNN float", REPO / "edgekit/data/digits_cnn.onnx")]


def raw_litert(model: bytes, feeds: list):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=model, num_threads=1)
    it.allocate_tensors()
    ins = [d["index"] for d in it.get_input_details()]
    outs = [d["index"] for d in it.get_output_details()]
    set_tensor, invoke, get_tensor = it.set_tensor, it.invoke, it.get_tensor

    def call():
        for i, x in zip(ins, feeds):
            set_tensor(i, x)
        invoke()
        return [get_tensor(o) for o in outs]
    return call


def raw_onnxruntime(model: bytes, feeds: list):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    run = sess.run

    def call():
        return run(None, dict(zip(names, feeds)))
    return call


# A device process: a fresh interpreter that imports the runtime, opens the bundle and runs
# one inference, as a daemon starting on a board would.
DEVICE_PROCESS = """
import json, resource, sys, time
t0 = time.perf_counter()
import numpy as np
import edgekit.runtime as rt
t1 = time.perf_counter()
m = rt.open(sys.argv[1])
m.run({s.name: np.zeros(s.shape, s.dtype) for s in m.inputs})
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "open_run_s": t2 - t1,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def device_process(bundle: Path, repeat: int = 3) -> dict:
    """Median figures over ``repeat`` fresh processes."""
    import json
    import subprocess

    runs = []
    for _ in range(repeat):
        res = subprocess.run([sys.executable, "-c", DEVICE_PROCESS, str(bundle)], cwd=REPO, capture_output=True,
                             text=True, timeout=120, check=True)
        runs.append(json.loads(res.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def per_call(fn, runs: int) -> float:
    clock = time.perf_counter
    lat = np.empty(runs)
    for k in range(runs):
        t = clock()
        fn()
        lat[k] = clock() - t
    return float(np.median(lat))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5000, help="calls per round")
    ap.add_argument("--rounds", type=int, default=7, help="alternating rounds of raw and runtime calls")
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    if args.runs < 1 or args.rounds < 1:
        ap.error("--runs and --rounds must be at least 1")
    rep = Report(args.out)
    rep.line(f"Command: `.venv/bin/python bench/runtime.py --runs {args.runs} --rounds {args.rounds}` "
             f"({platform.machine()}, Python {platform.python_version()}, 1 thread)")
    rep.line()
    rep.line("| model | engine | raw engine call | edgekit runtime | overhead per call | cold start |")
    rep.line("| --- | --- | ---: | ---: | ---: | ---: |")
    raws = {"litert": raw_litert, "onnxruntime": raw_onnxruntime}
    device_rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in MODELS:
            if not path.is_file():
                rep.line(f"| {label} | - | {path} is absent | | | |")
                continue
            graph = load_model(path)
            for engine, raw in raws.items():
                b = compile_bundle(graph, "x86_64", Path(tmp) / f"{label}-{engine}.ekb", backend=engine).bundle
                t0 = time.perf_counter()
                model = rt.open(b.path, engine_options={"num_threads": 1})
                ins, _ = b.golden()
                feeds = {s.name: np.ascontiguousarray(a[0]) for s, a in zip(model.inputs, ins)}
                model.run(feeds)
                cold = time.perf_counter() - t0
                direct = raw(b.read(b.payload("model")), list(feeds.values()))
                for _ in range(200):   # warm both
                    direct()
                    model.run(feeds)
                through_runtime = functools.partial(model.run, feeds)
                raw_t, rt_t = [], []
                for _ in range(args.rounds):
                    raw_t.append(per_call(direct, args.runs))
                    rt_t.append(per_call(through_runtime, args.runs))
                r, m = statistics.median(raw_t), statistics.median(rt_t)
                rep.line(f"| {label} | {model.describe()} | {r * 1e6:.2f} us | {m * 1e6:.2f} us | "
                         f"{(m - r) * 1e6:+.2f} us | {cold * 1e3:.1f} ms |")
                model.close()
                if label.startswith("KWS"):
                    device_rows.append((engine, device_process(b.path)))
    rep.line()
    rep.line("Overhead = median runtime call - median raw call: input checks (names, dtype, shape), the "
             "latency record for stats(), the output dict. Cold start: bundle read, hash check and engine "
             "open to the first result; the first row of each engine includes importing its library.")
    rep.line()
    rep.line("A device process with the KWS int8 bundle (a fresh interpreter: import numpy and edgekit.runtime, "
             "open the bundle, run once; median of 3 processes):")
    rep.line()
    rep.line("| engine | import numpy, edgekit.runtime | open (engine library import included) + first result "
             "| cold start in all | peak RSS |")
    rep.line("| --- | ---: | ---: | ---: | ---: |")
    for engine, d in device_rows:
        rep.line(f"| {engine} | {d['import_s'] * 1e3:.0f} ms | {d['open_run_s'] * 1e3:.0f} ms | "
                 f"{(d['import_s'] + d['open_run_s']) * 1e3:.0f} ms | {d['rss'] / 2**20:.1f} MiB |")
    rep.save()


if __name__ == "__main__":
    main()
