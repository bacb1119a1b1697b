"""The lean load client of bench/serve.py: N concurrent keep-alive connections, each sending
one prebuilt request and waiting for its answer before sending the next (closed loop).

    python bench/serve_load.py --port 8080 --request req.bin [--connections 64] [--seconds 5]
                               [--warmup 1] [--cpu 0] [--grpc-method /inference.GRPCInferenceService/ModelInfer]

HTTP mode: the request file holds the whole HTTP/1.1 request (head and body), sent as is
on every connection; responses are parsed by httptools (the C parser Uvicorn uses), so the
client spends a few microseconds per request instead of the ~1 ms of a Python HTTP client
(toolchain notes), on uvloop when installed. gRPC mode (--grpc-method): the file holds a serialized request message,
sent through grpc.aio with no (de)serializer, so the client encodes nothing per request.

Prints one JSON object: requests completed inside the measured window, their latency
percentiles, status counts (HTTP status or gRPC code name), the window's length and the
client's own CPU time. Requests still in flight when the window closes are not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


class Window:
    """The measured interval: a request counts when it both started and finished inside it."""

    def __init__(self, warmup_s: float, seconds: float):
        now = time.perf_counter()
        self.start = now + warmup_s
        self.end = self.start + seconds
        self.latencies: list[float] = []
        self.statuses: dict[str, int] = {}
        self.completed = 0   # every answer, warmup and after the window included

    def record(self, sent: float, done: float, status: str) -> None:
        self.completed += 1
        if sent >= self.start and done <= self.end:
            self.latencies.append(done - sent)
            self.statuses[status] = self.statuses.get(status, 0) + 1


class HttpConnection(asyncio.Protocol):
    """One keep-alive connection in a closed loop: send, parse the answer, send again."""

    def __init__(self, request: bytes, window: Window, finished: asyncio.Future):
        import httptools

        self.request = request
        self.window = window
        self.finished = finished
        self.parser = httptools.HttpResponseParser(self)
        self.transport = None
        self.sent = 0.0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.sent = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception as e:  # httptools.HttpParserError and its upgrade kinds
            self._fail(f"bad HTTP response: {e}")

    # httptools callback: the whole response (head and body) has arrived.
    def on_message_complete(self) -> None:
        done = time.perf_counter()
        self.window.record(self.sent, done, str(self.parser.get_status_code()))
        if done >= self.window.end:
            self.transport.close()
            if not self.finished.done():
                self.finished.set_result(None)
        elif not self.parser.should_keep_alive():
            self._fail("the server closed the keep-alive connection")
        else:
            self._send()

    def connection_lost(self, exc) -> None:
        if not self.finished.done():
            self._fail(f"connection lost: {exc or 'closed by the server'}")

    def _fail(self, why: str) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.finished.done():
            self.finished.set_exception(ConnectionError(why))


async def http_load(host: str, port: int, request: bytes, connections: int, window: Window) -> None:
    loop = asyncio.get_running_loop()
    waits = []
    for _ in range(connections):
        finished = loop.create_future()
        await loop.create_connection(lambda f=finished: HttpConnection(request, window, f), host, port)
        waits.append(finished)
    await asyncio.gather(*waits)


async def grpc_load(host: str, port: int, method: str, request: bytes, connections: int, window: Window) -> None:
    import grpc

    # One channel (one HTTP/2 connection) carries every client, as a gRPC application would.
    async with grpc.aio.insecure_channel(f"{host}:{port}") as channel:
        call = channel.unary_unary(method)   # bytes in, bytes out: no per-request protobuf work

        async def client() -> None:
            while True:
                sent = time.perf_counter()
                try:
                    await call(request)
                    status = "OK"
                except grpc.aio.AioRpcError as e:
                    status = e.code().name
                done = time.perf_counter()
                window.record(sent, done, status)
                if done >= window.end:
                    return

        await asyncio.gather(*(client() for _ in range(connections)))


def summary(window: Window, seconds: float, cpu_s: float) -> dict:
    lat = np.asarray(window.latencies)
    out = {"requests": int(lat.size), "requests_total": window.completed, "seconds": seconds,
           "statuses": window.statuses, "client_cpu_s": cpu_s}
    if lat.size:
        out.update(p50_s=float(np.percentile(lat, 50)), p99_s=float(np.percentile(lat, 99)),
                   mean_s=float(lat.mean()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--request", required=True, help="file holding the prebuilt request bytes")
    ap.add_argument("--connections", type=int, default=1, help="concurrent clients")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the measured window")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of load before the window opens")
    ap.add_argument("--cpu", type=int, help="pin this process to that CPU")
    ap.add_argument("--grpc-method", help="gRPC mode: the full method path to call")
    args = ap.parse_args()
    if args.connections < 1 or args.seconds <= 0 or args.warmup < 0:
        ap.error("--connections must be at least 1, --seconds positive and --warmup not negative")
    request = Path(args.request).read_bytes()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    run_loop = asyncio.run   # grpc.aio supports asyncio's own loop
    if not args.grpc_method:
        try:
            from uvloop import run as run_loop
        except ImportError:  # plain asyncio: slower, still correct
            pass
    cpu0 = time.process_time()
    window = Window(args.warmup, args.seconds)
    if args.grpc_method:
        run = grpc_load(args.host, args.port, args.grpc_method, request, args.connections, window)
    else:
        run = http_load(args.host, args.port, request, args.connections, window)
    try:
        run_loop(run)
    except (ConnectionError, OSError) as e:
        print(json.dumps({"error": str(e)}))
        sys.exit(1)
    print(json.dumps(summary(window, args.seconds, time.process_time() - cpu0)))


if __name__ == "__main__":
    main()
