"""Update chunks over MQTT only (no HTTP server anywhere): a real Mosquitto, the hub's real
MQTT ingest worker answering chunk requests from its database, the device's
MqttUpdateSource feeding UpdateClient; the deploy record goes back through the forwarder
and the rollout turns "installed". A forged chunk on the device's topic is dropped, a
device outside the rollout's group is refused, and a device restarted halfway asks only
for the chunks it lacks."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt
import pytest

from edgekit.hub import Database, HubStore, rollouts
from edgekit.hub.ingest import MqttIngestWorker
from edgekit.sync.forwarder import Forwarder
from edgekit.sync.queue import SyncQueue
from edgekit.sync.signing import create_key
from edgekit.sync.transports.mqtt import MqttTransport
from edgekit.sync.update_chunks import encode_response
from edgekit.sync.updates import UpdateClient, UpdateFetchError, manifests_from_downlink
from edgekit.sync.updates_mqtt import MqttUpdateSource, chunk_request_topic, chunk_response_topic
from tests.sync.update_fixtures import RecordingQueue, compile_tiny, trust_dir_with


@pytest.fixture
def hub(tmp_path, mosquitto_broker):
    """A hub database with an update of "tiny" 7 rolled out to group "field" (dev-1), its
    notice retained on the broker; the bundle's bytes and manifest."""
    keys = tmp_path / "keys"
    create_key(keys, "hub")
    bundle = compile_tiny(tmp_path, "tiny", "7")
    store = HubStore(Database(f"sqlite:///{tmp_path / 'hub.db'}"))
    rollouts.add_to_group(store, "field", ["dev-1"])
    m = rollouts.publish(store, bundle, "field", key_dir=keys, key_name="hub", chunk_size=256)
    rollouts.publish_notice(m, "field", mosquitto_broker.host, mosquitto_broker.port)
    trust = trust_dir_with(keys, "hub", tmp_path / "trust")
    yield store, m, bundle.read_bytes(), trust
    store.db.close()


def _worker(store, broker) -> MqttIngestWorker:
    return MqttIngestWorker(store, broker.host, broker.port).start()


def _client(tmp_path, trust, queue, name="state"):
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    return UpdateClient(tmp_path / name, trust, repo, targets=["x86_64"], queue=queue), repo


def test_notice_and_chunks_over_mqtt_install_and_report_installed(tmp_path, mosquitto_broker, hub):
    store, m, bundle, trust = hub
    worker = _worker(store, mosquitto_broker)
    queue = SyncQueue(tmp_path / "queue.db")
    transport = MqttTransport(mosquitto_broker.host, mosquitto_broker.port, "dev-1", groups=["field"])
    source = MqttUpdateSource(mosquitto_broker.host, mosquitto_broker.port, "dev-1", timeout_s=10)
    try:
        (notice,) = manifests_from_downlink(transport.poll_downlink(timeout_s=10))
        client, repo = _client(tmp_path, trust, queue)
        result = client.apply(notice, source)
        assert result.state == "installed", result
        assert (repo / "tiny-7.ekb").read_bytes() == bundle
        assert sorted(set(source.requested)) == sorted({c["sha256"] for c in m["chunks"]})
        assert worker.counters.chunks_served == len(source.requested) and worker.counters.chunks_refused == 0
        sent = Forwarder(queue, transport, "dev-1").run_once()
        assert sent["acked"] >= 2, sent          # "fetching" and "installed"
        assert [d["state"] for d in rollouts.rollout_status(store, m["update_id"])] == ["installed"]
    finally:
        source.close()
        transport.close()
        queue.close()
        worker.stop()


def test_forged_chunk_on_the_wire_is_dropped_then_the_real_one_installs(tmp_path, mosquitto_broker, hub):
    store, m, bundle, trust = hub
    first = m["chunks"][0]["sha256"]
    forger = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="forger", protocol=mqtt.MQTTv5)
    forger.connect(mosquitto_broker.host, mosquitto_broker.port)
    forger.loop_start()
    # the forger answers the device's request (no hub is listening yet) with other bytes
    # under the requested chunk's sha256
    forged = bytearray(encode_response(m["update_id"], first, bundle[:256]))
    forged[-1] ^= 0xFF
    forger.on_message = lambda c, u, msg: c.publish(chunk_response_topic("dev-1"), bytes(forged), qos=1)
    forger.subscribe(chunk_request_topic("dev-1"), qos=1)
    time.sleep(0.5)
    source = MqttUpdateSource(mosquitto_broker.host, mosquitto_broker.port, "dev-1", timeout_s=2, prefetch=1)
    queue = RecordingQueue()
    client, repo = _client(tmp_path, trust, queue)
    try:
        result = client.apply(rollouts_manifest_bytes(m), source)
        assert result.state == "pending", result
        assert source.corrupt >= 1
        assert not (repo / "tiny-7.ekb").exists()
        assert list((tmp_path / "state" / "partial" / m["update_id"]).glob("*.chunk")) == []
        forger.unsubscribe(chunk_request_topic("dev-1"))
        worker = _worker(store, mosquitto_broker)
        try:
            result = client.apply(rollouts_manifest_bytes(m), source)
        finally:
            worker.stop()
        assert result.state == "installed", result
        assert (repo / "tiny-7.ekb").read_bytes() == bundle
        assert queue.states() == ["fetching", "installed"]
    finally:
        source.close()
        forger.loop_stop()
        forger.disconnect()


def rollouts_manifest_bytes(m: dict) -> bytes:
    from edgekit.sync.update_manifest import encode_manifest

    return encode_manifest(m)


def test_a_device_outside_the_group_is_refused(tmp_path, mosquitto_broker, hub):
    store, m, _bundle, trust = hub
    worker = _worker(store, mosquitto_broker)
    source = MqttUpdateSource(mosquitto_broker.host, mosquitto_broker.port, "dev-9", timeout_s=5)
    client, repo = _client(tmp_path, trust, RecordingQueue())
    try:
        result = client.apply(rollouts_manifest_bytes(m), source)
        assert result.state == "pending" and "refused" in result.reason and "not offered" in result.reason, result
        assert worker.counters.chunks_refused >= 1 and worker.counters.chunks_served == 0
        assert not (repo / "tiny-7.ekb").exists()
    finally:
        source.close()
        worker.stop()


class _LinkLostAfter:
    """Delegates to a source until ``n`` chunks came through, then the link is lost."""

    def __init__(self, source, n):
        self.source, self.n = source, n

    def chunk(self, manifest, sha256):
        if self.n == 0:
            raise UpdateFetchError("link lost (test)")
        self.n -= 1
        return self.source.chunk(manifest, sha256)


def test_restarted_halfway_only_the_missing_chunks_are_requested(tmp_path, mosquitto_broker, hub):
    store, m, bundle, trust = hub
    worker = _worker(store, mosquitto_broker)
    shas = [c["sha256"] for c in m["chunks"]]
    half = len(shas) // 2
    assert half >= 2 and len(set(shas)) == len(shas)
    try:
        first = MqttUpdateSource(mosquitto_broker.host, mosquitto_broker.port, "dev-1", timeout_s=10, prefetch=1)
        client, repo = _client(tmp_path, trust, RecordingQueue())
        try:
            assert client.apply(rollouts_manifest_bytes(m), _LinkLostAfter(first, half)).state == "pending"
        finally:
            first.close()
        assert len(list((tmp_path / "state" / "partial" / m["update_id"]).glob("*.chunk"))) == half
        # a new process: a new client over the same state folder, a new connection
        second = MqttUpdateSource(mosquitto_broker.host, mosquitto_broker.port, "dev-1", timeout_s=10)
        client, repo = _client(tmp_path, trust, RecordingQueue())
        try:
            result = client.apply(rollouts_manifest_bytes(m), second)
        finally:
            second.close()
        assert result.state == "installed", result
        assert (repo / "tiny-7.ekb").read_bytes() == bundle
        assert second.requested == shas[half:]
    finally:
        worker.stop()


def test_no_hub_answering_is_a_pending_update_not_an_error(tmp_path, mosquitto_broker, hub):
    _store, m, _bundle, trust = hub
    source = MqttUpdateSource(mosquitto_broker.host, mosquitto_broker.port, "dev-1", timeout_s=0.5)
    client, repo = _client(tmp_path, trust, RecordingQueue())
    try:
        started = time.monotonic()
        result = client.apply(rollouts_manifest_bytes(m), source)
        assert result.state == "pending" and "no answer" in result.reason
        assert time.monotonic() - started < 5
    finally:
        source.close()



# -- edgekit sync run with the update options ---------------------------------------------


def _sync_run(*args):
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli

    _register()
    return CliRunner().invoke(cli, ["sync", "run", *map(str, args)], catch_exceptions=False,
                              env={"COLUMNS": "300"})


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_sync_run_once_installs_the_notice_over_mqtt_and_sends_the_deploy_records(tmp_path, mosquitto_broker, hub,
                                                                                   protocol):
    store, m, bundle, trust = hub
    worker = _worker(store, mosquitto_broker)
    repo = tmp_path / "repo"
    repo.mkdir()
    queue_path = tmp_path / "queue.db"
    SyncQueue(queue_path).close()
    common = ["--queue", queue_path, "--device-id", "dev-1", "--mqtt",
              f"{mosquitto_broker.host}:{mosquitto_broker.port}", "--group", "field", "--once", "--ack-timeout", "10",
              "--mqtt-protocol", protocol]
    update = ["--trust", trust, "--repository", repo, "--state-dir", tmp_path / "state", "--target", "x86_64"]
    try:
        # without the update options the notice is left alone
        r = _sync_run(*common)
        assert r.exit_code == 0, r.output
        assert list(repo.iterdir()) == []
        r = _sync_run(*common, *update)
        assert r.exit_code == 0, r.output
        assert f"update {m['update_id']}  tiny 7: installed" in r.output
        assert (repo / "tiny-7.ekb").read_bytes() == bundle
        assert worker.counters.chunks_served >= len(m["chunks"])
        assert [d["state"] for d in rollouts.rollout_status(store, m["update_id"])] == ["installed"]
        # the retained notice comes again: this device already has an outcome for it
        r = _sync_run(*common, *update)
        assert r.exit_code == 0 and "no new update" in r.output, r.output
    finally:
        worker.stop()


@pytest.mark.parametrize("extra,words", [
    (["--trust", "T"], ["--repository", "--state-dir", "--target"]),
    (["--hub-url", "http://h"], ["--hub-url", "needs --trust"]),
    (["--trust", "T", "--repository", "R", "--state-dir", "S", "--target", "x86_64", "--hub-url", "ftp://h"],
     ["--hub-url", "http://"]),
    (["--trust", "missing", "--repository", "R", "--state-dir", "S", "--target", "x86_64"],
     ["--trust", "missing: no such folder"]),
])
def test_sync_run_update_options_are_checked_before_anything_opens(tmp_path, extra, words):
    for d in ("T", "R"):
        (tmp_path / d).mkdir(exist_ok=True)
    extra = [str(tmp_path / e) if e in ("T", "R", "S", "missing") else e for e in extra]
    r = _sync_run("--queue", tmp_path / "q.db", "--device-id", "d1", "--mqtt", "127.0.0.1:1", *extra)
    assert r.exit_code == 2, r.output
    for w in words:
        assert w in r.output, r.output
    assert not (tmp_path / "q.db").exists() and not (tmp_path / "S").exists()


def test_daemon_installer_retries_a_pending_update_after_the_backoff(tmp_path, mosquitto_broker, hub):
    """What `sync run` (no --once) runs in its update thread: no hub answers at first (the
    update is pending), then a worker starts and the retry after the backoff installs it."""
    import threading

    from edgekit.cli.sync_run_updates import NoticeInstaller

    store, m, bundle, trust = hub
    source = MqttUpdateSource(mosquitto_broker.host, mosquitto_broker.port, "dev-1", timeout_s=0.5)
    client, repo = _client(tmp_path, trust, RecordingQueue())
    installer = NoticeInstaller(client, source, backoff=(0.5, 1.0))
    installer.put(b"not an update notice")
    installer.put(rollouts_manifest_bytes(m))
    stop = threading.Event()
    thread = threading.Thread(target=installer.run, args=(stop,), daemon=True)
    thread.start()
    worker = None
    try:
        deadline = time.monotonic() + 10
        while not installer.results:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert installer.results[0].state == "pending"
        worker = _worker(store, mosquitto_broker)
        while not (repo / "tiny-7.ekb").exists():
            assert time.monotonic() < deadline, installer.results
            time.sleep(0.05)
        assert (repo / "tiny-7.ekb").read_bytes() == bundle
    finally:
        stop.set()
        thread.join(5)
        source.close()
        if worker is not None:
            worker.stop()
    assert [r.state for r in installer.results][-1] == "installed"
