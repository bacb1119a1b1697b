"""Ed25519 keys for signed model updates (docs/updates.md): key files, key ids, rotation
certificates and the device's trust store.

A key NAME in a key folder is two files: ``NAME.key`` (the private key, PKCS#8 PEM, mode
0600) and ``NAME.pub`` (the public key, SubjectPublicKeyInfo PEM). Its key id is the first
16 hex digits of the SHA-256 of the raw 32-byte public key.

Rotation: ``rotate_key(dir, OLD, NEW)`` creates NEW and a rotation certificate
``NEW.rotation.json``: NEW's public key signed by OLD. A device that trusts OLD and sees the
certificate (the hub ships it inside every update manifest signed by NEW) trusts NEW from
then on and stops accepting OLD: the old key is retired on each device by its first update
signed with the new one.

Every signed message starts with a domain tag (``edgekit-update-v1``, ``edgekit-rotation-v1``)
so a signature made for one kind of message can never pass as another.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from pathlib import Path

from edgekit.errors import BadInputError
from edgekit.files import write_atomic

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
except ImportError:  # pragma: no cover - the sync extra is missing
    Ed25519PrivateKey = None

ROTATION_TAG = b"edgekit-rotation-v1\x00"
ROTATION_FORMAT = "edgekit-key-rotation"
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KEY_ID = re.compile(r"^[0-9a-f]{16}$")
TRUST_STATE = "trust.json"   # in a trust store: key ids learned by rotation, key ids retired


class SignatureError(BadInputError):
    """A signature, key or certificate that cannot be accepted: the message says which."""


def _need_crypto() -> None:
    if Ed25519PrivateKey is None:
        raise BadInputError("signed updates need the cryptography package: pip install 'edgekit[sync]'")


def key_id(public_key) -> str:
    """Short key id: the first 16 hex digits of SHA-256 over the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def raw_public(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not KEY_NAME.match(name):
        raise BadInputError(f"key name {name!r} is not usable: letters, digits, '._-', at most 64, "
                            "not starting with a dot")
    return name


def _write_private(path: Path, key) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    # O_EXCL with 0600 from the start: the private key is never readable by others, not even briefly
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _public_pem(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def create_key(key_dir, name: str) -> dict:
    """Create key ``name`` in ``key_dir``; refuses to overwrite an existing one. Returns
    ``{"name", "key_id", "private", "public"}``."""
    _need_crypto()
    key_dir = Path(key_dir)
    _check_name(name)
    priv_path, pub_path = key_dir / f"{name}.key", key_dir / f"{name}.pub"
    if priv_path.exists() or pub_path.exists():
        raise BadInputError(f"key {name!r} already exists in {key_dir}: pick another name (or rotate it)")
    key_dir.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    # public first: a kill between the two leaves a public key without its private half,
    # which list_keys shows as such, never a private key nobody can find the id of
    write_atomic(pub_path, lambda f: f.write(_public_pem(key.public_key())))
    _write_private(priv_path, key)
    return {"name": name, "key_id": key_id(key.public_key()), "private": str(priv_path), "public": str(pub_path)}


def load_private_key(key_dir, name: str):
    _need_crypto()
    path = Path(key_dir) / f"{_check_name(name)}.key"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInputError(f"no private key {name!r} in {key_dir} (edgekit keys create {name})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{path} is not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an Ed25519 key")
    return key


def load_public_key(path):
    """An Ed25519 public key from a PEM file (or the raw 32 bytes)."""
    _need_crypto()
    path = Path(path)
    data = path.read_bytes()
    try:
        if len(data) == 32:
            return Ed25519PublicKey.from_public_bytes(data)
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise SignatureError(f"{path} is not a public key file ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path} is not an Ed25519 public key")
    return key


def list_keys(key_dir) -> list:
    """The keys in ``key_dir``: ``{"name", "key_id", "has_private", "rotated_from"}`` each,
    sorted by name; ``rotated_from`` is the key id that signed its rotation certificate."""
    _need_crypto()
    key_dir = Path(key_dir)
    if not key_dir.is_dir():
        return []
    out = []
    for pub in sorted(key_dir.glob("*.pub"), key=lambda p: p.name[:-4]):
        name = pub.name[:-4]
        cert_path = key_dir / f"{name}.rotation.json"
        rotated_from = None
        if cert_path.is_file():
            try:
                rotated_from = json.loads(cert_path.read_text())["old_key_id"]
            except (ValueError, KeyError, TypeError):
                rotated_from = "(unreadable certificate)"
        out.append({"name": name, "key_id": key_id(load_public_key(pub)),
                    "has_private": (key_dir / f"{name}.key").is_file(), "rotated_from": rotated_from})
    return out


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def rotate_key(key_dir, old_name: str, new_name: str, *, clock=time.time) -> dict:
    """Create key ``new_name`` and its rotation certificate signed by ``old_name``."""
    key_dir = Path(key_dir)
    old = load_private_key(key_dir, old_name)
    info = create_key(key_dir, new_name)
    new_pub = load_public_key(key_dir / f"{new_name}.pub")
    body = {"format": ROTATION_FORMAT, "format_version": 1, "old_key_id": key_id(old.public_key()),
            "new_key_id": key_id(new_pub), "new_public_key": base64.b64encode(raw_public(new_pub)).decode("ascii"),
            "created_ms": int(clock() * 1000)}
    cert = dict(body, signature=base64.b64encode(old.sign(ROTATION_TAG + _canonical(body))).decode("ascii"))
    write_atomic(key_dir / f"{new_name}.rotation.json", lambda f: f.write(_canonical(cert)))
    info["rotation"] = cert
    return info


def rotation_chain(key_dir, name: str) -> list:
    """The rotation certificates leading to key ``name``, oldest first ([] for a key that
    was created, not rotated in)."""
    key_dir = Path(key_dir)
    by_new = {}
    for path in key_dir.glob("*.rotation.json"):
        try:
            cert = json.loads(path.read_text())
            by_new[cert["new_key_id"]] = cert
        except (ValueError, KeyError, TypeError):
            raise SignatureError(f"rotation certificate {path} is unreadable") from None
    chain, kid = [], key_id(load_public_key(key_dir / f"{_check_name(name)}.pub"))
    while kid in by_new and len(chain) < 64:
        chain.append(by_new[kid])
        kid = by_new[kid]["old_key_id"]
    return list(reversed(chain))


def _b64(value, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise SignatureError(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise SignatureError(f"{what} is not valid base64") from None
    if size is not None and len(raw) != size:
        raise SignatureError(f"{what} has {len(raw)} bytes, not {size}")
    return raw


class TrustStore:
    """A device's trusted public keys: a folder of ``*.pub`` files (put there by whoever
    provisions the device) plus ``trust.json``, what the device learned by rotation
    (keys it trusts now, keys retired), replaced atomically."""

    def __init__(self, trust_dir):
        _need_crypto()
        self.dir = Path(trust_dir)
        if not self.dir.is_dir():
            raise BadInputError(f"trust store {self.dir} is not a folder of public keys")
        self._keys = {}          # key id -> public key
        for pub in sorted(self.dir.glob("*.pub")):
            k = load_public_key(pub)
            self._keys[key_id(k)] = k
        self._learned, self._retired = {}, set()
        state = self.dir / TRUST_STATE
        if state.is_file():
            try:
                doc = json.loads(state.read_text())
                for kid, raw in doc.get("learned", {}).items():
                    self._learned[kid] = Ed25519PublicKey.from_public_bytes(base64.b64decode(raw))
                self._retired = set(doc.get("retired", []))
            except (ValueError, TypeError, AttributeError) as exc:
                raise SignatureError(f"trust state {state} is unreadable ({exc})") from None

    def trusted_ids(self) -> list:
        return sorted((set(self._keys) | set(self._learned)) - self._retired)

    def _key(self, kid: str):
        if kid in self._retired:
            return None
        return self._learned.get(kid) or self._keys.get(kid)

    def resolve(self, kid: str, chain=()) -> tuple:
        """(public key, certificates to learn) for key id ``kid``: a trusted key, or one
        reached from a trusted key through ``chain`` (rotation certificates, oldest first).
        Raises SignatureError for an unknown key or a bad certificate."""
        if not isinstance(kid, str) or not KEY_ID.match(kid):
            raise SignatureError(f"key id {kid!r} is not 16 hex digits")
        key = self._key(kid)
        if key is not None:
            return key, []
        if not isinstance(chain, (list, tuple)):
            raise SignatureError("key_chain is not a list of rotation certificates")
        known = {}
        learned = []
        for i, cert in enumerate(chain):
            if not isinstance(cert, dict):
                raise SignatureError(f"rotation certificate {i} is not an object")
            body = {k: v for k, v in cert.items() if k != "signature"}
            if body.get("format") != ROTATION_FORMAT or body.get("format_version") != 1:
                raise SignatureError(f"rotation certificate {i} is not an {ROTATION_FORMAT} v1 certificate")
            old_id, new_id = body.get("old_key_id"), body.get("new_key_id")
            signer = known.get(old_id) if isinstance(old_id, str) else None
            if signer is None and isinstance(old_id, str):
                signer = self._key(old_id)
            if signer is None:
                continue       # a link from a key this device never trusted: not a path to trust
            new_raw = _b64(body.get("new_public_key"), f"rotation certificate {i}'s new_public_key", 32)
            try:
                new_key = Ed25519PublicKey.from_public_bytes(new_raw)
            except ValueError:
                raise SignatureError(f"rotation certificate {i}: new_public_key is not an Ed25519 key") from None
            if key_id(new_key) != new_id:
                raise SignatureError(f"rotation certificate {i}: new_key_id does not match its public key")
            try:
                signer.verify(_b64(cert.get("signature"), f"rotation certificate {i}'s signature", 64),
                              ROTATION_TAG + _canonical(body))
            except InvalidSignature:
                raise SignatureError(f"rotation certificate {i} ({old_id} -> {new_id}): bad signature") from None
            known[new_id] = new_key
            learned.append((old_id, new_id, new_key))
        if kid in known:
            return known[kid], learned
        raise SignatureError(f"unknown key {kid}: not in the trust store {self.dir} and no rotation "
                             "certificate from a trusted key leads to it")

    def verify(self, message: bytes, signature: bytes, kid: str, chain=()) -> list:
        """Check ``signature`` over ``message`` by key ``kid``; returns the rotations to
        learn (pass them to ``learn`` once the update they came with is accepted)."""
        key, learned = self.resolve(kid, chain)
        try:
            key.verify(signature, message)
        except InvalidSignature:
            raise SignatureError(f"bad signature: the update manifest was not signed by key {kid} "
                                 "(or was changed after signing)") from None
        return learned

    def learn(self, rotations) -> None:
        """Trust each rotation's new key and retire its old one; persisted atomically."""
        if not rotations:
            return
        for old_id, new_id, new_key in rotations:
            self._learned[new_id] = new_key
            self._retired.add(old_id)
            self._retired.discard(new_id)
        learned = {k: base64.b64encode(raw_public(v)).decode("ascii") for k, v in sorted(self._learned.items())}
        doc = {"learned": learned,
               "retired": sorted(self._retired)}
        write_atomic(self.dir / TRUST_STATE, lambda f: f.write(_canonical(doc)))


def sign(private_key, message: bytes) -> bytes:
    return private_key.sign(message)
