"""``edgekit flash``, ``edgekit device info|infer|reset`` and ``edgekit hil``: talking to
a board (or an emulated one) over the serial protocol (docs/serial-protocol.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
from rich.table import Table

from edgekit.cli.common import (human_bytes, load_arrays, make_console, output_file, quantize_inputs_option,
                                save_arrays, write_atomic, write_text_atomic)
from edgekit.cli.compiler_check import require_compiler
from edgekit.errors import BadInputError

console = make_console()
err_console = make_console(stderr=True)

PORT_HELP = "Serial port: /dev/ttyACM0, COM3, socket://HOST:PORT, rfc2217://HOST:PORT or loop://."


def _link_options(f):
    f = click.option("--retries", type=click.IntRange(0, 100), default=8, show_default=True,
                     help="Retransmissions of a request before giving up.")(f)
    f = click.option("--timeout", type=click.FloatRange(0.05, 600), default=1.0, show_default=True,
                     help="Seconds to wait for a response (plus the frame's time on the link).")(f)
    f = click.option("--baudrate", type=int, default=115200, show_default=True,
                     help="Baud rate of a serial device (ignored by socket ports).")(f)
    return f


def _client(port: str, timeout: float, retries: int, baudrate: int, **kw):
    from edgekit.device.client import DeviceClient

    def say(message: str) -> None:
        err_console.print(f"[yellow]{message}[/yellow]", highlight=False)

    kw.setdefault("on_event", say)
    return DeviceClient(port, timeout=timeout, retries=retries, baudrate=baudrate, **kw)


# Bytes at the start of each slot that hold its record, not package data (firmware/app/ek_slots.h).
SLOT_RECORD_BYTES = 64


def _check_package_file(path: str) -> None:
    """Before connecting: a model package file must be whole, unaltered (its body matches
    its model_hash) and fit a slot of edgekit's firmware for its target. Model files are
    packed after HELLO, for the device's target, and checked then."""
    from edgekit.bundle.micro_package_reader import MAGIC, verify_package

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"file not found: {path}")
    with open(p, "rb") as f:
        if f.read(4) != MAGIC:   # a model file: packed after HELLO, by the compiler
            require_compiler("edgekit flash MODEL (a model file; a package file from `edgekit package` needs no "
                             "compiler)")
            return
    data = p.read_bytes()
    header = verify_package(data)
    room = _slot_capacity(header.target)
    if room is not None and len(data) > room[0]:
        raise BadInputError(f"{path}: the package is {len(data):,} bytes; a slot of edgekit's firmware for "
                            f"{header.target} ({room[1]}) holds {room[0]:,}")


def _slot_capacity(target: str) -> tuple[int, str] | None:
    """(package bytes a slot holds, board) of edgekit's firmware port for ``target``, or None
    when edgekit has no port for it (a board of the user's own: HELLO tells)."""
    try:
        # target files need Python 3.11 (tomllib): on older device Pythons HELLO's slot size decides
        from edgekit.firmware.build import board_for_target
        from edgekit.targets import parse_size
    except ImportError:
        return None
    try:
        board = board_for_target(target)
        size = (board.config.get("memory") or {}).get("slots", {}).get("size_each")
        return (parse_size(size) - SLOT_RECORD_BYTES, board.name) if size is not None else None
    except (BadInputError, ValueError):
        return None


def _load_package_or_model(path: str, target: str | None, device_target: str, name: str | None):
    """(package bytes, what it is) for a model package file or a model file."""
    from edgekit.bundle.micro_package_reader import MAGIC, verify_package

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"file not found: {path}")
    head = p.read_bytes()[:4]
    if head == MAGIC:
        data = p.read_bytes()
        header = verify_package(data)
        if header.target != device_target:
            raise BadInputError(f"{path} is a package for {header.target}; the device is a "
                                f"{device_target}")
        return data, name or header.name, f"package {p.name}"
    from edgekit.bundle.micro_package_writer import pack_model
    from edgekit.cli.common import load_model_cli

    graph, _ = load_model_cli(path)
    tname = target or device_target
    if target and target != device_target:
        raise BadInputError(f"--target {target} but the device is a {device_target}")
    label = (name or graph.name)[:24]
    return pack_model(graph, tname, name=label), label, f"model {p.name} packed for {tname}"


@click.command()
@click.argument("model_or_package", metavar="MODEL_OR_PACKAGE")
@click.option("--port", "-p", required=True, help=PORT_HELP)
@click.option("--target", help="Target to pack a model for (default: the one the device reports).")
@click.option("--name", help="Model name stored in the slot (at most 24 bytes; default: the model's).")
@click.option("--reconnect-timeout", type=float, default=15.0, show_default=True,
              help="Seconds to wait for the port to come back after the link drops.")
@_link_options
def flash(model_or_package: str, port: str, target: str | None, name: str | None,
          reconnect_timeout: float, timeout: float, retries: int, baudrate: int) -> None:
    """Upload a model (packed for the device's target) or a model package, and activate it.

    The device keeps serving its current model until the new one has arrived whole and
    passed its CRC, header and SHA-256 checks. A dropped link or a device reset during the
    upload is survived: the upload resumes from what the device holds. If the answer to
    the commit is lost, the device is asked what it runs, and that is what is reported."""
    from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                               TransferSpeedColumn)

    from edgekit.bundle.micro_package_reader import read_package_header

    _check_package_file(model_or_package)
    with _client(port, timeout, retries, baudrate, reconnect_timeout=reconnect_timeout) as dev:
        hello = dev.hello
        package, label, what = _load_package_or_model(model_or_package, target, hello.target, name)
        if len(package) > hello.slot_size:
            raise BadInputError(f"{what} is {len(package):,} bytes; the slots of {hello.board} on {port} "
                                f"hold {hello.slot_size:,}")
        console.print(f"{what}: {human_bytes(len(package))} -> {hello.board} ({hello.target}, "
                      f"firmware {hello.firmware}) on {port}", highlight=False)
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                   TransferSpeedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=err_console, transient=False) as bar:
            task = bar.add_task(f"flash {label}", total=len(package))
            dev.on_event = lambda msg: bar.console.print(f"[yellow]{msg}[/yellow]", highlight=False)
            result = dev.upload(package, label, model_id=read_package_header(package).model_id,
                                progress=lambda done, total: bar.update(task, completed=done))
        info = dev.info()
    _print_flash_result(label, result)
    active = info.active
    if active is not None:
        console.print(f"active: slot {active.index} {active.name!r} model id {active.model_hash}, "
                      f"arena {human_bytes(info.arena_used)} of {human_bytes(info.arena_size)}",
                      highlight=False)


def _print_flash_result(label: str, result) -> None:
    if result.already_active:
        console.print(f"{label!r} (crc32 0x{result.crc:08x}) is already the active model, in slot "
                      f"{result.slot}: nothing sent; the other slot keeps its model", highlight=False)
        return
    extra = []
    if result.restarts:
        extra.append(f"{result.restarts} reconnect(s)" + (", resumed at " + ", ".join(
            f"{o:,}" for o in result.begin_offsets[1:]) if len(result.begin_offsets) > 1 else ""))
    if result.retransmissions:
        extra.append(f"{result.retransmissions} retransmission(s)")
    moved = "" if result.resumed_from == 0 else f" ({result.bytes_transferred:,} bytes moved)"
    console.print(f"flashed {label!r} to slot {result.slot} in {result.seconds:.1f} s{moved} "
                  f"({human_bytes(int(result.bytes_per_second))}/s on this link), crc32 0x{result.crc:08x}"
                  + (f"; {'; '.join(extra)}" if extra else ""), highlight=False)
    if result.confirmed_after_fault:
        console.print("the answer to UPLOAD_COMMIT was lost; the device reports the new model active",
                      highlight=False)
    if result.bytes_transferred:
        console.print(f"wire: {result.wire_bytes_per_package_byte:.3f} bytes per package byte (framing, "
                      f"acknowledgements, retransmissions); on a 115200-baud UART (8N1) these bytes take "
                      f"{result.line_seconds(115200):.1f} s", highlight=False)


@click.group()
def device() -> None:
    """Ask a device what it runs, run one inference on it, or reset it."""


@device.command("info")
@click.option("--port", "-p", required=True, help=PORT_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print HELLO, INFO and STATS as JSON.")
@_link_options
def device_info(port: str, as_json: bool, timeout: float, retries: int, baudrate: int) -> None:
    """Firmware and protocol version, target, slots, arena, stack and link statistics."""
    with _client(port, timeout, retries, baudrate) as dev:
        hello, info, stats = dev.hello, dev.info(), dev.device_stats()
        banner = dev.banner
    if as_json:
        click.echo(json.dumps({"port": port, "banner": banner, "hello": hello.to_dict(),
                               "info": info.to_dict(), "stats": stats.to_dict()}, indent=1))
        return
    t = Table(title=f"{hello.board} on {port}", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    rows = [("target", hello.target), ("firmware", hello.firmware), ("protocol", str(hello.protocol)),
            ("max payload / window", f"{hello.max_payload} B / {hello.window} frames"),
            ("tensor buffer", f"{human_bytes(hello.tensor_bytes)} (inputs and outputs in chunks)"
             if hello.chunked_tensors else "none: tensors in one frame (firmware before 0.2.0)"),
            ("slots", f"{hello.slot_count} x {human_bytes(hello.slot_size)}"),
            ("arena", f"{human_bytes(info.arena_used)} used of {human_bytes(info.arena_size)}"),
            ("stack", f"{human_bytes(info.stack_high_water)} used of {human_bytes(info.stack_size)} "
                      "(high-water mark)"),
            ("frames", f"{stats.frames_ok:,} ok, {stats.frames_bad:,} bad, {stats.naks:,} NAKs, "
                       f"{stats.duplicates:,} duplicates"),
            ("inferences", f"{stats.inferences:,}" + (f", last {stats.last_ticks:,} ticks "
                                                       f"({stats.last_ticks / stats.tick_hz * 1e3:.3f} ms "
                                                       f"at {stats.tick_hz / 1e6:g} MHz)"
                                                       if stats.inferences and stats.tick_hz else ""))]
    for k, v in rows:
        t.add_row(k, v)
    console.print(t)
    s = Table(title="model slots")
    # INFO carries a short id (the first 8 bytes of the package's SHA-256), not the digest
    for col in ("slot", "state", "name", "size", "crc32", "model id (SHA-256, first 8 bytes)"):
        s.add_column(col)
    for slot in info.slots:
        style = "green" if slot.state == "active" else None
        s.add_row(str(slot.index), slot.state, slot.name, f"{slot.size:,}" if slot.size else "",
                  f"0x{slot.crc:08x}" if slot.size else "",
                  slot.model_hash if slot.state in ("valid", "active") else "", style=style)
    console.print(s)


@device.command("infer")
@click.option("--port", "-p", required=True, help=PORT_HELP)
@click.option("--input", "-i", "input_path", required=True, metavar="FILE",
              help=".npy (or .npz with one array) holding one input tensor, or a batch of them.")
@click.option("--out", "-o", "out_path", metavar="FILE.npy", help="Write the outputs (.npy).")
@click.option("--model", "-m", "model_path", metavar="MODEL",
              help="The model the device runs: checks the input and shapes the output.")
@click.option("--output-dtype", type=click.Choice(["int8", "uint8", "int32", "float32"]),
              default="int8", show_default=True, help="Output element type without --model.")
@quantize_inputs_option
@_link_options
def device_infer(port: str, input_path: str, out_path: str | None, model_path: str | None,
                 output_dtype: str, quantize_inputs: bool, timeout: float, retries: int, baudrate: int) -> None:
    """Run the device's active model on the input(s); print outputs and timer ticks."""
    out_file = output_file(out_path, "--out", (".npy",)) if out_path else None
    data = load_arrays(input_path)
    graph = None
    output_bytes = None  # unknown without --model: the client learns it from the device
    if model_path:
        require_compiler("edgekit device infer --model")
        from edgekit.cli.common import load_model_cli
        from edgekit.hil.rig import prepare_inputs

        graph, _ = load_model_cli(model_path)
        feeds = prepare_inputs(graph, data, quantize_floats=quantize_inputs)
        n = len(next(iter(feeds.values())))
        blobs = [b"".join(feeds[k][i].tobytes() for k in graph.inputs) for i in range(n)]
        # Known output size: an output larger than a frame goes straight to the chunked
        # path, with no INFER round trip that the device answers "too large".
        output_bytes = sum(graph.tensor(o).nbytes for o in graph.outputs)
    else:
        from edgekit.reference.inputs import check_finite

        if isinstance(data, dict):
            if len(data) != 1:
                raise BadInputError(f"{input_path} holds {sorted(data)}: give one array (or --model)")
            data = next(iter(data.values()))
        check_finite(Path(input_path).name, data)  # without a model the bytes go as they are
        arr = np.ascontiguousarray(data)
        batch = arr if arr.ndim >= 2 and arr.shape[0] > 1 else arr[None]
        blobs = [np.ascontiguousarray(b).tobytes() for b in batch]
    outs, ticks = [], []
    with _client(port, timeout, retries, baudrate) as dev:
        tick_hz = None
        for blob in blobs:
            out, t = dev.infer(blob, output_bytes=output_bytes)
            outs.append(out)
            ticks.append(t)
        tick_hz = dev.device_stats().tick_hz
    if graph is not None:
        o = graph.tensor(graph.outputs[0])
        arr_out = np.stack([np.frombuffer(b[:o.nbytes], o.dtype.np).reshape(o.shape[1:]) for b in outs])
    else:
        dt = np.dtype(output_dtype)
        arr_out = np.stack([np.frombuffer(b[:len(b) - len(b) % dt.itemsize], dt) for b in outs])
    table = Table(title=f"{len(outs)} inference(s) on {port}")
    for col in ("#", "ticks", "ms", "output (first 12)", "argmax"):
        table.add_column(col, justify="right" if col != "output (first 12)" else "left")
    for i, (row, t) in enumerate(zip(arr_out, ticks)):
        flat = row.reshape(-1)
        shown = " ".join(str(v) for v in flat[:12]) + (" ..." if flat.size > 12 else "")
        ms = f"{t / tick_hz * 1e3:.3f}" if tick_hz else ""
        table.add_row(str(i), f"{t:,}", ms, shown, str(int(flat.argmax())) if flat.size else "")
        if i == 19 and len(outs) > 21:
            table.add_row("...", "", "", f"({len(outs) - 20} more)", "")
            break
    console.print(table)
    if out_file:
        save_arrays(out_file, {"outputs": arr_out})
        console.print(f"wrote {out_file}")


@device.command("reset")
@click.option("--port", "-p", required=True, help=PORT_HELP)
@_link_options
def device_reset(port: str, timeout: float, retries: int, baudrate: int) -> None:
    """Reset the device and wait until it answers again."""
    with _client(port, timeout, retries, baudrate) as dev:
        hello = dev.reset()
        console.print(f"{hello.board} is back" + (f": {dev.banner}" if dev.banner else ""),
                      highlight=False)


@click.command()
@click.argument("model")
@click.option("--device", "device_spec", metavar="qemu:TARGET",
              help="Start an emulated board: qemu:cortex-m3|m4|m7|m33|m55 (QEMU is always stopped).")
@click.option("--port", "-p", help=PORT_HELP + " (a board already running edgekit firmware)")
@click.option("--vectors", required=True, metavar="FILE",
              help=".npz (one array per input name, or 'x' / 'x_int8') or .npy, batch first.")
@click.option("--limit", type=click.IntRange(1), help="Use the first N vectors.")
@click.option("--junit", "junit_path", metavar="FILE.xml", help="Write JUnit XML (one case per vector).")
@click.option("--json", "json_path", metavar="FILE.json", help="Write the result as JSON.")
@click.option("--html", "html_path", metavar="FILE.html",
              help="Write an HTML report (with --profile: the per-op table).")
@click.option("--profile", is_flag=True,
              help="Per-op instructions (QEMU; timer ticks on a board), MACs and instructions per MAC; "
                   "--device builds the firmware with --profile, --port needs such a firmware.")
@click.option("--linked", is_flag=True,
              help="With --device: compile the model to C and link it into the firmware (the generated C's "
                   "own kernels and arena) instead of uploading a package.")
@click.option("--max-mismatches", type=click.IntRange(0), default=10, show_default=True,
              help="Mismatches to record in detail.")
@click.option("--firmware", "firmware_elf", metavar="ELF", type=click.Path(dir_okay=False),
              help="With --device: run this ELF instead of building the model-slot firmware.")
@quantize_inputs_option
@_link_options
def hil(model: str, device_spec: str | None, port: str | None, vectors: str, limit: int | None,
        junit_path: str | None, json_path: str | None, html_path: str | None, profile: bool, linked: bool,
        max_mismatches: int, firmware_elf: str | None, quantize_inputs: bool, timeout: float, retries: int,
        baudrate: int) -> None:
    """Flash MODEL, run every vector on the device and compare with the reference
    interpreter bit for bit. Exit status 1 when any output differs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from edgekit.cli.common import load_model_cli
    from edgekit.hil import junit_tree, prepare_inputs, run_hil

    if (device_spec is None) == (port is None):
        raise BadInputError("give exactly one of --device qemu:TARGET or --port PORT")
    if device_spec is not None and not device_spec.startswith("qemu:"):
        raise BadInputError(f"--device {device_spec!r}: expected qemu:TARGET, e.g. qemu:cortex-m4 "
                            "(use --port for a real board)")
    junit_file = output_file(junit_path, "--junit") if junit_path else None
    json_file = output_file(json_path, "--json") if json_path else None
    html_file = output_file(html_path, "--html") if html_path else None
    if linked and (device_spec is None or firmware_elf):
        raise BadInputError("--linked builds the firmware with the model linked in: give --device qemu:TARGET "
                            "and no --firmware")
    if firmware_elf:
        if device_spec is None:
            raise BadInputError("--firmware runs an ELF on an emulated board: it needs --device qemu:TARGET")
        # QEMU runs in its own working folder: a relative path must be made absolute here.
        firmware_elf = str(Path(firmware_elf).resolve())
        if not Path(firmware_elf).is_file():
            raise BadInputError(f"--firmware {firmware_elf}: file not found")
    graph, _ = load_model_cli(model)
    data = load_arrays(vectors)
    if limit:
        data = {k: v[:limit] for k, v in data.items()} if isinstance(data, dict) else data[:limit]
    # The vectors are checked (shapes, NaN/inf, the input type rule) before any board starts.
    prepare_inputs(graph, data, quantize_floats=quantize_inputs)
    opts = dict(timeout=timeout, retries=retries, baudrate=baudrate)
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task("flash (bytes)" if stage == "flash" else "vectors",
                                            total=total)
            bar.update(tasks[stage], completed=done)

        if device_spec is not None and firmware_elf:
            from edgekit.device.qemu import QemuBoard, parse_device_spec

            tname = parse_device_spec(device_spec)
            with QemuBoard(tname, firmware_elf) as board:
                result = run_hil(graph, board, data, target=tname, progress=progress,
                                 max_mismatches=max_mismatches, client_options=opts,
                                 quantize_floats=quantize_inputs, profile=profile)
                result.device = device_spec
        else:
            result = run_hil(graph, device_spec or port, data, progress=progress,
                             max_mismatches=max_mismatches, client_options=opts,
                             quantize_floats=quantize_inputs, profile=profile, linked=linked)
    _print_hil(result)
    if result.profile is not None:
        _print_profile(result)
    if junit_file:
        write_atomic(junit_file, lambda f: junit_tree(result).write(f, encoding="utf-8", xml_declaration=True))
        console.print(f"wrote {junit_file}")
    if json_file:
        write_text_atomic(json_file, json.dumps(result.to_dict(), indent=1) + "\n")
        console.print(f"wrote {json_file}")
    if html_file:
        from edgekit.hil.report import html_report

        write_text_atomic(html_file, html_report(result))
        console.print(f"wrote {html_file}")
    if not result.passed:
        raise click.exceptions.Exit(1)


def _print_profile(r) -> None:
    unit = "instructions" if r.instructions_per_tick else "ticks"
    t = Table(title=f"per-op profile ({unit}: median of {len(r.op_ticks)} vectors)")
    for col in ("#", "op", "type", "kernel", unit, "%", "MACs", f"{unit}/MAC"):
        t.add_column(col, justify="left" if col in ("op", "type", "kernel") else "right")
    costs = [row.instructions if r.instructions_per_tick else row.ticks for row in r.profile]
    total = sum(costs) or 1.0
    for row, cost in zip(r.profile, costs):
        per_mac = cost / row.macs if row.macs else None
        t.add_row(str(row.index), row.name, row.op_type, row.kernel, f"{cost:,.0f}", f"{100 * cost / total:.1f}",
                  f"{row.macs:,}" if row.macs else "", f"{per_mac:.2f}" if per_mac is not None else "")
    macs = sum(row.macs for row in r.profile)
    t.add_row("", "all ops", "", "", f"{sum(costs):,.0f}", "100.0", f"{macs:,}",
              f"{sum(costs) / macs:.2f}" if macs else "", style="bold")
    console.print(t)


def _print_hil(r) -> None:
    t = Table(title=f"hil: {r.model} on {r.device} ({r.board}, {r.target}, firmware {r.firmware})",
              show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    verdict = "[green]PASS[/green]" if r.passed else "[red]FAIL[/red]"
    t.add_row("result", f"{verdict}: {r.vectors - r.failed} of {r.vectors} vectors bit-exact")
    t.add_row("package", f"{human_bytes(r.package_bytes)}, flashed in {r.flash_seconds:.1f} s"
              + (f" ({r.flash_restarts} reconnects)" if r.flash_restarts else ""))
    if r.ticks:
        line = f"{r.ticks_median:,.0f} ticks median (min {min(r.ticks):,}, max {max(r.ticks):,})"
        if r.instructions_median is not None:
            line += f" = {r.instructions_median:,.0f} instructions"
        elif r.seconds_per_inference_on_device is not None:
            line += f" = {r.seconds_per_inference_on_device * 1e3:.3f} ms"
        t.add_row("per inference", line)
    t.add_row("arena", f"{human_bytes(r.arena_used)} of {human_bytes(r.arena_size)}")
    t.add_row("stack", f"{human_bytes(r.stack_high_water)} of {human_bytes(r.stack_size)} (high water)")
    t.add_row("wall time", f"{r.run_seconds:.1f} s for {r.vectors} vectors "
              f"({r.run_seconds / max(r.vectors, 1) * 1e3:.0f} ms each)")
    console.print(t)
    for m in r.mismatches:
        console.print(f"[red]mismatch[/red] {m.describe()}", highlight=False)
    if r.failed > len(r.mismatches):
        console.print(f"... {r.failed - len(r.mismatches)} more vectors differ "
                      f"(indices {r.failed_indices[len(r.mismatches):][:20]})", highlight=False)
