"""Run every benchmark script of bench/, one after the other, with a progress display.

    .venv/bin/python bench/run_all.py [--only mcu,quantization] [--quick] [--results DIR]

Each script writes its Markdown results under bench/results/ (or --results) and its
console output to <name>.log beside them; the summary table says where. Arguments are
the ones docs/benchmarks.md quotes. --quick runs each script on a few inputs only (to
check that it runs; the figures are not the documented ones) and writes to a temporary
folder unless --results is given. Exit status: 0 when every script succeeded, 1 when
one failed, 2 for a bad option.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HELPERS = {"run_all.py", "report.py", "tflm_figures.py",  # modules, not benchmarks
           "serve_bare.py", "serve_load.py"}             # processes bench/serve.py starts


@dataclass
class Bench:
    script: str
    args: list[str]          # the documented run
    quick: list[str]         # a few inputs, to check that it runs
    out_is_dir: bool = False  # compression.py takes a folder

    @property
    def name(self) -> str:
        return Path(self.script).stem

    def command(self, results: Path, quick: bool) -> list[str]:
        out = results if self.out_is_dir else results / f"{self.name}.md"
        return [sys.executable, str(BENCH / self.script), *(self.quick if quick else self.args), "--out", str(out)]

    def outputs(self, results: Path) -> list[Path]:
        if self.out_is_dir:
            return sorted(p for p in results.glob("compression*") if p.suffix in (".md", ".svg", ".png"))
        return [results / f"{self.name}.md"]


BENCHES = [
    Bench("import_and_reference.py", ["--repeat", "5"], ["--repeat", "1"]),
    Bench("quantization.py", [], ["--methods", "minmax"]),
    Bench("memory_vs_tflm.py", [], []),
    Bench("mcu.py", ["--kws-inputs", "20", "--ad-inputs", "50"], ["--kws-inputs", "1", "--ad-inputs", "1"]),
    Bench("mcu_profile.py", ["--kws-inputs", "3", "--ad-inputs", "3"], ["--kws-inputs", "1", "--ad-inputs", "1"]),
    Bench("zoo.py", ["--vectors", "5", "--tflm-vectors", "8"],
          ["--vectors", "1", "--tflm-vectors", "1", "--models", "accel_conv1d"]),
    Bench("kernels.py", [], []),
    Bench("mcu_kernels.py", ["--inputs", "3"],
          ["--inputs", "1", "--models", "ad", "--layers", "kws"]),
    Bench("c_linux.py", ["--inputs", "100", "--seconds", "2"], ["--inputs", "2", "--seconds", "0.1"]),
    Bench("flash_throughput.py", ["--repeat", "3", "--hil-vectors", "1000", "--tick-vectors", "5"],
          ["--repeat", "1", "--hil-vectors", "5", "--tick-vectors", "1"]),
    Bench("runtime.py", ["--runs", "5000", "--rounds", "7"], ["--runs", "50", "--rounds", "1"]),
    Bench("backend_latency.py", ["--seconds", "2"], ["--seconds", "0.05", "--dry-run"]),
    Bench("tvm_untuned.py", ["--runs", "2000", "--rounds", "5"], ["--runs", "20", "--rounds", "1"]),
    Bench("tvm_tuned.py", ["--trials", "160", "--runs", "2000", "--rounds", "5"],
          ["--trials", "2", "--runs", "20", "--rounds", "1", "--models", "digits"]),
    Bench("serve.py", [], ["--servers", "bare", "--clients", "1,8", "--seconds", "0.3", "--warmup", "0.1",
                           "--rounds", "1", "--runs", "200"]),
    Bench("sync.py", [], ["--quick"]),
    Bench("hub_ingest.py", ["--rounds", "3"], ["--batches", "2", "--rounds", "1", "--db", "sqlite"]),
    Bench("sync_queue.py", ["--seconds", "3"], ["--seconds", "0.2", "--threads", "1,4", "--records", "100"]),
    Bench("compression.py", ["--seeds", "3", "--ratios", "0.3,0.5,0.7"],
          ["--seeds", "1", "--ratios", "0.5", "--tasks", "breast cancer"], out_is_dir=True),
]


def unlisted_scripts() -> list[str]:
    """Scripts in bench/ that this runner does not know: a new benchmark must be added."""
    known = {b.script for b in BENCHES} | HELPERS
    return sorted(p.name for p in BENCH.glob("*.py") if p.name not in known)


def shown(path: Path) -> str:
    """A path as short as it can be said: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated names: " + ", ".join(b.name for b in BENCHES))
    ap.add_argument("--quick", action="store_true", help="a few inputs per script, to check that each runs")
    ap.add_argument("--results", metavar="DIR", help="where results go (default bench/results)")
    args = ap.parse_args()
    console = Console()

    benches = BENCHES
    if args.only:
        wanted = [n.strip().removesuffix(".py") for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in {b.name for b in BENCHES}]
        if unknown:
            console.print(f"error: unknown benchmark {', '.join(unknown)}; known: "
                          + ", ".join(b.name for b in BENCHES), style="red", highlight=False)
            sys.exit(2)
        benches = [b for b in BENCHES if b.name in wanted]
    if args.results:
        results = Path(args.results)
    elif args.quick:
        results = Path(tempfile.mkdtemp(prefix="edgekit-bench-quick-"))
    else:
        results = BENCH / "results"
    if results.exists() and not results.is_dir():
        console.print(f"error: --results {results} is a file, not a folder", style="red", highlight=False)
        sys.exit(2)
    results.mkdir(parents=True, exist_ok=True)
    missing = unlisted_scripts()
    if missing:
        console.print(f"warning: not run (add them to BENCHES in bench/run_all.py): {', '.join(missing)}",
                      style="yellow", highlight=False)

    outcome = []
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
               "{task.total}"), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        overall = progress.add_task("benchmarks", total=len(benches))
        for b in benches:
            progress.update(overall, description=f"bench/{b.script}")
            log = results / f"{b.name}.log"
            t0 = time.perf_counter()
            with log.open("w") as f:
                rc = subprocess.run(b.command(results, args.quick), cwd=REPO, stdout=f,
                                    stderr=subprocess.STDOUT).returncode
            seconds = time.perf_counter() - t0
            outcome.append((b, rc, seconds, log))
            if rc != 0:
                progress.console.print(f"bench/{b.script} failed (exit {rc}); last lines of {log}:",
                                       style="red", highlight=False)
                progress.console.print(tail(log), highlight=False, markup=False)
            progress.advance(overall)

    table = Table(title=f"benchmarks{' (quick: not the documented figures)' if args.quick else ''}")
    for col in ("script", "result", "time", "wrote"):
        table.add_column(col, overflow="fold")
    for b, rc, seconds, _log in outcome:
        outs = [p.name for p in b.outputs(results) if p.exists()] if rc == 0 else []
        table.add_row(f"bench/{b.script}", "ok" if rc == 0 else f"FAILED ({rc})", f"{seconds:.0f} s",
                      ", ".join(outs) or "-")
    console.print(table)
    console.print(f"results in {shown(results)}/ (each script's console output in <name>.log there)",
                  highlight=False)
    sys.exit(0 if all(rc == 0 for _b, rc, _s, _l in outcome) else 1)


if __name__ == "__main__":
    main()
