"""The update manifest, format 1 (docs/sync-protocol.md, "Update manifest"): what the hub
signs for one model update and what a device checks before it fetches a byte of the bundle.

A UTF-8 JSON object:

    {"format": "edgekit-update", "format_version": 1, "update_id": "...",
     "model": "kws", "version": "3", "target": "rpi4", "engine": "litert",
     "bundle": {"sha256": "...", "size": 123456, "file": "kws-3.ekb"},
     "chunk_size": 65536, "chunks": [{"sha256": "...", "size": 65536}, ...],
     "created_ms": 1765000000000, "key_id": "0123456789abcdef",
     "key_chain": [rotation certificates, oldest first], "signature": "<base64, 64 bytes>"}

The signature is Ed25519 over ``edgekit-update-v1\\0`` followed by the canonical encoding of
every field but ``signature`` and ``key_chain`` (JSON, keys sorted, no spaces, ASCII).
``update_id`` is the first 32 hex digits of the SHA-256 of that canonical body without
``update_id``: it names exactly one signed content (publishing again makes a new one, its
``created_ms`` differs).
Versions are dot-separated non-negative integers ("3", "1.2.10"), compared as integer tuples.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time

from edgekit.errors import BadInputError

FORMAT = "edgekit-update"
FORMAT_VERSION = 1
SIGN_TAG = b"edgekit-update-v1\x00"
CHUNK_SIZE = 64 * 1024
MAX_MANIFEST_BYTES = 1 << 20
MAX_BUNDLE_BYTES = 2 << 30
SHA256 = re.compile(r"^[0-9a-f]{64}$")
VERSION = re.compile(r"^(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){0,3}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
UNSIGNED = ("signature", "key_chain")


class UpdateFormatError(BadInputError):
    """An update manifest (or chunk) that is malformed: the message names the problem."""


def version_tuple(version: str) -> tuple:
    if not isinstance(version, str) or not VERSION.match(version):
        raise UpdateFormatError(f"version {version!r} is not dot-separated integers (e.g. '3' or '1.2.10')")
    return tuple(int(p) for p in version.split("."))


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signed_bytes(manifest: dict) -> bytes:
    return SIGN_TAG + canonical({k: v for k, v in manifest.items() if k not in UNSIGNED})


def chunk_list(data: bytes, chunk_size: int = CHUNK_SIZE) -> list:
    return [{"sha256": hashlib.sha256(data[i:i + chunk_size]).hexdigest(), "size": len(data[i:i + chunk_size])}
            for i in range(0, len(data), chunk_size)]


def make_manifest(bundle_bytes: bytes, *, model: str, version: str, target: str, engine: str, file_name: str,
                  private_key, key_id: str, key_chain=(), chunk_size: int = CHUNK_SIZE, clock=time.time) -> dict:
    """Build and sign the manifest of ``bundle_bytes`` (an ``.ekb`` archive)."""
    body = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model, "version": version,
            "target": target, "engine": engine,
            "bundle": {"sha256": hashlib.sha256(bundle_bytes).hexdigest(), "size": len(bundle_bytes),
                       "file": file_name},
            "chunk_size": chunk_size, "chunks": chunk_list(bundle_bytes, chunk_size),
            "created_ms": int(clock() * 1000), "key_id": key_id}
    body["update_id"] = hashlib.sha256(canonical(body)).hexdigest()[:32]
    manifest = dict(body)
    manifest["key_chain"] = list(key_chain)
    manifest["signature"] = base64.b64encode(private_key.sign(signed_bytes(body))).decode("ascii")
    check_manifest(manifest)
    return manifest


def encode_manifest(manifest: dict) -> bytes:
    return canonical(manifest)


def _field(m: dict, name: str, kind, what: str):
    value = m.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise UpdateFormatError(f"update manifest: {name!r} is missing or not {what}")
    return value


def check_manifest(m) -> dict:
    """The manifest's structure checked (not its signature: that is the trust store's)."""
    if not isinstance(m, dict):
        raise UpdateFormatError("update manifest is not a JSON object")
    if m.get("format") != FORMAT:
        raise UpdateFormatError(f"not an update manifest (format {m.get('format')!r}, expected {FORMAT!r})")
    fv = m.get("format_version")
    if fv != FORMAT_VERSION or isinstance(fv, bool):
        raise UpdateFormatError(f"update manifest format_version {fv!r} is not supported (this edgekit reads "
                                f"{FORMAT_VERSION})")
    for name in ("model", "target", "engine"):
        if not NAME.match(_field(m, name, str, "a name")):
            raise UpdateFormatError(f"update manifest: {name} {m[name]!r} is not a plain name")
    version_tuple(_field(m, "version", str, "a version string"))
    if not re.match(r"^[0-9a-f]{32}$", _field(m, "update_id", str, "a string")):
        raise UpdateFormatError("update manifest: update_id is not 32 hex digits")
    if not re.match(r"^[0-9a-f]{16}$", _field(m, "key_id", str, "a string")):
        raise UpdateFormatError("update manifest: key_id is not 16 hex digits")
    if _field(m, "created_ms", int, "an integer") < 0:
        raise UpdateFormatError("update manifest: created_ms is negative")
    sig = _field(m, "signature", str, "a base64 string")
    try:
        raw_sig = base64.b64decode(sig.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError):
        raise UpdateFormatError("update manifest: signature is not valid base64") from None
    if len(raw_sig) != 64:
        raise UpdateFormatError("update manifest: signature is not 64 bytes")
    # one spelling per signature: base64's unused low bits must be zero (no second valid form)
    if base64.b64encode(raw_sig).decode("ascii") != sig:
        raise UpdateFormatError("update manifest: signature is not in canonical base64")
    if not isinstance(m.get("key_chain", []), list):
        raise UpdateFormatError("update manifest: key_chain is not a list")
    bundle = _field(m, "bundle", dict, "an object")
    if not isinstance(bundle.get("sha256"), str) or not SHA256.match(bundle["sha256"]):
        raise UpdateFormatError("update manifest: bundle.sha256 is not 64 hex digits")
    size = bundle.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_BUNDLE_BYTES:
        raise UpdateFormatError(f"update manifest: bundle.size {size!r} is not 1..{MAX_BUNDLE_BYTES}")
    file_name = bundle.get("file")
    if not isinstance(file_name, str) or not NAME.match(file_name) or not file_name.endswith(".ekb"):
        raise UpdateFormatError("update manifest: bundle.file is not a plain '*.ekb' file name")
    csize = _field(m, "chunk_size", int, "an integer")
    if not 256 <= csize <= 16 << 20:
        raise UpdateFormatError(f"update manifest: chunk_size {csize} is not 256 bytes..16 MiB")
    chunks = _field(m, "chunks", list, "a list")
    if len(chunks) != -(-size // csize):
        raise UpdateFormatError(f"update manifest: {len(chunks)} chunks do not cover {size} bytes in "
                                f"chunks of {csize}")
    for i, c in enumerate(chunks):
        want = min(csize, size - i * csize)
        if not isinstance(c, dict) or not isinstance(c.get("sha256"), str) or not SHA256.match(c["sha256"]):
            raise UpdateFormatError(f"update manifest: chunk {i} has no sha256 of 64 hex digits")
        if c.get("size") != want or isinstance(c.get("size"), bool):
            raise UpdateFormatError(f"update manifest: chunk {i} size {c.get('size')!r}, expected {want}")
    body = {k: v for k, v in m.items() if k not in UNSIGNED and k != "update_id"}
    if hashlib.sha256(canonical(body)).hexdigest()[:32] != m["update_id"]:
        raise UpdateFormatError("update manifest: update_id does not match its contents")
    return m


def decode_manifest(data: bytes) -> dict:
    """Parse and check an update manifest; any malformed input raises UpdateFormatError."""
    if not isinstance(data, (bytes, bytearray)):
        raise UpdateFormatError("update manifest is not bytes")
    if len(data) > MAX_MANIFEST_BYTES:
        raise UpdateFormatError(f"update manifest is {len(data)} bytes, over the {MAX_MANIFEST_BYTES} limit")
    try:
        m = json.loads(bytes(data).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise UpdateFormatError(f"update manifest is not UTF-8 JSON ({type(exc).__name__})") from None
    return check_manifest(m)


def check_chunk(manifest: dict, index: int, data: bytes) -> bytes:
    """A fetched chunk checked against the manifest: size (truncated or too long) and SHA-256."""
    chunks = manifest["chunks"]
    if not isinstance(index, int) or not 0 <= index < len(chunks):
        raise UpdateFormatError(f"chunk index {index!r} is outside 0..{len(chunks) - 1}")
    want = chunks[index]
    if not isinstance(data, (bytes, bytearray)):
        raise UpdateFormatError(f"chunk {index} is not bytes")
    if len(data) != want["size"]:
        raise UpdateFormatError(f"chunk {index} is {len(data)} bytes, expected {want['size']} (truncated or padded)")
    if hashlib.sha256(data).hexdigest() != want["sha256"]:
        raise UpdateFormatError(f"chunk {index}: sha256 mismatch (corrupted or substituted)")
    return bytes(data)
