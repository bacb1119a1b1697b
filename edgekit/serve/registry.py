"""The model registry (docs/serve.md): which version of each model serves, and how that
changes.

Every change runs on one loader thread, so two swaps of a model never overlap:

- **load beside the old**: a new version is opened (``edgekit.runtime.open``) and
  replays its bundle's golden vectors (``Model.self_test``) while the old one keeps
  serving;
- **switch**: one attribute assignment moves new requests to it; requests already queued
  keep the version they were queued for and finish on it, then that version is closed;
- **rollback**: a version that fails to load or fails its self-test is never switched to;
  one whose engine fails more than ``rollback_error_rate`` of its first
  ``rollback_window`` requests is switched back from (the previous version stays open
  until then). The reason is logged, counted (``edgekit_model_rollbacks``) and written to
  the state file, so the same bundle is not tried again;
- the served version of each model is written to the state file after each switch, and a
  restart serves it first, then tries newer versions that were never rolled back. A kill
  between load and switch, or during the state write, leaves the old or the new version.

A model compiled for a microcontroller (an MCU bundle) runs on the first configured board
that accepts it (``engine="serial"``). A board holds one model, so a swap on a board stops
that model's traffic while it flashes (503), and a failed swap flashes the old version
back. Board-backed models are pinged at each poll; a board that stops answering makes its
model unready (never the daemon), and when it answers again the model is reopened.

Each model has one bounded request queue and ``workers_per_model`` threads, each with its
own opened instance of the version (engines are not shared between threads).
"""

from __future__ import annotations

import collections
import logging
import threading
import time

from edgekit import runtime
from edgekit.bundle import BundleError
from edgekit.errors import BadInputError
from edgekit.runtime.engines import EngineUnavailableError
from edgekit.serve.protocol import InferResponse, InferTensor, ServeError, datatype_of
from edgekit.serve.repository import version_key

log = logging.getLogger("edgekit.serve")

_STOP = object()
# States of a queued request (the last element of its item).
_QUEUED, _TAKEN, _DROPPED = 0, 1, 2
# How long a swap on a board waits for the requests queued for the old version.
BOARD_DRAIN_S = 10.0


def open_model(path, port: str | None):
    """Open one bundle: on this machine's engine, or on the board at ``port``."""
    if port is None:
        return runtime.open(path)
    return runtime.open(path, engine="serial", engine_options={"port": port})


class InferenceFailed(ServeError):
    """The engine failed on a valid request (HTTP 500): counted as an error of the version."""


class LoadFailed(Exception):
    """A version could not be brought up: ``kind`` is the rollback reason label
    (load_failed, self_test_failed, no_board)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class LoadedVersion:
    """One opened version of a model: its engine instances and what requests are checked
    against, precomputed once."""

    def __init__(self, entry, models: list, board: str | None, port: str | None, metrics):
        self.entry = entry
        self.name = entry.name
        self.version = entry.version
        self.models = models
        self.locks = [threading.Lock() for _ in models]
        self.board = board
        self.port = port
        m = models[0]
        self.inputs = {s.name: (datatype_of(s.dtype), tuple(s.shape)) for s in m.inputs}
        self.input_names = [s.name for s in m.inputs]
        self.output_specs = [(s.name, datatype_of(s.dtype)) for s in m.outputs]
        self.output_names = {s.name for s in m.outputs}
        self.platform = f"edgekit-{m.engine}"
        self.metadata = version_metadata(entry, self.platform)
        self.inference_child = metrics.inference_child(self.name, self.version)
        self.error_child = metrics.errors.labels(model=self.name, version=self.version)
        self._lock = threading.Lock()
        self.pending = 0
        self.retired = False
        self.closed = False
        # probation: (requests counted, engine errors among them) over the first window
        self.counted = 0
        self.failed = 0
        self.rollback_requested = False

    def acquire(self) -> bool:
        """Count one request queued for this version; False once it no longer takes any."""
        with self._lock:
            if self.retired:
                return False
            self.pending += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.pending -= 1
            close = self.retired and self.pending == 0 and not self.closed
            if close:
                self.closed = True
        if close:
            self._close_models()

    def retire(self) -> None:
        """Take no new requests; close once the queued ones have finished."""
        with self._lock:
            self.retired = True
            close = self.pending == 0 and not self.closed
            if close:
                self.closed = True
        if close:
            self._close_models()

    def _close_models(self) -> None:
        for model, lock in zip(self.models, self.locks):
            with lock:
                try:
                    model.close()
                except Exception as exc:  # a board gone away while closing: nothing left to release
                    log.warning("closing %s version %s: %s", self.name, self.version, exc)


def version_metadata(entry, platform: str | None = None) -> dict:
    man = entry.manifest
    return {"name": entry.name, "versions": [entry.version],
            "platform": platform or f"edgekit-{man.get('engine')}",
            "inputs": [_tensor_meta(s) for s in man["inputs"]],
            "outputs": [_tensor_meta(s) for s in man["outputs"]]}


def _tensor_meta(spec: dict) -> dict:
    import numpy as np

    return {"name": spec["name"], "datatype": datatype_of(np.dtype(spec["dtype"])),
            "shape": [int(d) for d in spec["shape"]]}


class RequestQueue:
    """A bounded FIFO of requests for one model's workers. Unlike ``queue.Queue`` a request
    can leave it before a worker takes it (timed out, client gone): ``discard`` frees its
    place at once, and the workers skip it."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._items = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self.live = 0                     # requests waiting that still count against maxsize

    def put_nowait(self, item: list) -> bool:
        """Queue ``item`` (a list whose last element is its state); False when full."""
        with self._cond:
            if self.live >= self.maxsize:
                return False
            self._items.append(item)
            self.live += 1
            self._cond.notify()
        return True

    def discard(self, item: list) -> bool:
        """Take ``item`` out if no worker has taken it yet; True when it was."""
        with self._cond:
            if item[-1] != _QUEUED:
                return False
            item[-1] = _DROPPED
            self.live -= 1
            return True

    def get(self):
        """The next request still waiting (or ``_STOP``), marked as taken."""
        with self._cond:
            while True:
                while not self._items:
                    self._cond.wait()
                item = self._items.popleft()
                if item is _STOP:
                    return item
                if item[-1] == _QUEUED:
                    item[-1] = _TAKEN
                    self.live -= 1
                    return item

    def put_stop(self) -> None:
        with self._cond:
            self._items.append(_STOP)
            self._cond.notify()

    def qsize(self) -> int:
        return self.live


class ModelSlot:
    """One model: the versions on disk, the one serving, its queue and workers."""

    def __init__(self, name: str, queue_size: int, workers: int, registry):
        self.name = name
        self.available = {}          # version -> BundleEntry on disk
        self.active = None           # LoadedVersion serving new requests
        self.previous = None         # LoadedVersion kept open while the active one is on probation
        self.loading = None          # version being loaded now
        self.failures = {}           # version -> reason it is not served (load / self-test / rollback)
        self.unavailable = ""        # why the model takes no requests now (board down, swapping on a board)
        self.board = None
        self.queue = RequestQueue(queue_size)
        self._registry = registry
        self.threads = [threading.Thread(target=registry.work, args=(self, i), daemon=True,
                                         name=f"edgekit-serve-{name}-{i}") for i in range(workers)]
        for t in self.threads:
            t.start()

    def ready(self) -> bool:
        return self.active is not None and not self.unavailable

    def stop_workers(self) -> None:
        for _ in self.threads:
            self.queue.put_stop()


class Registry:
    """The models of one service and every change to them (run on the loader thread)."""

    def __init__(self, state, metrics, *, boards: dict | None, queue_size: int, workers_per_model: int,
                 rollback_window: int, rollback_error_rate: float, opener=open_model):
        self.state = state
        self.metrics = metrics
        self.boards = dict(boards or {})
        self.queue_size = queue_size
        self.workers = workers_per_model
        self.rollback_window = rollback_window
        self.rollback_error_rate = rollback_error_rate
        # engine errors above which a version on probation is rolled back before its window ends
        self.max_errors = rollback_error_rate * rollback_window
        self.opener = opener
        self.models = {}
        self.bad = []                # BadEntry list of the last scan
        self._reported_bad = set()
        self._boards_in_use = {}     # board name -> model name
        self.schedule = None         # callable(fn): run fn on the loader thread (set by the service)
        self.capture = None          # edgekit.serve.capture.Capture, or None: capture off

    # ---- the hot path (workers) -------------------------------------------------------

    def work(self, slot: ModelSlot, index: int) -> None:
        get = slot.queue.get
        monotonic = time.monotonic
        perf = time.perf_counter
        capture = self.capture
        while True:
            item = get()
            if item is _STOP:
                return
            version, feeds, fut, deadline, post, outputs, request_id, _state = item
            try:
                if fut.done() or monotonic() > deadline:
                    continue        # timed out or abandoned while queued: not run
                k = index % len(version.models)
                t0 = perf()
                with version.locks[k]:
                    result = version.models[k].run(feeds)
                elapsed = perf() - t0
                version.inference_child.observe(elapsed)
                tensors = [InferTensor(n, dt, result[n].shape, result[n])
                           for n, dt in version.output_specs if outputs is None or n in outputs]
                response = InferResponse(version.name, version.version, tensors, request_id)
                post(fut, response, None)
                if capture is not None:         # after the answer: the client never waits on it
                    capture.observe(version, feeds, result, elapsed)
                if version.counted < self.rollback_window:
                    self._count(slot, version, False)
            except EngineUnavailableError as exc:
                reason = f"board {version.board} stopped answering ({exc})" if version.board else str(exc)
                slot.unavailable = reason
                post(fut, None, _unavailable(slot.name, reason))
            except BadInputError as exc:
                from edgekit.serve.protocol import InvalidRequest
                post(fut, None, InvalidRequest(str(exc)))
            except Exception as exc:
                version.error_child.inc()
                log.warning("model %s version %s: inference failed: %s", version.name, version.version, exc)
                post(fut, None, InferenceFailed(
                    f"model {version.name} version {version.version}: inference failed ({exc})"))
                if version.counted < self.rollback_window:
                    self._count(slot, version, True)
            finally:
                version.release()

    def _count(self, slot: ModelSlot, version: LoadedVersion, failed: bool) -> None:
        with version._lock:
            version.counted += 1
            version.failed += failed
            over = version.failed > self.max_errors and not version.rollback_requested
            done = version.counted >= self.rollback_window and not over
            if over:
                version.rollback_requested = True
        if over and self.schedule is not None:
            self.schedule(lambda: self.rollback_on_errors(slot, version))
        elif done and self.schedule is not None:
            self.schedule(lambda: self.end_probation(slot, version))

    # ---- reconciling with the repository (loader thread) ----------------------------

    def reconcile(self, entries: list, bad: list) -> dict:
        """Bring the served versions in line with the repository's entries; returns the
        models loaded, rolled back and unchanged."""
        summary = {"loaded": [], "rolled_back": [], "unchanged": []}
        by_model = {}
        dup_bad = []
        for e in sorted(entries, key=lambda e: str(e.path)):
            versions = by_model.setdefault(e.name, {})
            if e.version in versions:
                from edgekit.serve.repository import BadEntry
                dup_bad.append(BadEntry(e.path, e.path.name, f"bundle {e.path}: model {e.name} version {e.version} "
                                        f"is already served from {versions[e.version].path}"))
                continue
            versions[e.version] = e
        self.bad = list(bad) + dup_bad
        for b in self.bad:
            if (b.path, b.reason) not in self._reported_bad:
                self._reported_bad.add((b.path, b.reason))
                self.metrics.bad_bundles.inc()
                log.warning("not serving %s: %s", b.path, b.reason)
        for name in sorted(set(self.models) - set(by_model)):
            slot = self.models.pop(name)
            log.info("model %s: no bundle left in the repository; unloaded", name)
            self._unload(slot)
        for name, versions in sorted(by_model.items()):
            slot = self.models.get(name)
            if slot is None:
                slot = self.models[name] = ModelSlot(name, self.queue_size, self.workers, self)
            slot.available = versions
            before = slot.active
            rolled = self._reconcile_model(slot)
            if slot.active is not before and slot.active is not None:
                summary["loaded"].append(f"{name}/{slot.active.version}")
            if rolled:
                summary["rolled_back"].extend(f"{name}/{v}" for v in rolled)
            if slot.active is before and not rolled:
                summary["unchanged"].append(name)
        return summary

    def _reconcile_model(self, slot: ModelSlot) -> list:
        rolled = []
        tried = set()
        for v in list(slot.failures):
            if v not in slot.available:
                del slot.failures[v]
        usable = []
        for v, e in slot.available.items():
            reason = self.state.rolled_back(slot.name, v, e.digest)
            if reason:
                slot.failures[v] = f"rolled back: {reason}"
            elif slot.failures.get(v, "").startswith("rolled back"):
                del slot.failures[v]          # the bundle changed since: try it again
            if not reason:
                usable.append(v)
        usable.sort(key=version_key, reverse=True)
        if slot.active is None:
            pinned = self.state.active(slot.name)
            order = ([pinned] if pinned in usable else []) + [v for v in usable if v != pinned]
            for v in order:
                tried.add(v)
                if self._bring_up(slot, slot.available[v], rolled):
                    break
            if slot.active is None:
                return rolled
        current = slot.active
        for v in usable:
            if v in tried:               # failed in this pass already (no board took it, say)
                continue
            e = slot.available[v]
            newer = version_key(v) > version_key(current.version)
            changed = v == current.version and e.digest != current.entry.digest
            if not (newer or changed):
                continue
            if self._bring_up(slot, e, rolled):
                break
        return rolled

    def _bring_up(self, slot: ModelSlot, entry, rolled: list) -> bool:
        """Load ``entry`` beside the serving version, self-test it and switch to it."""
        slot.loading = entry.version
        old = slot.active
        try:
            if entry.target_family == "mcu" and old is not None and old.board is not None:
                new = self._swap_on_board(slot, entry, old)
            else:
                new = self._load(slot, entry, prefer_board=None)
        except LoadFailed as exc:
            slot.failures[entry.version] = str(exc)
            if exc.kind != "no_board":
                # no free or answering board is not the bundle's fault: retried at the next poll
                self._record_rollback(slot, entry, exc.kind, str(exc))
                rolled.append(entry.version)
            else:
                log.warning("model %s version %s: %s", slot.name, entry.version, exc)
            return False
        finally:
            slot.loading = None
        self._switch(slot, new, old)
        return True

    def _load(self, slot: ModelSlot, entry, prefer_board: str | None) -> LoadedVersion:
        if entry.target_family != "mcu":
            models = []
            try:
                for _ in range(self.workers):
                    models.append(self.opener(entry.path, None))
            except Exception as exc:
                for m in models:
                    m.close()
                raise LoadFailed("load_failed", f"version {entry.version} failed to load: {exc}") from None
            new = LoadedVersion(entry, models, None, None, self.metrics)
        else:
            new = self._open_on_board(slot, entry, prefer_board)
        self._self_test(new)
        return new

    def _self_test(self, new: LoadedVersion) -> None:
        log.info("model %s version %s: self-test", new.name, new.version)
        try:
            with new.locks[0]:
                result = new.models[0].self_test()
        except Exception as exc:
            result = None
            problem = f"self-test raised {exc}"
        else:
            problem = "; ".join(result.failures[:3])
        if result is None or not result.passed:
            new.retire()
            raise LoadFailed("self_test_failed", f"version {new.version} failed its self-test: {problem}")

    def _open_on_board(self, slot: ModelSlot, entry, prefer_board: str | None) -> LoadedVersion:
        if not self.boards:
            raise LoadFailed("no_board", f"version {entry.version} is for microcontroller target "
                             f"{entry.manifest.get('target')!r} and no board is configured (--board NAME=PORT)")
        names = list(self.boards)
        if prefer_board in names:
            names.remove(prefer_board)
            names.insert(0, prefer_board)
        problems = []
        for board in names:
            owner = self._boards_in_use.get(board)
            if owner is not None and owner != slot.name:
                problems.append(f"board {board}: serves model {owner}")
                continue
            try:
                model = self.opener(entry.path, self.boards[board])
            except (BundleError, BadInputError) as exc:
                problems.append(f"board {board}: {exc}")
                continue
            except Exception as exc:      # not answering, port gone
                problems.append(f"board {board}: {exc}")
                continue
            self._boards_in_use[board] = slot.name
            slot.board = board
            return LoadedVersion(entry, [model], board, self.boards[board], self.metrics)
        # Not recorded as a rollback: another board (or this one, answering again) may take it.
        raise LoadFailed("no_board", f"version {entry.version}: no configured board runs it ({'; '.join(problems)})")

    def _swap_on_board(self, slot: ModelSlot, entry, old: LoadedVersion) -> LoadedVersion:
        # One board holds one model: stop the model's traffic, let the queued requests
        # finish on the old version, flash the new one; on failure flash the old one back.
        slot.unavailable = f"swapping to version {entry.version} on board {old.board}"
        try:
            _drain_and_close(old)
            slot.active = None
            try:
                return self._load(slot, entry, prefer_board=old.board)
            except LoadFailed:
                try:
                    back = self._load(slot, old.entry, prefer_board=old.board)
                except LoadFailed as exc:
                    slot.unavailable = f"the old version {old.version} did not come back on the board: {exc}"
                    raise
                slot.active = back
                raise
        finally:
            if slot.active is not None or slot.unavailable.startswith("swapping"):
                slot.unavailable = ""

    def _switch(self, slot: ModelSlot, new: LoadedVersion, old: LoadedVersion | None) -> None:
        if slot.previous is not None and slot.previous is not old:
            slot.previous.retire()
        slot.active = new                         # the atomic switch
        slot.failures.pop(new.version, None)
        if old is not None and old.board is None and self.rollback_window > 0:
            slot.previous = old                   # kept open for a rollback while the new one is on probation
        else:
            slot.previous = None
            if old is not None:
                old.retire()
        if old is not None:
            self.metrics.swaps.labels(model=slot.name).inc()
            log.info("model %s: serving version %s (was %s)", slot.name, new.version, old.version)
        else:
            log.info("model %s: serving version %s", slot.name, new.version)
        self.state.set_active(slot.name, new.version)

    def _record_rollback(self, slot: ModelSlot, entry, kind: str, reason: str) -> None:
        self.metrics.rollbacks.labels(model=slot.name, reason=kind).inc()
        log.warning("model %s: version %s rolled back (%s): %s", slot.name, entry.version, kind, reason)
        self.state.add_rollback(slot.name, entry.version, entry.digest, reason)
        slot.failures[entry.version] = f"rolled back: {reason}"

    def rollback_on_errors(self, slot: ModelSlot, bad: LoadedVersion) -> None:
        """Switch back from ``bad``, whose engine failed too many of its first requests."""
        if slot.active is not bad or self.models.get(slot.name) is not slot:
            return
        reason = (f"version {bad.version}: {bad.failed} of its first {bad.counted} requests failed in the engine "
                  f"(rollback threshold {self.rollback_error_rate:g} of {self.rollback_window})")
        back = slot.previous
        if back is None:
            entry = slot.available.get(self.state_previous(slot, bad))
            if entry is None:
                log.warning("model %s: %s, but there is no earlier version to go back to", slot.name, reason)
                return
            if bad.board is not None:       # one model per board: flash the earlier one in its place
                slot.unavailable = f"rolling back to version {entry.version} on board {bad.board}"
                _drain_and_close(bad)
            try:
                back = self._load(slot, entry, prefer_board=bad.board)
            except LoadFailed as exc:
                log.warning("model %s: %s, and the earlier version did not come back: %s", slot.name, reason, exc)
                if bad.board is not None:
                    slot.active = None
                    slot.unavailable = f"{reason}; the earlier version did not come back on the board: {exc}"
                return
            finally:
                if bad.board is not None and slot.unavailable.startswith("rolling back"):
                    slot.unavailable = ""
        # Persisted first: a kill from here on restarts on the version rolled back to.
        self._record_rollback(slot, bad.entry, "error_rate", reason)
        self.state.set_active(slot.name, back.version)
        slot.previous = None
        slot.active = back
        bad.retire()

    def state_previous(self, slot: ModelSlot, bad: LoadedVersion) -> str | None:
        """The newest version below ``bad`` that is on disk and not rolled back."""
        older = [v for v, e in slot.available.items() if version_key(v) < version_key(bad.version)
                 and not self.state.rolled_back(slot.name, v, e.digest)]
        return max(older, key=version_key) if older else None

    def end_probation(self, slot: ModelSlot, version: LoadedVersion) -> None:
        if slot.active is version and slot.previous is not None:
            slot.previous.retire()
            slot.previous = None

    def check_boards(self) -> None:
        """Ping board-backed models; mark a silent one unready, reopen one that is back."""
        for slot in list(self.models.values()):
            v = slot.active
            if v is None or v.board is None or slot.unavailable.startswith("swapping"):
                continue
            healthy = getattr(v.models[0], "healthy", None)
            try:
                with v.locks[0]:
                    ok = True if healthy is None else bool(healthy())
            except Exception:
                ok = False
            if not ok and not slot.unavailable:
                slot.unavailable = f"board {v.board} ({v.port}) stopped answering"
                log.warning("model %s: %s", slot.name, slot.unavailable)
            if slot.unavailable:
                # Retried at each poll: a serial engine that lost its board stays lost, and
                # opening again reconnects (flashing when the board came back without the model).
                self._reopen_on_board(slot, v)

    def _reopen_on_board(self, slot: ModelSlot, v: LoadedVersion) -> None:
        # The board may have restarted without the model: open again (flashes when needed).
        try:
            model = self.opener(v.entry.path, v.port)
        except Exception as exc:
            slot.unavailable = f"board {v.board} ({v.port}) stopped answering; reopening the model failed: {exc}"
            return
        try:
            result = model.self_test()
            problem = "" if result.passed else "; ".join(result.failures[:3])
        except Exception as exc:
            problem = f"self-test raised {exc}"
        if problem:
            model.close()
            slot.unavailable = f"board {v.board} ({v.port}) answers again but fails the self-test: {problem}"
            return
        with v.locks[0]:
            old, v.models[0] = v.models[0], model
        try:
            old.close()
        except Exception:
            pass
        log.info("model %s: board %s answers again", slot.name, v.board)
        slot.unavailable = ""

    def _unload(self, slot: ModelSlot) -> None:
        for v in (slot.active, slot.previous):
            if v is not None:
                v.retire()
        slot.active = slot.previous = None
        if slot.board is not None:
            self._boards_in_use.pop(slot.board, None)
        slot.stop_workers()

    def close(self) -> None:
        for slot in self.models.values():
            self._unload(slot)
        self.models = {}


def _drain_and_close(old: LoadedVersion) -> None:
    """Take no new requests on ``old``, wait (up to BOARD_DRAIN_S) for its queued ones, close it."""
    old.retire()
    deadline = time.monotonic() + BOARD_DRAIN_S
    while not old.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    with old._lock:
        close = not old.closed
        old.closed = True
    if close:
        old._close_models()


def _unavailable(name: str, reason: str):
    from edgekit.serve.protocol import ModelUnavailable

    return ModelUnavailable(f"model {name} is not ready: {reason}")


class Completions:
    """Answers from the worker threads to one event loop. Under load many answers share one
    wake-up of the loop (one ``call_soon_threadsafe``, one write to its self-pipe) instead
    of one each."""

    def __init__(self, loop):
        self.loop = loop
        self._items = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, fut, value, exc) -> None:
        self._items.append((fut, value, exc))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:       # the loop is closed: nobody waits for the answer any more
            pass

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False     # before popping: a later post schedules another drain
        items = self._items
        while items:
            fut, value, exc = items.popleft()
            _settle(fut, value, exc)


def _settle(fut, value, exc) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
