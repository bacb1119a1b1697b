"""Compiling a generated model folder: host gcc, the target's cross gcc, sizes and stack
usage from the objects, semihosting firmware for the QEMU boards, and running it.

Every helper raises ``ToolchainError`` (with the Debian package to install) when a
tool is missing, so callers can decide to skip or to fall back to estimates.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgekit.backends.c.fit import FitError
from edgekit.errors import BadInputError, EdgekitError
from edgekit.resources import firmware_dir
from edgekit.targets import Target

WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
OPT = ("-O2",)

APT_HINT = {
    "gcc": "sudo apt-get install -y gcc",
    "arm-none-eabi-gcc": "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-size": "sudo apt-get install -y binutils-arm-none-eabi",
    "qemu-system-arm": "sudo apt-get install -y qemu-system-arm",
}


class ToolchainError(EdgekitError):
    """A compiler or emulator is missing, or a build failed."""


class ToolMissingError(ToolchainError):
    def __init__(self, tool: str):
        self.tool = tool
        self.hint = APT_HINT.get(tool, f"install {tool}")
        super().__init__(f"{tool} is not installed: {self.hint}")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(name)
    return path


def size_tool(cc: str) -> str:
    """``arm-none-eabi-size`` beside ``arm-none-eabi-gcc`` (``size`` for ``gcc``)."""
    return tool(cc[: -len("gcc")] + "size" if cc.endswith("gcc") else "size")


def run(cmd, timeout: float = 300, cwd=None) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                         cwd=cwd)
    if res.returncode != 0:
        raise ToolchainError(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n"
                             f"{res.stdout}\n{res.stderr}")
    return res


def model_sources(model_dir: Path) -> list[Path]:
    """model.c and the kernel sources of a generated folder (from its manifest when present)."""
    model_dir = Path(model_dir)
    mf = model_dir / "manifest.json"
    if mf.is_file():
        rel = json.loads(mf.read_text())["build"]["sources"]
        return [model_dir / r for r in rel]
    return [model_dir / "model.c", *sorted((model_dir / "kernels").glob("*.c"))]


def include_flags(model_dir: Path) -> list[str]:
    return [f"-I{Path(model_dir)}"]


# ----------------------------------------------------------------------------- host


def host_executable(model_dir: Path, main_sources, exe: Path, *, cflags=(), cc: str = "gcc",
                    sources=None) -> Path:
    """Link the generated model with ``main_sources`` into a host program."""
    gcc = tool(cc)
    srcs = model_sources(model_dir) if sources is None else sources
    run([gcc, *WARNINGS, *OPT, *cflags, *include_flags(model_dir), *srcs, *main_sources,
         "-o", exe])
    return exe


# ----------------------------------------------------------------------------- cross


@dataclass
class ObjectSizes:
    """Bytes by kind over a set of objects (from ``size -A``), and the worst stack."""

    text: int = 0        # code
    weights: int = 0     # .rodata.edgekit_weights: weights, biases, multipliers, tables
    rodata: int = 0      # other constants (parameter structs, dims, libgcc tables)
    data: int = 0
    bss: int = 0
    arena: int = 0       # .bss.edgekit_arena
    stack: int = 0       # invoke's frame plus the deepest kernel (upper bound, -fstack-usage)
    per_file: dict | None = None

    @property
    def flash(self) -> int:
        return self.text + self.weights + self.rodata + self.data

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("text", "weights", "rodata", "data", "bss", "arena",
                                              "stack")} | {"per_file": self.per_file or {}}


def compile_objects(model_dir: Path, target: Target, build_dir: Path, *, cflags=(),
                    stack_usage: bool = True) -> list[Path]:
    """Compile model.c and the kernels with the target's compiler and flags (``-Werror``)."""
    cc = tool(target.toolchain.cc)
    build_dir.mkdir(parents=True, exist_ok=True)
    objs = []
    for src in model_sources(model_dir):
        obj = build_dir / (src.stem + ".o")
        extra = ["-fstack-usage"] if stack_usage else []
        run([cc, *target.toolchain.cflags, *WARNINGS, *OPT, "-ffunction-sections", "-fdata-sections",
             *extra, *cflags, *include_flags(model_dir), "-c", src, "-o", obj])
        objs.append(obj)
    return objs


def _section_kind(name: str) -> str | None:
    if name.startswith(".text") or name == ".ARM.exidx" or name.startswith(".ARM.extab"):
        return "text"
    if name == ".rodata.edgekit_weights":
        return "weights"
    if name.startswith(".rodata"):
        return "rodata"
    if name.startswith(".data"):
        return "data"
    if name == ".bss.edgekit_arena":
        return "arena"
    if name.startswith(".bss") or name == "COMMON":
        return "bss"
    return None


def object_sizes(objects, size: str) -> ObjectSizes:
    out = ObjectSizes(per_file={})
    for obj in objects:
        res = run([size, "-A", obj])
        per: dict[str, int] = {}
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                kind = _section_kind(parts[0])
                if kind:
                    per[kind] = per.get(kind, 0) + int(parts[1])
        for k, v in per.items():
            setattr(out, k, getattr(out, k) + v)
        out.per_file[Path(obj).stem] = per
    out.stack = stack_estimate(objects)
    return out


def stack_estimate(objects) -> int:
    """Stack bytes of one inference: edgekit_model_invoke's frame plus, for the deepest
    kernel file, the sum of the frames of all its functions (an upper bound: helpers are
    mostly inlined, and no kernel function calls another kernel). 0 without .su files."""
    invoke = 0
    deepest = 0
    found = False
    for obj in objects:
        su = Path(obj).with_suffix(".su")
        if not su.is_file():
            continue
        found = True
        total = 0
        for line in su.read_text().splitlines():
            m = re.match(r"^\S+:\d+:\d+:(\S+)\s+(\d+)\s+(\S+)", line)
            if not m:
                continue
            if m.group(1) == "edgekit_model_invoke":
                invoke = int(m.group(2))
            else:
                total += int(m.group(2))
        deepest = max(deepest, total)
    return invoke + deepest if found else 0


def measure(model_dir: Path, target: Target, build_dir: Path) -> ObjectSizes:
    """Compile the folder for ``target`` and return its sizes (needs the cross tools)."""
    objs = compile_objects(model_dir, target, build_dir)
    return object_sizes(objs, size_tool(target.toolchain.cc))


# ----------------------------------------------------------------------------- firmware


def build_firmware(model_dir: Path, target: Target, vectors_c: Path, elf: Path, *,
                   cflags=()) -> Path:
    """A semihosting ELF for the target's QEMU board: the generated model, the test
    vectors (``vectors_c``, see ``write_vectors``) and firmware/common's runner, startup,
    semihosting and linker script.

    The runner links code and constants into one flash range and data, bss and stack
    into one RAM range (``Target.image_memory``). Raises ``FirmwareFitError`` (a
    ``FitError``) before calling the linker when the compile's fit check (the folder's
    manifest.json) placed a part elsewhere, e.g. weights in cortex-m55's QSPI or an
    arena in PSRAM, or when the model's flash and the test vectors together exceed the
    flash range."""
    check_firmware_placement(model_dir, target, extra_flash=vector_bytes(vectors_c))
    cc = tool(target.toolchain.cc)
    em = target.emulator
    timer = [f"-DEK_TIMER_BASE={em.timer_base:#x}u"] if em is not None and em.timer_base else []
    common = firmware_dir() / "common"
    run([cc, *target.toolchain.cflags, *WARNINGS, *OPT, "-ffunction-sections", "-fdata-sections",
         *timer, *cflags, *include_flags(model_dir), f"-I{common}",
         *model_sources(model_dir), vectors_c, common / "model_runner.c",
         common / "startup.c", common / "semihosting.c",
         *target.linker_symbols(), "-T", common / "mps2.ld", "-nostartfiles",
         *target.toolchain.ldflags, "-o", elf],
        timeout=600)
    return elf


class FirmwareFitError(FitError):
    """The compiled model fits the target, but not the one flash range and one RAM range
    the model-runner firmware links into (exit code 2)."""

    def __init__(self, message: str, report=None, misplaced=()):
        self.report = report
        self.misplaced = list(misplaced)  # [(region, kind, bytes, [part names])]
        BadInputError.__init__(self, message)


def vector_bytes(vectors_c: Path) -> int:
    """Bytes of the input and expected-output arrays of a ``write_vectors`` file (0 when
    there is none)."""
    path = Path(vectors_c)
    if not path.is_file():
        return 0
    return sum(int(n) for n in re.findall(r"ek_vector_(?:inputs|expected)\[(\d+)\]", path.read_text()))


def check_firmware_placement(model_dir: Path, target: Target, *, extra_flash: int = 0) -> None:
    """Raise ``FirmwareFitError`` when the fit check recorded in ``model_dir``'s manifest
    placed a part outside the ranges ``build_firmware`` links into: a flash part outside
    the first flash region, a RAM part outside the first SRAM region and the SRAM regions
    joined to it; or when the flash parts plus ``extra_flash`` (the test vectors) exceed
    the flash range. A folder without a fit record passes (the linker has the last word,
    e.g. on the runner's own few KB of code)."""
    mf = Path(model_dir) / "manifest.json"
    if not mf.is_file():
        return
    manifest = json.loads(mf.read_text())
    fit = manifest.get("fit")
    if not fit:
        return
    code, ram = target.image_memory()
    linked = {"flash": {code.name}, "sram": set(ram.name.split("+")), "psram": set()}
    nbytes = {p["name"]: p["nbytes"] for p in fit.get("parts", [])}
    labels = {p["name"]: p.get("label", p["name"]) for p in fit.get("parts", [])}
    misplaced = [(r["name"], r["kind"], sum(nbytes.get(n, 0) for n in r["parts"]), list(r["parts"]))
                 for r in fit.get("regions", [])
                 if r.get("parts") and r["name"] not in linked.get(r["kind"], set())]
    model = manifest.get("model", Path(model_dir).name)
    if not misplaced:
        used = sum(r["used"] for r in fit.get("regions", []) if r["kind"] == "flash" and r["name"] == code.name)
        if extra_flash and used + extra_flash > code.size:
            raise FirmwareFitError(
                f"model {model!r} ({used:,} bytes of flash) and the test vectors ({extra_flash:,} "
                f"bytes) overflow flash region {code.name!r} of target {target.name!r} "
                f"({code.size:,} bytes) by {used + extra_flash - code.size:,} bytes: the "
                "model-runner firmware keeps both there. Use fewer vectors or a target with more flash.",
                misplaced=[(code.name, "flash", used + extra_flash, ["model", "vectors"])])
        return
    what = "; ".join(f"{', '.join(labels.get(n, n) for n in parts)} ({b:,} bytes) in {kind} region "
                     f"{name!r}" for name, kind, b, parts in misplaced)
    raise FirmwareFitError(
        f"model {model!r} fits target {target.name!r} only with {what}, but the model-runner "
        f"firmware (firmware/common/mps2.ld) links code and constants into flash region "
        f"{code.name!r} ({code.size:,} bytes at {code.base:#x}) and data, bss and stack into "
        f"{ram.name!r} ({ram.size:,} bytes at {ram.base:#x}) only. Use a target whose first "
        "flash and SRAM regions hold the model, or a smaller model.",
        report=None, misplaced=misplaced)


def write_vectors(inputs, expected, path: Path) -> Path:
    """The C file of test vectors for firmware/common/model_runner.c: N inputs and the
    N expected outputs, as raw bytes."""
    import numpy as np

    x = np.ascontiguousarray(inputs)
    y = np.ascontiguousarray(expected)
    n = len(x)
    xb = x.reshape(n, -1).view(np.uint8).ravel()
    yb = y.reshape(n, -1).view(np.uint8).ravel()

    def body(b):
        flat = b.tolist()
        return ",\n".join(",".join(map(str, flat[i:i + 32])) for i in range(0, len(flat), 32))

    path.write_text(
        "/* Test vectors for firmware/common/model_runner.c (generated). */\n"
        "#include <stdint.h>\n\n"
        f"const uint32_t ek_vector_count = {n}u;\n"
        f"const uint8_t ek_vector_inputs[{max(xb.size, 1)}] __attribute__((aligned(16))) = {{\n"
        f"{body(xb)}\n}};\n"
        f"const uint8_t ek_vector_expected[{max(yb.size, 1)}] __attribute__((aligned(16))) = {{\n"
        f"{body(yb)}\n}};\n")
    return path


@dataclass
class QemuRun:
    returncode: int
    output: str
    inferences: int | None = None
    mismatching_bytes: int | None = None
    ticks: int | None = None
    ticks_min: int | None = None
    ticks_max: int | None = None

    def instructions_per_inference(self, timer_hz: int) -> float | None:
        """Under ``-icount shift=0`` one guest instruction takes 1 ns of virtual time, so
        one tick of a timer_hz timer is 1e9 / timer_hz instructions."""
        if self.ticks is None or not self.inferences:
            return None
        return self.ticks * (1e9 / timer_hz) / self.inferences


def run_qemu(target: Target, elf: Path, *, icount: bool = True, timeout: float = 300) -> QemuRun:
    """Run a firmware ELF on the target's QEMU board with semihosting; parses the
    runner's summary line."""
    em = target.emulator
    if em is None or em.kind != "qemu-system":
        raise ToolchainError(f"target {target.name} has no QEMU board")
    qemu = tool(em.binary)
    cmd = [qemu, "-M", em.machine, "-display", "none", "-monitor", "none",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    if icount:
        cmd[1:1] = ["-icount", "shift=0"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    text = res.stderr + res.stdout
    out = QemuRun(res.returncode, text)
    m = re.search(r"edgekit model runner: (\d+) inferences, (\d+) mismatching bytes, "
                  r"ticks (\d+) \(min (\d+), max (\d+)\)", text)
    if m:
        out.inferences, out.mismatching_bytes, out.ticks, out.ticks_min, out.ticks_max = \
            (int(v) for v in m.groups())
    return out
