"""``--backend auto`` for Linux targets (edgekit.bundle.backend_choice): measured on the
host when the host is the target, else from the target's latency table, else the rule.
Measurements are injected where a test needs a known winner; one real compile checks that
the recorded choice is the minimum of the recorded, really measured latencies."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
import edgekit.bundle.backend_choice as backend_choice
from edgekit.bundle import compile_bundle
from edgekit.bundle.backend_choice import HostCPU, host_mismatch, read_latency_table
from edgekit.errors import BadInputError
from edgekit.targets import builtin_targets_dir, load_target

DIGITS = "edgekit/data/digits_cnn.onnx"
SAMPLES = "edgekit/data/digits_samples.npz"
X86_V3 = HostCPU("x86_64", frozenset({"sse2", "sse4_2", "avx", "avx2", "fma"}), "test CPU")


@pytest.fixture(scope="module")
def digits_int8():
    from edgekit.quantize import quantize

    with np.load(SAMPLES) as z:
        return quantize(edgekit.load_model(DIGITS), z["x"]).graph


def _fake_latency(us_by_engine: dict):
    """A measurement that reports the given microseconds per engine, after one real call
    (so the model really ran)."""
    def measure(model, feeds):
        model.run(feeds)
        return us_by_engine[model.engine] * 1e-6, 7
    return measure


def _choice(result) -> dict:
    return result.manifest["compile"]["backend_choice"]


@pytest.mark.parametrize("fastest", ["c", "onnxruntime"])
def test_auto_on_host_picks_the_lowest_measured_latency(digits_int8, tmp_path, monkeypatch, fastest):
    us = {"litert": 50.0, "onnxruntime": 40.0, "c": 30.0}
    us[fastest] = 5.0
    monkeypatch.setattr(backend_choice, "detect_host", lambda: X86_V3)
    monkeypatch.setattr(backend_choice, "median_latency", _fake_latency(us))
    result = compile_bundle(digits_int8, "x86_64", tmp_path / "d.ekb")
    assert result.backend == fastest and result.manifest["backend"] == fastest
    choice = _choice(result)
    assert choice["method"] == "measured on host" and choice["chosen"] == fastest
    got = {c["backend"]: c for c in choice["candidates"]}
    assert {b: got[b]["median_us"] for b in us} == us
    assert all(got[b]["status"] == "measured" and got[b]["calls"] == 7 for b in us)
    assert got["tvm"]["status"] == "skipped" and "int8" in got["tvm"]["reason"]
    assert "fastest measured on this machine" in result.reason and f"{us[fastest]:.1f} us" in result.reason


def test_a_candidate_that_fails_its_self_test_is_excluded(digits_int8, tmp_path, monkeypatch):
    from edgekit.runtime.engines import onnxruntime as ort_engine

    real_run = ort_engine.ENGINE.run

    def off_by_a_lot(self, inputs):
        return [(o.astype(np.int16) + 100).clip(-128, 127).astype(o.dtype) for o in real_run(self, inputs)]

    monkeypatch.setattr(ort_engine.ENGINE, "run", off_by_a_lot)
    monkeypatch.setattr(backend_choice, "detect_host", lambda: X86_V3)
    # onnxruntime would win on speed: it must lose on correctness.
    monkeypatch.setattr(backend_choice, "median_latency", _fake_latency({"litert": 20.0, "onnxruntime": 1.0,
                                                                         "c": 10.0}))
    result = compile_bundle(digits_int8, "x86_64", tmp_path / "d.ekb")
    assert result.backend == "c"
    got = {c["backend"]: c for c in _choice(result)["candidates"]}
    assert got["onnxruntime"]["status"] == "failed self-test"
    assert "steps" in got["onnxruntime"]["reason"] and got["onnxruntime"]["median_us"] is None


def test_non_host_target_without_a_table_uses_the_rule_and_says_so(digits_int8, tmp_path, monkeypatch):
    monkeypatch.setattr(backend_choice, "detect_host", lambda: X86_V3)
    result = compile_bundle(digits_int8, "rpi4", tmp_path / "r.ekb")
    assert result.backend == "litert"
    assert result.reason.startswith("no latency measured for rpi4 (this machine is x86_64, target rpi4 is aarch64)")
    assert "rule: auto chose litert" in result.reason
    assert _choice(result)["method"] == "rule"


def _board_dir(tmp_path, table: dict | None) -> str:
    d = tmp_path / "targets"
    (d / "latency").mkdir(parents=True)
    text = (builtin_targets_dir() / "rpi4.toml").read_text().replace('name = "rpi4"', 'name = "board-x"')
    (d / "board-x.toml").write_text(text)
    if table is not None:
        (d / "latency" / "board-x.json").write_text(json.dumps(table))
    return str(d)


def _table(models: list) -> dict:
    return {"format": "edgekit-latency", "target": "board-x",
            "source": {"command": "python bench/backend_latency.py", "machine": "board-x test", "date": "2026-12-07"},
            "models": models}


def test_non_host_target_with_a_table_picks_from_it(digits_int8, tmp_path, monkeypatch):
    monkeypatch.setattr(backend_choice, "detect_host", lambda: X86_V3)
    table = _table([
        {"model": "a", "precision": "int8", "latency_us": {"litert": 100, "onnxruntime": 60, "c": 80}},
        {"model": "b", "precision": "int8", "latency_us": {"litert": 10, "onnxruntime": 9, "c": 12}},
        # float figures must not count for an int8 model
        {"model": "f", "precision": "float32", "latency_us": {"litert": 1, "onnxruntime": 1000}},
    ])
    result = compile_bundle(digits_int8, "board-x", tmp_path / "b.ekb", targets_dir=_board_dir(tmp_path, table))
    assert result.backend == "onnxruntime"
    choice = _choice(result)
    assert choice["method"] == "latency table" and choice["source"]["machine"] == "board-x test"
    ranked = {c["backend"]: c["relative_to_fastest"] for c in choice["candidates"]}
    assert ranked["onnxruntime"] == 1.0 and ranked["litert"] > 1 and ranked["c"] > 1
    assert "a 60 us, b 9 us" in result.reason and "2026-12-07" in result.reason


def test_a_table_without_figures_for_the_models_precision_falls_back_to_the_rule(digits_int8, tmp_path,
                                                                                 monkeypatch):
    monkeypatch.setattr(backend_choice, "detect_host", lambda: X86_V3)
    table = _table([{"model": "f", "precision": "float32", "latency_us": {"litert": 10, "onnxruntime": 5}}])
    result = compile_bundle(digits_int8, "board-x", tmp_path / "b.ekb", targets_dir=_board_dir(tmp_path, table))
    assert result.backend == "litert" and _choice(result)["method"] == "rule"
    assert "board-x.json has no figures for int8 models" in result.reason and "rule:" in result.reason


def test_a_malformed_table_is_refused_naming_the_problem(digits_int8, tmp_path, monkeypatch):
    monkeypatch.setattr(backend_choice, "detect_host", lambda: X86_V3)
    table = _table([{"model": "a", "precision": "int8", "latency_us": {"litert": -3}}])
    with pytest.raises(BadInputError, match=r"board-x.json: models\[0\] \(a\): latency of litert must be a positive"):
        compile_bundle(digits_int8, "board-x", tmp_path / "b.ekb", targets_dir=_board_dir(tmp_path, table))
    assert not (tmp_path / "b.ekb").exists()


def test_the_checked_in_x86_64_table_is_valid_and_used_on_a_host_without_avx2(digits_int8, tmp_path,
                                                                             monkeypatch):
    path = builtin_targets_dir() / "latency" / "x86_64.json"
    table = read_latency_table(path, "x86_64")
    int8_rows = [m for m in table["models"] if m["precision"] == "int8"]
    assert int8_rows and all({"litert", "onnxruntime", "c"} <= set(m["latency_us"]) for m in int8_rows)
    old_cpu = HostCPU("x86_64", frozenset({"sse2", "sse4_2", "avx"}))
    assert "lacks avx2, fma" in host_mismatch(load_target("x86_64"), old_cpu)
    monkeypatch.setattr(backend_choice, "detect_host", lambda: old_cpu)
    result = compile_bundle(digits_int8, "x86_64", tmp_path / "x.ekb")
    choice = _choice(result)
    assert choice["method"] == "latency table"
    # The independent check: the geometric mean of each backend's ratio to the fastest.
    common = ["litert", "onnxruntime", "c"]
    score = {b: np.exp(np.mean([np.log(m["latency_us"][b] / min(m["latency_us"][c] for c in common))
                                for m in int8_rows])) for b in common}
    assert result.backend == min(score, key=score.get)


def test_no_arm_target_ships_a_latency_table():
    """No ARM board was measured: a table for one would be invented figures."""
    arm = [p.name for p in (builtin_targets_dir() / "latency").glob("*.json")
           if load_target(p.stem).arch != "x86_64"]
    assert arm == []


@pytest.mark.filterwarnings("ignore::edgekit.quantize.FewSamplesWarning")
@pytest.mark.allow_skip("measures on the host: needs an x86-64-v3 (AVX2, FMA) machine")
def test_auto_compile_on_host_records_every_candidate_and_chooses_the_fastest(tmp_path):
    """Real measurements, through the CLI: every candidate has a latency and the chosen
    backend has the lowest."""
    from edgekit.cli.main import _register, cli

    _register()
    if host_mismatch(load_target("x86_64"), backend_choice.detect_host()):
        pytest.skip("this machine cannot run code built for the x86_64 target")
    with np.load(SAMPLES) as z:
        np.save(tmp_path / "calib.npy", z["x"])
    shutil.copy(DIGITS, tmp_path / "digits.onnx")
    out = tmp_path / "digits.ekb"
    res = CliRunner().invoke(cli, ["compile", str(tmp_path / "digits.onnx"), "--calib", str(tmp_path / "calib.npy"),
                                   "--target", "x86_64", "--out", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "measured on this machine" in res.output and "median us" in res.output
    from edgekit.bundle import read_bundle

    manifest = read_bundle(out).manifest
    choice = manifest["compile"]["backend_choice"]
    measured = {c["backend"]: c["median_us"] for c in choice["candidates"] if c["status"] == "measured"}
    assert set(measured) == {"litert", "onnxruntime", "c"}
    assert all(us > 0 for us in measured.values())
    assert manifest["backend"] == choice["chosen"] == min(measured, key=measured.get)
