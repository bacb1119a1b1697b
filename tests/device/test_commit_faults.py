"""Faults at each protocol step around UPLOAD_COMMIT, against the protocol test double:
the link cut after the last chunk, the COMMIT lost on its way, the COMMIT executed and its
answer lost (link cut, or the device rebooting or falling silent before it answers), and
the device never coming back. The host must report what the device really did, and the
previous model must stay in the other slot until the new one is confirmed active.

Each case runs against a device that keeps the fallback itself (firmware 0.2: a BEGIN for
the active package erases nothing, COMMIT is idempotent) and one that does not (0.1.x):
the host alone must get it right."""

from __future__ import annotations

import hashlib
import time

import pytest

from edgekit.device import protocol as P
from edgekit.device.client import DeviceClient
from edgekit.device.errors import DeviceError
from edgekit.device.frames import Frame, FrameDecoder
from tests.device.fault_proxy import Faults
from tests.device.reference_device import expected_output, make_package

X = bytes(range(16))
OLD = make_package(body=4000, seed=20)
NEW = make_package(body=9000, seed=21)


def _hash(pkg: bytes) -> str:
    return hashlib.sha256(pkg).digest()[:8].hex()


def _type(frame: bytes) -> int | None:
    got = [f for f in FrameDecoder().feed(frame.lstrip(b"\x00")) if isinstance(f, Frame)]
    return got[0].type if got else None


def _flash_old(device) -> dict:
    """Flash OLD; returns a counter of the requests the device runs from now on."""
    with DeviceClient(device.url, timeout=0.3, seed=0) as dev:
        dev.upload(OLD, "old")
    before = dict(device.executed)
    return lambda name: device.executed.get(name, 0) - before.get(name, 0)


def _assert_new_active_old_kept(device) -> None:
    """Slot 1 runs NEW, slot 0 still holds OLD: the previous model survived."""
    with DeviceClient(device.url, timeout=0.3, seed=99) as dev:
        info = dev.info()
        assert info.active_slot == 1 and info.active.model_hash == _hash(NEW)
        assert (info.slots[0].state, info.slots[0].model_hash) == ("valid", _hash(OLD))
        assert dev.infer(X)[0] == expected_output(NEW, X)


def _cut_when(px_holder: dict, frame_type: int, once: dict):
    """An on_frame hook that cuts the link when a frame of ``frame_type`` passes (the
    frame itself is lost with the link)."""
    def hook(index: int, frame: bytes) -> None:
        if not once.get("fired") and _type(frame) == frame_type:
            once["fired"] = True
            px_holder["px"].disconnect()
    return hook


# The step at which the link is cut: (direction, frame type whose passage cuts it).
CUTS = {
    "after the last chunk's answer": ("to_device", P.UPLOAD_COMMIT),  # COMMIT never arrives
    "COMMIT answer lost": ("to_host", P.UPLOAD_COMMIT | P.RESPONSE),
}


@pytest.mark.parametrize("keeps_fallback", [True, False], ids=["fw0.2", "fw0.1"])
@pytest.mark.parametrize("step", list(CUTS))
def test_link_cut_around_the_commit(make_device, make_proxy, step, keeps_fallback):
    device = make_device(keeps_fallback=keeps_fallback)
    ran = _flash_old(device)
    direction, ftype = CUTS[step]
    holder, once = {}, {}
    faults = Faults(on_frame=_cut_when(holder, ftype, once))
    px = make_proxy(device, **{direction: faults})
    holder["px"] = px
    events = []
    with DeviceClient(px.url, timeout=0.3, seed=5, on_event=events.append) as dev:
        r = dev.upload(NEW, "new")
    assert once["fired"] and r.slot == 1 and r.restarts == 1
    if step == "COMMIT answer lost":
        # the device committed: the host learns it from INFO and sends nothing more
        assert r.confirmed_after_fault and any("commit took effect" in e for e in events)
        assert ran("UPLOAD_BEGIN") == 1 and ran("UPLOAD_COMMIT") == 1
    else:
        # the COMMIT never arrived: the upload resumes where it was (all bytes held) and commits
        assert not r.confirmed_after_fault and r.begin_offsets == (0, len(NEW))
        assert ran("UPLOAD_COMMIT") == 1
    assert ran("UPLOAD_CHUNK") == -(-len(NEW) // 1020)  # nothing sent twice
    _assert_new_active_old_kept(device)


def _after_commit(device, monkeypatch, then) -> None:
    """Make the device run ``then()`` right after it commits the next package, before
    it answers."""
    orig = device._commit
    state = {"done": False}

    def commit(p: bytes):
        out = orig(p)
        if not state["done"]:
            state["done"] = True
            then()
        return out

    monkeypatch.setattr(device, "_commit", commit)


def _killable(device, monkeypatch) -> dict:
    """While ``dead["until"]`` is in the future the device reads nothing and writes
    nothing, as a board that was killed (its slots, like flash, are kept)."""
    dead = {"until": 0.0}
    handle, write = device._handle, device._write

    def quiet_handle(conn, ev):
        if time.monotonic() >= dead["until"]:
            handle(conn, ev)

    def quiet_write(conn, data):
        if time.monotonic() >= dead["until"]:
            write(conn, data)

    monkeypatch.setattr(device, "_handle", quiet_handle)
    monkeypatch.setattr(device, "_write", quiet_write)
    return dead


@pytest.mark.parametrize("keeps_fallback", [True, False], ids=["fw0.2", "fw0.1"])
def test_device_reboots_between_commit_and_answer(make_device, monkeypatch, keeps_fallback):
    device = make_device(keeps_fallback=keeps_fallback)
    ran = _flash_old(device)
    _after_commit(device, monkeypatch, device.power_cut)  # the answer goes to a closed socket
    with DeviceClient(device.url, timeout=0.3, seed=6) as dev:
        r = dev.upload(NEW, "new")
    assert r.slot == 1 and r.confirmed_after_fault and r.restarts == 1
    assert ran("UPLOAD_BEGIN") == 1  # no second upload
    _assert_new_active_old_kept(device)


@pytest.mark.parametrize("keeps_fallback", [True, False], ids=["fw0.2", "fw0.1"])
def test_device_silent_after_commit_then_back(make_device, monkeypatch, keeps_fallback):
    """The board dies right after committing (no answer, no reset seen) and is back a
    second later: `flash` used to exit 1 "no valid response" with the new model active."""
    device = make_device(keeps_fallback=keeps_fallback)
    ran = _flash_old(device)
    dead = _killable(device, monkeypatch)
    _after_commit(device, monkeypatch, lambda: dead.update(until=time.monotonic() + 1.0))
    with DeviceClient(device.url, timeout=0.2, retries=2, seed=7) as dev:
        r = dev.upload(NEW, "new")
    assert r.slot == 1 and r.confirmed_after_fault
    assert ran("UPLOAD_BEGIN") == 1
    _assert_new_active_old_kept(device)


def test_device_gone_for_good_after_commit_says_the_outcome_is_unknown(make_device, monkeypatch):
    device = make_device()
    _flash_old(device)
    dead = _killable(device, monkeypatch)
    _after_commit(device, monkeypatch, lambda: dead.update(until=float("inf")))
    with DeviceClient(device.url, timeout=0.2, retries=1, seed=8, reconnect_timeout=1.0,
                      max_restarts=1) as dev:
        with pytest.raises(DeviceError, match=r"UPLOAD_COMMIT was sent and its answer lost: the device "
                                              r"may run the new model or the previous one \(edgekit "
                                              r"device info --port socket://"):
            dev.upload(NEW, "new")


def test_flashing_the_active_package_again_sends_nothing_and_keeps_the_fallback(device):
    ran = _flash_old(device)
    with DeviceClient(device.url, timeout=0.3, seed=9) as dev:
        dev.upload(NEW, "new")
        r = dev.upload(NEW, "new")
    assert r.already_active and r.slot == 1 and r.bytes_transferred == 0
    assert ran("UPLOAD_BEGIN") == 1
    _assert_new_active_old_kept(device)
