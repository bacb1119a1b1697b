"""The model zoo (tests/zoo, ``ZOO``) on the emulated Cortex-M7: per model its ops,
MACs, flash, arena, stack and instructions per inference, and whether its int8 graph
is bit-exact with TFLite Micro on the host.

    .venv/bin/python bench/zoo.py [--vectors 5] [--tflm-vectors 8] [--models a,b] [--out bench/results/zoo.md]

Measured in this run, for each model's int8 graph (edgekit's quantizer on the model's
calibration inputs):
- compiled for cortex-m7 with the C backend (``variant=auto``: the DSP kernels where
  the target has them), linked into the model-runner firmware (firmware/common) for
  QEMU's mps2-an500 with arm-none-eabi-gcc -O2 ``--gc-sections``. Flash: .isr_vector +
  .text (with .rodata) + .ARM.exidx + .data of the ELF less the test vectors. Arena:
  ``ek_arena``. Stack: the painted high-water mark after the last inference
  (bench/c/stack_peak.c). The same measurements as bench/mcu.py;
- instructions per inference under ``qemu-system-arm -icount shift=0`` (1 ns per
  instruction), every output byte checked against the reference interpreter on the board;
- bit-exact vs TFLM: the int8 graph written as ``.tflite`` by edgekit's writer and run
  by the tflite_micro host interpreter on ``--tflm-vectors`` inputs, compared byte for
  byte with the reference interpreter; "n/a" names the ops TFLM lacks.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from mcu import FLASH_SECTIONS, STACK_PEAK_C, VECTOR_SYMBOLS, elf_sections, elf_symbol_sizes  # noqa: E402
from report import Report, default_out  # noqa: E402

from edgekit.backends.c import build, compile_model  # noqa: E402
from edgekit.ir.stats import graph_stats  # noqa: E402
from edgekit.reference.inputs import to_input_dtype  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from edgekit.targets import load_target  # noqa: E402
from tests import zoo  # noqa: E402

TARGET = "cortex-m7"


def ir_inputs(graph, x: np.ndarray) -> np.ndarray:
    """The model's float inputs as the int8 graph's input bytes (IR layout)."""
    t = graph.input_tensors()[0]
    if graph.metadata.get("io_layout", {}).get(t.name) == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    return to_input_dtype(t.name, t.dtype, t.quant, x, quantize_floats=True)


def on_board(graph, x, ref, work: Path) -> dict:
    tgt = load_target(TARGET)
    out = compile_model(graph, tgt, work / "model", measure=True)
    vec = build.write_vectors(x, ref, work / "vectors.c")
    elf = build.build_firmware(out.out_dir, tgt, vec, work / "zoo.elf",
                               cflags=["-Wl,--wrap=main", str(STACK_PEAK_C)])
    res = build.run_qemu(tgt, elf, icount=True, timeout=900)
    if res.returncode != 0 or res.inferences != len(x):
        raise SystemExit(f"QEMU run failed ({graph.name}):\n{res.output[-3000:]}")
    m = re.search(r"stack peak: (\d+) bytes", res.output)
    one = build.write_vectors(x[:1], ref[:1], work / "vector.c")
    plain = build.build_firmware(out.out_dir, tgt, one, work / "plain.elf")
    prefix = build.tool(tgt.toolchain.cc)[: -len("gcc")]
    sec = elf_sections(plain, build.tool(prefix + "size"))
    sym = elf_symbol_sizes(plain, build.tool(prefix + "nm"))
    return {"flash": sum(sec.get(n, 0) for n in FLASH_SECTIONS) - sum(sym.get(n, 0) for n in VECTOR_SYMBOLS),
            "arena": sym.get("ek_arena", 0), "stack": int(m.group(1)) if m else None,
            "instructions": res.instructions_per_inference(tgt.clock_hz),
            "bit_exact": res.mismatching_bytes == 0,
            "kernels": sorted({k["variant"] for k in out.kernels})}


def vs_tflm(graph, x, ref) -> str:
    from tests.support import tflite_oracle as orc

    if not orc.HAVE_TFLM:
        return "n/a (tflite_micro not installed)"
    sys.path.insert(0, str(REPO / "tools"))
    from generate_operators_doc import TFLM_BUILTINS

    missing = sorted({op.type.value for op in graph.ops} - set(TFLM_BUILTINS))
    if missing:
        return f"n/a (TFLM lacks {', '.join(missing)})"
    from edgekit.backends.tflite.writer import tflite_bytes

    model = tflite_bytes(graph)
    for i in range(len(x)):
        got = orc.run_tflm(model, [x[i:i + 1]])[0]
        if not np.array_equal(got, ref[i:i + 1]):
            return f"no (input {i}: {int((got != ref[i:i + 1]).sum())} bytes differ)"
    return f"yes ({len(x)} inputs)"


def measure(name: str, n_board: int, n_tflm: int) -> dict:
    mod = zoo.load(name)
    graph = mod.int8_graph()
    st = graph_stats(graph)
    x = ir_inputs(graph, mod.inputs(max(n_board, n_tflm)))
    ref = Interpreter(graph).run([x])[graph.outputs[0]]
    with tempfile.TemporaryDirectory() as tmp:
        board = on_board(graph, x[:n_board], ref[:n_board], Path(tmp))
    ops = sorted({op.type.value for op in graph.ops})
    return {"name": name, "n_ops": len(graph.ops), "ops": ops, "macs": st.macs, **board,
            "tflm": vs_tflm(graph, x[:n_tflm], ref[:n_tflm])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=5, help="inputs run on the emulated board per model")
    ap.add_argument("--tflm-vectors", type=int, default=8, help="inputs compared with TFLM on the host")
    ap.add_argument("--models", help="comma-separated subset of: " + ", ".join(zoo.ZOO))
    ap.add_argument("--out", default=str(default_out(__file__)))
    args = ap.parse_args()
    rep = Report(args.out)
    names = args.models.split(",") if args.models else list(zoo.ZOO)
    unknown = sorted(set(names) - set(zoo.ZOO))
    if unknown:
        raise SystemExit(f"error: unknown zoo model(s) {unknown}; the zoo has {', '.join(zoo.ZOO)}")
    rows = [measure(n, args.vectors, args.tflm_vectors) for n in names]
    rep.line(f"### The model zoo on {TARGET} (QEMU mps2-an500, model-runner firmware)")
    rep.line()
    rep.line("| model | ops | MACs | flash: linked image | arena | stack peak | RAM (arena + stack) | "
             "instructions / inference | bit-exact on the board | bit-exact vs TFLM (host) |")
    rep.line("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for r in rows:
        stack = f"{r['stack']:,}" if r["stack"] is not None else "?"
        ram = f"{r['arena'] + r['stack']:,}" if r["stack"] is not None else "?"
        rep.line(f"| {r['name']} | {r['n_ops']} | {r['macs']:,} | {r['flash']:,} | {r['arena']:,} | {stack} | {ram} | "
                 f"{r['instructions']:,.0f} | {'yes' if r['bit_exact'] else 'NO'} ({args.vectors} inputs) | "
                 f"{r['tflm']} |")
    rep.line()
    rep.line("Op types per model: " + "; ".join(f"{r['name']}: {', '.join(r['ops'])}" for r in rows) + ".")
    rep.save()
    if not all(r["bit_exact"] for r in rows):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
