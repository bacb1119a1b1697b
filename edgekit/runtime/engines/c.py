"""The ``c`` engine: a model compiled by edgekit's C backend into a Linux shared library
(``libedgekit_model.so``, ABI in runtimes/linux/edgekit_model_abi.h), loaded with ctypes.

In a bundle (``edgekit compile MODEL --target rpi4 --backend c``) the payload's model is
the library and ``c_model.json`` its I/O description; ``edgekit.runtime.open`` runs it
through ``CEngine``. The library itself, outside a bundle::

    model = CLibraryModel(folder / "libedgekit_model.so", description)
    y = model.run(x)                 # numpy in, numpy out (int8, float32; int32 out)
    model.close()

``description`` is the I/O description the C backend writes (``c_model.json``: ``inputs``
and ``outputs`` with name, shape, dtype, bytes, quantization). Before the first call the
library is checked against it and against this machine: the ELF's machine, the CPU
features it was compiled for (AVX2 for x86_64 builds), its ABI version, and each
tensor's dtype, shape and byte count; a mismatch raises ``CEngineError`` naming it.

Device side: numpy and ctypes only, Python 3.8 syntax.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from edgekit.errors import BadInputError
from edgekit.runtime.engines import Engine, check_io

ABI_VERSION = 1
MAX_RANK = 8
DTYPES = {1: "int8", 2: "float32", 3: "int32"}
ELF_MACHINES = {62: "x86_64", 183: "aarch64"}
# CPU flags (/proc/cpuinfo) an x86_64 build needs for each target feature it was compiled with.
X86_CPU_FLAGS = {"avx": "avx", "avx2": "avx2", "fma": "fma", "sse4.2": "sse4_2", "avx512f": "avx512f"}
EK_OK = 0
EK_ERR_SIZE = -1
DESCRIPTION_FILE = "c_model.json"   # the C backend's I/O description, beside the library


class CEngineError(BadInputError):
    """The library cannot run here, or does not match its description or the input given."""


class _TensorInfo(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_uint32), ("rank", ctypes.c_uint32),
                ("shape", ctypes.c_int32 * MAX_RANK), ("bytes", ctypes.c_uint32),
                ("quantized", ctypes.c_uint32), ("scale", ctypes.c_float),
                ("zero_point", ctypes.c_int32)]


class _ModelInfo(ctypes.Structure):
    _fields_ = [("abi_version", ctypes.c_uint32), ("name", ctypes.c_char_p),
                ("arena_bytes", ctypes.c_uint32), ("input", _TensorInfo), ("output", _TensorInfo)]


def elf_machine(path: Path) -> str:
    """The machine an ELF file was built for ("x86_64", "aarch64", or "e_machine N")."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        raise CEngineError(f"{path} is not an ELF shared library")
    order = "little" if head[5] == 1 else "big"
    code = int.from_bytes(head[18:20], order)
    return ELF_MACHINES.get(code, f"e_machine {code}")


def _cpu_flags() -> set:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def check_machine(path: Path, features: Sequence[str] = ()) -> None:
    """Raise ``CEngineError`` if the library at ``path`` cannot run on this machine."""
    built_for = elf_machine(path)
    here = platform.machine()
    here = {"amd64": "x86_64", "arm64": "aarch64"}.get(here.lower(), here)
    if built_for != here:
        raise CEngineError(f"{path.name} was built for {built_for}; this machine is {here}: run it on "
                           f"a {built_for} board (or its edgekit_harness under qemu-{built_for})")
    if here == "x86_64":
        flags = _cpu_flags()
        missing = sorted(X86_CPU_FLAGS[f] for f in features if f in X86_CPU_FLAGS
                         and X86_CPU_FLAGS[f] not in flags)
        if flags and missing:
            raise CEngineError(f"{path.name} was compiled for a CPU with {', '.join(missing)}; this "
                               "CPU lacks it: build for a target without those features")


def _spec_matches(info: _TensorInfo, spec: dict) -> Optional[str]:
    shape = [int(d) for d in spec["shape"]]
    got_shape = [int(info.shape[i]) for i in range(info.rank)]
    dtype = DTYPES.get(int(info.dtype), f"dtype code {info.dtype}")
    if dtype != spec["dtype"]:
        return f"dtype {dtype}, described as {spec['dtype']}"
    if got_shape != shape:
        return f"shape {got_shape}, described as {shape}"
    if int(info.bytes) != int(spec["bytes"]):
        return f"{info.bytes} bytes, described as {spec['bytes']}"
    return None


class CLibraryModel:
    """One loaded model library. ``run`` is safe from several threads (the library
    serializes calls on its arena); a second ``CLibraryModel`` of the same file shares
    that arena and lock."""

    def __init__(self, library: Path, description: dict):
        self.path = Path(library)
        if not self.path.is_file():
            raise CEngineError(f"model library {self.path} not found")
        self.description = description
        ins, outs = description.get("inputs", []), description.get("outputs", [])
        if len(ins) != 1 or len(outs) != 1:
            raise CEngineError(f"{self.path.name}: the C engine runs models with one input and one "
                               f"output; the description has {len(ins)} and {len(outs)}")
        self.inputs: List[dict] = [dict(ins[0])]
        self.outputs: List[dict] = [dict(outs[0])]
        check_machine(self.path, description.get("features", ()))
        try:
            self._lib = ctypes.CDLL(str(self.path.resolve()))
            get_info = self._lib.ek_model_info_get
            self._run = self._lib.ek_model_run
        except (OSError, AttributeError) as e:
            raise CEngineError(f"cannot load {self.path} as an edgekit model library: {e}") from None
        get_info.restype = ctypes.POINTER(_ModelInfo)
        get_info.argtypes = []
        self._run.restype = ctypes.c_int
        self._run.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32]
        info = get_info().contents
        if info.abi_version != ABI_VERSION:
            raise CEngineError(f"{self.path.name} has model ABI {info.abi_version}; this engine runs "
                               f"ABI {ABI_VERSION}: rebuild the bundle with this edgekit")
        for role, tinfo, spec in (("input", info.input, self.inputs[0]),
                                  ("output", info.output, self.outputs[0])):
            problem = _spec_matches(tinfo, spec)
            if problem is not None:
                raise CEngineError(f"{self.path.name}: its {role} {spec['name']!r} has {problem}")
        self.name = info.name.decode("utf-8", "replace")
        self.arena_bytes = int(info.arena_bytes)
        self._in_dtype = np.dtype(self.inputs[0]["dtype"])
        self._out_dtype = np.dtype(self.outputs[0]["dtype"])
        self._in_shape = tuple(int(d) for d in self.inputs[0]["shape"])
        self._out_shape = tuple(int(d) for d in self.outputs[0]["shape"])
        self._in_bytes = int(self.inputs[0]["bytes"])
        self._out_bytes = int(self.outputs[0]["bytes"])
        # Buffers with addresses taken once: ndarray.ctypes.data costs ~1 us a call, more
        # than copying a small tensor in and out. The lock keeps threads off each other's.
        self._in_buf = np.empty(self._in_shape, self._in_dtype)
        self._out_buf = np.empty(self._out_shape, self._out_dtype)
        self._in_addr = self._in_buf.ctypes.data
        self._out_addr = self._out_buf.ctypes.data
        self._buffers = threading.Lock()
        self._closed = False

    def run(self, x) -> np.ndarray:
        """One inference: ``x`` of the input's shape (or its flat size) and dtype; returns
        a new array of the output's shape and dtype."""
        if self._closed:
            raise CEngineError(f"{self.path.name}: the model is closed")
        a = np.asarray(x)
        if a.dtype != self._in_dtype:
            raise CEngineError(f"input {self.inputs[0]['name']!r} must be {self._in_dtype}, got {a.dtype}")
        if a.size * a.itemsize != self._in_bytes:
            raise CEngineError(f"input {self.inputs[0]['name']!r} must have shape {list(self._in_shape)}, "
                               f"got {list(a.shape)}")
        with self._buffers:
            self._in_buf.reshape(-1)[...] = a.reshape(-1)
            rc = self._run(self._in_addr, self._in_bytes, self._out_addr, self._out_bytes)
            out = self._out_buf.copy()
        if rc != EK_OK:
            raise CEngineError(f"{self.path.name}: ek_model_run returned {rc}")
        return out

    def run_named(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        """``run`` with inputs and outputs by tensor name."""
        name = self.inputs[0]["name"]
        if set(feeds) != {name}:
            raise CEngineError(f"the model takes one input {name!r}, got {sorted(feeds)}")
        return {self.outputs[0]["name"]: self.run(feeds[name])}

    def close(self) -> None:
        """Forget the library (ctypes never unloads it: a later load of the same file is cheap)."""
        self._closed = True
        self._lib = None
        self._run = None


class CEngine(Engine):
    """The bundle engine over ``CLibraryModel``. ctypes loads from a path, so the library's
    verified bytes are written to a private temporary file, loaded, and the file removed
    (the mapping stays): what runs is what the manifest's hash covered."""

    name = "c"
    tflm_exact = True   # the generated C is bit-exact with the reference interpreter
    options = ()

    def __init__(self, bundle, options: dict):
        super().__init__(bundle, options)
        from edgekit.bundle.bundle_format import BundleError

        try:
            description = json.loads(bundle.read(DESCRIPTION_FILE).decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise BundleError(f"bundle {bundle.path}: {DESCRIPTION_FILE} is not JSON ({exc})") from None
        check_io(bundle, "inputs", [(s["shape"], s["dtype"]) for s in description.get("inputs", [])])
        check_io(bundle, "outputs", [(s["shape"], s["dtype"]) for s in description.get("outputs", [])])
        name = bundle.payload("model")
        folder = tempfile.mkdtemp(prefix="edgekit-c-")
        try:
            path = Path(folder) / os.path.basename(name)
            path.write_bytes(bundle.read(name))
            self.model = CLibraryModel(path, description)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.description = description

    def run(self, inputs: list) -> list:
        return [self.model.run(inputs[0])]

    def close(self) -> None:
        self.model.close()

    def describe(self) -> str:
        d = self.description
        variants = sorted({k["variant"] for k in d.get("kernels", [])})
        return (f"edgekit C shared library ({d.get('machine')}, {d.get('target')}, kernels "
                f"{'/'.join(variants)}, ABI {ABI_VERSION})")


ENGINE = CEngine
