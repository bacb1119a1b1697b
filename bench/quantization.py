"""Int8 post-training quantization: edgekit against the peer quantizers, in one run.

    .venv/bin/python bench/quantization.py [--methods minmax,percentile,mse,entropy,auto]

KWS: the float MLPerf Tiny DS-CNN (its hybrid int8 conv weights dequantized first),
200 calibration samples of kws01, top-1 on the other 800. Peers on the same 800: the
MLPerf reference int8 model, and onnxruntime's quantize_static (QDQ, per-channel,
same 200 calibration samples, MinMax and Entropy) on the same float model exported
to ONNX by edgekit. AD: ad01_fp32 with 100 calibration windows, evaluated on the
other 96: reconstruction MSE and its correlation with the float model's.
Prints markdown tables and writes them to bench/results/quantization.md (or --out).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MLPERF = SHARED / "models/mlperf-tiny"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import Report, default_out  # noqa: E402

from edgekit.frontends import load_model  # noqa: E402
from edgekit.ir.passes import run_passes  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from edgekit.quantize.report import run_model  # noqa: E402

KWS_SCALE, KWS_ZP = np.float32(0.5847029), 83


def ort_quantize(float_onnx: Path, calib: np.ndarray, method: str, out: Path) -> Path:
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    import onnxruntime as ort

    name = ort.InferenceSession(str(float_onnx)).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {name: x}

    quantize_static(str(float_onnx), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=getattr(CalibrationMethod, method))
    return out


def ort_run(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return np.concatenate([s.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])


def top1(out, y):
    return float((out.reshape(len(out), -1).argmax(-1) == y).mean())


def kws(methods, tmp: Path, rep: Report):
    from edgekit.backends.onnx import write_onnx

    with np.load(SHARED / "data/kws01/kws01_test1000.npz") as z:
        xq, y = z["x_int8"], z["y"]
    xf = ((xq.astype(np.float32) - KWS_ZP) * KWS_SCALE).astype(np.float32)
    calib, ev, yev, xq_ev = xf[:200], xf[200:], y[200:], xq[200:]
    g = load_model(MLPERF / "kws_ref_model_float32.tflite")
    run_passes(g, ["dequantize_weights"])
    rows = [("float32 model (dequantized weights), edgekit reference", top1(run_model(g, ev)[g.outputs[0]], yev), "")]
    ref = load_model(MLPERF / "kws_ref_model_int8.tflite")
    rows.append(("MLPerf reference int8 model", top1(run_model(ref, xq_ev)[ref.outputs[0]], yev), ""))
    onnx_path = tmp / "kws_float.onnx"
    write_onnx(g, onnx_path)
    for m in ("MinMax", "Entropy"):
        t0 = time.perf_counter()
        qp = ort_quantize(onnx_path, calib, m, tmp / f"kws_ort_{m}.onnx")
        t = time.perf_counter() - t0
        rows.append((f"onnxruntime quantize_static QDQ per-channel {m}", top1(ort_run(qp, ev), yev), f"{t:.1f} s"))
    for m in methods:
        for bc in (False, True):
            t0 = time.perf_counter()
            r = quantize(g, calib, method=m, bias_correction=bc)
            t = time.perf_counter() - t0
            rows.append((f"edgekit {m}" + (" + bias correction" if bc else ""),
                         top1(run_model(r.graph, ev)[r.graph.outputs[0]], yev), f"{t:.1f} s"))
    rep.line("| KWS quantizer (calibration: 200 kws01 samples) | top-1 on the other 800 | quantization time |")
    rep.line("| --- | ---: | ---: |")
    for name, acc, t in rows:
        rep.line(f"| {name} | {acc * 100:.2f}% | {t} |")


def ad(methods, tmp: Path, rep: Report):
    from edgekit.backends.onnx import write_onnx

    x = np.load(SHARED / "data/ad01/normal_id_01_00000000_windows_f32_196x640.npy").astype(np.float32)
    calib, ev = x[:100], x[100:]
    g = load_model(MLPERF / "ad01_fp32.tflite")
    f_out = run_model(g, ev)[g.outputs[0]]
    f_score = ((f_out - ev) ** 2).mean(-1)

    def row(name, out, t=""):
        s = ((out - ev) ** 2).mean(-1)
        return (name, float(s.mean()), float(np.corrcoef(s, f_score)[0, 1]), t)

    rows = [row("float32 model, edgekit reference", f_out)]
    ref = load_model(MLPERF / "ad01_int8.tflite")
    rows.append(row("MLPerf reference int8 model", run_model(ref, ev)[ref.outputs[0]]))
    onnx_path = tmp / "ad_float.onnx"
    write_onnx(g, onnx_path)
    for m in ("MinMax", "Entropy"):
        t0 = time.perf_counter()
        qp = ort_quantize(onnx_path, calib, m, tmp / f"ad_ort_{m}.onnx")
        rows.append(row(f"onnxruntime quantize_static QDQ per-channel {m}", ort_run(qp, ev),
                        f"{time.perf_counter() - t0:.1f} s"))
    for m in methods:
        for bc in (False, True):  # explicit: the label must not depend on quantize's default
            t0 = time.perf_counter()
            r = quantize(g, calib, method=m, bias_correction=bc)
            t = time.perf_counter() - t0
            rows.append(row(f"edgekit {m}" + (" + bias correction" if bc else ""),
                            run_model(r.graph, ev)[r.graph.outputs[0]], f"{t:.1f} s"))
    rep.line("| AD quantizer (calibration: 100 windows) | mean reconstruction MSE on the other 96 "
          "| correlation with float scores | quantization time |")
    rep.line("| --- | ---: | ---: | ---: |")
    for name, mse, corr, t in rows:
        rep.line(f"| {name} | {mse:.4f} | {corr:.4f} | {t} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="minmax,percentile,mse,entropy,auto")
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    rep = Report(args.out)
    rep.line(f"Command: `.venv/bin/python bench/quantization.py --methods {args.methods}`")
    rep.line()
    methods = args.methods.split(",")
    with tempfile.TemporaryDirectory() as d:
        kws(methods, Path(d), rep)
        rep.line()
        ad(methods, Path(d), rep)
    rep.save()


if __name__ == "__main__":
    main()
