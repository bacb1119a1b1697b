"""The base install is the device side: `edgekit` with numpy, click, rich, pyserial and one
engine, and no compiler. Checked in a fresh interpreter where the compiler's packages (and
the other engines, torch, TensorFlow, TVM) cannot be imported, as on a board that ran
`pip install 'edgekit[runtime-onnxruntime]'`; and the extras in pyproject.toml against
what the code imports. Under Python 3.8/3.9 for real: tests/runtime/test_device_python.py."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from edgekit.cli import compiler_check

REPO = Path(__file__).resolve().parents[2]
# Absent in the fresh interpreter: everything but the base install and onnxruntime.
HIDDEN = ("onnx", "flatbuffers", "torch", "tensorflow", "keras", "tvm", "tvm_ffi", "ai_edge_litert",
          "tflite_runtime", "tflite_micro", "sklearn", "torch_pruning")
COMPILER_STAGES = ("edgekit.frontends", "edgekit.backends", "edgekit.quantize", "edgekit.compress", "edgekit.ir",
                   "edgekit.reference", "edgekit.targets", "edgekit.bundle.bundle_compiler")


def edgekit_without_compiler(args, cwd: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Runs `edgekit ARGS` in a fresh interpreter where HIDDEN cannot be imported; returns the
    process and the compiler stages (and libraries) it loaded."""
    code = ("import atexit, json, sys\n"
            f"for name in {HIDDEN!r}: sys.modules[name] = None\n"   # import fails, find_spec says absent
            f"watch = {COMPILER_STAGES + HIDDEN!r}\n"
            "atexit.register(lambda: print('LOADED ' + json.dumps(sorted({w for m, v in sys.modules.items() "
            "if v is not None for w in watch if m == w or m.startswith(w + '.')})), file=sys.stderr))\n"
            "from edgekit.cli.main import main\n"
            "sys.argv = ['edgekit'] + sys.argv[1:]\n"
            "main()\n")
    res = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                         timeout=300, env={"PYTHONPATH": str(REPO), "NO_COLOR": "1", "COLUMNS": "200",
                                           "PATH": "/usr/bin:/bin"})
    loaded = next(json.loads(line[len("LOADED "):]) for line in res.stderr.splitlines() if line.startswith("LOADED "))
    return res, loaded


@pytest.fixture(scope="module")
def onnxruntime_bundle(tmp_path_factory):
    from edgekit.backends.tflite import write_tflite
    from edgekit.bundle import compile_bundle
    from tests.backends.c.graphs import cases

    d = tmp_path_factory.mktemp("base")
    graph = cases()["handmade"]
    bundle = compile_bundle(graph, "x86_64", d / "m.ekb", backend="onnxruntime").bundle.path
    write_tflite(graph, d / "m.tflite")
    x = np.random.default_rng(1).integers(-128, 128, size=graph.tensor(graph.inputs[0]).shape, dtype=np.int8)
    np.save(d / "x.npy", x)
    return d, bundle


def test_help_lists_every_command_and_says_which_need_the_compiler(tmp_path):
    res, loaded = edgekit_without_compiler(["--help"], tmp_path)
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line.startswith("  ") and line.split()}
    from edgekit.cli.main import COMMANDS

    assert set(COMMANDS) <= set(lines)
    for name, spec in COMMANDS.items():
        if spec.needs == "compiler":
            assert "(needs pip install 'edgekit[compiler]')" in lines[name], lines[name]
        else:   # the device commands, and `targets` (Python 3.11 is running here)
            assert "needs" not in lines[name], lines[name]
    assert loaded == ["edgekit.targets"]   # for `targets`' help line: target files, no model compiler


def test_run_and_bench_a_bundle_without_the_compiler(onnxruntime_bundle):
    d, bundle = onnxruntime_bundle
    res, loaded = edgekit_without_compiler(["run", bundle, "--input", d / "x.npy", "--out", d / "y.npy",
                                            "--engine-option", "graph_optimization=disable"], d)
    assert res.returncode == 0, res.stderr
    assert loaded == []
    import edgekit.runtime as rt

    with rt.open(bundle, engine_options={"graph_optimization": "disable"}) as m:
        expected = m.run({m.inputs[0].name: np.load(d / "x.npy")})[m.outputs[0].name]
    assert np.array_equal(np.load(d / "y.npy"), expected)

    res, loaded = edgekit_without_compiler(["bench", bundle, "--runs", "10", "--warmup", "1", "--json"], d)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["runs"] == 10 and loaded == []


@pytest.mark.parametrize("args", [
    ["compile", "m.tflite", "--target", "x86_64", "--out", "out"],
    ["compile", "--help"],
    ["inspect", "m.tflite"],
    ["run", "m.tflite", "--input", "x.npy"],     # run on a model file: the reference interpreter
    ["flash", "m.tflite", "--port", "loop://"],   # a model file is packed by the compiler: refused before connecting
    ["device", "infer", "--port", "loop://", "--input", "x.npy", "--model", "m.tflite"],
])
def test_compiler_commands_exit_2_naming_the_extra(onnxruntime_bundle, args):
    d, _ = onnxruntime_bundle
    res, loaded = edgekit_without_compiler(args, d)
    assert res.returncode == 2, res.stdout + res.stderr
    message = " ".join(res.stderr.split())
    assert "pip install 'edgekit[compiler]'" in message and "onnx, flatbuffers not installed" in message, message
    assert "Traceback" not in res.stderr and not (d / "out").exists()
    assert [m for m in loaded if m.startswith("edgekit.")] == []


def test_targets_needs_python_311_but_not_the_compiler_packages(tmp_path):
    res, _ = edgekit_without_compiler(["targets", "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "cortex-m4" in {t["name"] for t in json.loads(res.stdout)}


def test_what_is_missing_for_the_compiler():
    old = compiler_check.missing_for_compiler((3, 9, 2))
    assert old == "Python 3.11 or newer (this is Python 3.9.2)"
    assert compiler_check.missing_for_compiler((3, 10, 12), needs_packages=False).startswith("Python 3.11")
    assert compiler_check.missing_for_compiler((3, 11, 4)) is None   # this venv has the compiler extra
    with pytest.raises(compiler_check.CompilerMissingError) as err:
        raise compiler_check.CompilerMissingError(compiler_check.compiler_message("edgekit compile", old))
    assert err.value.exit_code == 2 and "pip install 'edgekit[compiler]'" in str(err.value)


# ------------------------------------------------------------------ pyproject.toml's extras


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def names(requirements) -> set[str]:
    """Distribution names of requirement strings ('onnx>=1.15; python_version ...' -> 'onnx')."""
    out = set()
    for r in requirements:
        name = r.split(";")[0].strip()
        for sep in "<>=!~[ ":
            name = name.split(sep)[0]
        out.add(name.lower())
    return out


def test_base_install_is_the_device_side():
    p = project()
    assert p["requires-python"] == ">=3.8"
    base = names(p["dependencies"])
    assert base == {"numpy", "click", "rich", "pyserial"}
    assert "numpy>=1.19" in p["dependencies"]   # numpy 1.x: tflite-runtime needs it


def test_compiler_extra_is_what_the_cli_checks_for():
    extras = project()["optional-dependencies"]
    assert names(extras["compiler"]) == set(compiler_check.COMPILER_MODULES)   # import name = distribution name
    for extra in ("tflite", "onnxruntime", "torch", "tvm", "tensorflow", "all"):
        assert any(r.startswith("edgekit[") and "compiler" in r for r in extras[extra]), extra


def test_runtime_extras_hold_one_engine_and_no_compiler():
    extras = project()["optional-dependencies"]
    compiler_libs = {"onnx", "flatbuffers", "torch", "tensorflow", "tf-keras", "edgekit"}
    engines = {"runtime-litert": {"ai-edge-litert", "tflite-runtime", "numpy"},
               "runtime-tflite": {"tflite-runtime", "numpy"},
               "runtime-onnxruntime": {"onnxruntime"},
               "runtime-tvm": {"apache-tvm", "apache-tvm-ffi"}}
    for extra, allowed in engines.items():
        assert names(extras[extra]) <= allowed and not names(extras[extra]) & compiler_libs, extra
    assert "numpy<2" in extras["runtime-tflite"]
    # all installs into the numpy 2 venv of `make install`: tflite-runtime (numpy < 2) stays out
    assert "runtime-tflite" not in extras["all"][0]
