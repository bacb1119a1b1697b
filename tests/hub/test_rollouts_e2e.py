"""End to end: publish at a hub (SQLite) serving its real HTTP app (Uvicorn on loopback);
a device fetches the update over HTTP, installs it into the folder a real
InferenceService watches, which swaps the new version in after its self-test; the
device's forwarder carries the deploy record back over HTTP and the hub's rollout state
turns "installed"."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import numpy as np
import uvicorn

from edgekit.hub import Database, HubStore, rollouts
from edgekit.hub.http_app import create_app
from edgekit.serve.protocol import InferRequest, InferTensor
from edgekit.serve.service import InferenceService
from edgekit.sync.forwarder import Forwarder
from edgekit.sync.queue import SyncQueue
from edgekit.sync.signing import create_key
from edgekit.sync.transports.http import HttpTransport
from edgekit.sync.updates import HttpUpdateSource, UpdateClient
from tests.serve.conftest import tiny_expected
from tests.sync.update_fixtures import compile_tiny, trust_dir_with


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HubServer:
    def __init__(self, store):
        self.port = _free_port()
        config = uvicorn.Config(create_app(store), host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "hub HTTP server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)


def _infer(service, loop, x):
    req = InferRequest(inputs=[InferTensor("x", "FP32", (1, 4), x)])
    return asyncio.run_coroutine_threadsafe(service.infer("tiny", None, req), loop).result(10)


def test_publish_fetch_install_swap_and_report(tmp_path):
    keys = tmp_path / "keys"
    create_key(keys, "hub")
    bundles = tmp_path / "bundles"
    bundles.mkdir()
    v1, v2 = compile_tiny(bundles, "tiny", "1"), compile_tiny(bundles, "tiny", "2")
    store = HubStore(Database(f"sqlite:///{tmp_path / 'hub.db'}"))
    rollouts.add_to_group(store, "field", ["dev-1"])

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tiny-1.ekb").write_bytes(v1.read_bytes())      # what the device serves today
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    service = InferenceService([repo], poll_interval_s=0.2)
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(60)
    queue = SyncQueue(tmp_path / "queue.db")
    try:
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        r = _infer(service, loop, x)
        assert r.model_version == "1"

        m = rollouts.publish(store, v2, "field", key_dir=keys, key_name="hub", chunk_size=512)
        assert [d["state"] for d in rollouts.rollout_status(store, m["update_id"])] == ["offered"]

        def activation(model, version):
            for row in service.repository_index():
                if row["name"] == model and row["version"] == version:
                    if row["state"] == "READY":
                        return "ready", ""
                    if row["reason"] and row["state"] == "UNAVAILABLE" and "is served" not in row["reason"] \
                            and row["reason"] != "not loaded":
                        return "failed", row["reason"]
            return None, ""

        with HubServer(store) as url:
            client = UpdateClient(tmp_path / "state", trust_dir_with(keys, "hub", tmp_path / "trust"), repo,
                                  targets=["x86_64"], queue=queue, activation=activation, activation_timeout_s=60)
            (result,) = client.run_once(HttpUpdateSource(url, "dev-1"))
            assert result.state == "installed" and result.reason == "serving after its self-test", result
            r = _infer(service, loop, x)
            assert r.model_version == "2"
            np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", "2", x), rtol=1e-5, atol=1e-5)

            forwarder = Forwarder(queue, HttpTransport(url, "dev-1"), "dev-1")
            sent = forwarder.run_once()
            assert sent["acked"] == 2, sent                     # "fetching" and "installed"
            status = rollouts.rollout_status(store, m["update_id"])
            assert [(d["device_id"], d["state"]) for d in status] == [("dev-1", "installed")]
            [dev] = [d for d in store.devices() if d["device_id"] == "dev-1"]
            assert dev["rollout"] == "tiny 2: installed"
            # offered again on the next poll: nothing to do
            assert client.run_once(HttpUpdateSource(url, "dev-1")) == []
    finally:
        queue.close()
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        store.db.close()


def test_an_update_serve_rolls_back_is_reported_failed(tmp_path):
    """Signed, verified and installed, but its golden vectors fail on the device: serve
    keeps the old version and the client reports "failed" with serve's reason."""
    from tests.serve.conftest import IN_SHAPE, _with_golden
    from edgekit.sync.updates import DirUpdateSource
    from tests.sync.update_fixtures import RecordingQueue, export_update, signed_update

    keys = tmp_path / "keys"
    create_key(keys, "hub")
    v1 = compile_tiny(tmp_path, "tiny", "1")
    good2 = compile_tiny(tmp_path, "tiny", "2")
    x = np.random.default_rng(7).standard_normal((4, *IN_SHAPE)).astype(np.float32)
    broken2 = _with_golden(good2, tmp_path / "broken2.ekb", x, tiny_expected("tiny", "2", x) + 1.0)
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tiny-1.ekb").write_bytes(v1.read_bytes())
    m = signed_update(broken2, keys, "hub", name="tiny", version="2", chunk_size=512)
    export_update(m, broken2.read_bytes(), tmp_path / "usb")

    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    service = InferenceService([repo], poll_interval_s=0.2)
    asyncio.run_coroutine_threadsafe(service.start(), loop).result(60)
    try:
        def activation(model, version):
            for row in service.repository_index():
                if (row["name"], row["version"]) == (model, version):
                    if row["state"] == "READY":
                        return "ready", ""
                    if "self-test" in row["reason"]:
                        return "failed", row["reason"]
            return None, ""
        queue = RecordingQueue()
        client = UpdateClient(tmp_path / "state", trust_dir_with(keys, "hub", tmp_path / "trust"), repo,
                              targets=["x86_64"], queue=queue, activation=activation, activation_timeout_s=60)
        (result,) = client.run_once(DirUpdateSource(tmp_path / "usb"))
        assert result.state == "failed" and "self-test" in result.reason, result
        assert queue.states() == ["fetching", "failed"]
        assert _infer(service, loop, np.ones((1, 4), np.float32)).model_version == "1"
    finally:
        asyncio.run_coroutine_threadsafe(service.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
