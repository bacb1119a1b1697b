"""Data capture (docs/serve.md, "Data capture"): ``edgekit serve`` writes what its models
saw and answered into the device's sync queue (``edgekit.sync.queue.SyncQueue``), so the
forwarder carries it to the hub for labelling later.

Per model, a rule (``--capture-rules FILE``, TOML or JSON) says which inferences to keep:
``all``, ``sample:RATE`` (each with probability RATE), ``low-confidence:THRESHOLD`` (the
top-1 score of the scores output under THRESHOLD) or ``off``. Each kept inference becomes

- a record on stream ``"captures"`` (priority 3): the outputs, and with ``inputs = true``
  the input tensors, in the capture format below, within ``daily_bytes`` per model per
  UTC day (what does not fit is skipped and counted);
- with ``results = true`` (the default), a summary on stream ``"results"`` (priority 2)
  for every inference of the model: model, version, top classes, latency, as JSON.

Captures have the lowest priority, so when the queue is full its drop-oldest policy drops
them before results. The worker threads only decide and copy references; one capture
thread encodes and writes them with one ``enqueue_many`` (one transaction) per batch of
up to ``WRITE_BATCH`` or ``LINGER_S`` worth of inferences, so a request never waits on the
disk and a busy model does not cost one fsync per inference. A backlog beyond ``MAX_PENDING`` is skipped and counted.

Capture format v1 (docs/serve.md, "Capture format v1")::

    b"EKCP" | u8 version (1) | u32 LE header length | header (UTF-8 JSON) | tensor bytes

the header ``{"model", "version", "reason", "score", "latency_us", "tensors": [{"role":
"input"|"output", "name", "dtype", "shape", "offset", "nbytes"}, ...]}``; each tensor's
bytes are C-order, little-endian, at ``offset`` from the end of the header.
"""

from __future__ import annotations

import json
import logging
import math
import random
import struct
import threading
import time
from pathlib import Path

import numpy as np

from edgekit.errors import BadInputError

log = logging.getLogger("edgekit.serve")

CAPTURE_MAGIC = b"EKCP"
CAPTURE_VERSION = 1
_HEAD = struct.Struct("<4sBI")
# Inferences waiting for the capture thread; beyond this they are skipped (reason "backlog")
# rather than let a slow disk grow the daemon's memory.
MAX_PENDING = 4096
# The writer gathers up to WRITE_BATCH inferences, or what came within LINGER_S of the
# first, per transaction.
WRITE_BATCH = 512
LINGER_S = 0.05
RESULTS_PRIORITY = 2
CAPTURES_PRIORITY = 3
# Largest header a capture may declare (the decoder refuses more: a corrupt length field).
MAX_HEADER_BYTES = 1 << 20
_RULE_KEYS = {"mode", "inputs", "results", "daily_bytes", "output", "scores", "top", "lifetime_s"}


class CaptureFormatError(BadInputError):
    """A capture record that is not capture format v1 (names what is wrong)."""


# ---- rules ---------------------------------------------------------------------------------

class CaptureRule:
    """One model's rule: which inferences to capture and what to store."""

    def __init__(self, model: str, *, mode: str = "off", inputs: bool = False, results: bool = True,
                 daily_bytes: int | None = None, output: str | None = None, scores: str = "probabilities",
                 top: int = 3, lifetime_s: float | None = None):
        where = f"capture rule for {model!r}"
        self.model = model
        self.kind, self.value = _parse_mode(mode, where)
        for key, value in (("inputs", inputs), ("results", results)):
            if not isinstance(value, bool):
                raise BadInputError(f"{where}: {key} must be true or false, not {value!r}")
        if daily_bytes is not None and (isinstance(daily_bytes, bool) or not isinstance(daily_bytes, int)
                                        or daily_bytes < 0):
            raise BadInputError(f"{where}: daily_bytes must be a whole number of bytes >= 0, not {daily_bytes!r}")
        if scores not in ("probabilities", "logits"):
            raise BadInputError(f"{where}: scores must be 'probabilities' or 'logits', not {scores!r}")
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 100:
            raise BadInputError(f"{where}: top must be a whole number within 0..100, not {top!r}")
        if output is not None and not isinstance(output, str):
            raise BadInputError(f"{where}: output must be an output name, not {output!r}")
        if lifetime_s is not None and (isinstance(lifetime_s, bool) or not isinstance(lifetime_s, (int, float))
                                       or not lifetime_s > 0):
            raise BadInputError(f"{where}: lifetime_s must be a positive number of seconds, not {lifetime_s!r}")
        self.inputs = inputs
        self.results = results
        self.daily_bytes = daily_bytes
        self.output = output
        self.scores = scores
        self.top = top
        self.lifetime_s = None if lifetime_s is None else float(lifetime_s)

    @property
    def active(self) -> bool:
        return self.kind != "off" or self.results


def _parse_mode(mode, where: str) -> tuple:
    if not isinstance(mode, str):
        raise BadInputError(f"{where}: mode must be a string such as 'all', 'sample:0.1', "
                            f"'low-confidence:0.6' or 'off', not {mode!r}")
    kind, sep, arg = mode.partition(":")
    if kind in ("all", "off") and not sep:
        return kind, None
    if kind in ("sample", "low-confidence") and sep:
        try:
            value = float(arg)
        except ValueError:
            value = math.nan
        if not 0 < value <= 1:
            raise BadInputError(f"{where}: mode {mode!r}: {kind} takes a number within (0, 1], e.g. {kind}:0.1")
        return kind, value
    raise BadInputError(f"{where}: mode {mode!r}: expected all, sample:RATE, low-confidence:THRESHOLD or off")


def load_rules(path) -> dict:
    """``{model name or "*": CaptureRule}`` from a TOML or JSON file (by its extension)::

        [models.kws]                     # TOML; JSON: {"models": {"kws": {...}}}
        mode = "low-confidence:0.6"      # all | sample:RATE | low-confidence:THRESHOLD | off
        inputs = true                    # store the input tensors too (default false)
        daily_bytes = 5_000_000          # capture bytes per UTC day (default: no limit)
        results = true                   # a summary of every inference on stream "results"
        [models."*"]                     # every model not named
        mode = "sample:0.01"

    Anything unknown or malformed is a ``BadInputError`` naming the file and the key."""
    p = Path(path)
    try:
        text = p.read_bytes()
    except OSError as exc:
        raise BadInputError(f"--capture-rules {path}: cannot read it ({exc.strerror})") from None
    try:
        if p.suffix.lower() == ".json":
            doc = json.loads(text)
        elif p.suffix.lower() == ".toml":
            import tomllib

            doc = tomllib.loads(text.decode("utf-8"))
        else:
            raise BadInputError(f"--capture-rules {path}: give a .toml or .json file")
    except ImportError:
        raise BadInputError(f"--capture-rules {path}: TOML needs Python 3.11+; write the rules as JSON") from None
    except (ValueError, UnicodeDecodeError) as exc:     # json and tomllib errors are ValueErrors
        raise BadInputError(f"--capture-rules {path}: not valid {p.suffix[1:].upper()} ({exc})") from None
    if not isinstance(doc, dict) or set(doc) - {"models"} or not isinstance(doc.get("models"), dict):
        raise BadInputError(f"--capture-rules {path}: expected one table 'models' of model name -> rule")
    rules = {}
    for model, body in doc["models"].items():
        if not isinstance(body, dict):
            raise BadInputError(f"--capture-rules {path}: models.{model} must be a table of settings")
        unknown = sorted(set(body) - _RULE_KEYS)
        if unknown:
            raise BadInputError(f"--capture-rules {path}: models.{model}: unknown setting(s) {unknown}; "
                                f"known: {sorted(_RULE_KEYS)}")
        try:
            rules[model] = CaptureRule(model, **body)
        except BadInputError as exc:
            raise BadInputError(f"--capture-rules {path}: {exc}") from None
    return rules


# ---- the capture format --------------------------------------------------------------------

def encode_capture(header: dict, tensors: list) -> bytes:
    """One capture record: ``tensors`` is a list of (role, name, array)."""
    descs, blobs, offset = [], [], 0
    for role, name, array in tensors:
        a = np.ascontiguousarray(array)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        raw = a.tobytes()
        descs.append({"role": role, "name": name, "dtype": a.dtype.name, "shape": list(a.shape),
                      "offset": offset, "nbytes": len(raw)})
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps({**header, "tensors": descs}, separators=(",", ":")).encode()
    return b"".join([_HEAD.pack(CAPTURE_MAGIC, CAPTURE_VERSION, len(head)), head, *blobs])


def decode_capture(data: bytes) -> tuple:
    """(header dict, {(role, name): array}) of a capture record; ``CaptureFormatError`` for
    anything that is not a well-formed capture v1."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CaptureFormatError(f"a capture record is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) < _HEAD.size:
        raise CaptureFormatError(f"capture record of {len(data)} bytes is shorter than its {_HEAD.size}-byte header")
    magic, version, head_len = _HEAD.unpack_from(data)
    if magic != CAPTURE_MAGIC:
        raise CaptureFormatError(f"not a capture record (magic {magic!r}, expected {CAPTURE_MAGIC!r})")
    if version != CAPTURE_VERSION:
        raise CaptureFormatError(f"capture format version {version}; this edgekit reads version {CAPTURE_VERSION}")
    if head_len > MAX_HEADER_BYTES or _HEAD.size + head_len > len(data):
        raise CaptureFormatError(f"capture header of {head_len} bytes does not fit in the record ({len(data)} bytes)")
    try:
        header = json.loads(data[_HEAD.size:_HEAD.size + head_len].decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CaptureFormatError(f"capture header is not JSON ({exc})") from None
    if not isinstance(header, dict) or not isinstance(header.get("tensors"), list):
        raise CaptureFormatError("capture header must be an object with a 'tensors' list")
    body = memoryview(data)[_HEAD.size + head_len:]
    tensors = {}
    for i, t in enumerate(header["tensors"]):
        tensors[_tensor_key(t, i)] = _tensor(t, i, body)
    return header, tensors


def _tensor_key(t, i: int) -> tuple:
    if not isinstance(t, dict) or t.get("role") not in ("input", "output") or not isinstance(t.get("name"), str):
        raise CaptureFormatError(f"capture tensor {i}: needs role 'input' or 'output' and a name")
    return t["role"], t["name"]


def _tensor(t: dict, i: int, body: memoryview) -> np.ndarray:
    try:
        dtype = np.dtype(t.get("dtype"))
    except (TypeError, ValueError):
        raise CaptureFormatError(f"capture tensor {i}: unknown dtype {t.get('dtype')!r}") from None
    if dtype.kind not in "biuf" or dtype.itemsize == 0:
        raise CaptureFormatError(f"capture tensor {i}: dtype {dtype.name} is not a numeric tensor type")
    shape, offset, nbytes = t.get("shape"), t.get("offset"), t.get("nbytes")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d
                                              for d in shape):
        raise CaptureFormatError(f"capture tensor {i}: shape must be a list of sizes >= 0, not {shape!r}")
    for key, value in (("offset", offset), ("nbytes", nbytes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CaptureFormatError(f"capture tensor {i}: {key} must be a whole number >= 0, not {value!r}")
    if math.prod(shape) * dtype.itemsize != nbytes:
        raise CaptureFormatError(f"capture tensor {i}: {nbytes} bytes do not hold shape {shape} of {dtype.name}")
    if offset + nbytes > len(body):
        raise CaptureFormatError(f"capture tensor {i}: bytes {offset}..{offset + nbytes} run past the record's "
                                 f"{len(body)} bytes of tensor data")
    return np.frombuffer(body[offset:offset + nbytes], dtype=dtype.newbyteorder("<")).reshape(shape).copy()


# ---- scores --------------------------------------------------------------------------------

def real_scores(values: np.ndarray, quantization: dict | None, scores: str) -> np.ndarray:
    """The flattened scores of one output as real numbers: an int8/uint8 output dequantized
    with its (per-tensor) quantization, ``real = (q - zero_point) * scale``; with
    ``scores="logits"`` turned into probabilities by a softmax."""
    v = np.asarray(values).reshape(-1)
    if v.dtype.kind in "iu" and quantization and quantization.get("scale"):
        scale = float(quantization["scale"][0])
        zero = float((quantization.get("zero_point") or [0])[0])
        real = (v.astype(np.float64) - zero) * scale
    else:
        real = v.astype(np.float64)
    if scores == "logits" and real.size:
        e = np.exp(real - real.max())
        real = e / e.sum()
    return real


# ---- the capture service -------------------------------------------------------------------

class Capture:
    """Decides per inference what to capture and writes it to a ``SyncQueue`` on its own
    thread. ``observe`` is what the model workers call after each successful inference."""

    def __init__(self, rules: dict, queue, *, metrics=None, clock=time.time, rng: random.Random | None = None,
                 max_pending: int = MAX_PENDING):
        self.rules = dict(rules)
        self.queue = queue
        self.metrics = metrics
        self.clock = clock
        self._random = (rng or random.Random()).random
        self.max_pending = max_pending
        self._pending = []
        self._cond = threading.Condition()
        self._closed = False
        self._budget_day = {}        # model -> (UTC day number, capture bytes used that day)
        self._warned = set()         # (model, version) already warned about
        self._writing = False
        self.counts = {}             # (model, what) -> n: "results", "captures", "skipped_<reason>"
        self._thread = threading.Thread(target=self._write_loop, name="edgekit-serve-capture", daemon=True)
        self._thread.start()

    def rule_for(self, model: str):
        rule = self.rules.get(model) or self.rules.get("*")
        return rule if rule is not None and rule.active else None

    # -- worker threads --

    def observe(self, version, feeds: dict, result: dict, latency_s: float) -> None:
        """Called by a worker thread after an inference of ``version`` succeeded. Never raises:
        a capture problem must not fail the request that was already answered."""
        rule = self.rule_for(version.name)
        if rule is None:
            return
        try:
            self._observe(rule, version, feeds, result, latency_s)
        except Exception:
            key = (version.name, version.version, "error")
            if key not in self._warned:          # once per version: nothing is logged per request
                self._warned.add(key)
                log.exception("data capture of model %s version %s failed", version.name, version.version)

    def _observe(self, rule: CaptureRule, version, feeds: dict, result: dict, latency_s: float) -> None:
        spec = _scores_spec(version, rule)
        if spec is None and rule.output is not None:
            self._warn_once(version, f"model {version.name} version {version.version} has no output "
                                     f"{rule.output!r} (the capture rule's scores output): no scores captured")
        real = None
        if spec is not None and (rule.kind == "low-confidence" or rule.results):
            real = real_scores(result[spec.name], spec.quantization, rule.scores)
        reason, score = None, None
        if rule.kind == "all":
            reason = "all"
        elif rule.kind == "sample":
            if self._random() < rule.value:
                reason = "sample"
        elif rule.kind == "low-confidence" and real is not None and real.size:
            score = float(real.max())
            if score < rule.value:
                reason = "low-confidence"
        if reason is None and not rule.results:
            return
        now = self.clock()
        tensors, nbytes = None, 0
        if reason is not None:
            tensors = [("output", n, result[n]) for n, _ in version.output_specs]
            if rule.inputs:
                tensors = [("input", n, feeds[n]) for n in version.input_names] + tensors
            nbytes = sum(int(a.nbytes) for _, _, a in tensors)
        skipped = None
        with self._cond:
            if len(self._pending) >= self.max_pending:
                skipped = "skipped_backlog"
            else:
                capture = None
                if tensors is not None:
                    if self._charge(rule, version.name, now, nbytes):
                        capture = (reason, score, tensors)
                    else:
                        skipped = "skipped_budget"
                if capture is not None or rule.results:
                    self._pending.append((rule, version.name, version.version, latency_s, now, real, capture))
                    if len(self._pending) in (1, WRITE_BATCH):
                        self._cond.notify()
        if skipped is not None:
            self._count(version.name, skipped)

    def _charge(self, rule: CaptureRule, model: str, now: float, nbytes: int) -> bool:
        """Take ``nbytes`` from ``model``'s budget of the UTC day (the caller holds the lock);
        False, and nothing taken, when they do not fit."""
        if rule.daily_bytes is None:
            return True
        day = int(now // 86400)
        d, used = self._budget_day.get(model, (day, 0))
        if d != day:
            used = 0
        if used + nbytes > rule.daily_bytes:
            self._budget_day[model] = (day, used)
            return False
        self._budget_day[model] = (day, used + nbytes)
        return True

    def _warn_once(self, version, message: str) -> None:
        key = (version.name, version.version)
        if key not in self._warned:
            self._warned.add(key)
            log.warning("data capture: %s", message)

    def _count(self, model: str, what: str, n: int = 1) -> None:
        with self._cond:
            self.counts[(model, what)] = self.counts.get((model, what), 0) + n
        m = self.metrics
        if m is None:
            return
        if what.startswith("skipped_"):
            m.capture_skipped.labels(model=model, reason=what[len("skipped_"):]).inc(n)
        else:
            m.captured.labels(model=model, stream=what).inc(n)

    # -- the capture thread --

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending and self._closed:
                    return
                # Linger a little so that one transaction (one fsync) carries many inferences.
                deadline = time.monotonic() + LINGER_S
                while len(self._pending) < WRITE_BATCH and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, self._pending = self._pending, []
                self._writing = True
            try:
                self._write(batch)
            except Exception:
                log.exception("data capture: writing %d inference(s) to the sync queue failed", len(batch))
            finally:
                with self._cond:
                    self._writing = False
                    self._cond.notify_all()

    def _write(self, batch: list) -> None:
        items, what = [], []
        for rule, model, version, latency_s, now, real, capture in batch:
            latency_us = int(round(latency_s * 1e6))
            if rule.results:
                summary = {"model": model, "version": version, "latency_us": latency_us}
                if real is not None and rule.top:
                    k = min(rule.top, real.size)
                    best = np.argsort(-real, kind="stable")[:k]
                    summary["top"] = [[int(i), round(float(real[i]), 4)] for i in best]
                items.append(("results", json.dumps(summary, separators=(",", ":")).encode(), RESULTS_PRIORITY,
                              rule.lifetime_s))
                what.append((model, "results"))
            if capture is not None:
                reason, score, tensors = capture
                header = {"model": model, "version": version, "reason": reason, "latency_us": latency_us,
                          "captured_ms": int(now * 1000)}
                if score is not None:
                    header["score"] = score
                items.append(("captures", encode_capture(header, tensors), CAPTURES_PRIORITY, rule.lifetime_s))
                what.append((model, "captures"))
        if not items:
            return
        try:
            self.queue.enqueue_many(items)
        except Exception as exc:
            if not _is_queue_full(exc):
                raise
            self._write_each(items, what)
            return
        for model, stream in what:
            self._count(model, stream)

    def _write_each(self, items: list, what: list) -> None:
        # The queue refused the batch (a stream with the "refuse" policy is full): one by one,
        # so that what fits is kept and each refusal is counted.
        for (stream, payload, priority, lifetime_s), (model, _) in zip(items, what):
            try:
                self.queue.enqueue(stream, payload, priority=priority, lifetime_s=lifetime_s)
            except Exception as exc:
                if not _is_queue_full(exc):
                    raise
                self._count(model, "skipped_queue_full")
            else:
                self._count(model, stream)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every observed inference is written; False if that took too long."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._pending or self._writing:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is pending, stop the thread and close the queue."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        self.queue.close()


def _scores_spec(version, rule: CaptureRule):
    """The output whose values are the class scores: the rule's ``output``, else the first."""
    outputs = version.models[0].outputs
    if rule.output is None:
        return outputs[0] if outputs else None
    for spec in outputs:
        if spec.name == rule.output:
            return spec
    return None


def _is_queue_full(exc: Exception) -> bool:
    from edgekit.sync.queue import QueueFullError

    return isinstance(exc, QueueFullError)


def open_capture(rules_path, queue_path, *, metrics=None) -> Capture:
    """The capture of ``edgekit serve --capture-rules FILE --sync-queue PATH``."""
    rules = load_rules(rules_path)
    try:
        from edgekit.sync.queue import SyncQueue
    except ImportError as exc:
        raise BadInputError(f"--sync-queue needs pip install 'edgekit[sync]' ({exc})") from None
    return Capture(rules, SyncQueue(queue_path), metrics=metrics)
