"""The serial engine: an MCU bundle (compiled for cortex-m4) opened through
``edgekit.runtime.open(..., engine="serial")`` on the model-slot firmware under QEMU
(mps2-an386), against independent oracles: edgekit's reference interpreter for every
output byte, a frame-counting proxy on the line for "nothing was flashed", a real
SIGKILL of the emulator for a board that stops answering. Option and refusal checks run
against the protocol test double (no QEMU)."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

import edgekit
import edgekit.runtime as rt
from edgekit.bundle import BundleError, compile_bundle
from edgekit.device import protocol as P
from edgekit.device.frames import Frame, FrameDecoder
from edgekit.device.qemu import QemuBoard, free_port
from edgekit.errors import BadInputError
from edgekit.hil import prepare_inputs
from edgekit.runtime.engines import EngineUnavailableError
from edgekit.runtime.engines.serial import BoardUnavailableError
from tests.backends.c.graphs import cases
from tests.device import models
from tests.device.fault_proxy import FaultProxy, Faults
from tests.device.reference_device import ReferenceDevice

TARGET = "cortex-m4"


@pytest.fixture(scope="module")
def image():
    """A 32x32x3 int8 CNN (3,072 B in, 2,048 B out: both go in chunks) and 8 inputs."""
    graph, x = models.image(32, True)
    return graph, prepare_inputs(graph, x)[graph.inputs[0]]


@pytest.fixture(scope="module")
def bundles(image, tmp_path_factory):
    d = tmp_path_factory.mktemp("serial")
    handmade = cases()["handmade"]
    return {"m4": compile_bundle(image[0], TARGET, d / "image_m4.ekb").bundle.path,
            "m7": compile_bundle(handmade, "cortex-m7", d / "handmade_m7.ekb").bundle.path,
            "m4_small": compile_bundle(handmade, TARGET, d / "handmade_m4.ekb").bundle.path}


def _reference(graph, xs) -> np.ndarray:
    return np.concatenate([edgekit.run(graph, {graph.inputs[0]: xs[i:i + 1]})[graph.outputs[0]]
                           for i in range(len(xs))])


def _run_all(model, xs) -> np.ndarray:
    name, out = model.inputs[0].name, model.outputs[0].name
    return np.concatenate([model.run({name: np.ascontiguousarray(xs[i:i + 1])})[out] for i in range(len(xs))])


class FrameCounter:
    """Counts the request types the host sends through a proxy (an on_frame hook)."""

    def __init__(self):
        self.decoder = FrameDecoder()
        self.seen: dict[int, int] = {}

    def __call__(self, index: int, frame: bytes) -> None:
        for f in self.decoder.feed(frame):
            if isinstance(f, Frame):
                self.seen[f.type] = self.seen.get(f.type, 0) + 1

    def uploads(self) -> int:
        return sum(self.seen.get(t, 0) for t in (P.UPLOAD_BEGIN, P.UPLOAD_CHUNK, P.UPLOAD_COMMIT))


@pytest.fixture(scope="module")
def board():
    with QemuBoard(TARGET, models.slot_elf(TARGET)) as b:
        yield b


@pytest.fixture
def line(board):
    counter = FrameCounter()
    with FaultProxy(board.connect, to_device=Faults(on_frame=counter)) as proxy:
        yield proxy, counter


def _qemu_children() -> list[int]:
    """The pids of qemu-system-* processes this test process started."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if comm.startswith("qemu-system") and int(rest[1]) == os.getpid() and rest[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


# --------------------------------------------------------------------------- on a QEMU board


def test_mcu_bundle_runs_bit_exact_and_reopening_flashes_nothing(image, bundles, line):
    graph, xs = image
    proxy, counter = line
    with rt.open(bundles["m4"], engine="serial", engine_options={"port": proxy.url}) as m:
        assert counter.uploads() > 0 and counter.seen[P.UPLOAD_COMMIT] >= 1
        assert "mps2-an386" in m.describe() and TARGET in m.describe()
        assert m.engine == "serial" and m.healthy()
        with pytest.raises(BadInputError, match="is in use by the open model of bundle"):
            rt.open(bundles["m4"], engine="serial", engine_options={"port": proxy.url})  # one client per line
        got = _run_all(m, xs)
        st = m.self_test()
        assert st.passed and st.count == 4, st.failures
    # every output byte as the reference interpreter computes it; the tensors went in chunks
    assert np.array_equal(got, _reference(graph, xs))
    assert counter.seen.get(P.INFER_CHUNK, 0) >= 3 * len(xs) and counter.seen.get(P.OUTPUT_READ, 0) > 0
    counter.seen.clear()
    with rt.open(bundles["m4"], engine="serial", engine_options={"port": proxy.url}) as m:
        assert counter.uploads() == 0  # the board's active slot holds exactly this package
        assert np.array_equal(_run_all(m, xs[:2]), _reference(graph, xs[:2]))
        assert m.healthy()


def test_board_built_for_another_target_is_refused_before_any_upload(bundles, line):
    proxy, counter = line
    with pytest.raises(BadInputError) as err:
        rt.open(bundles["m7"], engine="serial", engine_options={"port": proxy.url})
    assert "'cortex-m4'" in str(err.value) and "'cortex-m7'" in str(err.value) and proxy.url in str(err.value)
    assert counter.uploads() == 0


def test_a_lost_line_frees_the_port_for_a_new_open(image, bundles, line):
    """A daemon reopens a model whose board went away before closing the old one: the
    engine that lost its line must not keep the port."""
    graph, xs = image
    proxy, _ = line
    opts = {"port": proxy.url, "timeout_s": 0.5}
    old = rt.open(bundles["m4"], engine="serial", engine_options=opts)
    try:
        proxy.disconnect()  # the cable is pulled
        assert not old.healthy()
        with rt.open(bundles["m4"], engine="serial", engine_options=opts) as new:  # plugged in again
            assert np.array_equal(_run_all(new, xs[:1]), _reference(graph, xs[:1]))
            with pytest.raises(BoardUnavailableError, match="open the model again"):
                old.run({old.inputs[0].name: np.ascontiguousarray(xs[:1])})
    finally:
        old.close()


def test_killed_board_makes_the_model_unavailable_and_a_fresh_open_works(image, bundles):
    graph, xs = image
    port = f"qemu:{TARGET}"
    before = set(_qemu_children())
    m = rt.open(bundles["m4"], engine="serial", engine_options={"port": port, "timeout_s": 0.5})
    try:
        started = set(_qemu_children()) - before
        assert len(started) == 1  # the engine started its own emulated board
        assert np.array_equal(_run_all(m, xs[:1]), _reference(graph, xs[:1]))
        os.kill(started.pop(), signal.SIGKILL)  # the power is cut
        t0 = time.monotonic()
        with pytest.raises(BoardUnavailableError) as err:
            m.run({m.inputs[0].name: np.ascontiguousarray(xs[1:2])})
        assert isinstance(err.value, EngineUnavailableError) and port in str(err.value)
        assert time.monotonic() - t0 < 10
        assert not m.healthy()
        with pytest.raises(BoardUnavailableError, match=f"{port} stopped answering.*open the model again"):
            m.run({m.inputs[0].name: np.ascontiguousarray(xs[1:2])})
    finally:
        m.close()
    assert set(_qemu_children()) == before
    # (this time with the firmware ELF given, as from edgekit build-firmware)
    with rt.open(bundles["m4"], engine="serial", engine_options={"port": port,
                                                                "firmware": str(models.slot_elf(TARGET))}) as m:
        assert m.healthy()
        assert np.array_equal(_run_all(m, xs[2:4]), _reference(graph, xs[2:4]))
    assert set(_qemu_children()) == before  # close stopped the board it started
    assert not m.healthy()  # a closed model


# --------------------------------------------------------------------------- no QEMU


def test_target_mismatch_on_the_protocol_double(bundles):
    with ReferenceDevice(target="cortex-m7", board="ref-m7") as dev:
        with pytest.raises(BadInputError, match=r"ref-m7.*'cortex-m7'.*'cortex-m4'"):
            rt.open(bundles["m4_small"], engine="serial", engine_options={"port": dev.url})
        assert dev.executed.get("HELLO") and not dev.executed.get("UPLOAD_BEGIN")


def test_a_port_nobody_answers_on_is_board_unavailable(bundles):
    url = f"socket://127.0.0.1:{free_port()}"
    with pytest.raises(BoardUnavailableError, match=url.replace(".", r"\.")):
        rt.open(bundles["m4_small"], engine="serial", engine_options={"port": url, "timeout_s": 0.2})


@pytest.mark.parametrize("options,problem", [
    ({}, "option 'port' is required"),
    ({"port": ""}, "option 'port' is required"),
    ({"port": "loop://", "speed": 3}, "unknown engine option(s) speed"),
    ({"port": "loop://", "timeout_s": 0}, "timeout_s must be a positive number"),
    ({"port": "loop://", "timeout_s": True}, "timeout_s must be a positive number"),
    ({"port": "loop://", "baudrate": -1}, "baudrate must be a positive integer"),
    ({"port": "loop://", "firmware": "fw.elf"}, "is not qemu:TARGET"),
    ({"port": "qemu:no-such-board"}, "no-such-board"),
    ({"port": "qemu:x86_64"}, "has no emulated board"),
    ({"port": "qemu:cortex-m4", "firmware": "/nonexistent/fw.elf"}, "is not a file"),
])
def test_bad_options_are_refused_before_connecting(bundles, options, problem):
    with pytest.raises(BadInputError) as err:
        rt.open(bundles["m4_small"], engine="serial", engine_options=options)
    assert problem in str(err.value)


def test_only_mcu_bundles_go_to_a_board_and_mcu_bundles_only_there(bundles, tmp_path):
    linux = compile_bundle(cases()["handmade"], "x86_64", tmp_path / "h.ekb", backend="onnxruntime").bundle.path
    with pytest.raises(BundleError, match="the serial engine runs bundles compiled for a microcontroller"):
        rt.open(linux, engine="serial", engine_options={"port": "loop://"})
    with pytest.raises(BundleError, match=r"runs on the board's firmware \(edgekit flash\), not here"):
        rt.open(bundles["m4_small"])
    with pytest.raises(BundleError, match="is for engine 'micro', not 'litert'"):
        rt.open(bundles["m4_small"], engine="litert")
