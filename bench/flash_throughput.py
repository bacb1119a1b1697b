"""Flash throughput over the emulated UART, the HIL rig's speed, and instructions per
inference on the five QEMU boards.

    .venv/bin/python bench/flash_throughput.py [--repeat 3] [--hil-vectors 1000] [--out FILE.md]

1. Flash throughput (cortex-m4, mps2-an386): package bytes per second of `DeviceClient.upload`
   (UPLOAD_BEGIN to UPLOAD_COMMIT's answer: framing, CRCs, acknowledgements, the slot's
   commit check) against the raw rate of the same emulated UART into the same firmware.
   The raw rate is a plain byte stream as long as the package: that many non-zero bytes
   (no delimiter: the firmware's frame parser reads and drops them), one 0x00, then an
   INFO request; the time until INFO's answer arrives, minus one INFO round trip alone,
   is the time the firmware took to read the stream. Raw and upload runs alternate on
   one QEMU and the medians are compared (QEMU's serial speed varies run to run).
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

from edgekit.bundle.micro_package import pack_model  # noqa: E402
from edgekit.device import protocol as P  # noqa: E402
from edgekit.device.client import DeviceClient  # noqa: E402
from edgekit.device.frames import Frame, FrameDecoder, encode  # noqa: E402
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


def raw_stream_seconds(link, nbytes: int, seq: int) -> float:
    """Seconds from the first byte of ``nbytes`` plain bytes (+ 0x00 + INFO) to INFO's answer."""
    dec = FrameDecoder()
    t0 = time.monotonic()
    link.write(b"\x01" * nbytes + b"\x00" + encode(P.INFO, seq))
    deadline = t0 + 10 + nbytes / 2000  # far slower than any emulated UART
    while True:
        data = link.read(0.5)
        if not data and time.monotonic() > deadline:
            raise RuntimeError("no INFO answer after the raw stream")
        for ev in dec.feed(data):
            if isinstance(ev, Frame) and ev.seq == seq and ev.type == P.INFO | P.RESPONSE:
                link.drain_input(0.05)  # the NAK of the dropped run, if any
                return time.monotonic() - t0


def flash_throughput(repeat: int) -> list[dict]:
    models = _models()
    elf = slot_firmware("cortex-m4")
    rows = []
    with QemuBoard("cortex-m4", elf) as board:
        link = board.connect()
        base = min(raw_stream_seconds(link, 0, 60000 + i) for i in range(5))
        with DeviceClient(link, seed=1) as dev:
            for name in ("kws", "ad"):
                graph, _ = models[name]
                pkg = pack_model(graph, "cortex-m4")
                raw, up = [], []
                for i in range(repeat):
                    t = raw_stream_seconds(dev._link, len(pkg), 61000 + i)
                    raw.append(len(pkg) / (t - base))
                    r = dev.upload(pkg, name)
                    up.append(r.bytes_per_second)
                rows.append(dict(model=name, bytes=len(pkg), raw=statistics.median(raw),
                                 upload=statistics.median(up), raw_runs=raw, upload_runs=up,
                                 window=dev.hello.window, max_payload=dev.hello.max_payload))
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
                                 ticks=r.ticks_median, instructions=r.ticks_median * qemu_instructions_per_tick(r.tick_hz),
                                 arena=r.arena_used, stack=r.stack_high_water))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="raw/upload runs per package")
    ap.add_argument("--hil-vectors", type=int, default=1000, help="vectors for the edgekit hil run")
    ap.add_argument("--tick-vectors", type=int, default=5, help="vectors per model and board")
    ap.add_argument("--out", help="also write the Markdown here")
    args = ap.parse_args()

    lines = [f"Measured with `.venv/bin/python bench/flash_throughput.py --repeat {args.repeat} "
             f"--hil-vectors {args.hil_vectors} --tick-vectors {args.tick_vectors}` "
             "(QEMU 7.2, `-icount shift=0`).", ""]
    fl = flash_throughput(args.repeat)
    lines += ["### Flash throughput (qemu:cortex-m4, mps2-an386)", "",
              f"max_payload {fl[0]['max_payload']} B, window {fl[0]['window']} chunks. Medians of "
              f"{args.repeat} alternating runs.", "",
              "| package | bytes | raw UART stream (B/s) | upload (B/s) | upload / raw |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for r in fl:
        lines.append(f"| {r['model']} | {r['bytes']:,} | {r['raw']:,.0f} | {r['upload']:,.0f} | "
                     f"{r['upload'] / r['raw']:.2f} |")
    lines += ["", "Runs (B/s): " + "; ".join(
        f"{r['model']} raw {', '.join(f'{v:,.0f}' for v in r['raw_runs'])} / upload "
        f"{', '.join(f'{v:,.0f}' for v in r['upload_runs'])}" for r in fl), ""]
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
