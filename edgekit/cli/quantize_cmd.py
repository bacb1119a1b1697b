"""``edgekit quantize``: float model -> int8 model, with an accuracy report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from edgekit.cli.common import (input_shape_option, load_model_cli, make_console, output_dir, output_file,
                                write_text_atomic)

console = make_console()

METHODS = ("auto", "minmax", "percentile", "mse", "entropy")


def data_options(f):
    for opt in reversed([
        click.option("--scale", type=float, help="Preprocessing: x = x * SCALE - MEAN (scale first)."),
        click.option("--mean", type=float, help="Preprocessing: value subtracted after scaling."),
        click.option("--data-layout", "data_layout", type=click.Choice(["nhwc->nchw", "nchw->nhwc"]),
                     help="Transpose 4-D data to the model's layout."),
    ]):
        f = opt(f)
    return f


@click.command()
@click.argument("model")
@click.option("--calib", required=True, metavar="DATA",
              help="Calibration data: .npz (x[, y]), .npy, a folder of .npy, or module:function.")
@click.option("--eval", "eval_spec", metavar="DATA", help="Evaluation data (with labels y for top-1 / AUC).")
@click.option("--out", "-o", "out_path", required=True, metavar="FILE",
              help="Quantized model: .tflite, or .json for edgekit IR.")
@click.option("--method", type=click.Choice(METHODS), default="minmax", show_default=True,
              help="Activation range calibration; 'auto' picks per tensor by the smallest output error.")
@click.option("--percentile", type=float, default=99.99, show_default=True, help="For --method percentile.")
@click.option("--per-tensor", is_flag=True, help="Per-tensor weight scales instead of per-channel.")
@click.option("--io", type=click.Choice(["int8", "float"]), default="int8", show_default=True,
              help="int8 inputs/outputs, or float ones with QUANTIZE/DEQUANTIZE at the edges.")
@click.option("--bias-correction", is_flag=True,
              help="Empirical bias correction (off by default: it did not help the MLPerf models).")
@click.option("--calib-limit", type=int, metavar="N", help="Use the first N calibration samples.")
@click.option("--eval-limit", type=int, metavar="N", help="Evaluate on the first N samples.")
@click.option("--metric", type=click.Choice(["auto", "top1", "recon_mse", "auc", "output_mse"]), default="auto",
              show_default=True, help="Accuracy metric of the report.")
@click.option("--report", "report_dir", metavar="DIR", help="Write report.json and report.html there.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@data_options
@input_shape_option
def quantize(model, calib, eval_spec, out_path, method, percentile, per_tensor, io, bias_correction,
             calib_limit, eval_limit, metric, report_dir, as_json, scale, mean, data_layout, input_shapes):
    """Quantize MODEL to int8 (TFLite int8 scheme) and report its accuracy against float."""
    from rich.progress import Progress

    from edgekit.quantize import load_dataset
    from edgekit.quantize import quantize as run_quantize
    from edgekit.quantize.report import build_report, check_labels, choose_metric, print_report, report_html

    out = output_file(out_path, "--out", (".tflite", ".json"))
    report_out = output_dir(report_dir, "--report") if report_dir else None
    graph, _ = load_model_cli(model, input_shapes)
    t_in = graph.input_tensors()[0]
    source_shape = _source_shape(graph, t_in)
    prep = dict(input_shape=source_shape, scale=scale, mean=mean, layout=data_layout)
    calib_ds = load_dataset(calib, limit=calib_limit, **prep)
    eval_ds = load_dataset(eval_spec, limit=eval_limit, **prep) if eval_spec else None
    ds = eval_ds or calib_ds
    # Labels the report cannot score are bad input: refuse them before quantizing.
    check_labels(graph, ds.y, choose_metric(graph, ds.y, metric))

    t0 = time.perf_counter()
    with Progress(console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task("calibrating", total=None)

        def tick(done, total):
            progress.update(task, completed=done, total=total)

        result = run_quantize(graph, calib_ds.x, method=method, per_channel=not per_tensor, io=io,
                              bias_correction=bias_correction, percentile=percentile, progress=tick)
    q_seconds = time.perf_counter() - t0
    _write(result.graph, out)

    with Progress(console=console, transient=True, disable=as_json) as progress:
        task = progress.add_task("evaluating layers", total=None)
        rep = build_report(result.float_graph, result.graph, ds.x, ds.y, metric=metric, model=Path(model).name,
                              source=ds.source + ("" if eval_ds else " (calibration data: pass --eval)"),
                              methods=getattr(result, "methods", None),
                              progress=lambda d, t: progress.update(task, completed=d, total=t))
    rep.extra["quantize_seconds"] = round(q_seconds, 3)
    rep.extra["calibration_samples"] = int(len(calib_ds.x))
    if out.suffix == ".tflite":
        rep.extra["tflite_bytes"] = out.stat().st_size
    doc = rep.to_dict()
    doc = _finite(doc)
    doc.update(method=method, io=io, per_channel=not per_tensor, bias_correction=bias_correction,
               output=str(out))
    if report_out is not None:
        write_text_atomic(report_out / "report.json", json.dumps(doc, indent=1, default=_json_default))
        write_text_atomic(report_out / "report.html", report_html(rep))
    if as_json:
        click.echo(json.dumps(doc, indent=1, default=_json_default))
        return
    print_report(rep, console)
    console.print(f"quantized in {q_seconds:.1f} s with method {method}; wrote {out}"
                  + (f" and {report_out / 'report.html'}" if report_out is not None else ""))


def _json_default(v):
    return str(v)


def _finite(obj):
    """JSON has no inf/nan: a lossless layer (inf dB) is written as null."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _source_shape(graph, t) -> tuple[int, ...]:
    shape = tuple(t.shape)
    if graph.metadata.get("io_layout", {}).get(t.name) == "NCHW" and len(shape) == 4:
        n, h, w, c = shape
        return (n, c, h, w)
    return shape


def _write(graph, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".tflite":
        from edgekit.backends.tflite import write_tflite

        write_tflite(graph, out)
    else:
        from edgekit.ir import save

        save(graph, out)
