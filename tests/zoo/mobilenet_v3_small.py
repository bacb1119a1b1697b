"""MobileNetV3-small (Howard et al. 2019, width 1.0) at 96x96x3 with a two-class head:
a 3x3 stride-2 stem with hard-swish, eleven inverted-residual blocks (3x3 and 5x5
depthwise, ReLU or hard-swish, squeeze-excite on eight of them: global average ->
1x1 conv + ReLU -> 1x1 conv + hard-sigmoid -> channel-wise MUL), a 1x1 conv to 576 with
hard-swish, global average pooling, a 1024-wide hard-swish layer and the classifier.

Built in torch with seeded random weights (batch-norm statistics set from the inputs)
and imported through edgekit's torch frontend: hard-swish becomes HARD_SWISH, the
hard-sigmoid gate ADD(+3, fused RELU6) + MUL(1/6), the squeeze MEAN over H and W, and
the excite a broadcast MUL of [1, H, W, C] by [1, 1, 1, C], as the TFLite converter
builds them.
"""

from __future__ import annotations

import functools

from tests.zoo._mobilenet import CLASSES, images, int8_graph_of, make_divisible, set_bn_statistics, torch_graph

SEED = 63
# kernel, expanded channels, output channels, squeeze-excite, activation, stride
BLOCKS = [
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
]
LAST_CHANNELS = 1024


def _module():
    import torch
    from torch import nn

    def act(kind):
        return nn.Hardswish() if kind == "HS" else nn.ReLU()

    class SqueezeExcite(nn.Module):
        def __init__(self, channels):
            super().__init__()
            squeeze = make_divisible(channels // 4)
            self.fc1 = nn.Conv2d(channels, squeeze, 1)
            self.fc2 = nn.Conv2d(squeeze, channels, 1)

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            s = nn.functional.relu(self.fc1(s))
            return x * nn.functional.hardsigmoid(self.fc2(s))

    class Block(nn.Module):
        def __init__(self, cin, k, exp, cout, se, nl, stride):
            super().__init__()
            layers = []
            if exp != cin:
                layers += [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), act(nl)]
            layers += [nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=False), nn.BatchNorm2d(exp), act(nl)]
            if se:
                layers.append(SqueezeExcite(exp))
            layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
            self.body = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.body(x)
            return x + y if self.residual else y

    class MobileNetV3Small(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish()]
            cin = 16
            for k, exp, cout, se, nl, s in BLOCKS:
                layers.append(Block(cin, k, exp, cout, se, nl, s))
                cin = cout
            layers += [nn.Conv2d(cin, 576, 1, bias=False), nn.BatchNorm2d(576), nn.Hardswish()]
            self.features = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Linear(576, LAST_CHANNELS), nn.Hardswish(), nn.Dropout(0.2),
                                      nn.Linear(LAST_CHANNELS, CLASSES))

        def forward(self, image):
            return self.head(self.features(image).mean((2, 3)))

    torch.manual_seed(SEED)
    m = MobileNetV3Small()
    set_bn_statistics(m, inputs(32), residual_gain=0.25)
    return m


@functools.lru_cache(maxsize=1)
def torch_module():
    return _module()


def inputs(n: int):
    """``n`` deterministic images [n, 3, 96, 96] in [-1, 1] (torch's NCHW order)."""
    return images(n, SEED)


def float_graph():
    return torch_graph(torch_module(), inputs(1), "mobilenet_v3_small")


def int8_graph():
    return int8_graph_of(float_graph(), inputs(32), "mobilenet_v3_small")
