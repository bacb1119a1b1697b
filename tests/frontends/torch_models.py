"""Small PyTorch models for the torch importer tests.

Each factory builds a seeded model in eval mode. They double as spec files:
``load_torch("tests/frontends/torch_models.py:small_cnn")``. Batch norm layers get
random running statistics so folding them changes the numbers.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _randomize_bn(model: nn.Module, seed: int = 123) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
    return model.eval()


class SmallCNN(nn.Module):
    input_shape = (1, 3, 16, 16)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool2 = nn.AvgPool2d(2)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.pool1(F.relu(self.bn1(self.conv1(x))))
        x = self.pool2(F.relu6(self.conv2(x)))
        x = self.drop(torch.flatten(x, 1))
        return torch.softmax(self.fc(x), dim=1)


def small_cnn():
    torch.manual_seed(0)
    return _randomize_bn(SmallCNN())


class DepthwiseSeparable(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.pw = nn.Conv2d(8, 12, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(12)
        self.dw2 = nn.Conv2d(12, 24, 3, stride=2, padding=1, groups=12)  # depth multiplier 2
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 5)

    def forward(self, x):
        x = F.relu6(self.bn0(self.stem(x)))
        x = F.relu6(self.bn1(self.dw(x)))
        x = F.relu(self.bn2(self.pw(x)))
        x = F.hardswish(self.dw2(x))
        return self.fc(self.pool(x).flatten(1))


def depthwise_separable():
    torch.manual_seed(1)
    return _randomize_bn(DepthwiseSeparable()), (torch.randn(1, 3, 20, 20),)


class Residual(nn.Module):
    def __init__(self, c: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.head = nn.Conv2d(c, 4, 1)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = F.relu(y + x)
        y = y * 0.5 - 0.25
        return self.head(y)


def residual():
    torch.manual_seed(2)
    m = _randomize_bn(Residual())
    m.example_inputs = (torch.randn(1, 8, 10, 10),)
    return m


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 6, 3, padding=1)
        self.b = nn.Conv2d(4, 2, 1)
        self.c = nn.Conv2d(8, 4, 3, stride=2, padding="valid")
        self.fc = nn.Linear(4 * 6 * 7, 3)

    def forward(self, x):
        y = torch.cat([F.relu(self.a(x)), torch.sigmoid(self.b(x))], dim=1)
        y = self.c(y)
        z = torch.cat([y, y * 2.0], dim=2)  # concatenate along H
        return self.fc(z.reshape(z.shape[0], -1))


def concat():
    torch.manual_seed(3)
    return Concat().eval(), (torch.randn(1, 4, 8, 16),)


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.fc2 = nn.Linear(32, 16)
        self.bn = nn.BatchNorm1d(16)
        self.fc3 = nn.Linear(16, 4)

    def forward(self, x):
        x = torch.sigmoid(self.fc1(x))
        x = torch.tanh(self.bn(self.fc2(x)))
        x = F.hardtanh(x * 3.0)  # (-1, 1)
        return self.fc3(x) / 2.0 + 1.0


def mlp():
    torch.manual_seed(4)
    return _randomize_bn(MLP()), (torch.randn(4, 20),)


class Padding(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.conv_same = nn.Conv2d(4, 4, 4, padding="same")
        self.avg_incl = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=True)
        self.avg_excl = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.maxp = nn.MaxPool2d(3, stride=2, padding=1)
        self.maxp_ceil = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def forward(self, x):
        x = F.pad(x, (1, 2, 0, 1), value=0.5)  # asymmetric constant pad
        x = self.conv(x)
        x = self.conv_same(x)
        a = self.avg_incl(x)
        b = self.avg_excl(x)
        c = self.maxp(x)
        d = self.maxp_ceil(x)
        return a, b + c, d


def padding():
    torch.manual_seed(5)
    return Padding().eval(), (torch.randn(1, 3, 12, 10),)


class PadThenConv(nn.Module):
    """Explicit zero padding in front of convs (TF-style "same"): absorbed into the conv pads."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.dw = nn.Conv2d(4, 4, 3, groups=4)

    def forward(self, x):
        x = self.conv(F.pad(x, (0, 1, 0, 1)))  # (left, right, top, bottom)
        return self.dw(F.pad(F.relu(x), (1, 1, 2, 0)))


def pad_then_conv():
    torch.manual_seed(10)
    return PadThenConv().eval(), (torch.randn(1, 3, 9, 8),)


class Misc(nn.Module):
    """Layout-sensitive ops: permute, mean over some axes, softmax over channels, ..."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.scale = nn.Parameter(torch.randn(6, 1, 1))

    def forward(self, x):
        y = self.conv(x) * self.scale
        s = torch.softmax(y, dim=1)
        m = y.mean(dim=2)  # [N, C, W]
        p = y.permute(0, 2, 3, 1)  # NHWC in torch
        q = F.leaky_relu(p, 0.1) - 1.0
        r = torch.clamp(y, -0.5, 2.0) + F.silu(y) + torch.clamp(y, min=0.25)
        u = (1.0 - F.hardsigmoid(y)).unsqueeze(1).squeeze(1)
        return s, m, q, r * u


def misc():
    torch.manual_seed(6)
    return Misc().eval(), (torch.randn(1, 3, 6, 5),)


class Cumsum(nn.Module):
    def forward(self, x):
        return torch.cumsum(x, dim=1) + 1.0


def cumsum():
    return Cumsum(), (torch.randn(2, 5),)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(4, 8, batch_first=True)

    def forward(self, x):
        return self.gru(x)[0]


def gru():
    torch.manual_seed(7)
    return Recurrent().eval(), (torch.randn(1, 5, 4),)


class RecurrentWithState(Recurrent):
    def forward(self, x, h):
        return self.gru(x, h)[0]


def gru_with_state():
    """A GRU whose initial state is a model input: TFLite's recurrent kernels start from zero."""
    torch.manual_seed(7)
    return RecurrentWithState().eval(), (torch.randn(1, 5, 4), torch.randn(1, 1, 8))


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x * 2
        return x - 1


def data_dependent():
    return DataDependent(), (torch.randn(1, 4),)


class Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, groups=2)

    def forward(self, x):
        return self.conv(x)


def grouped():
    torch.manual_seed(8)
    return Grouped().eval(), (torch.randn(1, 4, 6, 6),)


def no_inputs():
    """A model with no example inputs anywhere: the caller must give shapes."""
    torch.manual_seed(9)
    return nn.Sequential(nn.Linear(6, 3), nn.ReLU()).eval()


def not_a_module():
    return 42
