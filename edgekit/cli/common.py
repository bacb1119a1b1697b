"""Options and helpers shared by the CLI commands."""

from __future__ import annotations

import os
import time
import zipfile
from pathlib import Path

import click
import numpy as np
from rich.console import Console, ConsoleDimensions

from edgekit.errors import BadInputError
from edgekit.files import write_atomic


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


class WidthFollowingConsole(Console):
    """A rich console whose width is decided at each print, not when it is made: the
    terminal's width, else $COLUMNS, else 140 columns (rather than rich's 80) so layer
    tables stay readable in logs and pipes. Commands keep module-level consoles, and
    one process may print to a terminal, a pipe or a test runner's buffer in turn."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._width = self._height = None   # rich fixes them from $COLUMNS/$LINES at init

    @property
    def size(self) -> ConsoleDimensions:
        measured = Console.size.fget(self)
        if self.file.isatty() or os.environ.get("COLUMNS"):
            return measured
        return ConsoleDimensions(140, measured.height)


def make_console(stderr: bool = False) -> Console:
    return WidthFollowingConsole(stderr=stderr)


# -- output paths -------------------------------------------------------------------
# Every command that writes checks its output paths before any work (a bad path is exit
# 2 at once, not an internal error after minutes of work or a model left half-done), and
# writes files atomically (a temporary file in the same folder, then a rename).


def _check_creatable(folder: Path, option: str, given) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder we may write in."""
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise BadInputError(f"{option} {given}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise BadInputError(f"{option} {given}: cannot write in {existing} (permission denied)")


def output_file(path, option: str, suffixes: tuple[str, ...] = ()) -> Path:
    """Check an output file path before any work; returns it as a Path.

    ``suffixes``: the file name endings the command writes (``(".npy", ".npz")``); any
    other is refused rather than silently changed."""
    p = Path(path)
    if suffixes and p.suffix.lower() not in suffixes:
        raise BadInputError(f"{option} {path}: use a file name ending in {' or '.join(suffixes)}")
    if p.is_dir():
        raise BadInputError(f"{option} {path}: is a folder; give a file name")
    _check_creatable(p.parent, option, path)
    if p.exists() and not os.access(p, os.W_OK):
        raise BadInputError(f"{option} {path}: the file exists and is not writable")
    return p


def output_dir(path, option: str) -> Path:
    """Check an output folder path before any work; returns it as a Path."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise BadInputError(f"{option} {path}: is a file; give a folder")
    _check_creatable(p, option, path)
    return p


def write_text_atomic(path: Path, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def save_arrays(path: Path, arrays: dict[str, np.ndarray], npz: bool = False) -> Path:
    """Outputs as .npz (every array by name) or .npy (the first), written atomically."""
    if npz or path.suffix.lower() == ".npz":
        return write_atomic(path, lambda f: np.savez(f, **arrays))
    return write_atomic(path, lambda f: np.save(f, next(iter(arrays.values()))))


# -- inputs ---------------------------------------------------------------------------
quantize_inputs_option = click.option(
    "--quantize-inputs", is_flag=True,
    help="Quantize float data for an int8 (or other integer) input with that input's scale and zero "
         "point, as TFLite's QUANTIZE does. Without it, float data for an integer input is refused.")


def quantize_float_feeds(graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``--quantize-inputs``: float arrays for integer inputs quantized by the one input
    rule (edgekit.reference.inputs); other arrays unchanged (checked later by that rule)."""
    from edgekit.reference.inputs import to_input_dtype

    out = {}
    for name, x in feeds.items():
        t = graph.tensor(name)
        x = np.asarray(x)
        out[name] = to_input_dtype(name, t.dtype, t.quant, x, quantize_floats=True) if x.dtype.kind == "f" else x
    return out


def print_outputs(console, title: str, outputs: dict, out_file=None) -> None:
    """The table `run` prints for a model's or a bundle's outputs (shape, dtype, range,
    the first argmaxes), and the outputs saved to ``out_file`` when given."""
    from rich.table import Table

    table = Table(title=title)
    for col in ("output", "shape", "dtype", "min", "max", "argmax (first 8)"):
        table.add_column(col)
    for name, v in outputs.items():
        am = ""
        if v.ndim >= 2 and v.shape[-1] > 1:
            am = " ".join(str(int(a)) for a in v.reshape(-1, v.shape[-1]).argmax(-1)[:8])
        table.add_row(name, str(list(v.shape)), str(v.dtype), f"{v.min():.6g}", f"{v.max():.6g}", am)
    console.print(table)
    if out_file:
        save_arrays(out_file, outputs)
        console.print(f"wrote {out_file}")

