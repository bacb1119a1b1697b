"""The HTTP transport (standard library only) against the real hub app
(edgekit.hub.http_app under uvicorn on loopback) and a small stand-in for the downlink
route: batches acked and stored once, a bad token refused, a hub that is down or slow is a
link that is down."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest

from edgekit.errors import BadInputError
from edgekit.sync.forwarder import Forwarder
from edgekit.sync.transports import HubRefusedError, LinkDownError
from edgekit.sync.transports.http import HttpTransport
from edgekit.sync.wire import decode_ack, encode_batch

uvicorn = pytest.importorskip("uvicorn")
starlette = pytest.importorskip("starlette")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A Starlette app served by uvicorn in a thread, on a free loopback port."""

    def __init__(self, app):
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def hub(tmp_path):
    from edgekit.hub.db import Database
    from edgekit.hub.http_app import create_app
    from edgekit.hub.store import HubStore

    db = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    db.apply_schemas()
    store = HubStore(db)
    server = Server(create_app(store, token="s3cret"))
    server.store = store
    yield server
    server.stop()
    db.close()


def test_forwarder_over_http_to_the_real_hub(hub, sync_queue):
    ids = [sync_queue.enqueue("results", b'{"label": "yes", "score": 0.93, "n": %d}' % i, priority=i % 4)
           for i in range(400)]
    transport = HttpTransport(hub.url, "dev-h", token="s3cret")
    fwd = Forwarder(sync_queue, transport, "dev-h", rate_bytes_s=None, daily_bytes=None, max_batch_bytes=1024)
    try:
        result = fwd.run_once()
        # The same batch twice (an ack lost on the way back): stored once, acked twice.
        again = sync_queue.enqueue("results", b"again")
        batch = encode_batch("dev-h", 10 ** 6, sync_queue.peek_batch(1 << 20))
        acks = [decode_ack(transport.send(batch, timeout_s=10)) for _ in range(2)]
    finally:
        fwd.close()
        transport.close()
    assert result["acked"] == 400 and result["batches"] > 1 and result["stopped"] == "empty"
    assert acks[0].record_ids == acks[1].record_ids == [again]
    assert hub.store.record_count(device="dev-h") == 401
    assert {r["id"] for r in hub.store.records(device="dev-h")} == set(ids) | {again}


def test_a_wrong_token_is_refused_and_the_records_stay(hub, sync_queue):
    sync_queue.enqueue("results", b"x")
    transport = HttpTransport(hub.url, "dev-h", token="wrong")
    fwd = Forwarder(sync_queue, transport, "dev-h", rate_bytes_s=None, daily_bytes=None)
    try:
        result = fwd.run_once()
        with pytest.raises(HubRefusedError, match="HTTP 401"):
            transport.send(encode_batch("dev-h", 1, sync_queue.peek_batch(100)), timeout_s=5)
    finally:
        fwd.close()
        transport.close()
    assert result["stopped"] == "link down" and "401" in result["error"]
    assert sync_queue.stats()["records"] == 1


def test_a_hub_that_is_down_or_silent_is_a_link_that_is_down():
    batch = encode_batch("dev-h", 1, [])
    closed = HttpTransport(f"http://127.0.0.1:{free_port()}", "dev-h")
    with pytest.raises(LinkDownError, match="failed"):
        closed.send(batch, timeout_s=2)
    # A listener that never answers: the timeout bounds the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        transport = HttpTransport(f"http://127.0.0.1:{silent.getsockname()[1]}", "dev-h")
        start = time.monotonic()
        with pytest.raises(LinkDownError):
            transport.send(batch, timeout_s=0.5)
        assert time.monotonic() - start < 3


def test_downlink_messages_over_http(tmp_path):
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    waiting = {"dev-h": [b"\x00update notice\xff", b"second"]}

    async def downlink(request):
        messages = waiting.pop(request.path_params["device"], [])
        return JSONResponse({"messages": [base64.b64encode(m).decode() for m in messages]})

    server = Server(Starlette(routes=[Route("/hub/v1/devices/{device}/downlink", downlink)]))
    try:
        transport = HttpTransport(server.url + "/hub/", "dev-h")
        assert transport.poll_downlink() == [b"\x00update notice\xff", b"second"]
        assert transport.poll_downlink() == []
        transport.close()
    finally:
        server.stop()


def test_a_hub_without_the_downlink_route_sends_nothing_down(hub):
    transport = HttpTransport(hub.url, "dev-h", token="s3cret")
    assert transport.poll_downlink() == []
    transport.close()


@pytest.mark.parametrize("url,kw,match", [
    ("ftp://hub", {}, "expected http"),
    ("http://hub:99999", {}, "port"),
    ("http://hub?x=1", {}, "query"),
    ("http://hub", {"ca_file": "/etc/hostname"}, "https"),
    ("https://hub", {"ca_file": "/nonexistent/ca.pem"}, "CA file"),
    ("http://hub", {"token": "two words"}, "token"),
])
def test_bad_settings_are_refused(url, kw, match):
    with pytest.raises(BadInputError, match=match):
        HttpTransport(url, "dev-h", **kw)


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                           lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=10)


@given(st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                 st.lists(st.text(max_size=12)).map(
                     lambda ms: json.dumps({"messages": ms}).encode())))
def test_fuzz_a_downlink_answer_is_messages_or_link_down_error(answer):
    from edgekit.sync.transports.http import parse_downlink

    try:
        messages = parse_downlink(answer)
    except LinkDownError:
        return
    assert isinstance(messages, list) and all(isinstance(m, bytes) for m in messages)
    # What decoded is what an encoder makes of it again (an independent round trip).
    assert json.loads(answer)["messages"] == [base64.b64encode(m).decode() for m in messages] or all(
        base64.b64decode(e) == m for e, m in zip(json.loads(answer)["messages"], messages))


def test_a_valid_downlink_answer_decodes():
    from edgekit.sync.transports.http import parse_downlink

    assert parse_downlink(b'{"messages": ["AAE=", ""]}') == [b"\x00\x01", b""]
    with pytest.raises(LinkDownError, match="not a list"):
        parse_downlink(b'{"messages": "AAE="}')
