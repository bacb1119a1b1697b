"""``InferenceService``: what the REST and gRPC front ends call (docs/serve.md).

    service = InferenceService(["models/"], state_dir="/var/lib/edgekit")
    await service.start()
    response = await service.infer("kws", None, InferRequest([InferTensor(...)]))

It owns the model repository (``repository``), the registry of served versions
(``registry``: swaps, self-tests, rollbacks, boards), the persisted state (``state``) and
the metrics (``metrics``). Changes run on one loader thread; requests go from the event
loop straight into the model's bounded queue and come back through one
``call_soon_threadsafe``: one thread hop per request, and nothing logged per request.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time

import edgekit
from edgekit.errors import BadInputError
from edgekit.serve.metrics import Metrics
from edgekit.serve.protocol import (
    InferRequest,
    InferResponse,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    Overloaded,
    RequestTimeout,
)
from edgekit.serve.registry import Completions, Registry, version_metadata
from edgekit.serve.repository import Repository, version_key
from edgekit.serve.state import ServeState

log = logging.getLogger("edgekit.serve")

# Between the two scans that tell a complete bundle from one still being written, when a
# scan finds new or changed entries (start-up, reload).
SETTLE_S = 0.05


class InferenceService:
    """The models of one daemon, served through the Open Inference Protocol's operations."""

    name = "edgekit"
    version = edgekit.__version__
    extensions = ["binary_tensor_data", "model_repository"]

    def __init__(self, repository_dirs: list, *, boards: dict | None = None, state_dir=None, queue_size: int = 64,
                 workers_per_model: int = 1, request_timeout_s: float = 30.0, rollback_window: int = 100,
                 rollback_error_rate: float = 0.5, poll_interval_s: float | None = 2.0, metrics=None,
                 capture=None):
        if queue_size < 1 or workers_per_model < 1:
            raise BadInputError("queue_size and workers_per_model must be at least 1")
        if request_timeout_s <= 0:
            raise BadInputError(f"request timeout {request_timeout_s} s: give a positive number of seconds")
        if not 0 <= rollback_error_rate <= 1 or rollback_window < 0:
            raise BadInputError("rollback_error_rate must be within 0..1 and rollback_window at least 0")
        if poll_interval_s is not None and poll_interval_s <= 0:
            raise BadInputError(f"poll interval {poll_interval_s} s: give a positive number, or None for no polling")
        self.repository = Repository(repository_dirs)
        self.metrics = metrics if metrics is not None else Metrics()
        self.state = ServeState(state_dir)
        self.registry = Registry(self.state, self.metrics, boards=boards, queue_size=queue_size,
                                 workers_per_model=workers_per_model, rollback_window=rollback_window,
                                 rollback_error_rate=rollback_error_rate)
        self.request_timeout_s = float(request_timeout_s)
        self.poll_interval_s = poll_interval_s
        self._loader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="edgekit-serve-loader")
        self.registry.schedule = self._schedule
        # data capture (edgekit.serve.capture.Capture): the workers hand it each answered inference
        self.capture = capture
        self.registry.capture = capture
        self.metrics.add_state_source(self._gauges)
        self._rejected = {}
        self._completions = None
        self._started = False
        self._draining = False
        self._poller = None

    # ---- life cycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Scan the repository and bring up every model found. A bad bundle does not
        raise: its model is unready and the reason is in ``repository_index``."""
        await asyncio.get_running_loop().run_in_executor(self._loader, self._rescan)
        self._started = True
        if self.poll_interval_s is not None:
            self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Take no new requests, let the queued and running ones finish (up to
        ``drain_timeout_s``), then close every engine."""
        self._draining = True
        if self._poller is not None:
            self._poller.cancel()
            self._poller = None
        deadline = time.monotonic() + drain_timeout_s
        while time.monotonic() < deadline and any(_pending(s) for s in list(self.registry.models.values())):
            await asyncio.sleep(0.01)
        await asyncio.get_running_loop().run_in_executor(self._loader, self.registry.close)
        if self.capture is not None:    # the workers are gone: write what they captured, then close the queue
            await asyncio.get_running_loop().run_in_executor(self._loader, self.capture.close)
        self._loader.shutdown(wait=False)

    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        # list(): the loader thread may add or drop a model meanwhile
        models = list(self.registry.models.values())
        return self._started and not self._draining and all(s.ready() for s in models)

    async def reload(self) -> dict:
        """Scan the repository now; {"loaded": [...], "rolled_back": [...], "unchanged": [...]}."""
        return await asyncio.get_running_loop().run_in_executor(self._loader, self._rescan)

    async def load_model(self, name: str) -> None:
        """The repository extension's load: rescan, then ModelNotFound when ``name`` is not
        in the repository, ModelUnavailable (naming each version's reason) when none of
        its versions is ready."""
        await self.reload()
        entries = [m for m in self.repository_index() if m["name"] == name]
        if not entries:
            raise ModelNotFound(f"model {name!r} is not in the repository after a rescan")
        if not any(m["state"] == "READY" for m in entries):
            reasons = "; ".join(f"version {m['version']}: {m['reason'] or m['state']}" for m in entries)
            raise ModelUnavailable(f"model {name!r} has no ready version: {reasons}")

    def _rescan(self) -> dict:
        entries, bad, pending = self.repository.scan()
        if pending:
            time.sleep(SETTLE_S)
            entries, bad, pending = self.repository.scan()
        summary = self.registry.reconcile(entries, bad)
        self.registry.check_boards()
        return summary

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                await loop.run_in_executor(self._loader, self._poll_once)
            except Exception:                       # never let a poll take the daemon down
                log.exception("model repository poll failed")

    def _poll_once(self) -> None:
        entries, bad, _pending = self.repository.scan()
        self.registry.reconcile(entries, bad)
        self.registry.check_boards()

    def _schedule(self, fn) -> None:
        def run():
            try:
                fn()
            except Exception:
                log.exception("model registry change failed")
        try:
            self._loader.submit(run)
        except RuntimeError:       # shutting down
            pass

    # ---- models -----------------------------------------------------------------------

    def _slot(self, name: str):
        slot = self.registry.models.get(name)
        if slot is None:
            raise ModelNotFound(f"unknown model {name!r}")
        return slot

    def model_ready(self, name: str, version: str | None = None) -> bool:
        slot = self._slot(name)
        if version is not None and version not in slot.available:
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        active = slot.active
        return (not self._draining and slot.ready() and active is not None
                and (version is None or version == active.version))

    def model_metadata(self, name: str, version: str | None = None) -> dict:
        slot = self._slot(name)
        versions = sorted(slot.available, key=version_key)
        active = slot.active
        if version is None:
            if active is not None:
                meta = active.metadata
            elif versions:
                meta = version_metadata(slot.available[versions[-1]])
            else:
                raise ModelUnavailable(f"model {name!r} has no version on disk")
        elif version in slot.available:
            meta = active.metadata if active is not None and active.version == version else \
                version_metadata(slot.available[version])
        else:
            raise ModelNotFound(f"model {name!r} has no version {version!r} (it has {', '.join(versions)})")
        return {**meta, "versions": versions}

    def repository_index(self) -> list:
        rows = []
        for name, slot in sorted(self.registry.models.copy().items()):
            active = slot.active
            for v in sorted(slot.available, key=version_key):
                if slot.loading == v:
                    rows.append({"name": name, "version": v, "state": "LOADING", "reason": ""})
                elif active is not None and active.version == v and slot.available[v] is active.entry:
                    rows.append({"name": name, "version": v, "state": "READY" if slot.ready() else "UNAVAILABLE",
                                 "reason": slot.unavailable})
                else:
                    reason = slot.failures.get(v) or (f"version {active.version} is served" if active else "not loaded")
                    rows.append({"name": name, "version": v, "state": "UNAVAILABLE", "reason": reason})
        for b in self.registry.bad:
            rows.append({"name": b.name, "version": "", "state": "UNAVAILABLE", "reason": b.reason})
        return rows

    def _gauges(self):
        for name, slot in list(self.registry.models.copy().items()):
            active = slot.active
            yield name, None if active is None else active.version, slot.queue.qsize()

    def _reject(self, name: str, reason: str) -> None:
        key = (name, reason)
        child = self._rejected.get(key)
        if child is None:
            child = self._rejected[key] = self.metrics.rejected.labels(model=name, reason=reason)
        child.inc()

    # ---- inference (the hot path) -----------------------------------------------------

    async def infer(self, name: str, version: str | None, request: InferRequest) -> InferResponse:
        """Check ``request`` against the model, queue it and wait for its answer."""
        slot = self.registry.models.get(name)
        if slot is None:
            raise ModelNotFound(f"unknown model {name!r}")
        if self._draining:
            self._reject(name, "unavailable")
            raise ModelUnavailable("the server is shutting down")
        v = slot.active
        if v is None or slot.unavailable:
            self._reject(name, "unavailable")
            failures = sorted(slot.failures.copy().items())
            reason = slot.unavailable or ("; ".join(f"version {k}: {r}" for k, r in failures)
                                          or "no version of it is ready")
            raise ModelUnavailable(f"model {name!r} is not ready: {reason}")
        if version is not None and version != v.version:
            if version not in slot.available:
                self._reject(name, "not_found")
                raise ModelNotFound(f"model {name!r} has no version {version!r}")
            self._reject(name, "unavailable")
            raise ModelUnavailable(f"model {name!r} version {version!r} is not the version served "
                                   f"({v.version})")
        feeds = self._checked_feeds(v, request)
        outputs = request.outputs
        if not v.acquire():
            # switched away between the read and now: once more against the version now served
            v = slot.active
            if v is None or slot.unavailable or version is not None or not v.acquire():
                self._reject(name, "unavailable")
                raise ModelUnavailable(f"model {name!r} is not ready: its version is being replaced")
            try:
                feeds = self._checked_feeds(v, request)
            except InvalidRequest:
                v.release()
                raise
        loop = asyncio.get_running_loop()
        completions = self._completions
        if completions is None or completions.loop is not loop:
            completions = self._completions = Completions(loop)
        fut = loop.create_future()
        # a client may ask for less time than the daemon's limit, never more
        timeout = min(request.timeout_s, self.request_timeout_s) if request.timeout_s else self.request_timeout_s
        item = [v, feeds, fut, time.monotonic() + timeout, completions.post, outputs, request.id, 0]
        if not slot.queue.put_nowait(item):
            v.release()
            self._reject(name, "overloaded")
            raise Overloaded(f"model {name!r}: its queue of {slot.queue.maxsize} requests is full; retry later")
        timer = loop.call_later(timeout, _expire, fut, name, timeout)
        try:
            return await fut
        except RequestTimeout:
            self._reject(name, "timeout")
            self._drop(slot, item)
            raise
        except asyncio.CancelledError:   # the client went away
            self._drop(slot, item)
            raise
        finally:
            timer.cancel()

    def _checked_feeds(self, v, request: InferRequest) -> dict:
        try:
            feeds = _feeds(v, request.inputs)
            if request.outputs is not None:
                unknown = [o for o in request.outputs if o not in v.output_names]
                if unknown:
                    raise InvalidRequest(f"unknown output(s) {unknown}; model {v.name!r} has outputs "
                                         f"{sorted(v.output_names)}")
        except InvalidRequest:
            self._reject(v.name, "invalid")
            raise
        return feeds

    @staticmethod
    def _drop(slot, item: list) -> None:
        # Not started yet: leave the queue now (its place is free at once) and never run.
        if slot.queue.discard(item):
            item[0].release()           # no worker will


def _feeds(v, tensors) -> dict:
    expected = v.inputs
    feeds = {}
    for t in tensors:
        spec = expected.get(t.name)
        if spec is None:
            raise InvalidRequest(f"unknown input {t.name!r}; model {v.name!r} takes {v.input_names}")
        if t.name in feeds:
            raise InvalidRequest(f"input {t.name!r} is given twice")
        datatype, shape = spec
        if t.datatype != datatype:
            raise InvalidRequest(f"input {t.name!r} has datatype {t.datatype}; model {v.name!r} takes {datatype}")
        if tuple(t.shape) != shape or t.data.shape != shape:
            raise InvalidRequest(f"input {t.name!r} has shape {list(t.shape)}; model {v.name!r} takes exactly "
                                 f"{list(shape)} (fixed shapes, no other batch size)")
        feeds[t.name] = t.data
    if len(feeds) != len(expected):
        missing = [n for n in v.input_names if n not in feeds]
        raise InvalidRequest(f"missing input(s) {missing}; model {v.name!r} takes {v.input_names}")
    return feeds


def _expire(fut, name: str, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(RequestTimeout(f"model {name!r}: no answer within {timeout:g} s"))


def _pending(slot) -> bool:
    if slot.queue.qsize():
        return True
    return any(v is not None and v.pending for v in (slot.active, slot.previous))
