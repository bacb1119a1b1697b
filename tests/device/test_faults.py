"""Link faults between the host and the protocol test double, injected by the fault
proxy with fixed seeds: the host retries, resumes, or fails with a clear message, and
the device only ever serves a complete, checked model."""

from __future__ import annotations

import hashlib
import time

import pytest

from edgekit.device.client import DeviceClient
from edgekit.device.errors import DeviceError, DeviceTimeoutError
from tests.device.fault_proxy import Faults
from tests.device.reference_device import expected_output, make_package

X = bytes(range(16))
OLD = make_package(body=4000, seed=10)
NEW = make_package(body=30_000, seed=11)


def _hash(pkg: bytes) -> str:
    return hashlib.sha256(pkg).digest()[:8].hex()


def _flash_old(url: str) -> None:
    with DeviceClient(url, timeout=0.3, seed=0) as dev:
        dev.upload(OLD, "old")


def _check_serving(url: str, pkg: bytes, name: str) -> None:
    with DeviceClient(url, timeout=0.3, seed=99) as dev:
        info = dev.info()
        assert info.active.name == name and info.active.model_hash == _hash(pkg)
        assert dev.infer(X)[0] == expected_output(pkg, X)


CASES = {
    "bit flips": dict(to_device=Faults(flip=0.2), to_host=Faults(flip=0.1)),
    "dropped bytes": dict(to_device=Faults(drop=0.15), to_host=Faults(drop=0.1)),
    "duplicated bytes": dict(to_device=Faults(dup=0.15), to_host=Faults(dup=0.1)),
    "truncated frames": dict(to_device=Faults(truncate=0.15), to_host=Faults(truncate=0.1)),
    "lost and repeated frames": dict(to_device=Faults(drop_frame=0.1, dup_frame=0.1),
                                     to_host=Faults(drop_frame=0.1, dup_frame=0.1)),
    "everything": dict(to_device=Faults(flip=0.05, drop=0.05, dup=0.05, truncate=0.05, drop_frame=0.03,
                                        dup_frame=0.03),
                       to_host=Faults(flip=0.05, drop=0.03, dup=0.03, truncate=0.03, drop_frame=0.03)),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("seed", [1, 2])
def test_upload_and_infer_survive_link_faults(device, make_proxy, case, seed):
    _flash_old(device.url)
    px = make_proxy(device, seed=seed, **CASES[case])
    with DeviceClient(px.url, timeout=0.25, retries=10, seed=seed, infer_timeout=1.0,
                      link_rate=1e6) as dev:
        r = dev.upload(NEW, "new")
        assert r.size == len(NEW)
        for _ in range(5):
            out, _ = dev.infer(X)
            assert out == expected_output(NEW, X)
        assert dev.info().active.model_hash == _hash(NEW)
    assert sum(px.injected.values()) > 0, px.injected
    # every INFER ran once on the device, whatever was lost or repeated on the way
    assert device.executed["INFER"] == 5
    _check_serving(device.url, NEW, "new")


def test_a_short_stall_is_ridden_out(device, make_proxy):
    px = make_proxy(device, to_device=Faults(stall_after=8, stall_seconds=1.0))
    t0 = time.monotonic()
    with DeviceClient(px.url, timeout=0.3, retries=8) as dev:
        dev.upload(NEW, "new")
        assert dev.stats.timeouts >= 1
    assert px.injected == {"stall": 1}
    assert time.monotonic() - t0 < 6
    _check_serving(device.url, NEW, "new")


def test_a_dead_link_fails_clearly_and_the_old_model_keeps_serving(device, make_proxy):
    _flash_old(device.url)
    px = make_proxy(device, to_device=Faults(stall_after=10, stall_seconds=None))
    t0 = time.monotonic()
    with DeviceClient(px.url, timeout=0.2, retries=3) as dev:
        with pytest.raises(DeviceTimeoutError,
                           match=r"UPLOAD_CHUNK: no progress at offset [\d,]+ of 30,036 after 3 "
                                 r"retransmissions to socket://127\.0\.0\.1:\d+ \(saw 4x timeout\)"):
            dev.upload(NEW, "new")
    assert time.monotonic() - t0 < 5
    px.close()
    _check_serving(device.url, OLD, "old")


def test_power_cut_mid_upload_resumes(make_device):
    dev_ = make_device(power_cut_after_chunks=12)
    _flash_old(dev_.url)
    events = []
    with DeviceClient(dev_.url, timeout=0.3, on_event=events.append) as dev:
        r = dev.upload(NEW, "new")
        assert r.restarts == 1 and r.begin_offsets[0] == 0 and r.begin_offsets[1] > 0
        assert any("resuming" in e for e in events) and any("reconnecting" in e for e in events)
        assert dev.infer(X)[0] == expected_output(NEW, X)
    # the resumed upload sent only what the device lacked
    assert dev_.executed["UPLOAD_CHUNK"] <= -(-len(NEW) // 1020) + 4
    _check_serving(dev_.url, NEW, "new")


def test_link_drop_mid_upload_resumes_from_the_device_offset(device, make_proxy):
    _flash_old(device.url)
    holder = {}

    def cut(index, frame):
        if index == 15 and not holder.get("done"):
            holder["done"] = True
            holder["px"].disconnect()

    px = make_proxy(device, to_device=Faults(on_frame=cut))
    holder["px"] = px
    with DeviceClient(px.url, timeout=0.3) as dev:
        r = dev.upload(NEW, "new")
        assert r.restarts == 1 and r.begin_offsets[1] > 0
    _check_serving(device.url, NEW, "new")


def test_reset_in_the_middle_of_an_upload_keeps_the_old_model(device):
    _flash_old(device.url)
    with DeviceClient(device.url, timeout=0.3) as dev:
        from edgekit.device.crc import crc32

        dev.begin(len(NEW), crc32(NEW), "new")
        dev._send_chunks(NEW[:10_000], 0, None)
        dev.reset()
        info = dev.info()
        assert info.active.name == "old" and info.active.model_hash == _hash(OLD)
        assert dev.infer(X)[0] == expected_output(OLD, X)
        r = dev.upload(NEW, "new")  # resumes what the slot kept
        assert r.resumed_from == 10_000
    _check_serving(device.url, NEW, "new")


def test_too_many_reboots_give_up_with_a_message(make_device, monkeypatch):
    dev_ = make_device()
    _flash_old(dev_.url)
    # the device loses power after every 3rd chunk, forever
    orig = dev_._chunk

    def chunk(p):
        payload, after = orig(p)
        return payload, (dev_.power_cut if dev_.chunks_seen % 3 == 0 else after)

    monkeypatch.setattr(dev_, "_chunk", chunk)
    with DeviceClient(dev_.url, timeout=0.3, max_restarts=2) as dev:
        with pytest.raises(DeviceError, match=r"upload of 'new' to socket://.*: gave up after 2 link "
                                              r"losses or device reboots"):
            dev.upload(NEW, "new")
    monkeypatch.undo()
    _check_serving(dev_.url, OLD, "old")
