"""``edgekit keys create|list|rotate`` through the CLI."""

from __future__ import annotations

import hashlib
import json
import stat

from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from edgekit.cli.main import _register, cli

_register()


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_keys_create_list_rotate(tmp_path):
    r = _run("keys", "create", "hub", "--dir", tmp_path)
    assert r.exit_code == 0, r.output
    pem = (tmp_path / "hub.pub").read_bytes()
    raw = serialization.load_pem_public_key(pem).public_bytes(serialization.Encoding.Raw,
                                                              serialization.PublicFormat.Raw)
    kid = hashlib.sha256(raw).hexdigest()[:16]
    assert kid in r.output
    assert stat.S_IMODE((tmp_path / "hub.key").stat().st_mode) == 0o600
    r = _run("keys", "rotate", "hub", "hub-2027", "--dir", tmp_path)
    assert r.exit_code == 0, r.output
    listed = json.loads(_run("keys", "list", "--dir", tmp_path, "--json").output)
    assert [(k["name"], k["rotated_from"]) for k in listed] == [("hub", None), ("hub-2027", kid)]


def test_keys_bad_input_exits_2_and_writes_nothing(tmp_path):
    assert _run("keys", "create", "hub", "--dir", tmp_path).exit_code == 0
    before = sorted(p.name for p in tmp_path.iterdir())
    r = _run("keys", "create", "hub", "--dir", tmp_path)
    assert r.exit_code == 2 and "already exists" in r.output
    r = _run("keys", "rotate", "missing", "new", "--dir", tmp_path)
    assert r.exit_code == 2 and "no private key 'missing'" in r.output
    r = _run("keys", "create", ".hidden", "--dir", tmp_path)
    assert r.exit_code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == before
