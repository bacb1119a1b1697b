"""edgekit's C backend for Linux on this x86_64 machine: latency of the KWS and AD int8
models (one thread) as a shared library, before and after the vectorizing linux kernels,
against LiteRT XNNPACK with ``num_threads=1``, all in the same run on the same inputs.

    .venv/bin/python bench/c_linux.py [--inputs 100] [--seconds 2] [--out bench/results/c_linux.md]

Rows: the median latency of single calls over about --seconds of calls (the median
resists the other jobs of a shared machine better than a mean):
- portable kernels, gcc -O2, no -march: the MCU build of the generated C on the host (the
  figure docs/benchmarks.md quoted before this backend: tests/backends/c/host_runner.c,
  which reports a mean: the best of three);
- portable kernels in the shared library (-O3 -march=x86-64-v3), timed by edgekit_harness;
- linux kernels in the shared library (-O3 -march=x86-64-v3), timed by edgekit_harness
  (clock_gettime around each ek_model_run);
- the same library through the ctypes engine (edgekit.runtime.engines.c): Python's call
  overhead included, numpy in and out;
- LiteRT (ai_edge_litert) with XNNPACK, ``num_threads=1``, ``set_tensor`` + ``invoke``
  from Python.
Every edgekit output is checked against the reference interpreter (bytes differing are
printed). The machine is shared: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from report import Report, default_out  # noqa: E402

from edgekit.backends.c import build, compile_model  # noqa: E402
from edgekit.backends.c.shared_library import build_shared_library  # noqa: E402
from edgekit.frontends.tflite import load_tflite  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from edgekit.runtime.engines.c import CLibraryModel  # noqa: E402

HOST_RUNNER = REPO / "tests" / "backends" / "c" / "host_runner.c"
MODELS = {"KWS": "kws_ref_model_int8.tflite", "AD": "ad01_int8.tflite"}


def model_inputs(key: str, graph, n: int) -> np.ndarray:
    if key == "KWS":
        with np.load(SHARED / "data/kws01/kws01_test1000.npz") as z:
            return z["x_int8"][:n]
    w = np.load(SHARED / "data/ad01/normal_id_01_00000000_windows_f32_196x640.npy")[:n]
    q = graph.input_tensors()[0].quant
    return np.clip(np.round(w / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)


def best_of_three(timed, n: int, seconds: float) -> float:
    """timed(repeat) -> us per inference over ``repeat`` passes of the ``n`` inputs; the
    best of three timings, each of about seconds / 3."""
    per = timed(1)
    repeat = max(1, int(seconds / 3 * 1e6 / max(per * n, 1.0)))
    return min(timed(repeat) for _ in range(3))


def median_call_us(call, samples, seconds: float) -> float:
    """Median microseconds of ``call(sample)`` over passes through ``samples`` for about
    ``seconds`` (after one warm-up pass)."""
    for s in samples:
        call(s)
    times = []
    end = time.perf_counter() + seconds
    clock = time.perf_counter
    while clock() < end:
        for s in samples:
            t0 = clock()
            call(s)
            times.append(clock() - t0)
    return float(np.median(times)) * 1e6


def harness_us(result, x: np.ndarray, work: Path, seconds: float) -> tuple[float, np.ndarray]:
    fin, fout = work / f"{result.out_dir.name}.in", work / f"{result.out_dir.name}.out"
    fin.write_bytes(np.ascontiguousarray(x).tobytes())

    def timed(repeat: int) -> float:
        out = subprocess.run([str(result.harness), str(fin), str(fout), str(repeat)], capture_output=True,
                             text=True, check=True).stdout
        return float(out.split()[5])   # p50

    us = timed(max(1, int(seconds * 1e6 / max(timed(1) * len(x), 1.0))))
    spec = result.description["outputs"][0]
    y = np.frombuffer(fout.read_bytes(), dtype=spec["dtype"]).reshape((len(x),) + tuple(spec["shape"][1:]))
    return us, y


def mcu_build_us(graph, x: np.ndarray, work: Path, seconds: float) -> tuple[float, np.ndarray]:
    """The cortex-m4 portable folder built by the host gcc -O2 (no -march), as before."""
    folder = compile_model(graph, "cortex-m4", work / "mcu", variant="portable", measure=False).out_dir
    exe = build.host_executable(folder, [HOST_RUNNER], work / "mcu.host")
    fin, fout = work / "mcu.in", work / "mcu.out"
    fin.write_bytes(np.ascontiguousarray(x).tobytes())
    subprocess.run([str(exe), str(fin), str(fout), str(len(x))], check=True)
    y = np.frombuffer(fout.read_bytes(), np.int8)

    def timed(repeat: int) -> float:
        out = subprocess.run([str(exe), "--time", str(len(x)), str(repeat), str(fin)], capture_output=True,
                             text=True, check=True).stdout
        return float(out.split()[1])

    return best_of_three(timed, len(x), seconds), y


def engine_us(result, x: np.ndarray, seconds: float) -> tuple[float, np.ndarray]:
    model = CLibraryModel(result.library, result.description)
    samples = [x[k:k + 1] for k in range(len(x))]
    y = np.concatenate([model.run(s) for s in samples])

    us = median_call_us(model.run, samples, seconds)
    model.close()
    return us, y


def litert_us(path: Path, x: np.ndarray, seconds: float) -> float:
    from ai_edge_litert.interpreter import Interpreter as LiteRT

    it = LiteRT(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    i = it.get_input_details()[0]["index"]
    samples = [x[k:k + 1] for k in range(len(x))]

    def call(s):
        it.set_tensor(i, s)
        it.invoke()

    return median_call_us(call, samples, seconds)


def measure(key: str, n: int, seconds: float) -> dict:
    path = SHARED / "models/mlperf-tiny" / MODELS[key]
    g = load_tflite(path)
    x = model_inputs(key, g, n)
    ref = Interpreter(g).run([x])[g.outputs[0]].reshape(len(x), -1)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        us, y = mcu_build_us(g, x, work, seconds)
        rows["portable kernels, gcc -O2 (the MCU build on the host)"] = (us, y)
        portable = build_shared_library(g, "x86_64", work / "portable", variant="portable")
        rows["portable kernels, shared library -O3 AVX2 (harness)"] = harness_us(portable, x, work, seconds)
        linux = build_shared_library(g, "x86_64", work / "linux")
        rows["linux kernels, shared library -O3 AVX2 (harness)"] = harness_us(linux, x, work, seconds)
        rows["linux kernels, shared library through the ctypes engine"] = engine_us(linux, x, seconds)
    xnn = litert_us(path, x, seconds)
    out = {}
    for name, (us, y) in rows.items():
        out[name] = (us, int((np.asarray(y).reshape(len(x), -1) != ref).sum()))
    return {"key": key, "n": len(x), "rows": out, "xnn": xnn}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=100, help="inputs per model (KWS up to 1000, AD up to 196)")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per row")
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    if args.inputs < 1 or args.seconds <= 0:
        print("error: --inputs must be >= 1 and --seconds > 0", file=sys.stderr)
        raise SystemExit(2)
    rep = Report(args.out)
    results = [measure(key, args.inputs, args.seconds) for key in MODELS]
    rep.line(f"Command: `.venv/bin/python bench/c_linux.py --inputs {args.inputs} --seconds {args.seconds:g}`")
    rep.line()
    rep.line("| model | build | us / inference (median), 1 thread | / LiteRT XNNPACK "
             "| bytes differing from the reference |")
    rep.line("| --- | --- | ---: | ---: | ---: |")
    for r in results:
        for name, (us, bad) in r["rows"].items():
            rep.line(f"| {r['key']} | {name} | {us:,.1f} | {us / r['xnn']:.2f}x | {bad} |")
        rep.line(f"| {r['key']} | LiteRT XNNPACK, num_threads=1 | {r['xnn']:,.1f} | 1.00x | - |")
    rep.line()
    rep.line(f"Inputs: the first {results[0]['n']} KWS (kws01) inputs and {results[1]['n']} AD windows; "
             "edgekit rows checked byte for byte against the reference interpreter.")
    rep.save()


if __name__ == "__main__":
    main()
