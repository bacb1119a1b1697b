"""The shared MLPerf Tiny KWS and AD int8 models and edgekit's bundled digits CNN
(quantized) on every board: flashed over the serial protocol, run on the board, and
compared with the reference interpreter bit for bit."""

from __future__ import annotations

import pytest

from edgekit.hil import run_hil
from edgekit.hil.rig import qemu_instructions_per_tick
from hwtests.conftest import record
from tests.device import models


def test_handshake(board):
    h = board.client.hello
    assert h.protocol == 1 and h.slot_count >= 2 and h.max_payload >= 256
    if board.expected_target:
        assert h.target == board.expected_target
    info = board.client.info()
    assert info.arena_size > 0 and info.stack_size > 0


@pytest.mark.parametrize("model", ["kws", "ad", "digits"])
def test_model_bit_exact(board, model, n_vectors):
    graph, x = models.MODELS[model]()
    result = run_hil(graph, board.client, x[:n_vectors], target=board.target, name=model)
    if board.qemu is not None:
        result.instructions_per_tick = qemu_instructions_per_tick(result.tick_hz)
    record(dict(device=board.spec, board=result.board, model=model, vectors=result.vectors,
                passed=result.passed, ticks=result.ticks_median, instructions=result.instructions_median,
                arena_used=result.arena_used, stack=result.stack_high_water,
                flash_seconds=result.flash_seconds))
    assert result.passed, "\n".join(m.describe() for m in result.mismatches) or result.error
    # the same vector takes the same ticks on an emulated board (-icount shift=0), to the
    # tick: where the 25 MHz timer stands within its 40 instructions at the start varies
    if board.qemu is not None:
        again = run_hil(graph, board.client, x[:1], target=board.target, flash=False)
        assert abs(again.ticks[0] - result.ticks[0]) <= 1


@pytest.mark.parametrize("side", [32, 96], ids=["32x32x3", "96x96x3"])
def test_image_model_bit_exact(board, side, n_vectors):
    """A CIFAR-10-sized and a person-detection-sized input (3,072 and 27,648 B): larger
    than a frame, so they travel in chunks (docs/serial-protocol.md, INFER_BEGIN)."""
    graph, x = models.image(side)
    result = run_hil(graph, board.client, x[:min(n_vectors, 3)], target=board.target, name=graph.name)
    if board.qemu is not None:
        result.instructions_per_tick = qemu_instructions_per_tick(result.tick_hz)
    record(dict(device=board.spec, board=result.board, model=graph.name, vectors=result.vectors,
                passed=result.passed, ticks=result.ticks_median, instructions=result.instructions_median,
                arena_used=result.arena_used,
                stack=result.stack_high_water, flash_seconds=result.flash_seconds))
    assert result.passed, "\n".join(m.describe() for m in result.mismatches) or result.error
