"""What the gRPC tests share: an asyncio loop in a thread for the server (tritonclient's
client is synchronous), a front end started in it, and the peer's raw stub for requests
tritonclient's helpers would never build (malformed ones, typed contents)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import grpc
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2 as triton_pb
from tritonclient.grpc import service_pb2_grpc as triton_pb_grpc

from edgekit.serve.grpc_server import GrpcFrontEnd


class LoopThread:
    """An event loop running in a daemon thread; ``run`` waits for a coroutine there."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextlib.contextmanager
def serving(loop: LoopThread, service, **options):
    """A ``GrpcFrontEnd`` for ``service`` on a free loopback port, stopped on exit; yields
    (front end, "127.0.0.1:port")."""
    options.setdefault("max_message_bytes", 4 << 20)
    front = GrpcFrontEnd(service, "127.0.0.1", 0, **options)
    port = loop.run(front.start())
    try:
        yield front, f"127.0.0.1:{port}"
    finally:
        loop.run(front.stop(1.0))


def client(url: str) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url)


@contextlib.contextmanager
def raw_stub(url: str):
    """tritonclient's own generated stub: requests built field by field."""
    with grpc.insecure_channel(url) as channel:
        yield triton_pb_grpc.GRPCInferenceServiceStub(channel), triton_pb
