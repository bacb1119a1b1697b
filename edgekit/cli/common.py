"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import click
import numpy as np

from edgekit.errors import BadInputError


def parse_input_shapes(values: tuple[str, ...]) -> dict[str, list[int]] | None:
    """``NAME=1,3,32,32`` (repeatable) -> {NAME: [1, 3, 32, 32]}."""
    if not values:
        return None
    shapes = {}
    for v in values:
        name, sep, dims = v.partition("=")
        try:
            if not sep:
                raise ValueError
            shapes[name] = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
        except ValueError:
            raise BadInputError(f"--input-shape {v!r}: expected NAME=D0,D1,... e.g. input=1,3,32,32") from None
    return shapes


input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME=D0,D1,..",
    help="Fix a dynamic input shape (repeatable), e.g. input=1,3,32,32.")


def load_model_cli(model: str, input_shapes: tuple[str, ...] = ()):
    from edgekit.frontends import load_model

    t0 = time.perf_counter()
    shapes = parse_input_shapes(input_shapes)
    graph = load_model(model, input_shapes=shapes)
    return graph, time.perf_counter() - t0


def load_arrays(path: str) -> dict[str, np.ndarray] | np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"input file not found: {path}")
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        return np.load(p, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise BadInputError(f"{path}: not a readable .npy/.npz file ({exc})") from None


def human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def human_count(n: int) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def make_console(stderr: bool = False):
    """A rich console; when the output is not a terminal, tables get 140 columns
    instead of rich's 80 so layer tables stay readable in logs and pipes."""
    import os
    import sys

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 140
    return Console(stderr=stderr, width=width)
