"""The daemon's Prometheus metrics (docs/serve.md): one ``Metrics`` object per service,
with its own ``CollectorRegistry`` so that two services in one process (tests) never
share counters. The REST front end renders ``metrics.registry`` at ``/metrics``.

Hot-path cost is kept low: the labelled children of each metric are looked up once per
(model, ...) and cached, and the queue depth and active versions are read at scrape time
by a collector instead of being updated on every request.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

# Latency buckets from 100 us to 10 s: the in-process call of a small model is ~0.1-1 ms,
# a board over serial tens of ms, a timed-out request up to the request timeout.
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0)

# The model label of requests for a model or version that does not exist: one label for all
# of them, since a label per made-up name would grow the registry without bound.
UNKNOWN_MODEL = "_unknown"


class Metrics:
    """Counters, histograms and scrape-time gauges of one ``InferenceService``."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_seconds = Histogram("edgekit_request_seconds",
                                         "Request latency as the front end saw it (decode, queue, inference, encode)",
                                         ["model", "protocol"], buckets=LATENCY_BUCKETS, registry=r)
        self.requests = Counter("edgekit_requests", "Requests answered, by model, protocol and status",
                                ["model", "protocol", "status"], registry=r)
        self.inference_seconds = Histogram("edgekit_inference_seconds", "Engine time of one inference",
                                           ["model", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("edgekit_rejected_requests",
                                "Requests refused before inference, by reason (overloaded, timeout, invalid, "
                                "unavailable, not_found)", ["model", "reason"], registry=r)
        self.errors = Counter("edgekit_inference_errors", "Inferences the engine failed (not client errors)",
                              ["model", "version"], registry=r)
        self.swaps = Counter("edgekit_model_swaps", "Times traffic moved to a new version", ["model"], registry=r)
        self.rollbacks = Counter("edgekit_model_rollbacks",
                                 "Versions refused or rolled back, by reason (load_failed, self_test_failed, "
                                 "error_rate)", ["model", "reason"], registry=r)
        self.bad_bundles = Counter("edgekit_bad_bundles", "Repository entries that failed to verify", registry=r)
        self.captured = Counter("edgekit_captured_records", "Records the data capture wrote to the sync queue, "
                                "by model and stream (results, captures)", ["model", "stream"], registry=r)
        self.capture_skipped = Counter("edgekit_capture_skipped",
                                       "Inferences the data capture selected but did not write, by reason (budget: "
                                       "the model's daily bytes spent; backlog: the writer fell behind; queue_full: "
                                       "the queue refused it)", ["model", "reason"], registry=r)
        self._request_children = {}
        self._status_children = {}
        self._inference_children = {}
        self._state_sources = []
        r.register(_StateCollector(self._state_sources))

    def observe_request(self, model: str, protocol: str, seconds: float, status) -> None:
        """Record one answered request: ``protocol`` "rest" or "grpc", ``status`` the HTTP
        status or gRPC code name it got. Called by the front ends."""
        key = (model, protocol)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.request_seconds.labels(model=model, protocol=protocol)
        child.observe(seconds)
        skey = (model, protocol, status)
        counter = self._status_children.get(skey)
        if counter is None:
            counter = self._status_children[skey] = self.requests.labels(model=model, protocol=protocol,
                                                                         status=str(status))
        counter.inc()

    def inference_child(self, model: str, version: str):
        """The inference-latency histogram child of one model version (the workers cache it)."""
        key = (model, version)
        child = self._inference_children.get(key)
        if child is None:
            child = self._inference_children[key] = self.inference_seconds.labels(model=model, version=version)
        return child

    def add_state_source(self, source) -> None:
        """``source()`` -> iterable of (model, active version or None, queue depth), read at
        every scrape for the queue-depth and version-info gauges."""
        self._state_sources.append(source)


class _StateCollector:
    """Queue depth and active version per model, read when Prometheus scrapes."""

    def __init__(self, sources: list):
        self._sources = sources

    def describe(self):
        return []

    def collect(self):
        depth = GaugeMetricFamily("edgekit_queue_depth", "Requests waiting in the model's queue", labels=["model"])
        info = GaugeMetricFamily("edgekit_model_version_info", "1 for the version each model serves",
                                 labels=["model", "version"])
        for source in self._sources:
            for model, version, queued in source():
                depth.add_metric([model], queued)
                if version is not None:
                    info.add_metric([model, version], 1)
        yield depth
        yield info
