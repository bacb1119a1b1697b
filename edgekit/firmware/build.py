"""Building the edgekit firmware for a board with the target's cross compiler.

A board port is a folder ``firmware/boards/<board>/`` with ``board.json`` (its target,
sources, linker script), ``board.h``, ``startup.c``, ``link.ld``, ``uart.c`` and
``timer.c``; ``firmware/app/`` is the application (protocol, slots, package executor).
Two variants:

- model-slot firmware (``model=None``): runs model packages received over the serial
  protocol (``edgekit flash``); every kernel of runtimes/micro is linked in;
- linked firmware (``model=graph``): the C model from ``edgekit.backends.c``
  (``compile_model``) is compiled into the image and INFER runs it; uploads are refused.

The toolchain flags come from ``targets/<target>.toml``; the kernel variant from the
target's features (``variant="auto"``), or ``"portable"`` / ``"dsp"`` / ``"mve"``. Everything is
compiled with ``-std=c99 -Wall -Wextra -Werror -O2``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.errors import BadInputError, EdgekitError
from edgekit.resources import firmware_dir

WARNINGS = ("-std=c99", "-Wall", "-Wextra", "-Werror")
OPT = ("-O2", "-ffunction-sections", "-fdata-sections")
APT_HINT = {
    "arm-none-eabi-gcc": "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "gcc": "sudo apt-get install -y gcc",
}
SLOT_APP = ("ek_crc32.c", "ek_cobs.c", "ek_proto.c", "ek_tensor.c", "ek_slots.c", "ek_package.c",
            "ek_sha256.c", "ek_model_slots.c", "ek_profile.c", "main.c")
LINKED_APP = ("ek_crc32.c", "ek_cobs.c", "ek_proto.c", "ek_tensor.c", "ek_model_linked.c", "ek_profile.c",
              "main.c")
# Profiling builds (--profile): the model code reads the timer after every op and the
# PROFILE message returns the per-op ticks (firmware/app/ek_profile.h).
PROFILE_DEFINES = ("-DEDGEKIT_PROFILE=1",)


class ToolchainMissingError(EdgekitError):
    """The cross compiler a build needs is not installed."""


class FirmwareBuildError(EdgekitError):
    """The compiler or linker failed."""


def firmware_root() -> Path:
    """``firmware/``: in the checkout, or the copy a wheel carries (edgekit.resources)."""
    return firmware_dir()


@dataclass(frozen=True)
class BoardPort:
    name: str
    target: str
    folder: Path
    config: dict

    @property
    def sources(self) -> list[Path]:
        return [(self.folder / s).resolve() for s in self.config["sources"]]

    @property
    def include_dirs(self) -> list[Path]:
        return [(self.folder / d).resolve() for d in self.config.get("include_dirs", ["."])]

    @property
    def linker_script(self) -> Path:
        return self.folder / self.config["linker_script"]

    @property
    def linker_dirs(self) -> list[Path]:
        return [(self.folder / d).resolve() for d in self.config.get("linker_dirs", [])]

    @property
    def slot_range(self) -> tuple[int, int] | None:
        """(base, end) of the model slots the port keeps (board.json ``memory.slots``)."""
        from edgekit.targets import parse_size

        slots = self.config.get("memory", {}).get("slots")
        if not slots:
            return None
        each = parse_size(str(slots["size_each"]).replace("K", "KiB").replace("M", "MiB"))
        return slots["base"], slots["base"] + each * slots["count"]

    def memory_map(self, target) -> dict:
        """The image's memory map: FLASH and RAM from the target file (``Target.image_memory``:
        the port's linker script takes them from there), the slots from board.json."""
        code, ram = target.image_memory(self.slot_range)
        out = {"flash": {"base": code.base, "size": code.size, "what": code.name},
               "ram": {"base": ram.base, "size": ram.size, "what": ram.name}}
        if "slots" in self.config.get("memory", {}):
            out["slots"] = self.config["memory"]["slots"]
        return out

    @property
    def qemu_machine(self) -> str | None:
        return (self.config.get("emulator") or {}).get("machine")


def list_boards() -> list[BoardPort]:
    root = firmware_root() / "boards"
    return [load_board(p.parent.name) for p in sorted(root.glob("*/board.json"))]


def load_board(name: str) -> BoardPort:
    folder = firmware_root() / "boards" / name
    cfg_path = folder / "board.json"
    if not cfg_path.is_file():
        known = ", ".join(b.name for b in list_boards())
        raise BadInputError(f"no board port {name!r} (firmware/boards/{name}/board.json); "
                            f"boards: {known}")
    cfg = json.loads(cfg_path.read_text())
    return BoardPort(cfg["board"], cfg["target"], folder, cfg)


def board_for_target(target: str) -> BoardPort:
    """The board port of a target name (``cortex-m4`` -> mps2-an386), or of a board name."""
    if (firmware_root() / "boards" / target / "board.json").is_file():
        return load_board(target)
    boards = [b for b in list_boards() if b.target == target]
    if not boards:
        known = ", ".join(f"{b.target} ({b.name})" for b in list_boards())
        raise BadInputError(f"no firmware board port for target {target!r}; ports: {known}")
    return boards[0]


@dataclass
class FirmwareBuild:
    elf: Path
    board: str
    target: str
    kind: str                # "slots" or "linked"
    kernel_variant: str      # "mve" / "dsp" when any kernel uses that variant, else "portable"
    sizes: dict = field(default_factory=dict)   # text, data, bss
    command: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"elf": str(self.elf), "board": self.board, "target": self.target,
                "kind": self.kind, "kernel_variant": self.kernel_variant, "sizes": self.sizes}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        hint = APT_HINT.get(name, f"install {name}")
        raise ToolchainMissingError(f"{name} is not installed: {hint}")
    return path


def _run(cmd: list, cwd=None) -> subprocess.CompletedProcess:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd,
                         timeout=600)
    if res.returncode != 0:
        raise FirmwareBuildError(f"firmware build failed ({res.returncode}):\n"
                                 f"{' '.join(map(str, cmd))}\n{res.stdout}{res.stderr}")
    return res


def _kernel_sources(features, variant: str) -> tuple[list[Path], str]:
    from edgekit.backends.c import library

    m = library.manifest()
    root = library.micro_root()
    srcs, used = [], set()
    for kernel in m["kernels"]:
        choice = library.choose(kernel, features, variant)
        used.add(choice.variant)
        srcs += [root / s for s in choice.sources]
    return srcs, _summary_variant(used)


def _summary_variant(used) -> str:
    """The firmware's kernel variant in one word: the most specialized one any kernel uses."""
    return next((v for v in ("mve", "dsp") if v in used), "portable")


def _sizes(cc: str, elf: Path) -> dict:
    size = shutil.which(cc.replace("gcc", "size")) if cc.endswith("gcc") else None
    if size is None:
        return {}
    out = subprocess.run([size, "-A", str(elf)], capture_output=True, text=True).stdout
    sections = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    text = sum(v for k, v in sections.items() if k in (".isr_vector", ".text", ".ARM.exidx"))
    return {"text": text, "data": sections.get(".data", 0), "bss": sections.get(".bss", 0)}


def _c_string(s: str) -> str:
    return '"' + "".join(c if c.isalnum() or c in "-_. " else "_" for c in s)[:23] + '"'


def build_firmware(target, out_dir, *, model=None, variant: str = "auto", board: str | None = None,
                   name: str | None = None, extra_cflags=(), profile: bool = False) -> Path:
    """Build the firmware for ``target`` (a target name such as ``cortex-m4``, a board
    name such as ``mps2-an386``, or a ``Target``) into ``out_dir``; returns the ELF.

    ``model=None``: the model-slot firmware. ``model=<int8 IR graph>``: the graph is
    compiled to C by ``edgekit.backends.c.compile_model`` and linked into the image.
    ``variant``: kernel variant ("auto", "portable", "dsp", "mve"). ``board``: the board port
    when several exist for one target. ``profile``: time every op (the PROFILE message;
    a few instructions per op more).
    """
    return build_firmware_info(target, out_dir, model=model, variant=variant, board=board,
                               name=name, extra_cflags=extra_cflags, profile=profile).elf


def build_firmware_info(target, out_dir, *, model=None, variant: str = "auto",
                        board: str | None = None, name: str | None = None,
                        extra_cflags=(), profile: bool = False) -> FirmwareBuild:
    """``build_firmware`` returning what was built (sizes, variant, command)."""
    from edgekit.targets import Target, load_target

    tname = target.name if isinstance(target, Target) else str(target)
    port = load_board(board) if board else board_for_target(tname)
    tgt = target if isinstance(target, Target) else load_target(port.target)
    if tgt.name != port.target:
        raise BadInputError(f"board {port.name} is a port for target {port.target}, not {tgt.name}")
    if variant not in ("auto", "portable", "dsp", "mve"):
        raise BadInputError(f"unknown kernel variant {variant!r}; choose auto, portable, dsp or mve")
    cc = _tool(tgt.toolchain.cc)
    app = firmware_root() / "app"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    defines: list[str] = list(PROFILE_DEFINES) if profile else []
    includes = [app, *port.include_dirs]
    if model is None:
        kind = "slots"
        sources = [app / s for s in SLOT_APP]
        ksrc, kvariant = _kernel_sources(tgt.features, variant)
        sources += ksrc
        from edgekit.backends.c import library

        includes += [library.micro_root() / d for d in library.manifest()["include_dirs"]]
        stem = port.name
    else:
        kind = "linked"
        model_dir, info = _compile_linked(model, tgt, out_dir, variant)
        sources = [app / s for s in LINKED_APP]
        sources += [model_dir / s for s in info["sources"]]
        includes += [model_dir, model_dir / "kernels"]
        kvariant = info["variant"]
        defines += ["-DEK_LINKED_MODEL=1",
                    f"-DEK_LINKED_INPUT_BYTES={info['input_bytes']}u",
                    f"-DEK_LINKED_OUTPUT_BYTES={info['output_bytes']}u",
                    f"-DEK_LINKED_ARENA_BYTES={info['arena_bytes']}u",
                    f"-DEK_LINKED_SIZE={info['weights']}u",
                    f"-DEK_LINKED_NAME={_c_string(name or info['name'])}",
                    "-DEK_LINKED_HASH=" + ",".join(f"0x{b:02x}" for b in info["hash"])]
        stem = f"{port.name}-{_c_string(name or info['name']).strip(chr(34))}"
    elf = out_dir / f"{stem}.elf"
    cmd = [cc, *tgt.toolchain.cflags, *WARNINGS, *OPT, *port.config.get("cflags", []),
           *extra_cflags, *defines, *[f"-I{d}" for d in includes], *sources, *port.sources,
           "-nostartfiles", *tgt.toolchain.ldflags, *[f"-L{d}" for d in port.linker_dirs],
           *tgt.linker_symbols(port.slot_range), "-T", port.linker_script,
           f"-Wl,-Map={out_dir / (stem + '.map')}", "-o", elf]
    _run(cmd)
    result = FirmwareBuild(elf, port.name, tgt.name, kind, kvariant, _sizes(cc, elf),
                           [str(c) for c in cmd])
    (out_dir / f"{stem}.json").write_text(json.dumps(
        {**result.to_dict(), "memory": port.memory_map(tgt),
         "qemu_machine": port.qemu_machine, "command": result.command}, indent=2) + "\n")
    return result


def _compile_linked(graph, tgt, out_dir: Path, variant: str) -> tuple[Path, dict]:
    """Compile ``graph`` to C with edgekit.backends.c; the facts the firmware needs."""
    import hashlib

    try:
        from edgekit.backends.c.compile import compile_model
    except ImportError as exc:
        raise BadInputError("linking a model into the firmware needs the C code generator "
                            f"(edgekit.backends.c.compile.compile_model), which is not "
                            f"available: {exc}. Build the model-slot firmware (no model) and "
                            "upload a model package with `edgekit flash` instead.") from None
    from edgekit.ir.dtypes import DType

    for n in graph.inputs + graph.outputs:
        if graph.tensor(n).dtype is not DType.INT8:
            raise BadInputError(f"graph input/output {n!r} is {graph.tensor(n).dtype.value}; "
                                "the linked firmware passes int8 tensors")
    model_dir = out_dir / "model"
    res = compile_model(graph, tgt, model_dir, variant=variant)
    manifest = res.manifest
    sources = manifest["build"]["sources"]
    digest = hashlib.sha256((model_dir / "model.c").read_bytes()).digest()[:8]
    kv = {k["variant"] for k in manifest.get("kernels", [])}
    return model_dir, {
        "sources": sources,
        "input_bytes": graph.tensor(graph.inputs[0]).nbytes,
        "output_bytes": graph.tensor(graph.outputs[0]).nbytes,
        "arena_bytes": res.arena_bytes,
        "weights": int(res.flash.get("weights", 0)),
        "name": graph.name,
        "hash": digest,
        "variant": _summary_variant(kv),
    }


def default_out_dir() -> Path:
    return Path(tempfile.gettempdir()) / "edgekit-firmware"
