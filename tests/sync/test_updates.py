"""The device's update client (edgekit.sync.updates): install, resume, and every rejection
(reported on stream "deploy", never activated: the serve repository folder unchanged)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgekit.errors import BadInputError
from edgekit.sync.update_manifest import UpdateFormatError, decode_manifest, encode_manifest
from edgekit.sync.updates import DirUpdateSource, UpdateClient, UpdateFetchError
from tests.sync.update_fixtures import RecordingQueue, compile_tiny, export_update, signed_update, trust_dir_with
from edgekit.sync.signing import create_key, rotate_key


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Keys, two versions of one model for x86_64, one for rpi4-like other target."""
    root = tmp_path_factory.mktemp("updates")
    keys = root / "keys"
    create_key(keys, "hub")
    create_key(keys, "stranger")
    bundles = root / "bundles"
    bundles.mkdir()
    return {"root": root, "keys": keys,
            "v1": compile_tiny(bundles, "tiny", "1"), "v2": compile_tiny(bundles, "tiny", "2"),
            "v3": compile_tiny(bundles, "tiny", "3")}


@pytest.fixture()
def device(tmp_path, world):
    repo = tmp_path / "repo"
    repo.mkdir()
    queue = RecordingQueue()
    trust = trust_dir_with(world["keys"], "hub", tmp_path / "trust")

    def make_client(**kw):
        return UpdateClient(tmp_path / "state", trust, repo, targets=kw.pop("targets", ["x86_64"]), queue=queue, **kw)
    return {"repo": repo, "queue": queue, "client": make_client, "usb": tmp_path / "usb", "tmp": tmp_path}


def _publish(world, device, version, key="hub", **kw):
    bundle = world[f"v{version}"]
    m = signed_update(bundle, world["keys"], key, name="tiny", version=version, **kw)
    export_update(m, bundle.read_bytes(), device["usb"])
    return m


def _repo_listing(repo):
    return sorted(os.listdir(repo))


def test_install_puts_the_exact_bundle_into_the_repository(world, device):
    m = _publish(world, device, "1")
    client = device["client"]()
    (result,) = client.run_once(DirUpdateSource(device["usb"]))
    assert result.state == "installed", result
    assert _repo_listing(device["repo"]) == ["tiny-1.ekb"]
    assert (device["repo"] / "tiny-1.ekb").read_bytes() == world["v1"].read_bytes()
    assert hashlib.sha256(world["v1"].read_bytes()).hexdigest() == m["bundle"]["sha256"]
    assert device["queue"].states() == ["fetching", "installed"]
    assert all(r[0] == "deploy" for r in device["queue"].records)
    assert device["queue"].records[-1][1]["update_id"] == m["update_id"]
    # the same offer again: nothing to do, nothing reported twice
    assert client.run_once(DirUpdateSource(device["usb"])) == []
    assert len(device["queue"].records) == 2
    assert not (device["tmp"] / "state" / "partial" / m["update_id"]).exists()


def _assert_rejected(device, result, match):
    assert result.state == "rejected", result
    assert match in result.reason, result.reason
    assert _repo_listing(device["repo"]) == []          # never activated, no temporary left behind
    last = device["queue"].records[-1]
    assert last[0] == "deploy" and last[1]["state"] == "rejected" and match in last[1]["reason"]


def test_bad_signature_is_rejected(world, device):
    m = _publish(world, device, "1")
    sig = bytearray(base64.b64decode(m["signature"]))
    sig[5] ^= 1
    m["signature"] = base64.b64encode(bytes(sig)).decode()
    (device["usb"] / m["update_id"] / "manifest.json").write_bytes(encode_manifest(m))
    (result,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    _assert_rejected(device, result, "bad signature")


def test_changed_manifest_with_a_valid_old_signature_is_rejected(world, device):
    m = _publish(world, device, "1")
    m2 = dict(m, target="x86_64", created_ms=m["created_ms"] + 1)
    body = {k: v for k, v in m2.items() if k not in ("signature", "key_chain", "update_id")}
    m2["update_id"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
    export_update(m2, world["v1"].read_bytes(), device["usb"])
    results = device["client"]().run_once(DirUpdateSource(device["usb"]))
    by_id = {r.update_id: r for r in results}
    _assert_rejected_one(by_id[m2["update_id"]], "bad signature")


def _assert_rejected_one(result, match):
    assert result.state == "rejected" and match in result.reason, result


def test_unknown_key_is_rejected(world, device):
    _publish(world, device, "1", key="stranger")
    (result,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    _assert_rejected(device, result, "unknown key")


def test_wrong_chunk_hash_is_rejected(world, device):
    m = _publish(world, device, "1")
    c = device["usb"] / m["update_id"] / "chunks" / m["chunks"][1]["sha256"]
    data = bytearray(c.read_bytes())
    data[10] ^= 0xFF
    c.write_bytes(bytes(data))
    (result,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    _assert_rejected(device, result, "sha256 mismatch")


def test_truncated_chunk_is_rejected(world, device):
    m = _publish(world, device, "1")
    c = device["usb"] / m["update_id"] / "chunks" / m["chunks"][0]["sha256"]
    c.write_bytes(c.read_bytes()[:-7])
    (result,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    _assert_rejected(device, result, "truncated")


def test_other_target_is_rejected(world, device):
    _publish(world, device, "1", target="rpi4")
    (result,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    _assert_rejected(device, result, "for target 'rpi4'")


def test_rollback_to_an_older_version_is_refused_also_after_a_restart(world, device):
    _publish(world, device, "2")
    (r2,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    assert r2.state == "installed"
    listing = _repo_listing(device["repo"])
    m1 = _publish(world, device, "1")
    # a new client (a restart) reads the persisted highest version
    results = device["client"]().run_once(DirUpdateSource(device["usb"]))
    assert [(r.update_id, r.state) for r in results] == [(m1["update_id"], "rejected")]
    assert "not newer than the installed 2" in results[0].reason
    assert _repo_listing(device["repo"]) == listing
    # the same version again is no upgrade either
    m2b = _publish(world, device, "2")
    (again,) = [r for r in device["client"]().run_once(DirUpdateSource(device["usb"]))
                if r.update_id == m2b["update_id"]]
    assert again.state == "rejected"


def test_bundle_that_is_not_what_the_manifest_says_is_rejected(world, device):
    # validly signed, hashes right, but the bundle inside is version 3 while the update says 4
    m = signed_update(world["v3"], world["keys"], "hub", name="tiny", version="4")
    export_update(m, world["v3"].read_bytes(), device["usb"])
    (result,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    _assert_rejected(device, result, "the update says 'tiny' version '4'")


def test_rotated_key_is_accepted_through_its_certificate(world, device, tmp_path):
    keys = tmp_path / "rot-keys"
    create_key(keys, "old")
    rotate_key(keys, "old", "new")
    trust = trust_dir_with(keys, "old", tmp_path / "trust-rot")
    m = signed_update(world["v1"], keys, "new", name="tiny", version="1")
    export_update(m, world["v1"].read_bytes(), device["usb"])
    client = UpdateClient(tmp_path / "state-rot", trust, device["repo"], targets="x86_64", queue=device["queue"])
    (result,) = client.run_once(DirUpdateSource(device["usb"]))
    assert result.state == "installed", result
    assert client.trust.trusted_ids() == [m["key_id"]]       # the old key is retired on this device


class FlakySource:
    """A DirUpdateSource whose link drops after ``good`` chunks; counts chunk fetches."""

    def __init__(self, root, good):
        self.inner, self.good, self.fetched = DirUpdateSource(root), good, 0

    def offers(self):
        return self.inner.offers()

    def chunk(self, manifest, sha):
        if self.fetched >= self.good:
            raise UpdateFetchError("link down")
        self.fetched += 1
        return self.inner.chunk(manifest, sha)


def test_link_loss_resumes_at_the_first_missing_chunk(world, device):
    m = _publish(world, device, "1")
    n = len(m["chunks"])
    assert n >= 3
    flaky = FlakySource(device["usb"], good=2)
    (pending,) = device["client"]().run_once(flaky)
    assert pending.state == "pending" and _repo_listing(device["repo"]) == []
    rest = FlakySource(device["usb"], good=10 ** 6)
    (done,) = device["client"]().run_once(rest)
    assert done.state == "installed"
    assert rest.fetched == n - 2
    assert device["queue"].states() == ["fetching", "installed"]


KILL_SCRIPT = """
import os, signal, sys
from edgekit.sync.updates import DirUpdateSource, UpdateClient
class Killer(DirUpdateSource):
    count = 0
    def chunk(self, manifest, sha):
        if Killer.count == int(sys.argv[5]):
            os.kill(os.getpid(), signal.SIGKILL)
        Killer.count += 1
        return super().chunk(manifest, sha)
UpdateClient(sys.argv[1], sys.argv[2], sys.argv[3], targets=["x86_64"]).run_once(Killer(sys.argv[4]))
"""


def test_kill_9_during_the_fetch_resumes(world, device):
    m = _publish(world, device, "1")
    n = len(m["chunks"])
    trust = device["tmp"] / "trust"
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(device["tmp"] / "state"), str(trust),
                           str(device["repo"]), str(device["usb"]), "2"], cwd=os.getcwd(), timeout=120)
    assert proc.returncode == -9
    partial = device["tmp"] / "state" / "partial" / m["update_id"]
    assert sorted(p.name for p in partial.glob("*.chunk")) == ["0.chunk", "1.chunk"]
    assert _repo_listing(device["repo"]) == []
    rest = FlakySource(device["usb"], good=10 ** 6)
    (done,) = device["client"]().run_once(rest)
    assert done.state == "installed" and rest.fetched == n - 2
    assert (device["repo"] / "tiny-1.ekb").read_bytes() == world["v1"].read_bytes()


def test_manifest_target_must_match_the_bundle_inside(world, device):
    _publish(world, device, "1", target="rpi4")
    client = device["client"](targets=["x86_64", "rpi4"])
    (result,) = client.run_once(DirUpdateSource(device["usb"]))
    # the manifest is accepted for the board's target; the bundle inside is checked too and is for x86_64
    _assert_rejected(device, result, "is for target 'x86_64', not 'rpi4'")


def test_damaged_state_file_stops_the_client(device):
    device["client"]()
    (device["tmp"] / "state" / "updates.json").write_text("{not json")
    with pytest.raises(BadInputError, match="unreadable"):
        device["client"]()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_manifest_fuzz_only_raises_the_format_error(data):
    try:
        decode_manifest(data)
    except UpdateFormatError:
        pass


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["format", "format_version", "model", "version", "target", "engine",
                                        "bundle", "chunk_size", "chunks", "created_ms", "key_id", "update_id",
                                        "signature", "key_chain"]),
                       st.none() | st.booleans() | st.integers() | st.text(max_size=20)
                       | st.lists(st.integers(), max_size=3) | st.dictionaries(st.text(max_size=5), st.integers(),
                                                                                 max_size=3)))
def test_manifest_fuzz_structured(doc):
    doc.setdefault("format", "edgekit-update")
    try:
        decode_manifest(json.dumps(doc).encode())
    except UpdateFormatError:
        pass


def test_fuzzed_manifest_mutations_are_rejected_by_the_client(world, device):
    """Byte flips of a real signed manifest: each is refused by the format or the
    signature, reported, never installed."""
    m = _publish(world, device, "1")
    raw = encode_manifest(m)
    client = device["client"]()
    import random
    rng = random.Random(3)

    class One:
        def __init__(self, data):
            self.data = data

        def offers(self):
            return [self.data]

        def chunk(self, manifest, sha):
            return DirUpdateSource(device["usb"]).chunk(manifest, sha)
    for _ in range(60):
        b = bytearray(raw)
        b[rng.randrange(len(b))] = rng.randrange(256)
        if bytes(b) == raw:
            continue  # the "flip" wrote the byte that was there: the genuine manifest, which would install
        res = client.run_once(One(bytes(b)))
        for r in res:
            assert r.state == "rejected", r
    assert _repo_listing(device["repo"]) == []


@settings(max_examples=300, deadline=None)
@given(index=st.integers(-3, 12), data=st.binary(max_size=600))
def test_chunk_loader_fuzz(index, data):
    """Any chunk bytes at any index: the chunk's bytes back when they are exactly the
    manifest's, else UpdateFormatError; never another exception."""
    from edgekit.sync.update_manifest import check_chunk, chunk_list

    body = bytes(range(256)) * 3
    m = {"chunks": chunk_list(body, 256)}
    try:
        got = check_chunk(m, index, data)
    except UpdateFormatError:
        assert not (0 <= index < 3 and data == body[index * 256:(index + 1) * 256])
    else:
        assert got == body[index * 256:(index + 1) * 256]


_cert_field = st.none() | st.booleans() | st.integers() | st.text(max_size=90) | st.binary(max_size=40).map(
    lambda b: base64.b64encode(b).decode())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=st.lists(st.dictionaries(st.sampled_from(["format", "format_version", "old_key_id", "new_key_id",
                                                       "new_public_key", "created_ms", "signature"]),
                                      _cert_field, max_size=7) | _cert_field, max_size=3))
def test_rotation_chain_fuzz_only_raises_signature_error(world, tmp_path_factory, chain):
    from edgekit.sync.signing import SignatureError, TrustStore

    trust = trust_dir_with(world["keys"], "hub", tmp_path_factory.mktemp("trust-fuzz"))
    for cert in chain:
        if isinstance(cert, dict) and cert.get("old_key_id") is None:
            cert["old_key_id"] = TrustStore(trust).trusted_ids()[0]       # reach the checks past the lookup
    try:
        TrustStore(trust).verify(b"m", b"\0" * 64, "0123456789abcdef", chain)
    except SignatureError:
        pass


def test_kill_between_rename_and_state_write_installs_the_same_bytes_again(world, device):
    """The highest version is recorded after the rename: a kill in between leaves the
    bundle in place and the old state; the next run installs the same bytes again."""
    _publish(world, device, "1")
    state = device["tmp"] / "state" / "updates.json"
    device["client"]()                                     # creates the state folder, no state file yet
    (first,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    assert first.state == "installed"
    state.unlink()                                         # as if killed before the state was written
    (again,) = device["client"]().run_once(DirUpdateSource(device["usb"]))
    assert again.state == "installed"
    assert _repo_listing(device["repo"]) == ["tiny-1.ekb"]
    assert (device["repo"] / "tiny-1.ekb").read_bytes() == world["v1"].read_bytes()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_client_rejects_any_bytes_without_raising(device, data):
    client = device["client"]()
    result = client.apply(data, None)
    assert result is None or result.state == "rejected"
    assert _repo_listing(device["repo"]) == []


def test_outcomes_of_junk_are_bounded_and_the_newest_kept(device):
    now = [1000.0]
    client = device["client"](clock=lambda: now[0])
    for i in range(300):
        now[0] += 1
        assert client.apply(b"junk %d" % i, None).state == "rejected"
    outcomes = json.loads((device["tmp"] / "state" / "updates.json").read_text())["outcomes"]
    assert len(outcomes) == 256
    assert "sha256:" + hashlib.sha256(b"junk 299").hexdigest() in outcomes
    assert "sha256:" + hashlib.sha256(b"junk 0").hexdigest() not in outcomes
    assert client.apply(b"junk 299", None) is None          # still remembered: not reported again


def test_a_signature_has_one_spelling(world, device):
    """Base64 leaves 4 unused bits in a 64-byte signature's last character: a manifest
    whose signature is spelled with them set decodes to the same bytes, and is refused."""
    doc = json.loads(encode_manifest(_publish(world, device, "1")))
    sig = doc["signature"]
    assert sig.endswith("==")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[-3])
    doc["signature"] = sig[:-3] + alphabet[last ^ 0b0001] + "=="
    assert base64.b64decode(doc["signature"]) == base64.b64decode(sig)
    with pytest.raises(UpdateFormatError, match="canonical base64"):
        decode_manifest(json.dumps(doc).encode())
