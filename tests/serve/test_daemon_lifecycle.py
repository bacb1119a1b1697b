"""The ``edgekit serve`` process: option checks before anything listens, a taken port,
systemd's notification protocol (a real unix datagram socket as NOTIFY_SOCKET), SIGTERM
draining in-flight requests, backpressure (429s counted, nothing lost) and request
timeouts, on a deliberately slow model compiled by edgekit."""

from __future__ import annotations

import concurrent.futures
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

import edgekit.runtime as rt
from tests.serve.daemon_harness import SLOW_NAME, Daemon, compile_kws, compile_slow, run_cli, running


@pytest.fixture(scope="module")
def slow_bundle(tmp_path_factory):
    return compile_slow(tmp_path_factory.mktemp("slow") / "models")


@pytest.fixture(scope="module")
def slow_input():
    return np.random.default_rng(3).standard_normal((1, 64, 64, 8)).astype(np.float32)


def _body(x: np.ndarray) -> dict:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}],
            "outputs": [{"name": "y", "parameters": {"binary_data": False}}]}


def _metric(url: str, name: str, **labels) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(httpx.get(f"{url}/metrics").text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


@pytest.mark.parametrize("args,message", [
    (["/no/such/folder"], "/no/such/folder does not exist"),
    (["{models}", "--host", "0.0.0.0"], "--host 0.0.0.0 is reachable from other machines: give --token-file"),
    (["{models}", "--token-file", "{empty}"], "must hold one token without spaces"),
    (["{models}", "--uds", "{models}"], "exists and is not a socket"),
    (["{models}", "--uds", "{sock}", "--grpc-port", "9999"], "--grpc-port listens on TCP"),
    (["{models}", "--board", "cortex-m4"], "expected NAME=PORT"),
    (["{models}", "--queue-size", "0"], "--queue-size"),
])
def test_bad_options_exit_2_before_listening(slow_bundle, tmp_path, args, message):
    empty = tmp_path / "token"
    empty.write_text("\n")
    fill = {"models": str(slow_bundle.parent), "empty": str(empty), "sock": str(tmp_path / "s.sock")}
    r = run_cli(["serve", *[a.format(**fill) for a in args]])
    assert r.returncode == 2, r.stderr
    assert message in " ".join(r.stderr.split())


def test_a_taken_port_is_reported(slow_bundle):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = run_cli(["serve", slow_bundle, "--port", port])
    assert r.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in r.stderr


def test_sd_notify_ready_watchdog_stopping(slow_bundle, tmp_path):
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(30)
        d = Daemon([slow_bundle, "--poll-interval", 0], env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
        messages = [notify.recv(4096).decode()]
        assert messages == ["READY=1"]  # not before the model is loaded and the port answers
        assert httpx.get(f"{d.url}/v2/health/ready").status_code == 200
        t0 = time.monotonic()
        while messages.count("WATCHDOG=1") < 3:
            messages.append(notify.recv(4096).decode())
        assert time.monotonic() - t0 < 2.0  # every 0.1 s: half of WATCHDOG_USEC
        assert d.terminate() == 0
        notify.settimeout(5)
        while messages[-1] != "STOPPING=1":
            messages.append(notify.recv(4096).decode())
    assert set(messages) == {"READY=1", "WATCHDOG=1", "STOPPING=1"}


def test_sigterm_drains_in_flight_requests(slow_bundle, slow_input):
    with rt.open(slow_bundle) as m:
        want = m.run({"x": slow_input})["y"]
    n = 6
    d = Daemon([slow_bundle, "--poll-interval", 0])
    try:
        clients = [httpx.Client(base_url=d.url, timeout=60) for _ in range(n)]
        for c in clients:  # each on its own keep-alive connection, accepted before the burst
            assert c.get("/v2/health/live").status_code == 200
        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            # the binary tensor extension: parsing a JSON body of this size takes longer than
            # the model, which would keep the queue from ever filling
            header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(slow_input.shape),
                                             "parameters": {"binary_data_size": slow_input.nbytes}}]}).encode()

            def call(c):
                r = c.post(f"/v2/models/{SLOW_NAME}/infer", content=header + slow_input.tobytes(),
                           headers={"Inference-Header-Content-Length": str(len(header))})
                return r, time.monotonic()

            futures = [pool.submit(call, c) for c in clients]
            # SIGTERM once the daemon holds them all and at least two still wait in the queue
            # (one worker runs them one after the other), so some are in flight at SIGTERM
            # however slowly this loop polls on a loaded machine
            deadline = time.monotonic() + 30
            while True:
                depth = _metric(d.url, "edgekit_queue_depth", model=SLOW_NAME)
                if depth >= 2 and depth + _metric(d.url, "edgekit_requests_total", model=SLOW_NAME) >= n - 1:
                    break
                assert time.monotonic() < deadline, d.log()
                time.sleep(0.005)
            sigterm_at = time.monotonic()
            rc = d.terminate()
            answers = [f.result() for f in futures]
        for c in clients:
            c.close()
        assert rc == 0, d.log()
        assert [r.status_code for r, _ in answers] == [200] * n, [r.text for r, _ in answers]
        for r, _ in answers:
            assert np.allclose(np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(want.shape), want,
                               rtol=1e-5, atol=1e-6)
        assert any(at > sigterm_at for _, at in answers), "no request was still in flight at SIGTERM"
        assert "stopping: draining in-flight requests" in d.log()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{d.url}/v2/health/live")
    finally:
        d.kill()


def test_backpressure_429_and_counters(slow_bundle, slow_input):
    n = 16
    with running([slow_bundle, "--queue-size", 1, "--poll-interval", 0]) as d:
        url = f"{d.url}/v2/models/{SLOW_NAME}/infer"
        clients = [httpx.Client(timeout=60) for _ in range(n)]
        for c in clients:  # connections made before the burst, so the requests arrive together
            assert c.get(f"{d.url}/v2/health/live").status_code == 200
        start = threading.Barrier(n)

        def call(c):
            start.wait()
            return c.post(url, json=_body(slow_input)).status_code

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            codes = list(pool.map(call, clients))
        for c in clients:
            c.close()
        ok, busy = codes.count(200), codes.count(429)
        assert ok + busy == n, codes  # every request answered, with one of the two
        assert ok >= 1 and busy >= 1, codes
        assert _metric(d.url, "edgekit_rejected_requests_total", model=SLOW_NAME, reason="overloaded") == busy
        assert _metric(d.url, "edgekit_requests_total", model=SLOW_NAME, protocol="rest", status="429") == busy
        assert _metric(d.url, "edgekit_requests_total", model=SLOW_NAME, protocol="rest", status="200") == ok
        r = httpx.post(url, json=_body(slow_input), timeout=60)
        assert r.status_code == 200  # the queue drained: served again


def test_in_flight_limit_refuses_before_reading(slow_bundle, slow_input):
    n = 8
    with running([slow_bundle, "--max-in-flight", 2, "--poll-interval", 0]) as d:
        url = f"{d.url}/v2/models/{SLOW_NAME}/infer"
        clients = [httpx.Client(timeout=60) for _ in range(n)]
        for c in clients:
            assert c.get(f"{d.url}/v2/health/live").status_code == 200
        start = threading.Barrier(n)

        def call(c):
            start.wait()
            return c.post(url, json=_body(slow_input))

        with concurrent.futures.ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(call, clients))
        for c in clients:
            c.close()
        codes = [r.status_code for r in answers]
        assert codes.count(200) + codes.count(429) == n and 1 <= codes.count(429) <= n - 2, codes
        for r in answers:
            if r.status_code == 429:
                assert "inference requests in flight" in r.json()["error"] and "--max-in-flight" in r.json()["error"]
        assert _metric(d.url, "edgekit_requests_total", model=SLOW_NAME, status="429") == codes.count(429)


def test_request_timeout_gives_504(slow_bundle, slow_input):
    with running([slow_bundle, "--timeout", 0.001, "--poll-interval", 0]) as d:
        r = httpx.post(f"{d.url}/v2/models/{SLOW_NAME}/infer", json=_body(slow_input), timeout=60)
        assert r.status_code == 504, r.text
        assert SLOW_NAME in r.json()["error"]
        assert httpx.get(f"{d.url}/v2/health/live").status_code == 200


def test_a_corrupt_bundle_is_reported_never_served(tmp_path):
    kws = compile_kws(tmp_path / "good")
    broken = tmp_path / "models"
    broken.mkdir()
    data = bytearray(kws.read_bytes())
    data[len(data) // 2] ^= 0xFF  # fails verification: reported with the reason, the daemon lives on
    (broken / "kws.ekb").write_bytes(bytes(data))
    with running([broken, "--poll-interval", 0]) as d:
        assert "serving 0 ready model version(s)" in d.log()
        assert httpx.get(f"{d.url}/v2/health/live").status_code == 200
        (entry,) = httpx.post(f"{d.url}/v2/repository/index").json()
        assert entry["state"] == "UNAVAILABLE" and "kws.ekb" in entry["reason"]
        r = httpx.post(f"{d.url}/v2/models/kws_ref_model_int8/infer", json={"inputs": [
            {"name": "input_1", "datatype": "INT8", "shape": [1, 49, 10, 1], "data": [0] * 490}]})
        assert r.status_code == 404 and "kws_ref_model_int8" in r.json()["error"]


def test_grpc_and_rest_from_one_daemon(slow_bundle, slow_input):
    import tritonclient.grpc as triton_grpc

    with socket.socket() as s:  # a port free right now for gRPC
        s.bind(("127.0.0.1", 0))
        grpc_port = s.getsockname()[1]
    with running([slow_bundle, "--grpc-port", grpc_port, "--poll-interval", 0]) as d:
        client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
        assert client.is_server_ready() and client.is_model_ready(SLOW_NAME)
        inp = triton_grpc.InferInput("x", list(slow_input.shape), "FP32")
        inp.set_data_from_numpy(slow_input)
        by_grpc = client.infer(SLOW_NAME, [inp]).as_numpy("y")
        client.close()
        r = httpx.post(f"{d.url}/v2/models/{SLOW_NAME}/infer", json=_body(slow_input), timeout=60)
        by_rest = np.asarray(r.json()["outputs"][0]["data"], np.float32).reshape(by_grpc.shape)
        assert np.array_equal(by_grpc, by_rest)
        assert _metric(d.url, "edgekit_requests_total", model=SLOW_NAME, protocol="grpc") == 1


def test_systemd_unit_matches_what_the_daemon_does():
    import configparser

    from tests.support.shared import REPO

    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(REPO / "docs" / "edgekit-serve.service")
    service = unit["Service"]
    assert service["Type"] == "notify"  # the daemon sends READY=1 (test_sd_notify_ready_watchdog_stopping)
    assert int(service["WatchdogSec"]) > 0 and service["Restart"] == "on-failure"
    argv = service["ExecStart"].split()
    assert argv[0].endswith("/edgekit") and argv[1] == "serve"
    # the unit's own options are ones the command takes
    r = run_cli(["serve", "--help"])
    options = [a for a in argv[2:] if a.startswith("--")]
    assert options and all(o in r.stdout for o in options), options
    assert service["ExecReload"].split()[1:3] == ["serve", "reload"]
