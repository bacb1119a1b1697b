"""InferenceService's request path on real bundles (LiteRT): answers against numpy's
``x @ W.T + b``, request validation, backpressure, timeouts, drain, and the Prometheus
metrics read back through prometheus_client's own text parser."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edgekit.errors import BadInputError
from edgekit.serve.protocol import (
    InferRequest,
    InferTensor,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    RequestTimeout,
)
from edgekit.serve.registry import open_model
from edgekit.serve.service import InferenceService
from tests.serve.conftest import tiny_expected


def _request(x, **kw) -> InferRequest:
    return InferRequest([InferTensor("x", "FP32", x.shape, x)], **kw)


def _x(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((1, 4)).astype(np.float32)


def sample(service, metric: str, **labels) -> float:
    text = generate_latest(service.metrics.registry).decode()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


class GatedModel:
    """A real opened model whose ``run`` waits for ``gate`` and counts the calls that ran."""

    def __init__(self, model, gate: threading.Event, runs: list):
        self._model, self._gate, self._runs = model, gate, runs

    def __getattr__(self, name):
        return getattr(self._model, name)

    def run(self, feeds):
        self._runs.append(feeds["x"].copy())
        self._gate.wait(10)
        return self._model.run(feeds)


def gated_opener(gate, runs):
    def opener(path, port):
        return GatedModel(open_model(path, port), gate, runs)
    return opener


def test_infer_answers_like_numpy_and_metadata_describes_the_bundle(bundle_factory, tmp_path):
    bundle_factory(tmp_path / "repo", name="tiny", version="1")
    bundle_factory(tmp_path / "repo", name="other", version="3")

    async def main():
        service = InferenceService([tmp_path / "repo"], poll_interval_s=None)
        assert not service.ready()
        await service.start()
        try:
            assert service.live() and service.ready()
            assert service.model_ready("tiny") and service.model_ready("other", "3")
            assert service.model_ready("tiny", "1")
            meta = service.model_metadata("tiny")
            assert meta == {"name": "tiny", "versions": ["1"], "platform": "edgekit-litert",
                            "inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4]}],
                            "outputs": [{"name": "y", "datatype": "FP32", "shape": [1, 3]}]}
            assert {(r["name"], r["version"], r["state"]) for r in service.repository_index()} == {
                ("tiny", "1", "READY"), ("other", "3", "READY")}
            for seed in range(5):
                x = _x(seed)
                for name, version in (("tiny", "1"), ("other", "3")):
                    r = await service.infer(name, None, _request(x, id=f"r{seed}"))
                    assert (r.model_name, r.model_version, r.id) == (name, version, f"r{seed}")
                    [y] = r.outputs
                    assert (y.name, y.datatype, tuple(y.shape)) == ("y", "FP32", (1, 3))
                    np.testing.assert_allclose(y.data, tiny_expected(name, version, x), rtol=1e-5, atol=1e-5)
            r = await service.infer("tiny", "1", _request(_x(), outputs=["y"]))
            assert [t.name for t in r.outputs] == ["y"]
        finally:
            await service.stop()
        assert not service.ready()

    asyncio.run(main())


@pytest.mark.parametrize("tensors,outputs,problem", [
    ([InferTensor("z", "FP32", (1, 4), np.zeros((1, 4), np.float32))], None, r"unknown input 'z'.*\['x'\]"),
    ([], None, r"missing input\(s\) \['x'\]"),
    ([InferTensor("x", "INT8", (1, 4), np.zeros((1, 4), np.int8))], None, r"'x' has datatype INT8.*takes FP32"),
    ([InferTensor("x", "FP32", (2, 4), np.zeros((2, 4), np.float32))], None,
     r"'x' has shape \[2, 4\].*exactly \[1, 4\]"),
    ([InferTensor("x", "FP32", (1, 4), np.zeros((1, 4), np.float32))] * 2, None, r"'x' is given twice"),
    ([InferTensor("x", "FP32", (1, 4), np.zeros((1, 4), np.float32))], ["y", "q"], r"unknown output\(s\) \['q'\]"),
])
def test_invalid_requests_name_the_tensor_and_what_was_expected(bundle_factory, tmp_path, tensors, outputs,
                                                                problem):
    bundle_factory(tmp_path / "repo")

    async def main():
        service = InferenceService([tmp_path / "repo"], poll_interval_s=None)
        await service.start()
        try:
            with pytest.raises(InvalidRequest, match=problem) as info:
                await service.infer("tiny", None, InferRequest(list(tensors), outputs=outputs))
            assert info.value.http_status == 400 and info.value.grpc_code == "INVALID_ARGUMENT"
            assert sample(service, "edgekit_rejected_requests_total", model="tiny", reason="invalid") == 1
            # the daemon is unharmed: the next good request is answered
            r = await service.infer("tiny", None, _request(_x()))
            np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", "1", _x()), rtol=1e-5, atol=1e-5)
        finally:
            await service.stop()

    asyncio.run(main())


def test_unknown_model_or_version_is_not_found(bundle_factory, tmp_path):
    bundle_factory(tmp_path / "repo")

    async def main():
        service = InferenceService([tmp_path / "repo"], poll_interval_s=None)
        await service.start()
        try:
            with pytest.raises(ModelNotFound, match="unknown model 'nope'"):
                await service.infer("nope", None, _request(_x()))
            with pytest.raises(ModelNotFound, match="no version '7'"):
                await service.infer("tiny", "7", _request(_x()))
            with pytest.raises(ModelNotFound):
                service.model_ready("nope")
            with pytest.raises(ModelNotFound):
                service.model_metadata("tiny", "7")
        finally:
            await service.stop()

    asyncio.run(main())


def test_full_queue_is_overloaded_at_once_and_a_timed_out_request_is_never_run(bundle_factory, tmp_path):
    bundle_factory(tmp_path / "repo")
    gate, runs = threading.Event(), []

    async def main():
        service = InferenceService([tmp_path / "repo"], poll_interval_s=None, queue_size=2)
        service.registry.opener = gated_opener(gate, runs)
        gate.set()                      # let the self-test through
        await service.start()
        gate.clear()
        runs.clear()
        try:
            running = asyncio.ensure_future(service.infer("tiny", None, _request(_x(1))))
            while not runs:             # the worker holds the first request
                await asyncio.sleep(0.005)
            queued = [asyncio.ensure_future(service.infer("tiny", None, _request(_x(2), timeout_s=0.2))),
                      asyncio.ensure_future(service.infer("tiny", None, _request(_x(3), timeout_s=0.2)))]
            await asyncio.sleep(0.02)
            assert sample(service, "edgekit_queue_depth", model="tiny") == 2
            with pytest.raises(Overloaded, match="queue of 2 requests is full") as info:
                await service.infer("tiny", None, _request(_x(4)))
            assert info.value.http_status == 429 and info.value.grpc_code == "RESOURCE_EXHAUSTED"
            for f in queued:
                with pytest.raises(RequestTimeout, match="no answer within 0.2 s"):
                    await f
            # their places are free at once, while the worker is still busy
            assert sample(service, "edgekit_queue_depth", model="tiny") == 0
            gate.set()
            r = await running
            np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", "1", _x(1)), rtol=1e-5, atol=1e-5)
            r = await service.infer("tiny", None, _request(_x(5)))
            # the two timed-out requests were dropped from the queue, not run
            assert [float(x[0, 0]) for x in runs] == [float(_x(1)[0, 0]), float(_x(5)[0, 0])]
            assert sample(service, "edgekit_rejected_requests_total", model="tiny", reason="overloaded") == 1
            assert sample(service, "edgekit_rejected_requests_total", model="tiny", reason="timeout") == 2
        finally:
            gate.set()
            await service.stop()

    asyncio.run(main())


def test_stop_drains_in_flight_requests_and_refuses_new_ones(bundle_factory, tmp_path):
    bundle_factory(tmp_path / "repo")
    gate, runs = threading.Event(), []

    async def main():
        service = InferenceService([tmp_path / "repo"], poll_interval_s=None)
        service.registry.opener = gated_opener(gate, runs)
        gate.set()
        await service.start()
        gate.clear()
        runs.clear()
        in_flight = asyncio.ensure_future(service.infer("tiny", None, _request(_x(1))))
        while not runs:
            await asyncio.sleep(0.005)
        stopping = asyncio.ensure_future(service.stop(drain_timeout_s=5))
        await asyncio.sleep(0.05)
        assert not service.ready() and not stopping.done()
        with pytest.raises(ModelUnavailable, match="shutting down"):
            await service.infer("tiny", None, _request(_x(2)))
        gate.set()
        r = await in_flight
        np.testing.assert_allclose(r.outputs[0].data, tiny_expected("tiny", "1", _x(1)), rtol=1e-5, atol=1e-5)
        await stopping

    asyncio.run(main())


def test_metrics_count_requests_inferences_and_versions(bundle_factory, tmp_path):
    bundle_factory(tmp_path / "repo")

    async def main():
        service = InferenceService([tmp_path / "repo"], poll_interval_s=None)
        await service.start()
        try:
            for i in range(7):
                await service.infer("tiny", None, _request(_x(i)))
                service.metrics.observe_request("tiny", "rest", 0.0003, 200)
            service.metrics.observe_request("tiny", "grpc", 0.02, "OK")
            assert sample(service, "edgekit_inference_seconds_count", model="tiny", version="1") == 7
            assert sample(service, "edgekit_request_seconds_count", model="tiny", protocol="rest") == 7
            assert sample(service, "edgekit_request_seconds_bucket", model="tiny", protocol="rest", le="0.0005") == 7
            assert sample(service, "edgekit_request_seconds_bucket", model="tiny", protocol="grpc", le="0.01") == 0
            assert sample(service, "edgekit_requests_total", model="tiny", protocol="rest", status="200") == 7
            assert sample(service, "edgekit_model_version_info", model="tiny", version="1") == 1
            assert sample(service, "edgekit_queue_depth", model="tiny") == 0
            assert sample(service, "edgekit_inference_errors_total", model="tiny", version="1") == 0
        finally:
            await service.stop()

    asyncio.run(main())


def test_bad_settings_and_paths_are_user_errors(tmp_path):
    with pytest.raises(BadInputError, match="does not exist"):
        InferenceService([tmp_path / "missing"])
    with pytest.raises(BadInputError, match="queue_size"):
        InferenceService([tmp_path], queue_size=0)
    with pytest.raises(BadInputError, match="rollback_error_rate"):
        InferenceService([tmp_path], rollback_error_rate=1.5)
