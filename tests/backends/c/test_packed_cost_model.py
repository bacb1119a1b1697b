"""The per-layer kernel choice of the C backend (edgekit/backends/c/packed.py): its cost
model against instruction counts measured on the emulated Cortex-M4 (qemu -icount), both
kernels forced on the same one-op models, outputs checked against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.backends.c import compile_model, packed
from edgekit.backends.c.layer_bench import conv_layer, fc_layer, time_layers
from tests.backends.c.support import require

# (kind, shape): layers where each kernel wins, big and small
SHAPES = [
    ("conv", dict(h=5, w=25, cin=64, cout=64)),                               # KWS pointwise
    ("conv", dict(h=12, w=4, cin=1, cout=16, kh=10, kw=4, stride=(2, 2), pads=(4, 1, 5, 1))),
    ("conv", dict(h=1, w=1, cin=2, cout=2)),                                  # one pixel, K = 2
    ("conv", dict(h=3, w=3, cin=2, cout=2, kh=3, kw=3, pads=(1, 1, 1, 1))),   # taps of 2 bytes
    ("fc", dict(k=640, cout=128)),                                            # AD
]


def _predicted(kind, shape, graph):
    if kind == "fc":
        return {k: packed.fc_cost(k, batches=1, k=shape["k"], cout=shape["cout"]) for k in ("generic", "packed")}
    y = graph.output_tensors()[0].shape
    pads, stride = shape.get("pads", (0, 0, 0, 0)), shape.get("stride", (1, 1))
    edge = packed.edge_fraction(shape["w"], y[2], shape.get("kw", 1), stride[1], pads[1])
    return {k: packed.conv_cost(k, pixels=y[1] * y[2], cout=shape["cout"], kh=shape.get("kh", 1),
                                kw=shape.get("kw", 1), cin=shape["cin"], edge=edge)
            for k in ("generic", "packed")}


@pytest.fixture(scope="module")
def measured():
    require("arm-none-eabi-gcc")
    require("qemu-system-arm")
    rng = np.random.default_rng(0)
    rows = []
    for kind, shape in SHAPES:
        g = conv_layer(**shape) if kind == "conv" else fc_layer(**shape)
        x = rng.integers(-128, 128, size=(2,) + g.input_tensors()[0].shape[1:]).astype(np.int8)
        got = {}
        for choice in ("generic", "packed"):
            with packed.forced_choice(choice):
                got[choice] = time_layers(g, x, "cortex-m4")[0].instructions
        rows.append((kind, shape, g, got, _predicted(kind, shape, g)))
    return rows


def test_model_orders_the_kernels_as_the_board_does(measured):
    wins = set()
    for kind, shape, _, got, pred in measured:
        if abs(got["generic"] - got["packed"]) <= 0.1 * min(got.values()):
            continue  # a tie on the board: either choice is right
        board = min(got, key=got.get)
        wins.add(board)
        assert min(pred, key=pred.get) == board, (kind, shape, got, pred)
    assert wins == {"generic", "packed"}, "the shapes must include a win for each kernel"


def test_model_is_within_a_quarter_on_large_layers(measured):
    for kind, shape, _, got, pred in measured:
        for k in ("generic", "packed"):
            if got[k] > 20_000:
                assert 0.75 <= pred[k] / got[k] <= 1.25, (kind, shape, k, got, pred)


def test_compile_takes_the_kernel_the_model_prefers(measured, tmp_path):
    for i, (kind, shape, g, _got, pred) in enumerate(measured):
        res = compile_model(g, "cortex-m4", tmp_path / f"m{i}", measure=False)
        chosen = "packed" if res.ops[0]["kernel"].endswith("_packed") else "generic"
        assert chosen == min(pred, key=pred.get), (kind, shape, res.ops[0]["kernel"], pred)
        portable = compile_model(g, "cortex-m4", tmp_path / f"p{i}", variant="portable", measure=False)
        assert not portable.ops[0]["kernel"].endswith("_packed")  # the portable layout stays
