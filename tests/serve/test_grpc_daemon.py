"""gRPC in the real daemon: ``edgekit serve ... --grpc-port N`` as a subprocess, tritonclient.grpc
as the client: answers equal the in-process runtime, the token file applies to gRPC too,
the requests show in the REST side's /metrics, and SIGTERM lets in-flight gRPC calls finish."""

from __future__ import annotations

import socket
import time

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

import edgekit.runtime
from tests.serve.conftest import IN_SHAPE
from tests.serve.daemon_harness import SLOW_NAME, Daemon, compile_slow, running


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready_client(url: str, timeout_s: float = 30) -> triton.InferenceServerClient:
    c = triton.InferenceServerClient(url)
    deadline = time.monotonic() + timeout_s
    while True:  # the REST side announces readiness; gRPC listens a moment before or after
        try:
            if c.is_server_ready():
                return c
        except InferenceServerException:
            pass
        assert time.monotonic() < deadline, f"gRPC on {url} never became ready"
        time.sleep(0.05)


def test_daemon_serves_grpc_with_the_token(bundle_factory, tmp_path):
    models = tmp_path / "models"
    bundle = bundle_factory(models, name="tiny", version="1")
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    port = _free_port()
    with running([models, "--grpc-port", port, "--token-file", token, "--poll-interval", 0]) as d:
        url = f"127.0.0.1:{port}"
        c = _ready_client(url)
        x = np.random.default_rng(0).standard_normal(IN_SHAPE).astype(np.float32)
        inp = triton.InferInput("x", list(IN_SHAPE), "FP32")
        inp.set_data_from_numpy(x)
        with pytest.raises(InferenceServerException) as e:
            c.infer("tiny", [inp])
        assert "UNAUTHENTICATED" in e.value.status()
        auth = {"authorization": "Bearer t0ken"}
        with edgekit.runtime.open(bundle) as model:
            assert np.array_equal(c.infer("tiny", [inp], headers=auth).as_numpy("y"), model.run({"x": x})["y"])
        metrics = httpx.get(f"{d.url}/metrics", headers={"Authorization": "Bearer t0ken"}).text
        assert 'edgekit_requests_total{model="tiny",protocol="grpc",status="OK"} 1.0' in metrics


def test_sigterm_lets_in_flight_grpc_calls_finish(tmp_path):
    bundle = compile_slow(tmp_path / "models")
    x = np.random.default_rng(1).standard_normal((1, 64, 64, 8)).astype(np.float32)
    with edgekit.runtime.open(bundle) as model:
        expected = model.run({"x": x})["y"]
    port = _free_port()
    d = Daemon([bundle.parent, "--grpc-port", port, "--poll-interval", 0])
    try:
        _ready_client(f"127.0.0.1:{port}")
        from tritonclient.grpc import service_pb2 as pb
        from tritonclient.grpc import service_pb2_grpc as pb_grpc

        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            req = pb.ModelInferRequest(model_name=SLOW_NAME)
            req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
            req.raw_input_contents.append(x.tobytes())
            stub.ModelInfer(req, timeout=30)  # warm
            futures = [stub.ModelInfer.future(req, timeout=30) for _ in range(6)]
            time.sleep(0.1)  # on the server and queued
            assert d.terminate() == 0, d.log()
            for f in futures:
                got = np.frombuffer(f.result().raw_output_contents[0], np.float32).reshape(expected.shape)
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    finally:
        d.kill()
