"""The firmware on the five QEMU boards, driven through edgekit.device: boot banner,
HELLO / INFO / STATS, uploads of the shared KWS and AD int8 models with inferences
compared byte for byte with edgekit's reference interpreter, damaged packages refused
while the previous model keeps answering, garbage on the line, RESET, and a power cut
in the middle of an upload."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from edgekit.bundle import pack_model, read_package_header
from edgekit.device import DeviceClient, QemuBoard
from edgekit.device import protocol as P
from edgekit.device.errors import DeviceRejectedError
from edgekit.firmware import load_board
from tests.firmware import support
from tests.firmware.support import QEMU_BOARDS, TICK_HZ, firmware_elf, reference_output, require_tool


def _rejected(fn, *args, **kwargs) -> DeviceRejectedError:
    with pytest.raises(DeviceRejectedError) as info:
        fn(*args, **kwargs)
    return info.value


def _send_chunks(client: DeviceClient, data: bytes, chunk: int = 1000) -> None:
    for off in range(0, len(data), chunk):
        client.request(P.UPLOAD_CHUNK, P.pack_chunk(off, data[off:off + chunk]))


def _check_infer(client, graph, xs):
    for x in xs:
        out, ticks = client.infer(np.ascontiguousarray(x).tobytes())
        assert out == reference_output(graph, x)
        assert ticks > 0
    return ticks


@pytest.mark.parametrize("board", QEMU_BOARDS)
def test_board_serves_kws_and_ad_models(board, tmp_path_factory):
    require_tool("qemu-system-arm")
    kws, ad = support.kws_graph(), support.ad_graph()
    elf = firmware_elf(tmp_path_factory, board)
    target = load_board(board).target
    with QemuBoard(target, elf) as qb:
        qb.start()
        assert qb.banner == f"edgekit-fw 0.3.0 proto 1 target {target} board {board}"
        link = qb.connect()
        client = DeviceClient(link, timeout=3.0)
        h = client.hello_info
        assert (h.protocol, h.firmware, h.target, h.board) == (1, "0.3.0", target, board)
        assert (h.max_payload, h.window, h.slot_count) == (1024, 4, 2)
        assert h.slot_size >= 1 << 21 and h.arena_size >= 256 * 1024
        info = client.info()
        assert info.active_slot is None and [s.state for s in info.slots] == ["empty"] * 2
        assert 0 < info.stack_high_water < info.stack_size
        st = client.device_stats()
        assert st.tick_hz == TICK_HZ[board] and st.uptime_ticks > 0
        assert _rejected(client.infer, b"\x00" * 490).code == P.E_NO_MODEL

        # KWS into slot A, bit-exact
        kws_pkg = pack_model(kws, target)
        assert client.upload(kws_pkg, "kws").slot == 0
        ticks = _check_infer(client, kws, support.kws_inputs(3))
        info = client.info()
        assert info.active_slot == 0 and info.active.name == "kws"
        assert info.active.model_hash == read_package_header(kws_pkg).model_id
        assert info.arena_used == read_package_header(kws_pkg).arena_size
        assert client.device_stats().last_ticks == ticks

        # damaged packages are refused; KWS keeps answering
        # (another package than the active one: a BEGIN for the active package starts nothing)
        renamed = pack_model(kws, target, name="kws-renamed")
        client.begin(len(renamed), zlib.crc32(renamed), "bad-crc")
        _send_chunks(client, renamed[:-1] + bytes([renamed[-1] ^ 0x40]))
        assert _rejected(client.commit).code == P.E_CRC
        other = pack_model(kws, "cortex-m0plus")  # a header for another target
        assert _rejected(client.upload, other, "bad-header").code == P.E_HEADER
        info = client.info()
        assert info.active_slot == 0 and info.slots[1].state == "empty"
        _check_infer(client, kws, support.kws_inputs(4)[3:])

        # AD into slot B: KWS stays valid in slot A
        assert client.upload(pack_model(ad, target), "ad").slot == 1
        _check_infer(client, ad, support.ad_inputs(2))
        info = client.info()
        assert [(s.state, s.name) for s in info.slots] == [("valid", "kws"), ("active", "ad")]

        # garbage on the line: NAKs, then business as usual
        link.write(np.random.default_rng(1).integers(1, 256, 3000, dtype=np.uint8).tobytes() + b"\x00")
        link.write(b"\x01\x02\x03\x00")
        st = client.device_stats()
        assert st.frames_bad >= 2 and st.naks >= 2

        # RESET: banner again, the active model is still there (warm reset keeps RAM)
        client.reset()
        assert client.info().active.name == "ad"
        _check_infer(client, ad, support.ad_inputs(3)[2:])
        client.close()


def test_power_cut_during_upload_keeps_the_previous_model(tmp_path_factory):
    """QEMU killed in the middle of an upload (RAM kept, as flash would be): after the
    reboot the firmware finds the committed model in its slot and serves it; the
    partial upload is not activated."""
    require_tool("qemu-system-arm")
    kws, ad = support.kws_graph(), support.ad_graph()
    elf = firmware_elf(tmp_path_factory, "mps2-an386")
    with QemuBoard("cortex-m4", elf, persistent_ram=True) as qb:
        qb.start()
        client = DeviceClient(qb.connect(), timeout=3.0)
        client.upload(pack_model(kws, "cortex-m4"), "kws")
        ad_pkg = pack_model(ad, "cortex-m4")
        client.begin(len(ad_pkg), zlib.crc32(ad_pkg), "ad")
        _send_chunks(client, ad_pkg[:20_000])
        client.close()
        qb.restart()
        client = DeviceClient(qb.connect(), timeout=3.0)
        info = client.info()
        assert info.active_slot == 0 and info.active.name == "kws"
        assert info.slots[1].state == "empty"
        _check_infer(client, kws, support.kws_inputs(2))
        client.close()


def test_linked_model_firmware(tmp_path_factory):
    require_tool("qemu-system-arm")
    require_tool("arm-none-eabi-gcc")
    from tests.firmware.support import _cached, cache_root, _sources_digest
    from edgekit.firmware.build import build_firmware

    kws = support.kws_graph()
    folder = _cached(cache_root(tmp_path_factory), f"linked-kws-{_sources_digest()}",
                     lambda d: build_firmware("cortex-m4", d, model=kws))
    elf = next(folder.glob("mps2-an386-*.elf"))
    with QemuBoard("cortex-m4", elf) as qb:
        qb.start()
        client = DeviceClient(qb.connect(), timeout=3.0)
        h = client.hello_info
        assert (h.slot_count, h.slot_size) == (1, 0)
        info = client.info()
        assert info.active_slot == 0 and info.active.name == kws.name
        _check_infer(client, kws, support.kws_inputs(3))
        assert _rejected(client.begin, 1000, 0, "x").code == P.E_STATE
        client.close()
