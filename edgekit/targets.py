"""Target descriptions: what edgekit knows about a board or a chip.

Each target is one TOML file. The built-in ones live in ``targets/`` at the top of the
repository; users add or override targets with ``--targets-dir DIR`` or the environment
variable ``EDGEKIT_TARGETS_PATH`` (directories separated by ``os.pathsep``). A user file named
like a built-in one replaces it.

File layout (required keys marked *)::

    name* = "cortex-m4"            # must equal the file name without .toml
    family* = "mcu"                # mcu | linux | jetson | host
    description* = "..."
    cpu* = "cortex-m4"
    arch* = "armv7e-m"
    features* = ["dsp", "fpu"]     # see FEATURES
    clock_hz* = 25_000_000         # may be left out for family "host" only
    default_backend* = "c"         # see BACKENDS
    boards = ["MPS2 AN386"]
    notes = "..."

    [[memories]]*                  # at least one flash and one sram for an mcu, one dram
    name* = "SSRAM2-3"             # for linux/jetson; may be empty (memories = []) for host
    kind* = "sram"                 # flash | sram | psram | dram
    size* = "4MiB"                 # int bytes or a string, see parse_size()
    base = 0x2000_0000             # optional start address

    [toolchain]*
    cc* = "arm-none-eabi-gcc"
    cflags = ["-mcpu=cortex-m4", "-mthumb"]   # the code-generation flags of this target
    ldflags = ["--specs=nano.specs"]          # added after cflags when linking

    [emulator]                     # optional
    kind* = "qemu-system"          # qemu-system (needs machine and uart_base) | qemu-user
    binary* = "qemu-system-arm"
    machine = "mps2-an386"
    cpu = "cortex-a72"             # -cpu for qemu
    uart = "cmsdk"
    uart_base = 0x4000_4000
    timer_base = 0x4000_0000
    sysroot = "/usr/aarch64-linux-gnu"        # -L for qemu-user

    [cuda]                         # required for family jetson, forbidden without "cuda"
    sm* = 87

Memory regions keep the order of the file: the first region of a kind is the default one
for that kind (e.g. where an MCU build puts its stack and tensor arena).

Every problem in a file raises :class:`edgekit.errors.TargetError` with a message naming the
file and the field, e.g. ``targets/foo.toml: field 'memories[1].size': expected a size like
256KiB, got 'lots'``.
"""

from __future__ import annotations

import itertools
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import BadInputError, TargetError
from edgekit.resources import targets_dir

__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "FAMILIES",
    "FEATURES",
    "MEMORY_KINDS",
    "Emulator",
    "InvalidSizeError",
    "MemoryRegion",
    "Target",
    "Toolchain",
    "builtin_targets_dir",
    "format_hz",
    "format_size",
    "list_targets",
    "load_target",
    "parse_size",
    "search_path",
    "target_names",
]

ENV_VAR = "EDGEKIT_TARGETS_PATH"

FAMILIES = ("mcu", "linux", "jetson", "host")
MEMORY_KINDS = ("flash", "sram", "psram", "dram")
BACKENDS = ("c", "tflite", "tvm", "tensorrt", "onnxruntime")
EMULATOR_KINDS = ("qemu-system", "qemu-user")
UART_KINDS = ("cmsdk",)

# fpu: hardware single-precision float; fpu-dp: hardware double precision; fp16: half-precision
# arithmetic; dsp: the Armv7E-M/Armv8-M DSP (SIMD32) extension; mve / mve-fp: Helium integer /
# float; neon, dotprod, i8mm, bf16, sve, sve2: A-profile SIMD extensions; cuda: an NVIDIA GPU.
FEATURES = frozenset(
    {
        "dsp",
        "fpu",
        "fpu-dp",
        "fp16",
        "mve",
        "mve-fp",
        "neon",
        "dotprod",
        "i8mm",
        "bf16",
        "sve",
        "sve2",
        "cuda",
        "sse2",
        "sse4.2",
        "avx",
        "avx2",
        "fma",
        "avx512f",
        "avx512vnni",
    }
)

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_FAMILY_RANK = {f: i for i, f in enumerate(FAMILIES)}


# --------------------------------------------------------------------------- sizes


class InvalidSizeError(BadInputError, ValueError):
    """A size string ``parse_size`` cannot read (also a ``ValueError``)."""


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1 << 30,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 1 << 40,
    "tib": 1 << 40,
}


def parse_size(value: int | str) -> int:
    """Return a size in bytes.

    Accepts a non-negative int, or a string: a number (optionally with a fraction that comes
    out to whole bytes) followed by an optional unit, case-insensitive, spaces allowed:
    ``B``, ``K``/``KB``/``KiB``, ``M``/``MB``/``MiB``, ``G``/``GB``/``GiB``, ``T``/``TB``/``TiB``.

    All units are binary: ``KB`` means 1024 bytes, like ``KiB``, because datasheets write
    "256 KB" of SRAM for 262,144 bytes. ``parse_size("256KiB") == parse_size("256KB") ==
    262144``, ``parse_size("4GB") == 4 * 2**30``.

    Raises :class:`InvalidSizeError` (a ``ValueError``) for anything else.
    """
    if isinstance(value, bool):
        raise InvalidSizeError(f"expected a size like 256KiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise InvalidSizeError(f"a size cannot be negative, got {value}")
        return value
    if not isinstance(value, str):
        raise InvalidSizeError(f"expected a size like 256KiB, got {value!r}")
    m = _SIZE_RE.match(value)
    if not m or m.group(2).lower() not in _UNITS:
        if value.strip().startswith("-"):
            raise InvalidSizeError(f"a size cannot be negative, got {value!r}")
        raise InvalidSizeError(f"expected a size like 256KiB, got {value!r}")
    number, unit = m.group(1), _UNITS[m.group(2).lower()]
    if "." in number:
        whole, frac = number.split(".")
        numerator = int(whole + frac) * unit
        denominator = 10 ** len(frac)
        if numerator % denominator:
            raise InvalidSizeError(f"size {value!r} is not a whole number of bytes")
        return numerator // denominator
    return int(number) * unit


def format_size(n: int) -> str:
    """Human-readable binary size, exact where it can be: ``640 KiB``, ``2 MiB``, ``6.5 MiB``,
    ``1056 KiB`` (rather than a rounded ``1.03 MiB``), ``100 B``."""
    if n < 1024:
        return f"{n} B"
    units = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))
    for i, (unit, scale) in enumerate(units):
        if n < scale:
            continue
        if n % scale == 0:
            return f"{n // scale} {unit}"
        if (n * 100) % scale == 0:  # exact with two decimals
            return f"{n / scale:.2f}".rstrip("0").rstrip(".") + f" {unit}"
        if i + 1 < len(units) and n % units[i + 1][1] == 0 and n < 10 * scale:
            smaller, sscale = units[i + 1]
            return f"{n // sscale} {smaller}"
        return f"{n / scale:.2f} {unit}"
    raise AssertionError("unreachable")


def format_hz(hz: int | None) -> str:
    """``25 MHz``, ``1.5 GHz``, ``1.43 GHz``; ``-`` for None."""
    if hz is None:
        return "-"
    for unit, scale in (("GHz", 10**9), ("MHz", 10**6), ("kHz", 10**3)):
        if hz >= scale:
            return f"{hz / scale:.3f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{hz} Hz"


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class MemoryRegion:
    name: str
    kind: str
    size: int
    base: int | None = None

    @property
    def end(self) -> int | None:
        """One past the last address, or None without a base."""
        return None if self.base is None else self.base + self.size

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.size, "base": self.base}


@dataclass(frozen=True)
class Emulator:
    kind: str
    binary: str
    machine: str | None = None
    cpu: str | None = None
    uart: str | None = None
    uart_base: int | None = None
    timer_base: int | None = None
    sysroot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "binary": self.binary,
            "machine": self.machine,
            "cpu": self.cpu,
            "uart": self.uart,
            "uart_base": self.uart_base,
            "timer_base": self.timer_base,
            "sysroot": self.sysroot,
        }


@dataclass(frozen=True)
class Toolchain:
    cc: str
    cflags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"cc": self.cc, "cflags": list(self.cflags), "ldflags": list(self.ldflags)}


@dataclass(frozen=True)
class Target:
    name: str
    family: str
    description: str
    cpu: str
    arch: str
    features: frozenset[str]
    clock_hz: int | None
    memories: tuple[MemoryRegion, ...]
    toolchain: Toolchain
    default_backend: str
    emulator: Emulator | None
    cuda_sm: int | None
    boards: tuple[str, ...]
    notes: str
    source: Path

    def has(self, feature: str) -> bool:
        """True when the target has ``feature`` (one of FEATURES)."""
        if feature not in FEATURES:
            raise ValueError(f"unknown feature {feature!r}; known: {', '.join(sorted(FEATURES))}")
        return feature in self.features

    def memory(self, kind: str) -> list[MemoryRegion]:
        """The regions of one kind, in file order (the first one is the default)."""
        if kind not in MEMORY_KINDS:
            raise ValueError(f"unknown memory kind {kind!r}; known: {', '.join(MEMORY_KINDS)}")
        return [m for m in self.memories if m.kind == kind]

    def total(self, kind: str) -> int:
        """Total bytes of one kind of memory (0 when the target has none)."""
        return sum(m.size for m in self.memory(kind))

    def image_memory(self, reserved: tuple[int, int] | None = None) -> tuple[MemoryRegion, MemoryRegion]:
        """Where a bare-metal image links, as ``(code, ram)``.

        Code: the first flash memory, cut short where ``reserved`` (``(base, end)``, e.g.
        model slots kept in that flash) begins inside it. RAM: the first sram memory
        joined with the sram memories that follow it without a gap, one range for .data,
        .bss and the stack (the stack takes its top). Raises TargetError when the target
        lists no flash or sram memory with a base address."""
        flash = [m for m in self.memory("flash") if m.base is not None]
        sram = [m for m in self.memory("sram") if m.base is not None]
        if not flash or not sram:
            raise TargetError(f"target {self.name!r} ({_display(self.source)}) lists no "
                              f"{'flash' if not flash else 'sram'} memory with a base address: "
                              "a firmware image cannot be linked for it")
        code = flash[0]
        if reserved is not None and code.base < reserved[0] < code.end:
            code = MemoryRegion(code.name, code.kind, reserved[0] - code.base, code.base)
        ram = sram[0]
        for m in sorted(sram[1:], key=lambda m: m.base):
            if m.base == ram.end:
                ram = MemoryRegion(f"{ram.name}+{m.name}", "sram", ram.size + m.size, ram.base)
        return code, ram

    def linker_symbols(self, reserved: tuple[int, int] | None = None) -> list[str]:
        """``-Wl,--defsym`` flags for ``image_memory``: EK_FLASH_ORIGIN, EK_FLASH_LENGTH,
        EK_RAM_ORIGIN, EK_RAM_LENGTH (what firmware/common/mps2.ld and the board ports'
        memory.ld take)."""
        code, ram = self.image_memory(reserved)
        return [f"-Wl,--defsym=EK_FLASH_ORIGIN={code.base:#x}", f"-Wl,--defsym=EK_FLASH_LENGTH={code.size:#x}",
                f"-Wl,--defsym=EK_RAM_ORIGIN={ram.base:#x}", f"-Wl,--defsym=EK_RAM_LENGTH={ram.size:#x}"]

    @property
    def is_mcu(self) -> bool:
        return self.family == "mcu"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field (sizes and addresses as ints)."""
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "cpu": self.cpu,
            "arch": self.arch,
            "features": sorted(self.features),
            "clock_hz": self.clock_hz,
            "memories": [m.to_dict() for m in self.memories],
            "toolchain": self.toolchain.to_dict(),
            "default_backend": self.default_backend,
            "emulator": None if self.emulator is None else self.emulator.to_dict(),
            "cuda_sm": self.cuda_sm,
            "boards": list(self.boards),
            "notes": self.notes,
            "source": str(self.source),
        }


# --------------------------------------------------------------------------- search path


def builtin_targets_dir() -> Path:
    """The built-in target files: ``targets/`` of the checkout, or the copy a wheel carries
    (edgekit.resources)."""
    return targets_dir()


PathArg = str | os.PathLike[str]
DirsArg = PathArg | Iterable[PathArg] | None


def _as_dir_list(targets_dir: DirsArg) -> list[Path]:
    if targets_dir is None:
        return []
    if isinstance(targets_dir, (str, os.PathLike)):
        return [Path(targets_dir)]
    return [Path(d) for d in targets_dir]


def search_path(targets_dir: DirsArg = None) -> list[Path]:
    """Directories searched for target files, first match wins.

    Order: the directories the caller gives (one path or several), then each directory of
    ``$EDGEKIT_TARGETS_PATH`` (``os.pathsep``-separated; empty entries ignored), then the
    built-in ``targets/`` folder. A directory given by the caller or in the environment that
    does not exist raises TargetError (a typo there would otherwise hide silently).
    """
    dirs: list[Path] = []
    for d in _as_dir_list(targets_dir):
        if not d.is_dir():
            raise TargetError(f"targets directory {str(d)!r} is not a directory")
        dirs.append(d)
    env = os.environ.get(ENV_VAR, "")
    for entry in env.split(os.pathsep):
        if not entry.strip():
            continue
        d = Path(entry)
        if not d.is_dir():
            raise TargetError(f"{ENV_VAR} entry {entry!r} is not a directory")
        dirs.append(d)
    dirs.append(builtin_targets_dir())
    seen: set[Path] = set()
    unique = []
    for d in dirs:
        key = d.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(d)
    return unique


def _target_files(dirs: Sequence[Path]) -> dict[str, Path]:
    """name -> file, the first directory holding a name winning."""
    found: dict[str, Path] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for f in sorted(d.glob("*.toml")):
            if f.is_file():
                found.setdefault(f.stem, f)
    return found


def target_names(targets_dir: DirsArg = None) -> list[str]:
    """Sorted names of all targets on the search path (the files are not parsed)."""
    return sorted(_target_files(search_path(targets_dir)))


def list_targets(targets_dir: DirsArg = None) -> list[Target]:
    """Load every target on the search path (a user file overrides a built-in one of the same
    name). Sorted by family (mcu, linux, jetson, host), then name."""
    targets = [_load_file(f) for f in _target_files(search_path(targets_dir)).values()]
    return sorted(targets, key=lambda t: (_FAMILY_RANK[t.family], t.name))


def load_target(name_or_path: PathArg, targets_dir: DirsArg = None) -> Target:
    """Load a target by name (searching :func:`search_path`) or from a ``.toml`` file path."""
    text = os.fspath(name_or_path)
    looks_like_path = (
        isinstance(name_or_path, os.PathLike)
        or text.endswith(".toml")
        or os.sep in text
        or (os.altsep is not None and os.altsep in text)
    )
    if looks_like_path:
        path = Path(text)
        if not path.is_file():
            raise TargetError(f"target file {text!r} not found")
        return _load_file(path)
    dirs = search_path(targets_dir)
    files = _target_files(dirs)
    if text in files:
        return _load_file(files[text])
    known = ", ".join(sorted(files)) or "(none)"
    where = os.pathsep.join(str(d) for d in dirs)
    raise TargetError(f"unknown target {text!r}. Known targets: {known}. Search path: {where}")


# --------------------------------------------------------------------------- parsing


def _display(path: Path) -> str:
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return rel if not rel.startswith("..") else str(path)


class _Checker:
    """Reads typed fields out of TOML tables; every error names the file and the field."""

    def __init__(self, path: Path):
        self.path = path
        self.shown = _display(path)

    def fail(self, field: str, msg: str) -> TargetError:
        return TargetError(f"{self.shown}: field {field!r}: {msg}")

    def given(self, data: Mapping[str, Any], key: str, field: str, default: Any) -> bool:
        """Whether ``data`` holds ``key``; without it, a field with no default (``...``) is an error."""
        if key in data:
            return True
        if default is ...:
            raise self.fail(field, "missing required field")
        return False

    def table(
        self,
        data: Mapping[str, Any],
        field: str,
        prefix: str,
        required: Iterable[str],
        optional: Iterable[str],
    ) -> None:
        required, optional = tuple(required), tuple(optional)
        allowed = set(required) | set(optional)
        for key in data:
            if key not in allowed:
                raise self.fail(
                    prefix + key,
                    f"unknown field (allowed in {field or 'the top level'}: "
                    f"{', '.join(sorted(allowed))})",
                )
        for key in required:
            if key not in data:
                raise self.fail(prefix + key, "missing required field")

    def str_(
        self,
        data: Mapping[str, Any],
        key: str,
        prefix: str,
        default: Any = ...,
        choices: Sequence[str] | None = None,
    ) -> Any:
        field = prefix + key
        if not self.given(data, key, field, default):
            return default
        value = data[key]
        if not isinstance(value, str):
            raise self.fail(field, f"expected a string, got {_tname(value)} {value!r}")
        if choices is not None and value not in choices:
            raise self.fail(field, f"expected one of {', '.join(choices)}, got {value!r}")
        if choices is None and not value.strip() and default is ...:
            raise self.fail(field, "must not be empty")
        return value

    def int_(
        self, data: Mapping[str, Any], key: str, prefix: str, default: Any = ..., minimum: int = 0
    ) -> Any:
        field = prefix + key
        if not self.given(data, key, field, default):
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(field, f"expected an integer, got {_tname(value)} {value!r}")
        if value < minimum:
            raise self.fail(field, f"must be >= {minimum}, got {value}")
        return value

    def str_list(self, data: Mapping[str, Any], key: str, prefix: str, default: Any = ...) -> Any:
        field = prefix + key
        if not self.given(data, key, field, default):
            return default
        value = data[key]
        if not isinstance(value, list):
            raise self.fail(field, f"expected a list of strings, got {_tname(value)} {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.fail(f"{field}[{i}]", f"expected a string, got {_tname(item)} {item!r}")
        return tuple(value)

    def sub_table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
        if key not in data:
            return None
        value = data[key]
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table [{key}], got {_tname(value)} {value!r}")
        return value


def _tname(value: Any) -> str:
    return {
        bool: "boolean",
        int: "integer",
        float: "float",
        str: "string",
        list: "list",
        dict: "table",
    }.get(type(value), type(value).__name__)


_TOP_REQUIRED = (
    "name",
    "family",
    "description",
    "cpu",
    "arch",
    "features",
    "memories",
    "toolchain",
    "default_backend",
)
_TOP_OPTIONAL = ("clock_hz", "emulator", "cuda", "boards", "notes")


def _load_file(path: Path) -> Target:
    c = _Checker(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TargetError(f"{c.shown}: cannot read target file: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise TargetError(f"{c.shown}: not UTF-8 text: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{c.shown}: TOML syntax error: {exc}") from exc
    return _parse(c, data, path)


def _parse(c: _Checker, data: dict[str, Any], path: Path) -> Target:
    c.table(data, "", "", _TOP_REQUIRED, _TOP_OPTIONAL)

    name = c.str_(data, "name", "")
    if not _NAME_RE.match(name):
        raise c.fail("name", f"must be lowercase letters, digits, '.', '_' or '-', got {name!r}")
    if name != path.stem:
        raise c.fail(
            "name",
            f"{name!r} does not match the file name {path.name!r} (expected name = {path.stem!r})",
        )
    family = c.str_(data, "family", "", choices=FAMILIES)
    description = c.str_(data, "description", "")
    cpu = c.str_(data, "cpu", "")
    arch = c.str_(data, "arch", "")

    features = c.str_list(data, "features", "")
    for i, feat in enumerate(features):
        if feat not in FEATURES:
            raise c.fail(
                f"features[{i}]", f"unknown feature {feat!r} (known: {', '.join(sorted(FEATURES))})"
            )
    if len(set(features)) != len(features):
        dup = next(f for f in features if features.count(f) > 1)
        raise c.fail("features", f"feature {dup!r} listed twice")

    if "clock_hz" in data:
        clock_hz = c.int_(data, "clock_hz", "", minimum=1)
    elif family == "host":
        clock_hz = None
    else:
        raise c.fail("clock_hz", "missing required field (only family 'host' may leave it out)")

    default_backend = c.str_(data, "default_backend", "", choices=BACKENDS)
    boards = c.str_list(data, "boards", "", default=())
    notes = c.str_(data, "notes", "", default="")

    memories = _parse_memories(c, data["memories"], family)
    toolchain = _parse_toolchain(c, c.sub_table(data, "toolchain"))
    emulator = _parse_emulator(c, c.sub_table(data, "emulator"))

    cuda = c.sub_table(data, "cuda")
    cuda_sm = None
    if cuda is not None:
        c.table(cuda, "[cuda]", "cuda.", ("sm",), ())
        cuda_sm = c.int_(cuda, "sm", "cuda.", minimum=10)
    if family == "jetson" and cuda is None:
        raise c.fail("cuda", "a jetson target needs a [cuda] table with the GPU's sm")
    if cuda is not None and "cuda" not in features:
        raise c.fail("features", "has a [cuda] table but 'cuda' is not in features")
    if cuda is None and "cuda" in features:
        raise c.fail("cuda", "'cuda' is in features but there is no [cuda] table with sm")

    return Target(
        name=name,
        family=family,
        description=description,
        cpu=cpu,
        arch=arch,
        features=frozenset(features),
        clock_hz=clock_hz,
        memories=memories,
        toolchain=toolchain,
        default_backend=default_backend,
        emulator=emulator,
        cuda_sm=cuda_sm,
        boards=boards,
        notes=notes,
        source=path,
    )


def _parse_memories(c: _Checker, value: Any, family: str) -> tuple[MemoryRegion, ...]:
    if not isinstance(value, list):
        raise c.fail("memories", f"expected a list of [[memories]] tables, got {_tname(value)}")
    regions: list[MemoryRegion] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(value):
        prefix = f"memories[{i}]."
        if not isinstance(item, dict):
            raise c.fail(f"memories[{i}]", f"expected a table, got {_tname(item)} {item!r}")
        c.table(item, f"memories[{i}]", prefix, ("name", "kind", "size"), ("base",))
        name = c.str_(item, "name", prefix)
        if name in seen:
            raise c.fail(
                prefix + "name", f"duplicate region name {name!r} (also memories[{seen[name]}])"
            )
        seen[name] = i
        kind = c.str_(item, "kind", prefix, choices=MEMORY_KINDS)
        try:
            size = parse_size(item["size"])
        except InvalidSizeError as exc:
            raise c.fail(prefix + "size", str(exc)) from None
        if size == 0:
            raise c.fail(prefix + "size", "a memory region cannot be empty (size 0)")
        base = c.int_(item, "base", prefix, default=None)
        if base is not None and base + size > 1 << 64:
            raise c.fail(prefix + "base", f"region {name!r} runs past the 64-bit address space")
        regions.append(MemoryRegion(name=name, kind=kind, size=size, base=base))

    placed = sorted((r.base, r.end, i, r.name) for i, r in enumerate(regions) if r.base is not None)
    for (_b0, e0, i0, n0), (b1, _e1, i1, n1) in itertools.pairwise(placed):
        if b1 < e0:
            later = max(i0, i1)
            other = n0 if later == i1 else n1
            raise c.fail(
                f"memories[{later}].base",
                f"region {regions[later].name!r} overlaps region {other!r} ({b1:#x} < {e0:#x})",
            )

    kinds = {r.kind for r in regions}
    if family == "mcu":
        for need in ("flash", "sram"):
            if need not in kinds:
                raise c.fail("memories", f"an mcu target needs at least one {need!r} region")
    elif family in ("linux", "jetson") and "dram" not in kinds:
        raise c.fail("memories", f"a {family} target needs at least one 'dram' region")
    return tuple(regions)


def _parse_toolchain(c: _Checker, tc: Mapping[str, Any] | None) -> Toolchain:
    if tc is None:
        raise c.fail("toolchain", "missing required field")
    c.table(tc, "[toolchain]", "toolchain.", ("cc",), ("cflags", "ldflags"))
    return Toolchain(
        cc=c.str_(tc, "cc", "toolchain."),
        cflags=c.str_list(tc, "cflags", "toolchain.", default=()),
        ldflags=c.str_list(tc, "ldflags", "toolchain.", default=()),
    )


def _parse_emulator(c: _Checker, em: Mapping[str, Any] | None) -> Emulator | None:
    if em is None:
        return None
    p = "emulator."
    c.table(
        em,
        "[emulator]",
        p,
        ("kind", "binary"),
        ("machine", "cpu", "uart", "uart_base", "timer_base", "sysroot"),
    )
    kind = c.str_(em, "kind", p, choices=EMULATOR_KINDS)
    emulator = Emulator(
        kind=kind,
        binary=c.str_(em, "binary", p),
        machine=c.str_(em, "machine", p, default=None),
        cpu=c.str_(em, "cpu", p, default=None),
        uart=c.str_(em, "uart", p, default=None, choices=UART_KINDS),
        uart_base=c.int_(em, "uart_base", p, default=None),
        timer_base=c.int_(em, "timer_base", p, default=None),
        sysroot=c.str_(em, "sysroot", p, default=None),
    )
    if kind == "qemu-system":
        if emulator.machine is None:
            raise c.fail(p + "machine", "missing required field (a qemu-system emulator needs -M)")
        if emulator.uart_base is None:
            raise c.fail(
                p + "uart_base",
                "missing required field (a qemu-system emulator needs its UART address)",
            )
    else:
        for key in ("machine", "uart", "uart_base", "timer_base"):
            if key in em:
                raise c.fail(p + key, "only a qemu-system emulator takes this field")
    return emulator
