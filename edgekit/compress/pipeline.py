"""``compress``: prune -> fine-tune / distill -> (QAT) -> export -> int8, with a report.

Stages, each checkpointed under ``out_dir/checkpoints`` so an interrupted run resumes:

1. teacher: the given model (``file.py:factory`` [+ state dict], ``.pt2``, or ``nn.Module``),
   evaluated on the evaluation split (the test data when given, else validation).
2. prune (unless a student architecture is given): an iterative schedule of ``steps``
   Torch-Pruning steps to the ratio or target, fine-tuning ``step_epochs`` between steps.
3. the pruned model trained twice from the same weights for the same epochs: with hard
   labels only ("pruned", fine-tuned) and with knowledge distillation from the teacher
   ("distilled"); the one with the better validation metric becomes the student.
4. optional QAT of the student with fake quantization in edgekit's int8 scheme.
5. export: ``model.pt2`` (torch.export), ``model.onnx`` (edgekit's ONNX writer of the
   imported IR), ``model_int8.json`` (edgekit IR, int8, ready for the C backend), and
   ``report.json`` / ``report.html``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.compress import distill as kd
from edgekit.compress import prune as pr
from edgekit.compress.data import TrainData, load_train_data
from edgekit.compress.report import ReportRow, instructions_per_mac, print_table, report_html, to_json
from edgekit.errors import BadInputError
from edgekit.files import write_atomic

REFERENCE_TARGET = "cortex-m4"   # cycle estimates when no target is named
CHECKPOINT_FORMAT = 1


@dataclass
class CompressResult:
    model_name: str
    metric: str                         # top1 or mse
    eval_split: str                     # test or val
    target_name: str
    rows: list[ReportRow]
    accuracies: dict[str, float | None]  # teacher, pruned, distilled, student, int8, int8_pruned, qat_int8
    teacher: Any = None                 # torch modules
    pruned: Any = None                  # pruned + fine-tuned with hard labels
    distilled: Any = None
    student: Any = None                 # the exported fp32 model (QAT-baked when qat)
    float_graph: Any = None             # IR of the student
    int8_graph: Any = None              # int8 IR of the student, ready for compile
    files: dict[str, str] = field(default_factory=dict)
    prune_info: dict = field(default_factory=dict)
    training: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    data: Any = None                    # the TrainData used (eval split: data.eval_split)
    chosen: str = ""                    # which fp32 model became the student
    resumed: bool = False
    seconds: float = 0.0

    def row(self, name: str) -> ReportRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"model": self.model_name, "metric": self.metric, "eval_split": self.eval_split,
                "target": self.target_name, "rows": [r.to_dict() for r in self.rows],
                "accuracies": self.accuracies, "files": self.files, "prune": self.prune_info,
                "training": self.training, "notes": self.notes, "student": self.chosen,
                "resumed": self.resumed, "seconds": round(self.seconds, 2)}


# ---------------------------------------------------------------------------------------
# model loading
# ---------------------------------------------------------------------------------------

def load_model_spec(spec, state_dict=None):
    """-> (module, name, prunable). ``.pt2`` programs load as their GraphModule: they run
    and teach, but hold no nn layers to prune."""
    import torch

    from edgekit.frontends.torch_importer import load_state_dict_into, resolve_torch_spec

    module, ep, name = resolve_torch_spec(spec)
    if ep is not None:
        if state_dict is not None:
            raise BadInputError(f"{spec}: a .pt2 program carries its own weights; --state-dict applies to "
                                "'file.py:factory' models")
        return _program_module(torch, ep), name, False
    if state_dict is not None:
        load_state_dict_into(module, state_dict)
    return module, name, True


def _program_module(torch, ep):
    """An nn.Module that runs an ExportedProgram on any batch size (programs are usually
    exported for one batch size: larger batches run in chunks of it) and ignores
    train()/eval() (exported programs refuse them)."""
    specs = [s for s in ep.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    val = nodes[specs[0].arg.name].meta.get("val") if specs else None
    batch = int(val.shape[0]) if val is not None and len(val.shape) and isinstance(val.shape[0], int) else None

    class ProgramModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gm = ep.module()
            self.exported_program = ep

        def train(self, mode: bool = True):
            self.training = mode
            return self

        def forward(self, x):
            if batch is None or x.shape[0] == batch:
                return self.gm(x)
            return torch.cat([self.gm(x[i:i + batch]) for i in range(0, x.shape[0], batch)])

    return ProgramModule()


def _spec_fingerprint(spec, state_dict) -> str:
    import torch

    h = hashlib.sha1()
    if isinstance(spec, torch.nn.Module):
        h.update(type(spec).__name__.encode())
        for k, v in spec.state_dict().items():
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
    else:
        text = str(spec)
        h.update(text.encode())
        file_part = text.rpartition(":")[0] if ":" in text and ".py:" in text else text
        p = Path(file_part)
        if p.is_file():
            h.update(p.read_bytes())
    if state_dict is not None:
        p = Path(state_dict)
        h.update(p.read_bytes() if p.is_file() else str(state_dict).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------

class _Checkpoints:
    def __init__(self, out_dir: Path, key: str, config: dict, resume: bool | None):
        self.dir = out_dir / "checkpoints"
        self.key = key
        cfg_file = self.dir / "config.json"
        old = None
        if cfg_file.is_file():
            try:
                old = json.loads(cfg_file.read_text())
            except (OSError, ValueError):
                old = None
        same = old is not None and old.get("key") == key
        if resume is True and not same:
            if old is None:
                raise BadInputError(f"--resume: no checkpoint in {self.dir} to resume from")
            changed = sorted(k for k in set(config) | set(old.get("config", {}))
                             if config.get(k) != old.get("config", {}).get(k))
            raise BadInputError(f"--resume: the checkpoint in {self.dir} was written for another configuration "
                                f"(differs in: {', '.join(changed) or 'model or data'}); rerun without --resume "
                                "to start over")
        self.resumed = same and resume is not False
        if not self.resumed and self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(cfg_file, lambda f: f.write(json.dumps({"key": key, "format": CHECKPOINT_FORMAT,
                                                             "config": config}, indent=1, default=str).encode()))

    def path(self, stage: str) -> Path:
        return self.dir / f"{stage}.pt"

    def stage_key(self, stage: str) -> str:
        return f"{self.key}:{stage}"


# ---------------------------------------------------------------------------------------
# the pipeline
# ---------------------------------------------------------------------------------------

def compress(spec, data, *, state_dict=None, student=None, ratio: float | None = None, target=None,
             sram=None, flash=None, target_macs: int | None = None, target_params: int | None = None,
             importance: str = "magnitude", global_pruning: bool = False, ignored_layers=None,
             layer_ratios: dict | None = None, steps: int = 3, step_epochs: int | None = None, distill: bool = True,
             epochs: int = 30,
             lr: float = 1e-3, batch_size: int = 64, alpha: float = 0.7, temperature: float = 4.0,
             patience: int = 8, feature_layers=(), feature_weight: float = 0.0, qat: bool = False,
             qat_epochs: int | None = None, qat_lr: float | None = None, out_dir="compressed", seed: int = 0,
             resume: bool | None = None, metric: str = "auto", val=None, test=None, val_fraction: float = 0.2,
             calib_samples: int = 500, progress=None, console=None, on_epoch_end=None) -> CompressResult:
    """Compress a PyTorch model; see the module docstring. Exactly one of ``ratio``,
    ``target_macs``, ``target_params`` or a memory budget (``target`` with optional
    ``sram``/``flash``) selects the pruning; with only ``target`` the model is pruned to
    fit the target's first flash and SRAM regions. ``student`` (a module or spec) skips
    pruning and distills into that architecture. ``resume``: None resumes a checkpoint
    written for the same configuration when there is one, True requires one, False
    starts over. Returns a :class:`CompressResult`; raises BadInputError on bad input.
    """
    import torch

    t_start = time.perf_counter()
    say = (lambda msg: console.print(msg)) if console is not None else (lambda msg: None)
    _check_training_options(steps=steps, epochs=epochs, calib_samples=calib_samples, importance=importance,
                            feature_layers=feature_layers, feature_weight=feature_weight)
    goal = _pruning_goal(ratio=ratio, layer_ratios=layer_ratios, target=target, sram=sram, flash=flash,
                         target_macs=target_macs, target_params=target_params)

    td = load_train_data(data, val=val, test=test, val_fraction=val_fraction, seed=seed, metric=metric)
    teacher, model_name, stu, example = _teacher_and_student(spec, state_dict, student, td, goal)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    step_epochs = max(1, epochs // 10) if step_epochs is None else int(step_epochs)
    qat_epochs = max(2, epochs // 4) if qat_epochs is None else int(qat_epochs)
    config = {
        "model": _spec_fingerprint(spec, state_dict), "student": None if student is None else
        _spec_fingerprint(student, None), "data": td.fingerprint(), "ratio": goal.ratio, "target": goal.target_name,
        "budgets": goal.budgets, "target_macs": target_macs, "target_params": target_params,
        "importance": importance, "global": bool(global_pruning), "ignored": list(ignored_layers or ()),
        "layer_ratios": dict(layer_ratios or {}), "steps": steps,
        "step_epochs": step_epochs, "distill": bool(distill), "epochs": epochs, "lr": lr, "batch_size": batch_size,
        "alpha": alpha, "temperature": temperature, "patience": patience, "feature_layers": list(feature_layers),
        "feature_weight": feature_weight, "qat": bool(qat), "qat_epochs": qat_epochs, "qat_lr": qat_lr,
        "seed": seed, "calib_samples": calib_samples, "torch": torch.__version__,
    }
    key = hashlib.sha1(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    ck = _Checkpoints(out, key, config, resume)
    if ck.resumed:
        say(f"resuming from the checkpoints in {ck.dir}")

    def tcfg(n_epochs: int, *, lr_: float | None = None, teacher: bool = False) -> kd.TrainConfig:
        return kd.TrainConfig(epochs=n_epochs, lr=lr if lr_ is None else lr_, batch_size=batch_size,
                              patience=patience, alpha=alpha, temperature=temperature,
                              feature_layers=tuple(feature_layers) if teacher else (),
                              feature_weight=feature_weight if teacher else 0.0, seed=seed)

    run = _Run(td, ck, example, say, progress, on_epoch_end)
    x_eval, y_eval, eval_name = td.eval_split
    run.acc["teacher"] = kd.evaluate(teacher, x_eval, y_eval, td.metric)
    say(f"teacher {model_name}: {_fmt(td.metric, run.acc['teacher'])} on {eval_name} ({td.summary()})")

    prune_info: dict = {}
    if stu is None:
        stu, prune_info = _prune_stage(teacher, td, example, ck, tcfg, say, run.training, run.notes,
                                       ratio=goal.ratio, budgets=goal.budgets, target_macs=target_macs,
                                       target_params=target_params, features=goal.features, importance=importance,
                                       global_pruning=global_pruning, ignored=ignored_layers,
                                       layer_ratios=layer_ratios, steps=steps, step_epochs=step_epochs,
                                       progress=progress, on_epoch_end=on_epoch_end)
    pruned_ft, distilled = _finetune_and_distill(run, stu, teacher if distill else None, tcfg, epochs)
    chosen_name, final = _choose_student(run, pruned_ft, distilled)

    calib = td.x_train[: min(calib_samples, len(td.x_train))]
    exported = final
    if qat:
        exported = _qat_stage(run, final, calib, tcfg(qat_epochs, lr_=qat_lr if qat_lr is not None else lr / 10,
                                                      teacher=distill), teacher if distill else None)

    exported.eval()
    float_graph = run.float_graph(exported)
    int8_graph, files = _export(out, exported, float_graph, calib, example, prune_info, model_name)
    int8_of_chosen = _int8_accuracies(run, int8_graph, calib, chosen_name, final, pruned_ft, distilled, qat)

    rows = _report_rows(run, goal, teacher, pruned_ft, distilled, int8_of_chosen, int8_graph, chosen_name,
                        pruned=bool(prune_info), qat=qat)
    result = CompressResult(model_name=model_name, metric=td.metric, eval_split=eval_name,
                            target_name=goal.target_name, rows=rows, accuracies=run.acc, teacher=teacher,
                            pruned=pruned_ft, distilled=distilled, student=exported, float_graph=float_graph,
                            int8_graph=int8_graph, files=files, prune_info=prune_info, training=run.training,
                            notes=run.notes, data=td, chosen=chosen_name, resumed=ck.resumed)
    result.seconds = time.perf_counter() - t_start
    _write_reports(result, out)
    return result


# ---------------------------------------------------------------------------------------
# the steps of compress, in the order it runs them
# ---------------------------------------------------------------------------------------

@dataclass
class _Goal:
    """What the pruning aims at, and the target the estimates are for."""

    ratio: float | None
    budgets: dict[str, int]          # "sram" / "flash" -> bytes
    chosen: list[str]                # which of ratio, target_macs, target_params was given
    features: tuple[str, ...]        # of the target (or the reference target) for cost estimates
    target_name: str
    clock_hz: int | None

    @property
    def prunes(self) -> bool:
        return bool(self.chosen or self.budgets)


def _check_training_options(*, steps, epochs, calib_samples, importance, feature_layers, feature_weight) -> None:
    for name, v in (("steps", steps), ("epochs", epochs), ("calib_samples", calib_samples)):
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name != "epochs" else 0):
            raise BadInputError(f"{name} must be a positive integer, got {v!r}")
    if importance not in pr.IMPORTANCES:
        raise BadInputError(f"unknown importance {importance!r}; choose from {', '.join(pr.IMPORTANCES)}")
    if feature_weight and not feature_layers:
        raise BadInputError("a feature loss needs the layers to match (feature_layers)")


def _pruning_goal(*, ratio, layer_ratios, target, sram, flash, target_macs, target_params) -> _Goal:
    """Check the pruning options: one goal, or a memory budget (given, or the target's first
    flash and SRAM regions)."""
    from edgekit.targets import load_target, parse_size

    if layer_ratios and ratio is None:
        ratio = 0.0  # layers without their own ratio are kept whole
    if ratio is not None:
        pr._check_ratio(ratio)
    tgt = load_target(target) if target is not None else None
    budgets: dict[str, int] = {}
    if sram is not None:
        budgets["sram"] = parse_size(sram)
    if flash is not None:
        budgets["flash"] = parse_size(flash)
    chosen = [n for n, v in (("ratio", ratio), ("target_macs", target_macs), ("target_params", target_params))
              if v is not None]
    if len(chosen) > 1:
        raise BadInputError(f"give one pruning goal, not {' and '.join(chosen)}")
    if tgt is not None and not chosen:
        if tgt.memory("flash") and "flash" not in budgets:
            budgets["flash"] = tgt.memory("flash")[0].size
        if tgt.memory("sram") and "sram" not in budgets:
            budgets["sram"] = tgt.memory("sram")[0].size
        if not budgets:
            raise BadInputError(f"target {tgt.name} lists no flash or SRAM to fit; give --sram/--flash, --ratio, "
                                "--macs or --params")
    elif budgets and chosen:
        raise BadInputError(f"give either a memory budget (--sram/--flash) or {chosen[0]}, not both")
    for name, v in (("target_macs", target_macs), ("target_params", target_params)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0):
            raise BadInputError(f"{name} must be a positive number, got {v!r}")
    features = tuple(sorted(tgt.features)) if tgt is not None else tuple(sorted(load_target(REFERENCE_TARGET).features))
    target_name = tgt.name if tgt is not None else REFERENCE_TARGET
    clock_hz = (tgt or load_target(REFERENCE_TARGET)).clock_hz
    return _Goal(ratio, budgets, chosen, features, target_name, clock_hz)


def _teacher_and_student(spec, state_dict, student, td: TrainData, goal: _Goal):
    """-> (teacher in eval mode, its name, a copy of the student or None, example input)."""
    import torch

    teacher, model_name, prunable = load_model_spec(spec, state_dict)
    teacher.eval()
    kd.check_compatible(teacher, td, f"the model {model_name}")
    example = (torch.from_numpy(np.ascontiguousarray(td.x_train[:1])),)
    wants_pruning = student is None and goal.prunes
    if wants_pruning and not prunable:
        raise BadInputError(f"{spec} is a torch.export program: it holds no nn layers Torch-Pruning can prune. "
                            "Give the model as 'file.py:factory' (with --state-dict) to prune it, or give a "
                            "smaller student architecture (--student) to distill into")
    stu = None
    if student is not None:
        stu, stu_name, _ = load_model_spec(student)
        stu = copy.deepcopy(stu)
        kd.check_compatible(stu, td, f"the student {stu_name}")
    if student is None and not wants_pruning:
        raise BadInputError("nothing to compress: give a pruning ratio, a MACs/params target, a target with a "
                            "memory budget, or a student model")
    return teacher, model_name, stu, example


class _Run:
    """What the stages after pruning share: the data, checkpoints, what is measured so far
    (accuracies, training histories, notes) and the IR of each torch model."""

    def __init__(self, td: TrainData, ck: _Checkpoints, example, say, progress, on_epoch_end):
        self.td, self.ck, self.example, self.say = td, ck, example, say
        self.progress, self.on_epoch_end = progress, on_epoch_end
        self.acc: dict[str, float | None] = {}
        self.training: dict[str, dict] = {}
        self.notes: list[str] = []
        self._graphs: dict[int, Any] = {}

    def train(self, model, stage: str, config: kd.TrainConfig, label: str, teacher=None):
        """Train ``model`` in place, checkpointed as ``stage``; its history is kept under that name."""
        r = kd.train(model, self.td, config, teacher=teacher, checkpoint=self.ck.path(stage),
                     key=self.ck.stage_key(stage), label=label, progress=self.progress,
                     on_epoch_end=self.on_epoch_end)
        self.training[stage] = r.to_dict()
        return r

    def evaluate(self, name: str, model) -> float:
        x_eval, y_eval, _ = self.td.eval_split
        self.acc[name] = kd.evaluate(model, x_eval, y_eval, self.td.metric)
        return self.acc[name]

    def int8_metric(self, graph) -> float:
        from edgekit.quantize.report import run_model

        x_eval, y_eval, _ = self.td.eval_split
        o = run_model(graph, x_eval)[graph.outputs[0]]
        return kd.metric_value(o, y_eval, x_eval, self.td.metric)

    def float_graph(self, model):
        """The IR of ``model``; each model is imported once."""
        if id(model) not in self._graphs:
            self._graphs[id(model)] = pr.float_graph_of(model, self.example)
        return self._graphs[id(model)]


def _finetune_and_distill(run: _Run, base_student, teacher, tcfg, epochs: int):
    """Train two copies of ``base_student`` for the same epochs: with hard labels, and (when
    a ``teacher`` is given) distilled from it. -> (fine-tuned, distilled or None)."""
    pruned_ft = copy.deepcopy(base_student)
    r = run.train(pruned_ft, "finetune", tcfg(epochs), "fine-tune")
    run.evaluate("pruned", pruned_ft)
    run.say(f"fine-tuned ({len(r.history)} epochs): {_fmt(run.td.metric, run.acc['pruned'])}")
    distilled = None
    if teacher is not None:
        distilled = copy.deepcopy(base_student)
        r = run.train(distilled, "distill", tcfg(epochs, teacher=True), "distill", teacher=teacher)
        run.evaluate("distilled", distilled)
        run.say(f"distilled ({len(r.history)} epochs): {_fmt(run.td.metric, run.acc['distilled'])}")
    return pruned_ft, distilled


def _choose_student(run: _Run, pruned_ft, distilled):
    """The better of the two on the validation split (the test split stays unseen):
    -> (its name, the model)."""
    if distilled is None:
        chosen_name, final = "pruned", pruned_ft
    else:
        v_ft = run.training["finetune"]["best_val"]
        v_kd = run.training["distill"]["best_val"]
        use_kd = not kd.better(v_ft, v_kd, run.td.metric)
        chosen_name = "distilled" if use_kd else "pruned"
        final = distilled if use_kd else pruned_ft
        if not use_kd:
            run.notes.append("plain fine-tuning scored better than distillation on the validation split, so the "
                             "fine-tuned model is the student")
    run.acc["student"] = run.acc[chosen_name]
    return chosen_name, final


def _qat_stage(run: _Run, final, calib, config: kd.TrainConfig, teacher):
    """A copy of ``final`` trained with fake quantization, the quantization baked in."""
    from edgekit.compress.qat import prepare_qat

    exported = copy.deepcopy(final)
    handle = prepare_qat(exported, run.example, calib_x=calib)
    run.train(exported, "qat", config, "QAT", teacher=teacher)
    handle.finish()
    return exported


def _export(out: Path, exported, float_graph, calib, example, prune_info: dict, model_name: str):
    """Quantize the student and write model.pt2, model.onnx, model_int8.json (and
    pruning.json): -> (int8 graph, {kind: path})."""
    import torch

    from edgekit.backends.onnx import write_onnx
    from edgekit.ir import save as save_ir
    from edgekit.quantize import quantize

    int8_graph = quantize(float_graph, calib).graph
    files = {}
    ep = torch.export.export(exported, example, strict=False)
    torch.export.save(ep, str(out / "model.pt2"))
    files["pt2"] = str(out / "model.pt2")
    write_onnx(float_graph, out / "model.onnx")
    files["onnx"] = str(out / "model.onnx")
    save_ir(int8_graph, out / "model_int8.json")
    files["int8_ir"] = str(out / "model_int8.json")
    if prune_info.get("history") is not None:
        pruning = json.dumps({"history": prune_info["history"], "model": model_name}, indent=1)
        write_atomic(out / "pruning.json", lambda f: f.write(pruning.encode()))
        files["pruning"] = str(out / "pruning.json")
    return int8_graph, files


def _int8_accuracies(run: _Run, int8_graph, calib, chosen_name: str, final, pruned_ft, distilled, qat: bool):
    """Post-training int8 accuracy of the student (and of the other candidate), and of the
    QAT model: -> the PTQ int8 graph of the student."""
    from edgekit.quantize import quantize

    def ptq(m):
        return quantize(run.float_graph(m), calib).graph

    if qat:
        run.acc["qat_int8"] = run.int8_metric(int8_graph)
        int8_of_chosen = ptq(final)
    else:
        int8_of_chosen = int8_graph
    run.acc["int8"] = run.int8_metric(int8_of_chosen)
    run.acc[f"int8_{chosen_name}"] = run.acc["int8"]
    if distilled is not None:
        other_name, other = ("pruned", pruned_ft) if chosen_name == "distilled" else ("distilled", distilled)
        run.acc[f"int8_{other_name}"] = run.int8_metric(ptq(other))
    metric = run.td.metric
    run.say(f"int8 student: {_fmt(metric, run.acc['int8'])}"
            + (f", after QAT {_fmt(metric, run.acc['qat_int8'])}" if qat else ""))
    return int8_of_chosen


def _report_rows(run: _Run, goal: _Goal, teacher, pruned_ft, distilled, int8_of_chosen, int8_graph,
                 chosen_name: str, *, pruned: bool, qat: bool) -> list[ReportRow]:
    """One row per model (size, MACs, flash, arena, estimated cycles), and the notes that
    compare them."""
    ipm = instructions_per_mac(goal.features)
    acc = run.acc

    def row(name, graph, metric_v, note=""):
        c = pr.deploy_costs(graph, goal.features)
        cyc = int(round(c.macs * ipm)) if c.precision == "int8" else None
        ms = None if cyc is None or not goal.clock_hz else cyc / goal.clock_hz * 1000
        return ReportRow(name, c.precision, metric_v, c.params, c.macs, c.flash_bytes, c.arena_bytes, cyc, ms, note)

    rows = [row("teacher", run.float_graph(teacher), acc["teacher"])]
    base_name = "pruned" if pruned else "student"
    rows.append(row(base_name, run.float_graph(pruned_ft), acc["pruned"], "fine-tuned"))
    if distilled is not None:
        rows.append(row("distilled", run.float_graph(distilled), acc["distilled"]))
    rows.append(row("int8", int8_of_chosen, acc["int8"], f"{chosen_name}, PTQ"))
    if qat:
        rows.append(row("int8 QAT", int8_graph, acc["qat_int8"], chosen_name))
    t_row, s_row = rows[0], rows[-1]
    if s_row.flash_bytes:
        run.notes.append(f"flash {t_row.flash_bytes / s_row.flash_bytes:.1f}x smaller than the fp32 teacher, "
                         f"MACs {1 - s_row.macs / max(t_row.macs, 1):.0%} fewer")
    run.notes.append(f"flash = weights + {pr.FLASH_BYTES_PER_KERNEL:,} B of code per kernel kind + op and "
                     f"per-channel parameters (an estimate; `edgekit compile` measures it); cycles = MACs x {ipm} "
                     f"instructions/MAC measured for edgekit's {'DSP' if ipm == 2.7 else 'portable'} kernels on "
                     "Cortex-M4")
    for kind, limit in goal.budgets.items():
        have = s_row.arena_bytes if kind == "sram" else s_row.flash_bytes
        run.notes.append(f"{kind} budget {limit:,} B: the int8 student needs {have:,} B "
                         f"({'fits' if have <= limit else 'DOES NOT FIT'})")
    return rows


def _write_reports(result: CompressResult, out: Path) -> None:
    def write(name: str, text: str) -> None:
        write_atomic(out / name, lambda f: f.write(text.encode()))

    write("report.json", to_json(result.to_dict()))
    write("report.html", report_html(result))
    result.files["report_json"] = str(out / "report.json")
    result.files["report_html"] = str(out / "report.html")
    write("report.json", to_json(result.to_dict()))  # again, now that it lists the reports themselves


def _fmt(metric: str, v) -> str:
    from edgekit.compress.report import fmt_metric

    return fmt_metric(metric, v)


def _keystr(k) -> str:
    return "|".join(k)


def _prune_stage(teacher, td: TrainData, example, ck: _Checkpoints, tcfg, say, training, notes, *, ratio, budgets,
                 target_macs, target_params, features, importance, global_pruning, ignored, layer_ratios, steps,
                 step_epochs, progress, on_epoch_end):
    model = copy.deepcopy(teacher)
    model.eval()
    _, groups = pr.build_groups(model, example, ignored)
    c0 = {g.key: g.channels for g in groups}
    if not c0:
        raise BadInputError("the model has no prunable layers (every conv / linear layer feeds the model output)")
    if layer_ratios and global_pruning:
        raise BadInputError("per-layer ratios apply to per-layer pruning; drop global pruning")
    if ratio is not None and not global_pruning:
        # a ratio that removes a whole layer fails here, before any training
        pr.local_keep(c0, ratio, {g.key: g.name for g in groups}, pr.resolve_layer_ratios(c0, layer_ratios))

    kind, goal, measure = _pruning_measure(example, ratio=ratio, target_macs=target_macs,
                                           target_params=target_params, budgets=budgets, features=features)
    grad_fn = _gradient_fn(td)

    start_value = measure(model) if measure is not None else None
    if measure is not None and start_value <= goal:
        notes.append(f"the model already meets the {kind} goal; nothing was pruned")
        steps = 0

    state_path = ck.path("prune")
    state = kd.load_checkpoint(state_path, ck.stage_key("prune"))
    history: list = []
    done_step, ft_done = 0, True
    if state is not None:
        history = state["history"]
        done_step, ft_done = int(state["step"]), bool(state["ft_done"])
        pr.replay(model, history, example)
        model.load_state_dict(state["model"])
        say(f"pruning: resumed after step {done_step} of {steps}")
    ratios = list(state["ratios"]) if state is not None else []
    macs0, params0 = pr.count_macs(teacher, example), pr.count_params(teacher)

    for k in range(1, steps + 1):
        if k < done_step or (k == done_step and ft_done):
            continue
        if k > done_step:
            if kind == "ratio":
                r_k = ratio * k / steps
                step = pr.prune_step(model, example, ratio=r_k, importance=importance, global_pruning=global_pruning,
                                     base=c0, ignored=ignored, grad_fn=grad_fn,
                                     layer_ratios={n: v * k / steps for n, v in (layer_ratios or {}).items()})
            else:
                cur = measure(model)
                goal_k = start_value + (goal - start_value) * k / steps
                r_k = pr.find_ratio(model, example, measure, goal_k, importance=importance,
                                    global_pruning=global_pruning, ignored=ignored, grad_fn=grad_fn,
                                    what=kind if kind != "budget" else "memory (share of the budget)")
                step = pr.prune_step(model, example, ratio=r_k, importance=importance, global_pruning=global_pruning,
                                     ignored=ignored, grad_fn=grad_fn) if r_k > 0 else pr.PruneStep([], {}, 0)
                del cur
            history = history + step.history
            ratios.append(r_k)
            done_step, ft_done = k, False
            kd.atomic_save({"key": ck.stage_key("prune"), "step": k, "ft_done": False, "history": history,
                            "model": model.state_dict(), "ratios": ratios}, state_path)
            say(f"pruning step {k}/{steps}: {pr.count_macs(model, example):,} MACs, "
                f"{pr.count_params(model):,} params")
        if k < steps and step_epochs > 0:
            r = kd.train(model, td, tcfg(step_epochs), checkpoint=ck.path(f"prune_ft{k}"),
                         key=ck.stage_key(f"prune_ft{k}"), label=f"fine-tune after step {k}", progress=progress,
                         on_epoch_end=on_epoch_end)
            training[f"prune_step{k}"] = r.to_dict()
        ft_done = True
        kd.atomic_save({"key": ck.stage_key("prune"), "step": k, "ft_done": True, "history": history,
                        "model": model.state_dict(), "ratios": ratios}, state_path)

    model.eval()
    if measure is not None and steps:
        final = measure(model)
        if final > goal * (1 + 1e-9):
            raise BadInputError(f"pruning did not reach the {kind} goal ({final:,.4g} > {goal:,.4g})")
    c1 = pr.group_channels(model, example, ignored)
    macs1, params1 = pr.count_macs(model, example), pr.count_params(model)
    info = {"goal": kind, "value": goal, "importance": importance, "global": bool(global_pruning),
            "steps": steps, "step_ratios": ratios, "history": history,
            "channels_before": {_keystr(k): v for k, v in c0.items()},
            "channels_after": {_keystr(k): c1.get(k, v) for k, v in c0.items()},
            "macs_before": macs0, "macs_after": macs1, "params_before": params0, "params_after": params1,
            "macs_reduction": 1 - macs1 / max(macs0, 1), "params_reduction": 1 - params1 / max(params0, 1)}
    if kind == "budget":
        info["budgets"] = budgets
    say(f"pruned: MACs {macs0:,} -> {macs1:,} ({info['macs_reduction']:.0%} fewer), params {params0:,} -> "
        f"{params1:,}")
    if not math.isfinite(info["macs_reduction"]):
        info["macs_reduction"] = None
    return model, info


def _pruning_measure(example, *, ratio, target_macs, target_params, budgets, features):
    """-> (goal kind, goal value, the function that measures a model against it; None for
    a ratio, which each step applies directly)."""
    if ratio is not None:
        return "ratio", ratio, None
    if target_macs is not None:
        return "macs", float(target_macs), pr.make_measure("macs", example)
    if target_params is not None:
        return "params", float(target_params), pr.make_measure("params", example)
    cache: dict = {}

    def measure(m):  # the worst share of a budget; fits when <= 1
        key = pr.architecture_key(m)
        if key not in cache:
            c = pr.int8_costs(m, example, features)
            vals = {"flash": c.flash_bytes, "sram": c.arena_bytes}
            cache[key] = max(vals[k] / budgets[k] for k in budgets)
        return cache[key]
    return "budget", 1.0, measure


def _gradient_fn(td: TrainData):
    """Gradients of the hard-label loss on the first 256 training samples, for the
    importance criteria that need them (Taylor)."""
    import torch

    def loss_fn(m, b):
        xb, yb = b
        out = kd._single(m(xb))
        return kd._hard_loss(torch.nn.functional, out, yb, td.metric, kd.is_probabilities(out.detach())
                             if td.metric == "top1" else False)

    y_all = td.y_train if td.y_train is not None else td.x_train
    grad_batches = [(torch.from_numpy(td.x_train[i:i + 64]), torch.from_numpy(y_all[i:i + 64]))
                    for i in range(0, min(len(td.x_train), 256), 64)]

    def grad_fn(m):
        pr.accumulate_gradients(m, loss_fn, grad_batches)
    return grad_fn


def print_result(result: CompressResult, console) -> None:
    print_table(result, console)
    for k in ("pt2", "onnx", "int8_ir", "report_html"):
        if k in result.files:
            console.print(f"wrote {result.files[k]}")
