"""A fault-injecting serial proxy for tests: host <-> proxy (loopback TCP) <-> device.

The host connects to ``proxy.url``; for each host connection the proxy opens the device
side with ``upstream()`` (a function returning an ``edgekit.device.link.Link``, e.g.
``lambda t: open_link(url)`` or ``QemuBoard.connect``). A banner the upstream link already
read is replayed to the host first.

Faults are applied per frame (the bytes up to and including a 0x00) and per direction,
from a seeded ``random.Random``, so a run is repeatable:

- ``flip``: flip one bit of the frame (the delimiter included: a flipped delimiter
  merges two frames);
- ``drop``: drop one byte (possibly the delimiter);
- ``dup``: duplicate one byte;
- ``truncate``: cut the frame short (its delimiter kept);
- ``dup_frame``: send the whole frame twice;
- ``drop_frame``: lose the whole frame;
- ``stall``: after ``stall_after`` frames, forward nothing for ``stall_seconds`` (None:
  forever);
- ``on_frame``: a callback ``(index, frame) -> None`` run before a frame is forwarded
  (e.g. kill the emulator in the middle of an upload).

``skip`` leaves the first frames of a connection untouched (HELLO and BEGIN).
Counters of what was injected are in ``proxy.injected``.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from edgekit.errors import EdgekitError
from edgekit.device.link import Link


@dataclass
class Faults:
    flip: float = 0.0
    drop: float = 0.0
    dup: float = 0.0
    truncate: float = 0.0
    dup_frame: float = 0.0
    drop_frame: float = 0.0
    skip: int = 0
    limit: int | None = None  # inject at most this many faults
    only: Callable[[bytes], bool] | None = None  # only frames for which this is true
    stall_after: int | None = None
    stall_seconds: float | None = None
    on_frame: Callable[[int, bytes], None] | None = None


@dataclass
class _Direction:
    faults: Faults
    rng: random.Random
    frame_index: int = 0
    pending: bytearray = field(default_factory=bytearray)
    injected: dict = field(default_factory=dict)
    stalled_until: float = 0.0

    def total(self) -> int:
        return sum(self.injected.values())


class FaultProxy:
    def __init__(self, upstream: Callable[[float], Link], *, to_device: Faults | None = None,
                 to_host: Faults | None = None, seed: int = 0):
        self.upstream = upstream
        self.to_device = to_device or Faults()
        self.to_host = to_host or Faults()
        self.seed = seed
        self.injected: dict[str, int] = {}
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self.url = f"socket://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._dirs: dict[str, _Direction] = {}
        self._session: tuple | None = None
        self._accept_thread = threading.Thread(target=self._accept, daemon=True, name="fault-proxy")
        self._accept_thread.start()

    def _direction(self, name: str, faults: Faults) -> _Direction:
        # One random stream per direction for the life of the proxy: repeatable runs.
        if name not in self._dirs:
            self._dirs[name] = _Direction(faults, random.Random(f"{self.seed}-{name}"))
        d = self._dirs[name]
        d.frame_index = 0
        d.pending.clear()
        return d

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                host, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self._drop_session()
            try:
                dev = self.upstream(10.0)
            except (EdgekitError, OSError):
                host.close()
                continue
            self.connections += 1
            host.settimeout(0.05)
            alive = threading.Event()
            alive.set()
            self._session = (host, dev, alive)
            if dev.banner is not None:
                self._sendall(host, dev.banner + b"\n\x00")
            down = self._direction("to_device", self.to_device)
            up = self._direction("to_host", self.to_host)
            for target, args in ((self._host_to_dev, (host, dev, alive, down)),
                                 (self._dev_to_host, (host, dev, alive, up))):
                t = threading.Thread(target=target, args=args, daemon=True)
                t.start()
                self._threads.append(t)

    def _drop_session(self) -> None:
        if self._session is None:
            return
        host, dev, alive = self._session
        alive.clear()
        for closer in (host.close, dev.close):
            try:
                closer()
            except OSError:
                pass  # the socket is already closed
        self._session = None

    def disconnect(self) -> None:
        """Close both sides of the current session (the host sees the link drop)."""
        self._drop_session()

    @staticmethod
    def _sendall(sock: socket.socket, data: bytes) -> bool:
        try:
            sock.sendall(data)
            return True
        except OSError:
            return False

    def _host_to_dev(self, host, dev: Link, alive, d: _Direction) -> None:
        while alive.is_set() and not self._stop.is_set():
            try:
                data = host.recv(4096)
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                break
            if not data:
                break
            try:
                for piece in self._process(d, data):
                    dev.write(piece)
            except EdgekitError:
                break
        alive.clear()
        self._close_pair(host, dev)

    def _dev_to_host(self, host, dev: Link, alive, d: _Direction) -> None:
        while alive.is_set() and not self._stop.is_set():
            try:
                data = dev.read(0.05)
            except EdgekitError:
                break
            if not data:
                continue
            for piece in self._process(d, data):
                if not self._sendall(host, piece):
                    break
        alive.clear()
        self._close_pair(host, dev)

    def _close_pair(self, host, dev) -> None:
        for closer in (host.close, dev.close):
            try:
                closer()
            except OSError:
                pass  # the socket is already closed

    # ------------------------------------------------------------------ faults
    def _process(self, d: _Direction, data: bytes):
        """Split into frames (up to each 0x00), apply faults, yield what to forward."""
        d.pending += data
        while True:
            i = d.pending.find(0)
            if i < 0:
                return
            frame = bytes(d.pending[:i + 1])
            del d.pending[:i + 1]
            out = self._apply(d, frame)
            if d.stalled_until:
                wait = (d.stalled_until - time.monotonic()) if d.stalled_until != float("inf") else None
                if wait is None:
                    return  # stalled for good: swallow everything
                if wait > 0:
                    time.sleep(wait)
                d.stalled_until = 0.0
            if out:
                yield out

    def _count(self, d: _Direction, kind: str) -> None:
        d.injected[kind] = d.injected.get(kind, 0) + 1
        self.injected[kind] = self.injected.get(kind, 0) + 1

    def _apply(self, d: _Direction, frame: bytes) -> bytes:
        f = d.faults
        idx = d.frame_index
        d.frame_index += 1
        if f.on_frame is not None:
            f.on_frame(idx, frame)
        if f.stall_after is not None and idx == f.stall_after and not d.injected.get("stall"):
            self._count(d, "stall")
            d.stalled_until = float("inf") if f.stall_seconds is None else time.monotonic() + f.stall_seconds
            if f.stall_seconds is None:
                return b""
        if idx < f.skip or (f.limit is not None and d.total() >= f.limit):
            return frame
        if f.only is not None and not f.only(frame):
            return frame
        r = d.rng
        # One fault kind at most per frame, tried in a fixed order.
        if f.drop_frame and r.random() < f.drop_frame:
            self._count(d, "drop_frame")
            return b""
        if f.dup_frame and r.random() < f.dup_frame:
            self._count(d, "dup_frame")
            return frame + frame
        if f.flip and r.random() < f.flip:
            self._count(d, "flip")
            pos = r.randrange(len(frame))
            b = bytearray(frame)
            b[pos] ^= 1 << r.randrange(8)
            return bytes(b)
        if f.drop and r.random() < f.drop:
            self._count(d, "drop")
            pos = r.randrange(len(frame))
            return frame[:pos] + frame[pos + 1:]
        if f.dup and r.random() < f.dup:
            self._count(d, "dup")
            pos = r.randrange(len(frame))
            return frame[:pos + 1] + frame[pos:]
        if f.truncate and r.random() < f.truncate and len(frame) > 2:
            self._count(d, "truncate")
            return frame[:r.randrange(1, len(frame) - 1)] + b"\x00"
        return frame

    def close(self) -> None:
        self._stop.set()
        self._drop_session()
        self._accept_thread.join(timeout=2)
        self._listener.close()
        for t in self._threads:
            t.join(timeout=1)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
