"""edgekit's generated C for MCUs next to TensorFlow Lite Micro on the MLPerf Tiny KWS and
AD int8 models: arena, flash, instructions per inference on the emulated Cortex-M4, and
host speed against LiteRT XNNPACK (one thread), measured in the same run.

    .venv/bin/python bench/mcu.py [--kws-inputs 20] [--ad-inputs 50]

- arena: edgekit's planned arena vs TFLM's ``arena_used_bytes()`` on the 32-bit device;
- flash: .text + .rodata (+ .data) of model.c and the kernels compiled for cortex-m4
  (arm-none-eabi-gcc -O2, ``arm-none-eabi-size -A`` of the objects) vs the .tflite file
  plus TFLM's runtime (TFLM + libc, without the model);
- instructions per inference on mps2-an386 under ``qemu-system-arm -icount shift=0``
  (CMSDK TIMER0, 1 tick = 40 instructions), portable vs dsp kernels, every output
  checked against the reference interpreter; TFLM figures measured the same way;
- host: the generated C built with gcc -O2 (x86_64, one thread, a timed loop over the
  inputs) vs LiteRT with XNNPACK and ``num_threads=1`` on the same inputs.

TFLM figures come from shared/notes/toolchain.md. Prints markdown for docs/benchmarks.md.
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
sys.path.insert(0, str(REPO))

from edgekit.backends.c import build, compile_model  # noqa: E402
from edgekit.frontends.tflite import load_tflite  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from edgekit.targets import load_target  # noqa: E402

HOST_RUNNER = REPO / "tests" / "backends" / "c" / "host_runner.c"
TARGET = "cortex-m4"

# TFLM on mps2-an386 (shared/notes/toolchain.md, measured 2026-11-28)
TFLM = {
    "kws": {"file": "kws_ref_model_int8.tflite", "macs": 2_656_768, "arena": 22_772, "arena_cmsis": 22_820,
            "instr_ref": 43_021_432, "instr_cmsis": 7_699_884, "runtime_ref": 39_992,
            "runtime_cmsis": 82_868, "flatbuffer": 53_936},
    "ad": {"file": "ad01_int8.tflite", "macs": 264_192, "arena": 2_260, "arena_cmsis": 2_580,
           "instr_ref": 1_951_932, "instr_cmsis": 582_912, "runtime_ref": 19_149,
           "runtime_cmsis": 30_697, "flatbuffer": 276_976},
}


def inputs(key: str, graph) -> np.ndarray:
    if key == "kws":
        with np.load(SHARED / "data/kws01/kws01_test1000.npz") as z:
            return z["x_int8"]
    w = np.load(SHARED / "data/ad01/normal_id_01_00000000_windows_f32_196x640.npy")
    q = graph.input_tensors()[0].quant
    return np.clip(np.round(w / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)


def qemu_instructions(graph, x, ref, variant: str, work: Path) -> tuple[float, int]:
    tgt = load_target(TARGET)
    out = compile_model(graph, tgt, work / f"fw-{variant}", variant=variant, measure=False).out_dir
    vec = build.write_vectors(x, ref, work / f"vectors-{variant}.c")
    elf = build.build_firmware(out, tgt, vec, work / f"{variant}.elf")
    res = build.run_qemu(tgt, elf, icount=True, timeout=900)
    if res.returncode != 0 or res.mismatching_bytes != 0:
        raise SystemExit(f"QEMU run failed ({variant}):\n{res.output}")
    return res.instructions_per_inference(tgt.clock_hz), res.mismatching_bytes


def host_us(model_dir: Path, x: np.ndarray, work: Path, seconds: float = 2.0) -> float:
    exe = build.host_executable(model_dir, [HOST_RUNNER], work / "host.exe")
    fin = work / "host.in"
    fin.write_bytes(np.ascontiguousarray(x).tobytes())

    def timed(repeat: int) -> float:
        out = subprocess.run([str(exe), "--time", str(len(x)), str(repeat), str(fin)],
                             capture_output=True, text=True, check=True).stdout
        return float(out.split()[1])

    per = timed(1)
    repeat = max(1, int(seconds * 1e6 / max(per * len(x), 1.0)))
    return min(timed(repeat) for _ in range(3))


def litert_us(path: Path, x: np.ndarray, seconds: float = 2.0) -> float:
    from ai_edge_litert.interpreter import Interpreter as LiteRT

    it = LiteRT(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    i = it.get_input_details()[0]["index"]
    samples = [x[k:k + 1] for k in range(len(x))]
    for s in samples:  # warm up
        it.set_tensor(i, s)
        it.invoke()
    best = float("inf")
    for _ in range(3):
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds / 3:
            for s in samples:
                it.set_tensor(i, s)
                it.invoke()
            n += len(samples)
        best = min(best, (time.perf_counter() - t0) * 1e6 / n)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kws-inputs", type=int, default=20, help="KWS inputs run under QEMU")
    ap.add_argument("--ad-inputs", type=int, default=50, help="AD windows run under QEMU")
    args = ap.parse_args()
    tgt = load_target(TARGET)
    print(f"`.venv/bin/python bench/mcu.py --kws-inputs {args.kws_inputs} --ad-inputs "
          f"{args.ad_inputs}`\n")
    rows = []
    for key, n_qemu in (("kws", args.kws_inputs), ("ad", args.ad_inputs)):
        t = TFLM[key]
        path = SHARED / "models/mlperf-tiny" / t["file"]
        g = load_tflite(path)
        x = inputs(key, g)
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            sizes = {}
            for variant in ("portable", "dsp"):
                r = compile_model(g, tgt, work / variant, variant=variant, measure=True)
                s = r.sizes
                sizes[variant] = (s.text + s.weights + s.rodata + s.data, s.text, r.arena_bytes,
                                  r.out_dir)
            xq = x[:n_qemu]
            ref = Interpreter(g).run([xq])[g.outputs[0]]
            instr = {v: qemu_instructions(g, xq, ref, v, work)[0] for v in ("portable", "dsp")}
            ours_host = host_us(sizes["portable"][3], x[:100], work)
            xnn = litert_us(path, x[:100])
        arena = sizes["dsp"][2]
        flash_p, flash_d = sizes["portable"][0], sizes["dsp"][0]
        tflm_flash_ref = t["flatbuffer"] + t["runtime_ref"]
        tflm_flash_cmsis = t["flatbuffer"] + t["runtime_cmsis"]
        rows.append((key, t, arena, flash_p, flash_d, sizes, tflm_flash_ref, tflm_flash_cmsis, instr,
                     ours_host, xnn))

    print("| model | metric | edgekit portable | edgekit dsp | TFLM reference | TFLM CMSIS-NN | "
          "edgekit / TFLM (portable vs ref, dsp vs CMSIS-NN) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for key, t, arena, flash_p, flash_d, sizes, fr, fc, instr, _host, _xnn in rows:
        name = "KWS" if key == "kws" else "AD"
        print(f"| {name} | arena bytes | {arena:,} | {arena:,} | {t['arena']:,} | "
              f"{t['arena_cmsis']:,} | {arena / t['arena']:.2f}x, {arena / t['arena_cmsis']:.2f}x |")
        print(f"| {name} | flash bytes (model + kernels; TFLM: .tflite + runtime) | {flash_p:,} | "
              f"{flash_d:,} | {fr:,} | {fc:,} | {flash_p / fr:.2f}x, {flash_d / fc:.2f}x |")
        print(f"| {name} | of which code (.text) | {sizes['portable'][1]:,} | {sizes['dsp'][1]:,} | "
              f"{t['runtime_ref']:,} (runtime) | {t['runtime_cmsis']:,} (runtime) | |")
        print(f"| {name} | instructions / inference (mps2-an386, -icount) | {instr['portable']:,.0f} | "
              f"{instr['dsp']:,.0f} | {t['instr_ref']:,} | {t['instr_cmsis']:,} | "
              f"{instr['portable'] / t['instr_ref']:.2f}x, {instr['dsp'] / t['instr_cmsis']:.2f}x |")
        print(f"| {name} | instructions / MAC ({t['macs']:,} MACs) | "
              f"{instr['portable'] / t['macs']:.2f} | {instr['dsp'] / t['macs']:.2f} | "
              f"{t['instr_ref'] / t['macs']:.2f} | {t['instr_cmsis'] / t['macs']:.2f} | |")
    print()
    print("| model | edgekit C, x86_64 gcc -O2, 1 thread | LiteRT XNNPACK, 1 thread | "
          "edgekit / XNNPACK |")
    print("| --- | ---: | ---: | ---: |")
    for key, *_rest, ours_host, xnn in rows:
        name = "KWS" if key == "kws" else "AD"
        print(f"| {name} | {ours_host:,.1f} us | {xnn:,.1f} us | {ours_host / xnn:.1f}x |")
    print("\nAll QEMU outputs equal the reference interpreter's (and so TFLM's) byte for byte. "
          "edgekit's arena holds the activations only (weights, multipliers and parameters stay "
          "in flash); TFLM's arena_used_bytes() also holds its runtime structures (tensor and "
          "node structs, per-channel quantization data). Flash: edgekit's objects before linking "
          "(libc's memcpy/memset not included); TFLM's runtime figure includes libc. Host timing: "
          "edgekit's loop includes copying input and output; LiteRT's includes set_tensor from "
          "Python. The portable kernels are the readable reference C; the XNNPACK ratio shows "
          "how far plain C is from a SIMD-tuned host library.")


if __name__ == "__main__":
    main()
