"""Where a bench script's results go: printed as they come, and written as Markdown to
bench/results/<script>.md (or --out), whose path is printed at the end."""

from __future__ import annotations

import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def default_out(script: str) -> Path:
    return RESULTS / f"{Path(script).stem}.md"


class Report:
    def __init__(self, out: str | Path):
        self.out = Path(out)
        # Checked before the bench starts its work, not after.
        if self.out.is_dir():
            print(f"error: --out {self.out} is a folder; give a file name (e.g. {self.out / 'results.md'})",
                  file=sys.stderr)
            raise SystemExit(2)
        self.lines: list[str] = []

    def line(self, text: str = "") -> None:
        print(text, flush=True)
        self.lines.append(text)

    def save(self) -> Path:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("\n".join(self.lines).rstrip("\n") + "\n")
        print(f"wrote {self.out}", flush=True)
        return self.out
