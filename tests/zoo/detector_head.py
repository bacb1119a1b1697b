"""A tiny two-scale detector (YOLO-style heads) on 64x64 RGB: a strided conv backbone
(conv + batch norm + ReLU, strides 2, 2, 2) gives a fine 16x16 and a coarse 8x8 feature
map; the coarse one is reduced by a 1x1 conv, upsampled 2x by nearest-neighbour resizing
(RESIZE_NEAREST_NEIGHBOR) and concatenated with the fine one; each scale has a conv head
predicting 3 anchors x (4 box + 1 objectness + 3 classes) = 24 channels per cell; both
heads' predictions are concatenated into one [N, 16*16*3 + 8*8*3, 8] output.

Built in torch with seeded random weights and imported through edgekit's torch frontend.
"""

from __future__ import annotations

import functools

import numpy as np

SIDE, ANCHORS, CLASSES = 64, 3, 3
OUT = ANCHORS * (5 + CLASSES)
SEED = 21


def _module():
    import torch
    from torch import nn

    def cbr(cin, cout, k=3, s=1):
        return nn.Sequential(nn.Conv2d(cin, cout, k, stride=s, padding=k // 2, bias=False),
                             nn.BatchNorm2d(cout), nn.ReLU())

    class DetectorHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(cbr(3, 8, s=2), cbr(8, 16, s=2))           # 16x16x16
            self.down = nn.Sequential(cbr(16, 32, s=2), cbr(32, 32))             # 8x8x32
            self.reduce = cbr(32, 16, k=1)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.fuse = cbr(32, 24)
            self.head_fine = nn.Conv2d(24, OUT, 1)
            self.head_coarse = nn.Conv2d(32, OUT, 1)

        def forward(self, image):
            fine = self.stem(image)
            coarse = self.down(fine)
            merged = torch.cat([self.up(self.reduce(coarse)), fine], dim=1)
            # one output, as detectors hand them to box decoding: [N, cells x anchors, 5 + classes]
            heads = [self.head_fine(self.fuse(merged)), self.head_coarse(coarse)]
            boxes = [h.permute(0, 2, 3, 1).reshape(h.shape[0], -1, 5 + CLASSES) for h in heads]
            return torch.cat(boxes, dim=1)

    torch.manual_seed(SEED)
    m = DetectorHead()
    with torch.no_grad():  # non-trivial batch-norm statistics, as after training
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.1)
    return m.eval()


@functools.lru_cache(maxsize=1)
def torch_module():
    return _module()


def inputs(n: int) -> np.ndarray:
    """``n`` image-like inputs [n, 3, 64, 64] in [0, 1]: smooth blobs on a gradient."""
    rng = np.random.default_rng(SEED)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    out = np.empty((n, 3, SIDE, SIDE), np.float32)
    for i in range(n):
        img = 0.3 * (yy * rng.uniform(-1, 1) + xx * rng.uniform(-1, 1))[None] + rng.uniform(0.2, 0.6, (3, 1, 1))
        for _ in range(3):
            cy, cx, r = rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.05, 0.2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
            img = img + blob[None] * rng.uniform(-0.5, 0.5, (3, 1, 1))
        out[i] = np.clip(img + 0.02 * rng.standard_normal(img.shape), 0, 1)
    return out


def float_graph():
    import torch

    from edgekit.frontends.torch_importer import load_torch

    g = load_torch(torch_module(), (torch.from_numpy(inputs(1)),))
    g.name = "detector_head"
    return g


def int8_graph():
    from edgekit.quantize import quantize

    g = quantize(float_graph(), inputs(32)).graph
    g.name = "detector_head"
    return g
