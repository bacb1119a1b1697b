"""The sneakernet loop through the CLI: keys create, hub group add, hub publish, hub
export-update, sync apply-update on the device, sync export of its deploy record, hub
import, hub rollouts showing "installed"; and bad input exiting 2."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgekit.cli.main import _register, cli
from edgekit.sync.queue import SyncQueue
from tests.sync.update_fixtures import compile_tiny

_register()


def _run(*args, code=0):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == code, r.output
    return r.output


def test_publish_export_apply_import_round_trip(tmp_path):
    keys, db = tmp_path / "keys", f"sqlite:///{tmp_path / 'hub.db'}"
    bundle = compile_tiny(tmp_path, "tiny", "5")
    _run("keys", "create", "hub", "--dir", keys)
    _run("hub", "group", "add", "field", "dev-1", "--db", db)
    out = _run("hub", "publish", bundle, "--to", "field", "--key", "hub", "--keys-dir", keys, "--db", db,
               "--chunk-size", 512)
    update_id = out.split()[1].rstrip(":")
    [row] = json.loads(_run("hub", "rollouts", update_id, "--db", db, "--json"))
    assert (row["device_id"], row["state"]) == ("dev-1", "offered")
    usb = tmp_path / "usb"
    _run("hub", "export-update", update_id, "--to", usb, "--db", db)

    # the device: trusts the hub's public key, installs from the stick, reports upstream
    trust, repo, queue = tmp_path / "trust", tmp_path / "repo", tmp_path / "queue.db"
    trust.mkdir()
    repo.mkdir()
    (trust / "hub.pub").write_bytes((keys / "hub.pub").read_bytes())
    SyncQueue(queue).close()
    out = _run("sync", "apply-update", usb / update_id, "--trust", trust, "--repository", repo,
               "--state-dir", tmp_path / "state", "--target", "x86_64", "--queue", queue)
    assert f"{update_id}  tiny 5: installed" in out
    # the export folder holding it: nothing new, nothing reported twice
    out = _run("sync", "apply-update", usb, "--trust", trust, "--repository", repo,
               "--state-dir", tmp_path / "state", "--target", "x86_64", "--queue", queue)
    assert "no new update" in out
    assert (repo / "tiny-5.ekb").read_bytes() == bundle.read_bytes()
    back = tmp_path / "back"
    _run("sync", "export", "--queue", queue, "--device-id", "dev-1", "--to", back)
    _run("hub", "import", back, "--db", db)
    [row] = json.loads(_run("hub", "rollouts", update_id, "--db", db, "--json"))
    assert (row["device_id"], row["state"]) == ("dev-1", "installed")
    assert "1 installed" in _run("hub", "rollouts", "--db", db)


def test_bad_input_exits_2(tmp_path):
    keys, db = tmp_path / "keys", f"sqlite:///{tmp_path / 'hub.db'}"
    _run("keys", "create", "hub", "--dir", keys)
    bundle = compile_tiny(tmp_path, "tiny", "1")
    out = _run("hub", "publish", tmp_path / "missing.ekb", "--to", "g", "--key", "hub", "--keys-dir", keys,
               "--db", db, code=2)
    assert "publish takes a bundle archive" in out
    _run("hub", "publish", bundle, "--to", "g", "--key", "nokey", "--keys-dir", keys, "--db", db, code=2)
    _run("hub", "publish", bundle, "--to", "g", "--key", "hub", "--keys-dir", keys, "--db", db, "--mqtt", "nope",
         code=2)
    _run("hub", "rollouts", "0" * 32, "--db", db, code=2)
    _run("hub", "export-update", "0" * 32, "--to", tmp_path / "x", "--db", db, code=2)
    _run("sync", "apply-update", tmp_path / "nothere", "--trust", tmp_path, "--repository", tmp_path,
         "--state-dir", tmp_path / "s", "--target", "x86_64", code=2)
    _run("sync", "apply-update", "http://127.0.0.1:9", "--trust", tmp_path, "--repository", tmp_path,
         "--state-dir", tmp_path / "s", "--target", "x86_64", code=2)     # no --device-id
    out = _run("sync", "apply-update", tmp_path, "--trust", tmp_path / "no-trust", "--repository", tmp_path,
               "--state-dir", tmp_path / "s", "--target", "x86_64", "--queue", tmp_path / "q.db", code=2)
    assert "--trust" in out and not (tmp_path / "q.db").exists() and not (tmp_path / "s").exists()


def test_publish_whose_notice_fails_keeps_the_rollout_and_exits_1(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]          # closed once the block ends: nothing listens there
    keys, db = tmp_path / "keys", f"sqlite:///{tmp_path / 'hub.db'}"
    _run("keys", "create", "hub", "--dir", keys)
    bundle = compile_tiny(tmp_path, "tiny", "1")
    out = _run("hub", "publish", bundle, "--to", "g", "--key", "hub", "--keys-dir", keys, "--db", db,
               "--mqtt", f"127.0.0.1:{port}", code=1)
    assert "is stored and rolled out, but its MQTT notice failed" in out
    assert "tiny 1 (x86_64) -> g" in _run("hub", "rollouts", "--db", db)
