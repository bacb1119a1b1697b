"""The gRPC front end's own job, over a small scripted service: translating the wire form
(raw and typed tensor contents, parameters, errors) with tritonclient.grpc and tritonclient's
generated stub as the independent client. The real service behind it: test_grpc_service.py."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tritonclient.utils import InferenceServerException

from edgekit.serve.protocol import (DATATYPES, InferResponse, InferTensor, InvalidRequest, ModelNotFound,
                                    ModelUnavailable, Overloaded, RequestTimeout, dtype_of)
from tests.serve.grpc_harness import LoopThread, client, raw_stub, serving


class RecordingMetrics:
    def __init__(self):
        self.observed = []

    def observe_request(self, model, protocol, seconds, status):
        self.observed.append((model, protocol, status))


class EchoService:
    """One model, "echo", versions "1" and "2": returns its inputs as outputs named
    "<input>_out"; ``fail_with`` makes infer raise that error instead."""

    name = "edgekit"
    version = "0.test"
    extensions = ["model_repository"]

    def __init__(self):
        self.metrics = RecordingMetrics()
        self.fail_with = None
        self.requests = []

    def live(self):
        return True

    def ready(self):
        return True

    def _check(self, name, version):
        if name != "echo" or version not in (None, "1", "2"):
            raise ModelNotFound(f"unknown model {name!r} version {version!r}")

    def model_ready(self, name, version=None):
        self._check(name, version)
        return version != "2"

    def model_metadata(self, name, version=None):
        self._check(name, version)
        return {"name": "echo", "versions": ["1", "2"], "platform": "edgekit-echo",
                "inputs": [{"name": "x", "datatype": "INT8", "shape": [1, 4]}],
                "outputs": [{"name": "x_out", "datatype": "INT8", "shape": [1, 4]}]}

    def repository_index(self):
        return [{"name": "echo", "version": "1", "state": "READY", "reason": ""},
                {"name": "echo", "version": "2", "state": "UNAVAILABLE", "reason": "self-test failed"}]

    async def infer(self, name, version, request):
        self._check(name, version)
        self.requests.append(request)
        if self.fail_with is not None:
            raise self.fail_with
        outputs = [InferTensor(name=t.name + "_out", datatype=t.datatype, shape=t.data.shape, data=t.data)
                   for t in request.inputs if request.outputs is None or t.name + "_out" in request.outputs]
        return InferResponse(model_name=name, model_version=version or "1", outputs=outputs, id=request.id,
                             parameters={"echoed": len(outputs)})


@pytest.fixture(scope="module")
def loop():
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="module")
def echo(loop):
    service = EchoService()
    with serving(loop, service) as (front, url):
        yield service, url


@pytest.fixture(autouse=True)
def _reset(request):
    if "echo" in request.fixturenames:
        service = request.getfixturevalue("echo")[0]
        service.fail_with = None
        service.requests.clear()
        service.metrics.observed.clear()


def _code(exc: InferenceServerException) -> str:
    return exc.status().rsplit(".", 1)[-1]


def _sample(datatype: str, shape=(2, 3), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = dtype_of(datatype)
    if dtype.kind == "b":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    # the extremes of the type are in every sample: the narrow types' range checks see them
    flat = rng.integers(info.min, info.max, int(np.prod(shape)), dtype=dtype, endpoint=True)
    flat[0], flat[-1] = info.min, info.max
    return flat.reshape(shape)


def test_health_metadata_and_repository_index(echo):
    _, url = echo
    c = client(url)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("echo") and not c.is_model_ready("echo", "2")
    meta = c.get_server_metadata()
    assert (meta.name, meta.version, list(meta.extensions)) == ("edgekit", "0.test", ["model_repository"])
    mm = c.get_model_metadata("echo")
    assert (mm.name, list(mm.versions), mm.platform) == ("echo", ["1", "2"], "edgekit-echo")
    assert [(t.name, t.datatype, list(t.shape)) for t in mm.inputs] == [("x", "INT8", [1, 4])]
    assert [(t.name, t.datatype, list(t.shape)) for t in mm.outputs] == [("x_out", "INT8", [1, 4])]
    index = c.get_model_repository_index()
    assert [(m.name, m.version, m.state, m.reason) for m in index.models] == [
        ("echo", "1", "READY", ""), ("echo", "2", "UNAVAILABLE", "self-test failed")]
    with raw_stub(url) as (stub, pb):
        ready_only = stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True))
        assert [(m.name, m.version) for m in ready_only.models] == [("echo", "1")]


@pytest.mark.parametrize("call", ["is_model_ready", "get_model_metadata"])
def test_unknown_model_or_version_is_not_found(echo, call):
    c = client(echo[1])
    for args in (("nope",), ("echo", "7")):
        with pytest.raises(InferenceServerException) as e:
            getattr(c, call)(*args)
        assert _code(e.value) == "NOT_FOUND" and "unknown model" in e.value.message()


@pytest.mark.parametrize("datatype", sorted(DATATYPES))
def test_every_datatype_round_trips_as_raw_contents(echo, datatype):
    service, url = echo
    x = _sample(datatype)
    inp = triton.InferInput("x", list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    result = client(url).infer("echo", [inp], request_id="r1")
    got = result.as_numpy("x_out")
    assert got.dtype == x.dtype and got.shape == x.shape and np.array_equal(got, x)
    sent = service.requests[-1].inputs[0]
    assert (sent.name, sent.datatype, sent.shape, sent.data.dtype) == ("x", datatype, x.shape, x.dtype)
    reply = result.get_response()
    assert (reply.model_name, reply.model_version, reply.id) == ("echo", "1", "r1")
    assert reply.parameters["echoed"].int64_param == 1
    assert service.metrics.observed == [("echo", "grpc", "OK")]


# tritonclient's stub with the typed fields: the reply comes back typed too.
TYPED = {"BOOL": "bool_contents", "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
         "INT64": "int64_contents", "UINT8": "uint_contents", "UINT16": "uint_contents",
         "UINT32": "uint_contents", "UINT64": "uint64_contents", "FP32": "fp32_contents", "FP64": "fp64_contents"}


@pytest.mark.parametrize("datatype", sorted(TYPED))
def test_typed_contents_in_typed_contents_out(echo, datatype):
    _, url = echo
    x = _sample(datatype, seed=1)
    with raw_stub(url) as (stub, pb):
        req = pb.ModelInferRequest(model_name="echo")
        tensor = req.inputs.add(name="x", datatype=datatype, shape=list(x.shape))
        getattr(tensor.contents, TYPED[datatype]).extend(x.ravel().tolist())
        reply = stub.ModelInfer(req)
    assert not reply.raw_output_contents
    out = reply.outputs[0]
    assert (out.name, out.datatype, list(out.shape)) == ("x_out", datatype, list(x.shape))
    got = np.array(getattr(out.contents, TYPED[datatype]), dtype=x.dtype).reshape(x.shape)
    assert np.array_equal(got, x)


def test_fp16_has_no_typed_field(echo):
    with raw_stub(echo[1]) as (stub, pb):
        req = pb.ModelInferRequest(model_name="echo")
        req.inputs.add(name="x", datatype="FP16", shape=[1]).contents.fp32_contents.append(1.0)
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'x'" in e.value.details() and "raw_input_contents" in e.value.details()


def _infer_raw(stub, pb, inputs, raw, model_name="echo"):
    req = pb.ModelInferRequest(model_name=model_name)
    for name, datatype, shape in inputs:
        req.inputs.add(name=name, datatype=datatype, shape=shape)
    req.raw_input_contents.extend(raw)
    return stub.ModelInfer(req)


@pytest.mark.parametrize("inputs, raw, expected", [
    ([("x", "INT8", [1, 4])], [b"\0" * 3], "input 'x': raw contents hold 3 bytes; shape [1, 4] of INT8 needs 4"),
    ([("x", "FP32", [2, 2])], [b"\0" * 17], "input 'x': raw contents hold 17 bytes; shape [2, 2] of FP32 needs 16"),
    ([("x", "INT8", [4]), ("y", "INT8", [4])], [b"\0" * 4], "raw_input_contents has 1 entries for 2 inputs"),
    ([("x", "INT8", [-1, 4])], [b""], "input 'x': shape [-1, 4] has a negative dimension"),
    ([("x", "BYTES", [1])], [b"abc"], "unknown datatype 'BYTES'"),
    ([("x", "BOOL", [2])], [b"\x00\x02"], "input 'x': BOOL raw contents must be bytes 0 or 1"),
])
def test_malformed_raw_contents_are_invalid_argument_naming_the_problem(echo, inputs, raw, expected):
    service, url = echo
    with raw_stub(url) as (stub, pb), pytest.raises(grpc.RpcError) as e:
        _infer_raw(stub, pb, inputs, raw)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in e.value.details()
    assert not service.requests  # refused before the service saw it
    assert service.metrics.observed == [("echo", "grpc", "INVALID_ARGUMENT")]


def test_typed_contents_are_checked(echo):
    _, url = echo
    cases = [("INT8", "int_contents", [1, 2, 3], [4], "contents.int_contents has 3 values; shape [4] needs 4"),
             ("INT8", "int_contents", [1, 2, 300, 4], [4], "outside INT8's range [-128, 127]"),
             ("UINT16", "uint_contents", [70000], [1], "outside UINT16's range [0, 65535]"),
             ("INT32", "fp32_contents", [1.0], [1], "INT32 data goes in contents.int_contents, not fp32_contents")]
    with raw_stub(url) as (stub, pb):
        for datatype, field, values, shape, expected in cases:
            req = pb.ModelInferRequest(model_name="echo")
            getattr(req.inputs.add(name="x", datatype=datatype, shape=shape).contents, field).extend(values)
            with pytest.raises(grpc.RpcError) as e:
                stub.ModelInfer(req)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert expected in e.value.details(), e.value.details()
        # raw and typed contents in one request
        req = pb.ModelInferRequest(model_name="echo")
        req.inputs.add(name="x", datatype="INT8", shape=[1]).contents.int_contents.append(1)
        req.raw_input_contents.append(b"\1")
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "one or the other" in e.value.details()


@pytest.mark.parametrize("error, code", [
    (Overloaded("queue of model 'echo' is full (64 waiting)"), "RESOURCE_EXHAUSTED"),
    (ModelUnavailable("model 'echo' is loading"), "UNAVAILABLE"),
    (RequestTimeout("model 'echo' did not answer within 30 s"), "DEADLINE_EXCEEDED"),
    (InvalidRequest("model 'echo' has no input 'z'"), "INVALID_ARGUMENT"),
    (ModelNotFound("model 'echo' has no version '9'"), "NOT_FOUND"),
])
def test_service_errors_map_to_their_grpc_code_with_the_message(echo, error, code):
    service, url = echo
    service.fail_with = error
    inp = triton.InferInput("x", [1, 4], "INT8")
    inp.set_data_from_numpy(np.zeros((1, 4), np.int8))
    with pytest.raises(InferenceServerException) as e:
        client(url).infer("echo", [inp])
    assert _code(e.value) == code and e.value.message() == str(error)
    assert service.metrics.observed == [("_unknown" if code == "NOT_FOUND" else "echo", "grpc", code)]


def test_unknown_model_is_counted_without_its_name(echo):
    service, url = echo
    inp = triton.InferInput("x", [1], "INT8")
    inp.set_data_from_numpy(np.zeros(1, np.int8))
    with pytest.raises(InferenceServerException) as e:
        client(url).infer("no-such-model", [inp])
    assert _code(e.value) == "NOT_FOUND"
    assert service.metrics.observed == [("_unknown", "grpc", "NOT_FOUND")]
    # garbage for a made-up name: not counted under that name either
    service.metrics.observed.clear()
    with raw_stub(url) as (stub, pb), pytest.raises(grpc.RpcError):
        _infer_raw(stub, pb, [("x", "INT8", [4])], [b"\0"], model_name="made-up")
    assert service.metrics.observed == [("_unknown", "grpc", "INVALID_ARGUMENT")]


def test_unexpected_service_failure_is_internal_and_the_server_lives_on(echo, caplog):
    service, url = echo
    service.fail_with = RuntimeError("engine exploded")
    inp = triton.InferInput("x", [1], "INT8")
    inp.set_data_from_numpy(np.zeros(1, np.int8))
    with pytest.raises(InferenceServerException) as e:
        client(url).infer("echo", [inp])
    assert _code(e.value) == "INTERNAL" and "engine exploded" not in e.value.message()
    assert "engine exploded" in caplog.text
    service.fail_with = None
    assert client(url).infer("echo", [inp]).as_numpy("x_out").tolist() == [0]


def test_requested_outputs_parameters_and_deadline_reach_the_service(echo):
    service, url = echo
    a, b = triton.InferInput("a", [2], "INT32"), triton.InferInput("b", [1], "FP64")
    a.set_data_from_numpy(np.array([1, 2], np.int32))
    b.set_data_from_numpy(np.array([0.5]))
    result = client(url).infer("echo", [a, b], outputs=[triton.InferRequestedOutput("b_out")],
                               parameters={"priority_hint": "low", "k": 3}, client_timeout=20)
    assert result.as_numpy("a_out") is None and result.as_numpy("b_out").tolist() == [0.5]
    seen = service.requests[-1]
    assert seen.outputs == ["b_out"]
    assert seen.parameters["priority_hint"] == "low" and seen.parameters["k"] == 3
    assert 15 < seen.timeout_s <= 21  # the client's deadline, as gRPC carries it (to ~0.1 s)


def test_triton_only_rpcs_are_unimplemented_by_name(echo):
    c = client(echo[1])
    with pytest.raises(InferenceServerException) as e:
        c.get_model_config("echo")
    assert _code(e.value) == "UNIMPLEMENTED" and "ModelConfig is not implemented" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        c.get_inference_statistics("echo")
    assert _code(e.value) == "UNIMPLEMENTED" and "ModelStatistics" in e.value.message()
    with pytest.raises(InferenceServerException) as e:
        c.unload_model("echo")
    assert _code(e.value) == "UNIMPLEMENTED" and "RepositoryModelUnload" in e.value.message()


def test_messages_over_the_limit_are_resource_exhausted(loop):
    service = EchoService()
    with serving(loop, service, max_message_bytes=64 << 10) as (_, url):
        c = client(url)
        small = triton.InferInput("x", [32 << 10], "INT8")
        small.set_data_from_numpy(np.ones(32 << 10, np.int8))
        assert c.infer("echo", [small]).as_numpy("x_out").sum() == 32 << 10
        big = triton.InferInput("x", [80 << 10], "INT8")
        big.set_data_from_numpy(np.ones(80 << 10, np.int8))
        with pytest.raises(InferenceServerException) as e:
            c.infer("echo", [big])
        assert _code(e.value) == "RESOURCE_EXHAUSTED"
        assert len(service.requests) == 1  # refused by gRPC before decoding
        assert c.is_server_live()


def test_bearer_token(loop):
    service = EchoService()
    with serving(loop, service, token="s3cret") as (_, url):
        c = client(url)
        inp = triton.InferInput("x", [1], "INT8")
        inp.set_data_from_numpy(np.ones(1, np.int8))
        for headers in (None, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
            with pytest.raises(InferenceServerException) as e:
                c.infer("echo", [inp], headers=headers)
            assert _code(e.value) == "UNAUTHENTICATED" and "bearer token" in e.value.message()
            with pytest.raises(InferenceServerException) as e:
                c.get_model_metadata("echo", headers=headers)
            assert _code(e.value) == "UNAUTHENTICATED"
            # the health checks stay open, as on REST: supervisors probe them
            assert c.is_server_live(headers=headers) and c.is_server_ready(headers=headers)
        assert not service.requests
        for good in ({"authorization": "Bearer s3cret"}, {"authorization": "bearer  s3cret"}):
            assert c.get_model_metadata("echo", headers=good).name == "echo"
            assert c.infer("echo", [inp], headers=good).as_numpy("x_out").tolist() == [1]


def test_a_taken_port_is_an_error(loop, echo):
    from edgekit.errors import EdgekitError
    from edgekit.serve.grpc_server import GrpcFrontEnd

    taken = int(echo[1].rsplit(":", 1)[1])
    with pytest.raises(EdgekitError, match=f"cannot listen on 127.0.0.1:{taken}"):
        loop.run(GrpcFrontEnd(EchoService(), "127.0.0.1", taken, max_message_bytes=1 << 20).start())


_names = st.sampled_from(["x", "y", ""])
_datatypes = st.sampled_from(sorted(DATATYPES) + ["BYTES", "FP8", ""])
_shapes = st.lists(st.integers(-3, 6) | st.sampled_from([2 ** 31, 2 ** 62, -(2 ** 63)]), max_size=4) | st.lists(
    st.integers(0, 2), min_size=60, max_size=70)
_tensors = st.lists(st.tuples(_names, _datatypes, _shapes), max_size=3)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(inputs=_tensors, raw=st.lists(st.binary(max_size=64), max_size=4))
def test_malformed_raw_contents_never_hurt_the_server(echo, inputs, raw):
    """Whatever the shapes, datatypes and byte strings: the answer is OK or a client error
    (never INTERNAL or UNKNOWN), and the server keeps answering."""
    _, url = echo
    with raw_stub(url) as (stub, pb):
        try:
            reply = _infer_raw(stub, pb, inputs, raw)
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, (e.code(), e.details())
        else:
            # accepted: then it was well formed, and came back byte for byte
            assert list(reply.raw_output_contents) == ([bytes(b) for b in raw] if raw else [b""] * len(inputs))
        assert stub.ServerLive(pb.ServerLiveRequest()).live
