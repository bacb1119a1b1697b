"""``edgekit run BUNDLE`` (``run`` dispatches here when its argument is a bundle) and
``edgekit bench BUNDLE``: a bundle run through the device runtime (docs/runtime.md).
Nothing here imports the compiler: these commands are what a device runs."""

from __future__ import annotations

import json
import resource
import sys
import time

import click
import numpy as np
from rich.table import Table

from edgekit.cli.common import load_arrays, make_console, output_file, print_outputs
from edgekit.errors import BadInputError

console = make_console()

target_option = click.option("--target", "-t", "target", metavar="NAME",
                             help="Refuse the bundle unless it was compiled for this target.")
engine_option = click.option(
    "--engine-option", "engine_options", multiple=True, metavar="KEY=VALUE",
    help="Engine option (repeatable), e.g. op_resolver=reference (litert), graph_optimization=disable "
         "(onnxruntime), num_threads=1.")


def parse_engine_options(values) -> dict:
    opts = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not sep or not key:
            raise BadInputError(f"--engine-option {v!r}: expected KEY=VALUE, e.g. num_threads=1")
        opts[key] = int(value) if value.isdigit() else value
    return opts


def open_model(bundle: str, target, engine_options):
    import edgekit.runtime

    return edgekit.runtime.open(bundle, target=target, engine_options=parse_engine_options(engine_options))


def bind_inputs(model, data) -> list:
    """Arrays from an .npy/.npz -> one feed dict per sample. An array with the input's
    exact shape is one sample; with a batch-1 input, an array of N samples along the
    first axis is N. Refuses wrong dtypes and shapes, and NaN or infinite floats."""
    names = [s.name for s in model.inputs]
    if isinstance(data, np.ndarray):
        if len(names) != 1:
            raise BadInputError(f"the bundle's model has {len(names)} inputs {names}: give an .npz with one "
                                "array per input name")
        arrays = {names[0]: data}
    elif set(names) <= set(data):
        arrays = {n: data[n] for n in names}
    elif len(names) == 1 and len(data) == 1:
        arrays = {names[0]: next(iter(data.values()))}
    elif len(names) == 1 and "x" in data:
        arrays = {names[0]: data["x"]}
    else:
        raise BadInputError(f"the .npz holds {sorted(data)}; the bundle's inputs are {names}")
    counts = set()
    for spec in model.inputs:
        x = arrays[spec.name]
        if x.dtype != spec.dtype:
            raise BadInputError(f"input {spec.name!r} is {x.dtype}; the bundle takes {spec.dtype} (convert it "
                                "first; for int8 inputs quantize with the manifest's scale and zero point)")
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise BadInputError(f"input {spec.name!r} holds NaN or infinite values")
        if x.shape == spec.shape:
            counts.add(None)
        elif spec.shape and spec.shape[0] == 1 and x.shape[1:] == spec.shape[1:] and x.ndim == len(spec.shape):
            counts.add(x.shape[0])
        else:
            raise BadInputError(f"input {spec.name!r} has shape {list(x.shape)}; the bundle takes "
                                f"{list(spec.shape)} (or N samples of it along the first axis)")
    if len(counts) > 1:
        raise BadInputError("the inputs hold different numbers of samples")
    n = counts.pop()
    if n is None:
        return [{k: np.ascontiguousarray(v) for k, v in arrays.items()}]
    return [{k: np.ascontiguousarray(v[i:i + 1]) for k, v in arrays.items()} for i in range(n)]


def run_bundle(bundle: str, input_path: str, out_path, target, engine_options) -> None:
    out_file = output_file(out_path, "--out", (".npy", ".npz")) if out_path else None
    model = open_model(bundle, target, engine_options)
    with model:
        feeds = bind_inputs(model, load_arrays(input_path))
        t0 = time.perf_counter()
        results = [model.run(f) for f in feeds]
        seconds = time.perf_counter() - t0
        engine = model.describe()
    outputs = {n: (results[0][n] if len(results) == 1 else np.concatenate([r[n] for r in results]))
               for n in results[0]}
    print_outputs(console, f"outputs of {model.manifest['model']['name']} on {engine} "
                           f"({len(feeds)} sample(s), {seconds * 1000:.2f} ms)", outputs, out_file)


def _sample_feeds(model) -> dict:
    golden = model.bundle.golden()
    if golden is not None:
        return {s.name: np.ascontiguousarray(a[0]) for s, a in zip(model.inputs, golden[0])}
    return {s.name: np.zeros(s.shape, s.dtype) for s in model.inputs}


def peak_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024   # Linux reports KiB


@click.command("bench")
@click.argument("bundle")
@click.option("--runs", type=click.IntRange(1, 10_000_000), default=1000, show_default=True,
              help="Timed inferences.")
@click.option("--warmup", type=click.IntRange(0, 1_000_000), default=50, show_default=True,
              help="Untimed inferences first.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@target_option
@engine_option
def bench(bundle: str, runs: int, warmup: int, as_json: bool, target, engine_options) -> None:
    """Time BUNDLE on its engine: p50/p99 latency per inference, cold start (bundle load to
    first result, the engine library's import included when it is the first), peak RSS of
    this process."""
    from edgekit.bundle import is_bundle_path

    if not is_bundle_path(bundle):
        raise BadInputError(f"{bundle}: not a bundle (a folder with manifest.json or an .ekb file); "
                            "compile one with `edgekit compile MODEL --target T`")
    t0 = time.perf_counter()
    model = open_model(bundle, target, engine_options)
    with model:
        feeds = _sample_feeds(model)
        model.run(feeds)
        cold = time.perf_counter() - t0
        for _ in range(warmup):
            model.run(feeds)
        lat = np.empty(runs)
        run = model.run
        clock = time.perf_counter
        for i in range(runs):
            s = clock()
            run(feeds)
            lat[i] = clock() - s
        figures = {
            "bundle": bundle, "model": model.manifest["model"]["name"], "target": model.manifest["target"],
            "engine": model.engine, "engine_detail": model.describe(), "runs": runs, "warmup": warmup,
            "p50_us": float(np.percentile(lat, 50) * 1e6), "p99_us": float(np.percentile(lat, 99) * 1e6),
            "mean_us": float(lat.mean() * 1e6), "min_us": float(lat.min() * 1e6),
            "open_ms": model.open_seconds * 1e3, "cold_start_ms": cold * 1e3, "peak_rss_bytes": peak_rss_bytes(),
        }
    if as_json:
        click.echo(json.dumps(figures, indent=1))
        return
    t = Table(title=f"{figures['model']} for {figures['target']} on {figures['engine_detail']}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_row("latency p50", f"{figures['p50_us']:,.1f} us")
    t.add_row("latency p99", f"{figures['p99_us']:,.1f} us")
    t.add_row("latency mean / min", f"{figures['mean_us']:,.1f} / {figures['min_us']:,.1f} us")
    t.add_row("cold start (load to first result)", f"{figures['cold_start_ms']:,.1f} ms")
    t.add_row("  of which open + verify", f"{figures['open_ms']:,.1f} ms")
    t.add_row("peak RSS (this process)", f"{figures['peak_rss_bytes'] / 2**20:,.1f} MiB")
    t.add_row("runs (warm-up)", f"{runs:,} ({warmup:,})")
    console.print(t)
