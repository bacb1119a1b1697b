"""The gRPC front end on the real ``InferenceService`` with real bundles (tests/serve/conftest.py),
tritonclient.grpc as the client: answers equal edgekit.runtime's in-process results and
numpy's oracle; the model's own checks come back as INVALID_ARGUMENT / NOT_FOUND, a full
queue as RESOURCE_EXHAUSTED, and the front end's requests show in the service's metrics."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

import edgekit
import edgekit.runtime
from edgekit.serve.service import InferenceService
from tests.serve.conftest import IN_SHAPE, OUT_SHAPE, tiny_expected
from tests.serve.daemon_harness import SLOW_NAME, compile_slow
from tests.serve.grpc_harness import LoopThread, client, raw_stub, serving


@pytest.fixture(scope="module")
def loop():
    lt = LoopThread()
    yield lt
    lt.close()


@pytest.fixture(scope="module")
def repo(bundle_factory, tmp_path_factory):
    root = tmp_path_factory.mktemp("grpc-repo")
    bundles = {"tiny": bundle_factory(root, name="tiny", version="1"),
               "other": bundle_factory(root, name="other", version="3")}
    return root, bundles


@pytest.fixture(scope="module")
def served(loop, repo, tmp_path_factory):
    root, bundles = repo
    service = InferenceService([root], state_dir=tmp_path_factory.mktemp("grpc-state"), poll_interval_s=None)
    loop.run(service.start())
    try:
        with serving(loop, service, max_message_bytes=1 << 20) as (_, url):
            yield service, url, bundles
    finally:
        loop.run(service.stop(5.0))


def _code(exc: InferenceServerException) -> str:
    return exc.status().rsplit(".", 1)[-1]


def _x(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(IN_SHAPE).astype(np.float32)


def _input(x, name="x", datatype="FP32"):
    inp = triton.InferInput(name, list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    return inp


def test_health_and_metadata(served):
    service, url, _ = served
    c = client(url)
    assert c.is_server_live() and c.is_server_ready()
    meta = c.get_server_metadata()
    assert (meta.name, meta.version) == ("edgekit", edgekit.__version__)
    assert list(meta.extensions) == list(service.extensions)
    assert c.is_model_ready("tiny") and c.is_model_ready("other", "3")
    mm = c.get_model_metadata("tiny")
    assert (mm.name, list(mm.versions), mm.platform) == ("tiny", ["1"], "edgekit-litert")
    assert [(t.name, t.datatype, list(t.shape)) for t in mm.inputs] == [("x", "FP32", list(IN_SHAPE))]
    assert [(t.name, t.datatype, list(t.shape)) for t in mm.outputs] == [("y", "FP32", list(OUT_SHAPE))]
    index = {(m.name, m.version): m.state for m in c.get_model_repository_index().models}
    assert index == {("tiny", "1"): "READY", ("other", "3"): "READY"}


def test_unknown_model_or_version_is_not_found(served):
    c = client(served[1])
    for call, args in (("is_model_ready", ("nope",)), ("is_model_ready", ("tiny", "9")),
                       ("get_model_metadata", ("nope",)), ("get_model_metadata", ("tiny", "9")),
                       ("infer", ("nope", [_input(_x(0))])), ("infer", ("tiny", [_input(_x(0))], "9"))):
        with pytest.raises(InferenceServerException) as e:
            getattr(c, call)(*args)
        assert _code(e.value) == "NOT_FOUND", (call, args, e.value)
        assert "nope" in e.value.message() or "'9'" in e.value.message()


def test_infer_equals_the_in_process_runtime(served):
    _, url, bundles = served
    c = client(url)
    for name, version in (("tiny", "1"), ("other", "3")):
        with edgekit.runtime.open(bundles[name]) as model:
            for seed in range(3):
                x = _x(seed)
                result = c.infer(name, [_input(x)], request_id=f"{name}-{seed}")
                y = result.as_numpy("y")
                assert y.dtype == np.float32 and y.shape == OUT_SHAPE
                assert np.array_equal(y, model.run({"x": x})["y"])
                np.testing.assert_allclose(y, tiny_expected(name, version, x), rtol=1e-5, atol=1e-5)
                reply = result.get_response()
                assert (reply.model_name, reply.model_version, reply.id) == (name, version, f"{name}-{seed}")


def test_typed_contents_with_the_real_model(served):
    _, url, bundles = served
    x = _x(5)
    with raw_stub(url) as (stub, pb):
        req = pb.ModelInferRequest(model_name="tiny", model_version="1")
        req.inputs.add(name="x", datatype="FP32", shape=list(IN_SHAPE)).contents.fp32_contents.extend(x.ravel())
        reply = stub.ModelInfer(req)
    with edgekit.runtime.open(bundles["tiny"]) as model:
        expected = model.run({"x": x})["y"]
    got = np.array(reply.outputs[0].contents.fp32_contents, np.float32).reshape(reply.outputs[0].shape)
    assert np.array_equal(got, expected)


@pytest.mark.parametrize("make, expected", [
    (lambda x: _input(x, name="z"), "unknown input 'z'"),
    (lambda x: _input(x.astype(np.float64), datatype="FP64"), "input 'x' has datatype FP64"),
    (lambda x: _input(np.zeros((2, 4), np.float32)), "input 'x' has shape [2, 4]"),
])
def test_what_the_model_refuses_is_invalid_argument(served, make, expected):
    with pytest.raises(InferenceServerException) as e:
        client(served[1]).infer("tiny", [make(_x(1))])
    assert _code(e.value) == "INVALID_ARGUMENT" and expected in e.value.message(), e.value


def test_raw_contents_of_the_wrong_length_name_the_tensor(served):
    with raw_stub(served[1]) as (stub, pb):
        req = pb.ModelInferRequest(model_name="tiny")
        req.inputs.add(name="x", datatype="FP32", shape=list(IN_SHAPE))
        req.raw_input_contents.append(b"\0" * 15)
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(req)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'x': raw contents hold 15 bytes; shape [1, 4] of FP32 needs 16" in e.value.details()


def test_oversize_message_is_resource_exhausted(served):
    big = np.zeros((1, 300_000), np.float32)  # 1.2 MB > the 1 MiB limit
    c = client(served[1])
    with pytest.raises(InferenceServerException) as e:
        c.infer("tiny", [_input(big)])
    assert _code(e.value) == "RESOURCE_EXHAUSTED"
    assert c.infer("tiny", [_input(_x(2))]).as_numpy("y").shape == OUT_SHAPE


def test_metrics_count_grpc_requests(served):
    service, url, _ = served
    samples = service.metrics.registry.get_sample_value
    before_ok = samples("edgekit_requests_total", {"model": "tiny", "protocol": "grpc", "status": "OK"}) or 0
    before_bad = samples("edgekit_requests_total",
                         {"model": "tiny", "protocol": "grpc", "status": "INVALID_ARGUMENT"}) or 0
    before_n = samples("edgekit_request_seconds_count", {"model": "tiny", "protocol": "grpc"}) or 0
    c = client(url)
    c.infer("tiny", [_input(_x(3))])
    with pytest.raises(InferenceServerException):
        c.infer("tiny", [_input(_x(3), name="z")])
    assert samples("edgekit_requests_total", {"model": "tiny", "protocol": "grpc", "status": "OK"}) == before_ok + 1
    assert samples("edgekit_requests_total",
                   {"model": "tiny", "protocol": "grpc", "status": "INVALID_ARGUMENT"}) == before_bad + 1
    assert samples("edgekit_request_seconds_count", {"model": "tiny", "protocol": "grpc"}) == before_n + 2


@pytest.fixture(scope="module")
def slow_bundle(tmp_path_factory):
    return compile_slow(tmp_path_factory.mktemp("slow") / "models")


def _burst(url: str, x: np.ndarray, expected: np.ndarray, n: int) -> dict:
    """``n`` concurrent ModelInfer calls on the slow model: {status code: count}; every
    answer that came back equals ``expected``."""
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(url) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        req = pb.ModelInferRequest(model_name=SLOW_NAME)
        req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
        req.raw_input_contents.append(x.tobytes())
        futures = [stub.ModelInfer.future(req) for _ in range(n)]
        codes = {}
        for f in futures:
            try:
                reply = f.result(timeout=60)
            except grpc.RpcError as e:
                codes[e.code()] = codes.get(e.code(), 0) + 1
            else:
                codes[grpc.StatusCode.OK] = codes.get(grpc.StatusCode.OK, 0) + 1
                got = np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(expected.shape)
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    return codes


def test_calls_beyond_max_in_flight_are_resource_exhausted(loop, slow_bundle, tmp_path):
    service = InferenceService([slow_bundle.parent], state_dir=tmp_path / "state", poll_interval_s=None)
    loop.run(service.start())
    try:
        with serving(loop, service, max_in_flight=2) as (_, url), edgekit.runtime.open(slow_bundle) as model:
            x = np.random.default_rng(5).standard_normal((1, 64, 64, 8)).astype(np.float32)
            codes = _burst(url, x, model.run({"x": x})["y"], 20)
            assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
            assert client(url).is_server_live()
    finally:
        loop.run(service.stop(5.0))


def test_a_full_queue_is_resource_exhausted(loop, slow_bundle, tmp_path):
    """A model of tens of ms per inference, a queue of one, one worker, a burst of concurrent
    requests: the ones that do not fit are refused at once with RESOURCE_EXHAUSTED naming the
    queue (never lost or wrong), every other one answers correctly, and the server serves on."""
    service = InferenceService([slow_bundle.parent], state_dir=tmp_path / "state", poll_interval_s=None,
                               queue_size=1)
    loop.run(service.start())
    try:
        with serving(loop, service) as (_, url), edgekit.runtime.open(slow_bundle) as model:
            x = np.random.default_rng(4).standard_normal((1, 64, 64, 8)).astype(np.float32)
            expected = model.run({"x": x})["y"]
            codes = _burst(url, x, expected, 40)
            assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
            rejected = service.metrics.registry.get_sample_value(
                "edgekit_rejected_requests_total", {"model": SLOW_NAME, "reason": "overloaded"})
            assert rejected == codes[grpc.StatusCode.RESOURCE_EXHAUSTED]  # the queue refused them, not gRPC
            inp = triton.InferInput("x", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            assert client(url).infer(SLOW_NAME, [inp]).as_numpy("y").shape == expected.shape
    finally:
        loop.run(service.stop(5.0))


def test_repository_load_rescans_and_reports(loop, bundle_factory, tmp_path):
    """tritonclient's load_model: a bundle dropped into the directory is served after it; an
    absent model is NOT_FOUND; one whose only version fails its self-test is UNAVAILABLE
    with the reason; a config or files are refused."""
    root = tmp_path / "repo"
    bundle_factory(root, name="tiny", version="1")
    service = InferenceService([root], state_dir=tmp_path / "state", poll_interval_s=None)
    loop.run(service.start())
    try:
        with serving(loop, service) as (_, url):
            c = client(url)
            with pytest.raises(InferenceServerException) as e:
                c.is_model_ready("fresh")
            assert _code(e.value) == "NOT_FOUND"
            fresh = bundle_factory(root, name="fresh", version="2")
            c.load_model("fresh")
            assert c.is_model_ready("fresh", "2")
            x = _x(6)
            with edgekit.runtime.open(fresh) as model:
                assert np.array_equal(c.infer("fresh", [_input(x)]).as_numpy("y"), model.run({"x": x})["y"])
            with pytest.raises(InferenceServerException) as e:
                c.load_model("absent")
            assert _code(e.value) == "NOT_FOUND" and "'absent' is not in the repository" in e.value.message()
            bundle_factory(root, name="broken", version="1", broken_golden=True)
            with pytest.raises(InferenceServerException) as e:
                c.load_model("broken")
            assert _code(e.value) == "UNAVAILABLE" and "version 1:" in e.value.message()
            with pytest.raises(InferenceServerException) as e:
                c.load_model("tiny", config='{"backend": "onnxruntime"}')
            assert _code(e.value) == "INVALID_ARGUMENT" and "takes no config or files" in e.value.message()
    finally:
        loop.run(service.stop(5.0))
