"""Issue 14's benchmark table: KWS, AD, ResNet-8 and MobileNetV1-0.25 compiled for
cortex-m4 (dsp kernels: packed conv / FC chosen per layer by the cost model), run in the
model-runner firmware on QEMU mps2-an386 under ``-icount shift=0``, every output checked
against the reference interpreter; TFLM's figures beside them (bench/tflm_figures.py, from
the notes), then per-layer instructions per MAC (one-op models, edgekit.backends.c.layer_bench).

    .venv/bin/python bench/mcu_kernels.py [--inputs 3] [--models kws,ad,resnet8,mobilenet_v1_025]
                                         [--layers kws,resnet8,mobilenet_v1_025] [--out bench/results/mcu_kernels.md]

Columns as bench/mcu.py defines them: flash is the linked image less the test vectors;
RAM total is .data + .bss + the stack peak. "generic kernels" is the same build with every
layer forced to the generic kernels (``packed.forced_choice("generic")``), in this run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import mcu  # noqa: E402
from report import Report, default_out  # noqa: E402
from tflm_figures import SOURCE as TFLM_SOURCE  # noqa: E402
from tflm_figures import TFLM  # noqa: E402

from bench.models import cnn  # noqa: E402
from edgekit.backends.c import packed  # noqa: E402
from edgekit.backends.c.layer_bench import time_layers  # noqa: E402
from edgekit.frontends.tflite import load_tflite  # noqa: E402
from edgekit.ir.ops import normalize_attrs  # noqa: E402
from edgekit.ir.shapes import op_macs  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402

NAMES = {"kws": "KWS", "ad": "AD", "resnet8": "ResNet-8 (CIFAR-10)", "mobilenet_v1_025": "MobileNetV1-0.25 (96x96)"}
# Issue 14's starting point (docs/benchmarks.md, issue 4 section: dsp kernels, same board)
BEFORE = {"kws": 13_845_866, "ad": 707_167}
# TFLM + CMSIS-NN per layer on KWS, instructions per MAC (../shared/notes/toolchain.md)
CMSIS_KWS_LAYERS = {"first conv": 3.50, "depthwise": 7.79, "pointwise": 2.09}


def model(key: str):
    if key in ("kws", "ad"):
        g = load_tflite(mcu.SHARED / "models/mlperf-tiny" / TFLM[key]["file"])
        return g, mcu.inputs(key, g)
    g = cnn.int8_graph(key)
    return g, cnn.int8_inputs(g, 8)


def macs(g) -> int:
    total = 0
    for op in g.ops:
        try:
            total += int(op_macs(op.type, [g.tensor(i).shape if i else None for i in op.inputs],
                                 [g.tensor(o).shape for o in op.outputs], normalize_attrs(op.type, op.attrs)))
        except Exception:  # noqa: BLE001 - ops without a MAC rule count 0
            pass
    return total


def measure(key: str, n: int) -> dict:
    g, x = model(key)
    xq = x[:n]
    ref = Interpreter(g).run([xq])[g.outputs[0]]
    out = {"key": key, "macs": macs(g)}
    with tempfile.TemporaryDirectory() as tmp:
        out["chosen"] = mcu.board_image(g, xq, ref, "dsp", Path(tmp))
        with packed.forced_choice("generic"):
            out["generic"] = mcu.board_image(g, xq, ref, "dsp", Path(tmp) / "generic")
    return out


def layers(key: str) -> list:
    g, x = model(key)
    return time_layers(g, x[:1], "cortex-m4")


def kws_layer_kind(row) -> str | None:
    if row.op_type == "DEPTHWISE_CONV_2D":
        return "depthwise"
    if row.op_type == "CONV_2D":
        return "pointwise" if row.shape["weights"][1:3] == [1, 1] else "first conv"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=3, help="inputs per model on the board")
    ap.add_argument("--models", default="kws,ad,resnet8,mobilenet_v1_025")
    ap.add_argument("--layers", default="kws,resnet8,mobilenet_v1_025", help="models timed layer by layer")
    ap.add_argument("--out", type=Path, default=default_out("mcu_kernels"))
    args = ap.parse_args()
    rep = Report(args.out)
    rows = [measure(k.strip(), args.inputs) for k in args.models.split(",") if k.strip()]

    rep.line(f"Command: `.venv/bin/python bench/mcu_kernels.py --inputs {args.inputs} --models {args.models} "
             f"--layers {args.layers}`. Board: QEMU mps2-an386 (Cortex-M4), `-icount shift=0`, "
             f"{args.inputs} inputs per model, every output byte equal to the reference interpreter's.")
    rep.line()
    rep.line("| model | MACs | instructions / inference | instructions / MAC | generic kernels (this run) "
             "| issue 14 start (dsp) | TFLM + CMSIS-NN | / CMSIS-NN | flash: linked image | RAM total |")
    rep.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        b, gen = r["chosen"], r["generic"]
        tf = TFLM.get(r["key"], {}).get("cmsis")
        tf_i = f"{tf['instructions']:,}" if tf else "-"
        ratio = f"{b['instructions'] / tf['instructions']:.2f}x" if tf else "-"
        before = f"{BEFORE[r['key']]:,}" if r["key"] in BEFORE else "-"
        per_mac = b["instructions"] / r["macs"]
        rep.line(f"| {NAMES[r['key']]} | {r['macs']:,} | {b['instructions']:,.0f} | {per_mac:.2f} "
                 f"| {gen['instructions']:,.0f} | {before} | {tf_i} | {ratio} | {b['flash']:,} "
                 f"| {mcu.ram_total(b):,} |")
    rep.line()
    rep.line(f"TFLM figures: {TFLM_SOURCE}. Flash and RAM of the generic-kernel build, for the growth: "
             + "; ".join(f"{NAMES[r['key']]} {r['generic']['flash']:,} B / {mcu.ram_total(r['generic']):,} B"
                         for r in rows) + ".")
    rep.line()

    for key in [k.strip() for k in args.layers.split(",") if k.strip()]:
        timed = layers(key)
        rep.line(f"#### {NAMES[key]}: per layer (one-op models, cortex-m4, the input copy in and the output "
                 "copy out included)")
        rep.line()
        if key == "kws":
            rep.line("| layer | kernel | MACs | instructions | instructions / MAC | TFLM CMSIS-NN / MAC |")
            rep.line("| --- | --- | ---: | ---: | ---: | ---: |")
            seen = set()
            for t in timed:
                kind = kws_layer_kind(t)
                if kind is None or kind in seen:
                    continue
                seen.add(kind)
                rep.line(f"| {kind} | {t.kernel} | {t.macs:,} | {t.instructions:,.0f} | {t.per_mac:.2f} "
                         f"| {CMSIS_KWS_LAYERS[kind]:.2f} |")
        else:
            rep.line("| # | op | kernel | input | weights | MACs | instructions | instructions / MAC |")
            rep.line("| ---: | --- | --- | --- | --- | ---: | ---: | ---: |")
            for t in timed:
                if not t.macs:
                    continue
                rep.line(f"| {t.index} | {t.op_type} | {t.kernel} | {t.shape['input']} | {t.shape.get('weights', '-')} "
                         f"| {t.macs:,} | {t.instructions:,.0f} | {t.per_mac:.2f} |")
            worst = max((t for t in timed if t.macs), key=lambda t: t.per_mac)
            rep.line()
            rep.line(f"Highest: layer {worst.index} ({worst.op_type}, {worst.kernel}) at {worst.per_mac:.2f} "
                     "instructions per MAC.")
        rep.line()
    rep.save()


if __name__ == "__main__":
    main()
