"""``edgekit compile``: a model -> a folder of C for a microcontroller target."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from edgekit.cli.common import input_shape_option, load_model_cli, make_console, output_dir
from edgekit.errors import BadInputError

console = make_console()


def _size(option: str, value: str | None) -> int | None:
    from edgekit.targets import InvalidSizeError, parse_size

    if value is None:
        return None
    try:
        return parse_size(value)
    except InvalidSizeError as exc:
        raise BadInputError(f"{option} {value!r}: {exc}") from None


def _source_shape(graph) -> tuple[int, ...]:
    t = graph.input_tensors()[0]
    shape = tuple(t.shape)
    if graph.metadata.get("io_layout", {}).get(t.name) == "NCHW" and len(shape) == 4:
        n, h, w, c = shape
        return (n, c, h, w)
    return shape


@click.command("compile")
@click.argument("model")
@click.option("--target", "-t", "target", required=True, metavar="NAME",
              help="Target name (see `edgekit targets`) or a target .toml file.")
@click.option("--calib", metavar="DATA",
              help="Calibration data to quantize a float model first (.npz, .npy, a folder of .npy).")
@click.option("--calib-limit", type=int, metavar="N", help="Use the first N calibration samples.")
@click.option("--out", "-o", "out_dir", metavar="DIR",
              help="Output folder (default: ./<model>-<target>).")
@click.option("--flash", metavar="SIZE", help="Flash size to check against instead of the target's, e.g. 256KiB.")
@click.option("--sram", metavar="SIZE", help="SRAM size to check against instead of the target's, e.g. 64KiB.")
@click.option("--variant", type=click.Choice(["auto", "portable", "dsp"]), default="auto",
              show_default=True, help="Kernel variant: by target features, portable C, or Arm DSP.")
@click.option("--targets-dir", "targets_dirs", multiple=True, metavar="DIR",
              type=click.Path(path_type=Path), help="Extra folder of target .toml files.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
@input_shape_option
def compile_cmd(model, target, calib, calib_limit, out_dir, flash, sram, variant, targets_dirs,
            as_json, input_shapes):
    """Compile MODEL into C for an MCU TARGET: model.c/model.h, the kernels it needs,
    manifest.json and a report (exit code 2 when it does not fit the target)."""
    from edgekit.backends.c import compile_model
    from edgekit.targets import load_target

    flash_b, sram_b = _size("--flash", flash), _size("--sram", sram)
    tgt = load_target(target, list(targets_dirs) or None)
    out = output_dir(out_dir or f"{Path(model).stem}-{tgt.name}", "--out")
    graph, _ = load_model_cli(model, input_shapes)
    calib_x = None
    if calib:
        from edgekit.quantize import load_dataset

        calib_x = load_dataset(calib, input_shape=_source_shape(graph), limit=calib_limit).x
    result = compile_model(graph, tgt, out, calib=calib_x, flash=flash_b, sram=sram_b,
                           variant=variant)
    if as_json:
        m = result.manifest
        click.echo(json.dumps({k: m[k] for k in ("model", "target", "variant", "arena_bytes",
                                                 "stack_bytes", "flash", "placement", "kernels",
                                                 "macs", "fit")}
                              | {"out_dir": str(result.out_dir)}, indent=1))
        return
    print_summary(result)


def print_summary(result) -> None:
    m = result.manifest
    flash = result.flash
    how = "measured" if flash["measured"] else "estimated"
    variants = ", ".join(sorted({k["variant"] for k in m["kernels"]})) or "-"
    t = Table(title=f"{m['model']} -> {m['target']} ({variants} kernels)")
    t.add_column("part", justify="left")
    t.add_column("bytes", justify="right")
    t.add_column("placed in", justify="left")
    parts = {p.name: p for p in result.fit.parts}
    t.add_row("tensor arena", f"{result.arena_bytes:,}", parts["arena"].region or "-")
    t.add_row("stack (estimate)", f"{result.stack_bytes:,}", parts["stack"].region or "-")
    t.add_section()
    t.add_row(f"code ({how})", f"{flash['code']:,}", parts["code"].region or "-")
    t.add_row("weights and biases", f"{flash['weights']:,}", parts["weights"].region or "-")
    t.add_row("multipliers, shifts, op params", f"{flash['constants']:,}", parts["constants"].region or "-")
    t.add_row("flash total", f"{flash['total']:,}", "")
    console.print(t)

    r = Table(title="fit per region")
    for col, just in (("region", "left"), ("kind", "left"), ("size", "right"), ("used", "right"),
                      ("free", "right"), ("holds", "left")):
        r.add_column(col, justify=just)
    for reg in result.fit.regions:
        name = reg.name + (" (override)" if reg.override else "")
        r.add_row(name, reg.kind, f"{reg.size:,}", f"{reg.used:,}", f"{reg.free:,}",
                  ", ".join(reg.parts))
    console.print(r)
    kernels = ", ".join(f"{k['kernel']} ({k['variant']})" for k in m["kernels"])
    console.print(f"{len(m['ops'])} ops, {m['macs']:,} MACs; kernels: {kernels}")
    console.print(f"wrote {result.out_dir}/ (model.c, model.h, {len(m['build']['sources']) - 1} "
                  f"kernel sources, manifest.json, report.html)")
