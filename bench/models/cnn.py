"""Two image CNNs of issue 14's benchmark table, built in torch with seeded random weights
(batch-norm statistics set from the inputs, so the activations are scaled as after
training), imported with edgekit's torch frontend and quantized to int8 by edgekit's
quantizer:

- ``resnet8``: the MLPerf Tiny image-classification shape for CIFAR-10 (32x32x3): a 3x3
  conv to 16 channels, three residual stacks of two 3x3 convs (16, 32, 64 channels; the
  last two stride 2 with a 1x1 stride-2 shortcut), each ending in an ADD and ReLU, global
  average pooling and a 10-way classifier;
- ``mobilenet_v1_025``: MobileNetV1 with width 0.25 at 96x96x3 (the visual-wake-words
  shape): a 3x3 stride-2 stem to 8 channels, 13 depthwise-separable blocks (3x3 depthwise
  and 1x1 pointwise, ReLU6) up to 256 channels, global average pooling, a 2-way head.

    from bench.models import cnn
    g = cnn.int8_graph("resnet8"); x = cnn.int8_inputs(g, 4)
"""

from __future__ import annotations

import functools

import numpy as np

MODELS = ("resnet8", "mobilenet_v1_025")
SIDE = {"resnet8": 32, "mobilenet_v1_025": 96}
SEED = {"resnet8": 8, "mobilenet_v1_025": 25}
CALIBRATION = 32


def images(name: str, n: int, seed_offset: int = 0) -> np.ndarray:
    """``n`` deterministic [n, 3, S, S] images in [-1, 1]: low-frequency colour gradients
    and a blob, plus a little noise."""
    side = SIDE[name]
    rng = np.random.default_rng(SEED[name] + seed_offset)
    yy, xx = np.meshgrid(np.linspace(-1, 1, side), np.linspace(-1, 1, side), indexing="ij")
    out = np.empty((n, 3, side, side), np.float32)
    for i in range(n):
        img = np.zeros((3, side, side))
        for _ in range(4):
            fy, fx = rng.uniform(0.5, 4.0, 2)
            img += rng.uniform(-1, 1, (3, 1, 1)) * np.sin(np.pi * (fy * yy + fx * xx) + rng.uniform(0, 6.3))
        cy, cx, r = rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), rng.uniform(0.1, 0.4)
        img += rng.uniform(-1, 1, (3, 1, 1)) * (((yy - cy) ** 2 + (xx - cx) ** 2) < r * r)
        img += 0.05 * rng.standard_normal((3, side, side))
        out[i] = np.tanh(img / 2)
    return out


def _bn_from_data(module, x, residual_gain: float = 0.5) -> None:
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
        if getattr(m, "residual_bn", None) is not None:
            with torch.no_grad():
                m.residual_bn.weight.mul_(residual_gain)
    module.train()
    with torch.no_grad():
        module(torch.from_numpy(x))
    module.eval()


def _resnet8():
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            second = conv_bn(cout, cout, 3, 1)
            self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride), nn.ReLU(), *second)
            self.residual_bn = second[1]
            self.shortcut = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 else nn.Identity()

        def forward(self, x):
            return torch.relu(self.body(x) + self.shortcut(x))

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(*conv_bn(3, 16, 3, 1), nn.ReLU())
            self.stacks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            return self.fc(self.stacks(self.stem(x)).mean((2, 3)))

    torch.manual_seed(SEED["resnet8"])
    return ResNet8()


def _mobilenet_v1_025():
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride, groups=1):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                nn.BatchNorm2d(cout), nn.ReLU6()]

    # (output channels at width 1.0, stride) of the 13 depthwise-separable blocks
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
              (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]

    class MobileNetV1(nn.Module):
        def __init__(self):
            super().__init__()
            cin = 8
            layers = conv_bn(3, cin, 3, 2)
            for c, s in blocks:
                cout = c // 4
                layers += conv_bn(cin, cin, 3, s, groups=cin) + conv_bn(cin, cout, 1, 1)
                cin = cout
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(cin, 2)

        def forward(self, x):
            return self.fc(self.features(x).mean((2, 3)))

    torch.manual_seed(SEED["mobilenet_v1_025"])
    return MobileNetV1()


@functools.lru_cache(maxsize=2)
def torch_module(name: str):
    m = {"resnet8": _resnet8, "mobilenet_v1_025": _mobilenet_v1_025}[name]()
    _bn_from_data(m, images(name, CALIBRATION))
    return m


def float_graph(name: str):
    import torch

    from edgekit.frontends.torch_importer import load_torch

    g = load_torch(torch_module(name), (torch.from_numpy(images(name, 1)),))
    g.name = name
    return g


@functools.lru_cache(maxsize=2)
def int8_graph(name: str):
    from edgekit.quantize import quantize

    g = quantize(float_graph(name), images(name, CALIBRATION)).graph
    g.name = name
    return g


def int8_inputs(graph, n: int, name: str | None = None) -> np.ndarray:
    """``n`` int8 inputs of ``graph`` (NHWC, quantized with its input parameters), drawn
    apart from the calibration images."""
    name = name or graph.name
    x = images(name, n, seed_offset=1000).transpose(0, 2, 3, 1)
    q = graph.input_tensors()[0].quant
    return np.clip(np.round(x / q.scale[0]) + q.zero_point[0], -128, 127).astype(np.int8)
