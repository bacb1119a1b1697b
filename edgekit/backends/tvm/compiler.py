"""IR graph -> TVM shared library for one Linux target (see the package docstring)."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import BadInputError, EdgekitError
from edgekit.ir.dtypes import DType
from edgekit.ir.graph import Graph
from edgekit.targets import Target

# The families TVM compiles for here (Jetson: its GPU with sm_75 or later, else its Arm cores).
FAMILIES = ("linux", "jetson", "host")
# LLVM triples of the architectures edgekit's Linux targets name, and the Debian compilers for them.
TRIPLES = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
INT8_NOTE = ("TVM 0.27 runs int8 (QDQ) models as float arithmetic between quantize and dequantize steps, with "
             "no int8 kernels: litert (or c) runs int8 natively and is the better backend for int8 models")
# TVM 0.27's CUDA runtime (libtvm_runtime_cuda) links the CUDA 13 runtime, and CUDA 13 builds
# nothing for GPUs below compute capability 7.5 (Maxwell, Pascal, Volta): older Jetsons
# (Nano sm_53, Xavier sm_72) get a module for their Arm cores instead.
CUDA_MIN_SM = 75
JETSON_NOTE = ("on a Jetson this module runs on the Arm CPU cores: TVM 0.27's CUDA runtime needs CUDA 13, which "
               "does not support GPUs below sm_75 (--backend tensorrt runs the model on the GPU there)")
CUDA_NOTE = ("the module's kernels run on the GPU: the device needs TVM's CUDA runtime (libtvm_runtime_cuda, which "
             "links the CUDA 13 runtime {cudart}; JetPack 6 ships CUDA 12) and NVRTC through cuda-bindings, which "
             "compiles the CUDA source the module holds when it is opened (--backend tensorrt or onnxruntime "
             "bundles are the alternatives where CUDA 13 is missing)")


class TvmUnavailableError(EdgekitError):
    """Apache TVM (the compiler, not only its runtime) cannot be imported here."""


@dataclass(frozen=True)
class TvmCompileResult:
    library: bytes              # the exported shared library
    tvm_target: dict            # the TVM target it was compiled for, in dict form
    machine: str                # "x86_64" or "aarch64": the host code's
    tvm_version: str
    int8_as_float: bool         # an int8 graph: TVM computes it in float (INT8_NOTE)
    device: str = "cpu"         # "cpu", or "cuda": kernels for the GPU (cuda_module_info)
    cuda: dict | None = None    # for "cuda": arch, kernel names, the CUDA runtime it needs
    tuning: dict | None = None  # MetaSchedule's summary when tuned (edgekit.backends.tvm.tuning)


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
    """The TVM target (dict form; TVM 0.27 refuses "llvm -mcpu=..." strings): CUDA for the
    GPU of a target with one of sm_75 or later, with its CPU as host; else the CPU's."""
    cpu = cpu_target(tgt)
    if uses_cuda(tgt):
        return {"kind": "cuda", "arch": f"sm_{tgt.cuda_sm}", "host": cpu}
    return cpu


def uses_cuda(tgt: Target) -> bool:
    return tgt.cuda_sm is not None and tgt.cuda_sm >= CUDA_MIN_SM


def device_note(tgt: Target) -> str:
    """What the compile report says about where a Jetson-class target runs the module."""
    if uses_cuda(tgt):
        return CUDA_NOTE.format(cudart=cuda_runtime_soname())
    return JETSON_NOTE if tgt.family == "jetson" or tgt.cuda_sm is not None else ""


def cpu_target(tgt: Target) -> dict:
    """The LLVM target for the CPU of a Linux-class target: its LLVM triple, the CPU its
    toolchain flags name (``-mcpu=`` or ``-march=``, else the target file's ``cpu``) and
    NEON on Arm."""
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


def cuda_runtime_soname() -> str:
    """The CUDA runtime library TVM's CUDA runtime links (read from the installed
    libtvm_runtime_cuda.so: the soname a device must provide)."""
    import tvm

    lib = Path(tvm.__file__).resolve().parent / "lib" / "libtvm_runtime_cuda.so"
    try:
        found = re.search(rb"libcudart\.so\.[0-9]+", lib.read_bytes())
    except OSError:
        found = None
    if found is None:
        raise EdgekitError(f"this TVM install has no CUDA runtime library ({lib}) naming libcudart: reinstall "
                           "apache-tvm==0.27.0.post1")
    return found.group().decode()


def target_machine(tgt: Target) -> str:
    if tgt.arch == "x86_64":
        return "x86_64"
    if tgt.arch.startswith("armv8") or tgt.arch.startswith("armv9") or tgt.arch == "aarch64":
        return "aarch64"
    raise BadInputError(f"--backend tvm: target {tgt.name!r} has architecture {tgt.arch!r}; TVM builds here for "
                        "x86_64 and 64-bit Arm (armv8/armv9) Linux targets")


def compile_tvm(graph: Graph, tgt: Target, tuning=None) -> TvmCompileResult:
    """Compile ``graph`` for ``tgt`` (its GPU through CUDA where ``uses_cuda``, else its
    CPU) and export it as a shared library, linked by the target file's C compiler
    (``toolchain.cc``). ``tuning``: ``TuningOptions`` to run MetaSchedule first (CPU
    modules, on the machine that runs them; ``edgekit.backends.tvm.tuning``)."""
    from edgekit.backends.onnx import to_onnx

    target = tvm_target(tgt)
    machine = target_machine(tgt)
    if tuning is not None:
        # MetaSchedule sizes parallel loops by num-cores: tuned for one thread, the latency
        # the benchmarks compare (TVM_NUM_THREADS=1 on the device).
        target = {**target, "num-cores": 1}
    cc = tgt.toolchain.cc
    if shutil.which(cc) is None:
        pkg = "gcc-aarch64-linux-gnu libc6-dev-arm64-cross" if machine == "aarch64" else "gcc"
        raise EdgekitError(f"--backend tvm for {tgt.name}: the linker {cc!r} is not installed (apt-get install {pkg})")
    if tuning is not None:
        from edgekit.backends.tvm.tuning import check_tunable_here

        check_tunable_here(tgt, machine, target)    # before any work: exit 2 at once
    # Bundles expose every tensor in the IR's layout (NHWC), whatever the engine.
    model = to_onnx(graph, layout="ir")
    tvm = import_tvm_compiler()
    from tvm.relax.frontend.onnx import from_onnx

    try:
        mod = from_onnx(model, keep_params_in_input=False)
    except Exception as exc:  # the frontend raises many kinds (TVMError, KeyError, ...) for an op it lacks
        raise EdgekitError(f"TVM's ONNX frontend cannot import model {graph.name!r}: {exc}") from None
    summary = None
    with tempfile.TemporaryDirectory(prefix="edgekit-tvm-") as tmp:
        out = Path(tmp) / "model.so"
        try:
            if tuning is not None:
                from edgekit.backends.tvm.tuning import tune_and_build

                executable, summary = tune_and_build(tvm, mod, target, tgt, tuning, machine)
            else:
                executable = tvm.compile(mod, target=tvm.target.Target(target))
            cuda = cuda_module_info(executable, target["arch"]) if target["kind"] == "cuda" else None
            if summary is not None:
                summary["model_us"] = _measure_us(tvm, executable, graph)
            # -s: no symbol table or debug info (a third of the file); the loader needs only .dynsym.
            executable.export_library(str(out), fcompile=tvm.support.cc.cross_compiler(cc, options=["-s"]))
        except EdgekitError:
            raise
        except Exception as exc:  # TVMError / RuntimeError from LLVM or the linker, with their message
            raise EdgekitError(f"TVM could not compile model {graph.name!r} for {tgt.name} ({target}): "
                               f"{_first_lines(exc)}") from None
        library = out.read_bytes()
    int8 = any(graph.tensor(o).dtype is DType.INT8 for op in graph.ops for o in op.outputs)
    return TvmCompileResult(library, target, machine, tvm.__version__, int8,
                            device="cuda" if cuda else "cpu", cuda=cuda, tuning=summary)


def cuda_module_info(executable, arch: str) -> dict:
    """What a CUDA module needs and holds: its GPU arch, the CUDA runtime TVM's CUDA
    runtime links, and the kernels of the CUDA source it carries (NVRTC compiles that
    source on the device when the module is loaded: no CUDA toolkit is needed here)."""
    sources = [m.inspect_source() for m in _walk_modules(executable.mod) if m.kind == "cuda"]
    if not sources:
        raise EdgekitError("TVM produced no CUDA module for a CUDA target")
    kernels = sorted({k for src in sources for k in _KERNEL.findall(src)})
    return {"arch": arch, "kernels": kernels, "kernel_format": "CUDA C source, compiled at load by NVRTC",
            "cuda_runtime": cuda_runtime_soname(), "runtime_library": "libtvm_runtime_cuda.so",
            "nvrtc": "cuda-bindings (cuda.bindings.nvrtc) with CUDA 13's NVRTC library"}


_KERNEL = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(')


def _walk_modules(module):
    yield module
    for m in module.imports:
        yield from _walk_modules(m)


def _measure_us(tvm, executable, graph: Graph) -> float:
    """Median latency (us) of one call of the tuned module on this machine (the tuning
    ran here, so it runs here), on zeros of the model's inputs."""
    import numpy as np
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(executable, dev)
    args = [tvm.runtime.tensor(np.zeros(graph.tensor(n).shape, graph.tensor(n).dtype.value), dev)
            for n in graph.inputs]
    timer = vm.time_evaluator("main", dev, number=20, repeat=5, min_repeat_ms=50)
    return round(float(timer(*args).median) * 1e6, 2)


def _first_lines(exc: Exception, n: int = 3) -> str:
    return " / ".join(str(exc).strip().splitlines()[:n]) or type(exc).__name__

