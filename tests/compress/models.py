"""Small seeded PyTorch models for the compression tests; each factory doubles as a
``file.py:factory`` spec. Every model has an ``input_shape``."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _bn_stats(model: nn.Module, seed: int = 5) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
    return model.eval()


class ConvBN(nn.Module):
    """conv + BN + ReLU, strided conv, flatten, linear (the flatten couples conv2 and fc)."""

    input_shape = (1, 1, 8, 8)

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1)
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.conv2(x))
        return self.fc(x.flatten(1))


class Depthwise(nn.Module):
    """pointwise -> depthwise 3x3 -> pointwise, global average pool, linear."""

    input_shape = (1, 3, 8, 8)

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.bn1 = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 32, 1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu6(self.bn0(self.stem(x)))
        x = F.relu6(self.bn1(self.dw(x)))
        x = F.relu(self.pw(x))
        return self.fc(x.mean((2, 3)))


class Residual(nn.Module):
    """Two residual blocks (x + conv(relu(conv(x)))): the adds tie the stem's channels to
    each block's second conv."""

    input_shape = (1, 3, 8, 8)

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.a1, self.a2 = nn.Conv2d(16, 24, 3, padding=1), nn.Conv2d(24, 16, 3, padding=1)
        self.b1, self.b2 = nn.Conv2d(16, 24, 3, padding=1), nn.Conv2d(24, 16, 3, padding=1)
        self.head = nn.Conv2d(16, 32, 1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(x + self.a2(F.relu(self.a1(x))))
        x = F.relu(x + self.b2(F.relu(self.b1(x))))
        x = F.relu(self.head(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class MLP(nn.Module):
    input_shape = (1, 30)

    def __init__(self, n_in: int = 30, hidden: int = 64, n_out: int = 2):
        super().__init__()
        self.fc1 = nn.Linear(n_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden // 2)
        self.fc3 = nn.Linear(hidden // 2, n_out)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


class SoftmaxCNN(nn.Module):
    """A digits CNN ending in softmax (distillation must use its log-probabilities)."""

    input_shape = (1, 1, 8, 8)

    def __init__(self, width: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(1, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.fc = nn.Linear(2 * width * 16, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return torch.softmax(self.fc(x.flatten(1)), dim=1)


def conv_bn():
    torch.manual_seed(0)
    return _bn_stats(ConvBN())


def depthwise():
    torch.manual_seed(1)
    return _bn_stats(Depthwise())


def residual():
    torch.manual_seed(2)
    return Residual().eval()


def mlp():
    torch.manual_seed(3)
    return MLP().eval()


def tiny_student():
    torch.manual_seed(4)
    return SoftmaxCNN(width=4).eval()


def digits_small():
    torch.manual_seed(6)
    return SoftmaxCNN(width=8).eval()
