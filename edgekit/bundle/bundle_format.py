"""The bundle format (docs/bundle-format.md): what a bundle's manifest holds and the
rules every reader and writer shares.

A bundle is a folder holding ``manifest.json`` and the payload files the manifest lists
with their SHA-256, or the same files in one ``.ekb`` archive (a zip whose first member
is the manifest). Standard library only, and Python 3.8 syntax: the device side reads
bundles on the system Pythons of old board images (docs/runtime.md).
"""

from __future__ import annotations

import hashlib
import re

from edgekit.errors import ModelFormatError

FORMAT = "edgekit-bundle"
FORMAT_MAJOR = 1          # a reader refuses another major version
FORMAT_MINOR = 0          # a reader of the same major ignores fields it does not know
FORMAT_VERSION = "%d.%d" % (FORMAT_MAJOR, FORMAT_MINOR)
MANIFEST = "manifest.json"
ARCHIVE_SUFFIX = ".ekb"
GOLDEN = "golden.npz"

MAX_MANIFEST_BYTES = 4 << 20        # a manifest is a few KiB; more is not a manifest
MAX_FILE_BYTES = 2 << 30            # one payload file
MAX_FILES = 4096

# Payload paths: relative, "/"-separated, no "..", no leading dot, no backslash or colon.
_PATH_PART = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
REQUIRED = ("format", "format_version", "target", "engine", "backend", "model", "inputs", "outputs",
            "payload", "files", "signature")


class BundleError(ModelFormatError):
    """A bundle is corrupt, tampered with, or not for this target, engine or reader
    (exit code 2: it names which check failed)."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_member_path(name: str) -> str:
    """A payload path as the manifest and the archive spell it; raises BundleError for
    anything that could land outside the bundle (absolute, "..", backslashes, drive
    letters, hidden names)."""
    parts = name.split("/")
    if not name or any(not _PATH_PART.match(p) for p in parts):
        raise BundleError(f"bundle member {name!r}: not a plain relative path inside the bundle "
                          "(path traversal, absolute or hidden names are refused)")
    return name


def parse_version(value) -> tuple:
    m = re.match(r"^(\d+)\.(\d+)$", str(value))
    if not m:
        raise BundleError(f"bundle format version {value!r} is not MAJOR.MINOR")
    return int(m.group(1)), int(m.group(2))


def check_manifest(manifest) -> dict:
    """The structural checks every reader makes before trusting a manifest: the format
    and its major version, the required fields, and a well-formed file list whose
    entries include the payload."""
    if not isinstance(manifest, dict):
        raise BundleError("bundle manifest.json is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"manifest.json format is {manifest.get('format')!r}, not {FORMAT!r}: "
                          "not an edgekit bundle")
    major, _ = parse_version(manifest.get("format_version"))
    if major != FORMAT_MAJOR:
        raise BundleError(f"bundle format version {manifest.get('format_version')} is not supported: "
                          f"this edgekit reads format {FORMAT_MAJOR}.x")
    missing = [k for k in REQUIRED if k not in manifest]
    if missing:
        raise BundleError(f"bundle manifest.json lacks the field(s) {', '.join(missing)}")
    files = manifest["files"]
    if not isinstance(files, dict) or not files or len(files) > MAX_FILES:
        raise BundleError(f"bundle manifest.json 'files' must map 1 to {MAX_FILES} payload paths to "
                          "their sha256 and size")
    for name, entry in files.items():
        check_member_path(name)
        if name == MANIFEST:
            raise BundleError("bundle manifest.json lists itself as a payload file")
        if (not isinstance(entry, dict) or not _HEX64.match(str(entry.get("sha256", "")))
                or not isinstance(entry.get("size"), int) or not 0 <= entry["size"] <= MAX_FILE_BYTES):
            raise BundleError(f"bundle manifest.json: the entry of {name!r} needs a sha256 (64 hex digits) "
                              f"and a size of at most {MAX_FILE_BYTES} bytes")
    payload = manifest["payload"]
    if not isinstance(payload, dict) or not all(isinstance(v, str) for v in payload.values()):
        raise BundleError("bundle manifest.json 'payload' must map roles to file names")
    for role, name in payload.items():
        if name not in files:
            raise BundleError(f"bundle payload {role!r} names {name!r}, which 'files' does not list")
    for key in ("inputs", "outputs"):
        specs = manifest[key]
        if not isinstance(specs, list) or not specs or not all(
                isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("shape"), list)
                and isinstance(s.get("dtype"), str) for s in specs):
            raise BundleError(f"bundle manifest.json '{key}' must list tensors with name, shape and dtype")
    return manifest
