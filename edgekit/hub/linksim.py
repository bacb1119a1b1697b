"""A TCP proxy on loopback that behaves like a poor field link.

Tests, benchmarks and the fleet simulator put it between a device's transport and the
broker or hub: it shapes bandwidth (a token bucket per direction, shared by every
connection through the proxy, as one radio link is), adds one-way latency, and goes
down and up on command. Its byte counters are what crossed the link at the TCP level,
which is how the benchmarks measure bytes on the wire.

Down has two modes, both of which reset the connections open at that moment:
``"refuse"`` closes the listening socket, so new connections get ECONNREFUSED;
``"blackhole"`` accepts new connections and never answers them (the client sees a
timeout), and resets them when the link comes back.

The proxy runs an asyncio loop in a daemon thread (its own, or a ``LinkLoop`` shared by
many proxies, as the fleet simulator's one link per device); its methods may be called
from any thread and take effect before they return.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

from edgekit.errors import BadInputError, EdgekitError

DOWN_MODES = ("refuse", "blackhole")
_CHUNK = 16384
# Bursts larger than ~20 ms of the rate would let short transfers beat the set rate.
_BURST_S = 0.02


class TokenBucket:
    """Bytes per second with a small burst; a transfer that overdraws it waits its debt out."""

    def __init__(self, rate_bytes_s: float | None, clock=time.monotonic):
        self._clock = clock
        self.rate = rate_bytes_s
        self._tokens = 0.0
        self._last = clock()

    @property
    def burst(self) -> float:
        return max(self.rate * _BURST_S, 1.0) if self.rate else 0.0

    def set_rate(self, rate_bytes_s: float | None) -> None:
        self._refill()
        self.rate = rate_bytes_s
        self._tokens = min(self._tokens, self.burst)

    def chunk_limit(self) -> int:
        # Small chunks keep the shaping smooth at low rates (64 kbit/s: 400-byte chunks).
        if not self.rate:
            return _CHUNK
        return int(max(64, min(_CHUNK, self.rate * _BURST_S)))

    def _refill(self) -> None:
        now = self._clock()
        if self.rate:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def reserve(self, nbytes: int) -> float:
        """Take ``nbytes``; returns the seconds the caller must wait before sending them."""
        if not self.rate:
            return 0.0
        self._refill()
        self._tokens -= nbytes
        return -self._tokens / self.rate if self._tokens < 0 else 0.0


def _check_rate(rate_bytes_s):
    if rate_bytes_s is not None and not rate_bytes_s > 0:
        raise BadInputError(f"link rate must be a positive number of bytes/s or None, not {rate_bytes_s!r}")
    return None if rate_bytes_s is None else float(rate_bytes_s)


def _check_latency(latency_s):
    if not latency_s >= 0:
        raise BadInputError(f"link latency must be >= 0 seconds, not {latency_s!r}")
    return float(latency_s)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a dropped link looks to the peer, not with an orderly FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class LinkLoop:
    """An asyncio loop in a daemon thread that any number of LinkProxy objects can share."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="linkloop", daemon=True)
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def call(self, coro, timeout: float = 10.0):
        """Run ``coro`` on the loop and wait for its result."""
        if self._thread is None:
            coro.close()
            raise EdgekitError("the link loop is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    async def _cancel_tasks(self) -> None:
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        if self._thread is None:
            return
        try:
            self.call(self._cancel_tasks())
        except Exception:  # noqa: BLE001 - the loop stops below whatever a task did
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()
        self._thread = None

    def __enter__(self) -> LinkLoop:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Connection:
    def __init__(self, proxy: LinkProxy, client_writer: asyncio.StreamWriter):
        self.proxy = proxy
        self.client_writer = client_writer
        self.target_writer: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task] = []

    def reset(self) -> None:
        for task in self.tasks:
            task.cancel()
        _reset(self.client_writer)
        if self.target_writer is not None:
            _reset(self.target_writer)


class LinkProxy:
    """Forward ``127.0.0.1:port`` to ``target_host:target_port`` through a simulated link.

    ``rate_bytes_s``: bandwidth of each direction (None: unshaped); a 64 kbit/s link is
    ``rate_bytes_s=8000``. ``latency_s``: one-way delay added to every byte.
    """

    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0,
                 rate_bytes_s: float | None = None, latency_s: float = 0.0, down: bool = False,
                 down_mode: str = "refuse", listen_host: str = "127.0.0.1", link_loop: LinkLoop | None = None):
        if down_mode not in DOWN_MODES:
            raise BadInputError(f"link down mode must be one of {', '.join(DOWN_MODES)}, not {down_mode!r}")
        self.target_host = target_host
        self.target_port = int(target_port)
        self.listen_host = listen_host
        self.port = int(listen_port)
        self._buckets = {"up": TokenBucket(_check_rate(rate_bytes_s)),
                         "down": TokenBucket(_check_rate(rate_bytes_s))}
        self._latency_s = _check_latency(latency_s)
        self._down = bool(down)
        self._down_mode = down_mode
        self._counts = {"bytes_up": 0, "bytes_down": 0, "connections": 0, "refused_or_blackholed": 0}
        self._connections: set[_Connection] = set()
        self._blackholed: set[asyncio.StreamWriter] = set()
        self._server: asyncio.base_events.Server | None = None
        self._shared_loop = link_loop
        self._link_loop: LinkLoop | None = None

    # -- life cycle --------------------------------------------------------------------

    def start(self) -> LinkProxy:
        if self._link_loop is not None:
            return self
        self._link_loop = self._shared_loop or LinkLoop()
        try:
            self._call(self._listen())
        except OSError as exc:
            self.stop()
            raise EdgekitError(f"link proxy cannot listen on {self.listen_host}:{self.port}: {exc}") from exc
        return self

    def stop(self) -> None:
        if self._link_loop is None:
            return
        try:
            if self._link_loop.running:
                self._call(self._shutdown())
        finally:
            if self._link_loop is not self._shared_loop:
                self._link_loop.close()
            self._link_loop = None

    def __enter__(self) -> LinkProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- controls ----------------------------------------------------------------------

    @property
    def down(self) -> bool:
        return self._down

    def set_down(self, down: bool, *, mode: str | None = None) -> None:
        """Take the link down (resetting open connections) or bring it back up."""
        if mode is not None and mode not in DOWN_MODES:
            raise BadInputError(f"link down mode must be one of {', '.join(DOWN_MODES)}, not {mode!r}")
        self._call(self._set_down(bool(down), mode or self._down_mode))

    def set_rate(self, rate_bytes_s: float | None) -> None:
        rate = _check_rate(rate_bytes_s)
        self._call(self._apply(lambda: [b.set_rate(rate) for b in self._buckets.values()]))

    def set_latency(self, latency_s: float) -> None:
        latency = _check_latency(latency_s)
        self._call(self._apply(lambda: setattr(self, "_latency_s", latency)))

    def stats(self) -> dict:
        """Bytes delivered each way (``up``: client to target) and connections accepted."""
        return dict(self._counts, open_connections=len(self._connections))

    @property
    def bytes_up(self) -> int:
        return self._counts["bytes_up"]

    @property
    def bytes_down(self) -> int:
        return self._counts["bytes_down"]

    def reset_counters(self) -> None:
        self._call(self._apply(lambda: self._counts.update(bytes_up=0, bytes_down=0)))

    # -- loop side ---------------------------------------------------------------------

    def _call(self, coro):
        if self._link_loop is None:
            coro.close()
            raise EdgekitError("the link proxy is not started")
        return self._link_loop.call(coro)

    async def _apply(self, change) -> None:
        change()

    async def _listen(self) -> None:
        if self._down and self._down_mode == "refuse":
            if self.port == 0:
                # Reserve a port now so .port is known while the link starts down.
                server = await asyncio.start_server(self._accept, self.listen_host, 0)
                self.port = server.sockets[0].getsockname()[1]
                server.close()
                await server.wait_closed()
            return
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _shutdown(self) -> None:
        await self._close_listener()
        self._reset_all()

    def _reset_all(self) -> None:
        for conn in list(self._connections):
            conn.reset()
        self._connections.clear()
        for writer in list(self._blackholed):
            _reset(writer)
        self._blackholed.clear()

    async def _set_down(self, down: bool, mode: str) -> None:
        self._down_mode = mode
        if down == self._down:
            return
        self._down = down
        self._reset_all()
        if down:
            if mode == "refuse":
                await self._close_listener()
        elif self._server is None:
            await self._listen()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            self._counts["refused_or_blackholed"] += 1
            if self._down_mode == "refuse":
                _reset(writer)
                return
            self._blackholed.add(writer)
            try:
                while await reader.read(_CHUNK):
                    pass  # swallowed: a black hole answers nothing
            except (ConnectionError, OSError):
                pass
            self._blackholed.discard(writer)
            writer.transport.abort()
            return
        conn = _Connection(self, writer)
        self._connections.add(conn)
        self._counts["connections"] += 1
        try:
            target_reader, target_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            self._connections.discard(conn)
            _reset(writer)
            return
        conn.target_writer = target_writer
        for sock_writer in (writer, target_writer):
            sock = sock_writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.tasks = [asyncio.ensure_future(self._pump(reader, target_writer, "up")),
                      asyncio.ensure_future(self._pump(target_reader, writer, "down"))]
        try:
            done, _pending = await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            self._connections.discard(conn)
        if all(t.done() and not t.cancelled() and t.exception() is None for t in conn.tasks):
            writer.close()
            target_writer.close()
        else:
            # One side reset or failed: the other side sees a reset too, as across a real link.
            conn.reset()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: str) -> None:
        """Read, pay the bucket (serialization), then deliver after the latency (propagation)."""
        bucket = self._buckets[direction]
        line: asyncio.Queue = asyncio.Queue(maxsize=4096)
        loop = asyncio.get_running_loop()
        counter = "bytes_up" if direction == "up" else "bytes_down"

        async def deliver() -> None:
            while True:
                due, data = await line.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                self._counts[counter] += len(data)
                await writer.drain()

        deliverer = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(bucket.chunk_limit())
                if deliverer.done():
                    deliverer.result()  # the far side failed: raise its error here
                    return
                if data:
                    wait = bucket.reserve(len(data))
                    if wait > 0:
                        await asyncio.sleep(wait)
                await line.put((loop.time() + self._latency_s, data or None))
                if not data:
                    break
            await deliverer
        finally:
            deliverer.cancel()
