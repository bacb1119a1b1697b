"""Instructions per MAC of edgekit's int8 MCU kernels, portable and dsp, one layer at a
time on the emulated Cortex-M4 (the table of runtimes/micro/README.md).

    .venv/bin/python bench/kernels.py [--inputs 3] [--out bench/results/kernels.md]

Each layer is a one-op float graph with random weights (seed 0), quantized to int8 by
edgekit, compiled by ``edgekit compile`` for cortex-m4 with the portable or the dsp
kernels, linked into firmware/common's model runner and run on QEMU mps2-an386 under
``-icount shift=0`` (CMSDK TIMER0, 1 tick = 40 instructions), every output checked
against the reference interpreter. Instructions per inference include the
requantization and the copy of the input into the arena and of the output out of it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from report import Report, default_out  # noqa: E402

from edgekit.backends.c import build, compile_model  # noqa: E402
from edgekit.ir import DType, Graph, OpType, verify  # noqa: E402
from edgekit.ir.stats import graph_stats  # noqa: E402
from edgekit.quantize import quantize  # noqa: E402
from edgekit.reference.interpreter import Interpreter  # noqa: E402
from edgekit.targets import load_target  # noqa: E402

TARGET = "cortex-m4"


def layer(name: str, op: OpType, x_shape, w_shape, y_shape, attrs, rng) -> Graph:
    g = Graph(name)
    g.add_tensor("x", x_shape, DType.FLOAT32)
    g.add_tensor("y", y_shape, DType.FLOAT32)
    fan_in = int(np.prod(w_shape[1:])) if op is not OpType.DEPTHWISE_CONV_2D else int(np.prod(w_shape[1:3]))
    g.add_const("w", (rng.normal(size=w_shape) / np.sqrt(fan_in)).astype(np.float32))
    g.add_const("b", (rng.normal(size=y_shape[-1]) * 0.1).astype(np.float32))
    g.add_op(op, ["x", "w", "b"], ["y"], attrs, name)
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    return g


def layers(rng) -> list[Graph]:
    same = {"pads": (1, 1, 1, 1)}
    return [
        layer("conv 3x3, 16x16x32 -> 32", OpType.CONV_2D, (1, 16, 16, 32), (32, 3, 3, 32), (1, 16, 16, 32),
              same, rng),
        layer("conv 1x1, 16x16x64 -> 64", OpType.CONV_2D, (1, 16, 16, 64), (64, 1, 1, 64), (1, 16, 16, 64),
              {}, rng),
        layer("depthwise 3x3, 16x16x64", OpType.DEPTHWISE_CONV_2D, (1, 16, 16, 64), (1, 3, 3, 64),
              (1, 16, 16, 64), same | {"depth_multiplier": 1}, rng),
        layer("fully connected 640 -> 64", OpType.FULLY_CONNECTED, (1, 640), (64, 640), (1, 64), {}, rng),
    ]


def instructions(graph, x, variant: str, work: Path) -> float:
    tgt = load_target(TARGET)
    ref = Interpreter(graph).run([x])[graph.outputs[0]]
    out = compile_model(graph, tgt, work / variant, variant=variant, measure=False).out_dir
    vec = build.write_vectors(x, ref, work / f"vectors-{variant}.c")
    elf = build.build_firmware(out, tgt, vec, work / f"{variant}.elf")
    res = build.run_qemu(tgt, elf, icount=True, timeout=600)
    if res.returncode != 0 or res.mismatching_bytes != 0:
        raise SystemExit(f"QEMU run failed ({graph.name}, {variant}):\n{res.output}")
    return res.instructions_per_inference(tgt.clock_hz)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=int, default=3, help="random inputs per layer")
    ap.add_argument("--out", default=str(default_out(__file__)), help="Markdown results file")
    args = ap.parse_args()
    rep = Report(args.out)
    rng = np.random.default_rng(0)
    rows = []
    for g in layers(rng):
        shape = g.input_tensors()[0].shape
        calib = rng.normal(size=(16, *shape[1:])).astype(np.float32)
        q = quantize(g, calib).graph
        t = q.input_tensors()[0]
        xf = rng.normal(size=(args.inputs, *shape[1:])).astype(np.float32)
        x = np.clip(np.round(xf / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127).astype(np.int8)
        macs = graph_stats(q).macs
        with tempfile.TemporaryDirectory() as tmp:
            per = {v: instructions(q, x, v, Path(tmp)) / macs for v in ("portable", "dsp")}
        rows.append((g.name, macs, per))
    rep.line(f"Command: `.venv/bin/python bench/kernels.py --inputs {args.inputs}`")
    rep.line()
    rep.line("| kernel | MACs | portable | dsp |")
    rep.line("| --- | ---: | ---: | ---: |")
    for name, macs, per in rows:
        rep.line(f"| {name} | {macs:,} | {per['portable']:.2f} | {per['dsp']:.2f} |")
    rep.line()
    rep.line("Instructions per MAC on QEMU mps2-an386 (-icount shift=0), GCC 12 -O2, requantization and the "
             "input/output copies included; every output equal to the reference interpreter's.")
    rep.save()


if __name__ == "__main__":
    main()
