"""DeviceClient against the protocol test double: handshake, commands, uploads, errors."""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest

from edgekit.device import protocol as P
from edgekit.device.client import DeviceClient
from edgekit.device.crc import crc32
from edgekit.device.frames import Frame, FrameDecoder
from edgekit.device.errors import (DeviceError, DeviceRejectedError, DeviceTimeoutError, PortError,
                                   ProtocolError)
from edgekit.device.link import open_link
from edgekit.errors import BadInputError
from tests.device.reference_device import expected_output, expected_ticks, make_package

X = bytes(range(16))


def client(url, **kw) -> DeviceClient:
    kw.setdefault("timeout", 0.3)
    kw.setdefault("seed", 1)
    return DeviceClient(url, **kw)


def test_handshake_info_and_stats(device):
    with client(device.url) as dev:
        h = dev.hello
        assert (h.protocol, h.firmware, h.max_payload, h.window) == (1, "0.9.0", 1024, 4)
        assert (h.slot_count, h.slot_size, h.target, h.board) == (2, 64 * 1024, "cortex-m4", "ref-double")
        assert dev.banner == "edgekit-fw 0.9.0 proto 1 target cortex-m4 board ref-double"
        info = dev.info()
        assert info.active is None and [s.state for s in info.slots] == ["empty", "empty"]
        assert info.stack_size == 8192 and info.stack_high_water == 1234
        st = dev.device_stats()
        assert st.frames_ok >= 3 and st.frames_bad == 0 and st.tick_hz == 25_000_000


def test_upload_commit_infer_and_ab_slots(device):
    pkg1, pkg2 = make_package(body=20_000, seed=1), make_package(body=9_000, seed=2)
    seen = []
    with client(device.url) as dev:
        r = dev.upload(pkg1, "first", progress=lambda done, total: seen.append((done, total)))
        assert (r.slot, r.size, r.crc, r.resumed_from, r.committed) == (0, len(pkg1), crc32(pkg1), 0, True)
        assert seen[-1] == (len(pkg1), len(pkg1))
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        out, ticks = dev.infer(X)
        assert out == expected_output(pkg1, X) and ticks == expected_ticks(X)
        info = dev.info()
        assert info.active.name == "first" and info.active.size == len(pkg1)
        assert info.active.model_hash == hashlib.sha256(pkg1).digest()[:8].hex()
        dev.upload(pkg2, "second")
        info = dev.info()
        assert info.active_slot == 1 and info.slots[0].state == "valid" and info.active.name == "second"
        assert dev.infer(X)[0] == expected_output(pkg2, X)
        assert dev.device_stats().inferences == 2


@pytest.mark.parametrize("max_payload,window", [(64, 1), (300, 2), (1024, 8)])
def test_upload_with_small_frames_and_any_window(make_device, max_payload, window):
    dev_ = make_device(max_payload=max_payload, window=window)
    pkg = make_package(body=5_000, input_size=8, output_size=3)
    with client(dev_.url) as dev:
        dev.upload(pkg, "m")
        x = bytes(8)
        assert dev.infer(x)[0] == expected_output(pkg, x)
        assert dev.stats.retransmissions == 0 and dev.stats.go_backs == 0
    chunks = dev_.executed["UPLOAD_CHUNK"]
    assert chunks == -(-len(pkg) // (max_payload - 4))


@pytest.mark.parametrize("limit,expected", [(1, 1), (2, 2), (3, 3), (None, 4)])
def test_host_window_limit_is_respected(device, limit, expected):
    """Chunks in flight, seen on the wire (frames written, responses read), never exceed
    the host's window, nor the device's 4 without one, and reach it."""
    pkg = make_package(body=12_000)
    with client(device.url, window=limit) as dev:
        link = dev._link
        sent, received = FrameDecoder(), FrameDecoder()
        inflight: set[int] = set()
        most = [0]
        write, read = link.write, link.read

        def spy_write(data):
            for f in sent.feed(data):
                if isinstance(f, Frame) and f.type == P.UPLOAD_CHUNK:
                    inflight.add(f.seq)
                    most[0] = max(most[0], len(inflight))
            return write(data)

        def spy_read(timeout):
            data = read(timeout)
            for f in received.feed(data or b""):
                if isinstance(f, Frame):
                    inflight.discard(f.seq)
            return data

        link.write, link.read = spy_write, spy_read
        dev.upload(pkg, "m")
    assert most[0] == expected
    assert device.executed["UPLOAD_CHUNK"] == -(-len(pkg) // 1020)


def test_infer_errors_name_the_command_and_the_fix(device):
    with client(device.url) as dev:
        with pytest.raises(DeviceRejectedError, match=r"INFER: the device answered E_NO_MODEL.*edgekit flash"):
            dev.infer(X)
        dev.upload(make_package(), "m")
        with pytest.raises(DeviceRejectedError, match=r"INFER: .*E_TOO_LARGE.*input's size"):
            dev.infer(X + b"!")
        with pytest.raises(DeviceRejectedError, match=r"INFER_BEGIN: .*E_TOO_LARGE.*input's size"):
            dev.infer(bytes(2000))  # larger than a frame: the chunked path, same check


def test_package_larger_than_a_slot_is_refused_before_sending(device):
    with client(device.url) as dev:
        with pytest.raises(DeviceError, match="slots hold 65,536"):
            dev.upload(bytes(70_000), "big")
    assert "UPLOAD_BEGIN" not in device.executed


def test_bad_header_is_rejected_and_the_previous_model_keeps_serving(device):
    good = make_package(seed=4)
    with client(device.url) as dev:
        dev.upload(good, "good")
        for bad in (make_package(magic=b"NOPE"), make_package(target="cortex-m7"),
                    make_package(version=9), make_package(input_size=70_000)):
            with pytest.raises(DeviceRejectedError, match="UPLOAD_COMMIT: .*E_HEADER.*previous model"):
                dev.upload(bad, "bad")
            info = dev.info()
            assert info.active.name == "good"
            assert dev.infer(X)[0] == expected_output(good, X)


def test_crc_mismatch_at_commit_keeps_the_previous_model(device):
    good = make_package(seed=5)
    with client(device.url) as dev:
        dev.upload(good, "good")
        other = make_package(seed=6)
        dev.begin(len(other), crc32(other) ^ 1, "liar")
        dev._send_chunks(other, 0, None)
        with pytest.raises(DeviceRejectedError, match="E_CRC"):
            dev.commit()
        info = dev.info()
        assert info.active.name == "good" and info.slots[1].state == "empty"
        assert dev.infer(X)[0] == expected_output(good, X)


def test_commit_of_an_incomplete_upload_goes_on_from_the_device_offset(device):
    pkg = make_package(body=6000)
    with client(device.url) as dev:
        dev.begin(len(pkg), crc32(pkg), "half")
        dev._send_chunks(pkg[:3000], 0, None)
        with pytest.raises(DeviceRejectedError, match="E_OFFSET"):
            dev.commit()
        r = dev.upload(pkg, "half")  # BEGIN resumes at 3000
        assert r.resumed_from == 3000
        assert dev.info().active.name == "half"


def test_abort_drops_the_receiving_slot(device):
    pkg = make_package()
    with client(device.url) as dev:
        dev.begin(len(pkg), crc32(pkg), "x")
        dev.abort()
        assert dev.info().slots[0].state == "empty"
        with pytest.raises(DeviceRejectedError, match="UPLOAD_COMMIT: .*E_STATE"):
            dev.request(P.UPLOAD_COMMIT, command="UPLOAD_COMMIT")


def test_version_handshake(make_device):
    dev_ = make_device(protocol=2)
    with pytest.raises(ProtocolError, match="speaks protocol 2; this host speaks 1"):
        client(dev_.url)


def test_device_answering_e_version(device, monkeypatch):
    monkeypatch.setattr("edgekit.device.client.HOST_PROTOCOL", 0)
    with pytest.raises(ProtocolError, match="does not speak protocol version 0"):
        client(device.url)


def test_reset_reboots_and_keeps_the_model(device):
    pkg = make_package()
    with client(device.url) as dev:
        dev.upload(pkg, "m")
        boots = device.boots
        dev.reset()
        assert device.boots == boots + 1
        assert dev.info().active.name == "m"
        assert dev.infer(X)[0] == expected_output(pkg, X)


def test_seqs_wrap_and_never_use_the_nak_seq(device):
    with client(device.url) as dev:
        dev._seq = 0xFFFB
        used = []
        real = dev._next_seq

        def spy():
            s = real()
            used.append(s)
            return s

        dev._next_seq = spy
        for _ in range(6):
            dev.info()
        assert P.NAK_SEQ not in used and 0 in used


def test_silent_device_times_out_with_a_clear_message():
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]
    stop = threading.Event()

    def sink():
        conn, _ = srv.accept()
        conn.settimeout(0.1)
        while not stop.is_set():
            try:
                if not conn.recv(4096):
                    break
            except OSError:
                continue
        conn.close()

    t = threading.Thread(target=sink, daemon=True)
    t.start()
    try:
        with pytest.raises(DeviceTimeoutError, match=r"HELLO: no valid response from socket://127.0.0.1:\d+ "
                                                     r"after 2 retransmissions \(timeout 0.1 s; saw 3x timeout\)"):
            DeviceClient(f"socket://127.0.0.1:{port}", timeout=0.1, retries=2, banner_timeout=0.1)
    finally:
        stop.set()
        srv.close()


def test_loopback_port_gets_its_own_request_back():
    # loop:// echoes what the host writes: the host must say it got a request, not a response.
    with pytest.raises(ProtocolError, match=r"HELLO: the device answered HELLO \(expected HELLO_RESP\)"):
        DeviceClient("loop://", timeout=0.2, banner_timeout=0.05)


@pytest.mark.parametrize("port,match", [
    ("socket://127.0.0.1:1", "cannot open port socket://127.0.0.1:1.*listening"),
    ("/dev/ttyEDGEKIT_NONE", "cannot open port /dev/ttyEDGEKIT_NONE.*plugged in"),
    ("", "no port given"),
])
def test_unopenable_ports_are_bad_input(port, match):
    with pytest.raises(PortError, match=match) as exc:
        open_link(port)
    assert isinstance(exc.value, BadInputError) and exc.value.exit_code == 2
