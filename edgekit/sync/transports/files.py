"""File transport for sneakernet: batches written to a folder (a USB stick), and the
hub's ack files read back from it.

Custody rule (docs/sync.md): exporting hands nothing over. Every export writes all the
records still queued (up to ``max_bytes``), each batch as ``<device>-<seq>.ekbatch``
(written to ``.part``, fsynced, renamed, folder fsynced), and the records stay in the
queue until the hub's ack for them comes back: ``edgekit hub import`` writes
``<device>-<seq>.ekack`` beside each batch it stored, and ``import_acks`` (``edgekit sync
import-acks DIR``) deletes the records those acks name, then removes the acked batch and
ack files of this device. A lost or wiped stick loses nothing; a record exported twice
is stored once (the hub dedupes by record id). ``forget=True`` is the one-way variant:
the records are deleted as soon as their batch files are on the medium (fsynced).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from edgekit.errors import BadInputError
from edgekit.sync.transports import check_device_id

BATCH_SUFFIX = ".ekbatch"
ACK_SUFFIX = ".ekack"
PART_SUFFIX = ".part"
# Files have no link budget, but the hub reads a batch in one piece: 1 MiB is plenty.
DEFAULT_FILE_BATCH_BYTES = 1 << 20
_ALL = 1 << 62


def _fsync_folder(folder: Path) -> None:
    fd = os.open(str(folder), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def split_into_batches(device_id: str, records: list, limit: int, next_seq, counters=None,
                       zstd_dict=None) -> list:
    """Encode ``records`` (in order) as batches of at most ``limit`` bytes each (a single
    record larger than that travels alone): [(seq, records, batch bytes)]. ``next_seq()``
    gives each batch its number."""
    from edgekit.sync.wire import encode_batch

    out, start, guess = [], 0, 4 * limit  # raw bytes per batch: zstd shrinks results ~4x or more
    while start < len(records):
        end, raw = start, 0
        while end < len(records) and (end == start or raw + len(records[end].payload) <= guess):
            raw += len(records[end].payload)
            end += 1
        seq = next_seq()
        while True:
            data = encode_batch(device_id, seq, records[start:end], counters=counters, zstd_dict=zstd_dict)
            if len(data) <= limit or end - start == 1:
                break
            end = start + max(1, int((end - start) * limit / len(data) * 0.95))
        out.append((seq, records[start:end], data))
        guess = max(limit, int(raw * limit / max(1, len(data)))) if end - start > 1 else guess
        start = end
    return out


class FileTransport:
    """Exports ``device_id``'s queued records as batch files into ``folder`` and reads the
    hub's ack files back. One-way, so not a Transport: its acks come back by hand."""

    name = "files"

    def __init__(self, folder, device_id: str):
        check_device_id(device_id)
        self.folder, self.device_id = Path(folder), device_id
        if self.folder.exists() and not self.folder.is_dir():
            raise BadInputError(f"export folder {self.folder} exists and is not a folder")

    def batch_path(self, seq: int) -> Path:
        return self.folder / f"{self.device_id}-{seq}{BATCH_SUFFIX}"

    def _write(self, seq_source, seq: int, data: bytes) -> Path:
        final = self.batch_path(seq)
        while final.exists():  # never over an earlier export's file (a forwarder state that was reset)
            seq = seq_source()
            final = self.batch_path(seq)
        part = final.with_name(final.name + PART_SUFFIX)
        with open(part, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, final)
        return final

    def export(self, queue, *, next_seq, max_bytes: Optional[int] = None,
               batch_bytes: int = DEFAULT_FILE_BATCH_BYTES, forget: bool = False, zstd_dict=None) -> dict:
        """Write the queued records (most urgent first, at most ``max_bytes`` of records)
        as batch files. Returns files (paths), records, bytes, forgotten."""
        if max_bytes is not None and max_bytes <= 0:
            raise BadInputError(f"--max-bytes {max_bytes}: must be more than 0")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise BadInputError(f"export folder {self.folder}: cannot create it ({exc.strerror or exc})") from None
        if not os.access(self.folder, os.W_OK):
            raise BadInputError(f"export folder {self.folder} is not writable")
        from edgekit.sync.forwarder import upstream_counters

        records = queue.peek_batch(_ALL if max_bytes is None else max_bytes, max_records=_ALL)
        if max_bytes is not None and records and len(records[0].payload) > max_bytes:
            records = []  # the first record alone is over the limit: peek_batch returns it anyway
        batches = split_into_batches(self.device_id, records, batch_bytes, next_seq,
                                     counters=upstream_counters(queue), zstd_dict=zstd_dict)
        files = []
        try:
            for seq, _, data in batches:
                files.append(self._write(next_seq, seq, data))
        except OSError as exc:
            for f in files:  # half an export is worse than none: the user would carry it away
                f.unlink(missing_ok=True)
            raise BadInputError(f"export to {self.folder} failed ({exc.strerror or exc}); nothing exported") from None
        if files:
            _fsync_folder(self.folder)
        forgotten = queue.ack([r.id for r in records]) if forget and records else 0
        return {"files": files, "records": len(records), "bytes": sum(len(d) for _, _, d in batches),
                "forgotten": forgotten}

    def import_acks(self, queue) -> dict:
        """Apply this device's ack files in the folder: delete the records they name, then
        the acked batch files and the ack files. Every ack file is read before anything
        changes; an unreadable one stops the import with BadInputError naming it."""
        from edgekit.sync.wire import WireFormatError, decode_ack

        if not self.folder.is_dir():
            raise BadInputError(f"ack folder {self.folder} does not exist")
        mine, ids = [], []
        for path in sorted(self.folder.glob(f"*{ACK_SUFFIX}")):
            try:
                ack = decode_ack(path.read_bytes())
            except OSError as exc:
                raise BadInputError(f"{path}: cannot be read ({exc.strerror or exc}); no ack applied") from None
            except WireFormatError as exc:
                raise BadInputError(f"{path}: not an edgekit ack file ({exc}); no ack applied") from None
            if ack.device_id == self.device_id:  # a stick may carry a whole fleet's files
                mine.append(path)
                ids.extend(ack.record_ids)
        deleted = queue.ack(ids) if ids else 0
        for path in mine:
            path.with_name(path.name[:-len(ACK_SUFFIX)] + BATCH_SUFFIX).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        if mine:
            _fsync_folder(self.folder)
        return {"ack_files": len(mine), "acked_ids": len(set(ids)), "deleted": deleted}
