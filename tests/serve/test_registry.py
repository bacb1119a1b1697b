"""The model registry on real bundles: which version serves, hot swap with in-flight
requests finishing on the old version, rollback on load failure, self-test failure and
engine error rate (reason logged, counted and persisted), the state file across restarts,
and the repository's rules for bundles that are incomplete or do not verify."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading

import numpy as np
import pytest

from edgekit.bundle import read_bundle, write_bundle
from edgekit.errors import BadInputError
from edgekit.serve.protocol import InferRequest, InferTensor, ModelUnavailable, ServeError
from edgekit.serve.registry import open_model
from edgekit.serve.repository import Repository, version_key
from edgekit.serve.service import InferenceService
from tests.serve.conftest import tiny_expected
from tests.serve.test_service import sample


def _request(x) -> InferRequest:
    return InferRequest([InferTensor("x", "FP32", x.shape, x)])


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 4)).astype(np.float32)


def _state(state_dir) -> dict:
    return json.loads((state_dir / "state.json").read_text())["models"]


class Recorder:
    """An opener that records which bundles were opened and can gate or break ``run`` of
    chosen versions (the self-test goes through the real model, unaffected)."""

    def __init__(self):
        self.opened = []
        self.gate = threading.Event()
        self.gate.set()
        self.gated = set()
        self.failing = set()
        self.models = []

    def __call__(self, path, port):
        version = read_bundle(path).manifest["model"]["version"]
        self.opened.append(version)
        model = open_model(path, port)
        self.models.append((version, model))
        return _Wrapped(model, version, self)


class _Wrapped:
    def __init__(self, model, version, rec):
        self._model, self._version, self._rec = model, version, rec

    def __getattr__(self, name):
        return getattr(self._model, name)

    def run(self, feeds):
        if self._version in self._rec.gated:
            self._rec.gate.wait(10)
        if self._version in self._rec.failing:
            raise RuntimeError("engine fault injected by the test")
        return self._model.run(feeds)


def _service(repo, state_dir=None, rec=None, **kw) -> InferenceService:
    kw.setdefault("poll_interval_s", None)
    service = InferenceService([repo], state_dir=state_dir, **kw)
    if rec is not None:
        service.registry.opener = rec
    return service


def test_newest_version_serves_and_a_swap_lets_in_flight_requests_finish_on_the_old(bundle_factory, tmp_path):
    repo, state_dir = tmp_path / "repo", tmp_path / "state"
    bundle_factory(repo, version="1")
    rec = Recorder()

    async def main():
        service = _service(repo, state_dir, rec, workers_per_model=2, rollback_window=0)
        await service.start()
        try:
            assert service.model_metadata("tiny")["versions"] == ["1"]
            rec.gate.clear()
            rec.gated.add("1")
            old_request = asyncio.ensure_future(service.infer("tiny", None, _request(_x(1))))
            await asyncio.sleep(0.05)
            bundle_factory(repo, version="2")
            summary = await service.reload()
            assert summary == {"loaded": ["tiny/2"], "rolled_back": [], "unchanged": []}
            # new requests go to version 2 at once, while version 1 still runs the old one
            r = await service.infer("tiny", None, _request(_x(2)))
            assert r.model_version == "2"
            np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", "2", _x(2)), rtol=1e-5, atol=1e-5)
            assert not old_request.done()
            v1_models = [m for v, m in rec.models if v == "1"]
            assert all(m._engine is not None for m in v1_models)
            rec.gate.set()
            r = await old_request
            assert r.model_version == "1"
            np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", "1", _x(1)), rtol=1e-5, atol=1e-5)
            await asyncio.sleep(0.05)
            assert all(m._engine is None for m in v1_models)       # closed once its last request finished
            assert _state(state_dir)["tiny"]["active"] == "2"
            assert sample(service, "edgekit_model_swaps_total", model="tiny") == 1
            assert sample(service, "edgekit_model_version_info", model="tiny", version="2") == 1
            assert sample(service, "edgekit_model_version_info", model="tiny", version="1") == 0
            rows = {r["version"]: r for r in service.repository_index()}
            assert rows["2"]["state"] == "READY" and rows["1"]["state"] == "UNAVAILABLE"
            assert await service.reload() == {"loaded": [], "rolled_back": [], "unchanged": ["tiny"]}
        finally:
            rec.gate.set()
            await service.stop()

    asyncio.run(main())


def test_self_test_failure_is_rolled_back_persisted_and_not_retried_until_the_bundle_changes(
        bundle_factory, tmp_path, caplog):
    repo, state_dir = tmp_path / "repo", tmp_path / "state"
    bundle_factory(repo, version="1")
    bundle_factory(repo, version="2", broken_golden=True, filename="tiny_v2.ekb")
    rec = Recorder()

    async def main():
        service = _service(repo, state_dir, rec)
        with caplog.at_level(logging.WARNING, logger="edgekit.serve"):
            await service.start()
        try:
            assert rec.opened == ["2", "1"]           # newest first; it failed, the next one serves
            r = await service.infer("tiny", None, _request(_x()))
            assert r.model_version == "1"
            assert sample(service, "edgekit_model_rollbacks_total", model="tiny", reason="self_test_failed") == 1
            rows = {r["version"]: r for r in service.repository_index()}
            assert rows["2"]["state"] == "UNAVAILABLE" and "failed its self-test" in rows["2"]["reason"]
            assert "vector 0, output 'y'" in rows["2"]["reason"]
            assert any("version 2 rolled back (self_test_failed)" in m for m in caplog.messages)
            state = _state(state_dir)["tiny"]
            assert state["active"] == "1" and "self-test" in state["rolled_back"]["2"]["reason"]
        finally:
            await service.stop()

        # a restart serves version 1 and does not try the same version 2 again
        rec.opened.clear()
        service = _service(repo, state_dir, rec)
        await service.start()
        try:
            assert rec.opened == ["1"]
            assert sample(service, "edgekit_model_rollbacks_total", model="tiny", reason="self_test_failed") == 0
            # a new bundle of version 2 (other contents) is tried, and serves
            (repo / "tiny_v2.ekb").unlink()
            bundle_factory(repo, version="2")
            assert (await service.reload())["loaded"] == ["tiny/2"]
            assert (await service.infer("tiny", None, _request(_x()))).model_version == "2"
            assert _state(state_dir)["tiny"]["active"] == "2"
        finally:
            await service.stop()

    asyncio.run(main())


def test_a_version_that_fails_to_load_is_rolled_back(bundle_factory, tmp_path):
    repo = tmp_path / "repo"
    good = bundle_factory(repo, version="1")
    b = read_bundle(good)
    files = {n: b.read(n) for n in b.files}
    files[b.payload("model")] = b"not a tflite model at all"
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    manifest["model"] = dict(manifest["model"], version="2")
    write_bundle(repo / "tiny_v2_garbage.ekb", manifest, files)     # hashes right, model file wrong

    async def main():
        service = _service(repo)
        await service.start()
        try:
            assert service.ready()
            assert (await service.infer("tiny", None, _request(_x()))).model_version == "1"
            assert sample(service, "edgekit_model_rollbacks_total", model="tiny", reason="load_failed") == 1
            rows = {r["version"]: r for r in service.repository_index()}
            assert rows["2"]["state"] == "UNAVAILABLE" and "failed to load" in rows["2"]["reason"]
        finally:
            await service.stop()

    asyncio.run(main())


def test_error_rate_over_the_first_requests_rolls_back_and_survives_a_restart(bundle_factory, tmp_path):
    repo, state_dir = tmp_path / "repo", tmp_path / "state"
    bundle_factory(repo, version="1")
    rec = Recorder()
    rec.failing.add("2")

    async def main():
        service = _service(repo, state_dir, rec, rollback_window=6, rollback_error_rate=0.5)
        await service.start()
        try:
            bundle_factory(repo, version="2")
            assert (await service.reload())["loaded"] == ["tiny/2"]
            # client errors are not engine errors: they never roll a version back
            for _ in range(10):
                with pytest.raises(ServeError) as info:
                    await service.infer("tiny", None, InferRequest([]))
                assert info.value.http_status == 400
            # three engine failures are within 0.5 of 6; the fourth crosses it
            for _ in range(4):
                with pytest.raises(ServeError, match="inference failed") as info:
                    await service.infer("tiny", None, _request(_x()))
                assert info.value.http_status == 500
            for _ in range(100):
                if service.registry.models["tiny"].active.version == "1":
                    break
                await asyncio.sleep(0.01)
            r = await service.infer("tiny", None, _request(_x(3)))
            assert r.model_version == "1"
            np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", "1", _x(3)), rtol=1e-5, atol=1e-5)
            assert sample(service, "edgekit_model_rollbacks_total", model="tiny", reason="error_rate") == 1
            assert sample(service, "edgekit_inference_errors_total", model="tiny", version="2") == 4
            state = _state(state_dir)["tiny"]
            assert state["active"] == "1" and "4 of its first 4 requests failed" in state["rolled_back"]["2"]["reason"]
        finally:
            await service.stop()

        rec.opened.clear()
        service = _service(repo, state_dir, rec)
        await service.start()
        try:
            assert rec.opened == ["1"]
            assert (await service.infer("tiny", None, _request(_x()))).model_version == "1"
        finally:
            await service.stop()

    asyncio.run(main())


def test_a_version_within_the_error_rate_keeps_serving_and_the_old_one_is_closed(bundle_factory, tmp_path):
    repo = tmp_path / "repo"
    bundle_factory(repo, version="1")
    rec = Recorder()

    async def main():
        service = _service(repo, rec=rec, rollback_window=3)
        await service.start()
        try:
            bundle_factory(repo, version="2")
            await service.reload()
            v1_models = [m for v, m in rec.models if v == "1"]
            assert all(m._engine is not None for m in v1_models)     # kept for a rollback during probation
            for i in range(3):
                assert (await service.infer("tiny", None, _request(_x(i)))).model_version == "2"
            for _ in range(100):
                if all(m._engine is None for m in v1_models):
                    break
                await asyncio.sleep(0.01)
            assert all(m._engine is None for m in v1_models)
        finally:
            await service.stop()

    asyncio.run(main())


def test_bundles_that_do_not_verify_are_reported_once_and_never_served(bundle_factory, tmp_path):
    repo = tmp_path / "repo"
    bundle_factory(repo, version="1")
    tampered = bundle_factory(repo, version="2", folder=True)
    golden = tampered / "golden.npz"
    data = bytearray(golden.read_bytes())
    data[-1] ^= 0xFF
    golden.write_bytes(bytes(data))                             # one byte changed: hash mismatch
    (repo / "notes.ekb").write_bytes(b"not a zip")

    async def main():
        service = _service(repo)
        await service.start()
        try:
            assert service.ready()
            assert (await service.infer("tiny", None, _request(_x()))).model_version == "1"
            bad = {r["name"]: r for r in service.repository_index() if r["version"] == ""}
            assert "hash mismatch in 'golden.npz'" in bad[tampered.name]["reason"]
            assert "not a readable .ekb archive" in bad["notes.ekb"]["reason"]
            assert bad[tampered.name]["state"] == "UNAVAILABLE"
            await service.reload()
            assert sample(service, "edgekit_bad_bundles_total") == 2            # counted once each
            assert service.model_metadata("tiny")["versions"] == ["1"]
        finally:
            await service.stop()

    asyncio.run(main())


def test_a_bundle_being_copied_is_not_picked_up_until_it_is_complete(bundle_factory, tmp_path):
    repo, spare = tmp_path / "repo", tmp_path / "spare"
    bundle_factory(repo, version="1")
    full = bundle_factory(spare, version="2").read_bytes()

    async def main():
        service = _service(repo)
        await service.start()
        try:
            (repo / "tiny_v2.ekb.part").write_bytes(full)          # a download still named .part
            (repo / ".tiny_v3.ekb").write_bytes(full)               # a hidden temporary name
            assert (await service.reload())["loaded"] == []
            assert [r["version"] for r in service.repository_index()] == ["1"]
            partial = repo / "tiny_v2.ekb"
            partial.write_bytes(full[: len(full) // 2])             # half copied
            assert (await service.reload())["loaded"] == []
            assert (await service.infer("tiny", None, _request(_x()))).model_version == "1"
            partial.write_bytes(full)                               # the copy completes
            assert (await service.reload())["loaded"] == ["tiny/2"]
            assert (await service.infer("tiny", None, _request(_x()))).model_version == "2"
        finally:
            await service.stop()

    asyncio.run(main())


def test_an_entry_is_taken_only_when_unchanged_across_two_scans(bundle_factory, tmp_path):
    repo = tmp_path / "repo"
    path = bundle_factory(repo, version="1")
    scans = Repository([repo])
    assert scans.scan() == ([], [], 1)                 # first seen: wait
    entries, bad, pending = scans.scan()
    assert [(e.name, e.version) for e in entries] == [("tiny", "1")] and not bad and not pending
    os.utime(path, ns=(1, 1))                           # changed (mtime): wait again
    assert scans.scan() == ([], [], 1)
    assert len(scans.scan()[0]) == 1
    shutil.rmtree(repo)
    repo.mkdir()
    assert scans.scan() == ([], [], 0)


def test_versions_sort_as_numbers():
    assert sorted(["10", "9", "1.2", "1.10", "2"], key=version_key) == ["1.2", "1.10", "2", "9", "10"]


def test_a_model_whose_bundles_are_all_gone_is_unloaded(bundle_factory, tmp_path):
    repo = tmp_path / "repo"
    bundle_factory(repo, version="1")
    other = bundle_factory(repo, name="other", version="1")

    async def main():
        service = _service(repo)
        await service.start()
        try:
            other.unlink()
            await service.reload()
            with pytest.raises(ServeError, match="unknown model 'other'"):
                await service.infer("other", None, _request(_x()))
            assert service.ready() and [r["name"] for r in service.repository_index()] == ["tiny"]
        finally:
            await service.stop()

    asyncio.run(main())


def test_a_model_with_no_loadable_version_is_unready_with_the_reason(bundle_factory, tmp_path):
    repo = tmp_path / "repo"
    bundle_factory(repo, version="1", broken_golden=True)

    async def main():
        service = _service(repo)
        await service.start()          # does not raise
        try:
            assert service.live() and not service.ready() and not service.model_ready("tiny")
            with pytest.raises(ModelUnavailable, match="not ready: .*self-test"):
                await service.infer("tiny", None, _request(_x()))
        finally:
            await service.stop()

    asyncio.run(main())


def test_a_damaged_state_file_is_ignored_and_a_state_dir_that_is_a_file_is_a_user_error(bundle_factory, tmp_path,
                                                                                          caplog):
    repo, state_dir = tmp_path / "repo", tmp_path / "state"
    bundle_factory(repo, version="1")
    state_dir.mkdir()
    (state_dir / "state.json").write_bytes(b'{"format": "edgekit-serve-state", "models": {"tiny": {"act')

    async def main():
        with caplog.at_level(logging.WARNING, logger="edgekit.serve"):
            service = _service(repo, state_dir)
        await service.start()
        try:
            assert service.ready()
            assert any("state file" in m and "unreadable" in m for m in caplog.messages)
            assert _state(state_dir) == {"tiny": {"active": "1"}}     # rewritten whole
        finally:
            await service.stop()

    asyncio.run(main())
    (tmp_path / "plain").write_text("x")
    with pytest.raises(BadInputError, match="plain/state: cannot create it"):
        InferenceService([repo], state_dir=tmp_path / "plain" / "state")
    with pytest.raises(BadInputError, match="plain is a file, not a folder"):
        InferenceService([repo], state_dir=tmp_path / "plain")


def test_polling_picks_up_a_new_version_without_a_reload(bundle_factory, tmp_path):
    repo, spare = tmp_path / "repo", tmp_path / "spare"
    bundle_factory(repo, version="1")
    v2 = bundle_factory(spare, version="2")

    async def main():
        service = _service(repo, poll_interval_s=0.05)
        await service.start()
        try:
            assert (await service.infer("tiny", None, _request(_x()))).model_version == "1"
            os.replace(v2, repo / v2.name)
            for _ in range(200):
                if (await service.infer("tiny", None, _request(_x()))).model_version == "2":
                    break
                await asyncio.sleep(0.02)
            r = await service.infer("tiny", None, _request(_x(4)))
            assert r.model_version == "2"
            np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", "2", _x(4)), rtol=1e-5, atol=1e-5)
        finally:
            await service.stop()

    asyncio.run(main())
