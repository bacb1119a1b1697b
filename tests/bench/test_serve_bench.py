"""bench/serve.py's harness: its load client counts what a server really answered (HTTP and
gRPC), its binary request is what tritonclient builds, and the whole run works end to end
on the bare Starlette endpoint (the peers and edgekit serve are the benchmark's, not this
smoke test's)."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import numpy as np
import pytest

from tests.support.shared import shared_file

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench"

# A server that answers every 4th request with 503 after a fixed 5 ms, counting what it answered.
COUNTING_SERVER = r"""
import asyncio, sys
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

answered = {"200": 0, "503": 0}

async def infer(request):
    await request.body()
    await asyncio.sleep(0.005)
    status = 503 if (answered["200"] + answered["503"]) % 4 == 3 else 200
    answered[str(status)] += 1
    return Response(b"{}", status_code=status)

async def counts(request):
    return JSONResponse(answered)

app = Starlette(routes=[Route("/infer", infer, methods=["POST"]), Route("/counts", counts)])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def _module(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_load(port: int, request: Path, connections: int, *extra) -> dict:
    r = subprocess.run([sys.executable, str(BENCH / "serve_load.py"), "--port", str(port), "--request", str(request),
                        "--connections", str(connections), "--seconds", "0.5", "--warmup", "0", *extra],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def _check_counts(got: dict, answered: dict, ok: str, refused: str, connections: int) -> None:
    # Every answer the client saw is one the server sent; the window leaves out exactly the last
    # answer of each connection (the one that arrived after it closed).
    assert got["requests_total"] == sum(answered.values())
    assert got["requests"] == got["requests_total"] - connections
    assert got["requests"] > 10
    assert 0 <= answered[refused] - got["statuses"].get(refused, 0) <= connections
    assert got["statuses"][ok] + got["statuses"].get(refused, 0) == got["requests"]
    assert got["statuses"][refused] > 0
    assert 0.005 <= got["p50_s"] < 0.5          # the server's 5 ms are inside every latency


def test_http_load_client_counts_answers_and_statuses(tmp_path):
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", COUNTING_SERVER, str(port)])
    try:
        import http.client

        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/counts")
                conn.getresponse().read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the counting server did not start"
                time.sleep(0.05)
        body = b'{"x": 1}'
        request = tmp_path / "req.bin"
        request.write_bytes(b"POST /infer HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        got = _run_load(port, request, 3)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/counts")
        answered = json.loads(conn.getresponse().read())
    finally:
        server.terminate()
        server.wait(timeout=10)
    _check_counts(got, answered, "200", "503", 3)


def test_grpc_load_client_sends_the_bytes_and_counts_codes(tmp_path):
    import grpc

    request_bytes = bytes(range(256)) * 3
    answered = {"OK": 0, "RESOURCE_EXHAUSTED": 0}
    seen = set()
    lock = threading.Lock()

    def infer(request, context):
        time.sleep(0.005)
        with lock:
            seen.add(request)
            refuse = sum(answered.values()) % 4 == 3
            answered["RESOURCE_EXHAUSTED" if refuse else "OK"] += 1
        if refuse:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full")
        return b"answer"

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService", {"ModelInfer": grpc.unary_unary_rpc_method_handler(infer)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        request = tmp_path / "req.bin"
        request.write_bytes(request_bytes)
        got = _run_load(port, request, 2, "--grpc-method", "/inference.GRPCInferenceService/ModelInfer")
    finally:
        server.stop(grace=None)
    assert seen == {request_bytes}
    _check_counts(got, answered, "OK", "RESOURCE_EXHAUSTED", 2)


def test_binary_request_is_the_one_tritonclient_builds():
    import tritonclient.http as httpclient

    serve = _module("serve")
    x = np.arange(-20, 470, dtype=np.int8).reshape(1, 49, 10, 1)
    ours = serve.binary_request("kws", {"input_1": x}, ["Identity"])
    inp = httpclient.InferInput("input_1", list(x.shape), "INT8")
    inp.set_data_from_numpy(x, binary_data=True)
    body, json_size = httpclient.InferenceServerClient.generate_request_body(
        [inp], outputs=[httpclient.InferRequestedOutput("Identity", binary_data=True)], request_id="1")
    head_len = int(ours.headers["Inference-Header-Content-Length"])
    assert json.loads(ours.body[:head_len]) == json.loads(body[:json_size])
    assert ours.body[head_len:] == body[json_size:] == x.tobytes()
    # and the decoder reads a binary answer back to the same array
    head = json.dumps({"outputs": [{"name": "Identity", "datatype": "INT8", "shape": [1, 490],
                                    "parameters": {"binary_data_size": 490}}]}).encode()
    decoded = serve.decode_http_outputs({"inference-header-content-length": str(len(head))}, head + x.tobytes())
    assert np.array_equal(decoded["Identity"], x.reshape(1, 490))


def test_a_window_in_which_nothing_finished_counts_as_zero_throughput():
    serve = _module("serve")

    def one_round(requests, p50):
        phase = {"requests": requests, "requests_total": requests + 1, "seconds": 2.0,
                 "statuses": {"200": requests} if requests else {}}
        if requests:
            phase.update(p50_s=p50, p99_s=2 * p50)
        return {"ready_after_s": 0.5, "rss_bytes": 1, "server_cpu_per_request_s": 1e-3, "command": "x",
                "phases": {"64": phase}}

    row = serve.combine(serve.SERVER_INFO["kserve"], [one_round(0, 0), one_round(10, 0.1), one_round(30, 0.3)])
    phase = row["phases"]["64"]
    assert phase["ok_per_s"] == 5.0                    # median of 0, 5 and 15 req/s
    assert phase["p50_s"] == pytest.approx(0.2)        # over the rounds that timed something
    assert phase["statuses"] == {"200": 40}
    empty = serve.combine(serve.SERVER_INFO["kserve"], [one_round(0, 0)])
    assert empty["phases"]["64"]["p50_s"] is None and empty["phases"]["64"]["ok_per_s"] == 0


def test_harness_runs_end_to_end_on_the_bare_endpoint(tmp_path):
    shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite")   # the model the benchmark serves
    out = tmp_path / "serve.md"
    r = subprocess.run([sys.executable, str(BENCH / "serve.py"), "--servers", "bare", "--clients", "1,2",
                        "--seconds", "0.3", "--warmup", "0.1", "--rounds", "2", "--runs", "200", "--out", str(out)],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["in_process_p50_s"] > 0
    (row,) = result["servers"]
    assert row["server"] == "bare" and "failed" not in row and "skipped" not in row
    assert 0 < row["ready_after_s"] < 60
    assert row["rss_bytes"] > 20 * 2**20        # a Python process with numpy and onnxruntime
    assert len(row["rounds"]) == 2 and len(result["in_process_p50_each_s"]) == 3
    for n in ("1", "2"):
        phase = row["phases"][n]
        each = [r["phases"][n] for r in row["rounds"]]
        assert phase["statuses"] == {"200": sum(p["requests"] for p in each)} and phase["statuses"]["200"] > 0
        assert phase["p50_s"] > result["in_process_p50_s"]   # a request costs at least the call it makes
        # the figure of two rounds is their median: their mean
        assert phase["p50_s"] == pytest.approx((each[0]["p50_s"] + each[1]["p50_s"]) / 2)
        assert phase["ok_per_s"] == pytest.approx(sum(p["requests"] / p["seconds"] for p in each) / 2)
    assert row["non_2xx"] == 0
    assert "Starlette + Uvicorn, bare endpoint" in out.read_text()


def test_a_peer_whose_venv_cannot_be_built_is_skipped_with_the_reason(tmp_path, monkeypatch):
    serve = _module("serve")
    (tmp_path / "peers").mkdir()
    (tmp_path / "peers" / "ghost.txt").write_text("edgekit-no-such-package==1.0\n")
    python, why = serve.peer_python("ghost", install=False, peers=tmp_path / "peers", venvs=tmp_path)
    assert python is None and "not built" in why and "--no-peer-install" in why
    monkeypatch.setenv("PIP_NO_INDEX", "1")      # as on a machine with no network
    python, why = serve.peer_python("ghost", install=True, peers=tmp_path / "peers", venvs=tmp_path)
    assert python is None
    assert "could not build its venv" in why and "edgekit-no-such-package" in why
    # nothing marks the half-built venv as usable: the next run tries again
    assert not (tmp_path / ".peers-venv-ghost" / ".edgekit-requirements-sha256").exists()


@pytest.mark.parametrize("bad", [["--servers", "nginx"], ["--clients", "0"], ["--clients", "a,b"]])
def test_bad_options_exit_2(bad):
    r = subprocess.run([sys.executable, str(BENCH / "serve.py"), *bad], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert r.returncode == 2
    assert "error:" in r.stderr
