"""``edgekit build-firmware``: the board firmware for a target, with or without a model."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgekit.cli.common import human_bytes, input_shape_option, load_model_cli, make_console

console = make_console()


@click.command("build-firmware")
@click.option("--target", "-t", "target", required=True, metavar="NAME",
              help="Target (cortex-m4, ...) or board port (mps2-an386, nucleo-l4r5zi, ...).")
@click.option("--model", "-m", "model", metavar="MODEL",
              help="An int8 model to link into the image (default: the model-slot firmware, "
                   "which runs packages uploaded with `edgekit flash`).")
@click.option("--out", "-o", "out_dir", metavar="DIR", help="Output folder (default: ./firmware-<board>).")
@click.option("--board", metavar="BOARD", help="Board port, when several exist for the target.")
@click.option("--variant", type=click.Choice(["auto", "portable", "dsp"]), default="auto",
              show_default=True, help="Kernel variant: by target features, portable C, or Arm DSP.")
@click.option("--json", "as_json", is_flag=True, help="Print what was built as JSON.")
@input_shape_option
def build_firmware_cmd(target, model, out_dir, board, variant, as_json, input_shapes):
    """Build the edgekit firmware (firmware/) for TARGET with its cross compiler: an
    ELF that answers the serial protocol of docs/serial-protocol.md."""
    from edgekit.firmware.build import board_for_target, build_firmware_info, load_board

    port = load_board(board) if board else board_for_target(target)
    graph = None
    if model:
        graph, _ = load_model_cli(model, input_shapes)
    out = Path(out_dir) if out_dir else Path(f"firmware-{port.name}")
    result = build_firmware_info(port.target, out, model=graph, variant=variant, board=port.name)
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
