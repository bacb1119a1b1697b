"""torch import of resizing (interpolate / nn.Upsample), nn.ConvTranspose2d and the 1-D
layers (Conv1d, pooling), against torch's own outputs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.errors import UnsupportedOpError  # noqa: E402
from edgekit.frontends.torch_importer import load_torch  # noqa: E402
from edgekit.ir import OpType  # noqa: E402
from tests.frontends.torch_run import run_both  # noqa: E402

F = torch.nn.functional


def assert_close(ours, ref, atol=1e-5):
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref):
        assert o.shape == r.shape
        np.testing.assert_allclose(o, r, rtol=1e-5, atol=atol)


class Resizes(torch.nn.Module):
    def forward(self, y):
        return (F.interpolate(y, scale_factor=2, mode="nearest"),
                F.interpolate(y, size=(7, 9), mode="nearest"),
                F.interpolate(y, size=(3, 11), mode="bilinear", align_corners=False),
                F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=True),
                torch.nn.Upsample(scale_factor=3, mode="nearest-exact")(y),
                F.interpolate(y, size=(2, 3), mode="bilinear", align_corners=False))  # downscaling


def test_resizes_match_torch():
    torch.manual_seed(0)
    g, ours, ref = run_both(Resizes(), torch.randn(2, 3, 5, 6))
    assert_close(ours, ref)
    types = [op.type for op in g.ops]
    assert types.count(OpType.RESIZE_NEAREST_NEIGHBOR) == 3 and types.count(OpType.RESIZE_BILINEAR) == 3


def test_nearest_with_a_scale_torch_computes_differently_is_refused():
    class M(torch.nn.Module):
        def forward(self, y):
            return F.interpolate(y, scale_factor=1.7, mode="nearest")
    with pytest.raises(UnsupportedOpError, match="give the output size"):
        load_torch(M().eval(), (torch.randn(1, 1, 7, 7),))


@pytest.mark.parametrize("k,s,p,op,bias", [(3, 2, 1, 1, True), (4, 2, 1, 0, False), (2, 2, 0, 0, True),
                                           (3, 1, 0, 0, True), (5, 3, 2, 2, False)])
def test_conv_transpose2d_matches_torch(k, s, p, op, bias):
    torch.manual_seed(k * 10 + s)
    m = torch.nn.ConvTranspose2d(3, 4, k, stride=s, padding=p, output_padding=op, bias=bias)
    g, ours, ref = run_both(m, torch.randn(2, 3, 5, 4))
    assert_close(ours, ref)
    assert [o.type for o in g.ops] == [OpType.TRANSPOSE_CONV]


def test_grouped_conv_transpose_is_refused():
    m = torch.nn.ConvTranspose2d(4, 4, 3, groups=2)
    with pytest.raises(UnsupportedOpError, match="grouped transposed"):
        load_torch(m.eval(), (torch.randn(1, 4, 5, 5),))


class Conv1dNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv1d(3, 8, 5, padding=2)
        self.dw = torch.nn.Conv1d(8, 16, 3, groups=8, stride=2)  # depthwise, multiplier 2
        self.c2 = torch.nn.Conv1d(16, 6, 3, padding="same", dilation=2)

    def forward(self, x):
        a = F.max_pool1d(torch.relu(self.dw(torch.relu(self.c1(x)))), 2, ceil_mode=True)
        a = F.avg_pool1d(F.relu6(self.c2(a)), 3, stride=2, padding=1)
        return F.adaptive_avg_pool1d(a, 1), F.adaptive_max_pool1d(a, 1)


def test_conv1d_network_matches_torch_and_runs_as_nhwc_convs():
    torch.manual_seed(1)
    g, ours, ref = run_both(Conv1dNet(), torch.randn(2, 3, 37))
    assert_close(ours, ref)
    types = [op.type for op in g.ops]
    # the activations fused into the convs; the transposes between the 1-D layers cancelled
    assert OpType.RELU not in types and OpType.RELU6 not in types
    # only the one into the first conv: both global pools end in [N, 1, 1, C] (a reshape back)
    assert types.count(OpType.TRANSPOSE) == 1, types
    assert types.count(OpType.CONV_2D) == 2 and types.count(OpType.DEPTHWISE_CONV_2D) == 1


def test_grouped_conv1d_is_refused():
    m = torch.nn.Conv1d(4, 4, 3, groups=2)
    with pytest.raises(UnsupportedOpError, match="grouped 1-D"):
        load_torch(m.eval(), (torch.randn(1, 4, 9),))


class OneD(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.up = torch.nn.ConvTranspose1d(4, 3, 3, stride=2, padding=1, output_padding=1)
        self.up2 = torch.nn.ConvTranspose1d(3, 2, 4, stride=2, padding=1, bias=False)

    def forward(self, x):
        a = self.up2(torch.relu(self.up(x)))
        return (F.interpolate(a, scale_factor=2, mode="nearest"),
                F.interpolate(a, size=23, mode="linear", align_corners=False),
                F.interpolate(x, size=11, mode="linear", align_corners=True),
                F.interpolate(x, scale_factor=3, mode="nearest-exact"))


def test_1d_transposed_convs_and_resizes_match_torch():
    torch.manual_seed(3)
    g, ours, ref = run_both(OneD(), torch.randn(2, 4, 9))
    assert_close(ours, ref)
    types = [op.type for op in g.ops]
    assert types.count(OpType.TRANSPOSE_CONV) == 2 and OpType.RELU not in types
    assert types.count(OpType.RESIZE_NEAREST_NEIGHBOR) == 2 and types.count(OpType.RESIZE_BILINEAR) == 2
