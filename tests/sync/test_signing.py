"""Keys, rotation certificates and the trust store (edgekit.sync.signing), checked against
cryptography's own Ed25519 verification and hashlib as the oracles."""

from __future__ import annotations

import base64
import hashlib
import json
import stat

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from edgekit.errors import BadInputError
from edgekit.sync.signing import (
    ROTATION_TAG,
    SignatureError,
    TrustStore,
    create_key,
    list_keys,
    load_private_key,
    load_public_key,
    rotate_key,
    rotation_chain,
)


def _raw(pub) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_create_key_files_mode_and_id(tmp_path):
    info = create_key(tmp_path, "hub")
    priv = tmp_path / "hub.key"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    pub = load_public_key(tmp_path / "hub.pub")
    assert info["key_id"] == hashlib.sha256(_raw(pub)).hexdigest()[:16]
    # the private key's public half is the published one
    assert _raw(load_private_key(tmp_path, "hub").public_key()) == _raw(pub)
    with pytest.raises(BadInputError, match="already exists"):
        create_key(tmp_path, "hub")
    with pytest.raises(BadInputError, match="not usable"):
        create_key(tmp_path, "../evil")
    assert list_keys(tmp_path) == [{"name": "hub", "key_id": info["key_id"], "has_private": True,
                                    "rotated_from": None}]


def test_rotation_certificate_is_signed_by_the_old_key(tmp_path):
    old = create_key(tmp_path, "k1")
    new = rotate_key(tmp_path, "k1", "k2")
    cert = json.loads((tmp_path / "k2.rotation.json").read_text())
    body = {k: v for k, v in cert.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    # independent check with cryptography directly
    load_public_key(tmp_path / "k1.pub").verify(base64.b64decode(cert["signature"]), ROTATION_TAG + canonical)
    assert cert["old_key_id"] == old["key_id"] and cert["new_key_id"] == new["key_id"]
    assert rotation_chain(tmp_path, "k2") == [cert]
    assert rotation_chain(tmp_path, "k1") == []
    assert {k["name"]: k["rotated_from"] for k in list_keys(tmp_path)} == {"k1": None, "k2": old["key_id"]}


def _trust(tmp_path, keys_dir, *names):
    trust = tmp_path / "trust"
    trust.mkdir()
    for n in names:
        (trust / f"{n}.pub").write_bytes((keys_dir / f"{n}.pub").read_bytes())
    return trust


def test_trust_store_follows_rotation_and_retires_the_old_key(tmp_path):
    keys = tmp_path / "keys"
    k1 = create_key(keys, "k1")
    k2 = rotate_key(keys, "k1", "k2")
    trust = TrustStore(_trust(tmp_path, keys, "k1"))
    msg = b"edgekit-update-v1\x00hello"
    sig2 = load_private_key(keys, "k2").sign(msg)
    with pytest.raises(SignatureError, match="unknown key"):
        trust.verify(msg, sig2, k2["key_id"])
    learned = trust.verify(msg, sig2, k2["key_id"], rotation_chain(keys, "k2"))
    assert [(o, n) for o, n, _ in learned] == [(k1["key_id"], k2["key_id"])]
    trust.learn(learned)
    # persisted: a new store on the same folder trusts k2 and no longer k1
    again = TrustStore(tmp_path / "trust")
    assert again.trusted_ids() == [k2["key_id"]]
    again.verify(msg, sig2, k2["key_id"])
    with pytest.raises(SignatureError, match="unknown key"):
        again.verify(msg, load_private_key(keys, "k1").sign(msg), k1["key_id"])


def test_trust_store_refuses_bad_signatures_and_forged_certificates(tmp_path):
    keys = tmp_path / "keys"
    k1 = create_key(keys, "k1")
    create_key(keys, "mallory")
    trust = TrustStore(_trust(tmp_path, keys, "k1"))
    msg = b"payload"
    sig = load_private_key(keys, "k1").sign(msg)
    with pytest.raises(SignatureError, match="bad signature"):
        trust.verify(msg + b"!", sig, k1["key_id"])
    with pytest.raises(InvalidSignature):      # the oracle agrees
        load_public_key(keys / "k1.pub").verify(sig, msg + b"!")
    # mallory signs a certificate claiming k1 -> mallory: the signature is not k1's
    rotate_key(keys, "mallory", "m2")
    forged = json.loads((keys / "m2.rotation.json").read_text())
    forged["old_key_id"] = k1["key_id"]
    m2 = json.loads((keys / "m2.rotation.json").read_text())["new_key_id"]
    with pytest.raises(SignatureError, match="bad signature"):
        trust.verify(msg, load_private_key(keys, "m2").sign(msg), m2, [forged])
    with pytest.raises(SignatureError, match="16 hex"):
        trust.verify(msg, sig, "nothex")
