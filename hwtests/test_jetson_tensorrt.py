"""A Jetson bundle on TensorRT for real: the tensorrt engine builds an engine on first
open, caches it, a second process re-opens it from the cache, a damaged cache file is
rebuilt, and every open reproduces the bundle's golden vectors (the reference
interpreter's outputs) through TensorRT, not its onnxruntime fallback (``fallback=none``).

Where it runs (docs/runtime.md, "Jetson"):
- ``EDGEKIT_JETSON_SSH=user@host``: a Jetson reached with OpenSSH. The bundle, the
  ``edgekit`` package folder and the check script are copied with ``scp`` into a fresh
  folder there and run by ``$EDGEKIT_JETSON_PYTHON`` (default ``python3``, the image's
  system Python with TensorRT, cuda-python and numpy).
- otherwise this machine, when it has TensorRT, cuda-python and a CUDA GPU.
Skips (allowed everywhere, CI included) when neither is available.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import edgekit
from edgekit.bundle import compile_bundle
from edgekit.ir import QuantParams

REPO = Path(__file__).resolve().parents[1]
TARGET = "jetson-orin-nano"
SSH = os.environ.get("EDGEKIT_JETSON_SSH")
REMOTE_PYTHON = os.environ.get("EDGEKIT_JETSON_PYTHON", "python3")

pytestmark = pytest.mark.allow_skip("needs a Jetson (EDGEKIT_JETSON_SSH=user@host) or a machine with TensorRT, "
                                    "cuda-python and a CUDA GPU; none is part of the test machines")

# Run on the device: open the bundle on TensorRT only, self-test, report the cache status.
CHECK = """
import json, sys
import edgekit.runtime as rt
bundle, cache, damage = sys.argv[1], sys.argv[2], sys.argv[3] == "damage"
if damage:
    import os
    for name in os.listdir(cache):
        path = os.path.join(cache, name)
        data = open(path, "rb").read()
        open(path, "wb").write(data[:-1] + bytes([data[-1] ^ 0xFF]))
with rt.open(bundle, target="%s", engine="tensorrt",
             engine_options={"cache_dir": cache, "fallback": "none"}) as m:
    result = m.self_test()
    print(json.dumps({"runs_on": m._engine.runs_on, "cache_status": m._engine.cache_status,
                      "cache_file": m._engine.cache_file, "describe": m.describe(),
                      "passed": result.passed, "count": result.count, "failures": result.failures[:5]}))
""" % TARGET

PROBE = ("from edgekit.runtime.engines.tensorrt import load_tensorrt\n"
         "lib = load_tensorrt()\n"
         "print(lib.version, *lib.device())\n")


def _symmetric(graph):
    g = graph.copy()
    for t in g.tensors.values():
        if t.quant is not None:
            t.quant = QuantParams(t.quant.scale, tuple(0 for _ in t.quant.zero_point), t.quant.axis)
    return g


class Device:
    """Where the check runs: this machine, or a Jetson over ssh."""

    def __init__(self, tmp_path: Path):
        self.local = SSH is None
        self.tmp = tmp_path
        if self.local:
            self.root = tmp_path
            self.python = [sys.executable]
        else:
            for tool in ("ssh", "scp"):
                if shutil.which(tool) is None:
                    pytest.skip(f"EDGEKIT_JETSON_SSH is set but {tool} is not installed")
            self.root = Path(self._ssh("mktemp -d /tmp/edgekit-trt-XXXXXX").strip())
            self.python = shlex.split(REMOTE_PYTHON)
            subprocess.run(["scp", "-q", "-r", str(REPO / "edgekit"), f"{SSH}:{self.root}/edgekit"], check=True,
                           timeout=600)

    def _ssh(self, command: str) -> str:
        res = subprocess.run(["ssh", SSH, command], capture_output=True, text=True, timeout=1800)
        if res.returncode != 0:
            raise AssertionError(f"ssh {SSH} {command!r} failed: {res.stderr.strip()}")
        return res.stdout

    def put(self, path: Path) -> str:
        if self.local:
            return str(path)
        subprocess.run(["scp", "-q", str(path), f"{SSH}:{self.root}/{path.name}"], check=True, timeout=600)
        return f"{self.root}/{path.name}"

    def python_run(self, code: str, *args: str) -> subprocess.CompletedProcess:
        script = self.tmp / "check.py"
        script.write_text(code)
        remote_script = self.put(script)
        if self.local:
            env = dict(os.environ, PYTHONPATH=str(REPO))
            return subprocess.run([*self.python, remote_script, *args], capture_output=True, text=True,
                                  timeout=1800, env=env)
        command = " ".join(shlex.quote(a) for a in [*self.python, remote_script, *args])
        return subprocess.run(["ssh", SSH, f"cd {shlex.quote(str(self.root))} && PYTHONPATH=. {command}"],
                              capture_output=True, text=True, timeout=1800)

    def close(self) -> None:
        if not self.local:
            self._ssh(f"rm -rf {shlex.quote(str(self.root))}")


@pytest.fixture
def jetson(tmp_path):
    if SSH is None and (importlib.util.find_spec("tensorrt") is None or importlib.util.find_spec("cuda") is None):
        pytest.skip("no Jetson given (EDGEKIT_JETSON_SSH=user@host) and this machine lacks TensorRT or cuda-python")
    dev = Device(tmp_path)
    probe = dev.python_run(PROBE)
    if probe.returncode != 0:
        lines = (probe.stderr.strip() or probe.stdout.strip() or "no output").splitlines()
        if SSH is None:
            pytest.skip(f"TensorRT cannot run here: {lines[-1]}")
        raise AssertionError(f"TensorRT does not run on {SSH}: {lines[-1]}")
    yield dev
    dev.close()


def _check(device, bundle: str, cache: str, damage: bool = False) -> dict:
    res = device.python_run(CHECK, bundle, cache, "damage" if damage else "keep")
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["runs_on"] == "tensorrt", report
    assert report["passed"] and report["count"] == 4, report["failures"]
    return report


@pytest.mark.parametrize("precision", ["float32", "int8"])
def test_tensorrt_builds_caches_and_reopens_with_golden_outputs(jetson, tmp_path, precision):
    graph = edgekit.load_model(REPO / "edgekit/data/digits_cnn.onnx")
    if precision == "int8":
        from tests.backends.c.graphs import cases

        graph = _symmetric(cases()["handmade"])   # TensorRT takes symmetric int8 only
    result = compile_bundle(graph, TARGET, tmp_path / "model.ekb", backend="tensorrt")
    bundle = jetson.put(result.bundle.path)
    cache = f"{jetson.root}/trt-cache"
    first = _check(jetson, bundle, cache)
    assert first["cache_status"] == "built (not cached yet)", first
    second = _check(jetson, bundle, cache)          # another process: the engine comes from the cache
    assert second["cache_status"] == "loaded from cache" and second["cache_file"] == first["cache_file"], second
    onnx_sha = result.manifest["files"]["model.onnx"]["sha256"]
    assert onnx_sha[:16] in first["cache_file"] and ("int8" if precision == "int8" else "fp32") in first["cache_file"]
    third = _check(jetson, bundle, cache, damage=True)
    assert third["cache_status"].startswith("built (cache file is corrupt"), third
    fourth = _check(jetson, bundle, cache)
    assert fourth["cache_status"] == "loaded from cache", fourth
    print(first["describe"])
