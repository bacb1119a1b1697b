"""Serial-attached boards behind the daemon: ``InferenceService`` with a board
(``qemu:cortex-m4``: an emulated mps2-an386 running the model-slot firmware, started by
the serial engine) serves an MCU bundle from its repository. Answers are checked against
edgekit's reference interpreter; then the emulator is killed (SIGKILL, like pulling the
cable): the model turns unready and answers 503 (ModelUnavailable) while the service
stays live, and it comes back on its own once the registry's retry reopens it. A new
version swaps in on the board after its self-test; one whose golden vectors the board
does not reproduce is rolled back and the old version flashed back."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import time

import numpy as np
import pytest

import edgekit
from edgekit.bundle import compile_bundle, read_bundle, write_bundle
from edgekit.serve.protocol import InferRequest, InferTensor, ModelUnavailable
from edgekit.serve.service import InferenceService
from tests.backends.c.graphs import cases, random_inputs
from tests.device import models

TARGET = "cortex-m4"
POLL_S = 0.2


def _qemu_children() -> set:
    """The pids of the live qemu-system-* processes this test process started."""
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm.startswith("qemu-system") and int(rest[1]) == os.getpid() and rest[0] not in ("Z", "X"):
            pids.add(int(entry))
    return pids


@pytest.fixture(scope="module")
def mcu_model(tmp_path_factory):
    models.require_firmware_tools()
    models.slot_elf(TARGET)  # built (or found in the cache) before the service's timers run
    graph = cases()["handmade"]
    graph.name = "tiny_m4"
    repo = tmp_path_factory.mktemp("repo")
    compile_bundle(graph, TARGET, repo / "tiny_m4.ekb", model_version="3")
    xs = random_inputs(graph, np.random.default_rng(5), 6)
    return graph, repo, xs


async def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


def _request(graph, x) -> InferRequest:
    return InferRequest([InferTensor(graph.inputs[0], "INT8", tuple(x.shape), np.ascontiguousarray(x))])


def test_board_backed_model_serves_turns_unready_when_the_board_dies_and_recovers(mcu_model, tmp_path):
    graph, repo, xs = mcu_model

    def reference(x):
        return edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]]

    async def scenario():
        before = _qemu_children()
        service = InferenceService([repo], boards={"m4": f"qemu:{TARGET}"}, state_dir=tmp_path / "state",
                                   poll_interval_s=POLL_S, request_timeout_s=20)
        await service.start()
        try:
            assert service.ready() and service.model_ready("tiny_m4")
            meta = service.model_metadata("tiny_m4")
            assert meta["platform"] == "edgekit-serial" and meta["versions"] == ["3"]
            for i in range(3):
                x = xs[i:i + 1]
                res = await service.infer("tiny_m4", None, _request(graph, x))
                assert res.model_version == "3"
                assert np.array_equal(res.outputs[0].data, reference(x))
            qemu = _qemu_children() - before
            assert len(qemu) == 1
            os.kill(qemu.pop(), signal.SIGKILL)  # the board is gone

            # the next request, or the next health check, finds out; never the daemon
            with pytest.raises(ModelUnavailable, match="board m4"):
                await service.infer("tiny_m4", None, _request(graph, xs[3:4]))
            assert not service.model_ready("tiny_m4") and not service.ready()
            assert service.live()
            index = {e["name"]: e for e in service.repository_index()}
            assert index["tiny_m4"]["state"] != "READY" and "m4" in index["tiny_m4"]["reason"]

            # the registry's retry reopens the model on the board (a new emulator: flashed again)
            assert await _wait(lambda: service.model_ready("tiny_m4"), timeout=30), service.repository_index()
            res = await service.infer("tiny_m4", None, _request(graph, xs[4:5]))
            assert np.array_equal(res.outputs[0].data, reference(xs[4:5]))
            assert len(_qemu_children() - before) == 1  # the dead board's engine was closed
        finally:
            await service.stop(drain_timeout_s=5)
        assert _qemu_children() == before  # stopping the service stopped the emulator

    asyncio.run(scenario())


def _mcu_bundle(graph, dest, version: str, wrong_golden: bool = False):
    path = compile_bundle(graph, TARGET, dest, model_version=version).bundle.path
    if not wrong_golden:
        return path
    # the same bundle with golden outputs the model does not give (written by the public writer)
    b = read_bundle(path)
    files = {n: b.read(n) for n in b.files}
    ins, outs = b.golden()
    buf = io.BytesIO()
    np.savez(buf, **{"in.0": ins[0], "out.0": (outs[0].astype(np.int16) + 50).clip(-128, 127).astype(np.int8)})
    files[b.manifest["golden"]["file"]] = buf.getvalue()
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    path.unlink()
    return write_bundle(path, manifest, files).path


def test_new_version_swaps_in_on_the_board_and_a_failing_one_is_rolled_back(mcu_model, tmp_path):
    graph3, _, xs = mcu_model
    graph4 = cases(seed=11)["handmade"]  # other weights: the answers tell the versions apart
    graph4.name = "tiny_m4"
    repo = tmp_path / "repo"
    repo.mkdir()
    _mcu_bundle(graph3, repo / "v3.ekb", "3")

    def reference(graph, x):
        return edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]]

    async def scenario():
        before = _qemu_children()
        service = InferenceService([repo], boards={"m4": f"qemu:{TARGET}"}, state_dir=tmp_path / "state",
                                   poll_interval_s=None, request_timeout_s=20)
        await service.start()
        try:
            x = xs[:1]
            assert (await service.infer("tiny_m4", None, _request(graph3, x))).model_version == "3"
            _mcu_bundle(graph4, repo / "v4.ekb", "4")
            summary = await service.reload()
            assert "tiny_m4" in str(summary["loaded"]), summary
            res = await service.infer("tiny_m4", None, _request(graph4, x))
            assert res.model_version == "4" and np.array_equal(res.outputs[0].data, reference(graph4, x))
            assert not np.array_equal(reference(graph3, x), reference(graph4, x))

            _mcu_bundle(graph3, repo / "v5.ekb", "5", wrong_golden=True)
            summary = await service.reload()
            assert "5" in str(summary["rolled_back"]), summary
            assert service.model_ready("tiny_m4")
            res = await service.infer("tiny_m4", None, _request(graph4, x))
            assert res.model_version == "4" and np.array_equal(res.outputs[0].data, reference(graph4, x))
            index = {e["version"]: e for e in service.repository_index()}
            assert "failed its self-test" in index["5"]["reason"] and "differs by" in index["5"]["reason"]
            assert len(_qemu_children() - before) == 1  # one board, one emulator
        finally:
            await service.stop(drain_timeout_s=5)
        assert _qemu_children() == before

    asyncio.run(scenario())
