"""The main job on an embedded default: the whole edgekit pipeline on the digits data
set that ships inside scikit-learn, from training to the emulated board.

train a CNN -> prune (>= 50% fewer MACs) -> fine-tune and distill -> quantize int8 ->
compile for the target -> pack, flash over serial to the emulated board -> run the
held-out digits on the board and compare with the host.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class DemoRow:
    stage: str
    accuracy: float | None
    flash_bytes: int | None
    ram_bytes: int | None
    instructions: float | None
    note: str = ""
    # Which of "flash", "ram", "instructions" are estimates rather than measured or
    # computed exactly; the table marks them, so no estimate reads as a measurement.
    estimated: tuple[str, ...] = ()


@dataclass
class DemoResult:
    target: str
    rows: list[DemoRow]
    test_samples: int
    bit_exact: int            # device outputs equal to the host reference, of test_samples
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    out_dir: str = ""
    # The fp32 teacher's flash over the int8 student's, both from the same estimator
    # (edgekit.compress: weights + code per kernel kind + parameters): like with like.
    flash_ratio: float = 0.0


def run_demo(target: str = "cortex-m4", out_dir: str | Path | None = None, *, seed: int = 0,
             say=print) -> DemoResult:
    from edgekit.backends.c import compile_model
    from edgekit.bundle.micro_package_writer import pack_model
    from edgekit.compress.digits import demo_compress
    from edgekit.device.client import DeviceClient
    from edgekit.device.qemu import QemuBoard
    from edgekit.errors import BadInputError
    from edgekit.hil.rig import prepare_inputs, qemu_instructions_per_tick, slot_firmware
    from edgekit.reference.interpreter import Interpreter
    from edgekit.targets import load_target

    t_start = time.perf_counter()
    tgt = load_target(target)
    if tgt.family != "mcu" or tgt.emulator is None or tgt.emulator.kind != "qemu-system":
        emulated = ("cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
        raise BadInputError(f"the demo runs on an emulated microcontroller board; {target!r} has none. "
                            f"Use one of: {', '.join(emulated)}")
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="edgekit-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    say("[1/4] train the fp32 teacher, prune, fine-tune, distill, quantize to int8")
    t0 = time.perf_counter()
    comp = demo_compress(out / "compress", seed=seed, target=target)
    timings["train, compress, quantize"] = time.perf_counter() - t0
    graph = comp.int8_graph
    x_test, y_test = comp.data.x_test, comp.data.y_test

    say(f"[2/4] compile for {target}")
    t0 = time.perf_counter()
    compiled = compile_model(graph, tgt, out / "compile")
    timings["compile"] = time.perf_counter() - t0

    say(f"[3/4] build the firmware and flash the model over serial to the emulated {tgt.emulator.machine}")
    t0 = time.perf_counter()
    elf = slot_firmware(target)
    package = pack_model(graph, tgt, name="digits-demo")
    feeds = prepare_inputs(graph, x_test)
    x_dev = feeds[graph.inputs[0]]
    host = Interpreter(graph).run(feeds)[graph.outputs[0]]
    dev_out, ticks = [], []
    with QemuBoard(target, elf) as board, DeviceClient(board) as dev:
        up = dev.upload(package, "digits-demo")
        timings["firmware and flash"] = time.perf_counter() - t0
        say(f"      {len(package):,} B package ({up.line_seconds(115200):.1f} s on a 115200-baud UART; "
            f"{up.bytes_per_second / 1024:.1f} KiB/s through the emulator)")
        say(f"[4/4] running {len(x_dev)} held-out digits on the board")
        t0 = time.perf_counter()
        for i in range(len(x_dev)):
            o, t = dev.infer(x_dev[i:i + 1].tobytes())
            dev_out.append(np.frombuffer(o, dtype=host.dtype).reshape(host.shape[1:]))
            ticks.append(t)
        stats = dev.device_stats()
        info = dev.info()
    timings["inference on the board"] = time.perf_counter() - t0
    dev_out = np.stack(dev_out)
    bit_exact = int((dev_out.reshape(len(host), -1) == host.reshape(len(host), -1)).all(axis=1).sum())
    instr = float(np.median(ticks)) * qemu_instructions_per_tick(stats.tick_hz) if stats.tick_hz else None

    rows = []
    for r in comp.rows:
        # fp32 rows: flash is the compress stage's estimate and RAM the planned float
        # arena (no float runtime is built); they have no instruction count.
        rows.append(DemoRow(r.name if r.name != "int8" else "int8 (host, reference)", r.metric,
                            r.flash_bytes, r.arena_bytes, r.est_cycles if r.precision == "int8" else None,
                            r.note, estimated=("flash", "ram")))
    flash_ratio = comp.rows[0].flash_bytes / max(comp.rows[-1].flash_bytes, 1)
    host_acc = float((host.reshape(len(host), -1).argmax(-1) == y_test).mean())
    dev_acc = float((dev_out.reshape(len(dev_out), -1).argmax(-1) == y_test).mean())
    rows[-1].accuracy = host_acc
    rows[-1].flash_bytes = int(compiled.flash["total"])
    rows[-1].ram_bytes = compiled.arena_bytes + compiled.stack_bytes
    rows[-1].note = ("flash: model + kernels compiled for the target; RAM: planned arena + stack bound; "
                     "instructions: MACs x instructions/MAC")
    rows[-1].estimated = ("instructions",) if compiled.flash.get("measured") else ("flash", "instructions")
    rows.append(DemoRow(f"int8 (on {tgt.emulator.machine})", dev_acc, len(package),
                        info.arena_used + info.stack_high_water, instr,
                        f"flash: package (weights + parameters, no kernel code); RAM: arena + stack high water; "
                        f"{bit_exact}/{len(host)} outputs bit-exact with the host"))
    return DemoResult(target=target, rows=rows, test_samples=len(y_test), bit_exact=bit_exact,
                      seconds=time.perf_counter() - t_start, timings=timings, out_dir=str(out),
                      flash_ratio=flash_ratio)
