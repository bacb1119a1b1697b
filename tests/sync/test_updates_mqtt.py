"""The update notice over a real Mosquitto: ``edgekit hub publish --mqtt`` retains the
signed manifest on ``edgekit/v1/group/GROUP/down``; a device that connects later (its
MqttTransport subscribed to its group) gets it, and installs the update with the chunks
from the hub."""

from __future__ import annotations

from edgekit.hub import Database, HubStore, rollouts
from edgekit.sync.signing import create_key
from edgekit.sync.transports.mqtt import MqttTransport
from edgekit.sync.update_manifest import decode_manifest
from edgekit.sync.updates import DirUpdateSource, UpdateClient, manifests_from_downlink
from tests.sync.update_fixtures import RecordingQueue, compile_tiny, trust_dir_with


def test_retained_notice_reaches_a_device_that_connects_later(mosquitto_broker, tmp_path):
    keys = tmp_path / "keys"
    create_key(keys, "hub")
    bundle = compile_tiny(tmp_path, "tiny", "7")
    store = HubStore(Database(f"sqlite:///{tmp_path / 'hub.db'}"))
    try:
        rollouts.add_to_group(store, "field", ["dev-1"])
        m = rollouts.publish(store, bundle, "field", key_dir=keys, key_name="hub", chunk_size=512)
        rollouts.publish_notice(m, "field", mosquitto_broker.host, mosquitto_broker.port)
        rollouts.export_update(store, m["update_id"], tmp_path / "chunks")   # the chunks' source here
    finally:
        store.db.close()

    transport = MqttTransport(mosquitto_broker.host, mosquitto_broker.port, "dev-1", groups=["field"])
    try:
        messages = transport.poll_downlink(timeout_s=10)
    finally:
        transport.close()
    notices = manifests_from_downlink(messages + [b"not json", b'{"format": "something-else"}'])
    assert [decode_manifest(n) for n in notices] == [m]
    repo = tmp_path / "repo"
    repo.mkdir()
    client = UpdateClient(tmp_path / "state", trust_dir_with(keys, "hub", tmp_path / "trust"), repo,
                          targets=["x86_64"], queue=RecordingQueue())
    result = client.apply(notices[0], DirUpdateSource(tmp_path / "chunks"))
    assert result.state == "installed", result
    assert (repo / "tiny-7.ekb").read_bytes() == bundle.read_bytes()
