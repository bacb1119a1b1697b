"""A small multi-head feature model over MFCC frames ([1, 49, 10], torch order): a linear
embedding to 32 features per frame, split into 4 heads of 8 (SPLIT); each head keeps every
other frame (STRIDED_SLICE) and the heads are stacked (PACK) and mixed; a channel
reordering (GATHER), the last frame selected (STRIDED_SLICE with a shrunk axis), the
first and second halves of time (SLICE) pooled, and a linear classifier with softmax over
12 keywords. Built in torch with seeded random weights and imported through edgekit's
torch frontend; it exists to run the data-movement ops end to end.
"""

from __future__ import annotations

import functools

import numpy as np

FRAMES, COEFFS, EMBED, HEADS, CLASSES = 49, 10, 32, 4, 12
SEED = 41


def _module():
    import torch
    from torch import nn

    class SplitHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(COEFFS, EMBED)
            self.mix = nn.Linear(EMBED // HEADS, EMBED // HEADS)
            self.order = torch.tensor([7, 3, 5, 1, 6, 2, 4, 0])
            self.classify = nn.Linear(3 * EMBED // HEADS * HEADS, CLASSES)

        def forward(self, x):                                   # [1, 49, 10]
            e = torch.relu(self.embed(x))                       # [1, 49, 32]
            heads = torch.split(e, EMBED // HEADS, dim=2)       # 4 x [1, 49, 8]
            heads = [h[:, ::2, :] for h in heads]               # 4 x [1, 25, 8]
            s = torch.stack(heads, dim=1)                       # [1, 4, 25, 8]
            s = torch.tanh(self.mix(s))                         # mixes each head's features
            s = torch.index_select(s, 3, self.order)            # reorder features
            last = s[:, :, -1, :]                               # [1, 4, 8]
            first = s[:, :, :12, :].mean(dim=2)                 # [1, 4, 8]
            second = s[:, :, 12:, :].mean(dim=2)                # [1, 4, 8]
            feats = torch.cat([last, first, second], dim=2).reshape(1, -1)
            return torch.softmax(self.classify(feats), dim=-1)

    torch.manual_seed(SEED)
    return SplitHeads().eval()


@functools.lru_cache(maxsize=1)
def torch_module():
    return _module()


def inputs(n: int) -> np.ndarray:
    """``n`` MFCC-like inputs [n, 49, 10]: a slowly varying envelope plus noise."""
    rng = np.random.default_rng(SEED)
    t = np.arange(FRAMES)[:, None] / FRAMES
    out = np.empty((n, FRAMES, COEFFS), np.float32)
    for i in range(n):
        base = rng.normal(0, 1, COEFFS) * np.linspace(2.0, 0.3, COEFFS)
        drift = rng.normal(0, 1, COEFFS) * np.sin(2 * np.pi * t * rng.uniform(0.5, 2.0))
        out[i] = base + drift + 0.2 * rng.standard_normal((FRAMES, COEFFS))
    return out


def float_graph():
    import torch

    from edgekit.frontends.torch_importer import load_torch

    g = load_torch(torch_module(), (torch.from_numpy(inputs(1)),))
    g.name = "split_heads"
    return g


def int8_graph():
    from edgekit.quantize import quantize

    g = quantize(float_graph(), inputs(64)).graph
    g.name = "split_heads"
    return g
