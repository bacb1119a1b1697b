"""Import times of the shared MLPerf Tiny models, and the reference interpreter's
agreement and speed next to TFLM and LiteRT on the same inputs, in one run.

    .venv/bin/python bench/import_and_reference.py [--repeat 5]

Prints markdown tables and writes them to bench/results/import_and_reference.md (or --out).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Report, default_out  # noqa: E402

from edgekit.frontends import load_model  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    rep = Report(args.out)
    rep.line(f"Command: `.venv/bin/python bench/import_and_reference.py --repeat {args.repeat}`")
    rep.line()
    models = sorted((SHARED / "models/mlperf-tiny").glob("*.tflite")) + \
        sorted((SHARED / "models/mlperf-tiny/onnx").glob("*.onnx"))
    rep.line("| model | size | import (median of %d) | ops |" % args.repeat)
    rep.line("| --- | ---: | ---: | ---: |")
    for m in models:
        g, t = timed(lambda m=m: load_model(m), args.repeat)
        rep.line(f"| {m.name} | {m.stat().st_size:,} B | {t * 1000:.1f} ms | {len(g.ops)} |")

    from tests.support.shared import litert_outputs, tflm_outputs

    with np.load(SHARED / "data/kws01/kws01_test1000.npz") as z:
        x, y = z["x_int8"], z["y"]
    path = SHARED / "models/mlperf-tiny/kws_ref_model_int8.tflite"
    g = load_model(path)
    ours, t_ours = timed(lambda: Interpreter(g).run([x])[g.outputs[0]], 1)
    (tflm, t_tflm) = timed(lambda: tflm_outputs(path, x), 1)
    (ref, t_ref) = timed(lambda: litert_outputs(path, x, reference=True), 1)
    (xnn, t_xnn) = timed(lambda: litert_outputs(path, x), 1)
    rep.line()
    rep.line("| KWS int8, 1000 kws01 inputs | top-1 | bytes differing from TFLM | wall time |")
    rep.line("| --- | ---: | ---: | ---: |")
    for name, out, t in (("edgekit reference (numpy, batched)", ours, t_ours),
                         ("tflite_micro interpreter", tflm, t_tflm),
                         ("LiteRT reference kernels", ref, t_ref), ("LiteRT default (XNNPACK)", xnn, t_xnn)):
        rep.line(f"| {name} | {(out.argmax(-1) == y).mean() * 100:.1f}% | {int((out != tflm).sum())} | {t:.2f} s |")
    rep.save()


if __name__ == "__main__":
    main()
