"""The REST side of ``edgekit serve`` end to end: the real daemon in a subprocess serving a
KWS bundle compiled by edgekit, and tritonclient.http (NVIDIA's Open Inference Protocol
client, which knows nothing of edgekit) on every endpoint; outputs checked against the
same bundle run in-process through ``edgekit.runtime``. Client errors are sent as raw
HTTP requests (what curl would send) and checked for their exact status and message."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

import edgekit
import edgekit.runtime as rt
from tests.serve.daemon_harness import KWS_NAME, compile_kws, running
from tests.support.shared import REPO, shared_file

N = 12


@pytest.fixture(scope="module")
def kws_bundle(tmp_path_factory):
    return compile_kws(tmp_path_factory.mktemp("rest") / "models")


@pytest.fixture(scope="module")
def daemon(kws_bundle):
    with running([kws_bundle.parent, "--max-request-bytes", 65536, "--poll-interval", 0]) as d:
        yield d


@pytest.fixture(scope="module")
def client(daemon):
    c = triton.InferenceServerClient(daemon.hostport)
    yield c
    c.close()


@pytest.fixture(scope="module")
def kws_x():
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        return z["x_int8"][:N]


@pytest.fixture(scope="module")
def expected(kws_bundle, kws_x):
    with rt.open(kws_bundle) as m:
        return [m.run({"input_1": kws_x[i:i + 1]})["Identity"] for i in range(N)]


def test_health_and_server_metadata(client):
    assert client.is_server_live() and client.is_server_ready()
    meta = client.get_server_metadata()
    assert meta["name"] == "edgekit" and meta["version"] == edgekit.__version__
    assert "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_readiness_describe_the_bundle(client, kws_bundle):
    with rt.open(kws_bundle) as m:
        inputs = [{"name": s.name, "datatype": "INT8", "shape": list(s.shape)} for s in m.inputs]
        outputs = [{"name": s.name, "datatype": "INT8", "shape": list(s.shape)} for s in m.outputs]
    for version in ("", "1"):
        meta = client.get_model_metadata(KWS_NAME, model_version=version)
        assert meta["name"] == KWS_NAME and meta["versions"] == ["1"] and meta["platform"] == "edgekit-litert"
        assert meta["inputs"] == inputs and meta["outputs"] == outputs
        assert client.is_model_ready(KWS_NAME, model_version=version)
    assert not client.is_model_ready("no_such_model")
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata(KWS_NAME, model_version="7")
    assert e.value.status() == "404"


@pytest.mark.parametrize("binary_in,binary_out", [(False, False), (True, True), (False, True), (True, False)])
def test_infer_matches_the_runtime_in_process(client, kws_x, expected, binary_in, binary_out):
    for i in range(N):
        inp = triton.InferInput("input_1", [1, 49, 10, 1], "INT8")
        inp.set_data_from_numpy(kws_x[i:i + 1], binary_data=binary_in)
        out = triton.InferRequestedOutput("Identity", binary_data=binary_out)
        result = client.infer(KWS_NAME, [inp], outputs=[out], request_id=f"r{i}")
        got = result.as_numpy("Identity")
        assert got.dtype == np.int8 and np.array_equal(got, expected[i])
        assert result.get_response()["id"] == f"r{i}"
        assert result.get_response()["model_version"] == "1"


def test_infer_without_outputs_returns_all_binary(client, kws_x, expected):
    # tritonclient asks for every output in binary form (binary_data_output) when given none
    inp = triton.InferInput("input_1", [1, 49, 10, 1], "INT8")
    inp.set_data_from_numpy(kws_x[:1])
    result = client.infer(KWS_NAME, [inp], model_version="1")
    assert result.get_output("Identity")["parameters"]["binary_data_size"] == 12
    assert np.array_equal(result.as_numpy("Identity"), expected[0])


def test_nested_json_data_is_accepted(daemon, kws_x, expected):
    body = {"inputs": [{"name": "input_1", "datatype": "INT8", "shape": [1, 49, 10, 1],
                        "data": kws_x[:1].tolist()}]}
    r = httpx.post(f"{daemon.url}/v2/models/{KWS_NAME}/infer", json=body)
    assert r.status_code == 200
    assert r.json()["outputs"][0]["data"] == expected[0].ravel().tolist()


def test_repository_index_and_load(client):
    assert client.get_model_repository_index() == [{"name": KWS_NAME, "version": "1", "state": "READY",
                                                    "reason": ""}]
    client.load_model(KWS_NAME)  # rescans; the model stays ready
    with pytest.raises(InferenceServerException) as e:
        client.load_model("no_such_model")
    assert e.value.status() == "404" and "no_such_model" in e.value.message()


def _infer(url: str, body, headers=None, model=KWS_NAME) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/v2/models/{model}/infer", content=content, headers=headers)


def _kws_input(**over) -> dict:
    t = {"name": "input_1", "datatype": "INT8", "shape": [1, 49, 10, 1], "data": [0] * 490}
    t.update(over)
    return {"inputs": [t]}


def _binary(header: dict, blob: bytes, header_length: int | None = None) -> tuple:
    head = json.dumps(header).encode()
    n = len(head) if header_length is None else header_length
    return head + blob, {"Inference-Header-Content-Length": str(n)}


@pytest.mark.parametrize("body,status,message", [
    (b'{"inputs": [', 400, "request body is not valid JSON"),
    (b'[1, 2]', 400, "request body must be a JSON object with an 'inputs' list"),
    (b'{"inputs": []}', 400, "request needs 'inputs': a non-empty list of tensors"),
    (_kws_input(data=[0] * 489), 400, "input 'input_1': shape [1, 49, 10, 1] holds 490 values, data has 489"),
    (_kws_input(data=[300] * 490), 400, "input 'input_1': a value is outside INT8's range -128..127"),
    (_kws_input(data=[0.5] * 490), 400, "input 'input_1': data of datatype INT8 must hold integers"),
    (_kws_input(data=["a"] * 490), 400, "input 'input_1': data of datatype INT8 must hold numbers"),
    (_kws_input(datatype="INT9"), 400, "unknown datatype 'INT9'"),
    (_kws_input(shape=[1, -49]), 400, "input 'input_1': shape must be a list of non-negative integers"),
    (_kws_input(datatype="FP32"), 400, f"input 'input_1' has datatype FP32; model '{KWS_NAME}' takes INT8"),
    (_kws_input(shape=[1, 490], data=[0] * 490), 400,
     f"input 'input_1' has shape [1, 490]; model '{KWS_NAME}' takes exactly [1, 49, 10, 1]"),
    (_kws_input(name="input_2"), 400, f"unknown input 'input_2'; model '{KWS_NAME}' takes ['input_1']"),
    ({**_kws_input(), "outputs": [{"name": "nope"}]}, 400, "'nope'"),
])
def test_client_errors_name_the_problem(daemon, body, status, message):
    r = _infer(daemon.url, body)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert message in r.json()["error"]


def test_binary_extension_errors(daemon, kws_x):
    x = kws_x[:1].tobytes()
    header = _kws_input(parameters={"binary_data_size": 490})
    del header["inputs"][0]["data"]
    r = _infer(daemon.url, *_binary(header, x[:300]))
    assert r.status_code == 400
    assert r.json()["error"] == ("input 'input_1': binary data truncated: it needs bytes 0..490 after the JSON "
                                 "header, the body has 300")
    r = _infer(daemon.url, *_binary(header, x + b"\0\0"))
    assert r.status_code == 400 and r.json()["error"].startswith("2 bytes after the JSON header")
    body, _ = _binary(header, x)
    r = _infer(daemon.url, body, {"Inference-Header-Content-Length": str(len(body) + 1)})
    assert r.status_code == 400 and "outside the body's" in r.json()["error"]
    r = _infer(daemon.url, body, {"Inference-Header-Content-Length": "ten"})
    assert r.status_code == 400 and r.json()["error"] == "Inference-Header-Content-Length 'ten' is not an integer"
    header["inputs"][0]["parameters"]["binary_data_size"] = 489
    r = _infer(daemon.url, *_binary(header, x[:489]))
    assert r.status_code == 400
    assert r.json()["error"] == "input 'input_1': binary_data_size 489 but shape [1, 49, 10, 1] of INT8 takes 490 bytes"
    r = _infer(daemon.url, *_binary(header, x, header_length=5))  # the header cut inside the JSON
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]


def test_unknown_model_version_and_endpoint(daemon):
    r = _infer(daemon.url, _kws_input(), model="nope")
    assert r.status_code == 404 and r.json() == {"error": "unknown model 'nope'"}
    r = httpx.post(f"{daemon.url}/v2/models/{KWS_NAME}/versions/9/infer", json=_kws_input())
    assert r.status_code == 404 and r.json() == {"error": f"model '{KWS_NAME}' has no version '9'"}
    r = httpx.get(f"{daemon.url}/v2/nothing")
    assert r.status_code == 404 and r.json() == {"error": "no such endpoint: /v2/nothing"}
    r = httpx.get(f"{daemon.url}/v2/models/{KWS_NAME}/infer")
    assert r.status_code == 405 and r.json()["error"] == f"method GET not allowed on /v2/models/{KWS_NAME}/infer"


def test_oversize_bodies_get_413(daemon):
    # declared too large: refused before reading
    r = _infer(daemon.url, b"x" * 65537)
    assert r.status_code == 413
    assert r.json()["error"] == ("request body of 65537 bytes is over the limit of 65536 bytes "
                                 "(edgekit serve --max-request-bytes)")

    def chunks():  # no Content-Length: counted while reading
        for _ in range(20):
            yield b"y" * 4096

    r = httpx.post(f"{daemon.url}/v2/models/{KWS_NAME}/infer", content=chunks())
    assert r.status_code == 413 and "over the limit of 65536 bytes" in r.json()["error"]
    assert httpx.get(f"{daemon.url}/v2/health/live").status_code == 200


def test_metrics_count_what_was_answered(daemon, kws_x):
    def count(status: str) -> float:
        text = httpx.get(f"{daemon.url}/metrics").text
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if (s.name == "edgekit_requests_total" and s.labels.get("model") == KWS_NAME
                        and s.labels.get("protocol") == "rest" and s.labels.get("status") == status):
                    return s.value
        return 0.0

    ok0, bad0 = count("200"), count("400")
    for _ in range(5):
        assert _infer(daemon.url, _kws_input()).status_code == 200
    for _ in range(3):
        assert _infer(daemon.url, _kws_input(datatype="FP32")).status_code == 400
    assert count("200") == ok0 + 5 and count("400") == bad0 + 3
    families = {f.name for f in text_string_to_metric_families(httpx.get(f"{daemon.url}/metrics").text)}
    assert {"edgekit_request_seconds", "edgekit_inference_seconds", "edgekit_queue_depth",
            "edgekit_rejected_requests", "edgekit_model_swaps", "edgekit_model_rollbacks",
            "edgekit_model_version_info"} <= families


def test_served_openapi_document_is_the_checked_in_one(daemon):
    served = httpx.get(f"{daemon.url}/openapi.json").json()
    checked_in = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert served == checked_in, "regenerate: python -m edgekit.serve.openapi > docs/openapi.json"
    assert set(served["paths"]) >= {"/v2/health/live", "/v2/models/{name}/infer", "/metrics"}


def test_bearer_token(kws_bundle, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    with running([kws_bundle, "--token-file", token_file, "--poll-interval", 0]) as d:
        for path in ("/v2/health/live", "/v2/health/ready"):
            assert httpx.get(d.url + path).status_code == 200
        for method, path in (("GET", "/v2"), ("GET", f"/v2/models/{KWS_NAME}"), ("POST", "/v2/repository/index"),
                             ("GET", "/metrics"), ("GET", "/openapi.json"), ("POST", f"/v2/models/{KWS_NAME}/infer")):
            r = httpx.request(method, d.url + path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", path
            assert "bearer token" in r.json()["error"]
            r = httpx.request(method, d.url + path, headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
        c = triton.InferenceServerClient(d.hostport)
        headers = {"Authorization": "Bearer s3cret-token"}
        assert c.get_server_metadata(headers=headers)["name"] == "edgekit"
        inp = triton.InferInput("input_1", [1, 49, 10, 1], "INT8")
        inp.set_data_from_numpy(np.zeros((1, 49, 10, 1), np.int8))
        assert c.infer(KWS_NAME, [inp], headers=headers).as_numpy("Identity").shape == (1, 12)
        with pytest.raises(InferenceServerException) as e:
            c.infer(KWS_NAME, [inp])
        assert e.value.status() == "401"
        c.close()


def test_reload_command_over_a_unix_socket(kws_bundle, tmp_path):
    import edgekit
    from edgekit.bundle import compile_bundle
    from tests.serve.daemon_harness import run_cli

    models = tmp_path / "models"
    models.mkdir()
    (models / "kws_v1.ekb").write_bytes(Path(kws_bundle).read_bytes())
    sock = tmp_path / "serve.sock"
    with running([models, "--uds", sock, "--poll-interval", 0]) as d:
        assert d.url == str(sock)
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as c:
            assert c.get("http://localhost/v2/health/ready").status_code == 200
            assert c.get(f"http://localhost/v2/models/{KWS_NAME}").json()["versions"] == ["1"]
            # version 2 compiled elsewhere and moved in whole; polling is off, so only reload finds it
            graph = edgekit.load_model(shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite"))
            v2 = compile_bundle(graph, "x86_64", tmp_path / "kws_v2.ekb", backend="litert", model_version="2")
            Path(v2.bundle.path).rename(models / "kws_v2.ekb")
            r = run_cli(["serve", "reload", "--uds", sock])
            assert r.returncode == 0, r.stderr
            assert set(json.loads(r.stdout)) == {"loaded", "rolled_back", "unchanged"}
            meta = c.get(f"http://localhost/v2/models/{KWS_NAME}").json()
            assert meta["versions"] == ["1", "2"], meta
            assert c.post("http://localhost/v2/repository/index", json={"ready": True}).status_code == 200
    assert not sock.exists()
    r = run_cli(["serve", "reload", "--uds", sock])
    assert r.returncode == 1 and "no daemon answered" in r.stderr
