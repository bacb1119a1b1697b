"""The bundle format: what the writer puts in a folder and an .ekb archive, checked with
hashlib and zipfile directly, and every way the reader refuses a bundle."""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pytest

from edgekit.bundle import BundleError, read_bundle, verify
from edgekit.bundle.bundle_format import FORMAT_VERSION
from edgekit.bundle.bundle_writer import write_bundle
from edgekit.errors import BadInputError

PAYLOAD = {"model.tflite": b"TFL3" + bytes(range(200)), "sub/extra.bin": b"\x00" * 33}


def manifest(**changes) -> dict:
    m = {"format": "edgekit-bundle", "format_version": FORMAT_VERSION, "target": "rpi4", "engine": "litert",
         "backend": "litert", "model": {"name": "m", "version": "3"},
         "inputs": [{"name": "x", "shape": [1, 4], "dtype": "int8"}],
         "outputs": [{"name": "y", "shape": [1, 2], "dtype": "int8"}],
         "payload": {"model": "model.tflite"}, "signature": None}
    m.update(changes)
    return m


@pytest.fixture(params=["folder", "ekb"])
def bundle_path(request, tmp_path):
    out = tmp_path / ("b.ekb" if request.param == "ekb" else "b")
    write_bundle(out, manifest(), PAYLOAD)
    return out


def _rewrite_archive(path, edit):
    """Rewrite an .ekb member by member through ``edit(name, data) -> [(name, data), ...]``."""
    with zipfile.ZipFile(path) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members:
            for n, d in edit(name, data):
                zf.writestr(n, d)


def _manifest_of(path) -> dict:
    if path.is_dir():
        return json.loads((path / "manifest.json").read_text())
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("manifest.json"))


def _set_manifest(path, m: dict):
    data = json.dumps(m).encode()
    if path.is_dir():
        (path / "manifest.json").write_bytes(data)
    else:
        _rewrite_archive(path, lambda n, d: [(n, data if n == "manifest.json" else d)])


def test_written_bundle_lists_every_file_with_its_sha256(bundle_path):
    m = _manifest_of(bundle_path)
    assert m["files"] == {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                          for name, data in PAYLOAD.items()}
    assert m["signature"] is None and m["format_version"] == "1.0"
    b = verify(bundle_path, target="rpi4", engine="litert")
    assert b.files == sorted(PAYLOAD) and b.read("sub/extra.bin") == PAYLOAD["sub/extra.bin"]
    assert b.read(b.payload("model")) == PAYLOAD["model.tflite"]


def test_archive_holds_the_manifest_first_and_nothing_else(tmp_path):
    out = tmp_path / "b.ekb"
    write_bundle(out, manifest(), PAYLOAD)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert names[0] == "manifest.json" and sorted(names[1:]) == sorted(PAYLOAD)
    # the same contents give the same bytes
    write_bundle(tmp_path / "c.ekb", manifest(), PAYLOAD)
    assert out.read_bytes() == (tmp_path / "c.ekb").read_bytes()


def test_a_changed_payload_byte_is_a_hash_mismatch(bundle_path):
    if bundle_path.is_dir():
        p = bundle_path / "model.tflite"
        data = bytearray(p.read_bytes())
        data[10] ^= 1
        p.write_bytes(bytes(data))
    else:
        _rewrite_archive(bundle_path, lambda n, d: [(n, d[:10] + bytes([d[10] ^ 1]) + d[11:]
                                                     if n == "model.tflite" else d)])
    with pytest.raises(BundleError, match="hash mismatch in 'model.tflite'"):
        verify(bundle_path)


@pytest.mark.parametrize("field, value, message", [
    ("target", "x86_64", "is for target 'x86_64', not 'rpi4'"),
    ("engine", "onnxruntime", "is for engine 'onnxruntime', not 'litert'"),
])
def test_another_target_or_engine_is_refused(bundle_path, field, value, message):
    m = _manifest_of(bundle_path)
    m[field] = value
    _set_manifest(bundle_path, m)
    read_bundle(bundle_path)  # a well-formed bundle, just not for this device
    with pytest.raises(BundleError, match=message):
        verify(bundle_path, target="rpi4", engine="litert")


@pytest.mark.parametrize("version, message", [("2.0", "format version 2.0 is not supported"),
                                              ("one", "is not MAJOR.MINOR")])
def test_another_format_version_is_refused(bundle_path, version, message):
    m = _manifest_of(bundle_path)
    m["format_version"] = version
    _set_manifest(bundle_path, m)
    with pytest.raises(BundleError, match=message):
        verify(bundle_path)


def test_a_newer_minor_version_is_read(bundle_path):
    m = _manifest_of(bundle_path)
    m["format_version"] = "1.7"
    m["a_field_from_the_future"] = {"x": 1}
    _set_manifest(bundle_path, m)
    assert verify(bundle_path).manifest["a_field_from_the_future"] == {"x": 1}


@pytest.mark.parametrize("member", ["../evil.bin", "/etc/evil.bin", "sub/../../evil.bin", "a\\..\\b", ".hidden"])
def test_archive_member_outside_the_bundle_is_refused(tmp_path, member):
    out = tmp_path / "b.ekb"
    write_bundle(out, manifest(), PAYLOAD)
    _rewrite_archive(out, lambda n, d: [(n, d)] + ([(member, b"x")] if n == "model.tflite" else []))
    with pytest.raises(BundleError, match="path traversal"):
        verify(out)


def test_manifest_naming_a_path_outside_is_refused(tmp_path):
    with pytest.raises(BundleError, match="path traversal"):
        write_bundle(tmp_path / "b", manifest(), {"../x": b"1", "model.tflite": b"2"})
    assert not (tmp_path / "b").exists() and not (tmp_path / "x").exists()


def test_missing_and_extra_files_are_refused(tmp_path):
    folder = tmp_path / "b"
    write_bundle(folder, manifest(), PAYLOAD)
    (folder / "notes.txt").write_text("hello")
    with pytest.raises(BundleError, match=r"extra file\(s\) manifest.json does not list: notes.txt"):
        verify(folder)
    (folder / "notes.txt").unlink()
    (folder / "sub" / "extra.bin").unlink()
    with pytest.raises(BundleError, match=r"missing file\(s\) listed in manifest.json: sub/extra.bin"):
        verify(folder)
    ekb = tmp_path / "b.ekb"
    write_bundle(ekb, manifest(), PAYLOAD)
    _rewrite_archive(ekb, lambda n, d: [] if n == "sub/extra.bin" else [(n, d)])
    with pytest.raises(BundleError, match="missing file"):
        verify(ekb)


def test_oversize_member_is_refused_before_reading(tmp_path):
    ekb = tmp_path / "b.ekb"
    write_bundle(ekb, manifest(), PAYLOAD)
    big = b"\x00" * (1 << 20)   # 1 MiB of zeros deflates to ~1 KiB: the declared size gives it away
    _rewrite_archive(ekb, lambda n, d: [(n, big if n == "model.tflite" else d)])
    with pytest.raises(BundleError, match="oversize member"):
        verify(ekb)


def test_manifest_must_come_first_in_an_archive(tmp_path):
    ekb = tmp_path / "b.ekb"
    write_bundle(ekb, manifest(), PAYLOAD)
    with zipfile.ZipFile(ekb) as zf:
        members = [(i.filename, zf.read(i)) for i in zf.infolist()]
    with zipfile.ZipFile(ekb, "w") as zf:
        for name, data in members[1:] + members[:1]:
            zf.writestr(name, data)
    with pytest.raises(BundleError, match="first member of an .ekb must be manifest.json"):
        verify(ekb)


def test_not_a_bundle(tmp_path):
    (tmp_path / "x.ekb").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a readable .ekb"):
        verify(tmp_path / "x.ekb")
    with pytest.raises(BundleError, match="no manifest.json"):
        verify(tmp_path)
    with pytest.raises(BundleError, match="not found"):
        verify(tmp_path / "absent")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "manifest.json").write_text(json.dumps({"format": "edgekit-c-model"}))
    with pytest.raises(BundleError, match="not an edgekit bundle"):
        verify(tmp_path / "m")


def test_writing_replaces_a_bundle_but_never_other_files(tmp_path):
    out = tmp_path / "b"
    write_bundle(out, manifest(), PAYLOAD)
    write_bundle(out, manifest(target="rpi5"), {"model.tflite": b"new"})
    assert verify(out).target == "rpi5" and sorted(p.name for p in out.iterdir()) == ["manifest.json",
                                                                                       "model.tflite"]
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "precious.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not an edgekit bundle"):
        write_bundle(keep, manifest(), PAYLOAD)
    assert [p.name for p in keep.iterdir()] == ["precious.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "keep"]   # no temporary left behind


def test_golden_vectors_round_trip(tmp_path):
    import io

    ins = [np.arange(8, dtype=np.int8).reshape(2, 1, 4)]
    outs = [np.array([[[1, 2]], [[3, 4]]], np.int8)]
    buf = io.BytesIO()
    np.savez(buf, **{"in.0": ins[0], "out.0": outs[0]})
    m = manifest(golden={"file": "golden.npz", "count": 2, "int_steps": 0})
    b = write_bundle(tmp_path / "g.ekb", m, {**PAYLOAD, "golden.npz": buf.getvalue()})
    got_in, got_out = b.golden()
    assert np.array_equal(got_in[0], ins[0]) and np.array_equal(got_out[0], outs[0])
