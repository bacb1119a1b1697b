"""What `edgekit flash`, `run_hil` and the client check before and after an upload: an
altered package file and one larger than a slot are refused before any port is opened,
firmware for another target before anything is sent; error details are decoded; the
upload's speed counts only the bytes it moved, and its wire figures match the frames."""

from __future__ import annotations

import struct

import pytest
from click.testing import CliRunner

from edgekit.bundle.micro_package_reader import read_package_header, verify_package
from edgekit.bundle.micro_package_writer import pack_model
from edgekit.cli.main import _register, cli
from edgekit.device import protocol as P
from edgekit.device.client import DeviceClient
from edgekit.device.crc import crc32
from edgekit.device.errors import DeviceRejectedError
from edgekit.device.frames import encode
from edgekit.errors import BadInputError, ModelFormatError
from tests.device import models
from tests.device.reference_device import make_package
from tests.firmware.support import FORMAT1_PACKAGE, restamp

_register()
UNREACHABLE = "socket://127.0.0.1:1"  # opening it fails: a check that passes reaches it


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False,
                              env={"COLUMNS": "200"})


def _digits_package(target: str = "cortex-m4") -> bytes:
    graph, _ = models.digits()
    return pack_model(graph, target, name="digits")


def test_altered_package_is_refused_before_connecting(tmp_path):
    pkg = bytearray(_digits_package())
    h = read_package_header(bytes(pkg))
    pkg[len(pkg) - 40] ^= 0x04  # a byte of the data region; header and its CRC untouched
    assert read_package_header(bytes(pkg)).model_hash == h.model_hash
    (tmp_path / "m.ekpkg").write_bytes(bytes(pkg))
    r = invoke("flash", tmp_path / "m.ekpkg", "--port", UNREACHABLE)
    assert r.exit_code == 2, r.output
    assert "the body does not match the header's model_hash" in r.output
    assert "cannot open port" not in r.output
    with pytest.raises(ModelFormatError, match="altered or corrupt"):
        verify_package(bytes(pkg))
    assert verify_package(_digits_package()).name == "digits"


def test_old_format_package_is_refused_before_connecting(tmp_path):
    (tmp_path / "old.ekpkg").write_bytes(FORMAT1_PACKAGE.read_bytes())
    r = invoke("flash", tmp_path / "old.ekpkg", "--port", UNREACHABLE)
    assert r.exit_code == 2, r.output
    assert "model package format 1.0; this edgekit reads format 2.x" in r.output
    assert "cannot open port" not in r.output


def _padded(pkg: bytes, total: int) -> bytes:
    """``pkg`` grown to ``total`` bytes, its header (total_size, model_hash, CRC) consistent."""
    d = bytearray(pkg) + bytes(total - len(pkg))
    d[12:16] = struct.pack("<I", total)
    return restamp(d)


def test_package_larger_than_a_slot_is_refused_before_connecting(tmp_path):
    # nucleo-l4r5zi's slots are 768 KiB, less the 64-byte slot record
    big = _padded(_digits_package("nucleo-l4r5zi"), 800_000)
    verify_package(big)
    (tmp_path / "big.ekpkg").write_bytes(big)
    r = invoke("flash", tmp_path / "big.ekpkg", "--port", UNREACHABLE)
    assert r.exit_code == 2, r.output
    assert ("the package is 800,000 bytes; a slot of edgekit's firmware for nucleo-l4r5zi "
            "(nucleo-l4r5zi) holds 786,368") in r.output


@pytest.mark.parametrize("code,detail,command,want", [
    (P.E_HEADER, 0xFFFF0007, "UPLOAD_COMMIT", "(check 7, input/output table: out of bounds"),
    (P.E_HEADER, 5 | (3 << 16), "UPLOAD_COMMIT", "target: packed for another target than the firmware's, at op 3)"),
    (P.E_HEADER, 0xFFFF000B, "UPLOAD_COMMIT", "(check 11, model_hash: the SHA-256 of the package body"),
    (P.E_HEADER, 3 | (0x0201 << 16), "UPLOAD_COMMIT",
     "(the package is format 1.x, this firmware runs format 2.x)"),
    (P.E_HEADER, 0xFFFF0003, "UPLOAD_COMMIT", "(check 3, format_major: a package format this firmware does not run)"),
    (P.E_OFFSET, 2040, "UPLOAD_CHUNK at offset 1,020", "(the device expects offset 2,040)"),
    (P.E_OFFSET, 3000, "UPLOAD_COMMIT", "(the device holds 3,000 bytes)"),
    (P.E_TOO_LARGE, 490, "INFER", "(the device's input size is 490 bytes)"),
    (P.E_CRC, 0xDEADBEEF, "UPLOAD_COMMIT", "(the device computed CRC-32 0xdeadbeef)"),
    (P.E_UNKNOWN, 0x55, "0x55", "(message type 0x55)"),
])
def test_device_error_details_are_decoded(code, detail, command, want):
    text = str(DeviceRejectedError(command, code, detail, "msg"))
    assert want in text and str(detail) not in text.replace(f"{detail:,}", "")


def test_resumed_upload_speed_and_wire_figures(device):
    pkg = make_package(body=20_000)
    size, per = len(pkg), 1024 - 4
    with DeviceClient(device.url, timeout=0.3, seed=3) as dev:
        dev.begin(size, crc32(pkg), "m")
        dev._send_chunks(pkg[:6120], 0, None)  # the device holds 6 chunks
        r = dev.upload(pkg, "m")
    assert r.resumed_from == 6120 and r.bytes_transferred == size - 6120
    assert r.bytes_per_second == pytest.approx((size - 6120) / r.seconds)
    # the chunk frames the rest takes, as encoded for the wire, plus INFO, BEGIN, COMMIT
    chunks = sum(len(encode(P.UPLOAD_CHUNK, 0, P.pack_chunk(o, pkg[o:o + per])))
                 for o in range(6120, size, per))
    assert chunks < r.wire_bytes_sent < chunks + 200
    assert 1.0 < r.wire_bytes_per_package_byte < 1.03
    assert r.line_seconds(115200) == pytest.approx(r.wire_bytes_sent * 10 / 115200)
    assert r.to_dict()["seconds_at_115200_baud"] == round(r.wire_bytes_sent * 10 / 115200, 2)


def test_hil_refuses_firmware_for_another_target_before_uploading(device):
    from edgekit.hil import run_hil

    graph, x = models.digits()
    with pytest.raises(BadInputError, match=r"the firmware on socket://.* is built for cortex-m4 \(board "
                                            r"ref-double\); the model is packed for cortex-m7"):
        run_hil(graph, device.url, x[:2], target="cortex-m7")
    assert "UPLOAD_BEGIN" not in device.executed
