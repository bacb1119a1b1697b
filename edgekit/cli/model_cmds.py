"""``edgekit inspect``, ``edgekit run`` and ``edgekit convert``."""

from __future__ import annotations

import json

import click
import numpy as np
from rich.console import Console
from rich.table import Table

from edgekit.cli import bundle_cmds
from edgekit.cli.compiler_check import require_compiler
from edgekit.cli.common import (make_console, human_bytes, human_count, input_shape_option, load_arrays,
                                load_model_cli, output_file, quantize_float_feeds, quantize_inputs_option,
                                print_outputs, save_arrays)
from edgekit.errors import BadInputError, UnsupportedOpError

console = make_console()


def print_inspect(graph, load_seconds: float | None = None, con: Console | None = None) -> None:
    from edgekit.ir.stats import graph_stats

    con = con or console
    st = graph_stats(graph)
    table = Table(title=f"{graph.name}  ({graph.metadata.get('source_format', 'ir')})", show_lines=False)
    for col, just in (("#", "right"), ("op", "left"), ("input", "left"), ("output", "left"),
                      ("dtype", "left"), ("params", "right"), ("MACs", "right"), ("act. bytes", "right")):
        table.add_column(col, justify=just, no_wrap=col in ("op", "output", "params", "MACs"))
    for layer in st.layers:
        op = layer.op + (f"+{layer.activation}" if layer.activation not in ("", "NONE") else "")
        table.add_row(str(layer.index), op, " ".join(_shape(s) for s in layer.inputs), _shape(layer.output),
                      layer.dtype, f"{layer.params:,}", f"{layer.macs:,}", f"{layer.activation_bytes:,}")
    table.add_section()
    table.add_row("", "total", "", "", "", f"{st.params:,}", f"{st.macs:,}", "")
    con.print(table)
    ins = ", ".join(f"{t.name} {list(t.shape)} {t.dtype.value}" for t in graph.input_tensors())
    outs = ", ".join(f"{t.name} {list(t.shape)} {t.dtype.value}" for t in graph.output_tensors())
    con.print(f"inputs: {ins}\noutputs: {outs}")
    con.print(f"{len(st.layers)} ops, {st.params:,} parameters ({human_bytes(st.param_bytes)}), "
              f"{human_count(st.macs)} MACs, largest activation {human_bytes(st.largest_activation_bytes)}, "
              f"activations live at once (unshared) {human_bytes(st.peak_live_bytes)}"
              + (f", imported in {load_seconds * 1000:.0f} ms" if load_seconds is not None else ""))


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


@click.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the per-layer table as JSON.")
@input_shape_option
def inspect(model: str, as_json: bool, input_shapes: tuple[str, ...]) -> None:
    """Show the per-layer table of MODEL: op, shapes, params, MACs, activation bytes."""
    from edgekit.ir.stats import graph_stats

    try:
        graph, seconds = load_model_cli(model, input_shapes)
    except UnsupportedOpError as exc:
        uses = _report_unsupported(model, input_shapes, as_json)
        if len(uses) < 2:
            raise
        names = ", ".join(f"{u.op} ({len(u.nodes)}x)" for u in uses)
        raise BadInputError(f"{model}: {len(uses)} unsupported operators: {names} (what to try: "
                            f"{'the JSON above' if as_json else 'the table above'})") from exc
    gaps = backend_gaps(graph)
    if as_json:
        doc = graph_stats(graph).to_dict()
        doc["backend_gaps"] = gaps
        doc.update(name=graph.name, source_format=graph.metadata.get("source_format"),
                   inputs=[{"name": t.name, "shape": list(t.shape), "dtype": t.dtype.value}
                           for t in graph.input_tensors()],
                   outputs=[{"name": t.name, "shape": list(t.shape), "dtype": t.dtype.value}
                            for t in graph.output_tensors()],
                   import_seconds=round(seconds, 4))
        click.echo(json.dumps(doc, indent=1))
        return
    print_inspect(graph, seconds)
    for backend, (ops, hint) in gaps.items():
        console.print(f"{backend} lacks {', '.join(ops)}: {hint}")


def backend_gaps(graph) -> dict[str, tuple[list[str], str]]:
    """Per backend, the model's op types it cannot lower, and what to use instead."""
    from edgekit.backends.c.params import SUPPORTED_OPS as C_OPS
    from edgekit.backends.onnx.writer import SUPPORTED_IR_OPS as ONNX_OPS
    from edgekit.backends.tflite.writer import SUPPORTED_IR_OPS as TFLITE_OPS

    used = sorted({op.type.value for op in graph.ops})
    c_ops = {t.value for t in C_OPS}
    gaps = {}
    for backend, have, hint in (
            ("the C backend (MCU targets)", c_ops,
             "compile for a Linux board (LiteRT or onnxruntime bundle) or decompose these ops"),
            ("the .tflite writer", set(TFLITE_OPS), "write ONNX, or compile C for an MCU target"),
            ("the ONNX writer", set(ONNX_OPS), "write .tflite, or compile C for an MCU target")):
        missing = [t for t in used if t not in have]
        if missing:
            gaps[backend] = (missing, hint)
    return gaps


def _report_unsupported(model: str, input_shapes, as_json: bool) -> list:
    """Name every operator of the model edgekit cannot import (the import error names
    only the first), with its nodes and what to try; returns them."""
    from edgekit.cli.common import parse_input_shapes
    from edgekit.frontends.survey import MAX_NODES_SHOWN, unsupported_ops

    try:
        uses = unsupported_ops(model, input_shapes=parse_input_shapes(input_shapes))
    except Exception:  # noqa: BLE001 - the survey is extra; the import error stands on its own
        return []
    if not uses:
        return []
    if as_json:
        click.echo(json.dumps({"model": model, "unsupported": [u.to_dict() for u in uses]}, indent=1))
        return uses
    table = Table(title=f"{model}: {len(uses)} unsupported operator(s)")
    for col in ("op", "nodes", "why", "what to try"):
        table.add_column(col, overflow="fold")
    for u in uses:
        nodes = ", ".join(u.nodes[:MAX_NODES_SHOWN])
        if len(u.nodes) > MAX_NODES_SHOWN:
            nodes += f" (+{len(u.nodes) - MAX_NODES_SHOWN} more)"
        table.add_row(u.op, f"{len(u.nodes)}: {nodes}", u.detail, u.hint)
    console.print(table)
    return uses


def _bind_run_inputs(graph, data):
    if isinstance(data, np.ndarray):
        if len(graph.inputs) != 1:
            raise BadInputError(f"the model has {len(graph.inputs)} inputs {graph.inputs}: "
                                "give an .npz with one array per input name")
        return {graph.inputs[0]: data}
    if set(graph.inputs) <= set(data):
        return {n: data[n] for n in graph.inputs}
    if len(graph.inputs) == 1:
        for key in ("x", "input", "inputs"):
            if key in data:
                return {graph.inputs[0]: data[key]}
        if len(data) == 1:
            return {graph.inputs[0]: next(iter(data.values()))}
    raise BadInputError(f"the .npz holds {sorted(data)}; the model's inputs are {graph.inputs}")


@click.command()
@click.argument("model")
@click.option("--input", "-i", "input_path", required=True, metavar="FILE",
              help=".npy (single-input models) or .npz (one array per input name, or 'x').")
@bundle_cmds.target_option
@bundle_cmds.engine_option
@click.option("--out", "-o", "out_path", metavar="FILE",
              help="Write outputs: .npy (first output) or .npz (all outputs by name).")
@click.option("--layout", type=click.Choice(["source", "ir"]), default="source", show_default=True,
              help="Array layout: 'source' = as the original model (NCHW for ONNX/PyTorch), 'ir' = NHWC.")
@click.option("--dump", "dump_path", metavar="FILE.npz", help="Also save every intermediate tensor.")
@quantize_inputs_option
@input_shape_option
def run(model: str, input_path: str, target: str | None, engine_options: tuple[str, ...], out_path: str | None,
        layout: str, dump_path: str | None, quantize_inputs: bool, input_shapes: tuple[str, ...]) -> None:
    """Run MODEL on inputs with the numpy reference interpreter, or a bundle (a folder with
    manifest.json or an .ekb) on its engine through the device runtime."""
    import time

    from edgekit.bundle import is_bundle_path

    if is_bundle_path(model):
        given = [o for o, v in (("--layout", layout != "source"), ("--dump", dump_path),
                                ("--quantize-inputs", quantize_inputs), ("--input-shape", input_shapes)) if v]
        if given:
            raise BadInputError(f"{', '.join(given)}: for model files, not bundles (a bundle's inputs are "
                                "fixed by its manifest)")
        bundle_cmds.run_bundle(model, input_path, out_path, target, engine_options)
        return
    if target or engine_options:
        raise BadInputError("--target and --engine-option are for bundles; MODEL is a model file, run by the "
                            "reference interpreter")
    require_compiler("edgekit run MODEL (a model file, not a bundle)")
    from edgekit.reference.interpreter import Interpreter

    out_file = output_file(out_path, "--out", (".npy", ".npz")) if out_path else None
    dump_file = output_file(dump_path, "--dump", (".npz",)) if dump_path else None
    graph, _ = load_model_cli(model, input_shapes)
    feeds = _bind_run_inputs(graph, load_arrays(input_path))
    if quantize_inputs:
        feeds = quantize_float_feeds(graph, feeds)
    t0 = time.perf_counter()
    result = Interpreter(graph).run(feeds, layout=layout, dump=bool(dump_path))
    seconds = time.perf_counter() - t0
    outputs = {n: result[n] for n in graph.outputs}
    print_outputs(console, f"outputs ({seconds * 1000:.1f} ms)", outputs, out_file)
    if dump_file:
        save_arrays(dump_file, result, npz=True)
        console.print(f"wrote {len(result)} tensors to {dump_file}")


@click.command()
@click.argument("model")
@click.option("--to", "fmt", type=click.Choice(["ir", "tflite", "onnx"]), required=True,
              help="Output format: 'ir' (edgekit IR: JSON + .npz weights), 'tflite' or 'onnx'.")
@click.option("--out", "-o", "out_path", required=True, metavar="PATH", help="Output file.")
@input_shape_option
def convert(model: str, fmt: str, out_path: str, input_shapes: tuple[str, ...]) -> None:
    """Convert MODEL to another format."""
    from edgekit.ir import save

    output_file(out_path, "--out")
    graph, _ = load_model_cli(model, input_shapes)
    if fmt == "ir":
        js, npz = save(graph, out_path)
        console.print(f"wrote {js} and {npz}")
    elif fmt == "tflite":
        from edgekit.backends.tflite import write_tflite

        size = write_tflite(graph, out_path)
        console.print(f"wrote {out_path} ({size:,} bytes)")
    else:
        from edgekit.backends.onnx import write_onnx

        size = write_onnx(graph, out_path)
        console.print(f"wrote {out_path} ({size:,} bytes)")
