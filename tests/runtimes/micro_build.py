"""Building runtimes/micro for the tests: the manifest, variant selection, the host
shared library (ctypes), and bare-metal ELFs for the QEMU MPS2 boards."""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from edgekit.targets import load_target

REPO = Path(__file__).resolve().parents[2]
MICRO = REPO / "runtimes" / "micro"
FIRMWARE_COMMON = REPO / "firmware" / "common"
TARGETS = REPO / "targets"
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]

APT_HINT = {
    "gcc": "sudo apt-get install -y gcc",
    "arm-none-eabi-gcc": "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-objdump": "sudo apt-get install -y binutils-arm-none-eabi",
    "qemu-system-arm": "sudo apt-get install -y qemu-system-arm",
}


def require_tool(name: str) -> str:
    """The tool's path, or skip the test with the apt-get line that installs it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: {APT_HINT[name]}")
    return path


def manifest() -> dict:
    return json.loads((MICRO / "kernels.json").read_text())


def target(name: str) -> dict:
    with open(TARGETS / f"{name}.toml", "rb") as f:
        return tomllib.load(f)


def variant_fits(variant: dict, features) -> bool:
    """The target has every feature of ``requires`` and one of ``requires_any`` (if listed)."""
    any_of = set(variant.get("requires_any", []))
    return set(variant["requires"]) <= set(features) and (not any_of or bool(any_of & set(features)))


def select_variant(kernel: dict, features, order) -> str:
    """The first variant in ``order`` that the kernel has and whose features the target has."""
    variants = manifest()["variants"]
    for v in order:
        if v in kernel["variants"] and variant_fits(variants[v], features):
            return v
    raise LookupError(f"no variant of {kernel['function']} fits features {sorted(features)}")


def library_sources(variant: str) -> list[Path]:
    """Every kernel's source for a build that prefers ``variant`` ("portable", "dsp" or
    "linux"); kernels without that variant fall back to the manifest's order."""
    m = manifest()
    spec = m["variants"][variant]
    features = list(spec["requires"]) + list(spec.get("requires_any", []))[:1]
    out = []
    for kernel in m["kernels"].values():
        v = select_variant(kernel, features, m["variant_order"])
        out += [MICRO / s for s in kernel["variants"][v]["sources"]]
    return out


def include_flags() -> list[str]:
    return [f"-I{MICRO / d}" for d in manifest()["include_dirs"]]


def run(cmd: list, timeout: float = 120, cwd=None) -> subprocess.CompletedProcess:
    """Run ``cmd``; raise with its output if it fails."""
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                         cwd=cwd)
    if res.returncode != 0:
        raise AssertionError(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


def build_host_library(out_dir: Path, extra_sources=(), variant: str = "portable",
                       cflags=("-O2",)) -> Path:
    """runtimes/micro (``variant``, portable for the kernels without it), plus
    ``extra_sources``, as a shared object for ctypes."""
    gcc = require_tool("gcc")
    so = out_dir / "libedgekit_micro.so"
    run([gcc, *WARNINGS, *cflags, "-fPIC", "-shared", *include_flags(),
         *library_sources(variant), *extra_sources, "-o", so])
    return so


@dataclass(frozen=True)
class BoardBuild:
    """One on-target test build: a target (targets/<name>.toml), a kernel variant, and
    the QEMU machine that runs it."""

    target: str
    variant: str

    @property
    def machine(self) -> str:
        return target(self.target)["emulator"]["machine"]

    @property
    def cflags(self) -> list[str]:
        return list(target(self.target)["toolchain"]["cflags"])

    @property
    def ldflags(self) -> list[str]:
        return list(target(self.target)["toolchain"]["ldflags"])

    @property
    def id(self) -> str:
        return f"{self.target}-{self.variant}"


def build_elf(build: BoardBuild, test_sources: list[Path], out: Path, include_dirs=()) -> Path:
    """Link the test program (``test_sources``, with ``include_dirs``), the kernel
    library and the semihosting harness of firmware/common into an ELF for the
    build's board."""
    cc = require_tool("arm-none-eabi-gcc")
    cmd = [cc, *build.cflags, *WARNINGS, "-O2", "-ffunction-sections", "-fdata-sections",
           *include_flags(), f"-I{FIRMWARE_COMMON}", *[f"-I{d}" for d in include_dirs],
           *test_sources, *library_sources(build.variant),
           FIRMWARE_COMMON / "startup.c", FIRMWARE_COMMON / "semihosting.c",
           *load_target(build.target).linker_symbols(), "-T", FIRMWARE_COMMON / "mps2.ld", "-nostartfiles",
           *build.ldflags, "-o", out]
    run(cmd, timeout=300)
    return out


def run_qemu(machine: str, elf: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run a semihosting ELF; returns the finished process (exit status = the program's)."""
    qemu = require_tool("qemu-system-arm")
    cmd = [qemu, "-M", machine, "-display", "none", "-monitor", "none",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
