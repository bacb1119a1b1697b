"""Sneakernet: export to a folder, the real hub import (edgekit.hub.ingest.import_file)
writes ack files beside the batches, and the device reads them back. Custody: records
stay queued until their ack comes back (or go at export with forget=True); exporting or
importing twice changes nothing at the hub."""

from __future__ import annotations

import os

import pytest

from edgekit.errors import BadInputError
from edgekit.sync.forwarder import ForwarderState, state_path_for
from edgekit.sync.transports.files import FileTransport
from edgekit.sync.wire import decode_batch


def fill(queue, n: int) -> dict:
    return {queue.enqueue("captures" if i % 5 == 0 else "results", os.urandom(40).hex().encode(),
                          priority=i % 4): i for i in range(n)}


@pytest.fixture
def hub(tmp_path):
    from edgekit.hub.db import Database
    from edgekit.hub.store import HubStore

    db = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    db.apply_schemas()
    yield HubStore(db)
    db.close()


def hub_import(store, folder):
    from edgekit.hub.ingest import batch_files, import_file

    return [import_file(store, p) for p in batch_files([folder])]


def export(queue, folder, **kw):
    state = ForwarderState(state_path_for(queue.path))
    try:
        return FileTransport(folder, "dev-f").export(queue, next_seq=state.next_seq, **kw)
    finally:
        state.close()


def test_round_trip_through_the_hub_import(sync_queue, hub, tmp_path):
    ids = fill(sync_queue, 1500)
    stick = tmp_path / "usb"
    result = export(sync_queue, stick, batch_bytes=16384)
    assert result["records"] == 1500 and len(result["files"]) > 1 and result["forgotten"] == 0
    names = sorted(p.name for p in stick.iterdir())
    assert names == sorted(p.name for p in result["files"]) and all(n.startswith("dev-f-") for n in names)
    assert all(n.endswith(".ekbatch") for n in names)      # no .part left behind
    assert all(p.stat().st_size <= 16384 for p in result["files"])
    # Every record is in the files exactly once, most urgent first across the files.
    decoded = [decode_batch(p.read_bytes()) for p in sorted(result["files"], key=lambda p: int(p.stem.split("-")[-1]))]
    in_files = [r for b in decoded for r in b.records]
    assert sorted(r.id for r in in_files) == sorted(ids)
    assert [r.priority for r in in_files] == sorted(r.priority for r in in_files)
    assert sync_queue.stats()["records"] == 1500               # custody has not passed yet

    imported = hub_import(hub, stick)
    assert sum(i.new for i in imported) == 1500
    assert sum(i.new for i in hub_import(hub, stick)) == 0      # importing the same files twice: nothing new
    # A second export before the acks came back carries the same records again: harmless.
    export(sync_queue, tmp_path / "usb2")
    assert sum(i.new for i in hub_import(hub, tmp_path / "usb2")) == 0
    assert hub.record_count(device="dev-f") == 1500

    done = FileTransport(stick, "dev-f").import_acks(sync_queue)
    assert done["deleted"] == 1500 and done["ack_files"] == len(result["files"])
    assert sync_queue.stats()["records"] == 0
    assert list(stick.iterdir()) == []                          # acked batches and their acks removed
    assert FileTransport(tmp_path / "usb2", "dev-f").import_acks(sync_queue)["deleted"] == 0


def test_forget_deletes_at_export_and_max_bytes_takes_the_most_urgent(sync_queue, hub, tmp_path):
    ids = fill(sync_queue, 200)
    result = export(sync_queue, tmp_path / "usb", max_bytes=3000, forget=True)
    assert 0 < result["records"] < 200 and result["forgotten"] == result["records"]
    assert sync_queue.stats()["records"] == 200 - result["records"]
    exported = [r for p in result["files"] for r in decode_batch(p.read_bytes()).records]
    assert {r.priority for r in exported} == {0}                # the budget went to priority 0 first
    assert all(ids[r.id] % 4 == 0 for r in exported)
    assert sum(i.new for i in hub_import(hub, tmp_path / "usb")) == result["records"]


def test_other_devices_acks_are_left_alone_and_a_bad_ack_file_changes_nothing(sync_queue, tmp_path):
    from edgekit.sync.wire import encode_ack

    ids = list(fill(sync_queue, 5))
    stick = tmp_path / "usb"
    stick.mkdir()
    (stick / "dev-other-1.ekack").write_bytes(encode_ack("dev-other", 1, ids))
    (stick / "dev-f-1.ekack").write_bytes(encode_ack("dev-f", 1, ids[:2]))
    (stick / "dev-f-2.ekack").write_bytes(b"EKSA garbage")
    with pytest.raises(BadInputError, match="dev-f-2.ekack"):
        FileTransport(stick, "dev-f").import_acks(sync_queue)
    assert sync_queue.stats()["records"] == 5
    (stick / "dev-f-2.ekack").unlink()
    assert FileTransport(stick, "dev-f").import_acks(sync_queue)["deleted"] == 2
    assert sorted(p.name for p in stick.iterdir()) == ["dev-other-1.ekack"]
    assert sync_queue.stats()["records"] == 3


def test_an_export_never_writes_over_an_earlier_file(sync_queue, tmp_path):
    fill(sync_queue, 3)
    stick = tmp_path / "usb"
    stick.mkdir()
    (stick / "dev-f-1.ekbatch").write_bytes(b"an earlier export")
    result = export(sync_queue, stick)
    assert (stick / "dev-f-1.ekbatch").read_bytes() == b"an earlier export"
    assert [p.name for p in result["files"]] == ["dev-f-2.ekbatch"]


def test_an_export_folder_that_is_a_file_is_refused(sync_queue, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="not a folder"):
        FileTransport(tmp_path / "file", "dev-f")
