"""The firmware builds for every board port with -Werror, each port has the fixed set
of files, and the images are laid out as the ports' memory maps say."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from click.testing import CliRunner

from edgekit.errors import BadInputError
from edgekit.firmware import board_for_target, list_boards, load_board
from edgekit.firmware.build import build_firmware_info
from tests.firmware.support import ALL_BOARDS, FIRMWARE, QEMU_BOARDS, firmware_elf, require_tool

PORT_FILES = ("board.h", "board.json", "link.ld", "uart.c", "timer.c")


def test_every_board_port_has_the_fixed_files():
    names = sorted(b.name for b in list_boards())
    assert names == sorted(ALL_BOARDS)
    for b in list_boards():
        for f in PORT_FILES:
            assert (b.folder / f).is_file(), f"{b.name} lacks {f}"
        assert b.config["board"] == b.folder.name
        for s in b.config["sources"]:
            assert (b.folder / s).is_file(), f"{b.name}: source {s} missing"
        # one start-up for every port (its vector table sized by board.h)
        assert "../shared/startup.c" in b.config["sources"] and not (b.folder / "startup.c").exists()


def test_every_qemu_target_has_a_port():
    from edgekit.targets import list_targets

    for t in list_targets():
        if t.emulator is not None and t.emulator.kind == "qemu-system":
            port = board_for_target(t.name)
            assert port.qemu_machine == t.emulator.machine
            hdr = (port.folder / "board.h").read_text()
            assert f"0x{t.emulator.uart_base:08X}u" in hdr, f"{port.name}: UART base"
            assert f'"{t.name}"' in hdr


def _nm(elf) -> dict[str, int]:
    out = subprocess.run([require_tool("arm-none-eabi-nm"), str(elf)], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    return syms


@pytest.mark.parametrize("board", ALL_BOARDS)
def test_firmware_builds_with_werror(board, tmp_path_factory):
    port = load_board(board)
    elf = firmware_elf(tmp_path_factory, board)  # the build the QEMU tests run
    info = json.loads(elf.with_suffix(".json").read_text())
    assert "-Werror" in info["command"] and "-Wextra" in info["command"]
    assert info["kind"] == "slots" and info["board"] == board
    from edgekit.targets import load_target

    features = load_target(port.target).features
    assert info["kernel_variant"] == ("mve" if "mve" in features else "dsp" if "dsp" in features else "portable")
    # FLASH and RAM come from the target file, the slots from board.json
    tgt = load_target(port.target)
    mem = port.config["memory"]
    slots = (mem["slots"]["base"], mem["slots"]["base"] + 2 * _size(mem["slots"]["size_each"]))
    code, ram = tgt.image_memory(slots)
    assert info["memory"]["flash"] == {"base": code.base, "size": code.size, "what": code.name}
    assert info["memory"]["ram"] == {"base": ram.base, "size": ram.size, "what": ram.name}
    assert info["memory"]["slots"] == mem["slots"] and set(mem) == {"slots"}
    syms = _nm(elf)
    assert syms["ek_vectors"] == code.base, "vector table at the start of flash"
    assert syms["__ek_slot_base"] == mem["slots"]["base"]
    assert syms["__stack_top"] == ram.end
    assert ram.base <= syms["__bss_start"] and syms["__stack_limit"] < ram.end
    for lo, hi in ((code.base, code.end), (ram.base, ram.end)):
        assert hi <= slots[0] or lo >= slots[1], "slots overlap the image or RAM"
    assert info["sizes"]["text"] + info["sizes"]["data"] < code.size
    # one start-up for every port: the table has 16 + EK_IRQ_COUNT entries, the UART's
    # interrupt at 16 + EK_UART_IRQ
    hdr = (port.folder / "board.h").read_text()
    irqs = int(re.search(r"#define EK_IRQ_COUNT (\d+)u", hdr).group(1))
    uart = int(re.search(r"#define EK_UART_IRQ (\d+)u", hdr).group(1))
    table = _section_words(elf, ".isr_vector")
    assert len(table) == 16 + irqs and table[0] == syms["__stack_top"]
    assert table[1] & ~1 == syms["Reset_Handler"] and table[16 + uart] & ~1 == syms["ek_uart_irq_handler"]
    assert all(table[16 + i] & ~1 == syms["default_irq"] for i in range(irqs) if i != uart)
    image = elf.read_bytes()
    assert b"edgekit-fw " in image and port.target.encode() + b"\0" in image


def _section_words(elf, section: str) -> list[int]:
    import struct
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "section.bin"
        subprocess.run([require_tool("arm-none-eabi-objcopy"), "-O", "binary", f"--only-section={section}",
                        str(elf), str(out)], check=True, capture_output=True)
        raw = out.read_bytes()
    return list(struct.unpack(f"<{len(raw) // 4}I", raw))


def _size(text: str) -> int:
    from edgekit.targets import parse_size

    return parse_size(text.replace("K", "KiB").replace("M", "MiB"))


def test_linked_model_firmware_builds(tmp_path):
    require_tool("arm-none-eabi-gcc")
    from tests.firmware.support import kws_graph

    r = build_firmware_info("cortex-m4", tmp_path, model=kws_graph())
    assert r.kind == "linked" and r.kernel_variant == "dsp"
    assert (tmp_path / "model" / "model.c").is_file()
    syms = _nm(r.elf)
    assert "edgekit_model_invoke" in syms and "ek_pkg_open" not in syms


def test_build_errors(tmp_path):
    with pytest.raises(BadInputError, match="no firmware board port"):
        board_for_target("rpi4")
    with pytest.raises(BadInputError, match="no board port"):
        load_board("no-such-board")
    require_tool("arm-none-eabi-gcc")
    with pytest.raises(BadInputError, match="dsp"):
        build_firmware_info("cortex-m3", tmp_path, variant="dsp")
    with pytest.raises(BadInputError, match="variant"):
        build_firmware_info("cortex-m4", tmp_path, variant="fast")


def test_cli_build_firmware(tmp_path):
    require_tool("arm-none-eabi-gcc")
    from edgekit.cli.main import _register, cli

    _register()
    res = CliRunner().invoke(cli, ["build-firmware", "--target", "cortex-m3", "--out",
                                   str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["board"] == "mps2-an385" and out["qemu_machine"] == "mps2-an385"
    assert (tmp_path / "mps2-an385.elf").is_file()
    res = CliRunner().invoke(cli, ["build-firmware", "--target", "rpi4"])
    assert res.exit_code == 2 and "no firmware board port" in res.output


def test_board_sources_exist_in_the_tree():
    # the README's layout: app, boards/<board>, boards/shared
    assert (FIRMWARE / "app" / "main.c").is_file()
    assert (FIRMWARE / "boards" / "shared" / "sections.ld").is_file()
    assert set(QEMU_BOARDS) <= {b.name for b in list_boards()}
