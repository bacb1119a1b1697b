"""edgekit's generated C for MCUs on the MLPerf Tiny KWS and AD int8 models: linked flash
image, RAM on the board, instructions per inference on the emulated Cortex-M4, and host
speed against LiteRT XNNPACK (one thread); TFLM's figures beside them, from the notes.

    .venv/bin/python bench/mcu.py [--kws-inputs 20] [--ad-inputs 50] [--out bench/results/mcu.md]

Measured in this run, for edgekit's portable and dsp kernels:
- the model-runner firmware (firmware/common: startup, semihosting, model_runner.c, the
  generated model.c and its kernels, libc) linked for mps2-an386 with arm-none-eabi-gcc
  -O2 ``--gc-sections``. Flash: .isr_vector + .text (with .rodata) + .ARM.exidx + .data
  of the ELF (``arm-none-eabi-size -A``) less the test vectors (``arm-none-eabi-nm -S``).
  RAM: .data + .bss of the same ELF (the arena is ``ek_arena``; the rest is mostly the
  runner's output buffer, which TFLM keeps in its arena) plus the stack peak,
  found by painting the stack before main and finding its high-water mark after the
  last inference (bench/c/stack_peak.c, linked with ``--wrap=main``);
- instructions per inference under ``qemu-system-arm -icount shift=0`` (CMSDK TIMER0,
  1 tick = 40 instructions), every output checked against the reference interpreter;
- host: the generated C built with gcc -O2 (x86_64, one thread, a timed loop) vs LiteRT
  with XNNPACK and ``num_threads=1`` on the same inputs.

TFLM's device figures are not measured here: they come from ../shared/notes/toolchain.md
(bench/tflm_figures.py names the build) and are printed in their own table. TFLM's
tensor area is measured here with the host tflite_micro interpreter when installed.
"""

from __future__ import annotations

import argparse
import re
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
from tflm_figures import SOURCE as TFLM_SOURCE  # noqa: E402
from tflm_figures import TFLM, tensor_area  # noqa: E402

from edgekit.backends.c import build, compile_model  # noqa: E402
from edgekit.frontends.tflite import load_tflite  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from edgekit.targets import load_target  # noqa: E402

HOST_RUNNER = REPO / "tests" / "backends" / "c" / "host_runner.c"
STACK_PEAK_C = BENCH / "c" / "stack_peak.c"
TARGET = "cortex-m4"
VECTOR_SYMBOLS = ("ek_vector_count", "ek_vector_inputs", "ek_vector_expected")
FLASH_SECTIONS = (".isr_vector", ".text", ".ARM.exidx", ".data")


def inputs(key: str, graph) -> np.ndarray:
    if key == "kws":
        with np.load(SHARED / "data/kws01/kws01_test1000.npz") as z:
            return z["x_int8"]
    w = np.load(SHARED / "data/ad01/normal_id_01_00000000_windows_f32_196x640.npy")
    q = graph.input_tensors()[0].quant
    return np.clip(np.round(w / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)


def elf_sections(elf: Path, size: str) -> dict[str, int]:
    out = {}
    for line in build.run([size, "-A", elf]).stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out


def elf_symbol_sizes(elf: Path, nm: str) -> dict[str, int]:
    out = {}
    for line in build.run([nm, "-S", elf]).stdout.splitlines():
        parts = line.split()
        if len(parts) == 4:
            out[parts[3]] = int(parts[1], 16)
    return out


def board_image(graph, x, ref, variant: str, work: Path) -> dict:
    """Build the model-runner firmware, run it under QEMU, measure its image and RAM."""
    tgt = load_target(TARGET)
    out = compile_model(graph, tgt, work / f"fw-{variant}", variant=variant, measure=True)
    vec = build.write_vectors(x, ref, work / f"vectors-{variant}.c")
    # The stack-peak wrapper is one more source on the same gcc command line.
    elf = build.build_firmware(out.out_dir, tgt, vec, work / f"{variant}.elf",
                               cflags=["-Wl,--wrap=main", str(STACK_PEAK_C)])
    res = build.run_qemu(tgt, elf, icount=True, timeout=900)
    if res.returncode != 0 or res.mismatching_bytes != 0:
        raise SystemExit(f"QEMU run failed ({variant}):\n{res.output}")
    m = re.search(r"stack peak: (\d+) bytes", res.output)
    if not m:
        raise SystemExit(f"no stack peak in the firmware's output ({variant}):\n{res.output}")
    # Sizes from a plain build with one vector: the figures then do not depend on how
    # many inputs ran (the vectors' alignment padding varies with their length).
    one = build.write_vectors(x[:1], ref[:1], work / f"vector-{variant}.c")
    plain = build.build_firmware(out.out_dir, tgt, one, work / f"{variant}-plain.elf")
    cc = build.tool(tgt.toolchain.cc)
    prefix = cc[: -len("gcc")]
    sec = elf_sections(plain, build.tool(prefix + "size"))
    sym = elf_symbol_sizes(plain, build.tool(prefix + "nm"))
    s = out.sizes
    vectors = sum(sym.get(n, 0) for n in VECTOR_SYMBOLS)
    return {
        "instructions": res.instructions_per_inference(tgt.clock_hz),
        "flash": sum(sec.get(n, 0) for n in FLASH_SECTIONS) - vectors,
        "model_flash": s.text + s.weights + s.rodata + s.data,   # model.c + kernels, before linking
        "model_code": s.text,
        "data": sec.get(".data", 0), "bss": sec.get(".bss", 0), "arena": sym.get("ek_arena", 0),
        "stack": int(m.group(1)), "out_dir": out.out_dir,
    }


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


def measure(key: str, n_qemu: int) -> dict:
    path = SHARED / "models/mlperf-tiny" / TFLM[key]["file"]
    g = load_tflite(path)
    x = inputs(key, g)
    xq = x[:n_qemu]
    ref = Interpreter(g).run([xq])[g.outputs[0]]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        boards = {v: board_image(g, xq, ref, v, work) for v in ("portable", "dsp")}
        ours_host = host_us(boards["portable"]["out_dir"], x[:100], work)
        xnn = litert_us(path, x[:100])
    area, area_src = tensor_area(key, path)
    return {"key": key, "board": boards, "host": ours_host, "xnn": xnn, "tflm_tensor_area": area,
            "tflm_tensor_area_src": area_src}


def ram_total(b: dict) -> int:
    return b["data"] + b["bss"] + b["stack"]


def tables(rows: list[dict], rep: Report) -> None:
    name = {"kws": "KWS", "ad": "AD"}
    rep.line("#### edgekit, measured in this run (model-runner firmware on mps2-an386)")
    rep.line()
    rep.line("| model | kernels | flash: linked image | of which model + kernels | of which code of model + "
             "kernels | RAM: arena (tensors) | other .data + .bss | stack peak | RAM total | "
             "instructions / inference | instructions / MAC |")
    rep.line("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        macs = TFLM[r["key"]]["macs"]
        for v in ("portable", "dsp"):
            b = r["board"][v]
            rep.line(f"| {name[r['key']]} | {v} | {b['flash']:,} | {b['model_flash']:,} | {b['model_code']:,} | "
                     f"{b['arena']:,} | {b['data'] + b['bss'] - b['arena']:,} | {b['stack']:,} | "
                     f"{ram_total(b):,} | {b['instructions']:,.0f} | {b['instructions'] / macs:.2f} |")
    rep.line()
    rep.line(f"#### TFLM, from the notes (not measured in this run): {TFLM_SOURCE}")
    rep.line()
    rep.line("| model | kernels | flash: runtime + .tflite | of which runtime (TFLM + libc) | of which .tflite | "
             "RAM: tensor area | arena_used_bytes() | stack peak | RAM total | instructions / inference | "
             "instructions / MAC |")
    rep.line("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        t = TFLM[r["key"]]
        for k, label in (("ref", "reference"), ("cmsis", "CMSIS-NN")):
            d = t[k]
            rep.line(f"| {name[r['key']]} | {label} | {d['runtime_flash'] + t['flatbuffer']:,} | "
                     f"{d['runtime_flash']:,} | {t['flatbuffer']:,} | {r['tflm_tensor_area']:,} | "
                     f"{d['arena_used']:,} | {d['stack_peak']:,} | >= {d['arena_used'] + d['stack_peak']:,} | "
                     f"{d['instructions']:,} | {d['instructions'] / t['macs']:.2f} |")
    rep.line()
    rep.line("TFLM tensor area: " + "; ".join(f"{name[r['key']]} {r['tflm_tensor_area_src']}" for r in rows)
             + ". TFLM RAM total: arena_used_bytes() + stack peak; the notes do not record its runtime's "
             ".data/.bss outside the arena, so the true total is higher.")
    rep.line()
    rep.line("#### edgekit / TFLM (portable vs TFLM reference kernels, dsp vs CMSIS-NN)")
    rep.line()
    rep.line("| model | flash: linked images | RAM: tensor area | RAM: total | instructions / inference |")
    rep.line("| --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        t = TFLM[r["key"]]
        cells = []
        for metric in ("flash", "tensor", "total", "instr"):
            pair = []
            for v, k in (("portable", "ref"), ("dsp", "cmsis")):
                b, d = r["board"][v], t[k]
                if metric == "flash":
                    pair.append(f"{b['flash'] / (d['runtime_flash'] + t['flatbuffer']):.2f}x")
                elif metric == "tensor":
                    pair.append(f"{b['arena'] / r['tflm_tensor_area']:.2f}x")
                elif metric == "total":
                    pair.append(f"<= {ram_total(b) / (d['arena_used'] + d['stack_peak']):.2f}x")
                else:
                    pair.append(f"{b['instructions'] / d['instructions']:.2f}x")
            cells.append(", ".join(pair))
        rep.line(f"| {name[r['key']]} | " + " | ".join(cells) + " |")
    rep.line()
    rep.line("Below 1.00x: edgekit needs less. RAM total: '<=' because TFLM's total is a lower bound.")
    rep.line()
    rep.line("#### Host speed of the generated C, same run")
    rep.line()
    rep.line("| model | edgekit C, x86_64 gcc -O2, 1 thread | LiteRT XNNPACK, 1 thread | edgekit / XNNPACK |")
    rep.line("| --- | ---: | ---: | ---: |")
    for r in rows:
        rep.line(f"| {name[r['key']]} | {r['host']:,.1f} us | {r['xnn']:,.1f} us | {r['host'] / r['xnn']:.1f}x |")
    rep.line()
    rep.line("All QEMU outputs equal the reference interpreter's (and so TFLM's) byte for byte. edgekit's arena "
             "holds the activations only (weights, multipliers and parameters stay in flash). Host timing: "
             "edgekit's loop includes copying input and output; LiteRT's includes set_tensor from Python.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kws-inputs", type=int, default=20, help="KWS inputs run under QEMU")
    ap.add_argument("--ad-inputs", type=int, default=50, help="AD windows run under QEMU")
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    rep = Report(args.out)
    rows = [measure(key, n) for key, n in (("kws", args.kws_inputs), ("ad", args.ad_inputs))]
    rep.line(f"Command: `.venv/bin/python bench/mcu.py --kws-inputs {args.kws_inputs} --ad-inputs "
             f"{args.ad_inputs}`")
    rep.line()
    tables(rows, rep)
    rep.save()


if __name__ == "__main__":
    main()
