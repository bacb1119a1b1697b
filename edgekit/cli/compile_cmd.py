"""``edgekit compile``: a model -> a bundle for any target (docs/bundle-format.md): for a
microcontroller the model package and the generated C (under ``c/``), for a Linux-class
target the model file of the chosen engine."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from edgekit.cli.common import input_shape_option, load_model_cli, make_console, output_dir, output_file
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
@click.option("--backend", "-b", type=click.Choice(["auto", "litert", "onnxruntime", "c", "tvm", "tensorrt"]),
              default="auto",
              show_default=True, help="auto: the C backend for microcontrollers; for Linux targets the fastest "
              "backend measured on this machine when it is the target, else from the target's latency table, "
              "else the rule in docs/bundle-format.md (printed). litert / onnxruntime / tvm: Linux targets (tvm: float "
              "models, needs the tvm extra). tensorrt: targets with an NVIDIA GPU (Jetson): the ONNX, built into a "
              "TensorRT engine on the device, onnxruntime where TensorRT is absent.")
@click.option("--out", "-o", "out_dir", metavar="DIR|FILE.ekb",
              help="Output bundle: a folder, or one .ekb archive file (default: ./<model>-<target>).")
@click.option("--model-version", metavar="TEXT", help="Version string stored in the bundle manifest.")
@click.option("--flash", metavar="SIZE", help="Flash size to check against instead of the target's, e.g. 256KiB.")
@click.option("--sram", metavar="SIZE", help="SRAM size to check against instead of the target's, e.g. 64KiB.")
@click.option("--variant", type=click.Choice(["auto", "portable", "dsp", "mve"]), default="auto",
              show_default=True, help="Kernel variant: by target features, portable C, Arm DSP, or Helium (MVE).")
@click.option("--targets-dir", "targets_dirs", multiple=True, metavar="DIR",
              type=click.Path(path_type=Path), help="Extra folder of target .toml files.")
@click.option("--tune-trials", type=click.IntRange(min=1), metavar="N",
              help="--backend tvm: MetaSchedule measures N candidate schedules in all, on this machine (the target "
              "must run here); kernels already in the tuning database are not searched again.")
@click.option("--tune-db", metavar="DIR", type=click.Path(path_type=Path, file_okay=False),
              help="Tuning database folder for --tune-trials, one subfolder per TVM target "
              "(default: $XDG_CACHE_HOME/edgekit/tvm-tuning).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest summary as JSON.")
@input_shape_option
def compile_cmd(model, target, calib, calib_limit, backend, out_dir, model_version, flash, sram, variant,
                targets_dirs, tune_trials, tune_db, as_json, input_shapes):
    """Compile MODEL into a bundle for TARGET (a folder, or FILE.ekb): manifest.json with
    hashes, golden vectors and the payload. Microcontrollers: the model package and the
    generated C under c/ (exit code 2 when it does not fit the target). Linux targets: the
    .tflite (litert) or .onnx (onnxruntime)."""
    from edgekit.bundle.bundle_writer import check_bundle_output
    from edgekit.bundle.bundle_compiler import compile_bundle
    from edgekit.targets import load_target

    flash_b, sram_b = _size("--flash", flash), _size("--sram", sram)
    if tune_db is not None and tune_trials is None:
        raise BadInputError("--tune-db is the database of --tune-trials: give --tune-trials N as well")
    if tune_trials is not None and backend != "tvm":
        raise BadInputError(f"--tune-trials tunes TVM modules: use it with --backend tvm, not --backend {backend}")
    tgt = load_target(target, list(targets_dirs) or None)
    out_path = out_dir or f"{Path(model).stem}-{tgt.name}"
    if Path(out_path).suffix.lower() == ".ekb":
        out = output_file(out_path, "--out", (".ekb",))
    else:
        out = output_dir(out_path, "--out")
    check_bundle_output(out)
    graph, _ = load_model_cli(model, input_shapes)
    options = {"backend": backend, "calib": calib, "calib_limit": calib_limit, "variant": variant,
               "flash": flash, "sram": sram, "input_shapes": list(input_shapes)}
    if tune_trials is not None:
        options.update({"tune_trials": tune_trials, "tune_db": None if tune_db is None else str(tune_db)})
    if calib:
        graph = _quantized(graph, calib, calib_limit)
    with _tuning_progress(tune_trials) as progress:
        backend_options = None
        if tune_trials is not None:
            from edgekit.backends.tvm import TuningOptions

            backend_options = {"tuning": TuningOptions(tune_trials, tune_db, progress)}
        result = compile_bundle(graph, tgt, out, backend=backend, model_version=model_version, options=options,
                                flash=flash_b, sram=sram_b, variant=variant, backend_options=backend_options)
    if as_json:
        click.echo(json.dumps(_json_summary(result, out), indent=1))
        return
    if result.c_result is not None:
        print_summary(result.c_result)
    else:
        _print_backend_choice(result.manifest["compile"].get("backend_choice"))
        console.print(result.reason, highlight=False)
        _print_tuning((result.manifest["compile"].get("tvm") or {}).get("tuning"))
    _print_bundle(result, out)


class _tuning_progress:
    """A rich progress bar (on stderr) fed by MetaSchedule's measurements; None without tuning."""

    def __init__(self, trials):
        self.trials = trials

    def __enter__(self):
        if self.trials is None:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("MetaSchedule"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            TextColumn("{task.description}"), console=make_console(stderr=True), transient=True)
        self.bar.start()
        self.task = self.bar.add_task("extracting kernels", total=self.trials)

        def update(p):
            best = "" if p.best_us is None else f", best {p.best_us:.1f} us"
            self.bar.update(self.task, completed=p.trials_done, total=p.trials_total,
                            description=f"{p.task}{best}")
        return update

    def __exit__(self, *exc):
        if self.trials is not None:
            self.bar.stop()


def _print_tuning(tuning: dict | None) -> None:
    if not tuning:
        return
    kernels = "-" if tuning["kernel_latency_us"] is None else f"{tuning['kernel_latency_us']:.1f} us"
    console.print(f"tuned: {tuning['trials_run']} trials run, {tuning['kernels_tuned']} of {tuning['kernels']} "
                  f"kernels tuned ({tuning['kernels_from_database']} from the database); best kernels {kernels}, "
                  f"model {tuning['model_us']:.1f} us on this machine; database {tuning['database']}",
                  highlight=False)


def _print_backend_choice(choice: dict | None) -> None:
    """The candidates --backend auto weighed: measured here, or from the target's table."""
    if not choice or choice["method"] == "rule":
        return
    if choice["method"] == "measured on host":
        t = Table(title=f"--backend auto: measured on this machine ({choice['host']['machine']}, 1 thread)")
        for col, just in (("backend", "left"), ("median us", "right"), ("calls", "right"), ("result", "left")):
            t.add_column(col, justify=just)
        for c in choice["candidates"]:
            median = "-" if c["median_us"] is None else f"{c['median_us']:.1f}"
            result = "chosen" if c["backend"] == choice["chosen"] else c["status"]
            why = f": {c['reason']}" if c["reason"] else ""
            t.add_row(c["backend"], median, str(c["calls"] or "-"), result + why)
    else:
        models = list(choice["candidates"][0]["latency_us"])
        src = choice["source"]
        t = Table(title=f"--backend auto: {choice['table']} ({src['machine']}, {src['date']})")
        t.add_column("backend", justify="left")
        for m in models:
            t.add_column(f"{m} us", justify="right")
        t.add_column("x fastest", justify="right")
        for c in choice["candidates"]:
            t.add_row(c["backend"] + (" (chosen)" if c["backend"] == choice["chosen"] else ""),
                      *(f"{c['latency_us'][m]:g}" for m in models), f"{c['relative_to_fastest']:.2f}")
    console.print(t)


def _quantized(graph, calib: str, calib_limit):
    from edgekit.bundle.bundle_backends import is_int8
    from edgekit.quantize import load_dataset, quantize

    if is_int8(graph):
        raise BadInputError(f"--calib: model {graph.name!r} is already int8; --calib quantizes a float model")
    calib_x = load_dataset(calib, input_shape=_source_shape(graph), limit=calib_limit).x
    return quantize(graph, calib_x).graph


def _json_summary(result, out: Path) -> dict:
    m = result.manifest
    doc = {"bundle": str(out), "format_version": m["format_version"], "target": m["target"],
           "backend": m["backend"], "engine": m["engine"], "backend_reason": result.reason,
           "backend_choice": m["compile"].get("backend_choice"), "tvm": m["compile"].get("tvm"),
           "model": m["model"], "inputs": m["inputs"], "outputs": m["outputs"], "figures": m["figures"],
           "files": m["files"]}
    if result.c_result is not None:
        c = result.c_result.manifest
        doc.update({k: c[k] for k in ("variant", "arena_bytes", "stack_bytes", "flash", "placement", "kernels",
                                      "macs", "fit")})
        doc["out_dir"] = str(out)
    return doc


def _print_bundle(result, out: Path) -> None:
    from edgekit.cli.common import human_bytes

    m = result.manifest
    size = sum(f["size"] for f in m["files"].values())
    files = ", ".join(sorted(m["files"])) if len(m["files"]) <= 4 else f"{len(m['files'])} files"
    console.print(f"wrote bundle {out}: {m['model']['name']} for {m['target']}, backend {m['backend']}, "
                  f"engine {m['engine']}; {files} ({human_bytes(size)}), {m['golden']['count']} golden vectors",
                  highlight=False)


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
    console.print(f"generated C in c/ (model.c, model.h, {len(m['build']['sources']) - 1} "
                  f"kernel sources, manifest.json, report.html)")
