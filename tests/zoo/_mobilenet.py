"""Shared pieces of the MobileNet zoo models: the channel rounding both papers use,
BN statistics set from data (so seeded random weights give well-scaled activations, as
after training), the deterministic image inputs, and the import and quantization both models share."""

from __future__ import annotations

import numpy as np

SIDE = 96
CLASSES = 2  # a visual-wake-words style head (person / no person)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of 8, never more than 10% below ``v``."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def images(n: int, seed: int) -> np.ndarray:
    """``n`` deterministic [n, 3, 96, 96] images in [-1, 1]: a few random low-frequency
    colour gradients and blobs, the statistics of natural images' coarse structure."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, SIDE), np.linspace(-1, 1, SIDE), indexing="ij")
    out = np.empty((n, 3, SIDE, SIDE), np.float32)
    for i in range(n):
        img = np.zeros((3, SIDE, SIDE))
        for _ in range(4):
            fy, fx = rng.uniform(0.5, 4.0, 2)
            phase = rng.uniform(0, 2 * np.pi)
            colour = rng.uniform(-1, 1, (3, 1, 1))
            img += colour * np.sin(np.pi * (fy * yy + fx * xx) + phase)
        cy, cx, r = rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(0.1, 0.4)
        img += rng.uniform(-1, 1, (3, 1, 1)) * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)
        img += 0.05 * rng.standard_normal((3, SIDE, SIDE))
        out[i] = np.tanh(img / 2)
    return out


def set_bn_statistics(module, x: np.ndarray, residual_gain: float = 1.0) -> None:
    """Batch-norm running statistics from ``x`` (one cumulative pass in training mode),
    random affine parameters; the module ends in eval mode. The last batch norm of each
    residual branch (a module with ``residual`` true and a ``body``) gets its scale times
    ``residual_gain``: trained residual networks keep those branches small, and a deep
    random network without that amplifies every perturbation (rounding included)."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(7)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.reset_running_stats()
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.num_features, generator=gen) * 0.6 + 0.7)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    for m in module.modules():
        if getattr(m, "residual", False):
            last_bn = [b for b in m.body.modules() if isinstance(b, nn.BatchNorm2d)][-1]
            with torch.no_grad():
                last_bn.weight.mul_(residual_gain)
    module.train()
    with torch.no_grad():
        module(torch.from_numpy(x))
    module.eval()


def torch_graph(module, image, name: str):
    """``module`` imported through edgekit's torch frontend on ``image``, named ``name``."""
    import torch

    from edgekit.frontends.torch_importer import load_torch

    g = load_torch(module, (torch.from_numpy(image),))
    g.name = name
    return g


def int8_graph_of(float_graph, calib: np.ndarray, name: str):
    """``float_graph`` quantized by edgekit on ``calib``, named ``name``."""
    from edgekit.quantize import quantize

    g = quantize(float_graph, calib).graph
    g.name = name
    return g
