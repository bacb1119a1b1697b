"""The host's chunked tensor transfer (docs/serial-protocol.md, INFER_BEGIN .. OUTPUT_READ)
against the protocol test double: inputs and outputs larger than a frame, the same
CRC, retransmission and resume rules as uploads, and the refusals a model whose
tensors the device cannot carry gets before anything is uploaded.

The double's INFER answers ``expected_output(package, input)``, computed independently
of the transfer, so a byte lost, repeated or misplaced on the way changes the answer.
"""

from __future__ import annotations

import pytest

from edgekit.device import protocol as P
from edgekit.device.client import DeviceClient
from edgekit.device.errors import DeviceRejectedError, DoesNotFitError
from edgekit.device.frames import Frame, FrameDecoder
from tests.device.fault_proxy import Faults
from tests.device.reference_device import expected_output, make_package

BIG_IN = bytes((i * 37 + 11) & 0xFF for i in range(3072))  # a 32x32x3 image
IMAGE_PKG = make_package(input_size=3072, output_size=10, seed=1)
FEATURES_PKG = make_package(input_size=3072, output_size=2048, seed=2)  # an output of 2 frames+


def _client(url, **kw) -> DeviceClient:
    kw.setdefault("timeout", 0.3)
    kw.setdefault("seed", 11)
    return DeviceClient(url, **kw)


def test_large_input_goes_in_chunks_and_a_small_output_comes_back_in_the_run_answer(device):
    with _client(device.url) as dev:
        assert dev.hello.chunked_tensors and dev.hello.tensor_bytes == 64 * 1024
        dev.upload(IMAGE_PKG, "image")
        for k in range(3):
            x = BIG_IN[k:] + BIG_IN[:k]
            out, ticks = dev.infer(x)
            assert out == expected_output(IMAGE_PKG, x) and ticks == 1000 + 3 * len(x)
    ex = device.executed
    assert ex["INFER_BEGIN"] == 3 and ex["INFER_RUN"] == 3 and "OUTPUT_READ" not in ex
    assert ex["INFER_CHUNK"] == 3 * -(-3072 // 1020) and "INFER" not in ex
    assert device.counters["inferences"] == 3


def test_large_output_is_read_in_pieces(device):
    with _client(device.url) as dev:
        dev.upload(FEATURES_PKG, "features")
        out, _ = dev.infer(BIG_IN, output_bytes=2048)
        assert out == expected_output(FEATURES_PKG, BIG_IN)
    assert device.executed["OUTPUT_READ"] == -(-2048 // 1020)


def test_small_input_with_a_large_output_falls_back_to_the_chunked_path(device):
    pkg = make_package(input_size=16, output_size=1500, seed=3)
    x = bytes(range(16))
    with _client(device.url) as dev:
        dev.upload(pkg, "wide")
        assert dev.infer(x)[0] == expected_output(pkg, x)  # output size not given: INFER, then chunks
        assert dev.infer(x, output_bytes=1500)[0] == expected_output(pkg, x)
    assert device.executed["INFER"] == 1 and device.executed["INFER_RUN"] == 2


def test_small_tensors_still_take_one_frame(device):
    pkg = make_package()
    x = bytes(range(16))
    with _client(device.url) as dev:
        dev.upload(pkg, "small")
        assert dev.infer(x)[0] == expected_output(pkg, x)
    assert device.executed["INFER"] == 1 and "INFER_BEGIN" not in device.executed


def test_old_firmware_gets_a_clear_refusal(make_device):
    dev_ = make_device(chunked=False, firmware="0.1.0")
    with _client(dev_.url) as dev:
        assert dev.hello.capabilities is None and not dev.hello.chunked_tensors
        dev.upload(make_package(), "small")
        with pytest.raises(DoesNotFitError, match=r"INFER: the model's tensors \(input 3,072 B\) are larger "
                                                  r"than a frame carries .*firmware 0\.1\.0 .*update it"):
            dev.infer(BIG_IN)
    assert "INFER" not in dev_.executed


def test_edgekit_package_too_large_for_the_device_is_refused_before_uploading(make_device):
    from edgekit.bundle.micro_package_reader import read_package_header
    from edgekit.bundle.micro_package_writer import pack_model
    from tests.device import models

    g, _ = models.image(32, features_out=True)
    pkg = pack_model(g, "cortex-m4")
    h = read_package_header(pkg)
    assert (h.input_bytes, h.output_bytes) == (3072, 2048)
    small = make_device(tensor_bytes=4096)
    with _client(small.url) as dev:
        with pytest.raises(DoesNotFitError, match=r"upload of 'image32': the model's tensors \(input 3,072 B, "
                                                  r"output 2,048 B\) need 5,120 B of the device's tensor buffer; "
                                                  r"board ref-double \(cortex-m4\) has 4,096 B"):
            dev.upload(pkg, "image32")
    old = make_device(chunked=False, firmware="0.1.0")
    with _client(old.url) as dev:
        with pytest.raises(DoesNotFitError, match="firmware 0.1.0 .* cannot send tensors in chunks"):
            dev.upload(pkg, "image32")
    assert "UPLOAD_BEGIN" not in small.executed and "UPLOAD_BEGIN" not in old.executed
    # the exit code of a model that does not fit the board: bad input
    from edgekit.errors import BadInputError

    assert issubclass(DoesNotFitError, BadInputError)


def test_device_checks_the_sizes_too(device):
    with _client(device.url) as dev:
        dev.upload(IMAGE_PKG, "image")
        with pytest.raises(DeviceRejectedError, match=r"INFER_BEGIN: the device answered E_TOO_LARGE"):
            dev.infer(BIG_IN + b"!")
        # a package whose tensors exceed the tensor buffer is refused at commit
        with pytest.raises(DeviceRejectedError, match="UPLOAD_COMMIT: .*E_HEADER"):
            dev.upload(make_package(input_size=40_000, output_size=30_000), "huge")
        assert dev.info().active.name == "image"


FAULTS = {
    "bit flips": dict(to_device=Faults(flip=0.2), to_host=Faults(flip=0.1)),
    "dropped bytes": dict(to_device=Faults(drop=0.15), to_host=Faults(drop=0.1)),
    "truncated frames": dict(to_device=Faults(truncate=0.15), to_host=Faults(truncate=0.1)),
    "lost and repeated frames": dict(to_device=Faults(drop_frame=0.1, dup_frame=0.1),
                                     to_host=Faults(drop_frame=0.1, dup_frame=0.1)),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_chunked_inference_survives_link_faults(device, make_proxy, case):
    with _client(device.url) as dev:
        dev.upload(FEATURES_PKG, "features")
    px = make_proxy(device, seed=5, **FAULTS[case])
    with _client(px.url, timeout=0.25, retries=12, infer_timeout=1.0, link_rate=1e6) as dev:
        for k in range(4):
            x = BIG_IN[k:] + BIG_IN[:k]
            assert dev.infer(x, output_bytes=2048)[0] == expected_output(FEATURES_PKG, x)
    assert sum(px.injected.values()) > 0, px.injected
    # each inference ran once on the device, whatever was lost or repeated on the way
    assert device.counters["inferences"] == 4


def _chunk_counter():
    """An on_frame hook counting the INFER_CHUNK frames the host sends, and the count."""
    decoder, seen = FrameDecoder(), {"chunks": 0}

    def hook(index: int, frame: bytes) -> None:
        for f in decoder.feed(frame):
            if isinstance(f, Frame) and f.type == P.INFER_CHUNK:
                seen["chunks"] += 1
                if seen["chunks"] == seen.get("cut_at"):
                    seen["proxy"].disconnect()

    return hook, seen


def test_link_cut_mid_input_resumes_from_what_the_device_holds(device, make_proxy):
    pkg = make_package(input_size=27_648, output_size=2, seed=4)  # a 96x96x3 image: 28 chunks
    x = bytes((i * 13) & 0xFF for i in range(27_648))
    with _client(device.url) as dev:
        dev.upload(pkg, "person")
    hook, seen = _chunk_counter()
    px = make_proxy(device, to_device=Faults(on_frame=hook))
    seen["proxy"], seen["cut_at"] = px, 16
    events: list[str] = []
    with _client(px.url, on_event=events.append) as dev:
        assert dev.infer(x)[0] == expected_output(pkg, x)
        assert dev.stats.reconnects == 1
    assert any("link lost during an inference" in e for e in events)
    # the second INFER_BEGIN resumed: far fewer than 16 + 28 chunks went out
    assert 28 <= seen["chunks"] <= 28 + 2 * 4
    assert device.executed["INFER_BEGIN"] == 2 and device.counters["inferences"] == 1


def test_device_reboot_mid_input_starts_the_input_over(make_device):
    dev_ = make_device()
    pkg = make_package(input_size=8000, output_size=4, seed=6)
    x = bytes((i * 7) & 0xFF for i in range(8000))
    with _client(dev_.url) as dev:
        dev.upload(pkg, "m")
        calls = {"n": 0}
        chunk = dev_._infer_chunk

        def chunk_then_reboot(p):
            calls["n"] += 1
            out = chunk(p)
            if calls["n"] == 4:
                dev_.reboot()  # RAM gone: the partial input with it; the model stays in its slot
            return out

        dev_._infer_chunk = chunk_then_reboot
        assert dev.infer(x)[0] == expected_output(pkg, x)
        assert dev.stats.device_restarts >= 1


def test_cli_device_info_and_infer_with_an_image_sized_input(device, tmp_path):
    import json

    import numpy as np
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli

    _register()

    def invoke(*args):
        return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": "200"})

    with _client(device.url) as dev:
        dev.upload(IMAGE_PKG, "image")
    r = invoke("device", "info", "--port", device.url)
    assert r.exit_code == 0 and "tensor buffer" in r.output and "in chunks" in r.output, r.output
    doc = json.loads(invoke("device", "info", "--port", device.url, "--json").output)
    assert doc["hello"]["tensor_bytes"] == 64 * 1024 and doc["hello"]["capabilities"] == P.CAP_CHUNKED_TENSORS
    x = np.frombuffer(BIG_IN, np.int8).reshape(1, 32, 32, 3)
    np.save(tmp_path / "x.npy", x)
    r = invoke("device", "infer", "--port", device.url, "--input", tmp_path / "x.npy", "--out", tmp_path / "y.npy")
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "y.npy").tobytes() == expected_output(IMAGE_PKG, BIG_IN)
    assert device.executed["INFER_BEGIN"] == 1


def _wide_model(path, n_in: int, n_out: int) -> None:
    """An int8 IR file of a model with a small input and an output larger than a frame."""
    import numpy as np

    from edgekit.ir import DType, Graph, OpType, save, verify
    from edgekit.quantize import quantize

    rng = np.random.default_rng(5)
    g = Graph("wide")
    g.add_tensor("x", (1, n_in), DType.FLOAT32)
    g.add_tensor("y", (1, n_out), DType.FLOAT32)
    g.add_const("w", rng.normal(size=(n_out, n_in)).astype(np.float32))
    g.add_const("b", rng.normal(size=n_out).astype(np.float32))
    g.add_op(OpType.FULLY_CONNECTED, ["x", "w", "b"], ["y"], name="fc")
    g.inputs, g.outputs = ["x"], ["y"]
    verify(g)
    save(quantize(g, rng.uniform(-1, 1, size=(16, n_in)).astype(np.float32)).graph, path)


def test_cli_device_infer_with_model_sends_the_output_size(device, tmp_path):
    """With --model the CLI knows the output is larger than a frame: no INFER round trip
    answered "too large" before the chunked path (without --model there is one)."""
    import numpy as np
    from click.testing import CliRunner

    from edgekit.cli.main import _register, cli

    _register()
    pkg = make_package(input_size=16, output_size=1500, seed=4)
    _wide_model(tmp_path / "wide.json", 16, 1500)
    x = np.arange(-8, 8, dtype=np.int8).reshape(1, 16)
    np.save(tmp_path / "x.npy", x)
    with _client(device.url) as dev:
        dev.upload(pkg, "wide")
    args = ["device", "infer", "--port", device.url, "--input", tmp_path / "x.npy", "--out", tmp_path / "y.npy"]
    r = CliRunner().invoke(cli, [str(a) for a in args + ["--model", tmp_path / "wide.json"]],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "y.npy").tobytes() == expected_output(pkg, x.tobytes())
    assert "INFER" not in device.executed and device.executed["INFER_RUN"] == 1
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert device.executed["INFER"] == 1 and device.executed["INFER_RUN"] == 2
