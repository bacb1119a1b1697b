"""``edgekit compress``: prune, distill and quantize a PyTorch model, with a report."""

from __future__ import annotations

import re

import click

from edgekit.cli.common import make_console, output_dir
from edgekit.errors import BadInputError

_COUNT_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*$")


def parse_count(value: str, option: str) -> int:
    """``250000``, ``250k``, ``1.5M`` -> an integer count."""
    m = _COUNT_RE.match(str(value))
    if not m:
        raise BadInputError(f"{option} {value!r}: expected a count like 250000, 250k or 1.5M")
    n = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    if n < 1:
        raise BadInputError(f"{option} {value!r}: must be at least 1")
    return int(round(n))


@click.command()
@click.argument("model")
@click.option("--data", "data_spec", required=True, metavar="DATA",
              help="Training data: .npz with x and y (y left out: autoencoder), or module:function.")
@click.option("--val", "val_spec", metavar="DATA", help="Validation data (default: 20% of --data held out).")
@click.option("--test", "test_spec", metavar="DATA", help="Test data the report's accuracies come from "
              "(default: the validation data).")
@click.option("--state-dict", "state_dict", metavar="FILE", help="torch.save-d state dict loaded into MODEL.")
@click.option("--ratio", type=float, help="Share of the channels of every prunable layer to remove, e.g. 0.5.")
@click.option("--target", "target", metavar="NAME", help="Fit this target's flash and SRAM (targets/*.toml); "
              "with --ratio/--macs/--params only the report's cycle estimates use it.")
@click.option("--sram", metavar="SIZE", help="SRAM budget for the planned int8 arena, e.g. 256KiB.")
@click.option("--flash", metavar="SIZE", help="Flash budget for the int8 model, e.g. 1MiB.")
@click.option("--macs", "macs", metavar="N", help="Prune to at most N MACs per inference (e.g. 2M).")
@click.option("--params", "params", metavar="N", help="Prune to at most N parameters (e.g. 50k).")
@click.option("--student", metavar="SPEC", help="Distill into this architecture (file.py:factory) instead of "
              "pruning MODEL.")
@click.option("--importance", type=click.Choice(["magnitude", "l1", "l2", "taylor", "bn"]), default="magnitude",
              show_default=True, help="How channels are ranked (magnitude = L2 norm of the weights).")
@click.option("--global", "global_pruning", is_flag=True,
              help="Rank channels across all layers (each keeps >= 10%) instead of the same ratio per layer.")
@click.option("--ignore", "ignored", metavar="LAYER", multiple=True, help="Never prune this module (repeatable).")
@click.option("--layer-ratio", "layer_ratio", metavar="LAYER=R", multiple=True,
              help="Own ratio for one layer (repeatable); other layers take --ratio (default 0).")
@click.option("--steps", type=int, default=3, show_default=True, help="Pruning steps, fine-tuning between them.")
@click.option("--no-distill", is_flag=True, help="Fine-tune with hard labels only.")
@click.option("--qat", is_flag=True, help="Quantization-aware fine-tuning in edgekit's int8 scheme.")
@click.option("--epochs", type=int, default=30, show_default=True, help="Epochs of fine-tuning and distillation.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--alpha", type=float, default=0.7, show_default=True, help="Weight of the distillation loss.")
@click.option("--temperature", type=float, default=4.0, show_default=True, help="Distillation temperature.")
@click.option("--feature-layers", metavar="A,B", help="Modules whose outputs the student matches too.")
@click.option("--feature-weight", type=float, default=1.0, show_default=True,
              help="Weight of the feature loss (with --feature-layers).")
@click.option("--out", "-o", "out_dir", default="compressed", show_default=True, metavar="DIR",
              help="Output folder: model.pt2, model.onnx, model_int8.json, report.json/html, checkpoints/.")
@click.option("--resume/--fresh", "resume", default=None,
              help="Resume from the checkpoints in --out (error if none fit) / start over. Default: resume "
                   "when a checkpoint of the same configuration exists.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--metric", type=click.Choice(["auto", "top1", "mse"]), default="auto", show_default=True,
              help="top1 for classifiers, mse for regression and autoencoders.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def compress(model, data_spec, val_spec, test_spec, state_dict, ratio, target, sram, flash, macs, params, student,
             importance, global_pruning, ignored, layer_ratio, steps, no_distill, qat, epochs, lr, batch_size, alpha,
             temperature, feature_layers, feature_weight, out_dir, resume, seed, metric, as_json):
    """Make MODEL (file.py:factory or .pt2) smaller before int8: structured pruning, knowledge
    distillation, optional QAT; writes the compressed model and a report."""
    from edgekit.compress.pipeline import compress as run_compress
    from edgekit.compress.pipeline import print_result
    from edgekit.compress.report import to_json

    console = make_console()  # per run: the terminal width of this invocation
    layer_ratios = {}
    for item in layer_ratio:
        name, sep, value = item.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            layer_ratios[name.strip()] = float(value)
        except ValueError:
            raise BadInputError(f"--layer-ratio {item!r}: expected LAYER=RATIO, e.g. conv1=0.3") from None
    goals = [n for n, v in (("--ratio", ratio if ratio is not None or not layer_ratios else 0.0), ("--macs", macs),
                            ("--params", params)) if v is not None]
    if len(goals) > 1:
        raise BadInputError(f"give one of --ratio, --macs, --params, not {' and '.join(goals)}")
    if (sram or flash) and goals:
        raise BadInputError(f"--sram/--flash set a memory budget; drop {goals[0]} or the budget")
    if (sram or flash) and target is None:
        target = "cortex-m4"
    if not goals and target is None and student is None:
        raise BadInputError("say how small: --ratio R, --macs N, --params N, --target T [--sram SIZE], "
                            "or --student SPEC")
    layers = tuple(s.strip() for s in (feature_layers or "").split(",") if s.strip())
    output_dir(out_dir, "--out")
    result = run_compress(
        model, data_spec, val=val_spec, test=test_spec, state_dict=state_dict, student=student, ratio=ratio,
        target=target, sram=sram, flash=flash,
        target_macs=parse_count(macs, "--macs") if macs is not None else None,
        target_params=parse_count(params, "--params") if params is not None else None,
        importance=importance, global_pruning=global_pruning, ignored_layers=list(ignored) or None,
        layer_ratios=layer_ratios or None, steps=steps,
        distill=not no_distill, qat=qat, epochs=epochs, lr=lr, batch_size=batch_size, alpha=alpha,
        temperature=temperature, feature_layers=layers, feature_weight=feature_weight if layers else 0.0,
        out_dir=out_dir, resume=resume, seed=seed, metric=metric,
        progress=None if as_json else console, console=None if as_json else console)
    if as_json:
        click.echo(to_json(result.to_dict()))
        return
    print_result(result, console)
    console.print(f"done in {result.seconds:.1f} s")
