"""``edgekit demo``: the main job on an embedded default, with no arguments and no download."""

from __future__ import annotations

import click
from rich.table import Table

from edgekit.cli.common import human_bytes, make_console, output_dir

console = make_console()


@click.command()
@click.option("--target", "-t", default="cortex-m4", show_default=True,
              help="Emulated board: cortex-m3, cortex-m4, cortex-m7, cortex-m33 or cortex-m55.")
@click.option("--out", "out_dir", metavar="DIR", help="Keep the models, C code and reports here.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo(target: str, out_dir: str | None, seed: int) -> None:
    """Train a CNN on the handwritten digits that ship with scikit-learn, prune, distill,
    quantize to int8, compile for TARGET, flash it to the emulated board over serial and
    run the held-out digits there."""
    from edgekit.demo import run_demo

    if out_dir:
        output_dir(out_dir, "--out")
    result = run_demo(target, out_dir, seed=seed, say=lambda m: console.print(m, highlight=False))
    table = Table(title=f"edgekit demo: digits CNN -> {target} ({result.test_samples} held-out digits)")
    for col in ("stage", "top-1", "flash", "RAM", "instructions / inference", "note"):
        table.add_column(col, justify="left" if col in ("stage", "note") else "right")
    for r in result.rows:
        def cell(kind: str, text: str, r=r) -> str:
            return f"{text} (est.)" if kind in r.estimated else text

        table.add_row(r.stage, "-" if r.accuracy is None else f"{r.accuracy * 100:.2f}%",
                      "-" if r.flash_bytes is None else cell("flash", human_bytes(r.flash_bytes)),
                      "-" if r.ram_bytes is None else cell("ram", human_bytes(r.ram_bytes)),
                      "-" if r.instructions is None else cell("instructions", f"{r.instructions:,.0f}"), r.note)
    console.print(table)
    console.print("(est.): an estimate, not a measurement. fp32 flash: weights + code per kernel kind + "
                  "parameters; fp32 RAM: the planned float arena; host instructions: MACs x edgekit's "
                  "instructions per MAC. The board row is measured on the emulated board.", highlight=False)
    teacher, device = result.rows[0], result.rows[-1]
    console.print(
        f"on-device int8 vs fp32 teacher: {(device.accuracy - teacher.accuracy) * 100:+.2f} points, "
        f"flash {result.flash_ratio:.1f}x smaller (the same estimate for both); "
        f"{result.bit_exact}/{result.test_samples} device outputs bit-exact with the host; "
        f"{result.seconds:.0f} s in all ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in result.timings.items()) + ")")
    if out_dir:
        console.print(f"models, C code and reports in {result.out_dir}")
