"""QemuBoard with a stand-in firmware (tests/device/uart_echo.c: a banner, then an echo):
start, banner, connections, kill/restart, and QEMU stopped on every way out."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgekit.device.client import DeviceClient
from edgekit.device.errors import ProtocolError
from edgekit.device.qemu import QemuBoard, parse_device_spec
from edgekit.errors import BadInputError
from edgekit.targets import load_target

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


@pytest.fixture(scope="module")
def echo_elf(tmp_path_factory):
    import shutil

    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    out = tmp_path_factory.mktemp("echo") / "echo.elf"
    common = REPO / "firmware" / "common"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-O2", "-std=c99", "-Wall",
                    "-Wextra", "-Werror", str(HERE / "uart_echo.c"), str(common / "startup.c"),
                    *load_target("cortex-m4").linker_symbols(), "-T", str(common / "mps2.ld"),
                    "-nostartfiles", "--specs=nano.specs",
                    "-Wl,--gc-sections", "-o", str(out)], check=True, capture_output=True)
    return out


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def test_start_banner_echo_kill_restart_stop(echo_elf):
    with QemuBoard("cortex-m4", echo_elf) as board:
        assert board.running and board.banner.startswith("edgekit-fw 0.0.1 proto 1")
        cmd = board.command(board.port)
        assert cmd[cmd.index("-M") + 1] == "mps2-an386" and "shift=0" in cmd
        assert f"tcp:127.0.0.1:{board.port},server=on,wait=on,nodelay=on" in cmd
        link = board.connect()
        assert link.banner.startswith(b"edgekit-fw")
        link.write(b"ping\x00")
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < 5 and time.monotonic() < deadline:
            got += link.read(0.5)
        assert got == b"ping\x00"
        port, pid = board.port, board.proc.pid
        board.kill()
        assert not board.running and _gone(pid)
        board.restart()
        assert board.running and board.port == port and board.boots == 2
        pid = board.proc.pid
    assert not board.running and _gone(pid)


def test_qemu_is_stopped_when_the_block_raises(echo_elf):
    with pytest.raises(RuntimeError):
        with QemuBoard("cortex-m4", echo_elf) as board:
            pid = board.proc.pid
            raise RuntimeError("boom")
    assert _gone(pid)


SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    from edgekit.device.qemu import QemuBoard
    board = QemuBoard("cortex-m4", sys.argv[1]).start()
    print(board.proc.pid, flush=True)
    mode = sys.argv[2]
    if mode == "sigterm":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
    elif mode == "ctrl-c":
        with board:
            raise KeyboardInterrupt
    elif mode == "exit":
        sys.exit(0)
    elif mode == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("mode", ["sigterm", "ctrl-c", "exit", "killed"])
def test_qemu_never_outlives_its_host_process(echo_elf, mode):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(echo_elf), mode], capture_output=True,
                         text=True, timeout=30, env=env)
    pid = int(res.stdout.split()[0])
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid), f"QEMU {pid} still runs after the host process ended by {mode}"


def test_a_device_that_echoes_gets_a_clear_protocol_error(echo_elf):
    with QemuBoard("cortex-m4", echo_elf) as board:
        with pytest.raises(ProtocolError, match=r"HELLO: the device answered HELLO \(expected HELLO_RESP\)"):
            DeviceClient(board, timeout=0.5)


def test_bad_board_specs():
    assert parse_device_spec("qemu:cortex-m7") == "cortex-m7"
    assert parse_device_spec("/dev/ttyACM0") is None
    with pytest.raises(BadInputError, match="needs a target name"):
        parse_device_spec("qemu:")
    with pytest.raises(BadInputError, match="has no qemu-system emulator"):
        QemuBoard("rpi4", __file__)
    with pytest.raises(BadInputError, match="not found"):
        QemuBoard("cortex-m4", "/nonexistent.elf")
