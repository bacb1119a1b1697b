"""`edgekit sync status|run|export|import-acks` through the real CLI: bad options exit 2
before anything is opened or created; status shows the queue; export and import-acks
round-trip through the hub's import; run --once forwards to a real Mosquitto."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli.main import _register, cli
from edgekit.sync.queue import SyncQueue

_register()


def invoke(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False,
                              env={"COLUMNS": "300", **(env or {})})


def refused(r, *words):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for w in words:
        assert w in r.output, r.output


@pytest.fixture
def queue_file(tmp_path):
    path = tmp_path / "q.db"
    with SyncQueue(path) as q:
        for i in range(30):
            q.enqueue("results" if i % 3 else "captures", b'{"label": "yes", "i": %d}' % i, priority=i % 4)
    return path


@pytest.mark.parametrize("args,words", [
    (["run", "--device-id", "d1"], ["--mqtt", "--http"]),
    (["run", "--device-id", "d1", "--mqtt", "h:1883", "--http", "http://h"], ["one link"]),
    (["run", "--device-id", "d1", "--mqtt", "h:port"], ["HOST[:PORT]"]),
    (["run", "--device-id", "d/1", "--mqtt", "h"], ["device id"]),
    (["run", "--device-id", "d1", "--mqtt", "h", "--rate", "fast"], ["--rate", "8k"]),
    (["run", "--device-id", "d1", "--mqtt", "h", "--daily-bytes", "0"], ["--daily-bytes", "more than 0"]),
    (["run", "--device-id", "d1", "--mqtt", "h", "--max-batch-bytes", "10"], ["--max-batch-bytes"]),
    (["run", "--device-id", "d1", "--mqtt", "h", "--backoff", "9", "1"], ["--backoff"]),
    (["run", "--device-id", "d1", "--mqtt", "h", "--tls-ca", "/nonexistent.pem"], ["--tls-ca", "no such file"]),
    (["run", "--device-id", "d1", "--mqtt", "h", "--password-file", "/etc/hostname"], ["--username"]),
    (["run", "--device-id", "d1", "--mqtt", "h", "--token-file", "/etc/hostname"], ["--token-file", "--http"]),
    (["run", "--device-id", "d1", "--http", "http://h", "--username", "u"], ["MQTT options"]),
    (["run", "--device-id", "d1", "--http", "ftp://h"], ["http://"]),
])
def test_bad_run_options_exit_2_and_create_nothing(tmp_path, args, words):
    queue = tmp_path / "new" / "q.db"
    r = invoke("sync", *args, "--queue", queue)
    refused(r, *words)
    assert not queue.exists() and not (tmp_path / "new").exists()


def test_commands_on_a_missing_queue_exit_2(tmp_path):
    missing = tmp_path / "none.db"
    refused(invoke("sync", "status", "--queue", missing), "no sync queue")
    refused(invoke("sync", "export", "--queue", missing, "--device-id", "d1", "--to", tmp_path / "out"),
            "no sync queue")
    refused(invoke("sync", "import-acks", "--queue", missing, "--device-id", "d1", tmp_path), "no sync queue")
    assert not missing.exists()


def test_export_to_a_file_exits_2(queue_file, tmp_path):
    (tmp_path / "afile").write_text("x")
    refused(invoke("sync", "export", "--queue", queue_file, "--device-id", "d1", "--to", tmp_path / "afile"),
            "--to", "is a file")


def test_status_shows_the_queue(queue_file):
    r = invoke("sync", "status", "--queue", queue_file)
    assert r.exit_code == 0, r.output
    assert "30 records" in r.output and "captures" in r.output and "results" in r.output
    assert "none has run" in r.output
    r = invoke("sync", "status", "--queue", queue_file, "--json")
    doc = json.loads(r.output)
    with SyncQueue(queue_file) as q:
        assert doc["stats"]["records"] == q.stats()["records"] == 30
        assert doc["counters"]["enqueued"] == q.counters()["enqueued"] == {"captures": 10, "results": 20}
    assert doc["forwarder"] is None


def test_export_and_import_acks_round_trip(queue_file, tmp_path):
    from edgekit.hub.db import Database
    from edgekit.hub.ingest import batch_files, import_file
    from edgekit.hub.store import HubStore

    stick = tmp_path / "usb"
    r = invoke("sync", "export", "--queue", queue_file, "--device-id", "d1", "--to", stick)
    assert r.exit_code == 0, r.output
    assert "exported 30 records" in r.output and "kept in the queue" in r.output
    db = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    db.apply_schemas()
    store = HubStore(db)
    assert sum(import_file(store, p).new for p in batch_files([stick])) == 30
    db.close()
    r = invoke("sync", "import-acks", "--queue", queue_file, "--device-id", "d1", stick)
    assert r.exit_code == 0, r.output
    assert "30 records delivered" in r.output
    with SyncQueue(queue_file) as q:
        assert q.stats()["records"] == 0


def test_run_once_over_mqtt(queue_file, tmp_path):
    from tests.sync.broker import MOSQUITTO, MosquittoBroker
    from tests.sync.hub_standin import MqttHubStandIn

    if shutil.which(MOSQUITTO) is None and not Path(MOSQUITTO).exists():
        pytest.skip("needs Mosquitto: apt-get install mosquitto (or run scripts/install_system_deps.sh)")
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    hub = MqttHubStandIn(broker.host, broker.port)
    try:
        r = invoke("sync", "run", "--queue", queue_file, "--device-id", "d1", "--mqtt", f"127.0.0.1:{broker.port}",
                   "--once", "--rate", "64k")
        assert r.exit_code == 0, r.output
        assert "30 records" in r.output and "30 acked" in r.output
        assert len(hub.arrivals.records) == 30 and hub.arrivals.duplicates() == 0
        status = json.loads(invoke("sync", "status", "--queue", queue_file, "--json").output)
        assert status["stats"]["records"] == 0 and status["forwarder"]["link"] == "up"
        # The broker gone: --once reports the link down and exits 1, the records stay.
        with SyncQueue(queue_file) as q:
            q.enqueue("results", b"later")
        hub.close()
        broker.stop()
        r = invoke("sync", "run", "--queue", queue_file, "--device-id", "d1", "--mqtt", f"127.0.0.1:{broker.port}",
                   "--once", "--ack-timeout", "0.5")
        assert r.exit_code == 1, r.output
        assert "link down" in r.output and "not reachable" in r.output
        status = json.loads(invoke("sync", "status", "--queue", queue_file, "--json").output)
        assert status["stats"]["records"] == 1 and status["forwarder"]["link"] == "down"
    finally:
        hub.close()
        broker.stop()


def test_run_forwards_until_sigterm(queue_file, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.sync.broker import MOSQUITTO, MosquittoBroker
    from tests.sync.hub_standin import MqttHubStandIn

    if shutil.which(MOSQUITTO) is None and not Path(MOSQUITTO).exists():
        pytest.skip("needs Mosquitto: apt-get install mosquitto (or run scripts/install_system_deps.sh)")
    broker = MosquittoBroker(tmp_path / "broker")
    broker.start()
    hub = MqttHubStandIn(broker.host, broker.port)
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "sync", "run", "--queue", str(queue_file),
                             "--device-id", "d1", "--mqtt", f"127.0.0.1:{broker.port}"],
                            cwd=repo, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert hub.arrivals.wait_for(30, timeout_s=30)
        with SyncQueue(queue_file) as q:
            later = q.enqueue("events", b"while running", priority=0)
            deadline = time.monotonic() + 30
            while q.stats()["records"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert q.stats()["records"] == 0
        assert later in hub.arrivals.records
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        hub.close()
        broker.stop()
    assert proc.returncode == 0, err
    # One pass or two, depending on when the last record came: 31 sent and acked in all.
    sent = [int(m) for m in re.findall(r"sent (\d+) records", err)]
    assert sum(sent) == 31 and "Traceback" not in err, err


def test_without_the_sync_extra_the_commands_say_what_to_install(tmp_path):
    import subprocess
    import sys

    code = ("import sys\n"
            "sys.modules['zstandard'] = None\n"     # as on a device without edgekit[sync]
            "from edgekit.cli.main import main\n"
            "sys.argv = ['edgekit'] + sys.argv[1:]\n"
            "main()\n")
    repo = Path(__file__).resolve().parents[2]
    for args in (["status"], ["export", "--device-id", "d1", "--to", str(tmp_path / "out")]):
        res = subprocess.run([sys.executable, "-c", code, "sync", *args, "--queue", str(tmp_path / "q.db")],
                             cwd=repo, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert "pip install 'edgekit[sync]'" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "q.db").exists() and not (tmp_path / "out").exists()
