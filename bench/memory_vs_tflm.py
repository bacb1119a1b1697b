"""edgekit's planned activation arena next to TFLM's arena for the same models.

    .venv/bin/python bench/memory_vs_tflm.py [--alignment 16]

TFLM's figures come from the host ``tflite_micro`` interpreter: ``print_allocations()``
writes to C-level stderr, captured here through a pipe on fd 2. Host figures are for a
64-bit build: the "tail" (TFLM's own structures: eval tensors, node structs, per-channel
quantization data) is larger than on a 32-bit MCU; the "head" is the tensor arena that
TFLM's greedy planner lays out, comparable to edgekit's arena. The device column is
``arena_used_bytes()`` measured on the emulated Cortex-M4 (shared notes, toolchain.md).

Prints a markdown table (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from edgekit.frontends.tflite import load_tflite  # noqa: E402
from edgekit.memory import plan_memory  # noqa: E402

# arena_used_bytes() on the 32-bit device, TFLM reference kernels (notes/toolchain.md)
TFLM_DEVICE = {"kws_ref_model_int8.tflite": 22_772, "ad01_int8.tflite": 2_260}


def tflm_allocations(path: Path) -> dict[str, int]:
    """Parse TFLM's RecordingMicroAllocator report: total, head and tail arena bytes."""
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(path))
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)
        try:
            interp.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read().decode(errors="replace")
    out = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        if m:
            out[key] = int(m.group(1))
    if "total" not in out:
        raise RuntimeError(f"could not parse TFLM's allocation report for {path.name}:\n{text}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alignment", type=int, default=16)
    args = ap.parse_args()
    models = sorted((SHARED / "models/mlperf-tiny").glob("*.tflite"))
    if not models:
        sys.exit(f"no models under {SHARED / 'models/mlperf-tiny'}")
    print(f"`.venv/bin/python bench/memory_vs_tflm.py --alignment {args.alignment}`\n")
    print("| model | TFLM host total | TFLM host head (tensors) | TFLM device | edgekit arena | "
          "edgekit, no sharing | lower bound | naive sum | vs TFLM device | vs TFLM head | strategy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for path in models:
        g = load_tflite(path)
        plan = plan_memory(g, alignment=args.alignment)
        plain = plan_memory(g, alignment=args.alignment, inplace=False)
        try:
            tflm = tflm_allocations(path)
        except ImportError:
            tflm = {}
        except RuntimeError:  # e.g. hybrid models, which TFLM does not run
            tflm = {}
        dev = TFLM_DEVICE.get(path.name)
        head = tflm.get("head")
        cells = [
            path.name,
            f"{tflm['total']:,}" if tflm else "-",
            f"{head:,}" if head else "-",
            f"{dev:,}" if dev else "-",
            f"{plan.arena_bytes:,}",
            f"{plain.arena_bytes:,}",
            f"{plan.lower_bound_bytes:,}",
            f"{plan.naive_bytes:,}",
            f"{plan.arena_bytes / dev:.2f}x" if dev else "-",
            f"{plan.arena_bytes / head:.2f}x" if head else "-",
            plan.strategy,
        ]
        print("| " + " | ".join(cells) + " |")
    print("\nedgekit arena: activations only (weights and quantization parameters stay in flash); "
          "outputs may overwrite the inputs they consume where the kernel write contract "
          "allows (edgekit/memory/lifetimes.py). Lower bound: the most bytes live during any "
          "op, less the most that sharing could save. '-': TFLM does not run the model "
          "(the float KWS file is a hybrid model with int8 weights) or has no device figure.")


if __name__ == "__main__":
    main()
