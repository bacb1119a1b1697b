"""Helpers of the firmware tests: cached firmware builds (shared by pytest-xdist
workers), the sanitized host build of the protocol, byte streams of requests, and the
shared MLPerf Tiny models."""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgekit.device import frames as F
from edgekit.device import protocol as P

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FIRMWARE = REPO / "firmware"
MICRO = REPO / "runtimes" / "micro"

QEMU_BOARDS = ["mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"]
ALL_BOARDS = QEMU_BOARDS + ["nucleo-l4r5zi"]
TICK_HZ = {"mps2-an385": 25_000_000, "mps2-an386": 25_000_000, "mps2-an500": 25_000_000,
           "mps2-an505": 20_000_000, "mps3-an547": 32_000_000}

APT_HINT = {
    "gcc": "sudo apt-get install -y gcc",
    "arm-none-eabi-gcc": "sudo apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi",
    "arm-none-eabi-nm": "sudo apt-get install -y binutils-arm-none-eabi",
    "qemu-system-arm": "sudo apt-get install -y qemu-system-arm",
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: {APT_HINT[name]}")
    return path


def _sources_digest(*extra: Path) -> str:
    h = hashlib.sha256()
    roots = [FIRMWARE / "app", FIRMWARE / "boards", MICRO / "src", MICRO / "include",
             MICRO / "kernels.json", REPO / "targets", REPO / "edgekit" / "firmware" / "build.py",
             *extra]
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            h.update(str(f.relative_to(REPO)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def cache_root(tmp_path_factory) -> Path:
    """A folder every xdist worker of this run sees."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "edgekit-fw-cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _cached(root: Path, key: str, build) -> Path:
    """``root/key``, made by ``build(folder)`` once per run, whichever worker asks first
    (the others wait on a lock file, then reuse it)."""
    import fcntl

    final = root / key
    if final.is_dir():
        return final
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not final.is_dir():
                tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
                try:
                    build(tmp)
                    os.rename(tmp, final)
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return final


def firmware_elf(tmp_path_factory, board: str) -> Path:
    """The model-slot firmware of ``board``, built once per run."""
    from edgekit.firmware import load_board
    from edgekit.firmware.build import build_firmware

    require_tool("arm-none-eabi-gcc")
    folder = _cached(cache_root(tmp_path_factory), f"{board}-{_sources_digest()}",
                     lambda d: build_firmware(load_board(board).target, d, board=board))
    return folder / f"{board}.elf"


HOST_SOURCES = ["ek_crc32.c", "ek_cobs.c", "ek_proto.c", "ek_tensor.c", "ek_slots.c", "ek_package.c",
                "ek_sha256.c", "ek_model_slots.c"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


def host_firmware(tmp_path_factory) -> Path:
    """firmware/app (protocol, slots, executor) with the portable kernels and
    tests/firmware/host_port.c, built with the host gcc and ASan + UBSan."""
    import json

    gcc = require_tool("gcc")
    manifest = json.loads((MICRO / "kernels.json").read_text())
    kernels = [MICRO / s for k in manifest["kernels"].values()
               for s in k["variants"]["portable"]["sources"]]

    def build(d: Path) -> None:
        cmd = [gcc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O1", "-g", *SANITIZE,
               f"-I{HERE / 'host'}", f"-I{FIRMWARE / 'app'}", *[f"-I{MICRO / i}" for i in
                                                              manifest["include_dirs"]],
               *[FIRMWARE / "app" / s for s in HOST_SOURCES], HERE / "host_port.c", *kernels,
               "-o", d / "host_fw"]
        res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr

    key = "host-" + _sources_digest(HERE / "host_port.c", HERE / "host")
    return _cached(cache_root(tmp_path_factory), key, build) / "host_fw"


# ----------------------------------------------------------------------------- host runs

SAN_ENV = {"ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


class HostRun:
    """What the host firmware sent back for one input stream."""

    def __init__(self, stdout: bytes, stderr: str, returncode: int):
        self.raw = stdout
        self.stderr = stderr
        self.returncode = returncode
        self.events = F.FrameDecoder().feed(stdout)
        self.frames = [e for e in self.events if isinstance(e, F.Frame)]

    def by_seq(self, seq: int) -> list[F.Frame]:
        return [f for f in self.frames if f.seq == seq]

    def response(self, seq: int) -> F.Frame:
        found = [f for f in self.frames if f.seq == seq and f.type != P.NAK]
        assert found, f"no response to seq {seq}"
        return found[-1]

    def payload(self, seq: int, type_: int) -> bytes:
        f = self.response(seq)
        if f.type == P.ERROR:
            raise AssertionError(f"seq {seq}: ERROR {P.parse_error(f.payload)}")
        assert f.type == type_ | P.RESPONSE, f
        return f.payload

    def error(self, seq: int) -> tuple[int, int, str]:
        f = self.response(seq)
        assert f.type == P.ERROR, f"seq {seq}: expected ERROR, got {f}"
        return P.parse_error(f.payload)

    @property
    def naks(self) -> int:
        return sum(1 for f in self.frames if f.type == P.NAK)

    @property
    def banners(self) -> int:
        return self.raw.count(b"edgekit-fw ")


def run_host(exe: Path, stream: bytes, timeout: float = 120) -> HostRun:
    env = dict(os.environ, **SAN_ENV)
    res = subprocess.run([str(exe)], input=bytes(stream), capture_output=True, timeout=timeout,
                         env=env)
    run = HostRun(res.stdout, res.stderr.decode(errors="replace"), res.returncode)
    assert res.returncode == 0 and "runtime error" not in run.stderr and \
        "AddressSanitizer" not in run.stderr, \
        f"host firmware failed ({res.returncode}):\n{run.stderr[-4000:]}"
    return run


class Stream:
    """Builds the bytes a host sends: requests with increasing sequence numbers."""

    def __init__(self, seq: int = 1):
        self.data = bytearray()
        self.seq = seq

    def add(self, type_: int, payload: bytes = b"") -> int:
        seq = self.seq
        self.data += F.encode(type_, seq, payload)
        self.seq = (self.seq + 1) & 0xFFFF
        return seq

    def raw(self, data: bytes) -> None:
        self.data += data

    def upload(self, package: bytes, name: str = "model", chunk: int = 1000, crc: int | None = None,
               commit: bool = True) -> dict:
        seqs = {"begin": self.add(P.UPLOAD_BEGIN, P.pack_begin(
            len(package), zlib.crc32(package) if crc is None else crc, name))}
        seqs["chunks"] = [self.add(P.UPLOAD_CHUNK, P.pack_chunk(off, package[off:off + chunk]))
                          for off in range(0, len(package), chunk)]
        if commit:
            seqs["commit"] = self.add(P.UPLOAD_COMMIT)
        return seqs

    def __bytes__(self) -> bytes:
        return bytes(self.data)


# ----------------------------------------------------------------------------- models


@functools.lru_cache(maxsize=None)
def kws_graph():
    from edgekit.frontends.tflite import load_tflite
    from tests.support.shared import shared_file

    return load_tflite(shared_file("models/mlperf-tiny/kws_ref_model_int8.tflite"))


@functools.lru_cache(maxsize=None)
def ad_graph():
    from edgekit.frontends.tflite import load_tflite
    from tests.support.shared import shared_file

    return load_tflite(shared_file("models/mlperf-tiny/ad01_int8.tflite"))


def kws_inputs(n: int) -> np.ndarray:
    from tests.support.shared import shared_file

    with np.load(shared_file("data/kws01/kws01_test1000.npz")) as z:
        return z["x_int8"][:n]


def ad_inputs(n: int) -> np.ndarray:
    """AD windows quantized with the model's input scale and zero point."""
    from edgekit.reference.int8_kernels import quantize
    from tests.support.shared import shared_file

    g = ad_graph()
    x = np.load(shared_file("data/ad01/normal_id_01_00000000_windows_f32_196x640.npy"))[:n]
    return quantize(x.reshape(n, 1, 640).astype(np.float32), g.input_tensors()[0].quant)


def reference_output(graph, x: np.ndarray) -> bytes:
    from edgekit.reference.interpreter import Interpreter

    t = graph.input_tensors()[0]
    x = np.asarray(x).reshape(t.shape)
    return Interpreter(graph).run({t.name: x})[graph.outputs[0]].tobytes()


# A package of model format 1.0 (header 128 bytes, 8 bytes of the body's SHA-256), as
# edgekit's packer wrote it before format 2: tests/backends/c/graphs.py's "handmade" graph
# for cortex-m4, named "format1". Readers and firmware of format 2 must refuse it.
FORMAT1_PACKAGE = HERE / "data" / "handmade_format1.ekpkg"


def restamp(package: bytes | bytearray) -> bytes:
    """``package`` with its model_hash (the body's SHA-256) and header CRC brought up to
    date after an edit, written from docs/model-package.md's format 2.0 layout."""
    d = bytearray(package)
    d[56:88] = hashlib.sha256(bytes(d[160:])).digest()
    return restamp_crc(d)


def restamp_crc(package: bytes | bytearray) -> bytes:
    """``package`` with only its header CRC (bytes 128..131 of format 2.0) brought up to
    date: an edited model_hash then reaches the firmware's SHA-256 check."""
    d = bytearray(package)
    d[128:132] = bytes(4)
    d[128:132] = zlib.crc32(bytes(d[:160])).to_bytes(4, "little")
    return bytes(d)
