"""IR graph -> TVM shared library for one Linux target (see the package docstring)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import BadInputError, EdgekitError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.targets import Target

# The families whose CPUs TVM compiles for here (Jetson: its Arm cores; TVM's CUDA path is not built).
FAMILIES = ("linux", "jetson", "host")
# LLVM triples of the architectures edgekit's Linux targets name, and the Debian compilers for them.
TRIPLES = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
INT8_NOTE = ("TVM 0.27 runs int8 (QDQ) models as float arithmetic between quantize and dequantize steps, with "
             "no int8 kernels: litert (or c) runs int8 natively and is the better backend for int8 models")


JETSON_NOTE = ("on a Jetson this module runs on the Arm CPU cores: TVM's CUDA path for its GPU is not built "
               "(onnxruntime or litert bundles are the alternatives there)")


class TvmUnavailableError(EdgekitError):
    """Apache TVM (the compiler, not only its runtime) cannot be imported here."""


@dataclass(frozen=True)
class TvmCompileResult:
    library: bytes              # the exported shared library
    tvm_target: dict            # the TVM target it was compiled for, in dict form
    machine: str                # "x86_64" or "aarch64"
    tvm_version: str
    int8_as_float: bool         # an int8 graph: TVM computes it in float (INT8_NOTE)


def import_tvm_compiler():
    """``tvm`` with its compiler (``tvm.relax``) loaded.

    tvm_ffi imports torch when torch is installed (2.6 s and ~500 MB more): compiling never
    needs it, so a torch not yet loaded is hidden from that import. A process whose TVM was
    loaded runtime-only (``TVM_USE_RUNTIME_LIB=1``, what the device engine uses) cannot
    compile: that is refused with the reason."""
    try:
        with _torch_hidden():
            import tvm
            from tvm import relax  # noqa: F401 - loads the compiler
            from tvm.relax.frontend.onnx import from_onnx  # noqa: F401
            import tvm.support.cc  # noqa: F401
    except ImportError:
        raise TvmUnavailableError("the tvm backend needs Apache TVM: pip install 'edgekit[tvm]' "
                                  "(apache-tvm 0.27.0.post1, apache-tvm-ffi 0.1.14.post1)") from None
    except AttributeError:
        # What `from tvm import relax` raises when only libtvm_runtime was loaded.
        raise TvmUnavailableError("TVM was loaded runtime-only in this process (TVM_USE_RUNTIME_LIB=1, as "
                                  "edgekit's tvm engine does on a device): compile in a process that has not "
                                  "opened a tvm bundle, or set TVM_USE_RUNTIME_LIB=0") from None
    return tvm


class _torch_hidden:
    """Makes ``import torch`` fail inside the block unless torch is already loaded."""

    def __enter__(self):
        self.hid = "torch" not in sys.modules
        if self.hid:
            sys.modules["torch"] = None  # an ImportError for `import torch`, by Python's import rules
        return self

    def __exit__(self, *exc):
        if self.hid and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]


def tvm_target(tgt: Target) -> dict:
    """The TVM target (dict form; TVM 0.27 refuses "llvm -mcpu=..." strings) for the CPU of
    a Linux-class target: its LLVM triple, the CPU its toolchain flags name (``-mcpu=`` or
    ``-march=``, else the target file's ``cpu``) and NEON on Arm."""
    if tgt.family not in FAMILIES:
        raise BadInputError(f"--backend tvm: target {tgt.name!r} is a {tgt.family} target; TVM builds for the "
                            f"families {', '.join(FAMILIES)} (microcontrollers take --backend c)")
    machine = target_machine(tgt)
    cpu = tgt.cpu
    for flag in tgt.toolchain.cflags:
        for prefix in ("-mcpu=", "-march="):
            if flag.startswith(prefix):
                cpu = flag[len(prefix):]
    target = {"kind": "llvm", "mtriple": TRIPLES[machine], "mcpu": cpu}
    if machine == "aarch64" and "neon" in tgt.features:
        target["mattr"] = ["+neon"]
    return target


def target_machine(tgt: Target) -> str:
    if tgt.arch == "x86_64":
        return "x86_64"
    if tgt.arch.startswith("armv8") or tgt.arch.startswith("armv9") or tgt.arch == "aarch64":
        return "aarch64"
    raise BadInputError(f"--backend tvm: target {tgt.name!r} has architecture {tgt.arch!r}; TVM builds here for "
                        "x86_64 and 64-bit Arm (armv8/armv9) Linux targets")


def compile_tvm(graph: Graph, tgt: Target) -> TvmCompileResult:
    """Compile ``graph`` for ``tgt``'s CPU and export it as a shared library, linked by the
    target file's C compiler (``toolchain.cc``)."""
    from edgekit.backends.onnx import to_onnx

    target = tvm_target(tgt)
    machine = target_machine(tgt)
    cc = tgt.toolchain.cc
    if shutil.which(cc) is None:
        pkg = "gcc-aarch64-linux-gnu libc6-dev-arm64-cross" if machine == "aarch64" else "gcc"
        raise EdgekitError(f"--backend tvm for {tgt.name}: the linker {cc!r} is not installed (apt-get install {pkg})")
    # Bundles expose every tensor in the IR's layout (NHWC), whatever the engine.
    model = to_onnx(graph, layout="ir")
    tvm = import_tvm_compiler()
    from tvm.relax.frontend.onnx import from_onnx

    try:
        mod = from_onnx(model, keep_params_in_input=False)
    except Exception as exc:  # the frontend raises many kinds (TVMError, KeyError, ...) for an op it lacks
        raise EdgekitError(f"TVM's ONNX frontend cannot import model {graph.name!r}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="edgekit-tvm-") as tmp:
        out = Path(tmp) / "model.so"
        try:
            executable = tvm.compile(mod, target=tvm.target.Target(target))
            # -s: no symbol table or debug info (a third of the file); the loader needs only .dynsym.
            executable.export_library(str(out), fcompile=tvm.support.cc.cross_compiler(cc, options=["-s"]))
        except Exception as exc:  # TVMError / RuntimeError from LLVM or the linker, with their message
            raise EdgekitError(f"TVM could not compile model {graph.name!r} for {tgt.name} ({target}): "
                               f"{_first_lines(exc)}") from None
        library = out.read_bytes()
    int8 = any(graph.tensor(o).dtype is DType.INT8 for op in graph.ops for o in op.outputs)
    return TvmCompileResult(library, target, machine, tvm.__version__, int8)


def _first_lines(exc: Exception, n: int = 3) -> str:
    return " / ".join(str(exc).strip().splitlines()[:n]) or type(exc).__name__

