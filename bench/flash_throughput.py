"""Flashing: wire bytes per package byte and the time on a 115200-baud line; the HIL rig's
speed; instructions per inference on the five QEMU boards.

    .venv/bin/python bench/flash_throughput.py [--repeat 3] [--hil-vectors 1000] [--out FILE.md]

1. Flashing (cortex-m4, mps2-an386), `DeviceClient.upload` from the INFO that asks whether
   the package already runs to UPLOAD_COMMIT's answer: the bytes on the wire per package
   byte in each direction (framing, COBS, offsets, acknowledgements, BEGIN/COMMIT/INFO,
   retransmissions), counted by the client, and the time those bytes take on a real
   115200-baud UART (8N1, 10 bits a byte; full duplex, so the busier direction sets it).
   QEMU's CMSDK UART emulates no baud rate (it moves bytes as fast as the host feeds
   QEMU), so the emulated package bytes per second are an emulator figure only: they
   say nothing about a board's serial line. Each run flashes the package to the slot
   that is not active (the two models alternate, so none is already active).
2. `edgekit hil` with the shared KWS model on kws01's 1000 test inputs, on qemu:cortex-m4:
   the wall time of the whole command (QEMU boot, flash, 1000 INFERs, comparison), with
   the firmware already built (its build is cached by content).
3. Timer ticks per inference on each board (median over a few inputs) and the guest
   instructions they stand for (`-icount shift=0`: 1 tick = 40 instructions), with the
   arena and stack the board reports.

Prints Markdown (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from edgekit.bundle.micro_package_writer import pack_model  # noqa: E402
from edgekit.device.client import DeviceClient  # noqa: E402
from edgekit.device.qemu import QemuBoard  # noqa: E402
from edgekit.hil import run_hil  # noqa: E402
from edgekit.hil.rig import qemu_instructions_per_tick, slot_firmware  # noqa: E402

BOARDS = ("cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
KWS = SHARED / "models/mlperf-tiny/kws_ref_model_int8.tflite"
AD = SHARED / "models/mlperf-tiny/ad01_int8.tflite"
KWS_DATA = SHARED / "data/kws01/kws01_test1000.npz"


def _models():
    from tests.device import models

    return {"kws": models.kws(), "ad": models.ad(), "digits": models.digits()}


def flash_throughput(repeat: int) -> list[dict]:
    models = _models()
    elf = slot_firmware("cortex-m4")
    packages = {name: pack_model(models[name][0], "cortex-m4") for name in ("kws", "ad")}
    runs: dict[str, list] = {name: [] for name in packages}
    with QemuBoard("cortex-m4", elf) as board, DeviceClient(board, seed=1) as dev:
        for _ in range(repeat):
            for name, pkg in packages.items():  # alternate: each upload replaces the other model
                r = dev.upload(pkg, name)
                assert not r.already_active and r.resumed_from == 0 and r.retransmissions == 0
                runs[name].append(r)
        hello = dev.hello
    rows = []
    for name, rs in runs.items():
        r = rs[0]  # the bytes are the same in every clean run; times vary
        rows.append(dict(model=name, bytes=r.size, sent=r.wire_bytes_sent, received=r.wire_bytes_received,
                         per_byte=r.wire_bytes_per_package_byte, line=r.line_seconds(115200),
                         emulated=statistics.median(x.bytes_per_second for x in rs),
                         emulated_runs=[x.bytes_per_second for x in rs],
                         same_bytes=len({(x.wire_bytes_sent, x.wire_bytes_received) for x in rs}) == 1,
                         window=hello.window, max_payload=hello.max_payload))
    return rows


def hil_1000(n: int) -> dict:
    slot_firmware("cortex-m4")  # build (or find) the firmware first: not part of the timing
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "hil.json"
        cmd = [sys.executable, "-m", "edgekit.cli.main", "hil", str(KWS), "--device", "qemu:cortex-m4",
               "--vectors", str(KWS_DATA), "--limit", str(n), "--json", str(out)]
        t0 = time.monotonic()
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        wall = time.monotonic() - t0
        if res.returncode not in (0, 1):
            raise RuntimeError(f"edgekit hil failed:\n{res.stdout}\n{res.stderr}")
        doc = json.loads(out.read_text())
    shown = ["edgekit", "hil", "kws_ref_model_int8.tflite", "--device", "qemu:cortex-m4",
             "--vectors", "kws01_test1000.npz"] + (["--limit", str(n)] if n != 1000 else [])
    return dict(command=" ".join(shown), wall=wall, vectors=doc["vectors"],
                passed=doc["vectors"] - doc["failed"], flash=doc["flash_seconds"], run=doc["run_seconds"])


def ticks_per_board(vectors: int) -> list[dict]:
    models = _models()
    rows = []
    for target in BOARDS:
        elf = slot_firmware(target)
        with QemuBoard(target, elf) as board, DeviceClient(board) as dev:
            for name, (graph, x) in models.items():
                r = run_hil(graph, dev, x[:vectors], target=target, name=name)
                rows.append(dict(target=target, board=r.board, model=name, passed=r.passed,
                                 ticks=r.ticks_median,
                                 instructions=r.ticks_median * qemu_instructions_per_tick(r.tick_hz),
                                 arena=r.arena_used, stack=r.stack_high_water))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="uploads per package")
    ap.add_argument("--hil-vectors", type=int, default=1000, help="vectors for the edgekit hil run")
    ap.add_argument("--tick-vectors", type=int, default=5, help="vectors per model and board")
    ap.add_argument("--out", help="also write the Markdown here")
    args = ap.parse_args()

    lines = [f"Measured with `.venv/bin/python bench/flash_throughput.py --repeat {args.repeat} "
             f"--hil-vectors {args.hil_vectors} --tick-vectors {args.tick_vectors}` "
             "(QEMU 7.2, `-icount shift=0`).", ""]
    fl = flash_throughput(args.repeat)
    lines += ["### Flashing: bytes on the wire and a 115200-baud line (qemu:cortex-m4, mps2-an386)", "",
              f"max_payload {fl[0]['max_payload']} B, window {fl[0]['window']} chunks; {args.repeat} "
              "clean uploads of each package"
              + (", the same bytes every time" if all(r["same_bytes"] for r in fl) else "") + ".", "",
              "| package | bytes | wire bytes host -> device | per package byte | device -> host | "
              "at 115200 baud (8N1) |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in fl:
        lines.append(f"| {r['model']} | {r['bytes']:,} | {r['sent']:,} | {r['per_byte']:.4f} | "
                     f"{r['received']:,} | {r['line']:.1f} s |")
    lines += ["", "Emulator figure only (QEMU's UART has no baud rate; this is how fast the host feeds "
              "QEMU): median " + "; ".join(
                  f"{r['model']} {r['emulated']:,.0f} B/s (runs {', '.join(f'{v:,.0f}' for v in r['emulated_runs'])})"
                  for r in fl) + ".", ""]
    print("\n".join(lines), flush=True)

    h = hil_1000(args.hil_vectors)
    more = [f"### `edgekit hil`: {h['vectors']} kws01 vectors on qemu:cortex-m4", "",
            f"`{h['command']}`: {h['wall']:.1f} s wall for the whole command ({h['passed']} of "
            f"{h['vectors']} bit-exact; flash {h['flash']:.1f} s, {h['vectors']} inferences "
            f"{h['run']:.1f} s = {h['run'] / h['vectors'] * 1e3:.0f} ms each).", ""]
    print("\n".join(more), flush=True)
    lines += more

    tk = ticks_per_board(args.tick_vectors)
    table = ["### Instructions per inference (model-slot firmware, median of "
             f"{args.tick_vectors} inputs)", "",
             "| board | model | ticks | instructions | arena used (B) | stack high water (B) | bit-exact |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for r in tk:
        table.append(f"| {r['target']} ({r['board']}) | {r['model']} | {r['ticks']:,.0f} | "
                     f"{r['instructions']:,.0f} | {r['arena']:,} | {r['stack']:,} | "
                     f"{'yes' if r['passed'] else 'NO'} |")
    print("\n".join(table + [""]), flush=True)
    lines += table + [""]
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
