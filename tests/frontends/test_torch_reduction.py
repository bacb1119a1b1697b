"""torch import of matrix products on activations (matmul / bmm / @, 4-D included,
scaled_dot_product_attention), nn.LayerNorm, amax / max(dim) / sum / argmax / argmin
and F.normalize, against torch's own outputs."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from edgekit.errors import UnsupportedOpError  # noqa: E402
from edgekit.frontends.torch_importer import load_torch  # noqa: E402
from edgekit.ir import DType, OpType  # noqa: E402
from tests.frontends.torch_run import run_both  # noqa: E402

F = torch.nn.functional


def assert_close(ours, ref, atol=1e-5):
    assert len(ours) == len(ref)
    for o, r in zip(ours, ref):
        assert o.shape == r.shape, (o.shape, r.shape)
        if r.dtype.kind == "i":
            np.testing.assert_array_equal(o, r)
        else:
            np.testing.assert_allclose(o, r, rtol=1e-4, atol=atol)


class Attention(torch.nn.Module):
    """Multi-head self-attention written with 4-D heads, as most user code does."""

    def __init__(self, d=16, heads=2):
        super().__init__()
        self.heads, self.dh = heads, d // heads
        self.q, self.k, self.v = (torch.nn.Linear(d, d) for _ in range(3))
        self.ln = torch.nn.LayerNorm(d)

    def forward(self, x):
        b, t, d = x.shape
        y = self.ln(x)
        q = self.q(y).view(b, t, self.heads, self.dh).transpose(1, 2)
        k = self.k(y).view(b, t, self.heads, self.dh).transpose(1, 2)
        v = self.v(y).view(b, t, self.heads, self.dh).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) * self.dh ** -0.5, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(b, t, d)
        s = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        return x + o, s, torch.bmm(y, y.transpose(1, 2))


def test_attention_with_4d_heads_sdpa_and_bmm():
    torch.manual_seed(0)
    g, ours, ref = run_both(Attention(), torch.randn(1, 7, 16))
    assert_close(ours, ref)
    types = [op.type for op in g.ops]
    assert types.count(OpType.BATCH_MATMUL) == 5
    # k.transpose(-1, -2) feeding the product is adj_y, not a TRANSPOSE
    assert any(op.attrs.get("adj_y") for op in g.ops if op.type is OpType.BATCH_MATMUL)
    assert OpType.RSQRT in types and OpType.MEAN in types  # the decomposed layer norm


class MHA(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x):
        return self.mha(x, x, x, need_weights=False)[0]


def test_multihead_attention_module():
    torch.manual_seed(3)
    g, ours, ref = run_both(MHA(), torch.randn(1, 9, 16))
    assert_close(ours, ref)
    assert [op.type for op in g.ops].count(OpType.BATCH_MATMUL) == 2


class Reductions(torch.nn.Module):
    def forward(self, x, z):
        return (x.amax(dim=(1, 3)), torch.max(x, dim=2, keepdim=True)[0], x.sum(dim=1), z.sum(-1, keepdim=True),
                torch.argmax(x, dim=1), torch.argmin(z, dim=-1, keepdim=True), F.normalize(z, dim=-1),
                F.normalize(x, dim=-1), F.normalize(x, dim=1), F.normalize(z, dim=1))


def test_reductions_and_normalize_match_torch():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 4, 5)
    z = torch.randn(2, 6, 9)
    g, ours, ref = run_both(Reductions(), x, z)
    ref = [r.astype(np.int32) if r.dtype == np.int64 else r for r in ref]  # edgekit's indices are int32
    assert_close(ours, ref)
    types = {op.type for op in g.ops}
    assert {OpType.REDUCE_MAX, OpType.SUM, OpType.ARG_MAX, OpType.ARG_MIN, OpType.L2_NORMALIZATION} <= types
    assert g.tensor(g.outputs[4]).dtype is DType.INT32


def test_layer_norm_4d_and_without_affine():
    torch.manual_seed(2)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.LayerNorm(6, elementwise_affine=False))
    _, ours, ref = run_both(m, torch.randn(1, 3, 5, 6))
    assert_close(ours, ref)


class Masked(torch.nn.Module):
    def forward(self, q):
        return F.scaled_dot_product_attention(q, q, q, is_causal=True)


class Norm(torch.nn.Module):
    def forward(self, x):
        return torch.linalg.vector_norm(x, dim=-1, keepdim=True)


@pytest.mark.parametrize("module, match", [(Masked(), "mask"), (Norm(), "L2 norm")])
def test_unsupported_forms_are_named(module, match):
    with pytest.raises(UnsupportedOpError, match=match):
        load_torch(module, (torch.randn(1, 2, 4, 8),))
