"""Target descriptions: the built-in files, the loader's validation, and `edgekit targets`.

The numbers checked here come from datasheets and from QEMU's board models, not from the
files under test. Where a compiler or QEMU is installed the tests also check the files
against them: the toolchain flags must give exactly the listed features, and firmware built
from a target's memory map must boot on its QEMU machine, print over the listed UART, reach
every listed memory region and count time at the listed clock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.errors import BadInputError, TargetError
from edgekit.targets import (
    ENV_VAR,
    FEATURES,
    InvalidSizeError,
    Target,
    builtin_targets_dir,
    format_hz,
    format_size,
    list_targets,
    load_target,
    parse_size,
    search_path,
    target_names,
)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30

BUILTIN = {
    "cortex-m0plus",
    "cortex-m3",
    "cortex-m4",
    "nucleo-l4r5zi",
    "cortex-m7",
    "stm32h7",
    "cortex-m33",
    "cortex-m55",
    "rpi4",
    "rpi5",
    "jetson-nano",
    "jetson-xavier-nx",
    "jetson-orin-nano",
    "x86_64",
}

ARM_GCC_MISSING = (
    "arm-none-eabi-gcc missing: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
)


@pytest.fixture(autouse=True)
def _no_user_targets(monkeypatch):
    # The developer's own EDGEKIT_TARGETS_PATH must not change what these tests see.
    monkeypatch.delenv(ENV_VAR, raising=False)


def _all() -> dict[str, Target]:
    return {t.name: t for t in list_targets()}


# --------------------------------------------------------------------------- built-in files


def test_builtin_targets_all_load():
    targets = _all()
    assert set(targets) == BUILTIN
    assert target_names() == sorted(BUILTIN)
    for name, t in targets.items():
        assert t.source == builtin_targets_dir() / f"{name}.toml"
        assert load_target(name) == t
        json.dumps(t.to_dict())  # JSON-able
    # listing order: family first (mcu, linux, jetson, host), then name
    order = [t.name for t in list_targets()]
    assert order[:8] == sorted(order[:8]) and order[-1] == "x86_64"
    assert {targets[n].family for n in order[:8]} == {"mcu"}


# name: (family, cpu, arch, clock_hz, flash bytes, sram bytes, psram, dram, backend, cuda sm)
DATASHEET = {
    "cortex-m0plus": (
        "mcu",
        "cortex-m0plus",
        "armv6-m",
        133_000_000,
        2 * MiB,
        264 * KiB,
        0,
        0,
        "c",
        None,
    ),
    "cortex-m3": (
        "mcu",
        "cortex-m3",
        "armv7-m",
        25_000_000,
        4 * MiB,
        4 * MiB,
        16 * MiB,
        0,
        "c",
        None,
    ),
    "cortex-m4": (
        "mcu",
        "cortex-m4",
        "armv7e-m",
        25_000_000,
        4 * MiB,
        4 * MiB,
        16 * MiB,
        0,
        "c",
        None,
    ),
    "nucleo-l4r5zi": (
        "mcu",
        "cortex-m4",
        "armv7e-m",
        120_000_000,
        2 * MiB,
        640 * KiB,
        0,
        0,
        "c",
        None,
    ),
    "cortex-m7": (
        "mcu",
        "cortex-m7",
        "armv7e-m",
        25_000_000,
        4 * MiB,
        4 * MiB,
        16 * MiB,
        0,
        "c",
        None,
    ),
    "stm32h7": ("mcu", "cortex-m7", "armv7e-m", 480_000_000, 2 * MiB, 992 * KiB, 0, 0, "c", None),
    "cortex-m33": (
        "mcu",
        "cortex-m33",
        "armv8-m.main",
        20_000_000,
        4 * MiB,
        4 * MiB + 32 * KiB,
        16 * MiB,
        0,
        "c",
        None,
    ),
    "cortex-m55": (
        "mcu",
        "cortex-m55",
        "armv8.1-m.main",
        32_000_000,
        512 * KiB + 8 * MiB,
        6 * MiB + 512 * KiB,
        0,
        0,
        "c",
        None,
    ),
    "rpi4": ("linux", "cortex-a72", "armv8-a", 1_500_000_000, 0, 0, 0, 4 * GiB, "tflite", None),
    "rpi5": ("linux", "cortex-a76", "armv8.2-a", 2_400_000_000, 0, 0, 0, 4 * GiB, "tflite", None),
    "jetson-nano": ("jetson", "cortex-a57", "armv8-a", 1_430_000_000, 0, 0, 0, 4 * GiB, "tvm", 53),
    "jetson-xavier-nx": (
        "jetson",
        "carmel",
        "armv8.2-a",
        1_900_000_000,
        0,
        0,
        0,
        8 * GiB,
        "tvm",
        72,
    ),
    "jetson-orin-nano": (
        "jetson",
        "cortex-a78ae",
        "armv8.2-a",
        1_500_000_000,
        0,
        0,
        0,
        8 * GiB,
        "tvm",
        87,
    ),
    "x86_64": ("host", "x86-64", "x86_64", None, 0, 0, 0, 0, "tflite", None),
}


@pytest.mark.parametrize("name", sorted(DATASHEET))
def test_datasheet_numbers(name):
    family, cpu, arch, clock, flash, sram, psram, dram, backend, sm = DATASHEET[name]
    t = load_target(name)
    assert (t.family, t.cpu, t.arch, t.clock_hz) == (family, cpu, arch, clock)
    assert (t.total("flash"), t.total("sram"), t.total("psram"), t.total("dram")) == (
        flash,
        sram,
        psram,
        dram,
    )
    assert t.default_backend == backend
    assert t.cuda_sm == sm
    assert t.has("cuda") == (sm is not None)


def test_feature_sets():
    t = _all()
    assert t["cortex-m0plus"].features == frozenset()
    assert t["cortex-m3"].features == frozenset()
    assert t["cortex-m4"].features == {"dsp", "fpu"}
    assert t["nucleo-l4r5zi"].features == {"dsp", "fpu"}
    assert t["cortex-m7"].features == {"dsp", "fpu", "fpu-dp"}
    assert t["stm32h7"].features == {"dsp", "fpu", "fpu-dp"}
    assert t["cortex-m33"].features == {"dsp", "fpu"}
    assert {"mve", "mve-fp", "dsp", "fpu"} <= t["cortex-m55"].features
    assert t["rpi4"].has("neon") and not t["rpi4"].has("dotprod")
    assert t["rpi5"].has("neon") and t["rpi5"].has("dotprod") and not t["rpi5"].has("i8mm")
    assert t["jetson-orin-nano"].has("dotprod") and not t["jetson-xavier-nx"].has("dotprod")
    with pytest.raises(ValueError):
        t["rpi4"].has("warp-drive")


def test_memory_maps():
    t = _all()

    def regions(name):
        return [(m.name, m.kind, m.size, m.base) for m in t[name].memories]

    # QEMU mps2-an386: 4 MiB SSRAM1 at 0 (code), 4 MiB SSRAM2/3 at 0x20000000, 16 MiB PSRAM at 0x21000000
    assert regions("cortex-m4") == [
        ("SSRAM1", "flash", 4 * MiB, 0x0),
        ("SSRAM2-3", "sram", 4 * MiB, 0x2000_0000),
        ("PSRAM", "psram", 16 * MiB, 0x2100_0000),
    ]
    assert regions("cortex-m3") == regions("cortex-m4")
    # AN500 moves the PSRAM to 0x60000000
    assert t["cortex-m7"].memory("psram")[0].base == 0x6000_0000
    # STM32H743: the RAM domains of RM0433
    h7 = {m.name: (m.size, m.base) for m in t["stm32h7"].memory("sram")}
    assert h7["DTCM"] == (128 * KiB, 0x2000_0000)
    assert h7["AXI-SRAM"] == (512 * KiB, 0x2400_0000)
    assert sum(h7[n][0] for n in ("SRAM1", "SRAM2", "SRAM3")) == 288 * KiB
    assert h7["SRAM4"] == (64 * KiB, 0x3800_0000)
    assert t["stm32h7"].memory("flash")[0].base == 0x0800_0000
    # STM32L4R5: SRAM1 192 K + SRAM2 64 K + SRAM3 384 K
    assert [m.size for m in t["nucleo-l4r5zi"].memory("sram")] == [192 * KiB, 64 * KiB, 384 * KiB]
    # RP2040: XIP flash window and SRAM base
    assert [m.base for m in t["cortex-m0plus"].memories] == [0x1000_0000, 0x2000_0000]
    # AN505 boots Secure from 0x10000000, so the code region sits there
    assert t["cortex-m33"].memory("flash")[0].base == 0x1000_0000
    # the first region of a kind is the default one
    assert t["cortex-m55"].memory("sram")[0].name == "DTCM"
    with pytest.raises(ValueError):
        t["cortex-m4"].memory("ram")


# The documented QEMU boards (see the project's toolchain notes).
QEMU_BOARDS = {
    "cortex-m3": ("mps2-an385", 0x4000_4000),
    "cortex-m4": ("mps2-an386", 0x4000_4000),
    "cortex-m7": ("mps2-an500", 0x4000_4000),
    "cortex-m33": ("mps2-an505", 0x4020_0000),
    "cortex-m55": ("mps3-an547", 0x4930_3000),
}


def test_qemu_uart_bases_match_the_documented_values():
    targets = _all()
    with_system_emulator = {
        n for n, t in targets.items() if t.emulator and t.emulator.kind == "qemu-system"
    }
    assert with_system_emulator == set(QEMU_BOARDS)
    for name, (machine, uart) in QEMU_BOARDS.items():
        e = targets[name].emulator
        assert (e.binary, e.machine, e.uart, e.uart_base) == (
            "qemu-system-arm",
            machine,
            "cmsdk",
            uart,
        )
    assert targets["cortex-m4"].emulator.timer_base == 0x4000_0000
    for name in ("cortex-m0plus", "nucleo-l4r5zi", "stm32h7", "x86_64"):
        assert targets[name].emulator is None
    for name in ("rpi4", "rpi5", "jetson-nano", "jetson-xavier-nx", "jetson-orin-nano"):
        e = targets[name].emulator
        assert (e.kind, e.binary) == ("qemu-user", "qemu-aarch64")
    assert targets["rpi4"].emulator.cpu == "cortex-a72"


def test_to_dict_round_numbers():
    d = load_target("cortex-m4").to_dict()
    assert d["clock_hz"] == 25_000_000
    assert d["features"] == ["dsp", "fpu"]
    assert d["memories"][1] == {
        "name": "SSRAM2-3",
        "kind": "sram",
        "size": 4 * MiB,
        "base": 0x2000_0000,
    }
    assert d["toolchain"]["cflags"] == [
        "-mcpu=cortex-m4",
        "-mthumb",
        "-mfloat-abi=hard",
        "-mfpu=fpv4-sp-d16",
    ]
    assert d["emulator"]["uart_base"] == 0x4000_4000
    assert load_target("jetson-orin-nano").to_dict()["cuda_sm"] == 87


# --------------------------------------------------------------------------- sizes


@pytest.mark.parametrize(
    "text, expected",
    [
        (0, 0),
        (1234, 1234),
        ("1234", 1234),
        ("100B", 100),
        ("256KiB", 262_144),
        ("256KB", 262_144),
        ("256K", 262_144),
        ("256 kib", 262_144),
        ("640 KiB", 655_360),
        ("2MiB", 2_097_152),
        ("2M", 2_097_152),
        ("1.5MiB", 1_572_864),
        ("4GB", 4_294_967_296),
        ("4GiB", 4_294_967_296),
        ("0.5K", 512),
        ("1TiB", 1 << 40),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "bad", ["lots", "", "KiB", "-4K", "4 XB", "1.0001K", "2 MiB extra", -1, 3.5, True, None]
)
def test_parse_size_rejects(bad):
    with pytest.raises(InvalidSizeError):
        parse_size(bad)
    with pytest.raises(ValueError):  # also a ValueError, and a BadInputError for the CLI
        parse_size(bad)
    assert issubclass(InvalidSizeError, BadInputError)


def test_format_size_and_hz():
    assert format_size(640 * KiB) == "640 KiB"
    assert format_size(2 * MiB) == "2 MiB"
    assert format_size(992 * KiB) == "992 KiB"
    assert format_size(1056 * KiB) == "1056 KiB"
    assert format_size(6 * MiB + 512 * KiB) == "6.5 MiB"
    assert format_size(4 * GiB) == "4 GiB"
    assert format_size(100) == "100 B"
    assert format_hz(133_000_000) == "133 MHz"
    assert format_hz(1_430_000_000) == "1.43 GHz"
    assert format_hz(2_400_000_000) == "2.4 GHz"
    assert format_hz(None) == "-"


# --------------------------------------------------------------------------- search path


MY_BOARD = """\
name = "my-board"
family = "mcu"
description = "a user's board"
cpu = "cortex-m4"
arch = "armv7e-m"
features = ["dsp", "fpu"]
clock_hz = 64_000_000
default_backend = "c"

[[memories]]
name = "FLASH"
kind = "flash"
size = "512KiB"
base = 0x0800_0000

[[memories]]
name = "SRAM"
kind = "sram"
size = "128KiB"
base = 0x2000_0000

[toolchain]
cc = "arm-none-eabi-gcc"
cflags = ["-mcpu=cortex-m4", "-mthumb"]
"""


def _faster_m4(directory: Path, clock: int) -> Path:
    """A copy of the built-in cortex-m4 with another clock, in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    text = (builtin_targets_dir() / "cortex-m4.toml").read_text()
    assert "clock_hz = 25_000_000" in text
    dest = directory / "cortex-m4.toml"
    dest.write_text(text.replace("clock_hz = 25_000_000", f"clock_hz = {clock}"))
    return dest


def test_user_dir_overrides_builtin_and_adds_targets(tmp_path):
    user = tmp_path / "user"
    _faster_m4(user, 168_000_000)
    (user / "my-board.toml").write_text(MY_BOARD)

    assert search_path(user) == [user, builtin_targets_dir()]
    t = load_target("cortex-m4", user)
    assert t.clock_hz == 168_000_000 and t.source == user / "cortex-m4.toml"
    assert load_target("cortex-m4").clock_hz == 25_000_000  # built-in untouched without the dir

    listed = {t.name: t for t in list_targets([user])}
    assert set(listed) == BUILTIN | {"my-board"}
    assert listed["cortex-m4"].clock_hz == 168_000_000
    assert listed["my-board"].total("sram") == 128 * KiB
    assert listed["rpi4"].source == builtin_targets_dir() / "rpi4.toml"


def test_env_path_overrides_builtin_and_explicit_dir_wins(tmp_path, monkeypatch):
    first, second, explicit = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    _faster_m4(first, 100_000_000)
    _faster_m4(second, 200_000_000)
    _faster_m4(explicit, 300_000_000)
    monkeypatch.setenv(ENV_VAR, os.pathsep.join([str(first), "", str(second)]))

    assert search_path() == [first, second, builtin_targets_dir()]
    assert load_target("cortex-m4").clock_hz == 100_000_000
    assert load_target("cortex-m4", explicit).clock_hz == 300_000_000
    assert search_path([explicit]) == [explicit, first, second, builtin_targets_dir()]

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(TargetError, match=ENV_VAR):
        load_target("cortex-m4")


def test_missing_targets_dir_is_an_error(tmp_path):
    with pytest.raises(TargetError, match="not a directory"):
        list_targets(tmp_path / "nowhere")


def test_load_by_path(tmp_path):
    f = tmp_path / "my-board.toml"
    f.write_text(MY_BOARD)
    assert load_target(f).clock_hz == 64_000_000
    assert load_target(str(f)).name == "my-board"
    with pytest.raises(TargetError, match="not found"):
        load_target(tmp_path / "absent.toml")


def test_unknown_target_lists_names_and_search_path():
    with pytest.raises(TargetError) as info:
        load_target("cortex-m99")
    msg = str(info.value)
    assert "unknown target 'cortex-m99'" in msg
    assert "cortex-m4, cortex-m55" in msg and "x86_64" in msg
    assert str(builtin_targets_dir()) in msg
    assert "\n" not in msg


# --------------------------------------------------------------------------- broken files

# (what is wrong, (old, new) replacements applied to MY_BOARD, the field the message must name)
BROKEN = [
    ("missing name", [('name = "my-board"\n', "")], "name"),
    ("name is not the file stem", [('name = "my-board"', 'name = "other-board"')], "name"),
    (
        "unknown top-level field",
        [('default_backend = "c"', 'default_backend = "c"\ncolour = "red"')],
        "colour",
    ),
    ("missing required field", [('cpu = "cortex-m4"\n', "")], "cpu"),
    ("clock is a string", [("clock_hz = 64_000_000", 'clock_hz = "fast"')], "clock_hz"),
    ("clock is a bool", [("clock_hz = 64_000_000", "clock_hz = true")], "clock_hz"),
    ("clock is zero", [("clock_hz = 64_000_000", "clock_hz = 0")], "clock_hz"),
    ("bad family", [('family = "mcu"', 'family = "phone"')], "family"),
    ("bad backend", [('default_backend = "c"', 'default_backend = "pytorch"')], "default_backend"),
    ("features not a list", [('features = ["dsp", "fpu"]', 'features = "dsp"')], "features"),
    (
        "unknown feature",
        [('features = ["dsp", "fpu"]', 'features = ["dsp", "warp"]')],
        "features[1]",
    ),
    ("bad memory kind", [('kind = "flash"', 'kind = "eeprom"')], "memories[0].kind"),
    ("unparsable size", [('size = "128KiB"', 'size = "lots"')], "memories[1].size"),
    ("negative size", [('size = "512KiB"', "size = -5")], "memories[0].size"),
    ("zero size", [('size = "512KiB"', "size = 0")], "memories[0].size"),
    ("size is a float", [('size = "512KiB"', "size = 1.5")], "memories[0].size"),
    ("duplicate region name", [('name = "SRAM"', 'name = "FLASH"')], "memories[1].name"),
    (
        "unknown region field",
        [("base = 0x2000_0000", "base = 0x2000_0000\nspeed = 1")],
        "memories[1].speed",
    ),
    ("base is a string", [("base = 0x2000_0000", 'base = "0x20000000"')], "memories[1].base"),
    ("overlapping regions", [("base = 0x2000_0000", "base = 0x0807_0000")], "memories[1].base"),
    ("mcu without sram", [('kind = "sram"', 'kind = "psram"')], "memories"),
    ("missing toolchain.cc", [('cc = "arm-none-eabi-gcc"\n', "")], "toolchain.cc"),
    (
        "cflags not strings",
        [('cflags = ["-mcpu=cortex-m4", "-mthumb"]', 'cflags = ["-mthumb", 3]')],
        "toolchain.cflags[1]",
    ),
    (
        "toolchain not a table",
        [
            (
                '[toolchain]\ncc = "arm-none-eabi-gcc"\ncflags = ["-mcpu=cortex-m4", "-mthumb"]\n',
                "",
            ),
            ('default_backend = "c"', 'default_backend = "c"\ntoolchain = 3'),
        ],
        "toolchain",
    ),
    (
        "jetson without cuda",
        [
            ('family = "mcu"', 'family = "jetson"'),
            ('kind = "sram"', 'kind = "dram"'),
            ('kind = "flash"', 'kind = "dram"'),
        ],
        "cuda",
    ),
    ("cuda feature without table", [('features = ["dsp", "fpu"]', 'features = ["cuda"]')], "cuda"),
]

EMULATOR_BROKEN = [
    (
        "qemu-system without uart_base",
        '[emulator]\nkind = "qemu-system"\nbinary = "qemu-system-arm"\nmachine = "mps2-an386"\n',
        "emulator.uart_base",
    ),
    ("bad emulator kind", '[emulator]\nkind = "renode"\nbinary = "renode"\n', "emulator.kind"),
    (
        "uart_base on qemu-user",
        '[emulator]\nkind = "qemu-user"\nbinary = "qemu-arm"\nuart_base = 1\n',
        "emulator.uart_base",
    ),
    ("cuda sm not int", '[cuda]\nsm = "87"\n', "cuda.sm"),
]


def _write(tmp_path: Path, text: str, name: str = "my-board") -> Path:
    d = tmp_path / "broken"
    d.mkdir(exist_ok=True)
    f = d / f"{name}.toml"
    f.write_text(text)
    return f


def _expect_error(path: Path, field: str) -> str:
    with pytest.raises(TargetError) as info:
        load_target(path)
    msg = str(info.value)
    assert path.name in msg, msg
    assert f"field '{field}'" in msg, msg
    return msg


def test_the_unbroken_file_loads(tmp_path):
    t = load_target(_write(tmp_path, MY_BOARD))
    assert (t.name, t.total("flash"), t.total("sram")) == ("my-board", 512 * KiB, 128 * KiB)


@pytest.mark.parametrize("what, edits, field", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_files_name_file_and_field(tmp_path, what, edits, field):
    text = MY_BOARD
    for old, new in edits:
        assert old in text, f"test edit does not apply: {old!r}"
        text = text.replace(old, new, 1)
    _expect_error(_write(tmp_path, text), field)


@pytest.mark.parametrize("what, table, field", EMULATOR_BROKEN, ids=[b[0] for b in EMULATOR_BROKEN])
def test_broken_tables_name_file_and_field(tmp_path, what, table, field):
    _expect_error(_write(tmp_path, MY_BOARD + "\n" + table), field)


def test_size_message_is_exact(tmp_path):
    f = _write(tmp_path, MY_BOARD.replace('size = "128KiB"', 'size = "lots"'))
    with pytest.raises(TargetError) as info:
        load_target(f)
    assert str(info.value).endswith(
        "my-board.toml: field 'memories[1].size': expected a size like 256KiB, got 'lots'"
    )


def test_toml_syntax_error_names_file_and_line(tmp_path):
    f = _write(tmp_path, MY_BOARD.replace('family = "mcu"', 'family = "mcu'))
    with pytest.raises(TargetError) as info:
        load_target(f)
    msg = str(info.value)
    assert "my-board.toml" in msg and "TOML syntax error" in msg and "line 2" in msg


def test_broken_user_file_fails_the_listing(tmp_path):
    f = _write(tmp_path, MY_BOARD.replace('family = "mcu"', 'family = "phone"'))
    with pytest.raises(TargetError, match=r"my-board\.toml: field 'family'"):
        list_targets(f.parent)


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def cli():
    from edgekit.cli.main import _register
    from edgekit.cli.main import cli as group

    if "targets" not in group.commands:
        _register()
    return group


@pytest.fixture
def runner(monkeypatch):
    # wide terminal: the one-line error must not be wrapped by the console
    monkeypatch.setenv("COLUMNS", "2000")
    return CliRunner()


def test_cli_lists_all_targets(cli, runner):
    result = runner.invoke(cli, ["targets"])
    assert result.exit_code == 0, result.output
    for name in BUILTIN:
        assert re.search(rf"(^|\s){re.escape(name)}\s", result.output), name
    m4 = next(
        line for line in result.output.splitlines() if " cortex-m4 " in line and "mps2" in line
    )
    assert "25 MHz" in m4 and "4 MiB" in m4 and "mps2-an386" in m4
    l4 = next(line for line in result.output.splitlines() if "nucleo-l4r5zi" in line)
    assert "120 MHz" in l4 and "640 KiB" in l4


def test_cli_lists_json(cli, runner):
    result = runner.invoke(cli, ["targets", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {d["name"] for d in data} == BUILTIN


def test_cli_show_json(cli, runner):
    result = runner.invoke(cli, ["targets", "show", "cortex-m4", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    sram = [m for m in d["memories"] if m["kind"] == "sram"]
    assert sram == [{"name": "SSRAM2-3", "kind": "sram", "size": 4 * MiB, "base": 0x2000_0000}]
    assert d["emulator"]["machine"] == "mps2-an386"
    # --json given to the group works too
    again = runner.invoke(cli, ["targets", "--json", "show", "cortex-m4"])
    assert json.loads(again.output) == d


def test_cli_show_table(cli, runner):
    result = runner.invoke(cli, ["targets", "show", "stm32h7"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "480 MHz" in out and "992 KiB" in out
    assert "AXI-SRAM" in out and "0x24000000" in out and "512 KiB" in out
    assert "-mfpu=fpv5-d16" in out


def test_cli_show_unknown_is_one_line_exit_2(cli, runner):
    result = runner.invoke(cli, ["targets", "show", "nope"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: unknown target 'nope'")
    assert "cortex-m4" in lines[0] and "Traceback" not in result.output


def test_cli_targets_dir_override(cli, runner, tmp_path):
    user = tmp_path / "user"
    _faster_m4(user, 168_000_000)
    (user / "my-board.toml").write_text(MY_BOARD)
    result = runner.invoke(cli, ["targets", "--targets-dir", str(user)])
    assert result.exit_code == 0, result.output
    assert "my-board" in result.output and "168 MHz" in result.output
    shown = runner.invoke(
        cli, ["targets", "show", "cortex-m4", "--json", "--targets-dir", str(user)]
    )
    assert json.loads(shown.output)["clock_hz"] == 168_000_000
    via_group = runner.invoke(
        cli, ["targets", "--targets-dir", str(user), "show", "my-board", "--json"]
    )
    assert json.loads(via_group.output)["clock_hz"] == 64_000_000


def test_cli_env_override(cli, runner, tmp_path, monkeypatch):
    _faster_m4(tmp_path / "env", 72_000_000)
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    shown = runner.invoke(cli, ["targets", "show", "cortex-m4", "--json"])
    assert json.loads(shown.output)["clock_hz"] == 72_000_000


def test_cli_broken_file_exit_2(cli, runner, tmp_path):
    f = _write(tmp_path, MY_BOARD.replace('size = "128KiB"', 'size = "lots"'))
    result = runner.invoke(cli, ["targets", "--targets-dir", str(f.parent)])
    assert result.exit_code == 2
    assert "my-board.toml: field 'memories[1].size'" in result.output


# --------------------------------------------------------------------------- toolchains


def _need(tool: str, message: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(message)
    return path


def _macros(cc: str, flags: list[str] | tuple[str, ...]) -> dict[str, str]:
    proc = subprocess.run(
        [cc, *flags, "-dM", "-E", "-x", "c", os.devnull],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    out = {}
    for line in proc.stdout.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0] == "#define":
            out[parts[1]] = parts[2] if len(parts) == 3 else ""
    return out


def _arm_fp(m: dict[str, str]) -> int:
    return int(m.get("__ARM_FP", "0"), 0)


def _mve(m: dict[str, str]) -> int:
    return int(m.get("__ARM_FEATURE_MVE", "0"), 0)


# feature -> does the compiler, given the target's flags, enable it
ARM_M_FEATURES = {
    "dsp": lambda m: "__ARM_FEATURE_DSP" in m,
    "fpu": lambda m: bool(_arm_fp(m) & 4) and "__ARM_PCS_VFP" in m,
    "fpu-dp": lambda m: bool(_arm_fp(m) & 8),
    "fp16": lambda m: "__ARM_FEATURE_FP16_SCALAR_ARITHMETIC" in m,
    "mve": lambda m: bool(_mve(m) & 1),
    "mve-fp": lambda m: bool(_mve(m) & 2),
}
AARCH64_FEATURES = {
    "fpu": lambda m: bool(_arm_fp(m) & 4),
    "fpu-dp": lambda m: bool(_arm_fp(m) & 8),
    "neon": lambda m: "__ARM_NEON" in m,
    "dotprod": lambda m: "__ARM_FEATURE_DOTPROD" in m,
    "fp16": lambda m: "__ARM_FEATURE_FP16_VECTOR_ARITHMETIC" in m,
    "i8mm": lambda m: "__ARM_FEATURE_MATMUL_INT8" in m,
    "bf16": lambda m: "__ARM_FEATURE_BF16" in m,
    "sve": lambda m: "__ARM_FEATURE_SVE" in m,
}
X86_FEATURES = {
    "fpu": lambda m: "__SSE__" in m,
    "fpu-dp": lambda m: "__SSE2__" in m,
    "sse2": lambda m: "__SSE2__" in m,
    "sse4.2": lambda m: "__SSE4_2__" in m,
    "avx2": lambda m: "__AVX2__" in m,
    "fma": lambda m: "__FMA__" in m,
    "avx512f": lambda m: "__AVX512F__" in m,
}
# GCC 12 defines no separate macro for Armv8.1-M
ARM_M_ARCH_MACRO = {
    "armv6-m": "__ARM_ARCH_6M__",
    "armv7-m": "__ARM_ARCH_7M__",
    "armv7e-m": "__ARM_ARCH_7EM__",
    "armv8-m.main": "__ARM_ARCH_8M_MAIN__",
    "armv8.1-m.main": "__ARM_ARCH_8M_MAIN__",
}

TINY_C = """\
#include <stdint.h>
int32_t mac(const int8_t *a, const int8_t *b, int n) {
    int32_t acc = 0;
    for (int i = 0; i < n; i++) acc += a[i] * b[i];
    return acc;
}
float scale(float x) { return x * 0.5f + 1.0f; }
"""


def _check_features(t: Target, cc: str, table: dict) -> None:
    m = _macros(cc, t.toolchain.cflags)
    for feature, enabled in table.items():
        assert enabled(m) == t.has(feature), (
            f"{t.name}: feature {feature!r} is {'listed' if t.has(feature) else 'not listed'} "
            f"but {' '.join(t.toolchain.cflags)} {'enables' if enabled(m) else 'does not enable'} it"
        )


def _compile_tiny(t: Target, cc: str, tmp_path: Path) -> None:
    src = tmp_path / "tiny.c"
    src.write_text(TINY_C)
    proc = subprocess.run(
        [
            cc,
            *t.toolchain.cflags,
            "-O2",
            "-Wall",
            "-Werror",
            "-c",
            str(src),
            "-o",
            str(tmp_path / "tiny.o"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"{t.name}: {cc} {' '.join(t.toolchain.cflags)}:\n{proc.stderr}"


MCU_NAMES = sorted(n for n in BUILTIN if DATASHEET[n][0] == "mcu")
AARCH64_NAMES = sorted(n for n in BUILTIN if DATASHEET[n][0] in ("linux", "jetson"))


@pytest.mark.parametrize("name", MCU_NAMES)
def test_mcu_flags_compile_and_give_the_listed_features(name, tmp_path):
    _need("arm-none-eabi-gcc", ARM_GCC_MISSING)
    t = load_target(name)
    assert t.toolchain.cc == "arm-none-eabi-gcc"
    assert f"-mcpu={t.cpu}" in t.toolchain.cflags and "-mthumb" in t.toolchain.cflags
    _compile_tiny(t, t.toolchain.cc, tmp_path)
    _check_features(t, t.toolchain.cc, ARM_M_FEATURES)
    assert ARM_M_ARCH_MACRO[t.arch] in _macros(t.toolchain.cc, t.toolchain.cflags)
    # the arch string itself is one GCC knows
    proc = subprocess.run(
        [
            t.toolchain.cc,
            f"-march={t.arch}",
            "-mthumb",
            "-mfloat-abi=soft",
            "-c",
            "-x",
            "c",
            os.devnull,
            "-o",
            str(tmp_path / "arch.o"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("name", AARCH64_NAMES)
def test_aarch64_flags_compile_and_give_the_listed_features(name, tmp_path):
    t = load_target(name)
    assert t.toolchain.cc == "aarch64-linux-gnu-gcc"
    _need(t.toolchain.cc, "aarch64-linux-gnu-gcc missing: apt-get install gcc-aarch64-linux-gnu")
    _compile_tiny(t, t.toolchain.cc, tmp_path)
    _check_features(t, t.toolchain.cc, AARCH64_FEATURES)
    assert _macros(t.toolchain.cc, t.toolchain.cflags).get("__ARM_ARCH") == "8"


def test_host_flags(tmp_path):
    t = load_target("x86_64")
    _need(t.toolchain.cc, "gcc missing")
    if os.uname().machine != "x86_64":
        pytest.skip("not an x86_64 host")
    _compile_tiny(t, t.toolchain.cc, tmp_path)
    _check_features(t, t.toolchain.cc, X86_FEATURES)


# --------------------------------------------------------------------------- QEMU

AARCH64_PROBE_C = """\
#include <stdio.h>
#include <stdint.h>
#include <arm_neon.h>
int main(void) {
    volatile int32_t seed = 3;
    int32x4_t v = vdupq_n_s32(seed);
    v = vaddq_s32(v, v);
    int ok = vgetq_lane_s32(v, 3) == 6;
#ifdef __ARM_FEATURE_DOTPROD
    int8x16_t a = vdupq_n_s8((int8_t)seed), b = vdupq_n_s8(2);
    int32x4_t d = vdotq_s32(vdupq_n_s32(1), a, b);  /* 1 + 4 * (3 * 2) */
    ok = ok && vgetq_lane_s32(d, 0) == 25;
#endif
#ifdef __ARM_FEATURE_FP16_VECTOR_ARITHMETIC
    float16x8_t h = vdupq_n_f16((float16_t)1.5f);
    h = vmulq_f16(h, h);
    ok = ok && (float)vgetq_lane_f16(h, 7) == 2.25f;
#endif
    printf("EDGEKIT-AARCH64 %s\\n", ok ? "OK" : "BAD");
    return ok ? 0 : 1;
}
"""


@pytest.mark.parametrize("name", AARCH64_NAMES)
def test_qemu_user_runs_the_targets_code(name, tmp_path):
    """Code built with the target's flags (dot product, fp16 where listed) runs on the
    emulator's CPU model."""
    t = load_target(name)
    e = t.emulator
    _need(t.toolchain.cc, "aarch64-linux-gnu-gcc missing: apt-get install gcc-aarch64-linux-gnu")
    _need(e.binary, "qemu-aarch64 missing: apt-get install qemu-user")
    if not Path(e.sysroot, "lib").is_dir():
        pytest.skip(f"no aarch64 sysroot at {e.sysroot}: apt-get install libc6-dev-arm64-cross")
    src = tmp_path / "probe.c"
    src.write_text(AARCH64_PROBE_C)
    exe = tmp_path / "probe"
    build = subprocess.run(
        [
            t.toolchain.cc,
            *t.toolchain.cflags,
            "-O2",
            str(src),
            "-o",
            str(exe),
            *t.toolchain.ldflags,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run(
        [e.binary, "-cpu", e.cpu, "-L", e.sysroot, str(exe)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and "EDGEKIT-AARCH64 OK" in run.stdout, (
        run.returncode,
        run.stdout,
        run.stderr,
    )


FIRMWARE_C = r"""
#include <stdint.h>

#define UART_BASE %(uart)#xu
#define TIMER_BASE %(timer)#xu
#define HAS_TIMER %(has_timer)d

typedef struct { uint32_t base, size, writable; } region_t;
static const region_t regions[] = { %(regions)s };
#define N_REGIONS (sizeof regions / sizeof regions[0])

extern uint32_t __stack_top;
void reset_handler(void);
void fault_handler(void);

__attribute__((section(".vectors"), used))
const void *const vectors[16] = {
    &__stack_top, (const void *)reset_handler, (const void *)fault_handler,
    (const void *)fault_handler, (const void *)fault_handler, (const void *)fault_handler,
    (const void *)fault_handler, 0, 0, 0, 0, (const void *)fault_handler,
    (const void *)fault_handler, 0, (const void *)fault_handler, (const void *)fault_handler,
};

static volatile uint32_t *const uart = (volatile uint32_t *)UART_BASE;

static void put_char(char c) { while (uart[1] & 1u) {} uart[0] = (uint8_t)c; }
static void put_str(const char *s) { while (*s) put_char(*s++); }
static void put_uint(uint32_t v) {
    char buf[11]; int i = 0;
    do { buf[i++] = (char)('0' + v %% 10u); v /= 10u; } while (v);
    while (i) put_char(buf[--i]);
}
static void put_flag(const char *name, int ok) { put_char(' '); put_str(name); put_char('='); put_uint((uint32_t)ok); }

static void __attribute__((noreturn)) semihost_exit(uint32_t code) {
    uint32_t block[2] = { 0x20026u, code };          /* ADP_Stopped_ApplicationExit */
    register uint32_t r0 __asm__("r0") = 0x20u;       /* SYS_EXIT_EXTENDED */
    register uint32_t *r1 __asm__("r1") = block;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    for (;;) {}
}

void fault_handler(void) { put_str("\nFAULT\n"); semihost_exit(1); }

static void spin(void) {  /* 1,000,000 x (subs + bne) = 2,000,000 instructions */
    uint32_t n = 1000000u;
    __asm__ volatile("1: subs %%0, %%0, #1\n bne 1b" : "+r"(n) :: "cc");
}

#if FEAT_DSP
__attribute__((noinline)) static int use_dsp(void) {
    volatile uint32_t a = 0x00020003u, b = 0x00040005u, acc = 10u; uint32_t r;
    __asm__ volatile("smlad %%0, %%1, %%2, %%3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r == 33u;  /* 2*4 + 3*5 + 10 */
}
#endif
#if FEAT_FPU
__attribute__((noinline)) static int use_fpu(void) { volatile float a = 1.5f, b = 3.0f; return a * b == 4.5f; }
#endif
#if FEAT_FPU_DP
__attribute__((noinline)) static int use_fpu_dp(void) { volatile double a = 1.25, b = 1e10; return a * b == 1.25e10; }
#endif
#if FEAT_FP16
__attribute__((noinline)) static int use_fp16(void) {
    volatile _Float16 a = 1.5f16; _Float16 r = a * a; return r == 2.25f16;
}
#endif
#if FEAT_MVE || FEAT_MVE_FP
#include <arm_mve.h>
#endif
#if FEAT_MVE
__attribute__((noinline)) static int use_mve(void) {
    volatile int32_t s = 3; int32x4_t v = vdupq_n_s32(s); v = vaddq_s32(v, v); return vgetq_lane_s32(v, 2) == 6;
}
#endif
#if FEAT_MVE_FP
__attribute__((noinline)) static int use_mve_fp(void) {
    volatile float s = 1.5f; float32x4_t v = vdupq_n_f32(s); v = vmulq_f32(v, v); return vgetq_lane_f32(v, 1) == 2.25f;
}
#endif

void reset_handler(void) {
    int ok = 1;
    uart[4] = 16u;  /* BAUDDIV */
    uart[2] = 1u;   /* CTRL: TXEN */
#if FEAT_FPU || FEAT_MVE
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20;  /* CPACR: CP10, CP11 full access */
    __asm__ volatile("dsb\n isb" ::: "memory");
#endif
    put_str("EDGEKIT-FW");
#if FEAT_DSP
    { int r = use_dsp(); put_flag("dsp", r); ok &= r; }
#endif
#if FEAT_FPU
    { int r = use_fpu(); put_flag("fpu", r); ok &= r; }
#endif
#if FEAT_FPU_DP
    { int r = use_fpu_dp(); put_flag("fpu-dp", r); ok &= r; }
#endif
#if FEAT_FP16
    { int r = use_fp16(); put_flag("fp16", r); ok &= r; }
#endif
#if FEAT_MVE
    { int r = use_mve(); put_flag("mve", r); ok &= r; }
#endif
#if FEAT_MVE_FP
    { int r = use_mve_fp(); put_flag("mve-fp", r); ok &= r; }
#endif
    for (uint32_t i = 0; i < N_REGIONS; i++) {
        volatile uint32_t *first = (volatile uint32_t *)regions[i].base;
        volatile uint32_t *mid = (volatile uint32_t *)(regions[i].base + (regions[i].size / 2u & ~3u));
        volatile uint32_t *last = (volatile uint32_t *)(regions[i].base + regions[i].size - 4u);
        int r = 1;
        if (regions[i].writable) {
            /* distinct values at both ends and the middle: a region listed twice its real
               size would read back a mirror of itself */
            uint32_t keep_first = *first, keep_mid = *mid, keep_last = *last;
            *first = 0xA5A50000u + i; *mid = 0x3C3C0000u + i; *last = 0x5A5A0000u + i;
            r = *first == 0xA5A50000u + i && *mid == 0x3C3C0000u + i && *last == 0x5A5A0000u + i;
            *first = keep_first; *mid = keep_mid; *last = keep_last;
        } else {
            (void)*first; (void)*mid; (void)*last;
        }
        put_str(" region"); put_uint(i); put_char('='); put_uint((uint32_t)r);
        ok &= r;
    }
    volatile uint32_t *systick = (volatile uint32_t *)0xE000E010u;
    systick[1] = 0xFFFFFFu; systick[2] = 0u; systick[0] = 5u;  /* processor clock, enabled */
    while (systick[2] == 0u) {}
    uint32_t a = systick[2];
    spin();
    uint32_t b = systick[2];
    put_str(" systick="); put_uint(a - b);
#if HAS_TIMER
    volatile uint32_t *timer = (volatile uint32_t *)TIMER_BASE;  /* CTRL, VALUE, RELOAD */
    timer[2] = 0xFFFFFFFFu; timer[1] = 0xFFFFFFFFu; timer[0] = 1u;
    a = timer[1];
    spin();
    b = timer[1];
    put_str(" timer="); put_uint(a - b);
#endif
    put_str(ok ? " OK\n" : " BAD\n");
    semihost_exit(ok ? 0u : 2u);
}
"""

LINKER_SCRIPT = """\
MEMORY {
  CODE (rx) : ORIGIN = %(code_base)#x, LENGTH = %(code_size)#x
  RAM (rw) : ORIGIN = %(ram_base)#x, LENGTH = %(ram_size)#x
}
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) *(.data*) *(.bss*) *(COMMON) } > CODE
  .ARM.exidx : { *(.ARM.exidx*) } > CODE
  __stack_top = ORIGIN(RAM) + LENGTH(RAM) - 16;
}
"""


@pytest.mark.parametrize("name", sorted(QEMU_BOARDS))
def test_firmware_boots_on_the_qemu_board(name, tmp_path):
    """Build firmware from the target description alone (flags, memory map, UART, timer),
    boot it on the listed QEMU machine, and check what it reports: every listed feature
    works on the emulated core, every listed memory region answers at both ends, and the
    SysTick / CMSDK timer count at the listed clock (with -icount shift=0 one guest
    instruction takes 1 ns, so 2,000,000 instructions last clock_hz / 500 ticks)."""
    t = load_target(name)
    _need(t.toolchain.cc, ARM_GCC_MISSING)
    e = t.emulator
    _need(e.binary, "qemu-system-arm missing: apt-get install qemu-system-arm")

    regions = ", ".join(
        f"{{ {m.base:#x}u, {m.size:#x}u, {0 if m.kind == 'flash' else 1} }}" for m in t.memories
    )
    source = FIRMWARE_C % {
        "uart": e.uart_base,
        "timer": e.timer_base or 0,
        "has_timer": int(e.timer_base is not None),
        "regions": regions,
    }
    code, ram = t.memory("flash")[0], t.memory("sram")[0]
    (tmp_path / "fw.c").write_text(source)
    (tmp_path / "fw.ld").write_text(
        LINKER_SCRIPT
        % {
            "code_base": code.base,
            "code_size": code.size,
            "ram_base": ram.base,
            "ram_size": ram.size,
        }
    )
    defines = [
        f"-DFEAT_{f.upper().replace('-', '_')}={int(t.has(f))}"
        for f in ("dsp", "fpu", "fpu-dp", "fp16", "mve", "mve-fp")
    ]
    elf = tmp_path / "fw.elf"
    build = subprocess.run(
        [
            t.toolchain.cc,
            *t.toolchain.cflags,
            "-O2",
            "-ffreestanding",
            "-nostartfiles",
            *defines,
            "-T",
            str(tmp_path / "fw.ld"),
            str(tmp_path / "fw.c"),
            "-o",
            str(elf),
            *t.toolchain.ldflags,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr

    run = subprocess.run(
        [
            e.binary,
            "-M",
            e.machine,
            "-icount",
            "shift=0",
            "-display",
            "none",
            "-monitor",
            "none",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
            str(elf),
            "-serial",
            "stdio",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = run.stdout
    assert run.returncode == 0 and out.rstrip().endswith(" OK"), (
        run.returncode,
        out,
        run.stderr[-2000:],
    )
    assert out.startswith("EDGEKIT-FW")
    for feature in ("dsp", "fpu", "fpu-dp", "fp16", "mve", "mve-fp"):
        assert (f" {feature}=1" in out) == t.has(feature), (feature, out)
    for i in range(len(t.memories)):
        assert f" region{i}=1" in out, (t.memories[i], out)
    expected_ticks = 2_000_000 * t.clock_hz // 1_000_000_000
    ticks = int(re.search(r"systick=(\d+)", out).group(1))
    assert abs(ticks - expected_ticks) <= expected_ticks // 100, (ticks, expected_ticks)
    if e.timer_base is not None:
        timer = int(re.search(r"timer=(\d+)", out).group(1))
        assert abs(timer - expected_ticks) <= expected_ticks // 100, (timer, expected_ticks)


def test_features_vocabulary_is_closed():
    for t in list_targets():
        assert t.features <= FEATURES
