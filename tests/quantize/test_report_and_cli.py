"""The quantization report and the `edgekit quantize` command, end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import _register, cli
from edgekit.quantize.report import auc, sqnr_db

_register()
DIGITS = "edgekit/data/digits_cnn.onnx"


@pytest.fixture(scope="module")
def digits_split(tmp_path_factory):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    xtr, xte, ytr, yte = train_test_split(x, d.target, test_size=0.25, random_state=0, stratify=d.target)
    tmp = tmp_path_factory.mktemp("digits")
    np.savez(tmp / "calib.npz", x=xtr[:200], y=ytr[:200])
    np.savez(tmp / "eval.npz", x=xte, y=yte)
    return tmp, xte, yte


def test_auc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    scores = rng.normal(size=300) + labels * 0.8
    scores[:20] = scores[20:40]  # ties
    assert auc(scores, labels) == pytest.approx(metrics.roc_auc_score(labels, scores), abs=1e-12)


def test_sqnr_hand_values():
    ref = np.array([3.0, 4.0])
    assert sqnr_db(ref, ref) == math.inf
    # signal 25, noise 0.25 -> 20 dB
    assert sqnr_db(ref, ref + np.array([0.5, 0.0])) == pytest.approx(20.0)


def test_quantize_cli_digits_end_to_end(digits_split, tmp_path):
    data, xte, yte = digits_split
    out = tmp_path / "digits_int8.tflite"
    r = CliRunner().invoke(cli, ["quantize", DIGITS, "--calib", str(data / "calib.npz"), "--eval",
                                 str(data / "eval.npz"), "-o", str(out), "--method", "minmax",
                                 "--report", str(tmp_path / "rep"), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["metric"] == "top1" and doc["eval_samples"] == len(yte)
    assert doc["int8_metric"] >= doc["float_metric"] - 0.01  # within 1 point of float
    assert [l["op"] for l in doc["layers"]] == ["CONV_2D", "CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert doc["int8_bytes"] < doc["float_bytes"] / 3
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<svg" in html and "Per-layer SQNR" in html
    # The written file is what TFLM runs: its top-1 equals the report's int8 figure.
    from edgekit.frontends.tflite import load_tflite
    from edgekit.reference import int8_kernels as ik
    from tests.support.shared import tflm_outputs

    g = load_tflite(out)
    xq = ik.quantize(xte.transpose(0, 2, 3, 1), g.input_tensors()[0].quant)
    got = tflm_outputs(out, xq)
    assert float((got.argmax(-1) == yte).mean()) == pytest.approx(doc["int8_metric"])


def test_quantize_cli_bad_data_exits_2(digits_split, tmp_path):
    data, _, _ = digits_split
    bad = np.load(data / "calib.npz")["x"].copy()
    bad[3, 0, 2, 2] = np.nan
    np.savez(tmp_path / "nan.npz", x=bad)
    np.savez(tmp_path / "shape.npz", x=np.zeros((10, 8, 8), np.float32))
    env = dict(os.environ, COLUMNS="200")
    for f, msg in (("nan.npz", "NaN"), ("shape.npz", "[1, 1, 8, 8]")):
        p = subprocess.run([sys.executable, "-m", "edgekit.cli.main", "quantize", DIGITS, "--calib",
                            str(tmp_path / f), "-o", str(tmp_path / "o.tflite")],
                           capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 2, p.stderr
        assert msg in p.stderr and "Traceback" not in p.stderr
        assert not (tmp_path / "o.tflite").exists()


def test_few_samples_warn(digits_split, tmp_path):
    data, _, _ = digits_split
    x = np.load(data / "calib.npz")["x"][:20]
    np.savez(tmp_path / "few.npz", x=x)
    p = subprocess.run([sys.executable, "-m", "edgekit.cli.main", "quantize", DIGITS, "--calib",
                        str(tmp_path / "few.npz"), "-o", str(tmp_path / "o.json"), "--method", "minmax"],
                       capture_output=True, text=True, env=dict(os.environ, COLUMNS="200"), timeout=120)
    assert p.returncode == 0, p.stderr
    assert "warning: calibration data: only 20 samples" in p.stderr and "at least 200" in p.stderr
    assert (tmp_path / "o.json").exists() and (tmp_path / "o.npz").exists()
