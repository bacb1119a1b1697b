"""Knowledge distillation and plain fine-tuning: one CPU training loop.

Loss with a teacher (classification, metric top1)::

    alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, y)
    (+ feature_weight * MSE(adapter(student feature), teacher feature) on matched layers)

and for regression / autoencoders (metric mse) ``alpha * MSE(student, teacher) +
(1 - alpha) * MSE(student, y)``. Without a teacher the loss is the hard-label term alone.
A model whose output is already a softmax is handled: its log-probabilities serve as logits.

The loop is deterministic for a seed: every epoch reseeds torch and numpy from
``(seed, epoch)``, so an epoch computes the same thing whether the run was resumed
before it or not. ``torch.use_deterministic_algorithms`` is on while training.
Each epoch ends with a checkpoint (written atomically: a temporary file, then a rename)
holding the weights, the optimizer, the early-stopping state and the history; a run
given the same checkpoint path and key resumes after its last finished epoch.
Early stopping watches the validation metric (ties broken by the validation loss) and
restores the best weights.
A NaN or infinite loss, or one that explodes to 10^4 times its first value, stops with
:class:`TrainingDiverged` (a ``BadInputError``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit.compress.data import TrainData
from edgekit.errors import BadInputError
from edgekit.files import write_atomic


class TrainingDiverged(BadInputError):
    """The training loss became NaN or infinite, or exploded."""


# A loss this many times its first value (or 1.0, whichever is larger) means the run
# diverged: stop before it overflows into NaN.
DIVERGENCE_FACTOR = 1e4


@dataclass
class TrainConfig:
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    patience: int = 8               # epochs without a better validation metric before stopping
    alpha: float = 0.7              # weight of the distillation term
    temperature: float = 4.0
    feature_layers: tuple[str, ...] = ()   # module names present in teacher and student
    feature_weight: float = 0.0
    seed: int = 0
    # torch intra-op threads while training (None: leave torch's setting). TinyML models are
    # too small for parallel kernels to pay: one thread measured 1.5x faster on 2 idle cores
    # for the digits CNN, and many times faster when other processes load the cores.
    threads: int | None = 1

    def __post_init__(self):
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise BadInputError(f"epochs must be a non-negative integer, got {self.epochs!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise BadInputError(f"learning rate must be a positive number, got {self.lr!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise BadInputError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise BadInputError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise BadInputError(f"temperature must be positive, got {self.temperature}")
        if self.patience < 1:
            raise BadInputError(f"patience must be at least 1, got {self.patience}")
        self.feature_layers = tuple(self.feature_layers)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)   # per epoch: epoch, loss, val, val_loss, seconds
    best_epoch: int = 0          # 0: the starting weights were never beaten
    best_val: float | None = None
    start_val: float | None = None
    stopped_early: bool = False
    resumed_from: int = 0        # epochs already done in the checkpoint this run resumed
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------
# outputs, metric, checks
# ---------------------------------------------------------------------------------------

def _torch():
    try:
        import torch
    except ImportError:
        raise BadInputError("compression needs torch: pip install 'edgekit[torch]'") from None
    return torch


def _single(out):
    torch = _torch()
    if isinstance(out, (tuple, list)):
        if len(out) != 1:
            raise BadInputError(f"the model returns {len(out)} outputs; compression supports one")
        out = out[0]
    if not isinstance(out, torch.Tensor):
        raise BadInputError(f"the model returns a {type(out).__name__}, not a tensor")
    return out


def is_probabilities(out) -> bool:
    """True when a classifier's output rows are already softmax probabilities."""
    torch = _torch()
    if out.dim() != 2 or out.shape[1] < 2:
        return False
    with torch.no_grad():
        return bool(out.min() >= 0) and bool(torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-4))


def as_logits(out, probs: bool):
    torch = _torch()
    return torch.log(out.clamp_min(1e-12)) if probs else out


def predict(model, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The model's output on ``x`` (eval mode, batched) as a numpy array."""
    torch = _torch()
    was = model.training
    model.eval()
    outs = []
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                outs.append(_single(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch_size])))).numpy())
    finally:
        model.train(was)
    return np.concatenate(outs)


def metric_value(out: np.ndarray, y: np.ndarray | None, x: np.ndarray, metric: str) -> float:
    """top1: accuracy in [0, 1]; mse: mean squared error against y (or x without y)."""
    if metric == "top1":
        return float((out.reshape(len(out), -1).argmax(-1) == np.asarray(y).reshape(-1)).mean())
    target = x if y is None else y
    return float(((out.reshape(out.shape) - np.asarray(target, np.float32).reshape(out.shape)) ** 2).mean())


def evaluate(model, x: np.ndarray, y: np.ndarray | None, metric: str) -> float:
    return metric_value(predict(model, x), y, x, metric)


def evaluate_with_loss(model, x: np.ndarray, y: np.ndarray | None, metric: str) -> tuple[float, float]:
    """-> (metric, loss): for top1 the loss is the cross-entropy (the tie-break of early
    stopping when the accuracy of a small validation split saturates)."""
    out = predict(model, x)
    m = metric_value(out, y, x, metric)
    if metric != "top1":
        return m, m
    logits = out.reshape(len(out), -1).astype(np.float64)
    if out.ndim == 2 and out.shape[1] > 1 and out.min() >= 0 and np.allclose(out.sum(1), 1, atol=1e-4):
        logp = np.log(np.clip(logits, 1e-12, None))
    else:
        z = logits - logits.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    loss = float(-logp[np.arange(len(out)), np.asarray(y).reshape(-1)].mean())
    return m, loss


def better(a: float, b: float | None, metric: str) -> bool:
    if b is None:
        return True
    return a > b if metric == "top1" else a < b


def _improves(val: float, loss: float, best_val: float | None, best_loss: float | None, metric: str) -> bool:
    if best_val is None:
        return True
    if val != best_val:
        return better(val, best_val, metric)
    return best_loss is not None and loss < best_loss


def check_compatible(model, data: TrainData, what: str = "the model") -> None:
    """Run ``model`` on two training samples and check its output against the labels;
    a mismatch raises BadInputError naming the shapes."""
    torch = _torch()
    x = torch.from_numpy(np.ascontiguousarray(data.x_train[:2]))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = _single(model(x))
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001
        msg = " ".join(str(exc).split())[:300]
        raise BadInputError(f"{what} does not accept the data: samples of shape {list(data.x_train.shape[1:])} "
                            f"(batch {list(x.shape)}) fail with {type(exc).__name__}: {msg}") from None
    finally:
        model.train(was)
    if data.metric == "top1":
        if out.dim() != 2:
            raise BadInputError(f"{what} returns shape {list(out.shape)}; metric top1 needs [batch, classes]")
        n_cls = int(out.shape[1])
        ymax = max(int(np.max(y)) for y in (data.y_train, data.y_val, data.y_test) if y is not None and y.size)
        if ymax >= n_cls:
            raise BadInputError(f"{what} has {n_cls} outputs but the labels go up to {ymax}: the data does not "
                                "match the model")
    else:
        target = data.x_train if data.y_train is None else data.y_train
        if tuple(out.shape[1:]) != tuple(target.shape[1:]):
            raise BadInputError(f"{what} returns samples of shape {list(out.shape[1:])} but the targets "
                                f"{'(the inputs) ' if data.y_train is None else ''}have shape "
                                f"{list(target.shape[1:])}")
    if not torch.isfinite(out).all():
        raise BadInputError(f"{what} returns NaN/inf on the training data")


# ---------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------

def atomic_save(obj, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, then rename over ``path``."""
    torch = _torch()
    write_atomic(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: str | os.PathLike, key: str | None = None) -> dict | None:
    """The checkpoint at ``path`` when it exists, is readable and (given ``key``) was written
    for the same configuration; None otherwise."""
    torch = _torch()
    path = Path(path)
    if not path.is_file():
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # noqa: BLE001 - a torn or foreign file: start over
        return None
    if not isinstance(ck, dict) or (key is not None and ck.get("key") != key):
        return None
    return ck


# ---------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def deterministic():
    torch = _torch()
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def seed_all(seed: int) -> None:
    torch = _torch()
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))


class _Features:
    """Forward hooks that keep the outputs of named modules."""

    def __init__(self, model, names):
        mods = dict(model.named_modules())
        self.out: dict = {}
        self.handles = []
        for n in names:
            if n not in mods:
                raise BadInputError(f"feature layer {n!r} is not a module of the model")
            self.handles.append(mods[n].register_forward_hook(self._hook(n)))

    def _hook(self, name):
        def fn(m, i, o):
            self.out[name] = _single(o)
        return fn

    def remove(self):
        for h in self.handles:
            h.remove()


def _adapter(torch, s_shape, t_shape):
    nn = torch.nn
    if len(s_shape) != len(t_shape) or s_shape[2:] != t_shape[2:]:
        raise BadInputError(f"feature shapes {list(s_shape)} (student) and {list(t_shape)} (teacher) differ beyond "
                            "channels; match layers with the same spatial size")
    if len(s_shape) == 4:
        return nn.Conv2d(s_shape[1], t_shape[1], 1, bias=False)
    if len(s_shape) == 2:
        return nn.Linear(s_shape[1], t_shape[1], bias=False)
    raise BadInputError(f"feature loss on a {len(s_shape)}-D tensor is not supported (2-D or 4-D)")


def train(model, data: TrainData, config: TrainConfig, *, teacher=None, checkpoint: str | os.PathLike | None = None,
          key: str = "", label: str = "train", progress=None,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train ``model`` in place (distilling from ``teacher`` when given) and return the
    history; the best weights on the validation split are loaded at the end."""
    torch = _torch()
    t_start = time.perf_counter()
    cfg = config
    if teacher is None and cfg.feature_weight and cfg.feature_layers:
        raise BadInputError("a feature loss needs a teacher")

    ck = load_checkpoint(checkpoint, key) if checkpoint is not None else None
    result = TrainResult()
    x_tr = torch.from_numpy(np.ascontiguousarray(data.x_train))
    y_np = data.y_train if data.y_train is not None else data.x_train
    y_tr = torch.from_numpy(np.ascontiguousarray(y_np))
    n = len(x_tr)

    prev_threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    try:
        with deterministic():
            return _train(torch, model, data, cfg, teacher, ck, result, x_tr, y_tr, n, checkpoint, key, label,
                          progress, on_epoch_end, t_start)
    finally:
        torch.set_num_threads(prev_threads)


def _train(torch, model, data, cfg, teacher, ck, result, x_tr, y_tr, n, checkpoint, key, label, progress,
           on_epoch_end, t_start):
    metric = data.metric
    seed_all(cfg.seed)
    loss_of = _Loss(torch, model, teacher, data, cfg, x_tr, n)
    opt = torch.optim.Adam(loss_of.parameters(model), lr=cfg.lr, weight_decay=cfg.weight_decay)

    if ck is not None:
        start_epoch, best_state, best_loss, bad_epochs = _restore(ck, model, opt, loss_of.adapters, result)
        if ck.get("done"):
            model.load_state_dict(best_state)
            loss_of.close()
            result.seconds = time.perf_counter() - t_start
            return result
    else:
        start_epoch, bad_epochs = 0, 0
        result.start_val, best_loss = evaluate_with_loss(model, data.x_val, data.y_val, metric)
        result.best_val = result.start_val
        best_state = _copy_state(model)

    first_loss = None
    bar = _Bar(progress, label, cfg.epochs, start_epoch)
    try:
        for epoch in range(start_epoch + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            seed_all(cfg.seed * 1_000_003 + epoch)
            gen = torch.Generator().manual_seed(cfg.seed * 7919 + epoch)
            perm = torch.randperm(n, generator=gen)
            model.train()
            train_loss, first_loss = _train_epoch(model, opt, loss_of, x_tr, y_tr, perm, cfg, epoch, label,
                                                  first_loss)
            val, val_loss = evaluate_with_loss(model, data.x_val, data.y_val, metric)
            if not math.isfinite(val):
                raise TrainingDiverged(f"{label}: the validation {metric} became {val} at epoch {epoch} "
                                       f"(learning rate {cfg.lr:g}); lower the learning rate (--lr)")
            row = {"epoch": epoch, "loss": train_loss, "val": val, "val_loss": val_loss,
                   "seconds": round(time.perf_counter() - t0, 4)}
            result.history.append(row)
            if _improves(val, val_loss, result.best_val, best_loss, metric):
                result.best_val, best_loss, result.best_epoch, bad_epochs = val, val_loss, epoch, 0
                best_state = _copy_state(model)
            else:
                bad_epochs += 1
            done = epoch == cfg.epochs or bad_epochs >= cfg.patience
            result.stopped_early = bad_epochs >= cfg.patience and epoch < cfg.epochs
            if checkpoint is not None:
                atomic_save({"key": key, "epoch": epoch, "model": model.state_dict(),
                             "optimizer": opt.state_dict(),
                             "adapters": loss_of.adapters.state_dict() if loss_of.adapters is not None else None,
                             "best": best_state, "best_val": result.best_val, "best_loss": best_loss,
                             "best_epoch": result.best_epoch,
                             "start_val": result.start_val, "bad_epochs": bad_epochs,
                             "history": result.history, "stopped_early": result.stopped_early,
                             "done": done}, checkpoint)
            bar.update(epoch, row, result.best_val, metric)
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
            if done:
                break
    finally:
        bar.close()
        loss_of.close()
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - t_start
    return result


class _Loss:
    """The training loss of one run: the hard-label term, and with a teacher its soft
    targets (computed once, in eval mode: no dropout, fixed BN) and the matched features
    through trainable adapters. ``loss_of(model, xb, yb, idx)`` is one batch's loss."""

    def __init__(self, torch, model, teacher, data, cfg, x_tr, n):
        nn = torch.nn
        self.torch, self.F = torch, nn.functional
        self.cfg, self.metric, self.teacher = cfg, data.metric, teacher
        model.eval()
        with torch.no_grad():
            probe = _single(model(x_tr[:min(n, 64)]))
        self.s_probs = self.metric == "top1" and is_probabilities(probe)
        self.t_out_all, self.t_probs = None, False
        self.use_features = teacher is not None and cfg.feature_weight > 0 and bool(cfg.feature_layers)
        if teacher is not None:
            teacher.eval()
            self.t_out_all = torch.from_numpy(predict(teacher, data.x_train))
            self.t_probs = self.metric == "top1" and is_probabilities(self.t_out_all[:64])
            if not torch.isfinite(self.t_out_all).all():
                raise BadInputError("the teacher returns NaN/inf on the training data")
        self.adapters = None
        self.s_feat = self.t_feat = None
        if self.use_features:
            self.s_feat, self.t_feat = _Features(model, cfg.feature_layers), _Features(teacher, cfg.feature_layers)
            with torch.no_grad():
                model(x_tr[:2])
                teacher(x_tr[:2])
            self.adapters = nn.ModuleDict({n_.replace(".", "__"): _adapter(torch, self.s_feat.out[n_].shape,
                                                                            self.t_feat.out[n_].shape)
                                           for n_ in cfg.feature_layers})

    def parameters(self, model) -> list:
        """What the optimizer trains: the model's parameters and the adapters'."""
        return list(model.parameters()) + (list(self.adapters.parameters()) if self.adapters is not None else [])

    def __call__(self, model, xb, yb, idx):
        cfg, F = self.cfg, self.F
        out = _single(model(xb))
        hard = _hard_loss(F, out, yb, self.metric, self.s_probs)
        if self.teacher is not None and cfg.alpha > 0:
            soft = _soft_loss(F, out, self.t_out_all[idx], self.metric, self.s_probs, self.t_probs, cfg.temperature)
            loss = cfg.alpha * soft + (1.0 - cfg.alpha) * hard
        else:
            loss = hard
        if self.use_features:
            with self.torch.no_grad():
                self.teacher(xb)  # the hooks keep its features
            fl = sum(F.mse_loss(self.adapters[k.replace(".", "__")](self.s_feat.out[k]), self.t_feat.out[k])
                     for k in cfg.feature_layers) / len(cfg.feature_layers)
            loss = loss + cfg.feature_weight * fl
        return loss

    def close(self) -> None:
        _cleanup(self.s_feat, self.t_feat)


def _restore(ck: dict, model, opt, adapters, result: TrainResult):
    """Load a checkpoint's weights, optimizer and early-stopping state:
    -> (epochs done, best weights, best validation loss, epochs without improvement)."""
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    if adapters is not None and ck.get("adapters") is not None:
        adapters.load_state_dict(ck["adapters"])
    start_epoch = int(ck["epoch"])
    result.best_val = ck["best_val"]
    result.best_epoch = int(ck["best_epoch"])
    result.start_val = ck.get("start_val")
    result.history = list(ck["history"])
    result.stopped_early = bool(ck.get("stopped_early", False))
    result.resumed_from = start_epoch
    return start_epoch, ck["best"], ck.get("best_loss"), int(ck["bad_epochs"])


def _train_epoch(model, opt, loss_of: _Loss, x_tr, y_tr, perm, cfg, epoch: int, label: str, first_loss):
    """One pass over the training set in the order ``perm``: -> (mean loss, the run's first
    batch loss, the reference for divergence)."""
    total, count = 0.0, 0
    for bi, i in enumerate(range(0, len(perm), cfg.batch_size)):
        idx = perm[i:i + cfg.batch_size]
        loss = loss_of(model, x_tr[idx], y_tr[idx], idx)
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise TrainingDiverged(
                f"{label}: the training loss became {lv} at epoch {epoch}, batch {bi + 1} "
                f"(learning rate {cfg.lr:g}); lower the learning rate (--lr) and check the data for "
                "extreme values")
        if first_loss is None:
            first_loss = lv
        elif lv > DIVERGENCE_FACTOR * max(first_loss, 1.0):
            raise TrainingDiverged(
                f"{label}: the training loss exploded to {lv:.3g} at epoch {epoch}, batch {bi + 1} "
                f"(it started at {first_loss:.3g}; learning rate {cfg.lr:g}); lower the learning rate "
                "(--lr) and check the data for extreme values")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += lv * len(idx)
        count += len(idx)
    return total / max(count, 1), first_loss


def _cleanup(*feats):
    for f in feats:
        if f is not None:
            f.remove()


def _copy_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _hard_loss(F, out, y, metric: str, probs: bool):
    if metric == "top1":
        return F.nll_loss(as_logits(out, True), y) if probs else F.cross_entropy(out, y)
    return F.mse_loss(out, y.reshape(out.shape).to(out.dtype))


def _soft_loss(F, out, t_out, metric: str, s_probs: bool, t_probs: bool, T: float):
    if metric != "top1":
        return F.mse_loss(out, t_out.reshape(out.shape))
    s = as_logits(out, s_probs) / T
    t = as_logits(t_out, t_probs) / T
    return F.kl_div(F.log_softmax(s, dim=1), F.log_softmax(t, dim=1), reduction="batchmean", log_target=True) * T * T


class _Bar:
    """A rich progress bar over epochs (nothing when ``progress`` is falsy)."""

    def __init__(self, progress, label: str, total: int, start: int):
        self.p = None
        if not progress:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = progress if hasattr(progress, "print") else None
        if console is not None and not console.is_terminal:
            return  # logs and pipes get the stage summaries only
        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=True)
        self.p.start()
        self.task = self.p.add_task(label, total=total, completed=start, info="")

    def update(self, epoch: int, row: dict, best, metric: str):
        if self.p is None:
            return
        fmt = (lambda v: f"{v * 100:.1f}%") if metric == "top1" else (lambda v: f"{v:.4g}")
        self.p.update(self.task, completed=epoch,
                      info=f"loss {row['loss']:.4f}  val {metric} {fmt(row['val'])}  best {fmt(best)}")

    def close(self):
        if self.p is not None:
            self.p.stop()
