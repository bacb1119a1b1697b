"""MetaSchedule tuning in the TVM backend: a tuned compile of a small float model measures
candidates here, stores them in the database folder of its TVM target, and gives a module
that still computes what the reference interpreter computes; a second compile of the same
model reuses the records (no new trial, the same library); targets whose code cannot run
here are refused before any work, and the CLI checks its options.

Tuning is slow (each round of candidates starts worker processes that build and run
them): one dense layer (one kernel to tune) with a handful of trials, compiled twice for
all the tests of this module.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
import edgekit.runtime as rt
from edgekit.bundle import compile_bundle, verify
from edgekit.errors import BadInputError
from tests.support.shared import REPO

pytest.importorskip("tvm", reason="the tvm extra is not installed: pip install 'edgekit[tvm]'")

DIGITS = REPO / "edgekit/data/digits_cnn.onnx"
TRIALS = 3


def dense_model(path):
    """relu(x @ W + b), x 1x32, W 32x16: one fused kernel for MetaSchedule."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((32, 16)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(16).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
             helper.make_node("Relu", ["z"], ["y"])]
    g = helper.make_graph(nodes, "dense", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [w, b])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module", autouse=True)
def full_tvm():
    from edgekit.backends.tvm import import_tvm_compiler

    import_tvm_compiler()


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Two tuned compiles of the digits CNN into one fresh database."""
    from edgekit.backends.tvm import TuningOptions

    root = tmp_path_factory.mktemp("tune")
    graph = edgekit.load_model(dense_model(root / "dense.onnx"))
    seen = []
    opts = TuningOptions(TRIALS, root / "db", progress=seen.append)
    first = compile_bundle(graph, "x86_64", root / "first.ekb", backend="tvm", backend_options={"tuning": opts})
    after_first = [p.read_text() for p in sorted((root / "db").rglob("*.json"))]
    second = compile_bundle(graph, "x86_64", root / "second.ekb", backend="tvm", backend_options={"tuning": opts})
    return {"graph": graph, "first": first, "second": second, "seen": seen, "root": root, "model": root / "dense.onnx",
            "after_first": after_first}


def test_first_compile_tunes_into_the_database_of_its_target(tuned):
    from edgekit.backends.tvm.tuning import DB_FILES, target_key

    first = tuned["first"]
    summary = first.manifest["compile"]["tvm"]["tuning"]
    info = json.loads(first.bundle.read("tvm_module.json"))
    assert info["tuning"] == summary and info["device"] == "cpu" and info["cuda"] is None
    assert info["tvm_target"] == {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "x86-64-v3", "num-cores": 1}
    assert 0 < summary["trials_run"] <= TRIALS and summary["trials_requested"] == TRIALS
    assert summary["kernels_from_database"] == 0 and summary["kernels"] == len(summary["per_kernel"]) >= 1
    assert summary["kernels_tuned"] >= 1 and summary["kernel_latency_us"] > 0 and summary["model_us"] > 0
    db = tuned["root"] / "db" / target_key(info["tvm_target"], info["tvm_version"])
    assert summary["database"] == str(db)
    records = (db / DB_FILES[1]).read_text().splitlines()
    # every measured candidate is a record (MetaSchedule's JSON lines), none of another target
    assert len(records) == summary["trials_run"]
    assert all(json.loads(r)[1][2]["mcpu"] == "x86-64-v3" for r in records)
    # progress reached the last trial, counting up
    done = [p.trials_done for p in tuned["seen"]]
    assert done == sorted(done) and done[-1] == summary["trials_run"]


def test_tuned_module_computes_what_the_reference_computes(tuned):
    graph = tuned["graph"]
    xs = np.random.default_rng(5).standard_normal((20, 1, 32)).astype(np.float32)
    with rt.open(tuned["first"].bundle.path, engine="tvm") as m:
        assert m.self_test()
        got = np.stack([m.run({m.inputs[0].name: x})[m.outputs[0].name] for x in xs])
    want = np.stack([edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]] for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(want).max())))


def test_second_compile_reuses_the_records(tuned):
    first, second = tuned["first"], tuned["second"]
    summary = second.manifest["compile"]["tvm"]["tuning"]
    assert summary["trials_run"] == 0 and summary["search_seconds"] == 0.0
    assert summary["kernels_from_database"] == summary["kernels"]
    before = first.manifest["compile"]["tvm"]["tuning"]["per_kernel"]
    assert [(k["kernel"], k["best_us"]) for k in summary["per_kernel"]] == [(k["kernel"], k["best_us"]) for k in before]
    # the same schedules: the same machine code, and nothing added to the database
    assert second.bundle.read("model.so") == first.bundle.read("model.so")
    assert [p.read_text() for p in sorted((tuned["root"] / "db").rglob("*.json"))] == tuned["after_first"]


@pytest.mark.parametrize("target,why", [
    ("rpi4", "target 'rpi4' runs aarch64 code and this machine is x86_64"),
    ("jetson-orin-nano", "gets a TVM cuda module"),
])
def test_targets_that_cannot_run_here_are_refused_before_any_work(target, why, tmp_path):
    from edgekit.backends.tvm import TuningOptions

    graph = edgekit.load_model(DIGITS)
    with pytest.raises(BadInputError, match=why):
        compile_bundle(graph, target, tmp_path / "b", backend="tvm",
                       backend_options={"tuning": TuningOptions(4, tmp_path / "db")})
    assert not (tmp_path / "b").exists() and not (tmp_path / "db").exists()


def test_trials_must_be_positive():
    from edgekit.backends.tvm import TuningOptions

    for bad in (0, -3, 2.5, True):
        with pytest.raises(BadInputError, match="--tune-trials must be a whole number"):
            TuningOptions(bad)


def test_database_folders_are_per_target_and_release():
    from edgekit.backends.tvm.tuning import target_key

    x86 = {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "x86-64-v3", "num-cores": 1}
    keys = {target_key(x86, "0.27.0.post1"), target_key({**x86, "mcpu": "x86-64-v4"}, "0.27.0.post1"),
            target_key({**x86, "num-cores": 4}, "0.27.0.post1"), target_key(x86, "0.28.0")}
    assert len(keys) == 4
    assert target_key(x86, "0.27.0.post1") == target_key(dict(reversed(list(x86.items()))), "0.27.1")
    assert all("/" not in k for k in keys)


def test_default_database_is_under_the_user_cache(monkeypatch, tmp_path):
    from edgekit.backends.tvm import default_db_root

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_db_root() == tmp_path / "edgekit" / "tvm-tuning"


def test_cli_options(tuned, tmp_path, monkeypatch):
    from edgekit.cli.main import _register, cli

    _register()
    runner = CliRunner()
    base = ["compile", str(tuned["model"]), "--target", "x86_64", "--out", str(tmp_path / "b")]
    r = runner.invoke(cli, base + ["--backend", "litert", "--tune-trials", "4"], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "use it with --backend tvm" in r.output
    r = runner.invoke(cli, base + ["--backend", "tvm", "--tune-db", str(tmp_path)], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "give --tune-trials N as well" in r.output
    r = runner.invoke(cli, base + ["--backend", "tvm", "--tune-trials", "0"], env={"COLUMNS": "300"})
    assert r.exit_code == 2
    r = runner.invoke(cli, ["compile", str(DIGITS), "--target", "rpi4", "--backend", "tvm", "--tune-trials", "4",
                            "--out", str(tmp_path / "r")], env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "this machine is x86_64" in r.output and "Traceback" not in r.output
    # the database of the tuned fixture: every kernel is there, so this compile measures nothing
    r = runner.invoke(cli, base + ["--backend", "tvm", "--tune-trials", "4", "--tune-db", str(tuned["root"] / "db"),
                                   "--json"], catch_exceptions=False, env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["tvm"]["tuning"]["trials_run"] == 0 and doc["tvm"]["device"] == "cpu"
    assert verify(tmp_path / "b").manifest["compile"]["options"]["tune_trials"] == 4
