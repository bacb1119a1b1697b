"""The demo's table marks every estimate as one, and its "x smaller" compares like with
like (issue 9, section 2). The table is rendered from a made-up result, so this runs
without training or an emulator; tests/cli/test_cli.py runs the real demo."""

from __future__ import annotations

import io

from click.testing import CliRunner
from rich.console import Console

import edgekit.demo
from edgekit.cli import demo_cmd
from edgekit.demo import DemoResult, DemoRow


def _result() -> DemoResult:
    rows = [
        DemoRow("teacher", 0.9867, 267_059, 8_602, None, estimated=("flash", "ram")),
        DemoRow("int8 (host, reference)", 0.9844, 23_245, 1_434, 635_904.0, estimated=("instructions",)),
        DemoRow("int8 (on mps2-an386)", 0.9844, 20_890, 1_843, 782_360.0, "flash: package"),
    ]
    return DemoResult("cortex-m4", rows, test_samples=450, bit_exact=450, seconds=41.0,
                      timings={"compile": 1.0}, flash_ratio=11.5)


def _table(monkeypatch) -> str:
    console = Console(record=True, width=250, file=io.StringIO())
    monkeypatch.setattr(demo_cmd, "console", console)
    monkeypatch.setattr(edgekit.demo, "run_demo", lambda *a, **k: _result())
    r = CliRunner().invoke(demo_cmd.demo, [], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return console.export_text()


def _row(text: str, stage: str) -> str:
    return next(line for line in text.splitlines() if stage in line)


def test_estimates_are_marked_in_the_cells_that_hold_them(monkeypatch):
    text = _table(monkeypatch)
    teacher = _row(text, "teacher")
    assert "260.8 KiB (est.)" in teacher and "8.4 KiB (est.)" in teacher
    host = _row(text, "int8 (host, reference)")
    assert "635,904 (est.)" in host and "22.7 KiB (est.)" not in host and "22.7 KiB" in host
    board = _row(text, "int8 (on mps2-an386)")
    assert "782,360" in board and "(est.)" not in board


def test_x_smaller_is_the_like_for_like_ratio_not_estimate_over_package(monkeypatch):
    text = _table(monkeypatch)
    assert "flash 11.5x smaller (the same estimate for both)" in text
    # teacher estimate / package bytes would print 12.8x: the mixed comparison is gone
    assert "12.8x" not in text
