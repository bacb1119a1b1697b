"""Reading model packages (format: docs/model-package.md): the format's constants, the
header and input/output table (``read_package_header``) and the integrity check of the
body against the header's SHA-256 (``verify_package``).

This is all the device side and ``edgekit flash`` need to handle a package file, and it
uses the standard library only: a gateway that forwards packages never loads the
compiler. Writing a package (``pack_model``, which lowers a graph through the C backend)
is ``edgekit.bundle.micro_package_writer``.

    header = verify_package(open("kws.ekpkg", "rb").read())
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass, field

from edgekit.errors import ModelFormatError

MAGIC = b"EKMP"
FORMAT_MAJOR = 2          # 2: the full SHA-256 of the body (1.x held its first 8 bytes)
FORMAT_MINOR = 1          # 1: op kinds 22-43 (issue 13 operators)
HEADER_BYTES = 160
HASH_OFFSET = 56
HASH_BYTES = 32           # the whole SHA-256 digest
MODEL_ID_BYTES = 8        # the short id the serial protocol reports: the digest's first 8 bytes
IO_ENTRY_BYTES = 40
OP_ENTRY_BYTES = 16
ALIGN = 16                # every block of the data region starts at a multiple of this
MAX_IO = 8
MAX_OPS = 1024
MAX_CONCAT = 16
MAX_SPLIT = 32
REF_CONST = 0x8000_0000   # a reference into the package (else into the arena)
REF_NONE = 0xFFFF_FFFF
NAME_BYTES = 24
TARGET_BYTES = 16

# Element types of inputs and outputs (the IR's dtype names).
DTYPE_NAMES = {1: "int8", 2: "float32", 3: "int32"}

# Op kinds of the package (docs/model-package.md, "Op kinds").
OP_KINDS = {
    "ek_conv2d_s8": 1, "ek_depthwise_conv2d_s8": 2, "ek_fully_connected_s8": 3,
    "ek_avg_pool2d_s8": 4, "ek_max_pool2d_s8": 5, "ek_add_s8": 6, "ek_sub_s8": 7, "ek_mul_s8": 8,
    "ek_pad_s8": 9, "ek_concatenation_s8": 10, "ek_transpose_s8": 11, "ek_mean_s8": 12,
    "ek_softmax_s8": 13, "ek_logistic_s8": 14, "ek_tanh_s8": 15, "ek_relu_s8": 16,
    "ek_relu6_s8": 17, "ek_requantize_s8": 18, "ek_quantize_f32_s8": 19,
    "ek_dequantize_s8_f32": 20, "copy": 21,
    "ek_slice_s8": 22, "ek_split_s8": 23, "ek_gather_s8": 24, "ek_depth_to_space_s8": 25,
    "ek_space_to_depth_s8": 26, "ek_cast_s8_f32": 27, "ek_cast_f32_s8": 28,
    "ek_resize_nearest_s8": 29, "ek_resize_bilinear_s8": 30, "ek_transpose_conv_s8": 31,
    "ek_lut_s8": 32, "ek_maximum_s8": 33, "ek_minimum_s8": 34, "ek_prelu_s8": 35,
    "ek_squared_difference_s8": 36, "ek_div_s8": 37,
    "ek_lstm_s8": 38, "ek_svdf_s8": 39,
    "ek_reduce_max_s8": 40, "ek_arg_min_max_s8": 41, "ek_l2_normalization_s8": 42, "ek_batch_matmul_s8": 43,
}
KIND_NAMES = {v: k for k, v in OP_KINDS.items()}

HEADER_LAYOUT = struct.Struct("<4sHHII16s24s32sIIIBBHIIIIIII28s")
# Bytes 0..7 (magic, format_major, format_minor) are where they are in every format, so
# a reader can name the version of a package it does not read.
_PREFIX = struct.Struct("<4sHH")
# The header CRC sits before the reserved tail, not at the end of the header: a CRC-32
# stored right after the bytes it covers makes the CRC of the whole package blind
# to the header (CRC(M || CRC(M)) is a constant).
HEADER_CRC_OFFSET = 128
assert HEADER_LAYOUT.size == HEADER_BYTES


@dataclass(frozen=True)
class TensorInfo:
    """An input or output of a packaged model."""

    offset: int          # in the arena
    nbytes: int
    scale: float
    zero_point: int
    dtype: str           # "int8", "float32", "int32"
    shape: tuple[int, ...]


@dataclass(frozen=True)
class PackageHeader:
    format_major: int
    format_minor: int
    header_size: int
    total_size: int
    target: str
    name: str
    model_hash: bytes    # the SHA-256 of the package body (32 bytes)
    arena_size: int
    alignment: int
    flags: int
    num_ops: int
    macs: int
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    op_kinds: tuple[str, ...] = field(default=(), repr=False)

    @property
    def model_id(self) -> str:
        """Hex of the first 8 bytes of ``model_hash``: what the device reports (INFO)."""
        return self.model_hash[:MODEL_ID_BYTES].hex()

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.inputs)

    @property
    def output_bytes(self) -> int:
        return sum(t.nbytes for t in self.outputs)

    def to_dict(self) -> dict:
        return {
            "format": f"{self.format_major}.{self.format_minor}", "total_size": self.total_size,
            "target": self.target, "name": self.name, "model_hash": self.model_hash.hex(),
            "model_id": self.model_id,
            "arena_size": self.arena_size, "num_ops": self.num_ops, "macs": self.macs,
            "inputs": [t.__dict__ for t in self.inputs],
            "outputs": [t.__dict__ for t in self.outputs],
        }


# ----------------------------------------------------------------------------- reading


def header_crc(header: bytes) -> int:
    """CRC-32 of the header (``HEADER_BYTES``) with its CRC field taken as zero."""
    h = bytearray(header[:HEADER_BYTES])
    h[HEADER_CRC_OFFSET:HEADER_CRC_OFFSET + 4] = b"\0\0\0\0"
    return zlib.crc32(bytes(h))


def stamp_header_crc(header: bytes) -> bytes:
    """``header`` with its ``header_crc`` field set."""
    h = bytearray(header)
    h[HEADER_CRC_OFFSET:HEADER_CRC_OFFSET + 4] = struct.pack("<I", header_crc(h))
    return bytes(h)


def read_package_header(data: bytes) -> PackageHeader:
    """The header (and input/output table) of a package; raises ModelFormatError when
    ``data`` is not a well-formed package of a format this edgekit reads."""
    data = bytes(data)
    if len(data) < _PREFIX.size:
        raise ModelFormatError(f"model package too short ({len(data)} bytes; the header alone "
                               f"is {HEADER_BYTES})")
    magic, major, minor = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise ModelFormatError("not an edgekit model package (bad magic)")
    if major != FORMAT_MAJOR:
        why = " (1.x held only 8 bytes of the body's SHA-256)" if major == 1 else ""
        raise ModelFormatError(f"model package format {major}.{minor}; this edgekit reads format "
                               f"{FORMAT_MAJOR}.x{why}. Pack the model again (edgekit package)")
    if len(data) < HEADER_BYTES:
        raise ModelFormatError(f"model package too short ({len(data)} bytes; the header alone "
                               f"is {HEADER_BYTES})")
    fields = HEADER_LAYOUT.unpack_from(data)
    (_, _, _, header_size, total, target, name, model_hash, arena, alignment, flags,
     nin, nout, _, io_table, num_ops, op_table, data_start, data_size, macs, hcrc, _) = fields
    if header_crc(data) != hcrc:
        raise ModelFormatError("model package header CRC mismatch (corrupt)")
    if total != len(data):
        raise ModelFormatError(f"model package says {total} bytes but has {len(data)} (truncated?)")
    if not HEADER_BYTES <= header_size <= total:
        raise ModelFormatError(f"model package header_size {header_size} is out of range "
                               f"({HEADER_BYTES} to the package's {total} bytes)")
    if io_table + (nin + nout) * IO_ENTRY_BYTES > total or op_table + num_ops * OP_ENTRY_BYTES > total \
            or data_start + data_size > total:
        raise ModelFormatError("model package tables run past its end")

    def tensor(i: int) -> TensorInfo:
        off, nbytes, scale, zp, dt, rank, _, *dims = struct.unpack_from("<IIfiBBH4I", data,
                                                                          io_table + i * IO_ENTRY_BYTES)
        return TensorInfo(off, nbytes, float(scale), zp, DTYPE_NAMES.get(dt, "int8"),
                          tuple(dims[:rank]))

    kinds = tuple(KIND_NAMES.get(struct.unpack_from("<H", data, op_table + i * OP_ENTRY_BYTES)[0],
                                 "?") for i in range(num_ops))
    return PackageHeader(
        major, minor, header_size, total, target.split(b"\0", 1)[0].decode("ascii", "replace"),
        name.split(b"\0", 1)[0].decode("utf-8", "replace"), model_hash, arena, alignment, flags,
        num_ops, macs, tuple(tensor(i) for i in range(nin)),
        tuple(tensor(nin + i) for i in range(nout)), kinds)


def body_hash(data: bytes, header_size: int = HEADER_BYTES) -> bytes:
    """The SHA-256 of a package's body (``header_size`` to the end): what the header's
    ``model_hash`` must hold."""
    return hashlib.sha256(bytes(data[header_size:])).digest()


def verify_package(data: bytes) -> PackageHeader:
    """The header of a package whose body matches its ``model_hash``; raises
    ModelFormatError for a package that is malformed, or altered or corrupt after it was
    packed (the firmware refuses such a package at commit too, but the host says why
    before sending it)."""
    header = read_package_header(data)
    actual = body_hash(data, header.header_size)
    if actual != header.model_hash:
        raise ModelFormatError(
            f"model package {header.name!r}: the body does not match the header's model_hash "
            f"({header.model_hash.hex()}; the body hashes to {actual.hex()}): altered or corrupt "
            "since it was packed. Pack it again (edgekit package)")
    return header
