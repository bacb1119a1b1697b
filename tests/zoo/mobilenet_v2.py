"""MobileNetV2 (Sandler et al. 2018) with width multiplier 0.35 at 96x96x3 and a
two-class head, the person-detection shape of TinyML: a 3x3 stride-2 stem to 16
channels, seventeen inverted-residual blocks (1x1 expansion x6 with ReLU6, 3x3
depthwise with ReLU6, linear 1x1 projection, a residual ADD where shapes allow), a 1x1
conv to 1280 with ReLU6, global average pooling and the classifier.

Built in torch with seeded random weights (batch-norm statistics set from the inputs)
and imported through edgekit's torch frontend; every op is a TFLM builtin (CONV_2D,
DEPTHWISE_CONV_2D with fused RELU6, ADD, MEAN, FULLY_CONNECTED).
"""

from __future__ import annotations

import functools

from tests.zoo._mobilenet import CLASSES, images, int8_graph_of, make_divisible, set_bn_statistics, torch_graph

SEED = 62
WIDTH = 0.35
# expansion, output channels (before the width multiplier), repeats, first stride
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
            (6, 320, 1, 1)]
LAST_CHANNELS = 1280  # not scaled below width 1.0, as in the paper's reference models


def _module():
    import torch
    from torch import nn

    def conv_bn(cin, cout, k, stride=1, groups=1, relu6=True):
        layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return layers + [nn.ReLU6()] if relu6 else layers

    class InvertedResidual(nn.Module):
        def __init__(self, cin, cout, stride, expand):
            super().__init__()
            hidden = cin * expand
            layers = conv_bn(cin, hidden, 1) if expand != 1 else []
            layers += conv_bn(hidden, hidden, 3, stride, groups=hidden)
            layers += conv_bn(hidden, cout, 1, relu6=False)
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            cin = make_divisible(32 * WIDTH)
            layers = conv_bn(3, cin, 3, 2)
            for t, c, n, s in SETTINGS:
                cout = make_divisible(c * WIDTH)
                for i in range(n):
                    layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                    cin = cout
            layers += conv_bn(cin, LAST_CHANNELS, 1)
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(LAST_CHANNELS, CLASSES))

        def forward(self, image):
            return self.classifier(self.features(image).mean((2, 3)))

    torch.manual_seed(SEED)
    m = MobileNetV2()
    set_bn_statistics(m, inputs(32), residual_gain=0.25)
    return m


@functools.lru_cache(maxsize=1)
def torch_module():
    return _module()


def inputs(n: int):
    """``n`` deterministic images [n, 3, 96, 96] in [-1, 1] (torch's NCHW order)."""
    return images(n, SEED)


def float_graph():
    return torch_graph(torch_module(), inputs(1), "mobilenet_v2")


def int8_graph():
    return int8_graph_of(float_graph(), inputs(32), "mobilenet_v2")
