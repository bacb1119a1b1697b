"""``edgekit demo``: the main job on the bundled model, with no arguments and no download."""

from __future__ import annotations

import time
from importlib import resources

import click
import numpy as np
from rich.table import Table

from edgekit.cli.common import make_console

console = make_console()


def bundled(name: str) -> str:
    return str(resources.files("edgekit") / "data" / name)


@click.command()
def demo() -> None:
    """Import the bundled digits CNN, show its layers and run it on held-out digits."""
    from edgekit.cli.model_cmds import print_inspect
    from edgekit.frontends import load_model
    from edgekit.reference.interpreter import Interpreter

    model = bundled("digits_cnn.onnx")
    console.rule("[bold]1. import[/bold]")
    t0 = time.perf_counter()
    graph = load_model(model)
    seconds = time.perf_counter() - t0
    console.print(f"{model}\n-> edgekit IR: {len(graph.ops)} ops after folding batch norm, fusing "
                  "activations and moving NCHW to NHWC")
    print_inspect(graph, seconds, console)

    console.rule("[bold]2. run on held-out digits (numpy reference interpreter)[/bold]")
    with np.load(bundled("digits_samples.npz")) as z:
        x, y = z["x"], z["y"]
    t0 = time.perf_counter()
    probs = Interpreter(graph).run({graph.inputs[0]: x}, layout="source")[graph.outputs[0]]
    ms = (time.perf_counter() - t0) * 1000
    pred = probs.argmax(-1)
    table = Table(title=f"{len(x)} digits in {ms:.1f} ms")
    table.add_column("digit")
    table.add_column("true", justify="right")
    table.add_column("predicted", justify="right")
    table.add_column("confidence", justify="right")
    for i in range(min(len(x), 4)):
        art = _ascii(x[i, 0])
        ok = "[green]" if pred[i] == y[i] else "[red]"
        table.add_row(art, str(y[i]), f"{ok}{pred[i]}", f"{probs[i, pred[i]]:.3f}")
    console.print(table)
    console.print(f"accuracy on the {len(x)} bundled held-out digits: "
                  f"[bold]{(pred == y).mean() * 100:.1f}%[/bold]")


def _ascii(img: np.ndarray) -> str:
    shades = " .:-=+*#"
    rows = []
    for r in img:
        rows.append("".join(shades[min(int(v * (len(shades) - 1) + 0.5), len(shades) - 1)] * 2 for v in r))
    return "\n".join(rows)
