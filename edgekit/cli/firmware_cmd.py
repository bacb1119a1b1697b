"""``edgekit build-firmware``: the board firmware for a target, with or without a model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli.common import human_bytes, input_shape_option, load_model_cli, make_console, output_dir
from edgekit.errors import BadInputError

console = make_console()


@click.command("build-firmware")
@click.option("--target", "-t", "target", required=True, metavar="NAME",
              help="Target (cortex-m4, ...) or board port (mps2-an386, nucleo-l4r5zi, ...).")
@click.option("--model", "-m", "model", metavar="MODEL",
              help="An int8 model to link into the image (default: the model-slot firmware, "
                   "which runs packages uploaded with `edgekit flash`).")
@click.option("--out", "-o", "out_dir", metavar="DIR", help="Output folder (default: ./firmware-<board>).")
@click.option("--board", metavar="BOARD", help="Board port, when several exist for the target.")
@click.option("--variant", type=click.Choice(["auto", "portable", "dsp", "mve"]), default="auto",
              show_default=True, help="Kernel variant: by target features, portable C, Arm DSP, or Helium (MVE).")
@click.option("--profile", is_flag=True,
              help="Time every op (edgekit hil --profile reads the per-op counts); a few "
                   "instructions per op more.")
@click.option("--json", "as_json", is_flag=True, help="Print what was built as JSON.")
@input_shape_option
def build_firmware_cmd(target, model, out_dir, board, variant, profile, as_json, input_shapes):
    """Build the edgekit firmware (firmware/) for TARGET with its cross compiler: an
    ELF that answers the serial protocol of docs/serial-protocol.md."""
    from edgekit.firmware.build import build_firmware_info

    port = _board_port(target, board)
    out = output_dir(out_dir or f"firmware-{port.name}", "--out")
    graph = None
    if model:
        graph, _ = load_model_cli(model, input_shapes)
    result = build_firmware_info(port.target, out, model=graph, variant=variant, board=port.name,
                                 profile=profile)
    if as_json:
        click.echo(json.dumps(result.to_dict() | {"qemu_machine": port.qemu_machine}, indent=1))
        return
    kind = "model-slot firmware" if result.kind == "slots" else f"firmware with {Path(model).name} linked in"
    console.print(f"[bold]{result.elf}[/bold]: {kind} for board {result.board} "
                  f"(target {result.target}, {result.kernel_variant} kernels)")
    s = result.sizes
    if s:
        console.print(f"  flash {human_bytes(s['text'] + s['data'])}, RAM {human_bytes(s['data'] + s['bss'])} "
                      "(arena, buffers, stack reserved separately in the linker script)")
    if port.qemu_machine:
        console.print(f"  run: qemu-system-arm -M {port.qemu_machine} -display none -monitor none "
                      f"-icount shift=0 -kernel {result.elf} "
                      "-serial tcp:127.0.0.1:5555,server=on,wait=on,nodelay=on")


def _board_port(target: str, board: str | None):
    """The board port for ``--target`` (a target or a board name) and ``--board``; an
    unknown target, or a board that is not a port of the target, is bad input."""
    from edgekit.firmware.build import board_for_target, list_boards, load_board
    from edgekit.targets import load_target

    boards = {b.name: b for b in list_boards()}
    target_name = boards[target].target if target in boards else load_target(target).name
    if board is None:
        return boards[target] if target in boards else board_for_target(target_name)
    port = load_board(board)
    if port.target != target_name:
        ports = ", ".join(b.name for b in boards.values() if b.target == target_name) or "none"
        raise BadInputError(f"--board {board} is a port for target {port.target}, not for --target {target} "
                            f"(ports for {target_name}: {ports})")
    return port
