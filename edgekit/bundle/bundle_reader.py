"""Reading and verifying bundles (docs/bundle-format.md): a folder with manifest.json or
an ``.ekb`` archive.

    bundle = verify("kws.ekb", target="rpi4", engine="litert")
    bundle.read(bundle.payload("model"))        # bytes, checked against the manifest's sha256

Reading is all or nothing: the manifest's structure and format version, the exact set
of member files (none missing, none extra, no path outside the bundle, no member over
its declared size) and every SHA-256 are checked before a ``Bundle`` is returned.
Standard library only (numpy for the golden vectors, imported when they are asked
for), Python 3.8 syntax: this is what devices run.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

from edgekit.bundle.bundle_format import (
    ARCHIVE_SUFFIX,
    MANIFEST,
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_MANIFEST_BYTES,
    BundleError,
    check_manifest,
    check_member_path,
    sha256_hex,
)


class Bundle:
    """A bundle read into memory and checked: its manifest and its payload files."""

    def __init__(self, path: Path, manifest: dict, files: dict):
        self.path = path
        self.manifest = manifest
        self._files = files

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def engine(self) -> str:
        return self.manifest["engine"]

    @property
    def backend(self) -> str:
        return self.manifest["backend"]

    @property
    def files(self) -> list:
        return sorted(self._files)

    def payload(self, role: str) -> str:
        """The file name of a payload role (``model`` is the engine's model file)."""
        try:
            return self.manifest["payload"][role]
        except KeyError:
            raise BundleError(f"bundle {self.path} has no {role!r} payload (it has "
                              f"{', '.join(sorted(self.manifest['payload'])) or 'none'})") from None

    def read(self, name: str) -> bytes:
        try:
            return self._files[name]
        except KeyError:
            raise BundleError(f"bundle {self.path} has no file {name!r}") from None

    def golden(self):
        """The golden vectors the compile stored, as (inputs, outputs): two lists, one
        array per tensor in manifest order, each with a leading sample axis; None when the
        bundle holds none."""
        info = self.manifest.get("golden")
        if not info:
            return None
        import numpy as np

        try:
            with np.load(io.BytesIO(self.read(info["file"])), allow_pickle=False) as z:
                ins = [z["in.%d" % i] for i in range(len(self.manifest["inputs"]))]
                outs = [z["out.%d" % i] for i in range(len(self.manifest["outputs"]))]
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
            raise BundleError(f"bundle {self.path}: golden vectors {info.get('file')!r} are unreadable "
                              f"({exc})") from None
        return ins, outs


def is_bundle_path(path) -> bool:
    """A folder holding manifest.json, or a file named ``*.ekb``: what ``edgekit run`` and
    ``bench`` treat as a bundle rather than a model file."""
    p = Path(path)
    return (p.is_dir() and (p / MANIFEST).is_file()) or p.suffix.lower() == ARCHIVE_SUFFIX


def read_bundle(path) -> Bundle:
    """Read a bundle folder or ``.ekb`` archive and check its structure, member set,
    sizes and hashes (not its target or engine: that is ``verify``)."""
    p = Path(path)
    if p.is_dir():
        manifest, files = _read_folder(p)
    elif p.is_file():
        manifest, files = _read_archive(p)
    else:
        raise BundleError(f"bundle not found: {p}")
    for name, data in files.items():
        entry = manifest["files"][name]
        if len(data) != entry["size"] or sha256_hex(data) != entry["sha256"]:
            raise BundleError(f"bundle {p}: hash mismatch in {name!r} (its sha256 or size differs from "
                              "manifest.json): the file was changed or corrupted")
    return Bundle(p, manifest, files)


def verify(bundle, target: str | None = None, engine: str | None = None) -> Bundle:
    """``bundle`` (a path or a ``Bundle``) read and checked, and refused unless it is for
    ``target`` and ``engine`` when they are given. Raises ``BundleError`` (exit code 2)
    saying which check failed: format version, missing/extra/oversize files, path
    traversal, hash mismatch, target, engine."""
    b = bundle if isinstance(bundle, Bundle) else read_bundle(bundle)
    if target is not None and b.target != target:
        raise BundleError(f"bundle {b.path} is for target {b.target!r}, not {target!r}")
    if engine is not None and b.engine != engine:
        raise BundleError(f"bundle {b.path} is for engine {b.engine!r}, not {engine!r}")
    return b


def _parse_manifest(data: bytes, where: Path) -> dict:
    try:
        manifest = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"bundle {where}: manifest.json is not valid JSON ({exc})") from None
    return check_manifest(manifest)


def _check_members(where: Path, present, manifest: dict) -> None:
    listed = set(manifest["files"])
    missing = sorted(listed - set(present))
    extra = sorted(set(present) - listed)
    if missing:
        raise BundleError(f"bundle {where}: missing file(s) listed in manifest.json: {', '.join(missing)}")
    if extra:
        raise BundleError(f"bundle {where}: extra file(s) manifest.json does not list: {', '.join(extra)}")


def _read_folder(root: Path):
    mf = root / MANIFEST
    if not mf.is_file():
        raise BundleError(f"{root} is not a bundle: it has no manifest.json")
    if mf.stat().st_size > MAX_MANIFEST_BYTES:
        raise BundleError(f"bundle {root}: manifest.json is over {MAX_MANIFEST_BYTES} bytes")
    manifest = _parse_manifest(mf.read_bytes(), root)
    present = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                raise BundleError(f"bundle {root}: {d!r} is a symbolic link; a bundle holds plain files")
        for f in filenames:
            rel = Path(dirpath, f).relative_to(root).as_posix()
            if rel == MANIFEST:
                continue
            if os.path.islink(os.path.join(dirpath, f)):
                raise BundleError(f"bundle {root}: {rel!r} is a symbolic link; a bundle holds plain files")
            present.append(rel)
            if len(present) > MAX_FILES:
                raise BundleError(f"bundle {root}: more than {MAX_FILES} files")
    _check_members(root, present, manifest)
    files = {}
    for name in present:
        size = (root / name).stat().st_size
        if size > manifest["files"][name]["size"]:
            raise BundleError(f"bundle {root}: {name!r} is {size} bytes, more than the "
                              f"{manifest['files'][name]['size']} manifest.json declares")
        files[name] = (root / name).read_bytes()
    return manifest, files


def _read_archive(path: Path):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BundleError(f"bundle {path}: not a readable .ekb archive ({exc})") from None
    with zf:
        infos = zf.infolist()
        if not infos or infos[0].filename != MANIFEST:
            raise BundleError(f"bundle {path}: the first member of an .ekb must be manifest.json")
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise BundleError(f"bundle {path}: an .ekb member appears twice")
        if len(infos) > MAX_FILES + 1:
            raise BundleError(f"bundle {path}: more than {MAX_FILES} members")
        for name in names[1:]:
            check_member_path(name)
        manifest = _parse_manifest(_read_member(zf, infos[0], MAX_MANIFEST_BYTES, path), path)
        _check_members(path, names[1:], manifest)
        files = {}
        for info in infos[1:]:
            limit = manifest["files"][info.filename]["size"]
            files[info.filename] = _read_member(zf, info, min(limit, MAX_FILE_BYTES), path)
    return manifest, files


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, where: Path) -> bytes:
    # The declared size is checked first and the read is capped as well: a member whose
    # header lies about its size (a zip bomb) stops at limit + 1 bytes.
    if info.file_size > limit:
        raise BundleError(f"bundle {where}: member {info.filename!r} is {info.file_size} bytes, over the "
                          f"{limit} allowed (oversize member)")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError) as exc:
        raise BundleError(f"bundle {where}: member {info.filename!r} is unreadable ({exc})") from None
    if len(data) > limit:
        raise BundleError(f"bundle {where}: member {info.filename!r} holds more than its declared size "
                          "(oversize member)")
    return data
