"""Writing bundles (docs/bundle-format.md): a manifest and payload files -> a bundle
folder, or an ``.ekb`` archive when the output name ends in ``.ekb``.

    write_bundle("out/kws.ekb", manifest, {"model.tflite": data, "golden.npz": golden})

The writer fills in the manifest's ``files`` (sha256 and size of every payload file),
writes everything beside the output and renames it into place, so a failure or a kill
leaves the old output or none. Then it reads the result back and verifies it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from edgekit.bundle.bundle_format import (
    ARCHIVE_SUFFIX,
    MANIFEST,
    BundleError,
    check_manifest,
    check_member_path,
    sha256_hex,
)
from edgekit.bundle.bundle_reader import read_bundle
from edgekit.errors import BadInputError
from edgekit.files import write_atomic

# A fixed member time: the same bundle contents give the same .ekb bytes.
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def manifest_bytes(manifest: dict) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=False) + "\n").encode("utf-8")


def write_bundle(out, manifest: dict, files: dict):
    """Write ``files`` ({relative path: bytes}) and ``manifest`` (without ``files``: this
    fills it in) as a bundle at ``out``: an ``.ekb`` archive when the name ends in .ekb,
    else a folder. An existing output is replaced only when it is a bundle (or an empty
    folder). Returns the verified ``Bundle``."""
    out = Path(out)
    manifest = dict(manifest)
    manifest["files"] = {name: {"sha256": sha256_hex(data), "size": len(data)}
                         for name, data in sorted(files.items(), key=lambda kv: check_member_path(kv[0]))}
    check_manifest(manifest)
    body = manifest_bytes(manifest)
    if out.suffix.lower() == ARCHIVE_SUFFIX:
        _check_replaceable(out, folder=False)

        def write(f):
            with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as zf:
                _add(zf, MANIFEST, body)        # first: a reader finds it without scanning
                for name in manifest["files"]:
                    _add(zf, name, files[name])
        write_atomic(out, write)
    else:
        _check_replaceable(out, folder=True)
        _write_folder(out, body, files)
    return read_bundle(out)


def _add(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    zf.writestr(info, data)


def check_bundle_output(out) -> Path:
    """Refuse, before any work, an output that exists and is not a bundle (exit code 2)."""
    out = Path(out)
    _check_replaceable(out, folder=out.suffix.lower() != ARCHIVE_SUFFIX)
    return out


def _check_replaceable(out: Path, folder: bool) -> None:
    if not out.exists():
        return
    if folder and not out.is_dir():
        raise BadInputError(f"output {out} exists and is a file; give a folder or a name ending in .ekb")
    if not folder and out.is_dir():
        raise BadInputError(f"output {out} is a folder; an .ekb archive is a file")
    if folder and not any(out.iterdir()):
        return
    try:
        read_bundle(out)
    except BundleError:
        if folder and (out / MANIFEST).is_file() and _is_bundle_manifest(out / MANIFEST):
            return  # an earlier bundle, now damaged: replacing it is what the user wants
        raise BadInputError(f"output {out} exists and is not an edgekit bundle: choose another --out") from None


def _is_bundle_manifest(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("format") == "edgekit-bundle"
    except (OSError, ValueError, AttributeError):
        return False


def _write_folder(out: Path, manifest: bytes, files: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        for name, data in files.items():
            p = stage / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        (stage / MANIFEST).write_bytes(manifest)
        for p in stage.rglob("*"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(stage, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        os.replace(stage, out)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
        if old is not None and old.exists():
            if out.exists():
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(old, out)   # the new one did not land: put the old one back
