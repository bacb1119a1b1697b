"""Fuzzing the REST side of the real daemon: schemathesis generates requests for every
operation of the OpenAPI document the daemon serves and checks each answer (never a 5xx,
status codes, content types and bodies as documented, bad tokens refused); hypothesis
drives the binary tensor data extension (header lengths, sizes, datatypes, truncations):
always a 200 or a 4xx with an OIP error body, and the daemon stays up."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.serve.daemon_harness import KWS_NAME, compile_kws, running

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    bundle = compile_kws(folder / "models")
    (folder / "token").write_text(TOKEN)
    # with a token, schemathesis's auth checks (a made-up token must get 401) apply too
    with running([bundle.parent, "--token-file", folder / "token", "--max-request-bytes", 32768,
                  "--poll-interval", 0]) as d:
        yield d


def _fuzz(op, base_url: str, excluded: list) -> None:
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def check(case):
        case.call_and_validate(base_url=base_url, headers=AUTH, excluded_checks=excluded)

    check()


def test_schemathesis_over_the_served_openapi_document(daemon):
    schema = schemathesis.openapi.from_dict(httpx.get(f"{daemon.url}/openapi.json", headers=AUTH).json())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 14  # every route of edgekit.serve.rest
    for op in operations:
        # A schema-valid tensor can still be the wrong one for the model (400 naming it):
        # the document cannot say which tensors each model takes.
        _fuzz(op, daemon.url, [positive_data_acceptance] if op.path.endswith("/infer") else [])
    assert httpx.get(f"{daemon.url}/v2/health/live").status_code == 200


_DATATYPES = ["INT8", "UINT8", "FP32", "INT64", "BOOL", "FP16"]


@st.composite
def binary_requests(draw):
    """An infer request with the binary extension, correct or broken in one or more ways."""
    datatype = draw(st.sampled_from(_DATATYPES[:1] * 3 + _DATATYPES))
    shape = draw(st.sampled_from([[1, 49, 10, 1], [1, 490], [0], [1, 49, 10, 2]]))
    need = int(np.prod(shape)) * np.dtype({"INT8": "i1", "UINT8": "u1", "FP32": "f4", "INT64": "i8", "BOOL": "?",
                                           "FP16": "f2"}[datatype]).itemsize
    size = draw(st.one_of(st.just(need), st.integers(-3, 2 * need + 8), st.sampled_from([None, "490", 1.5, True])))
    params = {} if size is None else {"binary_data_size": size}
    header = json.dumps({"inputs": [{"name": "input_1", "datatype": datatype, "shape": shape, "parameters": params}],
                         "outputs": [{"name": "Identity", "parameters": {"binary_data": draw(st.booleans())}}]})
    header = header.encode()
    blob_len = draw(st.one_of(st.just(need), st.integers(0, 2 * need + 8)))
    blob = draw(st.binary(min_size=blob_len, max_size=blob_len)) if blob_len < 64 else bytes(blob_len)
    declared = draw(st.one_of(st.just(str(len(header))), st.integers(-5, len(header) + blob_len + 5).map(str),
                              st.sampled_from(["x", "1e3", "12abc", "0x10", "+5"])))
    ok = (datatype == "INT8" and shape == [1, 49, 10, 1] and size == need and blob_len == need
          and declared == str(len(header)))
    return header + blob, declared, ok


def test_binary_extension_never_answers_5xx(daemon):
    url = f"{daemon.url}/v2/models/{KWS_NAME}/infer"
    seen = {"ok": 0, "refused": 0}
    with httpx.Client(headers=AUTH) as client:
        @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
        @given(req=binary_requests())
        def check(req):
            body, declared, ok = req
            r = client.post(url, content=body, headers={"Inference-Header-Content-Length": declared})
            if ok:
                assert r.status_code == 200, r.text
                seen["ok"] += 1
            else:
                assert 400 <= r.status_code < 500, (r.status_code, r.text)
                assert isinstance(r.json()["error"], str) and r.json()["error"]
                seen["refused"] += 1

        check()
        assert seen["ok"] and seen["refused"]
        assert client.get(f"{daemon.url}/v2/health/ready").status_code == 200
