"""A TVM bundle compiled for an aarch64 board, run by edgekit.runtime under qemu-aarch64
with an arm64 Python and TVM's aarch64 wheel (the device's setup, emulated), compared with
edgekit's reference interpreter on the host.

Needs a sysroot prepared once by ``scripts/aarch64_tvm_sysroot.sh DEST`` (downloads a
Debian arm64 Python 3.11 and the aarch64 wheels; root and network) and
``EDGEKIT_AARCH64_TVM_SYSROOT=DEST``; skips without it, everywhere (CI included).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.bundle import compile_bundle

REPO = Path(__file__).resolve().parents[1]
SYSROOT = os.environ.get("EDGEKIT_AARCH64_TVM_SYSROOT")
# Float tolerance as in tests/backends/tvm/test_tvm_backend.py (other summation order).
RTOL = 1e-4

pytestmark = pytest.mark.allow_skip("needs an arm64 Python sysroot with TVM's aarch64 wheel, prepared by "
                                    "scripts/aarch64_tvm_sysroot.sh (downloads; not part of the machine setup)")

RUN = """
import sys, numpy as np, edgekit.runtime as rt
xs = np.load(sys.argv[1])
with rt.open(sys.argv[2], target=sys.argv[3], engine="tvm") as m:
    assert m.self_test(), "self-test failed"
    name, out = m.inputs[0].name, m.outputs[0].name
    np.save(sys.argv[4], np.stack([m.run({name: np.ascontiguousarray(x)})[out] for x in xs]))
    print(m.describe())
print(sorted(k for k in sys.modules if k.startswith("tvm.relax") or k.split(".")[0] == "torch"))
"""


@pytest.mark.parametrize("target,cpu", [("rpi4", "cortex-a72"), ("rpi5", "cortex-a76")])
def test_tvm_bundle_runs_under_qemu_aarch64(target, cpu, tmp_path):
    if not SYSROOT or not (Path(SYSROOT) / "root/usr/bin/python3.11").is_file():
        pytest.skip("set EDGEKIT_AARCH64_TVM_SYSROOT to a folder made by scripts/aarch64_tvm_sysroot.sh")
    if shutil.which("qemu-aarch64") is None:
        pytest.skip("qemu-aarch64 is not installed (apt-get install qemu-user)")
    pytest.importorskip("tvm", reason="the tvm extra is not installed: pip install 'edgekit[tvm]'")
    graph = edgekit.load_model(REPO / "edgekit/data/digits_cnn.onnx")
    bundle = tmp_path / f"digits-{target}.ekb"
    compile_bundle(graph, target, bundle, backend="tvm")
    with np.load(REPO / "edgekit/data/digits_samples.npz") as z:
        xs = np.ascontiguousarray(z["x"][:16].transpose(0, 2, 3, 1)).reshape(16, 1, 8, 8, 1)   # NCHW -> NHWC
    np.save(tmp_path / "x.npy", xs)
    root = Path(SYSROOT) / "root"
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{REPO}:{Path(SYSROOT) / 'site'}",
           "TVM_NUM_THREADS": "1"}
    res = subprocess.run(["qemu-aarch64", "-cpu", cpu, "-L", str(root), str(root / "usr/bin/python3.11"), "-c", RUN,
                          str(tmp_path / "x.npy"), str(bundle), target, str(tmp_path / "y.npy")],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    describe, libs = res.stdout.strip().splitlines()[-2:]
    assert "libtvm_runtime only" in describe and cpu in describe
    assert libs == "[]"
    got = np.load(tmp_path / "y.npy")
    want = np.stack([edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]] for x in xs])
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-5)
    assert (got.reshape(16, -1).argmax(1) == want.reshape(16, -1).argmax(1)).all()
