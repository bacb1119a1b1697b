"""The registry's side of serial-attached boards: an MCU bundle is served on the first
configured board that accepts it, a board that stops answering makes its model unready
(the daemon keeps serving the rest) and a board that answers again brings it back.

The boards here are doubles (a fake opener standing in for the ``serial`` engine: target
check, run, ``healthy``), so these tests cover the registry's rules; the serial engine
itself is tested on a QEMU board in tests/runtime/test_serial_engine.py, and one test
below runs the whole path on ``qemu:cortex-m4``."""

from __future__ import annotations

import asyncio
import json
import shutil

import numpy as np
import pytest

import edgekit
from edgekit.bundle import read_bundle, write_bundle
from edgekit.errors import BadInputError
from edgekit.runtime import SelfTestResult, TensorSpec
from edgekit.runtime.engines import EngineUnavailableError
from edgekit.serve.protocol import InferRequest, InferTensor, ModelUnavailable, ServeError
from edgekit.serve.registry import open_model
from edgekit.serve.service import InferenceService
from tests.serve.test_service import sample


class FakeBoard:
    def __init__(self, target: str):
        self.target = target
        self.alive = True
        self.opens = 0
        self.flashed = []                 # model versions opened on it, in order
        self.failing_self_test = set()
        self.failing_run = set()


class FakeBoardModel:
    """What the serial engine's Model offers the registry, over a FakeBoard: outputs are
    the input's first element plus the model version, so a test can tell the call went
    through and which version answered."""

    engine = "serial"

    def __init__(self, path, board: FakeBoard):
        manifest = read_bundle(path).manifest
        self.version = int(manifest["model"]["version"])
        self.inputs = [TensorSpec.from_manifest(s) for s in manifest["inputs"]]
        self.outputs = [TensorSpec.from_manifest(s) for s in manifest["outputs"]]
        self.board = board
        self.closed = False

    def run(self, feeds):
        if not self.board.alive:
            raise EngineUnavailableError("board at fake port stopped answering")
        if self.version in self.board.failing_run:
            raise RuntimeError("the board answered with an error status")
        first = int(next(iter(feeds.values())).flat[0]) + self.version
        return {o.name: np.full(o.shape, first, o.dtype) for o in self.outputs}

    def self_test(self):
        if self.version in self.board.failing_self_test:
            return SelfTestResult(False, 4, ["vector 0, output 'y': differs by 9 steps (at most 0 allowed)"])
        return SelfTestResult(True, 4, [])

    def healthy(self) -> bool:
        return self.board.alive

    def close(self) -> None:
        self.closed = True


def fake_opener(boards: dict):
    def opener(path, port):
        if port is None:
            return open_model(path, None)
        board = boards[port]
        if not board.alive:
            raise EngineUnavailableError(f"no answer on {port}")
        target = read_bundle(path).target
        if board.target != target:
            raise BadInputError(f"the board on {port} runs firmware for {board.target!r}, the bundle is for "
                                f"{target!r}")
        board.opens += 1
        model = FakeBoardModel(path, board)
        board.flashed.append(model.version)
        return model
    return opener


def _int8_request(graph, value: int) -> InferRequest:
    t = graph.tensor(graph.inputs[0])
    x = np.full(tuple(t.shape), value, np.int8)
    return InferRequest([InferTensor(graph.inputs[0], "INT8", x.shape, x)])


def test_an_mcu_bundle_serves_on_the_first_board_that_accepts_it_and_a_silent_board_makes_it_unready(
        mcu_bundle, bundle_factory, tmp_path):
    path, graph = mcu_bundle
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copyfile(path, repo / path.name)
    bundle_factory(repo)                     # a Linux model beside it keeps serving throughout
    boards = {"fake:m7": FakeBoard("cortex-m7"), "fake:m4": FakeBoard("cortex-m4")}

    async def main():
        service = InferenceService([repo], boards={"left": "fake:m7", "right": "fake:m4"}, poll_interval_s=None)
        service.registry.opener = fake_opener(boards)
        await service.start()
        try:
            assert service.ready()
            assert boards["fake:m4"].opens == 1
            meta = service.model_metadata("handmade")
            assert meta["platform"] == "edgekit-serial"
            r = await service.infer("handmade", None, _int8_request(graph, 5))
            assert int(r.outputs[0].data.flat[0]) == 5 + 1
            # the board stops answering: a request gets 503, the model and the service turn unready
            boards["fake:m4"].alive = False
            with pytest.raises(ModelUnavailable, match="stopped answering"):
                await service.infer("handmade", None, _int8_request(graph, 1))
            assert not service.model_ready("handmade") and not service.ready()
            await service.reload()              # the poll pings it: still silent
            assert not service.model_ready("handmade")
            with pytest.raises(ModelUnavailable, match="not ready"):
                await service.infer("handmade", None, _int8_request(graph, 1))
            assert (await service.infer("tiny", None, InferRequest(
                [InferTensor("x", "FP32", (1, 4), np.zeros((1, 4), np.float32))]))).model_version == "1"
            row = [r for r in service.repository_index() if r["name"] == "handmade"][0]
            assert row["state"] == "UNAVAILABLE" and "board right (fake:m4) stopped answering" in row["reason"]
            # it answers again: the next poll reopens the model (flashing it if the board lost it)
            boards["fake:m4"].alive = True
            await service.reload()
            assert service.ready() and boards["fake:m4"].opens == 2
            r = await service.infer("handmade", None, _int8_request(graph, -3))
            assert int(r.outputs[0].data.flat[0]) == -3 + 1
            assert sample(service, "edgekit_rejected_requests_total", model="handmade", reason="unavailable") == 1
        finally:
            await service.stop()

    asyncio.run(main())


def test_an_mcu_bundle_no_board_takes_is_unready_and_retried_not_rolled_back(mcu_bundle, tmp_path):
    path, graph = mcu_bundle
    repo, state_dir = tmp_path / "repo", tmp_path / "state"
    repo.mkdir()
    shutil.copyfile(path, repo / path.name)
    boards = {"fake:m7": FakeBoard("cortex-m7")}

    async def main():
        service = InferenceService([repo], state_dir=state_dir, boards={"only": "fake:m7"}, poll_interval_s=None)
        service.registry.opener = fake_opener(boards)
        await service.start()
        try:
            assert not service.ready()
            [row] = service.repository_index()
            assert row["state"] == "UNAVAILABLE"
            assert "board only: the board on fake:m7 runs firmware for 'cortex-m7'" in row["reason"]
            assert sample(service, "edgekit_model_rollbacks_total", model="handmade", reason="no_board") == 0
            assert not (state_dir / "state.json").exists()      # nothing served, nothing rolled back
            # the same board now runs cortex-m4 firmware: the next poll serves the model there
            boards["fake:m7"].target = "cortex-m4"
            await service.reload()
            assert service.ready()
            assert json.loads((state_dir / "state.json").read_text())["models"] == {"handmade": {"active": "1"}}
        finally:
            await service.stop()

        service = InferenceService([repo], poll_interval_s=None)
        await service.start()
        try:
            with pytest.raises(ModelUnavailable, match="no board is configured"):
                await service.infer("handmade", None, _int8_request(graph, 1))
        finally:
            await service.stop()

    asyncio.run(main())


def test_an_mcu_bundle_on_an_emulated_cortex_m4_board(mcu_bundle, tmp_path):
    """The whole path on a QEMU board through the real serial engine: flash, self-test with
    the bundle's golden vectors, requests against the reference interpreter."""
    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("needs qemu-system-arm and gcc-arm-none-eabi (scripts/install_system_deps.sh)")
    path, graph = mcu_bundle
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copyfile(path, repo / path.name)

    async def main():
        service = InferenceService([repo], boards={"m4": "qemu:cortex-m4"}, poll_interval_s=None)
        await service.start()
        try:
            assert service.ready(), service.repository_index()
            t = graph.tensor(graph.inputs[0])
            rng = np.random.default_rng(3)
            for _ in range(3):
                x = rng.integers(-128, 127, size=tuple(t.shape), endpoint=True).astype(np.int8)
                r = await service.infer("handmade", None, InferRequest([InferTensor(graph.inputs[0], "INT8",
                                                                                    x.shape, x)]))
                want = edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]]
                assert np.array_equal(r.outputs[0].data, want)
            await service.reload()              # the health ping answers
            assert service.ready()
        finally:
            await service.stop()

    asyncio.run(main())


def _mcu_version(src, dest, version: str):
    """A copy of MCU bundle ``src`` as another model version, through the bundle writer."""
    b = read_bundle(src)
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    manifest["model"] = dict(manifest["model"], version=version)
    return write_bundle(dest, manifest, {n: b.read(n) for n in b.files}).path


def test_a_swap_on_a_board_flashes_the_new_version_and_a_failed_one_flashes_the_old_back(mcu_bundle, tmp_path):
    path, graph = mcu_bundle
    repo, state_dir = tmp_path / "repo", tmp_path / "state"
    repo.mkdir()
    shutil.copyfile(path, repo / "handmade_v1.ekb")
    boards = {"fake:m4": FakeBoard("cortex-m4")}
    board = boards["fake:m4"]
    board.failing_self_test.add(3)

    async def main():
        service = InferenceService([repo], state_dir=state_dir, boards={"m4": "fake:m4"}, poll_interval_s=None)
        service.registry.opener = fake_opener(boards)
        await service.start()
        try:
            assert int((await service.infer("handmade", None, _int8_request(graph, 0))).outputs[0].data.flat[0]) == 1
            _mcu_version(path, repo / "handmade_v2.ekb", "2")
            assert (await service.reload())["loaded"] == ["handmade/2"]
            r = await service.infer("handmade", None, _int8_request(graph, 0))
            assert (r.model_version, int(r.outputs[0].data.flat[0])) == ("2", 2)
            assert sample(service, "edgekit_model_swaps_total", model="handmade") == 1
            # version 3 fails its self-test on the board: version 2 is flashed back and serves
            _mcu_version(path, repo / "handmade_v3.ekb", "3")
            assert (await service.reload())["rolled_back"] == ["handmade/3"]
            assert board.flashed == [1, 2, 3, 2]
            r = await service.infer("handmade", None, _int8_request(graph, 0))
            assert (r.model_version, int(r.outputs[0].data.flat[0])) == ("2", 2)
            assert service.ready()
            assert sample(service, "edgekit_model_rollbacks_total", model="handmade", reason="self_test_failed") == 1
            state = json.loads((state_dir / "state.json").read_text())["models"]["handmade"]
            assert state["active"] == "2" and "differs by 9 steps" in state["rolled_back"]["3"]["reason"]
        finally:
            await service.stop()

    asyncio.run(main())


def test_a_board_version_over_the_error_rate_is_rolled_back_by_flashing_the_earlier_one(mcu_bundle, tmp_path):
    path, graph = mcu_bundle
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copyfile(path, repo / "handmade_v1.ekb")
    boards = {"fake:m4": FakeBoard("cortex-m4")}
    board = boards["fake:m4"]
    board.failing_run.add(2)

    async def main():
        service = InferenceService([repo], boards={"m4": "fake:m4"}, poll_interval_s=None, rollback_window=4,
                                   rollback_error_rate=0.25)
        service.registry.opener = fake_opener(boards)
        await service.start()
        try:
            _mcu_version(path, repo / "handmade_v2.ekb", "2")
            await service.reload()
            for _ in range(2):          # one failure is within 0.25 of 4; the second crosses it
                with pytest.raises(ServeError, match="inference failed"):
                    await service.infer("handmade", None, _int8_request(graph, 0))
            for _ in range(200):
                active = service.registry.models["handmade"].active
                if active is not None and active.version == "1":
                    break
                await asyncio.sleep(0.01)
            r = await service.infer("handmade", None, _int8_request(graph, 0))
            assert (r.model_version, int(r.outputs[0].data.flat[0])) == ("1", 1)
            assert board.flashed == [1, 2, 1]
            assert sample(service, "edgekit_model_rollbacks_total", model="handmade", reason="error_rate") == 1
        finally:
            await service.stop()

    asyncio.run(main())
