"""Per-layer instructions on the emulated boards (the profiler of ``edgekit hil --profile``):
the shared KWS and AD int8 models through the model-slot firmware built with
``--profile``, on cortex-m4 (dsp kernels), cortex-m55 with its dsp kernels, and
cortex-m55 with Helium (mve kernels); every output checked against the reference.

    .venv/bin/python bench/mcu_profile.py [--kws-inputs 3] [--ad-inputs 3] [--out bench/results/mcu_profile.md]

Instructions: timer ticks x 1e9 / tick_hz under ``qemu-system-arm -icount shift=0`` (40 per
tick on mps2-an386, 31.25 on mps3-an547), medians over the inputs. Each op's count holds
its one timer read (about 15 instructions); the whole inference also copies the input
in and the output out. Firmware sizes: ``arm-none-eabi-size`` of the profiling ELFs
(every kernel linked in; the timer reads add a few hundred bytes to each).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from report import Report, default_out  # noqa: E402

# (label, target, kernel variant)
CONFIGS = [("cortex-m4 dsp", "cortex-m4", "auto"), ("cortex-m55 dsp", "cortex-m55", "dsp"),
           ("cortex-m55 mve", "cortex-m55", "auto")]


def models(n_kws: int, n_ad: int):
    import numpy as np

    from edgekit.frontends.tflite import load_tflite
    from edgekit.reference.int8_kernels import quantize

    kws = load_tflite(SHARED / "models/mlperf-tiny/kws_ref_model_int8.tflite")
    with np.load(SHARED / "data/kws01/kws01_test1000.npz") as z:
        x_kws = z["x_int8"][:n_kws]
    ad = load_tflite(SHARED / "models/mlperf-tiny/ad01_int8.tflite")
    w = np.load(SHARED / "data/ad01/normal_id_01_00000000_windows_f32_196x640.npy")[:n_ad]
    x_ad = quantize(w.reshape(n_ad, 640).astype(np.float32), ad.input_tensors()[0].quant)
    return [("KWS", kws, x_kws), ("AD", ad, x_ad)]


def run(label, target, variant, graph, x, work: Path):
    from edgekit.device import QemuBoard
    from edgekit.firmware.build import build_firmware_info
    from edgekit.hil import run_hil

    fw = build_firmware_info(target, work / label.replace(" ", "-"), variant=variant, profile=True)
    with QemuBoard(target, fw.elf) as board:
        result = run_hil(graph, board, x, target=target, profile=True)
    if not result.passed:
        raise SystemExit(f"{label}: outputs differ from the reference: {result.mismatches[:1]}")
    return result, fw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kws-inputs", type=int, default=3)
    ap.add_argument("--ad-inputs", type=int, default=3)
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    rep = Report(args.out)
    rep.line(f"Command: `.venv/bin/python bench/mcu_profile.py --kws-inputs {args.kws_inputs} "
             f"--ad-inputs {args.ad_inputs}`")
    rep.line()
    totals: dict[tuple[str, str], float] = {}
    sizes = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, graph, x in models(args.kws_inputs, args.ad_inputs):
            results = {}
            for label, target, variant in CONFIGS:
                res, fw = run(label, target, variant, graph, x, Path(tmp))
                results[label] = res
                totals[(name, label)] = res.instructions_median
                sizes[label] = fw.sizes
            rep.line(f"### {name}: instructions per op (instructions per MAC)")
            rep.line()
            rep.line("| # | op | MACs | " + " | ".join(label for label, _, _ in CONFIGS) + " |")
            rep.line("| ---: | --- | ---: | " + " | ".join("---:" for _ in CONFIGS) + " |")
            first = results[CONFIGS[0][0]].profile
            for k, row in enumerate(first):
                cells = []
                for label, _, _ in CONFIGS:
                    r = results[label].profile[k]
                    cells.append(f"{r.instructions:,.0f}" + (f" ({r.instructions_per_mac:.2f})" if r.macs else ""))
                rep.line(f"| {k} | {row.op_type} | {row.macs:,} | " + " | ".join(cells) + " |")
            rep.line("| | whole inference | | " + " | ".join(
                f"{totals[(name, label)]:,.0f}" for label, _, _ in CONFIGS) + " |")
            rep.line()
    rep.line("### Whole inference against cortex-m4 dsp")
    rep.line()
    rep.line("| model | " + " | ".join(label for label, _, _ in CONFIGS) + " |")
    rep.line("| --- | " + " | ".join("---:" for _ in CONFIGS) + " |")
    for name in ("KWS", "AD"):
        base = totals[(name, CONFIGS[0][0])]
        rep.line(f"| {name} | " + " | ".join(
            f"{totals[(name, label)] / 1e6:.3f} M ({totals[(name, label)] / base:.2f}x)"
            for label, _, _ in CONFIGS) + " |")
    rep.line()
    rep.line("Profiling model-slot firmware (every kernel linked in), bytes: " + "; ".join(
        f"{label}: text {s.get('text', 0):,}, data {s.get('data', 0):,}, bss {s.get('bss', 0):,}"
        for label, s in sizes.items()) + ".")
    rep.save()


if __name__ == "__main__":
    main()
