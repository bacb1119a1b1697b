"""TensorFlow Lite Micro's figures for the MLPerf Tiny KWS and AD int8 models: the ones
recorded in ../shared/notes/toolchain.md (not measured in the bench's own run), and the
tensor area measured here with the host ``tflite_micro`` interpreter when it is installed.

The bench scripts print TFLM's device figures apart from edgekit's measured ones and
name this source with them (``SOURCE``).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

SOURCE = ("../shared/notes/toolchain.md, measured 2026-11-28: tflite-micro 90b983c (CMSIS-NN 4ab83cc) "
          "built with TFLM's Makefile, TARGET=cortex_m_generic TARGET_ARCH=cortex-m4+fp BUILD_TYPE=release "
          "(-Os core, -O2 kernels, --gc-sections, newlib-nano), run on QEMU mps2-an386 with -icount shift=0")

# Per model and kernel set ("ref": TFLM reference kernels, "cmsis": CMSIS-NN).
#   runtime_flash: TFLM + libc without the model (linked image); flatbuffer: the .tflite
#   arena_used: arena_used_bytes() on the 32-bit device (tensors + TFLM's own structures)
#   stack_peak: the firmware's stack peak
#   tensor_area: print_allocations' "allocation head" on the host interpreter (tensors only)
TFLM = {
    "kws": {"file": "kws_ref_model_int8.tflite", "macs": 2_656_768, "flatbuffer": 53_936,
            "tensor_area": 16_000,
            "ref": {"instructions": 43_021_432, "runtime_flash": 39_992, "arena_used": 22_772,
                    "stack_peak": 792},
            "cmsis": {"instructions": 7_699_884, "runtime_flash": 82_868, "arena_used": 22_820,
                      "stack_peak": 1_372}},
    "ad": {"file": "ad01_int8.tflite", "macs": 264_192, "flatbuffer": 276_976,
           "tensor_area": 768,
           "ref": {"instructions": 1_951_932, "runtime_flash": 19_149, "arena_used": 2_260,
                   "stack_peak": 520},
           "cmsis": {"instructions": 582_912, "runtime_flash": 30_697, "arena_used": 2_580,
                     "stack_peak": 876}},
}


def host_allocations(path: Path) -> dict[str, int]:
    """TFLM's RecordingMicroAllocator report for ``path`` on the host interpreter: the
    arena's total, head (the tensor area TFLM's planner lays out) and tail (its own
    structures; 64-bit sizes here) in bytes. Raises ImportError without tflite_micro and
    RuntimeError when TFLM cannot run the model."""
    from tflite_micro import runtime

    interp = runtime.Interpreter.from_file(str(path))
    # print_allocations() writes to C-level stderr: point fd 2 at a file around it.
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
    if "head" not in out:
        raise RuntimeError(f"could not parse TFLM's allocation report for {path.name}:\n{text}")
    return out


def tensor_area(key: str, path: Path) -> tuple[int, str]:
    """TFLM's tensor area for model ``key``: measured now with tflite_micro when it is
    installed, else the notes' figure. Returns (bytes, where it came from)."""
    try:
        return host_allocations(path)["head"], "measured in this run (host tflite_micro, print_allocations head)"
    except ImportError:
        return TFLM[key]["tensor_area"], "notes (host tflite_micro, print_allocations head)"
