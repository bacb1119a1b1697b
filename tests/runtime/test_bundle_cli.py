"""`edgekit compile` to a bundle for Linux targets, `edgekit run BUNDLE` and `edgekit bench
BUNDLE`, and their refusals (exit 2, one line naming the problem)."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit.runtime as rt
from edgekit.cli.main import _register, cli
from edgekit.quantize import FewSamplesWarning
from tests.support.shared import shared_file

KWS = "models/mlperf-tiny/kws_ref_model_int8.tflite"
DIGITS = "edgekit/data/digits_cnn.onnx"
_register()


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "300"})


def refused(r, *words):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output
    for w in words:
        assert w in r.output, (w, r.output)


@pytest.fixture(scope="module")
def kws_ekb(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "kws.ekb"
    # litert named: auto on the host measures every backend (tests/bundle/test_backend_auto.py)
    r = invoke("compile", shared_file(KWS), "--target", "x86_64", "--backend", "litert", "--out", out,
               "--model-version", "1.2")
    assert r.exit_code == 0, r.output
    assert "--backend litert" in r.output and f"wrote bundle {out}" in r.output
    return out


def test_compile_each_backend_then_run_matches_the_runtime(tmp_path, kws_ekb):
    x = np.random.default_rng(0).integers(-128, 128, (3, 49, 10, 1)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    for backend in ("litert", "onnxruntime"):
        out = tmp_path / backend
        r = invoke("compile", shared_file(KWS), "--target", "x86_64", "--backend", backend, "--out", out, "--json")
        assert r.exit_code == 0, r.output
        doc = json.loads(r.output)
        assert doc["backend"] == doc["engine"] == backend and doc["backend_reason"] == f"--backend {backend}"
        r = invoke("run", out, "--input", tmp_path / "x.npy", "--out", tmp_path / "y.npz")
        assert r.exit_code == 0, r.output
        with rt.open(out) as m:
            want = np.concatenate([m.run({m.inputs[0].name: x[i:i + 1]})[m.outputs[0].name] for i in range(3)])
        with np.load(tmp_path / "y.npz") as z:
            assert np.array_equal(z["Identity"], want)
    assert json.loads(zipfile.ZipFile(kws_ekb).read("manifest.json"))["model"]["version"] == "1.2"


def test_compile_float_model_for_linux_keeps_it_float_unless_calibrated(tmp_path):
    r = invoke("compile", DIGITS, "--target", "rpi4", "--out", tmp_path / "f.ekb", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["inputs"][0]["dtype"] == "float32"
    with pytest.warns(FewSamplesWarning):
        r = invoke("compile", DIGITS, "--target", "rpi4", "--calib", "edgekit/data/digits_samples.npz",
                   "--backend", "onnxruntime", "--out", tmp_path / "q.ekb", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["inputs"][0]["dtype"] == "int8" and doc["inputs"][0]["quantization"]["scale"]
    with rt.open(tmp_path / "q.ekb") as m:
        assert m.self_test()


def test_bench_reports_latency_cold_start_and_rss(kws_ekb):
    r = invoke("bench", kws_ekb, "--runs", "200", "--warmup", "5", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output[r.output.index("{"):])
    assert doc["engine"] == "litert" and doc["runs"] == 200
    assert 0 < doc["min_us"] <= doc["p50_us"] <= doc["p99_us"]
    assert doc["open_ms"] < doc["cold_start_ms"] and doc["peak_rss_bytes"] > 10 << 20
    r = invoke("bench", kws_ekb, "--runs", "20")
    assert r.exit_code == 0 and "latency p99" in r.output and "cold start" in r.output


def test_bad_inputs_to_run(tmp_path, kws_ekb):
    np.save(tmp_path / "f.npy", np.zeros((1, 49, 10, 1), np.float32))
    refused(invoke("run", kws_ekb, "--input", tmp_path / "f.npy"), "input 'input_1' is float32",
            "the bundle takes int8")
    np.save(tmp_path / "s.npy", np.zeros((1, 49, 11, 1), np.int8))
    refused(invoke("run", kws_ekb, "--input", tmp_path / "s.npy"), "has shape [1, 49, 11, 1]")
    refused(invoke("run", kws_ekb, "--input", tmp_path / "s.npy", "--target", "rpi4"),
            "is for target 'x86_64', not 'rpi4'")
    refused(invoke("run", kws_ekb, "--input", tmp_path / "s.npy", "--dump", tmp_path / "d.npz"),
            "--dump: for model files, not bundles")
    r = invoke("compile", DIGITS, "--target", "x86_64", "--out", tmp_path / "d")
    assert r.exit_code == 0, r.output
    x = np.zeros((1, 8, 8, 1), np.float32)
    x[0, 3, 3, 0] = np.nan
    np.save(tmp_path / "nan.npy", x)
    refused(invoke("run", tmp_path / "d", "--input", tmp_path / "nan.npy"), "holds NaN or infinite values")
    refused(invoke("bench", tmp_path / "f.npy"), "not a bundle")


def test_corrupt_and_tampered_bundles_exit_2(tmp_path, kws_ekb):
    np.save(tmp_path / "x.npy", np.zeros((1, 49, 10, 1), np.int8))
    bad = tmp_path / "bad.ekb"
    bad.write_bytes(kws_ekb.read_bytes()[:300])
    refused(invoke("run", bad, "--input", tmp_path / "x.npy"), "not a readable .ekb archive")
    tampered = tmp_path / "tampered.ekb"
    with zipfile.ZipFile(kws_ekb) as src, zipfile.ZipFile(tampered, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "model.tflite":
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            dst.writestr(info.filename, data)
    refused(invoke("run", tampered, "--input", tmp_path / "x.npy"), "hash mismatch in 'model.tflite'")
    refused(invoke("bench", tampered), "hash mismatch")


def test_compile_refusals(tmp_path):
    refused(invoke("compile", DIGITS, "--target", "cortex-m4", "--backend", "litert", "--out", tmp_path / "m"),
            "--backend litert", "microcontroller")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "mine.txt").write_text("x")
    refused(invoke("compile", DIGITS, "--target", "x86_64", "--out", tmp_path / "keep"), "not an edgekit bundle")
    refused(invoke("compile", DIGITS, "--target", "x86_64", "--flash", "1MiB", "--out", tmp_path / "k"),
            "--flash and --sram are for microcontroller targets")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
