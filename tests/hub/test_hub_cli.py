"""``edgekit hub``: import (ack files, idempotent, all or nothing), devices, serve (worker
processes sharing the subscription, HTTP, restart of a killed worker, SIGTERM), exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from click.testing import CliRunner

from edgekit.cli.main import _register, cli
from edgekit.hub import Database, HubStore
from edgekit.sync.wire import decode_ack
from tests.hub.batches import batch_bytes, make_records
from tests.support.postgres import free_port
from tests.hub.mqtt_device import AckCollector

_register()


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})


def _export(folder: Path, device: str, seq: int, records: list) -> Path:
    path = folder / f"{device}-{seq}.ekbatch"
    path.write_bytes(batch_bytes(device, seq, records))
    return path


def test_import_writes_acks_and_twice_changes_nothing(tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    batches = {(f"dev-{d}", s): make_records(10, start=100 * (d * 10 + s)) for d in range(2) for s in range(3)}
    for (dev, seq), records in batches.items():
        _export(usb, dev, seq, records)
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    first = run_cli("hub", "import", usb, "--db", db, "--json")
    assert first.exit_code == 0, first.output
    rows = json.loads(first.output)
    assert len(rows) == 6 and sum(r["new"] for r in rows) == 60
    for (dev, seq), records in batches.items():
        ack = decode_ack((usb / f"{dev}-{seq}.ekack").read_bytes())
        assert (ack.device_id, ack.seq, ack.record_ids) == (dev, seq, [r.id for r in records])
    acks_before = {p.name: p.read_bytes() for p in usb.glob("*.ekack")}
    again = run_cli("hub", "import", *sorted(usb.glob("*.ekbatch")), "--db", db)
    assert again.exit_code == 0, again.output
    assert "6 file(s), 0 new record(s)" in again.output
    assert {p.name: p.read_bytes() for p in usb.glob("*.ekack")} == acks_before
    with Database(db) as conn:
        assert HubStore(conn).record_count() == 60


def test_import_of_a_bad_file_stores_nothing(tmp_path):
    good = _export(tmp_path, "dev-g", 1, make_records(4))
    bad = tmp_path / "dev-g-2.ekbatch"
    bad.write_bytes(good.read_bytes()[:-3])
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    r = run_cli("hub", "import", good, bad, "--db", db)
    assert r.exit_code == 2 and "dev-g-2.ekbatch" in r.output
    assert not list(tmp_path.glob("*.ekack"))
    assert run_cli("hub", "import", tmp_path / "missing.ekbatch", "--db", db).exit_code == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run_cli("hub", "import", empty, "--db", db)
    assert r.exit_code == 2 and "no batch files" in r.output


def test_devices_table_json_and_exit_codes(tmp_path):
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    _export(tmp_path, "sensor-7", 3, make_records(5))
    assert run_cli("hub", "import", tmp_path, "--db", db).exit_code == 0
    table = run_cli("hub", "devices", "--db", db)
    assert table.exit_code == 0 and "sensor-7" in table.output and "1 device(s)" in table.output
    doc = json.loads(run_cli("hub", "devices", "--db", db, "--json").output)
    assert [(d["device_id"], d["records"], d["last_seq"]) for d in doc["devices"]] == [("sensor-7", 5, 3)]
    missing = run_cli("hub", "devices", "--db", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.exit_code == 2 and "no hub database" in missing.output
    assert not (tmp_path / "none.db").exists()
    bad_scheme = run_cli("hub", "devices", "--db", "mongodb://x/y")
    assert bad_scheme.exit_code == 2 and "'mongodb'" in bad_scheme.output


def test_serve_option_errors_exit_2(tmp_path):
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    r = run_cli("hub", "serve", "--db", db)
    assert r.exit_code == 2 and "--mqtt" in r.output
    r = run_cli("hub", "serve", "--db", db, "--mqtt", "localhost")
    assert r.exit_code == 2 and "HOST:PORT" in r.output
    r = run_cli("hub", "serve", "--db", db, "--http-port", "1", "--mqtt-password-env", "EDGEKIT_NO_SUCH_VAR")
    assert r.exit_code == 2 and "EDGEKIT_NO_SUCH_VAR" in r.output
    r = run_cli("hub", "serve", "--db", "mysql://h/db", "--http-port", "1")
    assert r.exit_code == 2 and "'mysql'" in r.output
    assert not (tmp_path / "hub.db").exists()


def _children(pid: int) -> list:
    """The worker processes of ``pid`` (multiprocessing's spawned children; not its
    resource tracker)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in cmdline:
            out.append(int(stat.parent.name))
    return out


def _wait(predicate, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_serve_two_workers_http_restart_and_sigterm(tmp_path, mosquitto_broker):
    db = f"sqlite:///{tmp_path / 'hub.db'}"
    http_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "hub", "serve", "--db", db,
                             "--mqtt", f"{mosquitto_broker.host}:{mosquitto_broker.port}", "--workers", "2",
                             "--http-port", str(http_port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    device = AckCollector(mosquitto_broker.host, mosquitto_broker.port)
    try:
        base = f"http://127.0.0.1:{http_port}"
        assert _wait(lambda: _http_ok(f"{base}/v1/health")), "the HTTP API never answered"
        # Published before a worker subscribed, a batch would reach nobody (no session yet).
        assert _wait(lambda: sum("subscribed to" in x for x in lines) == 2), lines
        workers = _children(proc.pid)
        sent = []
        for seq in range(1, 11):
            records = make_records(20, start=seq * 100)
            sent += records
            device.publish("dev-s", batch_bytes("dev-s", seq, records))
        assert device.wait(lambda: len(device.acks) == 10, 60), "MQTT batches were not all acknowledged"
        over_http = make_records(7, start=5000)
        r = httpx.post(f"{base}/v1/ingest", content=batch_bytes("dev-w", 1, over_http), timeout=30)
        assert r.status_code == 200 and decode_ack(r.content).record_ids == [x.id for x in over_http]

        os.kill(workers[0], signal.SIGKILL)  # the supervisor starts it again under the same index
        assert _wait(lambda: len(_children(proc.pid)) >= 2 and workers[0] not in _children(proc.pid))
        assert _wait(lambda: sum("subscribed to" in x for x in lines) == 3), lines
        for seq in range(11, 21):
            records = make_records(20, start=seq * 100)
            sent += records
            device.publish("dev-s", batch_bytes("dev-s", seq, records))
        assert device.wait(lambda: len(device.acks) == 20, 60), sorted(device.acks)

        fleet = httpx.get(f"{base}/v1/devices", timeout=30).json()["devices"]
        assert {d["device_id"]: d["records"] for d in fleet} == {"dev-s": 400, "dev-w": 7}
    finally:
        device.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.join(10)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "starting it again" in output
    with Database(db) as conn:
        ids = [r["id"] for r in HubStore(conn).records(limit=100_000)]
    assert sorted(ids) == sorted(r.id for r in sent + over_http)


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_export_records_jsonl(tmp_path):
    import base64

    db = f"sqlite:///{tmp_path / 'hub.db'}"
    results = make_records(30)
    captures = [r.__class__(r.id, "captures", 3, r.created_ms, None, bytes(range(256)) * 2)
                for r in make_records(4, start=500)]
    (tmp_path / "in").mkdir()
    _export(tmp_path / "in", "cam-1", 1, results + captures)
    assert run_cli("hub", "import", tmp_path / "in", "--db", db).exit_code == 0
    out = tmp_path / "captures.jsonl"
    r = run_cli("hub", "export-records", "--db", db, "--stream", "captures", "--out", out)
    assert r.exit_code == 0 and "4 record(s)" in r.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [x["id"] for x in rows] == sorted(c.id for c in captures)
    assert all(base64.b64decode(x["payload_b64"]) == bytes(range(256)) * 2 and "payload_json" not in x for x in rows)
    every = tmp_path / "all.jsonl"
    t0 = results[10].created_ms
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 / 1000)) + f".{t0 % 1000:03d}"
    assert run_cli("hub", "export-records", "--db", db, "--stream", "results", "--since", since,
                   "--out", every).exit_code == 0
    rows = [json.loads(line) for line in every.read_text().splitlines()]
    assert [x["payload_json"] for x in rows] == [json.loads(x.payload) for x in results[10:]]
    bad = run_cli("hub", "export-records", "--db", db, "--since", "yesterday", "--out", tmp_path / "x.jsonl")
    assert bad.exit_code == 2 and "ISO 8601" in bad.output and not (tmp_path / "x.jsonl").exists()
