"""edgekit's planned activation arena next to TFLM's tensor area for the same models.

    .venv/bin/python bench/memory_vs_tflm.py [--alignment 16] [--out bench/results/memory_vs_tflm.md]

Tensor area against tensor area: TFLM's is the "allocation head" of
``print_allocations()`` on the host ``tflite_micro`` interpreter (the tensors TFLM's
greedy planner lays out; measured in this run, read from C-level stderr on fd 2).
TFLM's "tail" holds its own structures (eval tensors, node structs, per-channel
quantization data; 64-bit sizes on this host). ``arena_used_bytes()`` on the 32-bit
device is head + tail there: it is shown apart, from the notes (bench/tflm_figures.py),
and is not a tensor-area figure. RAM on the board as a whole: bench/mcu.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from report import Report, default_out  # noqa: E402
from tflm_figures import SOURCE as TFLM_SOURCE  # noqa: E402
from tflm_figures import TFLM, host_allocations  # noqa: E402

from edgekit.frontends.tflite import load_tflite  # noqa: E402
from edgekit.backends.c.plan import NO_SHARE  # noqa: E402
from edgekit.memory import plan_memory  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--alignment", type=int, default=16)
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    rep = Report(args.out)
    models = sorted((SHARED / "models/mlperf-tiny").glob("*.tflite"))
    if not models:
        sys.exit(f"no models under {SHARED / 'models/mlperf-tiny'}")
    device = {t["file"]: t["ref"]["arena_used"] for t in TFLM.values()}
    rep.line(f"Command: `.venv/bin/python bench/memory_vs_tflm.py --alignment {args.alignment}`")
    rep.line()
    rep.line("| model | edgekit arena | edgekit C arena (rows in reverse) | edgekit, no sharing | lower bound | "
             "naive sum | strategy | TFLM tensor area (host head) | edgekit / TFLM tensor area | "
             "TFLM host tail (its structures) |")
    rep.line("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for path in models:
        g = load_tflite(path)
        plan = plan_memory(g, alignment=args.alignment)
        plain = plan_memory(g, alignment=args.alignment, inplace=False)
        # the generated C's plan: convs may run by rows from the last (edgekit.backends.c.plan)
        c_plan = plan_memory(g, alignment=args.alignment, no_share=NO_SHARE, reverse_rows=True)
        try:
            tflm = host_allocations(path)
        except ImportError:
            tflm = {}
        except RuntimeError:  # e.g. hybrid models, which TFLM does not run
            tflm = {}
        head, tail = tflm.get("head"), tflm.get("tail")
        rep.line("| " + " | ".join([
            path.name, f"{plan.arena_bytes:,}", f"{c_plan.arena_bytes:,}", f"{plain.arena_bytes:,}",
            f"{plan.lower_bound_bytes:,}",
            f"{plan.naive_bytes:,}", plan.strategy,
            f"{head:,}" if head else "-",
            f"{plan.arena_bytes / head:.2f}x" if head else "-",
            f"{tail:,}" if tail else "-",
        ]) + " |")
    rep.line()
    rep.line("Not a tensor area, from the notes (not measured in this run): TFLM's arena_used_bytes() on the "
             "32-bit device, tensors plus TFLM's structures: "
             + ", ".join(f"{f} {b:,} B" for f, b in device.items()) + f" (reference kernels; {TFLM_SOURCE}).")
    rep.line()
    rep.line("edgekit arena: activations only (weights and quantization parameters stay in flash); outputs may "
             "overwrite the inputs they consume where the kernel write contract allows "
             "(edgekit/memory/lifetimes.py); the C arena also lets a conv run its output rows from the last, so its "
             "output may sit above its input (what edgekit compile and the linked firmware use; model packages "
             "run each op in one call and use the first column). Lower bound: the most bytes live during any "
             "op, less the most that sharing could save. '-': tflite_micro is not installed, or TFLM does not "
             "run the model (the float KWS file is a hybrid model with int8 weights).")
    rep.save()


if __name__ == "__main__":
    main()
