"""The hub's HTTP API: ingest returns the ack after storing, the fleet view, the token,
and any body that is not a batch gets 400 (never a 500)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from edgekit.hub import Database, HubStore
from edgekit.hub.http_app import ACK_CONTENT_TYPE, BATCH_CONTENT_TYPE, create_app
from edgekit.sync.wire import WireFormatError, decode_ack, decode_batch
from tests.hub.batches import batch_bytes, make_records

HEADERS = {"Content-Type": BATCH_CONTENT_TYPE}


def test_ingest_then_devices(hub_store):
    client = TestClient(create_app(hub_store))
    records = make_records(20)
    data = batch_bytes("dev-h", 7, records, {"backlog": {"records": 20, "bytes": 2400}})
    for _attempt in range(2):  # the second post is a retry: stored once, acked in full again
        r = client.post("/v1/ingest", content=data, headers=HEADERS)
        assert r.status_code == 200 and r.headers["content-type"] == ACK_CONTENT_TYPE
        ack = decode_ack(r.content)
        assert (ack.device_id, ack.seq, ack.record_ids) == ("dev-h", 7, [x.id for x in records])
    assert hub_store.record_count() == 20
    devices = client.get("/v1/devices").json()["devices"]
    assert [(d["device_id"], d["records"], d["duplicates"], d["backlog_records"]) for d in devices] == \
        [("dev-h", 20, 20, 20)]
    assert client.get("/v1/health").status_code == 200


def test_bad_bodies_get_400_and_too_large_413(tmp_path):
    store = HubStore(Database(f"sqlite:///{tmp_path / 'hub.db'}"))
    client = TestClient(create_app(store, max_batch_bytes=1024))
    r = client.post("/v1/ingest", content=b"EKSB\x01garbage", headers=HEADERS)
    assert r.status_code == 400 and "batch" in r.text
    big = batch_bytes("dev-h", 1, make_records(200))
    assert len(big) > 1024
    assert client.post("/v1/ingest", content=big, headers=HEADERS).status_code == 413
    assert store.record_count() == 0
    store.db.close()


def test_token_required_when_set(hub_store):
    client = TestClient(create_app(hub_store, token="s3cret"))
    data = batch_bytes("dev-t", 1, make_records(2))
    assert client.post("/v1/ingest", content=data, headers=HEADERS).status_code == 401
    assert client.get("/v1/devices", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.post("/v1/ingest", content=data, headers={**HEADERS, "Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and hub_store.record_count() == 2


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    store = HubStore(Database(f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'hub.db'}"))
    yield TestClient(create_app(store), raise_server_exceptions=True), store
    store.db.close()


_valid = batch_bytes("dev-z", 1, make_records(3))


@given(st.one_of(st.binary(max_size=300),
                 st.tuples(st.integers(0, len(_valid) - 1), st.integers(0, 255)).map(
                     lambda p: _valid[:p[0]] + bytes([p[1]]) + _valid[p[0] + 1:]),
                 st.integers(0, len(_valid) - 1).map(lambda n: _valid[:n])))
def test_any_body_is_a_batch_or_a_400(fuzz_client, body):
    client, store = fuzz_client
    r = client.post("/v1/ingest", content=body, headers=HEADERS)
    assert r.status_code in (200, 400), (r.status_code, r.text)
    if r.status_code == 200:  # the hub took exactly what the decoder reads, and acked all of it
        assert decode_ack(r.content).record_ids == [x.id for x in decode_batch(body).records]
    else:
        with pytest.raises(WireFormatError):
            decode_batch(body)
