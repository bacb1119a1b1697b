"""The device side runs on the board images' system Pythons, down to 3.8 (JetPack 5;
docs/runtime.md). Checked statically over exactly the modules ``import edgekit.runtime``
loads (with every engine module): vermin for syntax and standard-library APIs newer than 3.8,
ruff's 3.8 syntax check and FA102 (PEP 604/585 annotations need the __future__ import)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MIN_PYTHON = "3.8"


def device_files() -> list[str]:
    code = ("import importlib, sys\n"
            "import edgekit.runtime\n"
            "for name in edgekit.runtime.engine_names():\n"
            "    importlib.import_module('edgekit.runtime.engines.' + name)\n"
            "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'edgekit')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    files = res.stdout.split()
    assert any(f.endswith("runtime/model.py") for f in files) and any(f.endswith("bundle_reader.py") for f in files)
    return files


def test_device_modules_need_no_python_newer_than_the_minimum():
    pytest.importorskip("vermin", reason="vermin is a dev dependency: pip install 'edgekit[dev]'")
    files = device_files()
    res = subprocess.run([sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())",
                          f"-t={MIN_PYTHON}-", "--violations", "--no-tips", "--no-parse-comments", *files],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--target-version", "py38",
                          "--select", "FA102", *files], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_the_checkers_catch_newer_code(tmp_path):
    """The two checks above fail on code a 3.8 interpreter cannot run."""
    pytest.importorskip("vermin", reason="vermin is a dev dependency: pip install 'edgekit[dev]'")
    bad = tmp_path / "newer.py"
    bad.write_text("def f(x: int | None):\n    return 'ab'.removeprefix('a')\n")
    res = subprocess.run([sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())",
                          f"-t={MIN_PYTHON}-", "--violations", "--no-tips", str(bad)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "str.removeprefix" in res.stdout
    res = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated", "--target-version",
                          "py38", "--select", "FA102", str(bad)], capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "FA102" in res.stdout


def _old_python() -> str | None:
    """An interpreter older than this one with numpy and an engine installed, named by
    $EDGEKIT_DEVICE_PYTHON (e.g. a Python 3.8 venv with numpy<2 and tflite-runtime)."""
    exe = os.environ.get("EDGEKIT_DEVICE_PYTHON")
    return exe if exe and shutil.which(exe) else None


@pytest.mark.allow_skip("needs an old device-image Python with numpy and an engine, named by "
                        "$EDGEKIT_DEVICE_PYTHON; not part of the standard install")
def test_runtime_runs_a_bundle_under_an_old_python(tmp_path):
    exe = _old_python()
    if exe is None:
        pytest.skip("set EDGEKIT_DEVICE_PYTHON to a Python 3.8/3.9 with numpy and an engine installed")
    from edgekit.bundle import compile_bundle
    from tests.backends.c.graphs import cases

    engines = subprocess.run([exe, "-c", "import importlib.util as u; print(' '.join(n for n, m in ("
                              "('litert', 'ai_edge_litert'), ('litert', 'tflite_runtime'), "
                              "('onnxruntime', 'onnxruntime')) if u.find_spec(m)))"],
                             capture_output=True, text=True, timeout=60).stdout.split()
    assert engines, f"{exe} has no engine installed"
    for engine in sorted(set(engines)):
        path = compile_bundle(cases()["handmade"], "rpi4", tmp_path / f"{engine}.ekb", backend=engine).bundle.path
        code = ("import sys, numpy as np, edgekit.runtime as rt\n"
                f"m = rt.open({str(path)!r})\n"
                "m.run({s.name: np.zeros(s.shape, s.dtype) for s in m.inputs})\n"
                "r = m.self_test()\n"
                "print(sys.version_info[:2], np.__version__, m.describe(), r.passed, r.failures)\n"
                "sys.exit(0 if r.passed else 1)\n")
        res = subprocess.run([exe, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert res.returncode == 0, res.stdout + res.stderr
