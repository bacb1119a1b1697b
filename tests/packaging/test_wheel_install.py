"""`pip install edgekit` outside the checkout: build the sdist, the wheel from it, install the
wheel (with its core dependencies only: the device side) into a fresh venv in a temp folder,
check that the compiler's commands ask for the `compiler` extra there, add that extra, and run
the commands that read edgekit's non-Python files from a temp working folder.

The dependency versions are pinned to those of the running venv, so pip takes them from its
cache or the machine's wheel index when it can. Everything runs in one test: under xdist,
tests of one module may land on two workers, which would build and install twice.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RESOURCE_FOLDERS = ("targets", "runtimes", "firmware")
BUNDLE = "edgekit/_bundled/"

pytestmark = pytest.mark.slow


def run(cmd, cwd: Path, env=None, timeout: float = 300) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, f"{' '.join(map(str, cmd))} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    return res


def source_files(folder: str) -> set[str]:
    """The files of a top-level resource folder, relative to the repository."""
    root = REPO / folder
    return {p.relative_to(REPO).as_posix() for p in root.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and (folder != "targets" or p.suffix == ".toml")}


def build_wheel(dist: Path) -> tuple[Path, Path]:
    # The sdist comes from setuptools' own build hook, run in the checkout as pip's would be
    # (it refreshes edgekit.egg-info there, as `pip install -e` does); the wheel is built from
    # the sdist, so it holds only what the sdist carries.
    run([sys.executable, "-c", "import setuptools.build_meta as b, sys; b.build_sdist(sys.argv[1])", dist], cwd=REPO)
    (sdist,) = dist.glob("edgekit-*.tar.gz")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", dist, sdist],
        cwd=dist)
    (wheel,) = dist.glob("edgekit-*.whl")
    return sdist, wheel


def pinned_versions(path: Path) -> Path:
    """A pip constraints file: every distribution of the running venv at its version."""
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name and name.lower() != "edgekit":
            pins.setdefault(name.lower(), f"{name}=={dist.version}")
    path.write_text("\n".join(sorted(pins.values())) + "\n")
    return path


def outside_env() -> dict[str, str]:
    """The environment without anything that would lead Python or edgekit to the checkout."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "EDGEKIT_TARGETS_PATH")}
    env["NO_COLOR"] = "1"
    return env


def check_wheel_contents(sdist: Path, wheel: Path) -> None:
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    names = set(zipfile.ZipFile(wheel).namelist())
    # The files the commands read, each by name, so a packaging change that drops one fails here.
    kernels = json.loads((REPO / "runtimes" / "micro" / "kernels.json").read_text())
    kernel_sources = {f"runtimes/micro/{s}" for k in kernels["kernels"].values()
                      for v in k["variants"].values() for s in v["sources"]}
    assert len(kernel_sources) > 10
    required = {"targets/cortex-m4.toml", "runtimes/micro/kernels.json",
                "firmware/boards/mps2-an386/link.ld", "firmware/boards/mps2-an386/board.json",
                *kernel_sources}
    for folder in RESOURCE_FOLDERS:
        required |= source_files(folder)
    assert required - in_sdist == set(), "missing from the sdist"
    assert {BUNDLE + r for r in required} - names == set(), "missing from the wheel"
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "edgekit").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert modules - names == set(), "Python modules missing from the wheel"


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    sdist, wheel = build_wheel(tmp_path / "dist")
    check_wheel_contents(sdist, wheel)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python = venv / "bin" / "python"
    # The running venv's pip installs into the new one (no second pip to bootstrap); no
    # extras: the core dependencies of the wheel's metadata, at this venv's versions.
    constraints = pinned_versions(tmp_path / "constraints.txt")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--constraint", constraints, wheel],
        cwd=tmp_path, timeout=600)

    work = tmp_path / "work"
    work.mkdir()
    env = outside_env()
    edgekit = [venv / "bin" / "edgekit"]
    # The core install is the device side: no onnx, and the compiler's commands say what to add.
    absent = run([python, "-c", "import importlib.util as u; print([m for m in ('numpy', 'click', 'rich', 'serial', "
                  "'onnx', 'flatbuffers') if u.find_spec(m) is None])"], cwd=work, env=env).stdout.strip()
    assert absent == "['onnx', 'flatbuffers']"
    refused = subprocess.run([*map(str, edgekit), "compile", "m.tflite", "--target", "x86_64"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "pip install 'edgekit[compiler]'" in " ".join(refused.stderr.split())
    run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--constraint", constraints,
         f"{wheel}[compiler]"], cwd=tmp_path, timeout=600)
    site = Path(run([python, "-c", "import edgekit, os; print(os.path.dirname(edgekit.__file__))"],
                    cwd=work, env=env).stdout.strip())
    assert site.is_relative_to(venv) and not site.is_relative_to(REPO)
    bundled = site / "_bundled"

    listed = json.loads(run([*edgekit, "targets", "--json"], cwd=work, env=env).stdout)
    by_name = {t["name"]: t for t in listed}
    assert set(by_name) == {p.stem for p in (REPO / "targets").glob("*.toml")}
    assert Path(by_name["cortex-m4"]["source"]) == bundled / "targets" / "cortex-m4.toml"
    assert (bundled / "targets" / "latency" / "x86_64.json").is_file()   # what --backend auto reads

    # A small int8 model from the float CNN and samples that ship in the wheel.
    run([*edgekit, "quantize", site / "data" / "digits_cnn.onnx", "--calib", site / "data" / "digits_samples.npz",
         "--out", "digits_int8.tflite"], cwd=work, env=env)
    run([*edgekit, "compile", "digits_int8.tflite", "--target", "cortex-m4", "--out", "c_model"], cwd=work, env=env)
    out = work / "c_model" / "c"   # the bundle's generated C
    assert (out / "model.c").is_file() and (out / "model.h").is_file()
    public_header = REPO / "runtimes" / "micro" / "include" / "edgekit" / "kernels.h"
    assert (out / "edgekit" / "kernels.h").read_bytes() == public_header.read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["target"] == "cortex-m4" and manifest["kernels"]
    for kernel in manifest["kernels"]:
        for src in kernel["sources"]:
            copied = (out / src).read_bytes()
            originals = {p.read_bytes() for p in (REPO / "runtimes" / "micro").rglob(Path(src).name)}
            assert copied in originals, f"{src} is not a copy of a runtimes/micro source"

    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed: sudo apt-get install -y gcc-arm-none-eabi "
                    "libnewlib-arm-none-eabi")
    res = run([*edgekit, "build-firmware", "--target", "cortex-m4", "--out", "fw", "--json"], cwd=work, env=env)
    built = json.loads(res.stdout)
    elf = (work / built["elf"]).read_bytes()
    assert elf[:4] == b"\x7fELF" and int.from_bytes(elf[18:20], "little") == 40  # EM_ARM
    # Every source and the linker script came from the installed copy, none from the checkout
    # (the build record next to the ELF holds the compiler command).
    record = json.loads((work / "fw" / f"{built['board']}.json").read_text())
    files = [Path(a) for a in record["command"] if a.endswith((".c", ".ld"))]
    assert any(f.name == "link.ld" for f in files) and len(files) > 10
    for f in files:
        assert f.is_relative_to(bundled), f
