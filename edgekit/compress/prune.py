"""Structured channel pruning with Torch-Pruning's dependency graph (DepGraph).

A *group* is a set of coupled channels: the output channels of a conv or linear layer
together with everything that must shrink with them (its batch norm, the input
channels of the next layers, the other branch of a residual add, a depthwise conv in
between). Pruning removes whole channels of a group, so the model stays dense and
every layer stays an ordinary (smaller) layer that edgekit and the MCU kernels run.

Groups that reach the model output are never pruned (the output shape is fixed).

Ratios: ``ratio`` is the fraction of channels removed from every prunable group
(``global_pruning=False``; ``layer_ratios`` sets other ratios for named layers) or from all
prunable channels together, distributed by importance (``global_pruning=True``; each
group keeps at least 10% of its channels).

Targets (:func:`find_ratio`): the smallest ratio at which a measure (parameters, MACs,
int8 flash or the planned int8 arena) is at most a target, by bisection on pruned copies.

Each pruning step is recorded as Torch-Pruning history (root layer, channel indices),
so a pruned model can be rebuilt from the original one (:func:`replay`), which is how
checkpoints store pruned architectures.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from edgekit.errors import BadInputError

IMPORTANCES = ("magnitude", "l1", "l2", "taylor", "bn")
GLOBAL_MIN_KEEP = 0.1   # global pruning keeps at least this share of a group's channels

# Estimated flash of an int8 model on an MCU besides its weights, from what `edgekit
# compile` measured for the pruned digits CNN on cortex-m4 (arm-none-eabi-size): 2,776 B of
# code for its two kernel kinds (conv2d and fully connected, DSP variants) and 1,016 B of
# multipliers, shifts and op parameters for 5 ops and 90 output channels. So: code per
# distinct kernel kind, per op its parameters, per output channel of a conv / depthwise /
# fully connected layer its requantization multiplier and shift (2 x int32).
FLASH_BYTES_PER_KERNEL = 1400
FLASH_BYTES_PER_OP = 60
FLASH_BYTES_PER_CHANNEL = 8


def _torch():
    try:
        import torch
        import torch_pruning  # noqa: F401
    except ImportError:
        raise BadInputError("compression needs torch and torch-pruning: pip install 'edgekit[torch]'") from None
    return torch


# ---------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------

def count_params(model) -> int:
    """Parameters of the PyTorch model (batch norm included)."""
    return int(sum(p.numel() for p in model.parameters()))


def count_macs(model, example_inputs: tuple) -> int:
    """Multiply-accumulates per sample of the conv and linear layers, counted as
    ``edgekit.ir.shapes.op_macs`` counts CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED."""
    torch = _torch()
    nn = torch.nn
    total = [0]

    def hook(m, inp, out):
        n = out.shape[0] if out.dim() > 1 else 1
        per = out.numel() // max(n, 1)
        if isinstance(m, nn.Conv2d):
            total[0] += per * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Conv1d):
            total[0] += per * (m.in_channels // m.groups) * m.kernel_size[0]
        elif isinstance(m, nn.Linear):
            total[0] += per * m.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear))]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*_batch1(example_inputs))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total[0])


def _batch1(example_inputs):
    return tuple(e[:1] for e in example_inputs)


# ---------------------------------------------------------------------------------------
# groups
# ---------------------------------------------------------------------------------------

@dataclass
class Group:
    key: tuple[str, ...]          # names of the layers whose output channels the group prunes
    name: str                     # the root layer
    channels: int                 # current channels
    group: object = field(repr=False, default=None)  # the Torch-Pruning group
    root: object = field(repr=False, default=None)
    handler: object = field(repr=False, default=None)


def _ignored_modules(model, ignored: Iterable[str] | None) -> list:
    if not ignored:
        return []
    mods = dict(model.named_modules())
    out = []
    for name in ignored:
        if name not in mods:
            raise BadInputError(f"ignored layer {name!r} is not a module of the model; modules: "
                                f"{', '.join(n for n in mods if n)}")
        out.append(mods[name])
    return out


def build_groups(model, example_inputs: tuple, ignored: Iterable[str] | None = None):
    """-> (dependency graph, prunable groups). Groups that reach the model output, and
    groups of ignored layers, are left out."""
    torch = _torch()
    import torch_pruning as tp

    nn = torch.nn
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dg = tp.DependencyGraph().build_dependency(model, example_inputs=_batch1(example_inputs))
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"Torch-Pruning could not trace the model: {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    ign = _ignored_modules(model, ignored)
    groups = []
    for g in dg.get_all_groups(ignored_layers=ign, root_module_types=(nn.Conv2d, nn.Conv1d, nn.Linear)):
        root, handler = g[0].dep.target.module, g[0].dep.handler
        names, reaches_output = [], False
        for dep, _ in g:
            if not dg.is_out_channel_pruning_fn(dep.handler):
                continue
            node = dep.target
            if node.type == tp.ops.OPTYPE.OUTPUT or not node.outputs or \
                    any(o.type == tp.ops.OPTYPE.OUTPUT for o in node.outputs):
                reaches_output = True
            name = dg._module2name.get(dep.target.module)
            if name is not None:
                names.append(name)
        if reaches_output:
            continue
        if isinstance(root, (nn.Conv2d, nn.Conv1d)) and 1 < root.groups < root.out_channels:
            continue  # grouped (not depthwise) convs: channel groups would have to shrink together
        channels = dg.get_out_channels(root)
        if not channels:
            continue
        groups.append(Group(tuple(sorted(set(names))), dg._module2name.get(root, "?"), int(channels),
                            g, root, handler))
    return dg, groups


def architecture_key(model) -> tuple:
    """The shapes of every parameter and buffer: equal for two prunings that kept the same
    number of channels in every layer (a cache key for size measures)."""
    return tuple((n, tuple(t.shape)) for n, t in list(model.named_parameters()) + list(model.named_buffers()))


def group_channels(model, example_inputs: tuple, ignored=None) -> dict[tuple[str, ...], int]:
    """Current channels of every prunable group, by group key."""
    _, groups = build_groups(model, example_inputs, ignored)
    return {g.key: g.channels for g in groups}


# ---------------------------------------------------------------------------------------
# importance
# ---------------------------------------------------------------------------------------

def make_importance(kind: str):
    import torch_pruning as tp

    imp = tp.importance
    if kind in ("magnitude", "l2"):
        return imp.MagnitudeImportance(p=2)
    if kind == "l1":
        return imp.MagnitudeImportance(p=1)
    if kind == "taylor":
        return imp.TaylorImportance()
    if kind == "bn":
        return imp.BNScaleImportance()
    raise BadInputError(f"unknown importance {kind!r}; choose from {', '.join(IMPORTANCES)}")


def accumulate_gradients(model, loss_fn: Callable, batches: Iterable) -> None:
    """Fill ``.grad`` of every parameter with the gradient of ``loss_fn(model, batch)``
    summed over ``batches`` (Taylor importance reads them)."""
    torch = _torch()
    model.zero_grad(set_to_none=True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for b in batches:
                loss = loss_fn(model, b)
                if not torch.isfinite(loss):
                    raise BadInputError("the loss is NaN/inf on the training data before pruning; "
                                        "check the model and the data")
                loss.backward()
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------
# one pruning step
# ---------------------------------------------------------------------------------------

@dataclass
class PruneStep:
    history: list                          # Torch-Pruning history entries of this step
    channels: dict[tuple[str, ...], int]   # group key -> channels after the step
    removed: int                           # channels removed


def _check_ratio(ratio: float) -> None:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not math.isfinite(ratio):
        raise BadInputError(f"pruning ratio must be a number in [0, 1), got {ratio!r}")
    if ratio < 0:
        raise BadInputError(f"pruning ratio must be in [0, 1), got {ratio}")
    if ratio >= 1:
        raise BadInputError(f"pruning ratio {ratio} would remove every channel of every prunable layer "
                            "(whole layers); use a ratio below 1, e.g. 0.5 removes half the channels")


def max_local_ratio(base: dict[tuple[str, ...], int]) -> float:
    """The largest ratio that keeps at least one channel in every group."""
    if not base:
        return 0.0
    return min(1.0 - 1.0 / c for c in base.values())


def resolve_layer_ratios(keys, layer_ratios: dict | None) -> dict[tuple[str, ...], float]:
    """Per-layer ratios by layer name -> by group key (a group takes the ratio of any of
    its layers). Unknown names raise BadInputError listing the prunable layers."""
    if not layer_ratios:
        return {}
    keys = list(keys)
    out = {}
    for name, r in layer_ratios.items():
        _check_ratio(r)
        hits = [k for k in keys if name in k]
        if not hits:
            names = sorted({n for k in keys for n in k})
            raise BadInputError(f"per-layer ratio for {name!r}: not a prunable layer; prunable layers: "
                                f"{', '.join(names)}")
        for k in hits:
            if k in out and out[k] != r:
                raise BadInputError(f"layers {', '.join(k)} are pruned together (coupled channels) and got "
                                    f"different ratios {out[k]:g} and {r:g}")
            out[k] = float(r)
    return out


def local_keep(base: dict[tuple[str, ...], int], ratio: float, names: dict | None = None,
               per_group: dict | None = None) -> dict:
    """Channels each group keeps at ``ratio`` (``int(C * (1 - ratio))``, Torch-Pruning's
    rounding; ``per_group`` overrides the ratio of some groups); a ratio that leaves a group
    without channels raises BadInputError."""
    _check_ratio(ratio)
    per_group = per_group or {}
    keep, lost = {}, []
    for key, c in base.items():
        k = int(c * (1.0 - per_group.get(key, ratio)) + 1e-9)
        if k < 1:
            lost.append(f"{(names or {}).get(key, key[0] if key else '?')!r} ({c} channels)")
        keep[key] = k
    if lost:
        raise BadInputError(
            f"pruning ratio {ratio:g} would remove the whole layer{'s' if len(lost) > 1 else ''} "
            f"{', '.join(lost)}: fewer than one channel of {1 - ratio:.3g} x channels is left; the largest "
            f"ratio that keeps every layer is {max_local_ratio(base):.4g}")
    return keep


def prune_step(model, example_inputs: tuple, *, ratio: float, importance: str = "magnitude",
               global_pruning: bool = False, base: dict | None = None, ignored=None,
               grad_fn: Callable | None = None, layer_ratios: dict | None = None) -> PruneStep:
    """Prune ``model`` in place so that each group keeps ``int(base * (1 - ratio))`` channels
    (local), or all groups together keep ``int(sum(base) * (1 - ratio))`` (global).

    ``base``: channels per group key the ratio refers to (default: the current ones; the
    iterative schedule passes the original model's). ``grad_fn(model)`` fills gradients
    before scoring (needed by Taylor importance). ``layer_ratios`` (layer name -> ratio)
    overrides the ratio of the groups holding those layers (local pruning only).
    """
    torch = _torch()
    _check_ratio(ratio)
    if importance not in IMPORTANCES:
        raise BadInputError(f"unknown importance {importance!r}; choose from {', '.join(IMPORTANCES)}")
    if importance == "taylor":
        if grad_fn is None:
            raise BadInputError("Taylor importance needs gradients: give training data")
        grad_fn(model)
    dg, groups = build_groups(model, example_inputs, ignored)
    if not groups:
        raise BadInputError("the model has no prunable layers (only layers that produce the model output, "
                            "or ignored ones)")
    cur = {g.key: g.channels for g in groups}
    base = dict(cur) if base is None else {k: base.get(k, v) for k, v in cur.items()}
    names = {g.key: g.name for g in groups}
    imp_fn = make_importance(importance)
    scores = {}
    for g in groups:
        with torch.no_grad():
            s = imp_fn(g.group)
        if s is not None:
            s = s.detach().float().cpu()
            if len(s) != g.channels:
                continue  # a group whose channels Torch-Pruning scores differently: leave it
            scores[g.key] = torch.nan_to_num(s, nan=0.0)
    if not scores:
        if importance == "bn":
            raise BadInputError("importance 'bn' ranks channels by batch-norm scale, but no prunable layer is "
                                "followed by BatchNorm; use magnitude or taylor")
        raise BadInputError(f"importance {importance!r} scored no prunable layer")
    scored = [g for g in groups if g.key in scores]
    to_remove: dict[tuple[str, ...], list[int]] = {}
    if layer_ratios and global_pruning:
        raise BadInputError("per-layer ratios apply to per-layer pruning; drop global pruning")
    per_group = resolve_layer_ratios(cur, layer_ratios)
    if not global_pruning:
        keep = local_keep({g.key: base[g.key] for g in scored}, ratio, names, per_group)
        for g in scored:
            n = cur[g.key] - keep[g.key]
            if n > 0:
                to_remove[g.key] = torch.argsort(scores[g.key], stable=True)[:n].tolist()
    else:
        total_base = sum(base[g.key] for g in scored)
        target_total = int(total_base * (1.0 - ratio) + 1e-9)
        floors = {g.key: max(1, int(math.ceil(base[g.key] * GLOBAL_MIN_KEEP))) for g in scored}
        if target_total < sum(floors.values()):
            raise BadInputError(
                f"global pruning ratio {ratio:g} would keep {target_total} of {total_base} channels, fewer than "
                f"the {sum(floors.values())} needed to keep {GLOBAL_MIN_KEEP:.0%} of every layer (whole layers "
                "would go); use a smaller ratio")
        n_remove = sum(cur[g.key] for g in scored) - target_total
        if n_remove > 0:
            # rank every channel of every scored group; normalize per group by its mean so
            # layers of different scale compare (Torch-Pruning's 'mean' normalizer)
            cand = []
            for g in scored:
                s = scores[g.key]
                s = s / (s.mean() + 1e-12)
                for i, v in enumerate(s.tolist()):
                    cand.append((v, g.key, i))
            cand.sort(key=lambda t: (t[0], t[1], t[2]))
            left = dict(cur)
            for _v, key, i in cand:
                if n_remove == 0:
                    break
                if left[key] - 1 < floors[key]:
                    continue
                to_remove.setdefault(key, []).append(i)
                left[key] -= 1
                n_remove -= 1
    before = len(dg.pruning_history())
    removed = 0
    for g in scored:
        idx = to_remove.get(g.key)
        if not idx:
            continue
        dg.get_pruning_group(g.root, g.handler, sorted(idx)).prune()
        removed += len(idx)
    history = [[n, bool(o), [int(i) for i in idx]] for n, o, idx in dg.pruning_history()[before:]]
    after = {k: cur[k] - len(to_remove.get(k, ())) for k in cur}
    return PruneStep(history, after, removed)


def replay(model, history: list, example_inputs: tuple) -> None:
    """Apply recorded pruning history to ``model`` (the unpruned architecture) in place."""
    import torch_pruning as tp

    if not history:
        return
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dg = tp.DependencyGraph().build_dependency(model, example_inputs=_batch1(example_inputs))
        dg.load_pruning_history([[n, o, list(i)] for n, o, i in history])
    except Exception as exc:  # noqa: BLE001
        raise BadInputError(f"cannot rebuild the pruned model from its checkpoint: {type(exc).__name__}: "
                            f"{exc}") from exc
    finally:
        model.train(was_training)


def prune(model, example_inputs: tuple, ratio: float, *, importance: str = "magnitude",
          global_pruning: bool = False, ignored=None, grad_fn: Callable | None = None,
          layer_ratios: dict | None = None):
    """One-shot pruning of a copy of ``model``: -> (pruned copy, PruneStep)."""
    m = copy.deepcopy(model)
    step = prune_step(m, example_inputs, ratio=ratio, importance=importance, global_pruning=global_pruning,
                      ignored=ignored, grad_fn=grad_fn, layer_ratios=layer_ratios)
    return m, step


# ---------------------------------------------------------------------------------------
# deployment costs and targets
# ---------------------------------------------------------------------------------------

@dataclass
class DeployCosts:
    params: int            # IR parameters (batch norm folded)
    macs: int              # IR MACs (edgekit.ir.stats)
    flash_bytes: int       # estimated flash: weights + requant params + runtime
    arena_bytes: int       # planned activation arena (edgekit.memory)
    weight_bytes: int      # bytes of the constant tensors alone
    precision: str         # "int8" or "fp32"

    def to_dict(self) -> dict:
        return dict(params=self.params, macs=self.macs, flash_bytes=self.flash_bytes, arena_bytes=self.arena_bytes,
                    weight_bytes=self.weight_bytes, precision=self.precision)


def flash_estimate(graph) -> tuple[int, int]:
    """-> (estimated flash bytes, weight bytes) of an IR graph on an MCU."""
    from edgekit.ir import OpType
    from edgekit.ir.stats import graph_stats

    st = graph_stats(graph)
    channels = 0
    kinds = set()
    for op in graph.ops:
        if op.type is not OpType.RESHAPE:  # a reshape is an alias: no kernel, no code
            kinds.add(op.type)
        if op.type in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED):
            channels += int(graph.tensor(op.outputs[0]).shape[-1])
    extra = FLASH_BYTES_PER_KERNEL * len(kinds) + FLASH_BYTES_PER_OP * len(graph.ops)
    if any(graph.tensor(n).dtype.value == "int8" for n in graph.inputs) or \
            any(op.type is OpType.QUANTIZE for op in graph.ops):
        extra += FLASH_BYTES_PER_CHANNEL * channels
    return st.param_bytes + extra, st.param_bytes


def int8_graph_of(graph, calib: np.ndarray | None = None, seed: int = 0):
    """The int8 IR of a float IR graph; without calibration data, random inputs give the
    right structure and sizes (the ranges do not change any byte count)."""
    from edgekit.quantize import quantize

    if calib is None:
        t = graph.input_tensors()[0]
        shape = tuple(t.shape)
        if graph.metadata.get("io_layout", {}).get(t.name) == "NCHW" and len(shape) == 4:
            n, h, w, c = shape
            shape = (n, c, h, w)
        calib = np.random.default_rng(seed).standard_normal((8,) + shape[1:]).astype(np.float32)
    return quantize(graph, calib).graph


def float_graph_of(model, example_inputs: tuple):
    from edgekit.frontends.torch_importer import load_torch

    if getattr(model, "exported_program", None) is not None:  # a loaded .pt2
        return load_torch(model.exported_program)
    was_training = model.training
    model.eval()
    try:
        return load_torch(model, example_inputs=_batch1(example_inputs))
    finally:
        model.train(was_training)


def deploy_costs(graph, target_features: Iterable[str] = ()) -> DeployCosts:
    """Sizes of an IR graph (float or int8) as deployed: parameters, MACs, flash and arena."""
    from edgekit.ir.stats import graph_stats
    from edgekit.memory import plan_memory

    st = graph_stats(graph)
    flash, weights = flash_estimate(graph)
    arena = plan_memory(graph, target_features=tuple(target_features)).arena_bytes
    int8 = any(t.dtype.value == "int8" for t in graph.tensors.values() if not t.is_const)
    return DeployCosts(st.params, st.macs, flash, arena, weights, "int8" if int8 else "fp32")


def int8_costs(model, example_inputs: tuple, target_features: Iterable[str] = ()) -> DeployCosts:
    """Costs of ``model`` once imported and quantized to int8 by edgekit."""
    return deploy_costs(int8_graph_of(float_graph_of(model, example_inputs)), target_features)


MEASURES = ("params", "macs", "flash", "sram")


def make_measure(kind: str, example_inputs: tuple, target_features: Iterable[str] = ()) -> Callable:
    """A function model -> number for a target kind: params (PyTorch parameters), macs
    (conv/linear MACs per sample), flash (estimated int8 flash bytes), sram (planned int8
    arena bytes)."""
    feats = tuple(target_features)
    if kind == "params":
        return count_params
    if kind == "macs":
        return lambda m: count_macs(m, example_inputs)
    if kind == "flash":
        return lambda m: int8_costs(m, example_inputs, feats).flash_bytes
    if kind == "sram":
        return lambda m: int8_costs(m, example_inputs, feats).arena_bytes
    raise BadInputError(f"unknown pruning target {kind!r}; choose from {', '.join(MEASURES)}")


def _amount(what: str, value: float) -> str:
    """A measure's value with its unit: flash and SRAM are bytes."""
    if what in ("flash", "sram"):
        return f"{value:,.0f} bytes"
    if "share of the budget" in what:  # the largest of planned arena / SRAM budget and flash / flash budget
        return f"{value:.2f}x the budget (planned int8 arena / SRAM budget or int8 flash / flash budget)"
    return f"{value:,.0f}" if float(value).is_integer() or value >= 100 else f"{value:.3g}"


def find_ratio(model, example_inputs: tuple, measure: Callable, target: float, *, importance: str = "magnitude",
               global_pruning: bool = False, ignored=None, grad_fn: Callable | None = None,
               what: str = "size", iterations: int = 14) -> float:
    """The smallest ratio (relative to the model's current channels) at which
    ``measure(pruned copy) <= target``; 0.0 when the model already meets it. Raises
    BadInputError when even the largest ratio that keeps every layer misses it."""
    if measure(model) <= target:
        return 0.0
    _, groups = build_groups(model, example_inputs, ignored)
    if not groups:
        raise BadInputError(f"the model has {what} {_amount(what, measure(model))} > target {_amount(what, target)} "
                            "and no prunable layers")
    base = {g.key: g.channels for g in groups}
    if global_pruning:
        floors = sum(max(1, int(math.ceil(c * GLOBAL_MIN_KEEP))) for c in base.values())
        hi = 1.0 - (floors + 0.5) / sum(base.values())
    else:
        hi = max_local_ratio(base)
    hi = max(hi, 0.0)
    cache: dict = {}

    def value(r: float):
        m, step = prune(model, example_inputs, r, importance=importance, global_pruning=global_pruning,
                        ignored=ignored, grad_fn=grad_fn)
        key = architecture_key(m)
        if key not in cache:
            cache[key] = measure(m)
        return cache[key]

    v_hi = value(hi)
    if v_hi > target:
        goal = ("fit the memory budget (--sram/--flash)" if "share of the budget" in what
                else f"reach the target {what} {_amount(what, target)}")
        raise BadInputError(f"cannot {goal}: even pruning {hi:.1%} of the channels (the most that keeps every "
                            f"layer) leaves {_amount(what, v_hi)}")
    lo = 0.0
    for _ in range(iterations):
        mid = (lo + hi) / 2
        if value(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi
