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
    # The runtime with every engine, and the CLI with its device commands (run and bench on a
    # bundle, flash of a package file, device): what `pip install 'edgekit[runtime-...]'` runs.
    code = ("import importlib, sys\n"
            "import edgekit.runtime\n"
            "for name in edgekit.runtime.engine_names():\n"
            "    importlib.import_module('edgekit.runtime.engines.' + name)\n"
            "from edgekit.cli.main import COMMANDS\n"
            "for spec in COMMANDS.values():\n"
            "    if spec.needs == 'device': importlib.import_module('edgekit.cli.' + spec.module)\n"
            "import edgekit.device.client, edgekit.device.qemu, edgekit.reference.inputs\n"
            "print('\\n'.join(sorted(m.__file__ for n, m in sys.modules.items() if n.split('.')[0] == 'edgekit')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    files = res.stdout.split()
    assert any(f.endswith("runtime/model.py") for f in files) and any(f.endswith("bundle_reader.py") for f in files)
    assert any(f.endswith("cli/bundle_cmds.py") for f in files) and any(f.endswith("device/client.py") for f in files)
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
    if exe and not shutil.which(exe):   # named but not there: a broken set-up, not an absent one
        pytest.fail(f"EDGEKIT_DEVICE_PYTHON={exe} is not an executable")
    return exe or None


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


OLD_PYTHON_REASON = ("needs an old device-image Python with numpy and an engine, named by $EDGEKIT_DEVICE_PYTHON "
                     "(scripts/device_python.sh builds one); not part of the standard install")
# What the old interpreter runs: bundles the host compiled, through edgekit.runtime, outputs
# and the runtime's own figures written to an .npz the host compares.
_RUN_BUNDLE = """
import json, sys
import numpy as np
import edgekit.runtime as rt
bundle, options, feeds_file, out_file = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
with np.load(feeds_file) as z:
    xs = z["x"]
with rt.open(bundle, engine_options=options) as m:
    name, out = m.inputs[0].name, m.outputs[0].name
    ys = np.concatenate([m.run({name: np.ascontiguousarray(xs[i:i + 1])})[out] for i in range(len(xs))])
    check = m.self_test()
    np.savez(out_file, y=ys)
    print(json.dumps({"python": list(sys.version_info[:3]), "numpy": np.__version__, "engine": m.describe(),
                      "self_test": bool(check.passed), "failures": [str(f) for f in check.failures]}))
"""
# Options that make each engine follow fixed semantics, the same on every CPU and version:
# LiteRT's reference kernels (TFLM's int8 arithmetic), onnxruntime with each QDQ op as written.
_EXACT_OPTIONS = {"litert": {"op_resolver": "reference", "num_threads": 1},
                  "onnxruntime": {"graph_optimization": "disable", "num_threads": 1}}


def _old_engines(exe: str) -> dict[str, str]:
    """engine -> the library that provides it in the old interpreter."""
    code = ("import importlib.util as u\n"
            "for e, m in (('litert', 'ai_edge_litert'), ('litert', 'tflite_runtime'),\n"
            "             ('onnxruntime', 'onnxruntime')):\n"
            "    if u.find_spec(m): print(e, m)\n")
    res = subprocess.run([exe, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return dict(line.split() for line in reversed(res.stdout.splitlines()))


def _run_old(exe: str, args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([exe, *map(str, args)], cwd=REPO, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, PYTHONPATH=str(REPO), NO_COLOR="1", COLUMNS="200"))


@pytest.mark.allow_skip(OLD_PYTHON_REASON)
def test_engines_under_an_old_python_match_the_host(tmp_path):
    """Bundles compiled here (Python 3.11) run under the old interpreter with each engine it
    has: LiteRT's reference kernels give edgekit's reference interpreter's int8 results bit for
    bit; onnxruntime (an older release there) gives the host's onnxruntime's; each bundle's
    self-test passes."""
    exe = _old_python()
    if exe is None:
        pytest.skip("set EDGEKIT_DEVICE_PYTHON to a Python 3.8/3.9 with numpy and an engine installed "
                    "(scripts/device_python.sh)")
    import json

    import numpy as np

    import edgekit
    import edgekit.runtime as rt
    from edgekit.bundle import compile_bundle
    from tests.backends.c.graphs import cases

    engines = _old_engines(exe)
    assert engines, f"{exe} has no engine installed"
    graphs = {k: v for k, v in cases().items() if k in ("handmade", "convs")}
    rng = np.random.default_rng(3)
    seen = []
    for gname, graph in graphs.items():
        spec = graph.tensor(graph.inputs[0])
        xs = rng.integers(-128, 128, size=(12, *spec.shape[1:]), dtype=np.int8)
        np.savez(tmp_path / f"{gname}_x.npz", x=xs)
        expected = np.concatenate([edgekit.run(graph, {graph.inputs[0]: xs[i:i + 1]})[graph.outputs[0]]
                                   for i in range(len(xs))])
        for engine in sorted(engines):
            path = compile_bundle(graph, "x86_64", tmp_path / f"{gname}_{engine}.ekb", backend=engine).bundle.path
            out = tmp_path / f"{gname}_{engine}_y.npz"
            res = _run_old(exe, ["-c", _RUN_BUNDLE, path, json.dumps(_EXACT_OPTIONS[engine]),
                                 tmp_path / f"{gname}_x.npz", out])
            assert res.returncode == 0, res.stdout + res.stderr
            report = json.loads(res.stdout.splitlines()[-1])
            assert report["self_test"], report
            assert tuple(report["python"][:2]) < tuple(sys.version_info[:2])
            with np.load(out) as z:
                got = z["y"]
            if engine == "litert":
                assert np.array_equal(got, expected), f"{gname}: {report['engine']} differs from the reference"
            else:
                with rt.open(path, engine_options=_EXACT_OPTIONS[engine]) as m:
                    name, oname = m.inputs[0].name, m.outputs[0].name
                    here = np.concatenate([m.run({name: xs[i:i + 1]})[oname] for i in range(len(xs))])
                assert np.array_equal(got, here), f"{gname}: {report['engine']} differs from the host's onnxruntime"
            seen.append((gname, report["engine"], report["numpy"]))
    assert len(seen) == len(graphs) * len(engines), seen


@pytest.mark.allow_skip(OLD_PYTHON_REASON)
def test_cli_device_commands_under_an_old_python(tmp_path):
    """The edgekit command under the old interpreter, with the base install and an engine: help,
    run and bench on a bundle work; compile, and run on a model file, exit 2 naming what to
    install and the Python the compiler needs."""
    exe = _old_python()
    if exe is None:
        pytest.skip("set EDGEKIT_DEVICE_PYTHON to a Python 3.8/3.9 with numpy and an engine installed "
                    "(scripts/device_python.sh)")
    import json

    import numpy as np

    import edgekit.runtime as rt
    from edgekit.backends.tflite import write_tflite
    from edgekit.bundle import compile_bundle
    from tests.backends.c.graphs import cases

    engine = sorted(_old_engines(exe))[0]
    graph = cases()["handmade"]
    bundle = compile_bundle(graph, "x86_64", tmp_path / "m.ekb", backend=engine).bundle.path
    model_file = tmp_path / "m.tflite"
    write_tflite(graph, model_file)
    spec = graph.tensor(graph.inputs[0])
    xs = np.random.default_rng(5).integers(-128, 128, size=(3, *spec.shape[1:]), dtype=np.int8)
    np.save(tmp_path / "x.npy", xs)
    edgekit_cmd = ["-m", "edgekit.cli.main"]

    res = _run_old(exe, [*edgekit_cmd, "--help"])
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line.startswith("  ") and line.split()}
    assert "needs Python 3.11+" in lines["compile"] and "edgekit[compiler]" in lines["compile"]
    assert "needs" not in lines["run"] and "needs" not in lines["bench"]

    res = _run_old(exe, [*edgekit_cmd, "run", bundle, "--input", tmp_path / "x.npy", "--out", tmp_path / "y.npy"])
    assert res.returncode == 0, res.stdout + res.stderr
    with rt.open(bundle) as m:   # the same engine's default path here
        name, oname = m.inputs[0].name, m.outputs[0].name
        here = np.concatenate([m.run({name: xs[i:i + 1]})[oname] for i in range(len(xs))])
    got = np.load(tmp_path / "y.npy")
    assert got.shape == here.shape and got.dtype == here.dtype
    assert np.abs(got.astype(int) - here.astype(int)).max() <= 1   # default (fast) kernels of two releases

    res = _run_old(exe, [*edgekit_cmd, "bench", bundle, "--runs", "20", "--warmup", "2", "--json"])
    assert res.returncode == 0, res.stdout + res.stderr
    figures = json.loads(res.stdout)
    assert figures["runs"] == 20 and 0 < figures["min_us"] <= figures["p50_us"] <= figures["p99_us"]

    for args in (["compile", model_file, "--target", "x86_64", "--out", tmp_path / "out"],
                 ["run", model_file, "--input", tmp_path / "x.npy"],
                 ["compile", "--help"]):
        res = _run_old(exe, [*edgekit_cmd, *args])
        assert res.returncode == 2, res.stdout + res.stderr
        message = " ".join(res.stderr.split())
        assert "pip install 'edgekit[compiler]'" in message and "Python 3.11 or newer" in message, message
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.allow_skip(OLD_PYTHON_REASON)
def test_flash_and_device_commands_under_an_old_python(tmp_path):
    """A board with edgekit's firmware (QEMU mps2-an386) driven by the old interpreter's
    edgekit: flash a package file the host packed, read it back as the active model, and run
    inferences whose outputs are the reference interpreter's, bit for bit."""
    exe = _old_python()
    if exe is None:
        pytest.skip("set EDGEKIT_DEVICE_PYTHON to a Python 3.8/3.9 with numpy and an engine installed "
                    "(scripts/device_python.sh)")
    import json

    import numpy as np

    from edgekit.bundle import pack_model, read_package_header
    from edgekit.device.qemu import QemuBoard
    from edgekit.hil import prepare_inputs, reference_outputs
    from tests.device import models

    graph, x = models.digits()
    package = tmp_path / "digits.ekpkg"
    package.write_bytes(pack_model(graph, "cortex-m4", name="digits-old"))
    feeds = prepare_inputs(graph, x[:4])
    xq = feeds[graph.inputs[0]]
    np.save(tmp_path / "x.npy", xq)
    edgekit_cmd = ["-m", "edgekit.cli.main"]
    with QemuBoard("cortex-m4", models.slot_elf("cortex-m4")) as board:
        board.connect().close()   # QEMU serves one connection at a time: free it for the CLI
        res = _run_old(exe, [*edgekit_cmd, "flash", package, "--port", board.url])
        assert res.returncode == 0, res.stdout + res.stderr
        assert "flashed 'digits-old' to slot" in res.stdout
        res = _run_old(exe, [*edgekit_cmd, "device", "info", "--port", board.url, "--json"])
        assert res.returncode == 0, res.stdout + res.stderr
        info = json.loads(res.stdout)
        active = [s for s in info["info"]["slots"] if s["state"] == "active"]
        assert [s["name"] for s in active] == ["digits-old"]
        assert active[0]["model_hash"] == read_package_header(package.read_bytes()).model_id
        res = _run_old(exe, [*edgekit_cmd, "device", "infer", "--port", board.url, "--input", tmp_path / "x.npy",
                             "--out", tmp_path / "y.npy"])
        assert res.returncode == 0, res.stdout + res.stderr
    want = reference_outputs(graph, feeds)[graph.outputs[0]]
    assert np.array_equal(np.load(tmp_path / "y.npy").reshape(want.shape), want)
