"""LinkProxy: forwarding, byte counters, bandwidth shaping, latency and link flaps.

The oracles are plain sockets and the wall clock: a sink server timestamps what it
receives, an echo server answers what it gets.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time

import pytest

from edgekit.errors import BadInputError
from edgekit.hub.linksim import LinkProxy, TokenBucket


class _Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.request.sendall(data)


class _Sink(socketserver.BaseRequestHandler):
    def handle(self):
        got = self.server.received
        while True:
            try:
                data = self.request.recv(65536)
            except OSError:
                return
            if not data:
                return
            got.append((time.monotonic(), len(data)))


def _serve(handler):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def echo_server():
    server = _serve(_Echo)
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def sink_server():
    server = _serve(_Sink)
    yield server
    server.shutdown()
    server.server_close()


def _connect(port, timeout=5.0):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def _recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed early")
        buf += chunk
    return buf


def test_forwards_both_ways_and_counts_bytes(echo_server):
    with LinkProxy("127.0.0.1", echo_server) as proxy:
        with _connect(proxy.port) as sock:
            sock.sendall(b"hello link" * 100)
            assert _recv_exactly(sock, 1000) == b"hello link" * 100
        deadline = time.monotonic() + 2
        while proxy.stats()["open_connections"] and time.monotonic() < deadline:
            time.sleep(0.01)
        stats = proxy.stats()
    assert stats["bytes_up"] == 1000 and stats["bytes_down"] == 1000
    assert stats["connections"] == 1 and stats["open_connections"] == 0


@pytest.mark.parametrize("rate", [8000, 64000])
def test_measured_throughput_is_the_set_rate(sink_server, rate):
    payload = b"x" * (rate * 2)  # two seconds' worth
    with LinkProxy("127.0.0.1", sink_server.server_address[1], rate_bytes_s=rate) as proxy:
        with _connect(proxy.port) as sock:
            start = time.monotonic()
            sock.sendall(payload)
            deadline = start + 10
            while sum(n for _, n in sink_server.received) < len(payload) and time.monotonic() < deadline:
                time.sleep(0.01)
        assert proxy.bytes_up == len(payload)
    received = sink_server.received
    assert sum(n for _, n in received) == len(payload)
    elapsed = received[-1][0] - start
    measured = len(payload) / elapsed
    assert measured == pytest.approx(rate, rel=0.10), f"{measured:.0f} B/s through a {rate} B/s link"


def test_shaping_is_per_direction_and_shared_by_connections(sink_server):
    rate = 20000
    with LinkProxy("127.0.0.1", sink_server.server_address[1], rate_bytes_s=rate) as proxy:
        socks = [_connect(proxy.port) for _ in range(2)]
        start = time.monotonic()
        threads = [threading.Thread(target=s.sendall, args=(b"y" * rate,)) for s in socks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = start + 10
        while sum(n for _, n in sink_server.received) < 2 * rate and time.monotonic() < deadline:
            time.sleep(0.01)
        for s in socks:
            s.close()
    elapsed = sink_server.received[-1][0] - start
    # Two connections share one link: 2 s for 2 x rate bytes, not 1 s.
    assert elapsed == pytest.approx(2.0, rel=0.10)


def test_latency_adds_each_way(echo_server):
    with LinkProxy("127.0.0.1", echo_server, latency_s=0.15) as proxy:
        with _connect(proxy.port) as sock:
            rtts = []
            for _ in range(3):
                t0 = time.monotonic()
                sock.sendall(b"ping")
                assert _recv_exactly(sock, 4) == b"ping"
                rtts.append(time.monotonic() - t0)
            proxy.set_latency(0.0)
            t0 = time.monotonic()
            sock.sendall(b"pong")
            _recv_exactly(sock, 4)
            fast = time.monotonic() - t0
    assert min(rtts) >= 0.30 and max(rtts) < 0.30 + 0.15
    assert fast < 0.1


def test_down_refuse_resets_open_connections_and_refuses_new(echo_server):
    with LinkProxy("127.0.0.1", echo_server) as proxy:
        port = proxy.port
        sock = _connect(port)
        sock.sendall(b"a")
        assert _recv_exactly(sock, 1) == b"a"
        proxy.set_down(True)
        with pytest.raises(ConnectionError):
            sock.sendall(b"b")
            if not sock.recv(1):
                raise ConnectionResetError("closed")
        sock.close()
        with pytest.raises(ConnectionRefusedError):
            _connect(port)
        proxy.set_down(False)
        assert proxy.port == port
        with _connect(port) as again:
            again.sendall(b"c")
            assert _recv_exactly(again, 1) == b"c"


def test_down_blackhole_accepts_and_never_answers(echo_server):
    with LinkProxy("127.0.0.1", echo_server, down_mode="blackhole") as proxy:
        proxy.set_down(True)
        hole = _connect(proxy.port, timeout=0.3)
        hole.sendall(b"anyone?")
        with pytest.raises(socket.timeout):
            hole.recv(10)
        assert proxy.stats()["refused_or_blackholed"] == 1
        proxy.set_down(False)
        # Back up: the black-holed connection is reset, a new one works.
        hole.settimeout(2)
        with pytest.raises(ConnectionError):
            if not hole.recv(10):
                raise ConnectionResetError("closed")
        hole.close()
        with _connect(proxy.port) as sock:
            sock.sendall(b"ok")
            assert _recv_exactly(sock, 2) == b"ok"
        assert proxy.bytes_up == 2


def test_starts_down_with_a_known_port(echo_server):
    with LinkProxy("127.0.0.1", echo_server, down=True) as proxy:
        assert proxy.port > 0
        with pytest.raises(ConnectionRefusedError):
            _connect(proxy.port)
        proxy.set_down(False)
        with _connect(proxy.port) as sock:
            sock.sendall(b"z")
            assert _recv_exactly(sock, 1) == b"z"


def test_unreachable_target_resets_the_client():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_port = placeholder.getsockname()[1]
    with LinkProxy("127.0.0.1", dead_port) as proxy:
        # The reset may come at any step, depending on when the proxy's connect fails.
        with pytest.raises(ConnectionResetError):
            with _connect(proxy.port) as sock:
                sock.sendall(b"q")
                if not sock.recv(1):
                    raise AssertionError("closed with FIN, not reset")


@pytest.mark.parametrize("kwargs", [{"rate_bytes_s": 0}, {"rate_bytes_s": -5}, {"latency_s": -1},
                                    {"down_mode": "sideways"}])
def test_bad_settings_are_user_errors(kwargs):
    with pytest.raises(BadInputError):
        LinkProxy("127.0.0.1", 1, **kwargs)


def test_token_bucket_charges_debt_at_the_rate():
    now = [0.0]
    bucket = TokenBucket(1000.0, clock=lambda: now[0])
    assert bucket.reserve(500) == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.reserve(1000) == pytest.approx(1.0)
    assert TokenBucket(None).reserve(10**9) == 0.0


def test_proxies_sharing_one_loop_have_their_own_links(sink_server, echo_server):
    from edgekit.hub.linksim import LinkLoop

    with LinkLoop() as loop:
        slow = LinkProxy("127.0.0.1", sink_server.server_address[1], rate_bytes_s=10000, link_loop=loop).start()
        fast = LinkProxy("127.0.0.1", echo_server, link_loop=loop).start()
        slow.set_down(True)
        with _connect(fast.port) as sock:
            sock.sendall(b"still up")
            assert _recv_exactly(sock, 8) == b"still up"
        with pytest.raises(ConnectionRefusedError):
            _connect(slow.port)
        slow.stop()
        fast.stop()
        assert loop.running
