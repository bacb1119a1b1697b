"""TVM's CUDA path: a Jetson with sm_75 or later (Orin Nano, sm_87) gets a TVM CUDA module
whose host code is aarch64, cross-linked; the bundle says which device and CUDA runtime
it needs; the tvm engine refuses it with the missing piece named where there is no GPU.
Older Jetsons (sm_53, sm_72) keep a CPU module (tests/backends/tvm/test_tvm_backend.py).

The CUDA module holds CUDA C source that NVRTC compiles on the device; independent
checks: readelf for the ELF header and needed libraries (of the module, and of TVM's own
CUDA runtime for the soname the bundle names), and the kernel definitions found in the
library's bytes.
"""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

import edgekit
import edgekit.runtime as rt
from edgekit.bundle import BundleError, compile_bundle, verify
from tests.support.shared import REPO

pytest.importorskip("tvm", reason="the tvm extra is not installed: pip install 'edgekit[tvm]'")

DIGITS = REPO / "edgekit/data/digits_cnn.onnx"
# A user target: this x86-64 host with an NVIDIA GPU (Ada, sm_89).
X86_CUDA = """\
name = "x86_64-cuda"
family = "linux"
description = "an x86-64 Linux machine with an NVIDIA GPU (test target)"
cpu = "x86-64"
arch = "x86_64"
features = ["fpu", "fpu-dp", "sse2", "avx2", "fma", "cuda"]
clock_hz = 3_000_000_000
default_backend = "tvm"

[[memories]]
name = "DRAM"
kind = "dram"
size = "16GiB"

[toolchain]
cc = "gcc"
cflags = ["-march=x86-64-v3"]
ldflags = ["-lm"]

[cuda]
sm = 89
"""


@pytest.fixture(scope="module", autouse=True)
def full_tvm():
    from edgekit.backends.tvm import import_tvm_compiler

    import_tvm_compiler()


def _readelf(path: Path) -> str:
    return subprocess.run(["readelf", "-h", "-d", str(path)], capture_output=True, text=True, check=True).stdout


def _needed(header: str) -> list:
    return sorted(line.split("[")[1].rstrip("]") for line in header.splitlines() if "(NEEDED)" in line)


def _installed_cudart() -> str:
    import tvm

    lib = Path(tvm.__file__).resolve().parent / "lib" / "libtvm_runtime_cuda.so"
    return [n for n in _needed(_readelf(lib)) if n.startswith("libcudart.so.")][0]


@pytest.fixture(scope="module")
def orin(tmp_path_factory):
    out = tmp_path_factory.mktemp("orin") / "digits-orin.ekb"
    result = compile_bundle(edgekit.load_model(DIGITS), "jetson-orin-nano", out, backend="tvm")
    return result, out


def test_orin_bundle_holds_an_aarch64_cuda_module_for_sm_87(orin, tmp_path):
    result, out = orin
    info = json.loads(result.bundle.read("tvm_module.json"))
    assert info["tvm_target"] == {"kind": "cuda", "arch": "sm_87", "host": {
        "kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a78ae", "mattr": ["+neon"]}}
    assert info["machine"] == "aarch64" and info["device"] == "cuda"
    so = tmp_path / "model.so"
    with zipfile.ZipFile(out) as zf:
        so.write_bytes(zf.read("model.so"))
    header = _readelf(so)
    assert "Machine:                           AArch64" in header and "DYN (Shared object file)" in header
    assert set(_needed(header)) <= {"libc.so.6"}     # CUDA and TVM libraries are the device's
    # the kernels the module info lists are CUDA kernel definitions in the library
    data = so.read_bytes()
    defined = set(re.findall(rb'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\([^;]*?\) \{', data))
    assert sorted(k.decode() for k in defined) == info["cuda"]["kernels"]
    assert any("conv2d" in k for k in info["cuda"]["kernels"]) and any("softmax" in k for k in info["cuda"]["kernels"])
    assert verify(out, target="jetson-orin-nano", engine="tvm").files == ["golden.npz", "model.so", "tvm_module.json"]


def test_manifest_says_device_and_cuda_runtime(orin):
    result, _ = orin
    tvm_part = result.manifest["compile"]["tvm"]
    assert tvm_part["device"] == "cuda" and tvm_part["tuning"] is None
    cuda = tvm_part["cuda"]
    assert cuda["arch"] == "sm_87" and cuda["runtime_library"] == "libtvm_runtime_cuda.so"
    assert cuda["cuda_runtime"] == _installed_cudart() == "libcudart.so.13"
    assert "NVRTC" in cuda["kernel_format"]
    assert "the module's kernels run on the GPU" in result.reason and "libcudart.so.13" in result.reason


def test_orin_bundle_on_this_x86_64_machine_is_refused_for_its_machine(orin):
    with pytest.raises(BundleError, match="compiled for aarch64 .*this machine is x86_64"):
        rt.open(orin[1])


def test_engine_without_a_usable_gpu_names_what_is_missing(tmp_path):
    """A CUDA module for this x86-64 host: here (no GPU) the engine refuses it and says
    which piece is missing; on a machine with a GPU, CUDA 13 and NVRTC it runs the
    digits and matches the reference interpreter."""
    (tmp_path / "targets").mkdir()
    (tmp_path / "targets" / "x86_64-cuda.toml").write_text(X86_CUDA)
    graph = edgekit.load_model(DIGITS)
    result = compile_bundle(graph, "x86_64-cuda", tmp_path / "b.ekb", backend="tvm", targets_dir=[tmp_path / "targets"])
    info = json.loads(result.bundle.read("tvm_module.json"))
    assert info["device"] == "cuda" and info["machine"] == "x86_64" and info["cuda"]["arch"] == "sm_89"
    try:
        model = rt.open(result.bundle.path, engine="tvm")
    except rt.EngineUnavailableError as exc:
        text = str(exc)
        assert "holds a TVM CUDA module for sm_89: it needs an NVIDIA GPU" in text
        assert "libcudart.so.13" in text and "pip install cuda-bindings nvidia-cuda-nvrtc" in text
        reasons = ("this machine cannot load TVM's CUDA runtime", "found no CUDA device", "NVRTC cannot be imported")
        assert sum(r in text for r in reasons) == 1, text
        assert exc.exit_code == 1
        return
    with model:
        assert "CUDA sm_89" in model.describe()
        with np.load(REPO / "edgekit/data/digits_samples.npz") as z:
            xs = np.ascontiguousarray(z["x"][:8].transpose(0, 2, 3, 1)).reshape(8, 1, 8, 8, 1)
        got = np.stack([model.run({model.inputs[0].name: x})[model.outputs[0].name] for x in xs])
    want = np.stack([edgekit.run(graph, {graph.inputs[0]: x})[graph.outputs[0]] for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("target,sm", [("jetson-nano", 53), ("jetson-xavier-nx", 72)])
def test_jetsons_below_sm_75_keep_a_cpu_module_and_say_why(target, sm):
    from edgekit.backends.tvm import device_note, tvm_target, uses_cuda
    from edgekit.targets import load_target

    tgt = load_target(target)
    assert tgt.cuda_sm == sm and not uses_cuda(tgt)
    assert tvm_target(tgt)["kind"] == "llvm"
    assert "CUDA 13, which does not support GPUs below sm_75" in device_note(tgt)
