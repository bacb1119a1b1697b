"""MetaSchedule tuning for the TVM backend: search schedules for each fused kernel of a
model by building and timing candidates on this machine, keep the best in a JSON
database that later compiles reuse, and build the model with them.

    opts = TuningOptions(trials=64)                       # database under the user cache
    executable, summary = tune_and_build(tvm, mod, target, tgt, opts)

The search uses MetaSchedule's evolutionary strategy with its random cost model: no
xgboost (480 MB with its CUDA libraries) and no psutil (worker counts are given). A
kernel already in the database for the same TVM target is not searched again, so a
second compile of a model costs no trials and gives the same schedules. Candidates are
measured by running them, so only a target whose code runs on this machine can be tuned.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import platform
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from edgekit.errors import BadInputError, EdgekitError
from edgekit.runtime.engines.tvm import cpu_flags

DB_FILES = ("database_workload.json", "database_tuning_record.json")
# Candidates measured per search round of a kernel; MetaSchedule's default is 64.
MAX_TRIALS_PER_ROUND = 32
# Seconds the worker may take to run one candidate; generous, as a loaded machine slows
# it (a timed-out candidate is only a failed trial, but a wasted one).
RUN_TIMEOUT_S = 120
# /proc/cpuinfo flags the x86-64 levels edgekit's targets name need.
X86_LEVEL_FLAGS = {"x86-64-v3": ("avx2", "fma"), "x86-64-v4": ("avx2", "fma", "avx512f")}


@dataclass(frozen=True)
class TuningProgress:
    trials_done: int        # candidates measured so far in this compile
    trials_total: int       # the budget for the kernels not yet in the database
    task: str               # the kernel just measured
    best_us: float | None   # its best latency so far


@dataclass(frozen=True)
class TuningOptions:
    trials: int                              # measured candidates in all, over the kernels to tune
    db_root: Path | None = None              # None: default_db_root()
    progress: Callable[[TuningProgress], None] | None = None

    def __post_init__(self):
        if isinstance(self.trials, bool) or not isinstance(self.trials, int) or self.trials < 1:
            raise BadInputError(f"--tune-trials must be a whole number >= 1, not {self.trials!r}")


def default_db_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "edgekit" / "tvm-tuning"


def target_key(tvm_target: dict, tvm_version: str) -> str:
    """The database folder name of a TVM target: readable parts and a hash of the whole
    target and TVM release (records do not carry over between releases)."""
    release = ".".join(tvm_version.split(".")[:2])
    text = json.dumps({"target": tvm_target, "tvm": release}, sort_keys=True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    parts = [tvm_target.get("kind", "?"), tvm_target.get("mtriple", ""), tvm_target.get("mcpu", "")]
    name = "-".join(p for p in parts if p)
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{name}-tvm{release}-{digest}")


def database_dir(options: TuningOptions, tvm_target: dict, tvm_version: str) -> Path:
    return (options.db_root or default_db_root()) / target_key(tvm_target, tvm_version)


def _host_machine() -> str:
    m = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)



def check_tunable_here(tgt, machine: str, tvm_target: dict) -> None:
    """Refuse (exit 2) a target whose candidates cannot be run on this machine."""
    if tvm_target.get("kind") != "llvm":
        raise BadInputError(f"--tune-trials: target {tgt.name!r} gets a TVM {tvm_target.get('kind')} module; "
                            "tuning measures candidates by running them, and edgekit tunes CPU modules on the "
                            "machine that runs them only (compile without --tune-trials)")
    here = _host_machine()
    if machine != here:
        raise BadInputError(f"--tune-trials: target {tgt.name!r} runs {machine} code and this machine is {here}; "
                            "tuning measures each candidate by running it, which cannot be done here (compile "
                            "without --tune-trials, or compile on the board itself)")
    flags = cpu_flags()
    missing = [f for f in X86_LEVEL_FLAGS.get(str(tvm_target.get("mcpu")), ()) if flags and f not in flags]
    if missing:
        raise BadInputError(f"--tune-trials: target {tgt.name!r} is compiled for {tvm_target['mcpu']}, which needs "
                            f"{', '.join(missing)}; this CPU lacks it, so candidates cannot run here")


def _fuse_passes(tvm, target):
    """The passes before MetaSchedule's database is applied, as
    ``meta_schedule.relax_integration.compile_relax`` runs them: tasks extracted after
    the same passes have the same keys as the kernels that build then looks up."""
    from tvm import relax
    from tvm.relax import pipeline

    try:
        dispatch = list(pipeline.library_dispatch_passes(target))
    except (ValueError, AttributeError):
        dispatch = []
    return tvm.transform.Sequential([*dispatch, relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
                                     relax.transform.FoldConstant(), relax.transform.FuseOps(),
                                     relax.transform.FuseTIR()])


def _best_us(database, task_mod) -> float | None:
    if not database.has_workload(task_mod):
        return None
    records = database.get_top_k(database.commit_workload(task_mod), 1)
    if not records or not records[0].run_secs:
        return None
    secs = [float(s) for s in records[0].run_secs]
    return 1e6 * sum(secs) / len(secs)


def _flops(task) -> float:
    from tvm.s_tir.analysis import estimate_tir_flops

    try:
        return float(estimate_tir_flops(task.dispatched[0]))
    except Exception:  # a kernel TVM cannot count (e.g. opaque loops) goes last
        return 0.0


def tune_and_build(tvm, mod, tvm_target: dict, tgt, options: TuningOptions, machine: str):
    """(executable, summary): tune the kernels of ``mod`` not yet in the database, then
    build it with the database's best schedules. ``tvm_target``: the dict form, with
    ``num-cores`` (MetaSchedule sizes parallel loops by it)."""
    from tvm.s_tir import meta_schedule as ms

    check_tunable_here(tgt, machine, tvm_target)
    target = tvm.target.Target(tvm_target)
    db_dir = database_dir(options, tvm_target, tvm.__version__)
    try:
        db_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInputError(f"--tune-db: cannot create the tuning database folder {db_dir}: {exc.strerror}") from None
    database = ms.database.JSONDatabase(str(db_dir / DB_FILES[0]), str(db_dir / DB_FILES[1]), allow_missing=True)
    with target:
        fused = _fuse_passes(tvm, target)(mod)
    tasks = ms.relax_integration.extract_tasks(fused, target)
    todo = [t for t in tasks if _best_us(database, t.dispatched[0]) is None]
    # The heaviest kernels first: a budget smaller than the kernel count goes to them.
    todo.sort(key=lambda t: -_flops(t) * t.weight)
    started = time.perf_counter()
    trials_run = 0
    if todo:
        trials_run = _search(ms, todo, database, target, options)
    # Kernels whose every candidate failed stay untuned (plain loops), as without tuning.
    kernels = []
    for t in tasks:
        best = _best_us(database, t.dispatched[0])
        kernels.append({"kernel": t.task_name, "calls": int(t.weight), "best_us": best,
                        "from_database": t not in todo})
    executable = ms.relax_integration.compile_relax(database, mod, target, None)
    tuned = [k for k in kernels if k["best_us"] is not None]
    summary = {
        "trials_run": trials_run,
        "trials_requested": options.trials,
        "search_seconds": round(time.perf_counter() - started, 1) if todo else 0.0,
        "kernels": len(kernels),
        "kernels_from_database": sum(1 for k in kernels if k["from_database"]),
        "kernels_tuned": len(tuned),
        "kernel_latency_us": round(sum(k["best_us"] * k["calls"] for k in tuned), 3) if tuned else None,
        "database": str(db_dir),
        "cost_model": "random",
        "per_kernel": kernels,
    }
    return executable, summary


def _search(ms, tasks, database, target, options: TuningOptions) -> int:
    """Run the search over ``tasks``; the number of candidates measured."""
    from tvm.ir.utils import derived_object

    per_task = max(1, math.ceil(options.trials / len(tasks)))
    total = min(options.trials, per_task * len(tasks))
    counted = {"done": 0}
    names = [t.task_name for t in tasks]

    @derived_object
    class Progress(ms.measure_callback.PyMeasureCallback):
        def apply(self, task_scheduler, task_id, measure_candidates, builder_results, runner_results):
            counted["done"] += len(runner_results)
            if options.progress is None:
                return
            best = None
            for r in runner_results:
                if r.error_msg is None and r.run_secs:
                    us = 1e6 * sum(float(s) for s in r.run_secs) / len(r.run_secs)
                    best = us if best is None else min(best, us)
            options.progress(TuningProgress(counted["done"], total, names[task_id], best))

    callbacks = ms.measure_callback.MeasureCallback.create("default") + [Progress()]
    log = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="edgekit-tune-") as work, _workers_without_torch(work):
        # A population sized to the budget: MetaSchedule's 512 costs ~20 s per round to
        # evolve here, and with a random cost model a larger one buys nothing.
        population = min(512, max(64, 8 * per_task))
        strategy = ms.search_strategy.EvolutionarySearch(population_size=population,
                                                         init_min_unmeasured=min(50, population))
        try:
            # MetaSchedule logs its task tables to stdout (the handler it configures when
            # the contexts are made): kept out of the compile report.
            with contextlib.redirect_stdout(log):
                contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                    tasks, work, strategy=strategy, num_threads=1, seed=0)
                ms.tune.tune_tasks(tasks=contexts, task_weights=weights, work_dir=work, max_trials_global=total,
                                   max_trials_per_task=per_task,
                                   num_trials_per_iter=min(per_task, MAX_TRIALS_PER_ROUND),
                                   builder=_in_process_builder(ms),
                                   runner=ms.runner.LocalRunner(timeout_sec=RUN_TIMEOUT_S), database=database,
                                   cost_model="random",
                                   measure_callbacks=callbacks)
        except Exception as exc:  # TVMError and friends, from the search or a worker
            tail = " / ".join(log.getvalue().strip().splitlines()[-3:])
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EdgekitError(f"MetaSchedule tuning failed: {first}" + (f" (log: {tail})" if tail else "")) from None
    return counted["done"]


def _in_process_builder(ms):
    """A MetaSchedule builder that compiles candidates in this process, with the builder
    MetaSchedule's LocalBuilder runs in its workers. LocalBuilder starts a fresh worker
    (a Python importing TVM's compiler) for its sanity check and again for every batch:
    ~20 s each on a loaded 2-core machine, more than building a batch of small kernels.
    Running the candidates stays in LocalRunner's worker, where a crash costs a trial."""
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import local_builder

    @derived_object
    class InProcessBuilder(ms.builder.PyBuilder):
        def build(self, build_inputs):
            results = []
            for item in build_inputs:
                try:
                    path = local_builder.default_export(local_builder.default_build(item.mod, item.target, None))
                    results.append(ms.builder.BuilderResult(path, None))
                except Exception as exc:  # a candidate TVM cannot compile is a failed trial
                    results.append(ms.builder.BuilderResult(None, f"build failed: {exc}"))
            return results

    return InProcessBuilder()


@contextlib.contextmanager
def _workers_without_torch(work: str):
    """MetaSchedule's run workers are fresh Pythons that import TVM, and
    tvm_ffi imports torch whenever it is installed (4.3 s and 400 MB a worker here,
    against 1.2 s and 200 MB without). A package named torch that raises ImportError,
    first on the workers' PYTHONPATH, hides it from them; this process is untouched."""
    shadow = Path(work) / "no-torch"
    (shadow / "torch").mkdir(parents=True)
    (shadow / "torch" / "__init__.py").write_text('raise ImportError("torch is hidden from TVM tuning workers")\n')
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(shadow)] + ([before] if before else []))
    try:
        yield
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
