"""The C backend for Linux targets: an int8 IR graph -> a shared library with a small C ABI,
and a harness program that runs it on a board without Python.

    result = build_shared_library(graph, "rpi4", "out/kws-c")
    result.library     # out/kws-c/libedgekit_model.so (aarch64 here)
    result.harness     # out/kws-c/edgekit_harness, linked against the library

The model C is the one ``compile_model`` writes for a microcontroller (same lowering,
arena plan and code generator); the kernels are the target's variants of
runtimes/micro (``linux`` where the target has NEON or AVX2: loops written for the
compiler to vectorize). runtimes/linux adds the exported ABI (``model_abi.c``,
``edgekit_model_abi.h``: ``ek_model_info_get``, ``ek_model_run``) and the harness
(``harness.c``). Both are compiled with the target's compiler and flags from
targets/*.toml (x86_64: ``-march=x86-64-v3``, AVX2; aarch64 boards: their ``-mcpu``,
NEON) at ``-O3``, everything but the ABI hidden.

Written to ``out_dir`` (nothing unless every step succeeds): the library, the harness,
``c_model.json`` (the I/O description the ctypes engine and the bundle read: names,
shapes, dtypes, quantization, byte counts; target, flags, kernels) and ``src/`` (every
source, to rebuild on the board).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgekit.backends.c import build, library
from edgekit.backends.c.codegen import generate
from edgekit.backends.c.compile import _check_io, _check_shapes, _prepare
from edgekit.backends.c.params import check_supported, lower_op
from edgekit.backends.c.plan import plan_arena
from edgekit.errors import BadInputError
from edgekit.files import check_replaceable_folder
from edgekit.ir.graph import Graph
from edgekit.ir.verify import verify
from edgekit.resources import runtimes_dir
from edgekit.targets import Target, load_target

FORMAT = "edgekit-c-shared-library"
FORMAT_VERSION = 1
ABI_VERSION = 1                      # EK_MODEL_ABI_VERSION of runtimes/linux/edgekit_model_abi.h
LIBRARY_NAME = "libedgekit_model.so"
HARNESS_NAME = "edgekit_harness"
DESCRIPTION_NAME = "c_model.json"
LINUX_FAMILIES = ("linux", "jetson", "host")
OPT = ("-O3",)
# Only ek_model_info_get / ek_model_run leave the library; -pthread for its arena lock.
LIBRARY_CFLAGS = ("-fPIC", "-fvisibility=hidden", "-pthread")
# ELF e_machine of each machine edgekit builds for (the ctypes engine checks it too).
ELF_MACHINES = {"x86_64": 62, "aarch64": 183}


@dataclass
class SharedLibraryResult:
    out_dir: Path
    target: str
    library: Path
    harness: Path
    description: dict          # the contents of c_model.json

    @property
    def io(self) -> dict:
        return {"inputs": self.description["inputs"], "outputs": self.description["outputs"]}


def linux_runtime_dir() -> Path:
    """runtimes/linux: the exported ABI and the harness."""
    return runtimes_dir() / "linux"


def machine_of(target: Target) -> str:
    """"x86_64" or "aarch64": the machine the target's compiler builds for."""
    cc = Path(target.toolchain.cc).name
    if cc.startswith("aarch64-"):
        return "aarch64"
    if target.arch == "x86_64" and cc in ("gcc", "cc", "x86_64-linux-gnu-gcc"):
        return "x86_64"
    raise BadInputError(f"target {target.name!r}: the C backend builds Linux libraries with gcc "
                        f"for x86_64 or aarch64-linux-gnu-gcc, not {target.toolchain.cc}")


def _tensor_description(graph: Graph, name: str) -> dict:
    t = graph.tensor(name)
    q = t.quant
    quant = None
    if q is not None and len(q.scale) == 1:
        quant = {"scale": float(q.scale[0]), "zero_point": int(q.zero_point[0])}
    return {"name": name, "shape": [int(d) for d in t.shape], "dtype": t.dtype.value,
            "bytes": int(t.nbytes), "quantization": quant}


def build_shared_library(graph: Graph, target: str | Target, out_dir, *, calib=None,
                         quantize_kwargs=None, variant: str = "auto",
                         targets_dir=None) -> SharedLibraryResult:
    """Build ``graph`` (int8, or float with ``calib`` data to quantize it) for a Linux
    ``target`` (family linux, jetson or host) into ``out_dir``.

    ``variant``: the kernels' variant, "auto" (by target features), "portable" or
    "linux". Raises ``BadInputError`` for an MCU target or a model the C backend cannot
    compile, ``build.ToolMissingError`` when the target's compiler is not installed.
    """
    tgt = target if isinstance(target, Target) else load_target(target, targets_dir)
    if tgt.family not in LINUX_FAMILIES:
        raise BadInputError(f"target {tgt.name!r} is a {tgt.family} target; build a shared library "
                            "for a Linux target (family linux, jetson or host), or use compile_model")
    machine = machine_of(tgt)
    cc = build.tool(tgt.toolchain.cc)
    library.choose("conv2d", tgt.features, variant)  # validates the variant for the target early

    _check_shapes(graph)
    graph = _prepare(graph, calib, quantize_kwargs)
    _check_io(graph)
    check_supported(graph)
    verify(graph)
    calls = {op.name: lower_op(graph, op) for op in graph.ops}
    kernel_names = sorted({c.kernel for c in calls.values() if c is not None})
    choices = [library.choose(k, tgt.features, variant) for k in kernel_names]
    plan = plan_arena(graph, reverse_rows=True)
    model = generate(graph, plan, calls, {c.kernel: c.variant for c in choices}, name=graph.name,
                     target=tgt.name)

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    check_replaceable_folder(out_dir, DESCRIPTION_NAME, FORMAT, "edgekit C library")
    stage = Path(tempfile.mkdtemp(prefix=".edgekit-c-so-", dir=out_dir.parent))
    try:
        src = stage / "src"
        src.mkdir()
        (src / "model.c").write_text(model.model_c)
        (src / "model.h").write_text(model.model_h)
        files = library.copy_kernels(choices, src)
        for name in ("edgekit_model_abi.h", "model_abi.c", "harness.c"):
            shutil.copyfile(linux_runtime_dir() / name, src / name)
        lib_sources = ["model.c", "model_abi.c", *files["sources"]]
        cflags = [*tgt.toolchain.cflags, *build.WARNINGS, *OPT]
        ldflags = [f for f in tgt.toolchain.ldflags if f != "-Wl,--gc-sections"]
        objs = []
        for rel in lib_sources:
            obj = stage / "obj" / (Path(rel).stem + ".o")
            obj.parent.mkdir(exist_ok=True)
            build.run([cc, *cflags, *LIBRARY_CFLAGS, f"-I{src}", "-c", src / rel, "-o", obj])
            objs.append(obj)
        lib = stage / LIBRARY_NAME
        build.run([cc, "-shared", "-pthread", f"-Wl,-soname,{LIBRARY_NAME}", "-Wl,-z,defs", *objs,
                   "-o", lib, *ldflags])
        harness = stage / HARNESS_NAME
        build.run([cc, *cflags, "-pthread", f"-I{src}", src / "harness.c", "-o", harness, f"-L{stage}",
                   "-ledgekit_model", "-Wl,-rpath,$ORIGIN", *ldflags])
        shutil.rmtree(stage / "obj")
        description = {
            "format": FORMAT, "version": FORMAT_VERSION, "abi_version": ABI_VERSION,
            "model": graph.name, "target": tgt.name, "machine": machine,
            "features": sorted(tgt.features),
            "library": LIBRARY_NAME, "harness": HARNESS_NAME,
            "inputs": [_tensor_description(graph, n) for n in graph.inputs],
            "outputs": [_tensor_description(graph, n) for n in graph.outputs],
            "arena_bytes": plan.arena_bytes,
            "kernels": [{"kernel": c.kernel, "function": c.function, "variant": c.variant}
                        for c in choices],
            "build": {"cc": tgt.toolchain.cc, "cflags": cflags + list(LIBRARY_CFLAGS),
                      "ldflags": ldflags, "library_sources": [f"src/{s}" for s in lib_sources],
                      "harness_sources": ["src/harness.c"]},
        }
        (stage / DESCRIPTION_NAME).write_text(json.dumps(description, indent=1))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        stage.rename(out_dir)
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return SharedLibraryResult(out_dir, tgt.name, out_dir / LIBRARY_NAME, out_dir / HARNESS_NAME,
                               description)
