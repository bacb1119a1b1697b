"""The host against the real model-slot firmware on an emulated Cortex-M4 (QEMU
mps2-an386): handshake, uploads of the shared KWS and AD int8 models run bit-exact with
the reference interpreter, and faults injected by the proxy between host and QEMU (bit
flips, dropped and repeated bytes, truncated frames, a stalled link, QEMU killed in the
middle of an upload, a reset, garbage). The board's RAM is file-backed
(``persistent_ram``) so slot storage survives a kill like flash.
"""

from __future__ import annotations

import random
import threading

import pytest

from edgekit.bundle.micro_package_writer import pack_model
from edgekit.device.client import DeviceClient
from edgekit.device.crc import crc32
from edgekit.device.errors import DeviceError, DeviceRejectedError, DeviceTimeoutError
from edgekit.device.qemu import QemuBoard
from edgekit.hil import prepare_inputs, reference_outputs
from tests.device import models
from tests.device.fault_proxy import FaultProxy, Faults

TARGET = "cortex-m4"


@pytest.fixture
def board():
    elf = models.slot_elf(TARGET)
    with QemuBoard(TARGET, elf, persistent_ram=True) as b:
        yield b


def _client(port, **kw) -> DeviceClient:
    kw.setdefault("timeout", 0.5)
    kw.setdefault("seed", 7)
    return DeviceClient(port, **kw)


def _expect(graph, x):
    feeds = prepare_inputs(graph, x)
    return feeds, reference_outputs(graph, feeds)[graph.outputs[0]]


def _check_model(dev: DeviceClient, graph, x, n: int = 3) -> list[int]:
    feeds, want = _expect(graph, x[:n])
    ticks = []
    for i in range(n):
        out, t = dev.infer(feeds[graph.inputs[0]][i].tobytes())
        assert out == want[i].tobytes(), f"vector {i}: device {list(out)} != reference {want[i].tolist()}"
        ticks.append(t)
    return ticks


def _packages():
    old_g, x = models.digits(per_channel=False)
    new_g, _ = models.digits(per_channel=True)
    return (old_g, pack_model(old_g, TARGET, name="old")), (new_g, pack_model(new_g, TARGET, name="new")), x


def test_handshake(board):
    with _client(board) as dev:
        h = dev.hello
        assert (h.protocol, h.target, h.board, h.max_payload) == (1, "cortex-m4", "mps2-an386", 1024)
        assert h.window >= 1 and h.slot_count == 2 and h.slot_size >= 300_000 and h.arena_size > 0
        assert dev.banner == f"edgekit-fw {h.firmware} proto 1 target cortex-m4 board mps2-an386"
        info = dev.info()
        assert info.active is None and info.stack_size > 0
        st = dev.device_stats()
        assert st.tick_hz == 25_000_000 and st.frames_ok >= 3 and st.frames_bad == 0


def test_kws_and_ad_run_bit_exact(board):
    kws_g, kws_x = models.kws()
    ad_g, ad_x = models.ad()
    kws_pkg, ad_pkg = pack_model(kws_g, TARGET), pack_model(ad_g, TARGET)
    with _client(board) as dev:
        r = dev.upload(kws_pkg, "kws")
        assert r.slot == 0 and r.retransmissions == 0
        ticks = _check_model(dev, kws_g, kws_x, 6)
        # -icount shift=0: the same input takes the same ticks every time (to the tick: the
        # timer's phase within its 40 instructions at the start varies)
        feeds, _ = _expect(kws_g, kws_x[:1])
        assert abs(dev.infer(feeds[kws_g.inputs[0]][0].tobytes())[1] - ticks[0]) <= 1
        dev.upload(ad_pkg, "ad")
        _check_model(dev, ad_g, ad_x, 4)
        info = dev.info()
        assert [s.state for s in info.slots] == ["valid", "active"]
        assert info.active.name == "ad" and info.active.size == len(ad_pkg)
        assert 0 < info.arena_used <= info.arena_size and 0 < info.stack_high_water < info.stack_size


FAULTS = {
    "bit flips": dict(to_device=Faults(flip=0.25), to_host=Faults(flip=0.1)),
    "dropped bytes": dict(to_device=Faults(drop=0.2), to_host=Faults(drop=0.1)),
    "duplicated bytes": dict(to_device=Faults(dup=0.2), to_host=Faults(dup=0.1)),
    "truncated frames": dict(to_device=Faults(truncate=0.2), to_host=Faults(truncate=0.1)),
    "lost and repeated frames": dict(to_device=Faults(drop_frame=0.1, dup_frame=0.15),
                                     to_host=Faults(drop_frame=0.1, dup_frame=0.1)),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_upload_and_infer_through_a_faulty_link(board, fault):
    (old_g, old_pkg), (new_g, new_pkg), x = _packages()
    with _client(board) as dev:
        dev.upload(old_pkg, "old")
        dev.close()
    with FaultProxy(board.connect, seed=3, **FAULTS[fault]) as px:
        with _client(px.url, timeout=0.4, retries=12, infer_timeout=2.0) as dev:
            dev.upload(new_pkg, "new")
            _check_model(dev, new_g, x, 4)
            assert dev.info().active.name == "new"
        assert sum(px.injected.values()) > 0
    with _client(board) as dev:
        stats = dev.device_stats()
        assert dev.info().active.name == "new"
        if fault != "lost and repeated frames":
            assert stats.frames_bad > 0 and stats.naks > 0


def test_stalled_link_fails_clearly_and_the_old_model_keeps_serving(board):
    (old_g, old_pkg), (_, new_pkg), x = _packages()
    with _client(board) as dev:
        dev.upload(old_pkg, "old")
        dev.close()
    with FaultProxy(board.connect, to_device=Faults(stall_after=6, stall_seconds=None)) as px:
        with _client(px.url, timeout=0.3, retries=3) as dev:
            with pytest.raises(DeviceTimeoutError, match=r"UPLOAD_CHUNK: no progress at offset [\d,]+ "
                                                         r"of [\d,]+ after 3 retransmissions"):
                dev.upload(new_pkg, "new")
    with _client(board) as dev:
        info = dev.info()
        assert info.active.name == "old" and all(s.state != "receiving" or s.index != info.active_slot
                                                 for s in info.slots)
        _check_model(dev, old_g, x, 2)


def _killer(board: QemuBoard, at_frame: int, restart_after: float | None):
    """An on_frame hook that kills QEMU when the host sends frame ``at_frame`` (in the
    middle of the upload), and boots it again ``restart_after`` s later."""
    state = {"fired": False}

    def hook(index: int, frame: bytes) -> None:
        if index == at_frame and not state["fired"]:
            state["fired"] = True
            board.kill()
            if restart_after is not None:
                threading.Timer(restart_after, board.start).start()

    return hook, state


def test_qemu_killed_mid_upload_never_activates_a_partial_model(board):
    (old_g, old_pkg), (new_g, new_pkg), x = _packages()
    with _client(board) as dev:
        dev.upload(old_pkg, "old")
        dev.close()
    # 1. the power goes and the host may not reconnect: a clear failure
    hook, state = _killer(board, at_frame=6, restart_after=None)
    with FaultProxy(board.connect, to_device=Faults(on_frame=hook)) as px:
        with _client(px.url, max_restarts=0, reconnect_timeout=1.0) as dev:
            with pytest.raises(DeviceError, match=r"upload of 'new' to socket://.*gave up after 0 link "
                                                  r"losses or device reboots"):
                dev.upload(new_pkg, "new")
    assert state["fired"] and not board.running
    board.start()  # power back: the previous model serves, the partial one is gone
    with _client(board) as dev:
        info = dev.info()
        assert info.active.name == "old" and [s.state for s in info.slots].count("active") == 1
        assert all(s.state == "empty" for s in info.slots if s.index != info.active_slot)
        _check_model(dev, old_g, x, 2)
        dev.close()
    # 2. the host waits for the board to come back and finishes the upload
    hook, state = _killer(board, at_frame=6, restart_after=0.3)
    with FaultProxy(board.connect, to_device=Faults(on_frame=hook)) as px:
        events = []
        with _client(px.url, on_event=events.append) as dev:
            r = dev.upload(new_pkg, "new")
            assert state["fired"] and r.restarts >= 1 and len(r.begin_offsets) >= 2
            assert any("reconnecting" in e for e in events)
            _check_model(dev, new_g, x, 3)


def test_reset_mid_upload_keeps_the_old_model(board):
    (old_g, old_pkg), (new_g, new_pkg), x = _packages()
    with _client(board) as dev:
        dev.upload(old_pkg, "old")
        dev.begin(len(new_pkg), crc32(new_pkg), "new")
        dev._send_chunks(new_pkg[:5000], 0, None)
        dev.reset()
        info = dev.info()
        assert info.active.name == "old"
        _check_model(dev, old_g, x, 2)
        r = dev.upload(new_pkg, "new")
        assert r.slot != info.active_slot
        _check_model(dev, new_g, x, 2)


def test_rejected_packages_leave_the_old_model_serving(board):
    (old_g, old_pkg), (new_g, _), x = _packages()
    other_target = pack_model(new_g, "cortex-m7", name="m7")
    with _client(board) as dev:
        dev.upload(old_pkg, "old")
        with pytest.raises(DeviceRejectedError, match=r"UPLOAD_COMMIT: the device answered E_HEADER"):
            dev.upload(other_target, "m7")
        # a package whose header claims more bytes than were sent
        with pytest.raises(DeviceRejectedError, match="E_HEADER"):
            dev.upload(old_pkg[:-64], "short")
        with pytest.raises(DeviceRejectedError, match="E_TOO_LARGE"):
            dev.infer(b"\x01" * 3)
        info = dev.info()
        assert info.active.name == "old"
        _check_model(dev, old_g, x, 2)


def test_garbage_on_the_line_never_hangs_the_firmware(board):
    rng = random.Random(11)
    link = board.connect()
    junk = bytearray()
    for _ in range(40):
        kind = rng.randrange(3)
        n = rng.randrange(1, 600)
        if kind == 0:
            junk += bytes(rng.randrange(256) for _ in range(n))
        elif kind == 1:
            junk += bytes(rng.randrange(1, 256) for _ in range(3000)) + b"\x00"  # oversize run
        else:
            junk += bytes(rng.choice([0, 1, 2, 0x7E]) for _ in range(n))
    link.write(bytes(junk))
    with _client(link, timeout=2.0) as dev:
        dev.info()
        st = dev.device_stats()
        assert st.frames_bad > 10
        dev.upload(_packages()[0][1], "after-garbage")
        assert dev.info().active.name == "after-garbage"
    assert board.running
