"""Bundles of the C backend for Linux targets (`--backend c`): the x86_64 bundle opened by
the runtime on the ``c`` engine equals the reference interpreter byte for byte and passes
its self-test; the rpi4 bundle's library and harness, taken out of the bundle, run under
qemu-aarch64 and reproduce the bundle's golden outputs; the runtime refuses the aarch64
library on this machine with a message that says so."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
import edgekit.runtime as rt
from edgekit.bundle import compile_bundle
from edgekit.cli.main import _register, cli
from edgekit.runtime.engines.c import CEngineError
from edgekit.targets import load_target
from tests.support.shared import shared_file

KWS = "models/mlperf-tiny/kws_ref_model_int8.tflite"
_register()
x86_avx2 = pytest.mark.allow_skip("runs the x86_64 (x86-64-v3) build: needs an x86_64 CPU with AVX2")


def _need_x86_avx2():
    flags = ""
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    if platform.machine() != "x86_64" or " avx2" not in flags:
        pytest.skip("the x86_64 target is x86-64-v3: this machine is not x86_64 with AVX2")


def _need_aarch64():
    for tool, pkg in (("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"),
                      ("qemu-aarch64", "qemu-user")):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed: sudo apt-get install -y {pkg}")


@x86_avx2
def test_x86_64_c_bundle_runs_bit_exact_on_the_c_engine(tmp_path):
    _need_x86_avx2()
    graph = edgekit.load_model(shared_file(KWS))
    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        xs = z["x_int8"][:50]
    r = compile_bundle(graph, "x86_64", tmp_path / "kws.ekb", backend="c")
    assert (r.backend, r.engine) == ("c", "c")
    with rt.open(r.bundle.path, target="x86_64", engine="c") as model:
        assert model.engine == "c" and "edgekit C shared library (x86_64" in model.describe()
        assert model.self_test()
        name, out = model.inputs[0].name, model.outputs[0].name
        ours = np.concatenate([model.run({name: xs[i:i + 1]})[out] for i in range(len(xs))])
    ref = np.concatenate([edgekit.run(graph, {graph.inputs[0]: xs[i:i + 1]})[graph.outputs[0]]
                          for i in range(len(xs))])
    assert int((ours != ref).sum()) == 0


@x86_avx2
def test_cli_compile_backend_c_then_run(tmp_path):
    _need_x86_avx2()
    x = np.random.default_rng(0).integers(-128, 128, (3, 49, 10, 1)).astype(np.int8)
    np.save(tmp_path / "x.npy", x)
    runner = CliRunner()
    r = runner.invoke(cli, ["compile", str(shared_file(KWS)), "--target", "x86_64", "--backend", "c", "--out",
                            str(tmp_path / "b")], catch_exceptions=False, env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "c_model.json", "edgekit_harness", "golden.npz", "libedgekit_model.so", "manifest.json"]
    r = runner.invoke(cli, ["run", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"), "--out",
                            str(tmp_path / "y.npz")], catch_exceptions=False, env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    graph = edgekit.load_model(shared_file(KWS))
    want = np.concatenate([edgekit.run(graph, {graph.inputs[0]: x[i:i + 1]})[graph.outputs[0]] for i in range(3)])
    with np.load(tmp_path / "y.npz") as z:
        assert np.array_equal(z[graph.outputs[0]], want)


def test_rpi4_c_bundle_harness_under_qemu_reproduces_the_golden_outputs(tmp_path):
    _need_aarch64()
    from tests.backends.c.graphs import cases

    r = compile_bundle(cases()["convs"], "rpi4", tmp_path / "m.ekb", backend="c")
    ins, outs = r.bundle.golden()
    work = tmp_path / "board"
    work.mkdir()
    with zipfile.ZipFile(r.bundle.path) as zf:
        for name in ("libedgekit_model.so", "edgekit_harness"):
            (work / name).write_bytes(zf.read(name))
    (work / "edgekit_harness").chmod(0o755)
    (work / "in.bin").write_bytes(np.ascontiguousarray(ins[0]).tobytes())
    t = load_target("rpi4")
    proc = subprocess.run([t.emulator.binary, "-L", t.emulator.sysroot, "-cpu", t.emulator.cpu,
                           str(work / "edgekit_harness"), str(work / "in.bin"), str(work / "out.bin")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = np.frombuffer((work / "out.bin").read_bytes(), dtype=outs[0].dtype).reshape(outs[0].shape)
    assert np.array_equal(got, outs[0])
    if platform.machine() == "x86_64":
        with pytest.raises(CEngineError, match="built for aarch64; this machine is x86_64"):
            rt.open(r.bundle.path)
