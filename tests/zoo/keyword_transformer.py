"""Keyword transformer (KWT-style, Berg et al. 2021) on MFCC input: 49 frames of 10
coefficients -> a linear embedding of each frame (32 features) plus a learned position
embedding -> two pre-norm encoder blocks (layer norm, two-head self-attention over the
49 frames, residual; layer norm, ReLU MLP 32 -> 64 -> 32, residual) -> layer norm,
mean pooling over the frames -> 12 keyword logits.

Built in torch with seeded random weights and imported through edgekit's torch
frontend. The attention heads are written with per-head projections on [1, 49, 16]
tensors, so every matrix product is a 3-D BATCH_MATMUL (k^T as adj_y).
"""

from __future__ import annotations

import functools

import numpy as np

FRAMES, COEFFS, DIM, HEADS, MLP, CLASSES, BLOCKS = 49, 10, 32, 2, 64, 12, 2
SEED = 13


def _module():
    import torch

    class Attention(torch.nn.Module):
        def __init__(self):
            super().__init__()
            dh = DIM // HEADS
            self.scale = dh ** -0.5
            self.q = torch.nn.ModuleList(torch.nn.Linear(DIM, dh) for _ in range(HEADS))
            self.k = torch.nn.ModuleList(torch.nn.Linear(DIM, dh) for _ in range(HEADS))
            self.v = torch.nn.ModuleList(torch.nn.Linear(DIM, dh) for _ in range(HEADS))
            self.out = torch.nn.Linear(DIM, DIM)

        def forward(self, x):
            heads = []
            for q, k, v in zip(self.q, self.k, self.v):
                scores = torch.matmul(q(x) * self.scale, k(x).transpose(1, 2))
                heads.append(torch.matmul(torch.softmax(scores, dim=-1), v(x)))
            return self.out(torch.cat(heads, dim=-1))

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = torch.nn.LayerNorm(DIM), torch.nn.LayerNorm(DIM)
            self.attention = Attention()
            self.mlp = torch.nn.Sequential(torch.nn.Linear(DIM, MLP), torch.nn.ReLU(), torch.nn.Linear(MLP, DIM))

        def forward(self, x):
            x = x + self.attention(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class KeywordTransformer(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Linear(COEFFS, DIM)
            self.position = torch.nn.Parameter(0.1 * torch.randn(1, FRAMES, DIM))
            self.blocks = torch.nn.Sequential(*(Block() for _ in range(BLOCKS)))
            self.ln = torch.nn.LayerNorm(DIM)
            self.head = torch.nn.Linear(DIM, CLASSES)

        def forward(self, mfcc):
            x = self.blocks(self.embed(mfcc) + self.position)
            return self.head(self.ln(x).mean(dim=1))

    torch.manual_seed(SEED)
    return KeywordTransformer().eval()


@functools.lru_cache(maxsize=1)
def torch_module():
    return _module()


def inputs(n: int) -> np.ndarray:
    """``n`` MFCC-like inputs [n, 49, 10]: smooth over time, larger low coefficients."""
    rng = np.random.default_rng(SEED)
    base = rng.standard_normal((n, FRAMES, COEFFS)).cumsum(axis=1) / np.sqrt(np.arange(1, FRAMES + 1))[:, None]
    return (base * np.linspace(3.0, 0.5, COEFFS)).astype(np.float32)


def float_graph():
    import torch

    from edgekit.frontends.torch_importer import load_torch

    g = load_torch(torch_module(), (torch.from_numpy(inputs(1)),))
    g.name = "keyword_transformer"
    return g


def int8_graph():
    from edgekit.quantize import quantize

    g = quantize(float_graph(), inputs(64)).graph
    g.name = "keyword_transformer"
    return g
