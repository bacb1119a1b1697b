"""The TVM backend and the tvm runtime engine: float models compiled for x86_64 through
TVM and run through ``edgekit.runtime`` against two independent oracles, edgekit's
reference interpreter and onnxruntime's exact semantics (ORT_DISABLE_ALL) on the ONNX
edgekit writes for the same graph; int8 (which TVM 0.27 runs as float) against the same
onnxruntime session; aarch64 cross-compiles; the engine's refusals; the CLI; and, in a
fresh interpreter, that a device process runs a bundle with TVM's runtime library only.

Float tolerance: |tvm - oracle| <= 1e-5 max(1, max |oracle|) + 1e-4 |oracle|. TVM's loops
add in another order than the reference's numpy or onnxruntime's MLAS, and float32 sums of
640 products of values up to ~60 (AD on its real windows) differ in the last bits: measured
up to 7.4e-4 (8e-5 relative) between TVM and the reference there, 2.4e-4 between
onnxruntime and the reference; 2e-6 on digits, 1e-7 on KWS.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
import edgekit.runtime as rt
from edgekit.bundle import BundleError, compile_bundle, verify, write_bundle
from edgekit.errors import BadInputError
from tests.support.ort_oracle import exact_session
from tests.support.shared import REPO, shared_file

pytest.importorskip("tvm", reason="the tvm extra is not installed: pip install 'edgekit[tvm]'")

DIGITS = "edgekit/data/digits_cnn.onnx"
AD = "models/mlperf-tiny/ad01_fp32.tflite"
KWS_FLOAT = "models/mlperf-tiny/kws_ref_model_float32.tflite"
KWS_INT8 = "models/mlperf-tiny/kws_ref_model_int8.tflite"
RTOL = 1e-4


def assert_close(got, want):
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-5 * max(1.0, float(np.abs(want).max())))
N = 20


@pytest.fixture(scope="module", autouse=True)
def full_tvm():
    # Compiles below need TVM's compiler in this process: load it before any bundle is
    # opened (the engine would otherwise load the runtime library alone, for good).
    from edgekit.backends.tvm import import_tvm_compiler

    import_tvm_compiler()


def _oracle_graph(graph):
    """The graph as the bundle compiler lowers it (hybrid weights dequantized)."""
    from edgekit.ir.passes import run_passes

    g = graph.copy()
    run_passes(g, ["dequantize_weights"])
    return g


def _run_all(model, xs):
    name, out = model.inputs[0].name, model.outputs[0].name
    return np.stack([model.run({name: np.ascontiguousarray(x)})[out] for x in xs])


def _reference(graph, xs):
    return np.stack([edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]] for x in xs])


def _ort(graph, xs):
    from edgekit.backends.onnx import to_onnx

    sess = exact_session(to_onnx(graph, layout="ir"))
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: x})[0] for x in xs])


def _inputs(name, shape):
    rng = np.random.default_rng(7)
    if name == "digits":
        with np.load(REPO / "edgekit/data/digits_samples.npz") as z:
            return np.ascontiguousarray(z["x"][:N].transpose(0, 2, 3, 1)).reshape(N, *shape)  # NCHW -> NHWC
    if name == "ad":
        windows = np.load(shared_file("data/ad01/normal_id_01_00000000_windows_f32_196x640.npy"))
        return windows[:N].astype(np.float32).reshape(N, *shape)
    return rng.standard_normal((N, *shape)).astype(np.float32)


@pytest.mark.parametrize("name", ["digits", "ad", "kws"])
def test_float_model_on_x86_64_matches_reference_and_onnxruntime(name, tmp_path):
    path = {"digits": REPO / DIGITS, "ad": shared_file(AD), "kws": shared_file(KWS_FLOAT)}[name]
    graph = edgekit.load_model(path)
    result = compile_bundle(graph, "x86_64", tmp_path / f"{name}.ekb", backend="tvm")
    assert result.backend == result.engine == "tvm" and result.reason == "--backend tvm"
    info = json.loads(result.bundle.read("tvm_module.json"))
    assert info["tvm_target"] == {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "x86-64-v3"}
    assert info["machine"] == "x86_64" and info["int8_as_float"] is False
    oracle = _oracle_graph(graph)
    with rt.open(result.bundle.path, target="x86_64", engine="tvm") as m:
        assert m.describe().startswith("Apache TVM 0.27")
        xs = _inputs(name, m.inputs[0].shape)
        got = _run_all(m, xs)
        assert got.dtype == np.float32
        assert m.self_test()
    assert_close(got, _reference(oracle, xs))
    assert_close(got, _ort(oracle, xs))
    if name == "digits":   # and it classifies the held-out digits as the model does
        assert (got.reshape(N, -1).argmax(1) == _reference(oracle, xs).reshape(N, -1).argmax(1)).all()


def test_int8_model_runs_as_float_and_says_so(tmp_path):
    graph = edgekit.load_model(shared_file(KWS_INT8))
    result = compile_bundle(graph, "x86_64", tmp_path / "kws8.ekb", backend="tvm")
    assert "runs int8 (QDQ) models as float" in result.reason and "litert (or c)" in result.reason
    assert result.manifest["compile"]["backend_reason"] == result.reason
    assert json.loads(result.bundle.read("tvm_module.json"))["int8_as_float"] is True
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        xs = z["x_int8"][:N].reshape(N, 1, 49, 10, 1)
    with rt.open(result.bundle.path) as m:
        got = _run_all(m, xs)
        assert m.self_test()
    assert got.dtype == np.int8
    # the same dequantize / float op / quantize steps as onnxruntime's exact QDQ path
    assert np.array_equal(got, _ort(graph, xs))
    ref = _reference(graph, xs)
    # and within the golden tolerance of float-requantizing engines from edgekit's TFLM semantics
    assert int(np.abs(got.astype(int) - ref.astype(int)).max()) <= result.manifest["golden"]["int_steps_other"]


@pytest.mark.parametrize("target,cpu", [("rpi4", "cortex-a72"), ("rpi5", "cortex-a76"),
                                        ("jetson-nano", "cortex-a57")])
def test_aarch64_compile_gives_a_verified_aarch64_shared_object(target, cpu, tmp_path):
    graph = edgekit.load_model(REPO / DIGITS)
    out = tmp_path / f"{target}.ekb"
    result = compile_bundle(graph, target, out, backend="tvm")
    # the Jetson Nano's sm_53 is below what CUDA 13 (TVM 0.27's CUDA runtime) supports
    assert ("runs on the Arm CPU cores: TVM 0.27's CUDA runtime needs CUDA 13" in result.reason) == \
        target.startswith("jetson")
    assert result.manifest["compile"]["tvm"] == {"device": "cpu", "cuda": None, "tuning": None}
    info = json.loads(result.bundle.read("tvm_module.json"))
    assert info["tvm_target"] == {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": cpu, "mattr": ["+neon"]}
    so = tmp_path / "model.so"
    with zipfile.ZipFile(out) as zf:
        so.write_bytes(zf.read("model.so"))
    header = subprocess.run(["readelf", "-h", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    assert "Machine:                           AArch64" in header and "DYN (Shared object file)" in header
    needed = sorted(line.split("[")[1].rstrip("]") for line in header.splitlines() if "(NEEDED)" in line)
    assert needed == ["libc.so.6"]        # nothing of TVM's: the runtime library is the device's
    assert verify(out, target=target, engine="tvm").files == ["golden.npz", "model.so", "tvm_module.json"]
    with pytest.raises(BundleError, match="compiled for aarch64 .*this machine is x86_64"):
        rt.open(out)


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("tvm") / "digits"
    compile_bundle(edgekit.load_model(REPO / DIGITS), "x86_64", out, backend="tvm")
    return out


def _rewritten(bundle_dir, out, **changes):
    """A copy of the bundle with tvm_module.json changed and the manifest's hashes
    rewritten to match (what a bundle from another TVM or machine looks like)."""
    b = verify(bundle_dir)
    files = {n: b.read(n) for n in b.files}
    info = json.loads(files["tvm_module.json"])
    info.update(changes)
    files["tvm_module.json"] = json.dumps(info).encode()
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    return write_bundle(out, manifest, files).path


def test_engine_refuses_another_tvm_release(digits_bundle, tmp_path):
    path = _rewritten(digits_bundle, tmp_path / "old.ekb", tvm_version="0.26.0")
    with pytest.raises(rt.EngineUnavailableError, match="compiled with TVM 0.26.0; .*install apache-tvm==0.26.0"):
        rt.open(path)


def test_engine_refuses_a_library_for_another_machine_than_declared(digits_bundle, tmp_path):
    path = _rewritten(digits_bundle, tmp_path / "lie.ekb", machine="aarch64")
    with pytest.raises(BundleError, match="model.so is x86_64, but tvm_module.json says aarch64"):
        rt.open(path)


def test_engine_refuses_options_and_a_tampered_library(digits_bundle, tmp_path):
    with pytest.raises(BadInputError, match="unknown engine option"):
        rt.open(digits_bundle, engine_options={"num_threads": 2})
    b = verify(digits_bundle)
    files = {n: b.read(n) for n in b.files}
    files["model.so"] = b"\x7fELF" + bytes(60)      # hashes rewritten: only the load can tell
    manifest = {k: v for k, v in b.manifest.items() if k != "files"}
    bad = write_bundle(tmp_path / "bad.ekb", manifest, files).path
    with pytest.raises(BundleError):
        rt.open(bad)


def test_cli_compile_and_run(tmp_path):
    from edgekit.cli.main import _register, cli

    _register()
    runner = CliRunner()
    out, y = tmp_path / "b", tmp_path / "y.npy"
    x = _inputs("digits", (1, 8, 8, 1))[:3]
    np.save(tmp_path / "x.npy", x.reshape(3, 8, 8, 1))     # 3 samples along the batch axis
    r = runner.invoke(cli, ["compile", str(REPO / DIGITS), "--target", "x86_64", "--backend", "tvm", "--out",
                            str(out)], catch_exceptions=False, env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert "backend tvm, engine tvm" in r.output
    r = runner.invoke(cli, ["run", str(out), "--input", str(tmp_path / "x.npy"), "--out", str(y)],
                      catch_exceptions=False, env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    graph = edgekit.load_model(REPO / DIGITS)
    assert_close(np.load(y).reshape(3, -1), _reference(graph, x).reshape(3, -1))
    r = runner.invoke(cli, ["compile", str(REPO / DIGITS), "--target", "cortex-m4", "--backend", "tvm", "--out",
                            str(tmp_path / "m")], catch_exceptions=False, env={"COLUMNS": "300"})
    assert r.exit_code == 2 and "microcontroller" in r.output and "Traceback" not in r.output


def test_device_process_runs_a_bundle_with_the_tvm_runtime_library_only(digits_bundle):
    """A fresh interpreter opens, runs and self-tests the bundle: TVM loaded runtime-only
    (no tvm.relax), torch not imported although installed, no edgekit compiler stage; a
    compile in that process is then refused with the reason."""
    stages = ("edgekit.backends", "edgekit.quantize", "edgekit.frontends", "edgekit.ir", "edgekit.reference",
              "edgekit.bundle.bundle_compiler")
    code = ("import sys, os\n"
            "import numpy as np\n"
            "import edgekit.runtime\n"
            f"with edgekit.runtime.open({str(digits_bundle)!r}) as m:\n"
            "    m.run({s.name: np.zeros(s.shape, s.dtype) for s in m.inputs})\n"
            "    assert m.self_test()\n"
            "    print(m.describe())\n"
            "print(sorted(k for k in sys.modules if k.startswith('tvm.relax') or k.split('.')[0] == 'torch'))\n"
            f"print(sorted({{s for k in sys.modules for s in {stages!r} if k == s or k.startswith(s + '.')}}))\n"
            "print(os.environ.get('TVM_USE_RUNTIME_LIB'))\n"
            "from edgekit.backends.tvm import TvmUnavailableError, import_tvm_compiler\n"
            "try:\n"
            "    import_tvm_compiler()\n"
            "except TvmUnavailableError as e:\n"
            "    print(e)\n")
    env = {k: v for k, v in os.environ.items() if k != "TVM_USE_RUNTIME_LIB"}
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    describe, libs, loaded, env_after, refusal = res.stdout.strip().splitlines()
    assert "libtvm_runtime only" in describe
    assert libs == "[]" and loaded == "[]"
    assert env_after == "None"         # the engine leaves the environment as it found it
    assert "loaded runtime-only in this process" in refusal


def test_without_tvm_compile_and_engine_say_what_to_install(digits_bundle):
    code = ("import sys\n"
            "sys.modules['tvm'] = None\n"            # `import tvm` raises ImportError, as when it is absent
            "import edgekit.runtime as rt\n"
            "from edgekit.backends.tvm import TvmUnavailableError, import_tvm_compiler\n"
            "try:\n"
            "    import_tvm_compiler()\n"
            "except TvmUnavailableError as e:\n"
            "    print(e.exit_code, e)\n"
            "try:\n"
            f"    rt.open({str(digits_bundle)!r})\n"
            "except rt.EngineUnavailableError as e:\n"
            "    print(e.exit_code, e)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    compiler, engine = res.stdout.strip().splitlines()
    assert compiler.startswith("1 ") and "pip install 'edgekit[tvm]'" in compiler
    assert engine.startswith("1 ") and "pip install apache-tvm==0.27.0.post1" in engine
