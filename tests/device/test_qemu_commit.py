"""The commit on the real model-slot firmware (QEMU mps2-an386, slot RAM file-backed so it
survives a kill like flash): the board killed right after UPLOAD_COMMIT and booted again,
the link cut as the COMMIT's answer passes, a package whose weights were altered after
packing, one whose stored SHA-256 differs in its last byte, and one of format 1.0. Each
time the host reports what the board really runs, and the previous model stays in the
other slot."""

from __future__ import annotations

import threading

import pytest

from edgekit.bundle.micro_package_reader import read_package_header
from edgekit.bundle.micro_package_writer import pack_model
from edgekit.device import protocol as P
from edgekit.device.client import DeviceClient
from edgekit.device.errors import DeviceRejectedError
from edgekit.device.frames import Frame, FrameDecoder
from edgekit.device.qemu import QemuBoard
from tests.device import models
from tests.device.fault_proxy import FaultProxy, Faults
from tests.firmware.support import FORMAT1_PACKAGE, restamp_crc

TARGET = "cortex-m4"


@pytest.fixture
def board():
    elf = models.slot_elf(TARGET)
    with QemuBoard(TARGET, elf, persistent_ram=True) as b:
        yield b


def _packages() -> tuple[bytes, bytes]:
    old, _ = models.digits(per_channel=False)
    new, _ = models.digits(per_channel=True)
    return pack_model(old, TARGET, name="old"), pack_model(new, TARGET, name="new")


def _type(frame: bytes) -> int | None:
    got = [f for f in FrameDecoder().feed(frame.lstrip(b"\x00")) if isinstance(f, Frame)]
    return got[0].type if got else None


def _flash(board, pkg: bytes, name: str) -> int:
    with DeviceClient(board, timeout=0.5, seed=1) as dev:
        return dev.upload(pkg, name).slot


def _check(board, new: bytes, old: bytes, new_slot: int) -> None:
    with DeviceClient(board, timeout=0.5, seed=2) as dev:
        info = dev.info()
        assert info.active_slot == new_slot
        assert info.active.model_hash == read_package_header(new).model_id
        other = info.slots[1 - new_slot]
        assert (other.state, other.model_hash) == ("valid", read_package_header(old).model_id)


class _Killer:
    """Kills QEMU and boots it again 0.3 s later (its slot RAM kept, as flash would be)."""

    def __init__(self, board):
        self.board = board
        self.fired = threading.Event()
        self.back = threading.Event()

    def __call__(self) -> None:
        self.fired.set()
        self.board.kill()
        threading.Timer(0.3, self._reboot).start()

    def _reboot(self) -> None:
        self.board.start()
        self.back.set()


@pytest.mark.parametrize("delay", [0.01, 0.05])
def test_board_killed_right_after_commit(board, delay):
    """Killed 10 or 50 ms after the COMMIT left the host: the answer may or may not have
    come back; either way the host must end with what the board runs."""
    old, new = _packages()
    old_slot = _flash(board, old, "old")
    killer = _Killer(board)

    def hook(index: int, frame: bytes) -> None:
        if not killer.fired.is_set() and _type(frame) == P.UPLOAD_COMMIT:
            threading.Timer(delay, killer).start()
            killer.fired.set()

    with FaultProxy(board.connect, to_device=Faults(on_frame=hook)) as px:
        with DeviceClient(px.url, timeout=0.5, seed=3) as dev:
            r = dev.upload(new, "new")
    assert killer.back.wait(10) and r.slot == 1 - old_slot
    _check(board, new, old, r.slot)


def test_board_killed_between_commit_and_answer(board):
    """The board committed and died before its answer reached the host."""
    old, new = _packages()
    old_slot = _flash(board, old, "old")
    killer, holder = _Killer(board), {}

    def hook(index: int, frame: bytes) -> None:
        if not killer.fired.is_set() and _type(frame) == P.UPLOAD_COMMIT | P.RESPONSE:
            killer()
            holder["px"].disconnect()  # the answer goes down with the board

    with FaultProxy(board.connect, to_host=Faults(on_frame=hook)) as px:
        holder["px"] = px
        with DeviceClient(px.url, timeout=0.5, seed=6) as dev:
            r = dev.upload(new, "new")
    assert killer.back.wait(10) and r.confirmed_after_fault and r.slot == 1 - old_slot
    _check(board, new, old, r.slot)


def test_link_cut_as_the_commit_answer_passes(board):
    old, new = _packages()
    old_slot = _flash(board, old, "old")
    holder, fired = {}, threading.Event()

    def hook(index: int, frame: bytes) -> None:
        if not fired.is_set() and _type(frame) == P.UPLOAD_COMMIT | P.RESPONSE:
            fired.set()
            holder["px"].disconnect()

    with FaultProxy(board.connect, to_host=Faults(on_frame=hook)) as px:
        holder["px"] = px
        with DeviceClient(px.url, timeout=0.5, seed=4) as dev:
            r = dev.upload(new, "new")
    assert fired.is_set() and r.confirmed_after_fault and r.slot == 1 - old_slot
    _check(board, new, old, r.slot)


def test_altered_or_old_format_packages_are_refused_by_the_firmware(board):
    old, new = _packages()
    _flash(board, old, "old")
    graph, _ = models.digits(per_channel=True)
    weights = next(t.data for t in graph.tensors.values()
                   if t.data is not None and t.data.dtype.itemsize == 1 and t.data.size > 64)
    at = new.index(weights.tobytes()) + 7
    altered = bytearray(new)
    altered[at] ^= 0x10  # one weight; the header (and its model_hash) untouched
    with DeviceClient(board, timeout=0.5, seed=5) as dev:  # the client does not check hashes
        with pytest.raises(DeviceRejectedError, match=r"UPLOAD_COMMIT: the device answered E_HEADER: .*"
                                                      r"\(check 11, model_hash: the SHA-256"):
            dev.upload(bytes(altered), "altered")
        # the last byte of the stored digest: only a check of all 32 bytes sees it
        last = bytearray(new)
        last[87] ^= 0x01
        with pytest.raises(DeviceRejectedError, match=r"\(check 11, model_hash"):
            dev.upload(restamp_crc(last), "last-byte")
        # a format 1.0 package (8-byte hash): refused, naming both formats
        with pytest.raises(DeviceRejectedError, match=r"\(check 3, format_major: .*\(the package is "
                                                      r"format 1\.x, this firmware runs format 2\.x\)"):
            dev.upload(FORMAT1_PACKAGE.read_bytes(), "format1")
        info = dev.info()
        assert info.active.name == "old"
        assert info.active.model_hash == read_package_header(old).model_id
        assert dev.upload(new, "new").slot == 1 - info.active_slot  # the untouched package passes
        assert dev.info().active.model_hash == read_package_header(new).model_id


def test_cli_flash_reports_wire_figures_and_an_active_package(board, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli

    _register()
    old, new = _packages()
    (tmp_path / "new.ekpkg").write_bytes(new)
    board.connect().close()  # QEMU serves one connection at a time: free it for the CLI

    def flash():
        return CliRunner().invoke(cli, ["flash", str(tmp_path / "new.ekpkg"), "--port", board.url],
                                  catch_exceptions=False, env={"COLUMNS": "200"})

    r = flash()
    assert r.exit_code == 0, r.output
    assert "flashed 'new' to slot 0" in r.output and "B/s on this link" in r.output
    wire = float(r.output.split("wire: ")[1].split(" ")[0])
    seconds = float(r.output.split("on a 115200-baud UART (8N1) these bytes take ")[1].split(" ")[0])
    # 1 KiB chunks: 1,020 package bytes in a ~1,040-byte frame, plus BEGIN, COMMIT, INFO
    assert 1.015 < wire < 1.03
    assert seconds == pytest.approx(len(new) * wire * 10 / 115200, abs=0.06)
    r = flash()
    assert r.exit_code == 0, r.output
    assert "'new' (crc32 0x" in r.output and "is already the active model, in slot 0: nothing sent" in r.output
