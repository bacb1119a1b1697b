"""A TVM CUDA bundle for the Jetson Orin Nano run for real on its GPU: compiled here
(aarch64 host code cross-linked, CUDA source for sm_87), opened by edgekit.runtime's tvm
engine on ``tvm.cuda(0)`` (NVRTC compiles the kernels at load), golden vectors passed,
and the digits classified as the reference interpreter does.

Where it runs (docs/runtime.md, "TVM on a Jetson's GPU"):
- ``EDGEKIT_JETSON_SSH=user@host``: a Jetson reached with OpenSSH; the bundle, the
  ``edgekit`` package folder and the check script are copied with ``scp`` into a fresh
  folder there and run by ``$EDGEKIT_JETSON_PYTHON`` (default ``python3``), which needs
  apache-tvm 0.27, cuda-bindings and CUDA 13 (libcudart.so.13, NVRTC) on the device.
- otherwise this machine, when it is aarch64 and TVM finds a CUDA device here.
Skips (allowed everywhere, CI included) when neither is available.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.bundle import compile_bundle

REPO = Path(__file__).resolve().parents[1]
TARGET = "jetson-orin-nano"
SSH = os.environ.get("EDGEKIT_JETSON_SSH")
REMOTE_PYTHON = os.environ.get("EDGEKIT_JETSON_PYTHON", "python3")

pytestmark = pytest.mark.allow_skip("needs a Jetson with sm_75+ and CUDA 13 (EDGEKIT_JETSON_SSH=user@host), or an "
                                    "aarch64 machine with a CUDA GPU; none is part of the test machines")

CHECK = """
import json, sys
import numpy as np
import edgekit.runtime as rt
xs = np.load(sys.argv[2])
with rt.open(sys.argv[1], target="%s", engine="tvm") as m:
    result = m.self_test()
    ys = [m.run({m.inputs[0].name: x})[m.outputs[0].name].tolist() for x in xs]
    print(json.dumps({"describe": m.describe(), "passed": bool(result), "outputs": ys}))
""" % TARGET


def _local_gpu() -> str | None:
    """None when this machine can run the check, else why not."""
    if platform.machine() != "aarch64":
        return f"this machine is {platform.machine()}, not a Jetson"
    code = ("import edgekit.runtime.engines.tvm as t\n"
            "tvm, _ = t.import_tvm_runtime()\n"
            "import ctypes, os\n"
            "ctypes.CDLL(os.path.join(os.path.dirname(tvm.__file__), 'lib', 'libtvm_runtime_cuda.so'))\n"
            "assert tvm.cuda(0).exist, 'no CUDA device'\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    return None if res.returncode == 0 else (res.stderr.strip().splitlines() or ["no output"])[-1]


def _run_check(tmp_path: Path, bundle: Path, xs: Path) -> dict:
    script = tmp_path / "check.py"
    script.write_text(CHECK)
    if SSH is None:
        res = subprocess.run([sys.executable, str(script), str(bundle), str(xs)], capture_output=True, text=True,
                             timeout=1800, env=dict(os.environ, PYTHONPATH=str(REPO)))
    else:
        for tool in ("ssh", "scp"):
            if shutil.which(tool) is None:
                pytest.skip(f"EDGEKIT_JETSON_SSH is set but {tool} is not installed")
        root = subprocess.run(["ssh", SSH, "mktemp -d /tmp/edgekit-tvm-XXXXXX"], capture_output=True, text=True,
                              check=True, timeout=120).stdout.strip()
        try:
            subprocess.run(["scp", "-q", "-r", str(REPO / "edgekit"), str(script), str(bundle), str(xs),
                            f"{SSH}:{root}/"], check=True, timeout=600)
            command = " ".join(shlex.quote(a) for a in [*shlex.split(REMOTE_PYTHON), "check.py", bundle.name, xs.name])
            res = subprocess.run(["ssh", SSH, f"cd {shlex.quote(root)} && PYTHONPATH=. {command}"],
                                 capture_output=True, text=True, timeout=1800)
        finally:
            subprocess.run(["ssh", SSH, f"rm -rf {shlex.quote(root)}"], capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_tvm_cuda_bundle_runs_on_the_jetson_gpu(tmp_path):
    if SSH is None:
        why = _local_gpu()
        if why:
            pytest.skip(f"no Jetson given (EDGEKIT_JETSON_SSH=user@host) and no GPU here: {why}")
    pytest.importorskip("tvm", reason="the tvm extra is not installed: pip install 'edgekit[tvm]'")
    graph = edgekit.load_model(REPO / "edgekit/data/digits_cnn.onnx")
    bundle = tmp_path / "digits-orin.ekb"
    result = compile_bundle(graph, TARGET, bundle, backend="tvm")
    assert result.manifest["compile"]["tvm"]["device"] == "cuda"
    with np.load(REPO / "edgekit/data/digits_samples.npz") as z:
        xs = np.ascontiguousarray(z["x"][:16].transpose(0, 2, 3, 1)).reshape(16, 1, 8, 8, 1)   # NCHW -> NHWC
    np.save(tmp_path / "x.npy", xs)
    report = _run_check(tmp_path, bundle, tmp_path / "x.npy")
    assert report["passed"], report
    assert "CUDA sm_87 on GPU" in report["describe"], report["describe"]
    got = np.asarray(report["outputs"], dtype=np.float32)
    want = np.stack([edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]] for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert (got.reshape(16, -1).argmax(1) == want.reshape(16, -1).argmax(1)).all()
