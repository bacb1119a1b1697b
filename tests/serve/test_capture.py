"""Data capture in ``edgekit serve`` (edgekit.serve.capture) written into the real
``SyncQueue``: the rules file, each mode against an independent computation of which
inferences it keeps, the daily byte budget, the capture format (round trip and a fuzz
test), and the whole path through ``InferenceService`` on a real bundle, whose captured
inputs and outputs are checked against numpy's ``x @ W.T + b``."""

from __future__ import annotations

import asyncio
import json
import math
import random
import sqlite3
import struct
import time
import types

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgekit.errors import BadInputError
from edgekit.runtime.model import TensorSpec
from edgekit.serve.capture import (
    Capture,
    CaptureFormatError,
    decode_capture,
    encode_capture,
    load_rules,
    real_scores,
)
from edgekit.serve.metrics import Metrics
from edgekit.serve.protocol import InferRequest, InferTensor
from edgekit.serve.service import InferenceService
from tests.serve.conftest import tiny_expected
from tests.serve.daemon_harness import run_cli

SyncQueue = pytest.importorskip("edgekit.sync.queue").SyncQueue


def _rules(tmp_path, text: str, suffix: str = ".toml") -> dict:
    p = tmp_path / f"rules{suffix}"
    p.write_text(text)
    return load_rules(p)


def _version(name="clf", version="1", classes=4, dtype="float32", quantization=None):
    """What the capture reads of a served version (edgekit.serve.registry.LoadedVersion)."""
    out = TensorSpec("scores", (1, classes), np.dtype(dtype), quantization, None)
    inp = TensorSpec("x", (1, 2), np.dtype("float32"), None, None)
    model = types.SimpleNamespace(outputs=[out], inputs=[inp])
    return types.SimpleNamespace(name=name, version=version, models=[model], input_names=["x"],
                                 output_specs=[("scores", "FP32")])


def _drain(queue) -> dict:
    """{stream: [Record, ...]} of everything in the queue."""
    out = {}
    for r in queue.peek_batch(1 << 30):
        out.setdefault(r.stream, []).append(r)
    return out


# ---- rules ---------------------------------------------------------------------------------

def test_rules_from_toml_and_json_agree(tmp_path):
    toml = _rules(tmp_path, '[models.kws]\nmode = "low-confidence:0.6"\ninputs = true\ndaily_bytes = 5000\n'
                            '[models."*"]\nmode = "sample:0.01"\nresults = false\n')
    js = _rules(tmp_path, json.dumps({"models": {"kws": {"mode": "low-confidence:0.6", "inputs": True,
                                                          "daily_bytes": 5000},
                                                 "*": {"mode": "sample:0.01", "results": False}}}), ".json")
    for rules in (toml, js):
        assert (rules["kws"].kind, rules["kws"].value, rules["kws"].inputs, rules["kws"].daily_bytes) == \
            ("low-confidence", 0.6, True, 5000)
        assert (rules["*"].kind, rules["*"].value, rules["*"].results) == ("sample", 0.01, False)


@pytest.mark.parametrize("text,message", [
    ('[models.kws]\nmode = "sometimes"\n', "expected all, sample:RATE, low-confidence:THRESHOLD or off"),
    ('[models.kws]\nmode = "sample:2"\n', "sample takes a number within (0, 1]"),
    ('[models.kws]\nmode = "low-confidence:x"\n', "low-confidence takes a number within (0, 1]"),
    ('[models.kws]\nmode = "all"\ninputs = "yes"\n', "inputs must be true or false"),
    ('[models.kws]\nmode = "all"\ndaily_bytes = -1\n', "daily_bytes must be a whole number"),
    ('[models.kws]\nmode = "all"\nbudget = 3\n', "unknown setting(s) ['budget']"),
    ('[models.kws]\nmode = "all"\nscores = "odds"\n', "scores must be 'probabilities' or 'logits'"),
    ('[kws]\nmode = "all"\n', "expected one table 'models'"),
    ('[models\n', "not valid TOML"),
])
def test_bad_rules_are_refused_naming_the_problem(tmp_path, text, message):
    with pytest.raises(BadInputError) as err:
        _rules(tmp_path, text)
    assert message in str(err.value)


def test_rules_file_of_another_kind_is_refused(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text("models: {}\n")
    with pytest.raises(BadInputError, match="give a .toml or .json file"):
        load_rules(p)


# ---- scores --------------------------------------------------------------------------------

def test_int8_scores_are_dequantized_with_the_output_quantization():
    # TFLite's softmax output: scale 1/256, zero point -128, so q = -128 is 0.0, q = 127 is 255/256
    q = np.array([[-128, 0, 127, -64]], np.int8)
    got = real_scores(q, {"scale": [1 / 256], "zero_point": [-128]}, "probabilities")
    assert got.tolist() == [0.0, 128 / 256, 255 / 256, 64 / 256]


def test_logits_go_through_a_softmax():
    logits = np.array([1.0, 2.0, 0.5], np.float32)
    expected = [math.exp(v) / sum(math.exp(u) for u in logits.tolist()) for v in logits.tolist()]
    np.testing.assert_allclose(real_scores(logits, None, "logits"), expected, rtol=1e-6)


# ---- the capture format --------------------------------------------------------------------

def test_capture_format_round_trip():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    y = np.array([[-3, 7]], np.int8)
    data = encode_capture({"model": "m", "version": "2"}, [("input", "x", x), ("output", "y", y)])
    assert data[:4] == b"EKCP" and data[4] == 1
    header, tensors = decode_capture(data)
    assert (header["model"], header["version"]) == ("m", "2")
    np.testing.assert_array_equal(tensors[("input", "x")], x)
    np.testing.assert_array_equal(tensors[("output", "y")], y)
    assert tensors[("output", "y")].dtype == np.int8
    # the layout the docs give: 9-byte head, JSON header, raw little-endian tensor bytes
    (head_len,) = struct.unpack_from("<I", data, 5)
    assert data[9 + head_len:] == x.astype("<f4").tobytes() + y.tobytes()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_decode_capture_of_arbitrary_bytes_is_a_format_error_or_a_capture(data):
    try:
        decode_capture(b"EKCP\x01" + data)
        decode_capture(data)
    except CaptureFormatError:
        pass


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_decode_capture_of_a_damaged_record_is_a_format_error_or_a_capture(data):
    good = bytearray(encode_capture({"model": "m"}, [("input", "x", np.arange(4, dtype=np.int16)),
                                                     ("output", "y", np.ones((2, 2), np.float32))]))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(good) - 1))
        good[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(good)))
    try:
        decode_capture(bytes(good[:cut]))
    except CaptureFormatError:
        pass


# ---- the modes, into the real queue --------------------------------------------------------

@pytest.fixture
def queue(tmp_path):
    q = SyncQueue(tmp_path / "queue.db")
    yield q
    q.close()


def _outputs(n: int, classes: int = 4, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(classes), size=n).astype(np.float32)
    return [row.reshape(1, classes) for row in p]


def _feeds(i: int) -> dict:
    return {"x": np.array([[i, -i]], np.float32)}


def _run(capture, version, outputs) -> None:
    for i, y in enumerate(outputs):
        capture.observe(version, _feeds(i), {"scores": y}, 0.001 * (i + 1))
    assert capture.flush()


def _captured_indices(queue) -> list:
    return sorted(int(decode_capture(r.payload)[1][("input", "x")][0, 0]) for r in _drain(queue).get("captures", []))


def test_mode_all_captures_every_inference_with_inputs(tmp_path, queue):
    rules = _rules(tmp_path, '[models.clf]\nmode = "all"\ninputs = true\n')
    cap = Capture(rules, queue, metrics=Metrics())
    outs = _outputs(20)
    _run(cap, _version(), outs)
    records = _drain(queue)
    assert len(records["captures"]) == 20 and len(records["results"]) == 20
    for r in records["captures"]:
        header, tensors = decode_capture(r.payload)
        i = int(tensors[("input", "x")][0, 0])
        np.testing.assert_array_equal(tensors[("output", "scores")], outs[i])
        assert (header["model"], header["version"], header["reason"], r.priority) == ("clf", "1", "all", 3)
    for r in records["results"]:
        summary = json.loads(r.payload)
        i = round(summary["latency_us"] / 1000) - 1
        order = np.argsort(-outs[i].reshape(-1), kind="stable")[:3]
        assert [c for c, _ in summary["top"]] == order.tolist()
        assert [s for _, s in summary["top"]] == [round(float(outs[i].reshape(-1)[c]), 4) for c in order]
        assert r.priority == 2
    assert cap.counts[("clf", "captures")] == 20 and cap.counts[("clf", "results")] == 20


def test_mode_sample_keeps_the_inferences_its_random_draws_pick(tmp_path, queue):
    rules = _rules(tmp_path, '[models.clf]\nmode = "sample:0.25"\ninputs = true\nresults = false\n')
    cap = Capture(rules, queue, rng=random.Random(7))
    _run(cap, _version(), _outputs(400))
    oracle = random.Random(7)
    expected = [i for i in range(400) if oracle.random() < 0.25]
    assert _captured_indices(queue) == expected
    assert 60 < len(expected) < 140
    assert "results" not in _drain(queue)


def test_mode_low_confidence_keeps_top1_under_the_threshold(tmp_path, queue):
    rules = _rules(tmp_path, '[models.clf]\nmode = "low-confidence:0.5"\ninputs = true\nresults = false\n')
    cap = Capture(rules, queue)
    outs = _outputs(200)
    _run(cap, _version(), outs)
    expected = [i for i, y in enumerate(outs) if float(y.max()) < 0.5]
    assert _captured_indices(queue) == expected and 0 < len(expected) < 200
    for r in _drain(queue)["captures"]:
        header, tensors = decode_capture(r.payload)
        assert header["score"] == pytest.approx(float(tensors[("output", "scores")].max()))


def test_low_confidence_on_an_int8_classifier_uses_the_quantization(tmp_path, queue):
    rules = _rules(tmp_path, '[models.clf]\nmode = "low-confidence:0.5"\ninputs = true\nresults = false\n')
    cap = Capture(rules, queue)
    v = _version(dtype="int8", quantization={"scale": [1 / 256], "zero_point": [-128]})
    # top-1 of 127 -> 255/256 (confident); of 0 -> 0.5 (not under 0.5); of -1 -> 127/256 (captured)
    outs = [np.array([[127, -128, -128, -128]], np.int8), np.array([[0, -128, -128, -128]], np.int8),
            np.array([[-1, -2, -128, -128]], np.int8)]
    _run(cap, v, outs)
    assert _captured_indices(queue) == [2]


def test_off_and_unlisted_models_capture_nothing(tmp_path, queue):
    rules = _rules(tmp_path, '[models.clf]\nmode = "off"\nresults = false\n[models.other]\nmode = "all"\n')
    cap = Capture(rules, queue)
    _run(cap, _version(), _outputs(5))
    _run(cap, _version(name="unlisted"), _outputs(5))
    assert queue.stats()["records"] == 0


def test_daily_byte_budget_is_enforced_counted_and_renewed_each_utc_day(tmp_path, queue):
    # one capture: input 2 float32 (8 bytes) + output 4 float32 (16 bytes) = 24 tensor bytes
    rules = _rules(tmp_path, '[models.clf]\nmode = "all"\ninputs = true\nresults = false\ndaily_bytes = 80\n')
    now = [86400.0 * 20000 + 100]
    metrics = Metrics()
    cap = Capture(rules, queue, metrics=metrics, clock=lambda: now[0])
    _run(cap, _version(), _outputs(10))
    assert _captured_indices(queue) == [0, 1, 2]          # 3 x 24 = 72 <= 80 < 96
    assert cap.counts[("clf", "skipped_budget")] == 7
    assert metrics.capture_skipped.labels(model="clf", reason="budget")._value.get() == 7
    assert metrics.captured.labels(model="clf", stream="captures")._value.get() == 3
    queue.ack([r.id for r in queue.peek_batch(1 << 30)])
    now[0] += 86400                                          # the next UTC day: a new budget
    _run(cap, _version(), _outputs(5))
    assert _captured_indices(queue) == [0, 1, 2]
    assert cap.counts[("clf", "skipped_budget")] == 9


def test_the_default_rule_gives_each_model_its_own_budget(tmp_path, queue):
    rules = _rules(tmp_path, '[models."*"]\nmode = "all"\ninputs = true\nresults = false\ndaily_bytes = 50\n')
    cap = Capture(rules, queue)
    _run(cap, _version(name="a"), _outputs(4))
    _run(cap, _version(name="b"), _outputs(4))
    models = sorted(decode_capture(r.payload)[0]["model"] for r in _drain(queue)["captures"])
    assert models == ["a", "a", "b", "b"]                 # 2 x 24 bytes each fit in 50
    assert cap.counts[("a", "skipped_budget")] == cap.counts[("b", "skipped_budget")] == 2


def test_a_scores_output_the_model_lacks_is_warned_once(tmp_path, queue, caplog):
    rules = _rules(tmp_path, '[models.clf]\nmode = "low-confidence:0.9"\noutput = "probs"\n')
    cap = Capture(rules, queue)
    with caplog.at_level("WARNING", logger="edgekit.serve"):
        _run(cap, _version(), _outputs(3))
    assert [r.getMessage() for r in caplog.records] == [
        "data capture: model clf version 1 has no output 'probs' (the capture rule's scores output): "
        "no scores captured"]
    records = _drain(queue)
    assert "captures" not in records and len(records["results"]) == 3
    assert all("top" not in json.loads(r.payload) for r in records["results"])


def test_a_full_queue_drops_captures_before_results(tmp_path):
    q = SyncQueue(tmp_path / "small.db", max_bytes=100_000)
    try:
        rules = _rules(tmp_path, '[models.clf]\nmode = "all"\ninputs = true\n')
        cap = Capture(rules, q)
        v = _version(classes=200)
        outs = _outputs(300, classes=200)
        _run(cap, v, outs)
        left = _drain(q)
        counters = q.counters()
        assert len(left["results"]) == 300                  # every summary kept
        assert len(left.get("captures", [])) < 300          # captures (about 1 kB each) made room
        dropped = counters["dropped_full"].get("captures", 0)
        assert dropped == 300 - len(left.get("captures", []))
        assert counters["dropped_full"].get("results", 0) == 0
    finally:
        q.close()


# ---- through the inference service ----------------------------------------------------------

def test_service_captures_what_it_served(tmp_path, bundle_factory):
    models = tmp_path / "models"
    bundle_factory(models, name="tiny", version="1")
    rules = _rules(tmp_path, '[models.tiny]\nmode = "all"\ninputs = true\nscores = "logits"\n')
    q = SyncQueue(tmp_path / "queue.db")
    metrics = Metrics()
    cap = Capture(rules, q, metrics=metrics)
    xs = [np.random.default_rng(i).standard_normal((1, 4)).astype(np.float32) for i in range(12)]

    async def main():
        service = InferenceService([models], metrics=metrics, capture=cap, poll_interval_s=None)
        await service.start()
        try:
            for x in xs:
                await service.infer("tiny", None, InferRequest([InferTensor("x", "FP32", x.shape, x)]))
        finally:
            await service.stop()         # writes what is pending and closes the queue

    asyncio.run(main())
    q2 = SyncQueue(tmp_path / "queue.db")
    try:
        records = _drain(q2)
    finally:
        q2.close()
    assert len(records["captures"]) == 12 and len(records["results"]) == 12
    seen = []
    for r in records["captures"]:
        header, tensors = decode_capture(r.payload)
        x = tensors[("input", "x")]
        np.testing.assert_allclose(tensors[("output", "y")], tiny_expected("tiny", "1", x), rtol=1e-5, atol=1e-5)
        seen.append(x.tobytes())
        assert (header["model"], header["version"]) == ("tiny", "1")
    assert sorted(seen) == sorted(x.tobytes() for x in xs)
    top = [json.loads(r.payload)["top"][0][0] for r in records["results"]]
    assert sorted(top) == sorted(int(np.argmax(tiny_expected("tiny", "1", x))) for x in xs)
    assert metrics.captured.labels(model="tiny", stream="captures")._value.get() == 12
    with sqlite3.connect(tmp_path / "queue.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.mark.parametrize("args,message", [
    (["--capture-rules", "{rules}"], "--capture-rules and --sync-queue go together"),
    (["--sync-queue", "{queue}"], "--capture-rules and --sync-queue go together"),
    (["--capture-rules", "{bad}", "--sync-queue", "{queue}"], "sample takes a number within (0, 1]"),
])
def test_serve_capture_options_exit_2_before_listening(tmp_path, bundle_factory, args, message):
    models = tmp_path / "models"
    bundle_factory(models)
    good, bad = tmp_path / "rules.toml", tmp_path / "bad.toml"
    good.write_text('[models.tiny]\nmode = "all"\n')
    bad.write_text('[models.tiny]\nmode = "sample:7"\n')
    fill = {"rules": str(good), "bad": str(bad), "queue": str(tmp_path / "q.db")}
    r = run_cli(["serve", str(models), "--port", "0", *[a.format(**fill) for a in args]])
    assert r.returncode == 2, r.stderr
    assert message in " ".join(r.stderr.split())
    assert not (tmp_path / "q.db").exists()


def test_the_daemon_captures_into_the_queue_and_flushes_on_sigterm(tmp_path, bundle_factory):
    import httpx

    from tests.serve.daemon_harness import running

    models = tmp_path / "models"
    bundle_factory(models, name="tiny", version="1")
    rules = tmp_path / "capture.json"
    rules.write_text(json.dumps({"models": {"tiny": {"mode": "all", "inputs": True, "scores": "logits"}}}))
    queue = tmp_path / "sync.db"
    xs = [np.random.default_rng(100 + i).standard_normal((1, 4)).astype(np.float32) for i in range(5)]
    with running([models, "--capture-rules", rules, "--sync-queue", queue, "--poll-interval", "0"]) as d:
        for x in xs:
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": x.reshape(-1).tolist()}]}
            r = httpx.post(f"{d.url}/v2/models/tiny/infer", json=body, timeout=30)
            assert r.status_code == 200, r.text
        want = 'edgekit_captured_records_total{model="tiny",stream="captures"} 5.0'
        deadline = time.monotonic() + 10      # the capture thread writes after the answers went out
        while want not in httpx.get(f"{d.url}/metrics", timeout=30).text:
            assert time.monotonic() < deadline, "the capture counter never reached 5"
            time.sleep(0.05)
    q = SyncQueue(queue)
    try:
        records = _drain(q)
    finally:
        q.close()
    assert len(records["captures"]) == 5 and len(records["results"]) == 5
    got = sorted((decode_capture(r.payload)[1][("input", "x")].tobytes(), decode_capture(r.payload)[1][("output", "y")])
                 for r in records["captures"])
    for (raw, y), x in zip(got, sorted(xs, key=lambda a: a.tobytes())):
        assert raw == x.tobytes()
        np.testing.assert_allclose(y, tiny_expected("tiny", "1", x), rtol=1e-5, atol=1e-5)


def test_captures_go_from_an_offline_device_to_the_hub_by_sneakernet(tmp_path, bundle_factory):
    """The whole path through the real commands: serve captures into the queue, sync export
    onto a 'stick', hub import, sync import-acks empties the queue, hub export-records gives
    back captures that decode to the inputs sent and the model's outputs."""
    import base64

    import httpx

    from tests.serve.daemon_harness import running

    models = tmp_path / "models"
    bundle_factory(models, name="tiny", version="1")
    rules = tmp_path / "capture.toml"
    rules.write_text('[models.tiny]\nmode = "all"\ninputs = true\n')
    queue, stick, hub_db = tmp_path / "sync.db", tmp_path / "stick", f"sqlite:///{tmp_path / 'hub.db'}"
    xs = [np.random.default_rng(200 + i).standard_normal((1, 4)).astype(np.float32) for i in range(4)]
    with running([models, "--capture-rules", rules, "--sync-queue", queue, "--poll-interval", "0"]) as d:
        for x in xs:
            body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": x.reshape(-1).tolist()}]}
            assert httpx.post(f"{d.url}/v2/models/tiny/infer", json=body, timeout=30).status_code == 200
    device = ["--queue", queue, "--device-id", "dev-1"]
    for args in (["sync", "export", *device, "--to", stick], ["hub", "import", stick, "--db", hub_db],
                 ["sync", "import-acks", *device, stick],
                 ["hub", "export-records", "--db", hub_db, "--stream", "captures", "--out", tmp_path / "c.jsonl"]):
        r = run_cli(args)
        assert r.returncode == 0, (args, r.stderr)
    q = SyncQueue(queue)
    try:
        assert q.stats()["records"] == 0          # custody moved to the hub
    finally:
        q.close()
    rows = [json.loads(line) for line in (tmp_path / "c.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and {r["device_id"] for r in rows} == {"dev-1"}
    got = sorted((decode_capture(base64.b64decode(r["payload_b64"]))[1] for r in rows),
                 key=lambda t: t[("input", "x")].tobytes())
    for tensors, x in zip(got, sorted(xs, key=lambda a: a.tobytes())):
        np.testing.assert_array_equal(tensors[("input", "x")], x)
        np.testing.assert_allclose(tensors[("output", "y")], tiny_expected("tiny", "1", x), rtol=1e-5, atol=1e-5)
