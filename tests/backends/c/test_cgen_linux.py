"""The C backend for Linux targets: the shared library on x86_64 through the ctypes engine
and its harness, and the aarch64 build run by the harness under qemu-aarch64, all byte for
byte equal to edgekit's reference interpreter (KWS, AD, and the small graphs that cover
every op); the engine's and the builder's refusals."""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import zlib

import numpy as np
import pytest

from edgekit.backends.c.shared_library import (DESCRIPTION_NAME, HARNESS_NAME, LIBRARY_NAME,
                                               build_shared_library)
from edgekit.errors import BadInputError
from edgekit.reference.interpreter import Interpreter
from edgekit.runtime.engines.c import CEngineError, CLibraryModel, elf_machine
from edgekit.targets import load_target
from tests.backends.c import graphs
from tests.backends.c.support import ad_graph, ad_inputs, kws_graph, kws_inputs, require

CASES = graphs.cases()
X86 = platform.machine() == "x86_64"
# CI's machine is not ours to choose: one without AVX2 cannot run the x86-64-v3 build.
x86_avx2 = pytest.mark.allow_skip("runs the x86_64 (x86-64-v3) build: needs an x86_64 CPU with AVX2")


def _cpu_has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


def _need_x86_avx2():
    if not X86 or not _cpu_has_avx2():
        pytest.skip("the x86_64 target is x86-64-v3: this machine is not x86_64 with AVX2")


def _need_aarch64():
    require("gcc")
    if not os.path.isfile("/usr/aarch64-linux-gnu/include/stdio.h"):
        pytest.skip("the aarch64 C library headers are missing: "
                    "sudo apt-get install -y gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
    for tool, pkg in (("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"), ("qemu-aarch64", "qemu-user")):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed: sudo apt-get install -y {pkg}")


def _reference(graph, x):
    return Interpreter(graph).run([x])[graph.outputs[0]]


def _harness_run(result, x, tmp_path, *, emulate=False, repeat=1):
    """Outputs of the harness for inputs x [N, ...] (under qemu-aarch64 when emulate)."""
    fin, fout = tmp_path / "in.bin", tmp_path / "out.bin"
    fin.write_bytes(np.ascontiguousarray(x).tobytes())
    cmd = [str(result.harness), str(fin), str(fout), str(repeat)]
    if emulate:
        t = load_target(result.target)
        cmd = [t.emulator.binary, "-L", t.emulator.sysroot, "-cpu", t.emulator.cpu, *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = result.description["outputs"][0]
    y = np.frombuffer(fout.read_bytes(), dtype=out["dtype"])
    return y.reshape((len(x),) + tuple(out["shape"][1:])), proc.stdout


def _engine_run(result, x):
    model = CLibraryModel(result.library, result.description)
    try:
        return np.concatenate([model.run(xi[None]) for xi in x])
    finally:
        model.close()


# ----------------------------------------------------------------------------- x86_64


@x86_avx2
def test_kws_x86_64_library_equals_reference_on_all_1000_inputs(tmp_path):
    _need_x86_avx2()
    g, x = kws_graph(), kws_inputs()
    result = build_shared_library(g, "x86_64", tmp_path / "kws")
    assert {k["kernel"]: k["variant"] for k in result.description["kernels"]} == {
        "avg_pool2d": "portable", "conv2d": "linux", "depthwise_conv2d": "linux",
        "fully_connected": "linux", "softmax": "portable"}
    assert "-march=x86-64-v3" in result.description["build"]["cflags"]
    ref = _reference(g, x)
    ours = _engine_run(result, x)
    assert ours.shape == ref.shape == (1000, 12)
    assert int((ours != ref).sum()) == 0
    # the harness runs the same library: same bytes, and it times the calls
    y, stdout = _harness_run(result, x[:100], tmp_path, repeat=2)
    assert int((y != ref[:100]).sum()) == 0
    assert stdout.startswith("inferences 200 us_per_inference ")
    # only the ABI leaves the library
    nm = subprocess.run(["nm", "-D", "--defined-only", str(result.library)], capture_output=True,
                        text=True, check=True).stdout
    exported = sorted(line.split()[-1] for line in nm.splitlines() if " T " in line)
    assert exported == ["ek_model_info_get", "ek_model_run"]


@x86_avx2
def test_ad_x86_64_library_equals_reference(tmp_path):
    _need_x86_avx2()
    g = ad_graph()
    x = ad_inputs(g)
    result = build_shared_library(g, "x86_64", tmp_path / "ad")
    assert int((_engine_run(result, x) != _reference(g, x)).sum()) == 0


@x86_avx2
@pytest.mark.parametrize("name", sorted(CASES))
def test_small_graphs_x86_64_equal_reference(name, tmp_path):
    _need_x86_avx2()
    g = CASES[name]
    x = graphs.random_inputs(g, np.random.default_rng(zlib.crc32(name.encode())), 32)
    result = build_shared_library(g, "x86_64", tmp_path / name)
    ours = _engine_run(result, x)
    ref = _reference(g, x)
    assert int((ours.view(np.uint8) != ref.view(np.uint8)).sum()) == 0
    assert len(np.unique(ref)) > 4, "degenerate case: the outputs barely vary"


# ----------------------------------------------------------------------------- aarch64


def test_kws_aarch64_harness_under_qemu_equals_reference(tmp_path):
    _need_aarch64()
    g, x = kws_graph(), kws_inputs()[:100]
    result = build_shared_library(g, "rpi4", tmp_path / "kws")
    assert elf_machine(result.library) == elf_machine(result.harness) == "aarch64"
    assert "-mcpu=cortex-a72" in result.description["build"]["cflags"]
    y, stdout = _harness_run(result, x, tmp_path, emulate=True)
    assert int((y != _reference(g, x)).sum()) == 0
    assert stdout.startswith("inferences 100 ")


@pytest.mark.parametrize("name", ["convs", "convs_float_io", "dilated_per_tensor", "elementwise"])
def test_small_graphs_aarch64_under_qemu_equal_reference(name, tmp_path):
    """Cortex-A76 (rpi5: dot-product instructions) for these graphs."""
    _need_aarch64()
    g = CASES[name]
    x = graphs.random_inputs(g, np.random.default_rng(zlib.crc32(name.encode())), 32)
    result = build_shared_library(g, "rpi5", tmp_path / name)
    y, _ = _harness_run(result, x, tmp_path, emulate=True)
    ref = _reference(g, x)
    assert int((y.view(np.uint8) != ref.view(np.uint8)).sum()) == 0


# ----------------------------------------------------------------------------- refusals


def test_engine_refuses_another_machine_and_a_wrong_description(tmp_path):
    _need_aarch64()
    g = CASES["handmade"]
    arm = build_shared_library(g, "rpi4", tmp_path / "arm")
    if X86:
        with pytest.raises(CEngineError, match="built for aarch64; this machine is x86_64"):
            CLibraryModel(arm.library, arm.description)
        if not _cpu_has_avx2():
            return
        host = build_shared_library(g, "x86_64", tmp_path / "host")
        wrong = json.loads(json.dumps(host.description))
        wrong["inputs"][0]["shape"] = [1, 4, 3, 6]
        with pytest.raises(CEngineError, match=r"its input .* has shape \[1, 4, 3, 5\], described as "
                                               r"\[1, 4, 3, 6\]"):
            CLibraryModel(host.library, wrong)
        model = CLibraryModel(host.library, host.description)
        with pytest.raises(CEngineError, match="must be int8, got float32"):
            model.run(np.zeros((1, 4, 3, 5), np.float32))
        with pytest.raises(CEngineError, match=r"must have shape \[1, 4, 3, 5\], got \[1, 4, 3, 4\]"):
            model.run(np.zeros((1, 4, 3, 4), np.int8))
        y = model.run_named({g.inputs[0]: np.zeros((1, 4, 3, 5), np.int8)})
        assert list(y) == [g.outputs[0]]
        model.close()
        with pytest.raises(CEngineError, match="closed"):
            model.run(np.zeros((1, 4, 3, 5), np.int8))


def test_harness_refuses_a_short_input_file(tmp_path):
    _need_aarch64()
    result = build_shared_library(CASES["handmade"], "rpi4", tmp_path / "m")
    t = load_target("rpi4")
    qemu = [t.emulator.binary, "-L", t.emulator.sysroot, str(result.harness)]
    info = subprocess.run([*qemu, "--info"], capture_output=True, text=True, timeout=60)
    assert info.returncode == 0
    assert "input int8 [1,4,3,5] bytes 60" in info.stdout and "output int8 [1,7] bytes 7" in info.stdout
    (tmp_path / "short.bin").write_bytes(b"\0" * 61)
    proc = subprocess.run([*qemu, str(tmp_path / "short.bin"), str(tmp_path / "o.bin")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "61 bytes, not a whole number of 60-byte inputs" in proc.stderr
    assert not (tmp_path / "o.bin").exists()


def test_builder_refuses_mcu_targets_and_foreign_folders(tmp_path):
    with pytest.raises(BadInputError, match="cortex-m4.* is a mcu target"):
        build_shared_library(CASES["handmade"], "cortex-m4", tmp_path / "x")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="holds no edgekit C library"):
        build_shared_library(CASES["handmade"], "rpi4", foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["foreign"]


def test_output_folder_holds_library_harness_sources_and_description(tmp_path):
    _need_aarch64()
    result = build_shared_library(CASES["convs"], "rpi4", tmp_path / "m")
    names = {p.name for p in result.out_dir.iterdir()}
    assert names == {LIBRARY_NAME, HARNESS_NAME, DESCRIPTION_NAME, "src"}
    d = json.loads((result.out_dir / DESCRIPTION_NAME).read_text())
    assert d == result.description
    assert d["inputs"][0]["shape"] == [1, 9, 9, 3] and d["inputs"][0]["dtype"] == "int8"
    assert d["machine"] == "aarch64"
    for rel in d["build"]["library_sources"] + d["build"]["harness_sources"]:
        assert (result.out_dir / rel).is_file(), rel
    # a second build replaces its own earlier output
    again = build_shared_library(CASES["convs"], "rpi4", tmp_path / "m")
    assert again.library.is_file()
