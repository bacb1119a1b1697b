"""``edgekit targets``: list the target descriptions, or show one."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgekit.targets import Target, format_hz, format_size, list_targets, load_target, search_path

_DIR_OPTION_HELP = (
    "Extra directory of target .toml files, searched before $EDGEKIT_TARGETS_PATH and the "
    "built-in targets (repeatable)."
)


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        # piped or captured: do not squeeze the table into 80 columns
        console = Console(highlight=False, width=max(console.width, 160))
    return console


def _dirs(ctx: click.Context, extra: tuple[Path, ...]) -> list[Path]:
    group_dirs = (ctx.parent.params.get("targets_dirs") or ()) if ctx.parent else ()
    return [*extra, *group_dirs]


def _emit_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2))


def _ram_cell(t: Target) -> str:
    if t.memory("sram"):
        return format_size(t.total("sram"))
    if t.memory("dram"):
        return format_size(t.total("dram")) + " (DRAM)"
    return "-"


@click.group(invoke_without_command=True)
@click.option(
    "--targets-dir",
    "targets_dirs",
    multiple=True,
    metavar="DIR",
    type=click.Path(path_type=Path),
    help=_DIR_OPTION_HELP,
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def targets(ctx: click.Context, targets_dirs: tuple[Path, ...], as_json: bool) -> None:
    """List the deployment targets edgekit knows (or `targets show NAME` for one)."""
    if ctx.invoked_subcommand is not None:
        return
    found = list_targets(list(targets_dirs))
    if as_json:
        _emit_json([t.to_dict() for t in found])
        return
    table = Table(title="edgekit targets", title_justify="left")
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("family", no_wrap=True)
    table.add_column("cpu", no_wrap=True)
    table.add_column("clock", justify="right", no_wrap=True)
    table.add_column("flash", justify="right", no_wrap=True)
    table.add_column("SRAM", justify="right", no_wrap=True)
    table.add_column("features")
    table.add_column("backend", no_wrap=True)
    table.add_column("emulator", no_wrap=True)
    for t in found:
        flash = format_size(t.total("flash")) if t.memory("flash") else "-"
        if t.emulator is None:
            emu = "-"
        else:
            emu = t.emulator.machine or f"{t.emulator.binary} -cpu {t.emulator.cpu or 'max'}"
        cells = (
            t.name,
            t.family,
            t.cpu,
            format_hz(t.clock_hz),
            flash,
            _ram_cell(t),
            " ".join(sorted(t.features)) or "-",
            t.default_backend,
            emu,
        )
        table.add_row(*(Text(c) for c in cells))
    console = _console()
    console.print(table)
    where = ", ".join(str(d) for d in search_path(list(targets_dirs)))
    console.print(Text(f"search path: {where}"))


@targets.command("show")
@click.argument("name")
@click.option(
    "--targets-dir",
    "targets_dirs",
    multiple=True,
    metavar="DIR",
    type=click.Path(path_type=Path),
    help=_DIR_OPTION_HELP,
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def show(ctx: click.Context, name: str, targets_dirs: tuple[Path, ...], as_json: bool) -> None:
    """Show every field of target NAME (a name, or a path to a .toml file)."""
    group_json = bool(ctx.parent and ctx.parent.params.get("as_json"))
    t = load_target(name, _dirs(ctx, targets_dirs))
    if as_json or group_json:
        _emit_json(t.to_dict())
        return

    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold", no_wrap=True)
    info.add_column()
    rows: list[tuple[str, str]] = [
        ("name", t.name),
        ("family", t.family),
        ("description", t.description),
        ("cpu", f"{t.cpu} ({t.arch})"),
        ("clock", format_hz(t.clock_hz)),
        ("features", ", ".join(sorted(t.features)) or "-"),
        ("default backend", t.default_backend),
        ("compiler", t.toolchain.cc),
        ("cflags", " ".join(t.toolchain.cflags) or "-"),
        ("ldflags", " ".join(t.toolchain.ldflags) or "-"),
    ]
    if t.cuda_sm is not None:
        rows.append(("cuda", f"sm_{t.cuda_sm}"))
    e = t.emulator
    if e is not None:
        parts = [f"{e.kind}: {e.binary}"]
        if e.machine:
            parts.append(f"-M {e.machine}")
        if e.cpu:
            parts.append(f"-cpu {e.cpu}")
        if e.sysroot:
            parts.append(f"-L {e.sysroot}")
        rows.append(("emulator", " ".join(parts)))
        if e.uart_base is not None:
            rows.append(("uart", f"{e.uart or '?'} at {e.uart_base:#010x}"))
        if e.timer_base is not None:
            rows.append(("timer", f"{e.timer_base:#010x}"))
    else:
        rows.append(("emulator", "-"))
    rows.append(("boards", ", ".join(t.boards) or "-"))
    rows.append(("source", str(t.source)))
    for key, value in rows:
        info.add_row(key, Text(value))

    console = _console()
    console.print(info)

    if t.memories:
        mem = Table(title="memory regions", title_justify="left")
        mem.add_column("name", no_wrap=True)
        mem.add_column("kind", no_wrap=True)
        mem.add_column("size", justify="right", no_wrap=True)
        mem.add_column("bytes", justify="right", no_wrap=True)
        mem.add_column("base", no_wrap=True)
        mem.add_column("end", no_wrap=True)
        for m in t.memories:
            base = "-" if m.base is None else f"{m.base:#010x}"
            end = "-" if m.end is None else f"{m.end - 1:#010x}"
            cells = (m.name, m.kind, format_size(m.size), f"{m.size:,}", base, end)
            mem.add_row(*(Text(c) for c in cells))
        console.print(mem)
        totals = [
            f"{k} {format_size(t.total(k))}"
            for k in ("flash", "sram", "psram", "dram")
            if t.memory(k)
        ]
        console.print("total: " + ", ".join(totals))
    else:
        console.print("memory regions: none listed")
    if t.notes:
        console.print()
        console.print("notes: " + t.notes, markup=False)
