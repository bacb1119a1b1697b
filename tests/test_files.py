"""write_atomic, the one way edgekit writes an output file (IR, ONNX, .tflite, CLI outputs,
compress checkpoints): all of the new file or all of the old one, readable by others."""

from __future__ import annotations

import os
import stat

import pytest

from edgekit.files import write_atomic


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_writes_the_file_and_its_folders(tmp_path):
    dst = tmp_path / "a" / "b" / "out.bin"
    assert write_atomic(dst, lambda f: f.write(b"\x00payload")) == dst
    assert dst.read_bytes() == b"\x00payload"
    assert _names(dst.parent) == ["out.bin"]  # no temporary file left beside it


def test_output_is_an_ordinary_file_whatever_the_temporary_was(tmp_path):
    dst = tmp_path / "model.onnx"
    write_atomic(dst, lambda f: f.write(b"x"))
    assert stat.S_IMODE(os.stat(dst).st_mode) == 0o644


def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    dst = tmp_path / "report.json"
    dst.write_bytes(b"old")

    def half_then_fail(f):
        f.write(b"new but unfinished")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(dst, half_then_fail)
    assert dst.read_bytes() == b"old"
    assert _names(tmp_path) == ["report.json"]


def test_interrupt_leaves_no_file_where_there_was_none(tmp_path):
    def interrupted(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(tmp_path / "model.tflite", interrupted)
    assert _names(tmp_path) == []


def test_unwritable_folder_raises_oserror(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        write_atomic(blocker / "out.bin", lambda f: f.write(b"x"))


def test_an_output_folder_is_replaced_only_when_edgekit_wrote_it(tmp_path):
    import json

    import pytest

    from edgekit.errors import BadInputError
    from edgekit.files import check_replaceable_folder

    def check(d):
        check_replaceable_folder(d, "manifest.json", "edgekit-thing", "edgekit thing")

    check(tmp_path / "new")                         # absent: fine
    (tmp_path / "empty").mkdir()
    check(tmp_path / "empty")                       # empty: fine
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "manifest.json").write_text(json.dumps({"format": "edgekit-thing"}))
    check(earlier)                                  # an earlier output of the same kind: fine
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInputError, match="exists and is not a folder"):
        check(tmp_path / "afile")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="holds no edgekit thing"):
        check(other)
    (other / "manifest.json").write_text("[1, 2]")  # JSON, but not an edgekit manifest
    with pytest.raises(BadInputError, match="holds no edgekit thing"):
        check(other)
    (other / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BadInputError, match="holds no edgekit thing"):
        check(other)
