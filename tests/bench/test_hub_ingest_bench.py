"""bench/hub_ingest.py end to end, small: both worker counts on SQLite, a real broker, and
every record it sent found stored (the run itself checks the count)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_hub_ingest_bench_small_run(tmp_path):
    out = tmp_path / "hub.json"
    run = subprocess.run([sys.executable, str(REPO / "bench" / "hub_ingest.py"), "--devices", "2", "--batches", "3",
                          "--records", "20", "--db", "sqlite", "--workers", "1,2", "--json", str(out)],
                         capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())
    assert [(r["db"], r["workers"], r["records"], r["batches"]) for r in results] == \
        [("sqlite", 1, 120, 6), ("sqlite", 2, 120, 6)]
    assert all(r["records_per_s"] > 0 for r in results)
    assert "records/s median" in run.stdout
