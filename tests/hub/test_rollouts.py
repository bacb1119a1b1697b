"""Rollouts at the hub (edgekit.hub.rollouts, updates_http): publish, chunks, groups,
offers, the HTTP routes, export for sneakernet, and rollout state from deploy records;
over SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from starlette.testclient import TestClient

from edgekit.errors import BadInputError
from edgekit.hub import rollouts
from edgekit.hub.http_app import create_app
from edgekit.sync.records import Record, new_id
from edgekit.sync.signing import create_key, load_public_key
from edgekit.sync.update_manifest import decode_manifest, signed_bytes
from edgekit.sync.updates import DirUpdateSource, UpdateClient
from edgekit.sync.wire import decode_batch, encode_batch
from tests.sync.update_fixtures import RecordingQueue, compile_tiny, trust_dir_with


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    root = tmp_path_factory.mktemp("rollouts")
    keys = root / "keys"
    create_key(keys, "hub")
    bundles = root / "bundles"
    bundles.mkdir()
    return {"keys": keys, "v1": compile_tiny(bundles, "tiny", "1"), "v2": compile_tiny(bundles, "tiny", "2")}


def _publish(store, material, version, group="field", chunk_size=256):
    return rollouts.publish(store, material[f"v{version}"], group, key_dir=material["keys"], key_name="hub",
                            chunk_size=chunk_size)


def test_publish_stores_a_signed_update_and_its_chunks(hub_store, material):
    rollouts.add_to_group(hub_store, "field", ["dev-1", "dev-2"])
    m = _publish(hub_store, material, "1")
    data = material["v1"].read_bytes()
    # the signature verifies with cryptography directly, over the documented bytes
    load_public_key(material["keys"] / "hub.pub").verify(base64.b64decode(m["signature"]), signed_bytes(m))
    assert m["bundle"] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "file": "tiny-1.ekb"}
    assert (m["model"], m["version"], m["target"], m["engine"]) == ("tiny", "1", "x86_64", "litert")
    assert b"".join(rollouts.chunk(hub_store, c["sha256"]) for c in m["chunks"]) == data
    assert rollouts.manifest(hub_store, m["update_id"]) == m
    assert rollouts.offers(hub_store, "dev-1") == [m]
    assert rollouts.offers(hub_store, "stranger") == []
    # a newer version supersedes it in the offer; an older or equal one is refused at publish
    m2 = _publish(hub_store, material, "2")
    assert rollouts.offers(hub_store, "dev-2") == [m2]
    with pytest.raises(BadInputError, match="would be refused by its devices as a rollback"):
        _publish(hub_store, material, "1")
    assert len(hub_store.db.execute("SELECT update_id FROM hub_updates")) == 2


def test_publish_refuses_bad_input_and_stores_nothing(hub_store, material, tmp_path):
    bad = tmp_path / "bad.ekb"
    data = bytearray(material["v1"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="cannot publish"):
        rollouts.publish(hub_store, bad, "field", key_dir=material["keys"], key_name="hub")
    with pytest.raises(BadInputError, match="no private key 'nokey'"):
        rollouts.publish(hub_store, material["v1"], "field", key_dir=material["keys"], key_name="nokey")
    with pytest.raises(BadInputError, match="group name"):
        rollouts.publish(hub_store, material["v1"], "a/b", key_dir=material["keys"], key_name="hub")
    assert hub_store.db.execute("SELECT COUNT(*) FROM hub_updates")[0][0] == 0
    assert hub_store.db.execute("SELECT COUNT(*) FROM hub_chunks")[0][0] == 0


def _deploy_batch(device, seq, docs, t0=1_000):
    records = [Record(new_id(), "deploy", 1, t0 + i, None, json.dumps(d).encode()) for i, d in enumerate(docs)]
    return decode_batch(encode_batch(device, seq, records))


def test_rollout_state_follows_the_deploy_records(hub_store, material):
    rollouts.add_to_group(hub_store, "field", ["dev-1", "dev-2", "dev-3"])
    m = _publish(hub_store, material, "1")
    uid = m["update_id"]
    hub_store.ingest(_deploy_batch("dev-1", 1, [{"update_id": uid, "state": "fetching", "version": "1"},
                                                {"update_id": uid, "state": "installed", "version": "1"}]))
    hub_store.ingest(_deploy_batch("dev-2", 1, [{"update_id": uid, "state": "rejected", "version": "1",
                                                 "reason": "unknown key 0123456789abcdef"}]))
    status = {d["device_id"]: (d["state"], d["reason"]) for d in rollouts.rollout_status(hub_store, uid)}
    assert status == {"dev-1": ("installed", ""), "dev-2": ("rejected", "unknown key 0123456789abcdef"),
                      "dev-3": ("offered", "")}
    [summary] = rollouts.rollouts(hub_store)
    assert summary["devices"] == {"installed": 1, "rejected": 1, "offered": 1}
    states = rollouts.device_rollout_states(hub_store)
    assert states == {"dev-1": "tiny 1: installed", "dev-2": "tiny 1: rejected", "dev-3": "tiny 1: offered"}
    by_dev = {d["device_id"]: d["rollout"] for d in hub_store.devices()}
    assert by_dev["dev-1"] == "tiny 1: installed"


def test_http_routes_serve_offers_manifests_and_chunk_ranges(hub_store, material):
    rollouts.add_to_group(hub_store, "field", ["dev-1"])
    m = _publish(hub_store, material, "1")
    c0 = m["chunks"][0]["sha256"]
    whole = rollouts.chunk(hub_store, c0)
    with TestClient(create_app(hub_store)) as http:
        r = http.get("/v1/devices/dev-1/updates")
        assert r.status_code == 200 and r.json() == {"updates": [m]}
        r = http.get(f"/v1/updates/{m['update_id']}/manifest")
        assert r.status_code == 200 and decode_manifest(r.content) == m
        r = http.get(f"/v1/chunks/{c0}")
        assert r.status_code == 200 and r.content == whole and r.headers["etag"] == f'"{c0}"'
        r = http.get(f"/v1/chunks/{c0}", headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.content == whole[10:20]
        assert r.headers["content-range"] == f"bytes 10-19/{len(whole)}"
        r = http.get(f"/v1/chunks/{c0}", headers={"Range": "bytes=-5"})
        assert r.status_code == 206 and r.content == whole[-5:]
        assert http.get(f"/v1/chunks/{c0}", headers={"Range": f"bytes={len(whole)}-"}).status_code == 416
        assert http.get("/v1/chunks/" + "0" * 64).status_code == 404
        assert http.get("/v1/chunks/nothex").status_code == 404
        assert http.get("/v1/updates/" + "0" * 32 + "/manifest").status_code == 404


def test_update_routes_honour_the_hub_token(hub_store, material):
    rollouts.add_to_group(hub_store, "field", ["dev-1"])
    m = _publish(hub_store, material, "1")
    with TestClient(create_app(hub_store, token="s3cret")) as http:
        assert http.get("/v1/devices/dev-1/updates").status_code == 401
        assert http.get(f"/v1/chunks/{m['chunks'][0]['sha256']}").status_code == 401
        assert http.get(f"/v1/updates/{m['update_id']}/manifest").status_code == 401
        ok = http.get("/v1/devices/dev-1/updates", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and len(ok.json()["updates"]) == 1


def test_export_update_is_what_a_device_installs_from_a_folder(hub_store, material, tmp_path):
    rollouts.add_to_group(hub_store, "field", ["dev-1"])
    m = _publish(hub_store, material, "1")
    usb = tmp_path / "usb"
    rollouts.export_update(hub_store, m["update_id"], usb)
    repo = tmp_path / "repo"
    repo.mkdir()
    client = UpdateClient(tmp_path / "state", trust_dir_with(material["keys"], "hub", tmp_path / "trust"), repo,
                          targets=["x86_64"], queue=RecordingQueue())
    (result,) = client.run_once(DirUpdateSource(usb))
    assert result.state == "installed"
    assert (repo / "tiny-1.ekb").read_bytes() == material["v1"].read_bytes()
    with pytest.raises(BadInputError, match="no update"):
        rollouts.export_update(hub_store, "f" * 32, usb)
