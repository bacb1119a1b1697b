"""Quantization-aware fine-tuning that matches edgekit's int8 scheme.

- Batch norm is folded into the conv before it first (edgekit folds it the same way
  before quantizing), so the weights seen in training are the weights that get quantized.
- Weights of conv / depthwise / linear layers: per-output-channel symmetric int8,
  scale = max|w| / 127, values rounded and clamped to [-127, 127]
  (``edgekit.quantize.scheme.weight_scales`` / ``quantize_weights``).
- Activations (the input of every conv / linear layer and the model output): per-tensor
  asymmetric int8 over a running [min, max] that always includes 0, scale = (max - min) / 255,
  zero point = round(-128 - min / scale) (``scheme.activation_qparams``).
- Gradients pass through the rounding unchanged (straight-through estimator) and are
  zeroed outside the clamping range of the activations.

The activation ranges are a buffer of the model while QAT runs, so checkpoints and
resume carry them. After training, :meth:`QatHandle.finish` bakes the fake-quantized
weights into the model (they are exactly representable with the scales edgekit computes
from them) and removes the hooks and the buffer; the model then exports and quantizes
with edgekit as usual.

Limits: the output of a conv whose result is not consumed by another conv / linear
layer before the model output (e.g. a residual add) is not fake-quantized itself.
"""

from __future__ import annotations

import warnings

from edgekit.errors import BadInputError


def _torch():
    try:
        import torch
    except ImportError:
        raise BadInputError("QAT needs torch: pip install 'edgekit[torch]'") from None
    return torch


RANGES_ATTR = "edgekit_qat_ranges"


def fold_batchnorm(model, example_inputs: tuple) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d (and is the conv's only
    consumer) into that conv, in place; the batch norm becomes ``nn.Identity``. Returns the
    number folded."""
    torch = _torch()
    import torch_pruning as tp

    nn = torch.nn
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dg = tp.DependencyGraph().build_dependency(model, example_inputs=tuple(e[:1] for e in example_inputs))
    names = {m: n for n, m in model.named_modules()}
    folded = 0
    for bn, node in list(dg.module2node.items()):
        if not isinstance(bn, nn.BatchNorm2d) or len(node.inputs) != 1:
            continue
        src = node.inputs[0]
        conv = src.module
        if not isinstance(conv, nn.Conv2d) or len(src.outputs) != 1 or bn.running_var is None:
            continue
        with torch.no_grad():
            std = torch.sqrt(bn.running_var + bn.eps)
            gamma = bn.weight if bn.affine else torch.ones_like(std)
            beta = bn.bias if bn.affine else torch.zeros_like(std)
            f = gamma / std
            w = conv.weight * f.reshape(-1, 1, 1, 1)
            b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
            b = (b - bn.running_mean) * f + beta
            conv.weight = nn.Parameter(w.detach().clone())
            conv.bias = nn.Parameter(b.detach().clone())
        _set_module(model, names[bn], nn.Identity())
        folded += 1
    return folded


def _set_module(model, name: str, new) -> None:
    parent = model
    parts = name.split(".")
    for p in parts[:-1]:
        parent = getattr(parent, p)
    setattr(parent, parts[-1], new)


def fake_quant_weight(w):
    """Per-output-channel symmetric int8 fake quantization with a straight-through gradient."""
    torch = _torch()
    amax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
    live = amax > 0
    if live.any():
        fallback = amax[live].median()
    else:
        fallback = torch.tensor(1.0)
    amax = torch.where(live, amax, fallback)
    scale = (amax / 127.0).reshape(-1, *([1] * (w.dim() - 1)))
    v = w / scale
    q = torch.sign(v) * torch.floor(v.abs() + 0.5)      # round half away from zero, like edgekit
    q = q.clamp(-127, 127) * scale
    return w + (q - w).detach()


def _make_weight_fq(torch):
    class WeightFakeQuant(torch.nn.Module):
        def forward(self, w):
            return fake_quant_weight(w)

    return WeightFakeQuant


class ActFakeQuant:
    """Per-tensor asymmetric int8 fake quantization over a running range.

    The range lives in row ``index`` of a buffer of the model (``ranges``: [n, 2], NaN
    until first seen), so checkpoints, resume and best-epoch restores carry it with the
    weights."""

    def __init__(self, ranges, index: int, momentum: float = 0.9):
        self.ranges = ranges
        self.index = index
        self.momentum = momentum
        self.observe = True

    @property
    def lo(self) -> float | None:
        v = float(self.ranges.ranges[self.index, 0])
        return None if v != v else v

    @property
    def hi(self) -> float | None:
        v = float(self.ranges.ranges[self.index, 1])
        return None if v != v else v

    def _set(self, lo: float, hi: float) -> None:
        self.ranges.ranges[self.index, 0] = lo
        self.ranges.ranges[self.index, 1] = hi

    def __call__(self, x, training: bool):
        torch = _torch()
        if self.observe or training:
            lo, hi = float(x.detach().min()), float(x.detach().max())
            if self.lo is None:
                self._set(lo, hi)
            elif training:
                m = self.momentum
                self._set(m * self.lo + (1 - m) * lo, m * self.hi + (1 - m) * hi)
            else:
                self._set(min(self.lo, lo), max(self.hi, hi))
        if self.observe or self.lo is None:
            return x
        lo, hi = min(self.lo, 0.0), max(self.hi, 0.0)
        if hi - lo < 1e-8:
            hi = lo + 1.0
        scale = (hi - lo) / 255.0
        zp = float(min(127, max(-128, round(-128.0 - lo / scale))))
        v = x / scale + zp
        q = (torch.sign(v) * torch.floor(v.abs() + 0.5)).clamp(-128, 127)
        y = (q - zp) * scale
        inside = ((v >= -128) & (v <= 127)).to(x.dtype)
        # straight-through inside the range, zero gradient where the value clamps
        return x * inside + (y - x * inside).detach()


class QatHandle:
    def __init__(self, model, hooks, modules, observers):
        self.model = model
        self.hooks = hooks
        self.modules = modules
        self.observers = observers

    def set_observe(self, on: bool) -> None:
        for o in self.observers:
            o.observe = on

    def finish(self) -> None:
        """Bake the fake-quantized weights and remove every hook."""
        from torch.nn.utils import parametrize

        for h in self.hooks:
            h.remove()
        for m in self.modules:
            if parametrize.is_parametrized(m, "weight"):
                parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        if hasattr(self.model, RANGES_ATTR):
            delattr(self.model, RANGES_ATTR)
        self.hooks, self.modules, self.observers = [], [], []


def prepare_qat(model, example_inputs: tuple, calib_x=None, batch_size: int = 256) -> QatHandle:
    """Fold batch norm, attach fake quantization to ``model`` in place and calibrate the
    activation ranges on ``calib_x`` (numpy, a few hundred samples are plenty)."""
    torch = _torch()
    import numpy as np
    from torch.nn.utils import parametrize

    nn = torch.nn
    fold_batchnorm(model, example_inputs)
    WeightFakeQuant = _make_weight_fq(torch)
    hooks, modules, observers = [], [], []
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Conv1d, nn.Linear))]

    class QatRanges(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.register_buffer("ranges", torch.full((n, 2), float("nan")))

    ranges = QatRanges(len(layers) + 1)
    for m in layers:
        parametrize.register_parametrization(m, "weight", WeightFakeQuant())
        modules.append(m)
        obs = ActFakeQuant(ranges, len(observers))
        observers.append(obs)

        def pre(mod, args, obs=obs):
            return (obs(args[0], mod.training),) + tuple(args[1:])

        hooks.append(m.register_forward_pre_hook(pre))
    out_obs = ActFakeQuant(ranges, len(observers))
    observers.append(out_obs)
    setattr(model, RANGES_ATTR, ranges)  # after the layer scan: its own buffer only

    def post(mod, args, out):
        if isinstance(out, torch.Tensor):
            return out_obs(out, mod.training)
        return out

    hooks.append(model.register_forward_hook(post))
    handle = QatHandle(model, hooks, modules, observers)
    if calib_x is not None and len(calib_x):
        model.eval()
        handle.set_observe(True)
        with torch.no_grad():
            for i in range(0, len(calib_x), batch_size):
                model(torch.from_numpy(np.ascontiguousarray(calib_x[i:i + batch_size])))
    handle.set_observe(False)
    return handle
