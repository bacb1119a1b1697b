"""Image-sized tensors through the model-slot firmware under QEMU: a CIFAR-10-sized
(32x32x3, 3,072 B) and a person-detection-sized (96x96x3, 27,648 B) int8 CNN, built and
quantized here with edgekit's own IR and quantizer, run bit-exact with the reference
interpreter on the emulated Cortex-M4 (chunked input, and an output read in pieces),
through a faulty link, across a link cut in the middle of an input, with `edgekit hil`'s
rig, and on the Cortex-M55 board (mps3-an547, whose memory map comes from its target).
"""

from __future__ import annotations

import pytest

from edgekit.bundle.micro_package_writer import pack_model
from edgekit.device import protocol as P
from edgekit.device.client import DeviceClient
from edgekit.device.frames import Frame, FrameDecoder
from edgekit.device.qemu import QemuBoard
from edgekit.hil import prepare_inputs, reference_outputs, run_hil
from tests.device import models
from tests.device.fault_proxy import FaultProxy, Faults

TARGET = "cortex-m4"


@pytest.fixture(scope="module")
def board():
    elf = models.slot_elf(TARGET)
    with QemuBoard(TARGET, elf) as b:
        yield b


def _client(port, **kw) -> DeviceClient:
    kw.setdefault("timeout", 0.5)
    kw.setdefault("seed", 9)
    return DeviceClient(port, **kw)


def _check(dev: DeviceClient, graph, x, n: int) -> None:
    feeds = prepare_inputs(graph, x[:n])
    want = reference_outputs(graph, feeds)[graph.outputs[0]]
    for i in range(n):
        out, ticks = dev.infer(feeds[graph.inputs[0]][i].tobytes(), output_bytes=want[i].nbytes)
        assert out == want[i].tobytes(), f"vector {i}: {sum(a != b for a, b in zip(out, want[i].tobytes()))} " \
                                         f"of {want[i].nbytes} bytes differ"
        assert ticks > 0


@pytest.mark.parametrize("side,features", [(32, True), (96, False)], ids=["32x32x3", "96x96x3"])
def test_image_models_run_bit_exact(board, side, features):
    g, x = models.image(side, features)
    in_bytes, out_bytes = g.tensor(g.inputs[0]).nbytes, g.tensor(g.outputs[0]).nbytes
    assert in_bytes == side * side * 3 and in_bytes > 1024  # larger than a frame
    with _client(board) as dev:
        h = dev.hello
        assert h.chunked_tensors and h.tensor_bytes >= P.tensor_footprint(in_bytes, out_bytes)
        dev.upload(pack_model(g, TARGET, name=g.name), g.name)
        before = dev.device_stats().inferences
        _check(dev, g, x, 3)
        assert dev.device_stats().inferences - before == 3
        assert dev.info().active.name == g.name


def test_chunked_inference_through_a_faulty_link(board):
    g, x = models.image(32, features_out=True)  # 3,072 B in, 2,048 B out: both in pieces
    with _client(board) as dev:
        dev.upload(pack_model(g, TARGET, name="faulty"), "faulty")
        before = dev.device_stats()
        dev.close()
    faults = dict(to_device=Faults(flip=0.08, drop_frame=0.08, dup_frame=0.08),
                  to_host=Faults(flip=0.05, drop_frame=0.08))
    with FaultProxy(board.connect, seed=4, **faults) as px:
        with _client(px.url, timeout=0.4, retries=12, infer_timeout=2.0) as dev:
            _check(dev, g, x, 4)
        assert sum(px.injected.values()) > 0
    with _client(board) as dev:
        after = dev.device_stats()
    # every inference ran once, whatever was lost or repeated; damaged frames were refused
    assert after.inferences - before.inferences == 4
    assert after.frames_bad > before.frames_bad


def test_link_cut_mid_input_resumes(board):
    g, x = models.image(96)  # 27,648 B: 28 chunks of 1,020 B
    with _client(board) as dev:
        dev.upload(pack_model(g, TARGET, name="person"), "person")
        dev.close()
    decoder, seen = FrameDecoder(), {"chunks": 0}

    def cut(index: int, frame: bytes) -> None:
        for f in decoder.feed(frame):
            if isinstance(f, Frame) and f.type == P.INFER_CHUNK:
                seen["chunks"] += 1
                if seen["chunks"] == 16:
                    px.disconnect()

    with FaultProxy(board.connect, to_device=Faults(on_frame=cut)) as px:
        with _client(px.url) as dev:
            _check(dev, g, x, 1)
            assert dev.stats.reconnects == 1
    # INFER_BEGIN after the reconnect resumed where the device was: no second full input
    assert 28 <= seen["chunks"] <= 28 + 2 * 4


def test_hil_rig_runs_a_cifar_sized_model(board):
    g, x = models.image(32)
    r = run_hil(g, board, x[:4])
    assert r.passed, (r.error, [m.describe() for m in r.mismatches])
    assert r.vectors == 4 and len(r.ticks) == 4


def test_cortex_m55_board_runs_an_image_model():
    """mps3-an547 (512 KiB DTCM): the firmware's RAM region comes from the target file, so
    the stack sits inside DTCM and the board answers instead of locking up."""
    g, x = models.image(32)
    r = run_hil(g, "qemu:cortex-m55", x[:2], firmware_dir=None)
    assert r.passed, (r.error, [m.describe() for m in r.mismatches])
    assert r.board == "mps3-an547" and r.tick_hz == 32_000_000


def test_cli_hil_with_a_cifar_sized_model(tmp_path):
    """The failure the issue reports: `edgekit hil` on qemu:cortex-m4 with a 32x32x3 int8
    model ended in "input or output larger than a frame carries"."""
    import json

    import numpy as np
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli
    from edgekit.ir import save

    _register()
    models.slot_elf(TARGET)
    g, x = models.image(32)
    save(g, tmp_path / "image32.json")
    x8 = prepare_inputs(g, x[:4])[g.inputs[0]]
    np.savez(tmp_path / "v.npz", x=x8)
    r = CliRunner().invoke(cli, ["hil", str(tmp_path / "image32.json"), "--device", "qemu:cortex-m4",
                                 "--vectors", str(tmp_path / "v.npz"), "--json", str(tmp_path / "h.json")],
                           catch_exceptions=False, env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "PASS: 4 of 4 vectors bit-exact" in r.output
    assert json.loads((tmp_path / "h.json").read_text())["passed"]
