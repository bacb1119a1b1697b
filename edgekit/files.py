"""Writing output files so that a failure or a kill never leaves half of one, and never
over something edgekit did not write."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from edgekit.errors import BadInputError


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Run ``write(file)`` on a temporary file beside ``path``, then rename it to ``path``:
    a failure or a kill leaves the old file or none, never a half-written one. Creates the
    parent folders; raises OSError as it comes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_replaceable_folder(out_dir: Path, marker: str, fmt: str, what: str) -> None:
    """Refuse an output folder that exists and is neither empty nor an earlier output of
    the same kind: one whose ``marker`` JSON file names ``fmt`` as its "format"."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise BadInputError(f"output {out_dir} exists and is not a folder")
    if not any(out_dir.iterdir()):
        return
    try:
        ok = json.loads((out_dir / marker).read_text()).get("format") == fmt
    except (OSError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise BadInputError(f"output folder {out_dir} is not empty and holds no {what} "
                            f"({marker}): choose another --out")

