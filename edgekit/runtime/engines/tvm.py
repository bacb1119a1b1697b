"""The tvm engine: runs a bundle's ``model.so`` (a module compiled by edgekit's TVM
backend, ``edgekit.backends.tvm``) on TVM's Relax virtual machine, on the CPU.

A device needs the ``apache-tvm`` wheel at the version the bundle was compiled with (the
bundle's ``tvm_module.json`` names it; another version is refused: compiled modules do not
travel between TVM releases) and its ``apache-tvm-ffi``; no compiler, no LLVM toolchain.
When TVM is not yet imported in the process, this engine imports it with
``TVM_USE_RUNTIME_LIB=1``: only ``libtvm_runtime.so`` (3.4 MB) is loaded instead of the
259 MB compiler library, and ``tvm.relax`` is not imported (measured on x86_64: 90 MB peak
RSS instead of 270 MB). tvm_ffi imports torch whenever torch is installed; a torch not
already loaded is hidden from that import, as nothing here needs it.

A CUDA module (``"device": "cuda"`` in ``tvm_module.json``: Jetsons with sm_75 or later)
runs on ``tvm.cuda(0)``. It needs TVM's CUDA runtime library (``libtvm_runtime_cuda.so``,
shipped in the wheel; it links the CUDA runtime the module info names, libcudart.so.13,
and the driver's libcuda.so.1), a CUDA device, and NVRTC through ``cuda-bindings`` (the
module holds CUDA source, which TVM compiles for the device's GPU when it is loaded). A
missing piece is refused with EngineUnavailableError naming it.

No engine options. Python 3.8 syntax, numpy 1.x or 2.x.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import numpy as np

from edgekit.runtime.engines import Engine, EngineUnavailableError, check_io

MODULE_INFO = "tvm_module.json"
# /proc/cpuinfo flags an x86_64 module needs for the LLVM CPU it was compiled for.
X86_CPU_FLAGS = {"x86-64-v3": ("avx2", "fma"), "x86-64-v4": ("avx2", "fma", "avx512f")}


def _bundle_error(bundle, text: str):
    from edgekit.bundle.bundle_format import BundleError

    return BundleError(f"bundle {bundle.path}: {text}")


def import_tvm_runtime():
    """``(tvm, runtime_only)``: TVM, loaded runtime-only unless this process has already
    imported it or ``TVM_USE_RUNTIME_LIB`` is set by the caller."""
    set_env = "tvm" not in sys.modules and "TVM_USE_RUNTIME_LIB" not in os.environ
    hide_torch = "torch" not in sys.modules
    if set_env:
        os.environ["TVM_USE_RUNTIME_LIB"] = "1"   # read once, when tvm is imported
    if hide_torch:
        sys.modules["torch"] = None               # `import torch` raises ImportError
    try:
        import tvm
        from tvm.runtime import vm  # noqa: F401
    except ImportError:
        raise EngineUnavailableError("the tvm engine needs Apache TVM: pip install apache-tvm==0.27.0.post1 "
                                     "apache-tvm-ffi==0.1.14.post1 (or edgekit[tvm])") from None
    finally:
        if set_env:
            del os.environ["TVM_USE_RUNTIME_LIB"]  # child processes get the caller's environment
        if hide_torch and sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    runtime_only = not hasattr(tvm, "relax") and "tvm.relax" not in sys.modules
    return tvm, runtime_only


def _elf_machine(data: bytes) -> str:
    if len(data) < 20 or data[:4] != b"\x7fELF":
        return "not an ELF file"
    code = int.from_bytes(data[18:20], "little" if data[5] == 1 else "big")
    return {62: "x86_64", 183: "aarch64"}.get(code, "e_machine %d" % code)


def _this_machine() -> str:
    import platform

    m = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m.lower(), m)


def cpu_flags() -> set:
    """The x86 CPU feature flags of this machine (/proc/cpuinfo), empty where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _release(version: str) -> str:
    return ".".join(str(version).split(".")[:2])


def _open_cuda(bundle, tvm, cuda: dict):
    """``tvm.cuda(0)`` once TVM's CUDA runtime is loaded, a GPU is there and NVRTC can
    compile the module's kernels; else EngineUnavailableError saying which is missing."""
    arch = cuda.get("arch", "a CUDA GPU")
    cudart = cuda.get("cuda_runtime", "the CUDA runtime")
    needs = (f"bundle {bundle.path} holds a TVM CUDA module for {arch}: it needs an NVIDIA GPU, TVM's CUDA runtime "
             f"(libtvm_runtime_cuda.so, which links {cudart} and the driver's libcuda.so.1) and NVRTC "
             f"(pip install cuda-bindings nvidia-cuda-nvrtc)")
    if tvm.get_global_func("ffi.Module.load_from_bytes.cuda", allow_missing=True) is None:
        import ctypes

        path = os.path.join(os.path.dirname(tvm.__file__), "lib", "libtvm_runtime_cuda.so")
        try:
            # Loading registers the CUDA device API and module loader with libtvm_runtime.
            ctypes.CDLL(path, mode=getattr(ctypes, "RTLD_LOCAL", 0))
        except OSError as exc:
            raise EngineUnavailableError(f"{needs}; this machine cannot load TVM's CUDA runtime: {exc}") from None
    device = tvm.cuda(0)
    if not device.exist:
        raise EngineUnavailableError(f"{needs}; TVM's CUDA runtime found no CUDA device on this machine")
    try:
        import tvm.support.nvcc  # noqa: F401 - registers tvm_callback_cuda_compile, which loading calls
        from cuda.bindings import nvrtc  # noqa: F401
    except ImportError as exc:
        raise EngineUnavailableError(f"{needs}; NVRTC cannot be imported: {exc}") from None
    return device


class TvmEngine(Engine):
    name = "tvm"
    options = ()

    def __init__(self, bundle, options: dict):
        super().__init__(bundle, options)
        try:
            info = json.loads(bundle.read(MODULE_INFO).decode("utf-8"))
            built_for, compiled_with = info["machine"], info["tvm_version"]
            target = info["tvm_target"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise _bundle_error(bundle, f"{MODULE_INFO} is unreadable ({exc})") from None
        library = bundle.read(bundle.payload("model"))
        self._check_machine(bundle, library, built_for, target)
        tvm, self.runtime_only = import_tvm_runtime()
        self.version = tvm.__version__
        if _release(compiled_with) != _release(self.version):
            raise EngineUnavailableError(f"bundle {bundle.path} was compiled with TVM {compiled_with}; this machine "
                                         f"has TVM {self.version}: install apache-tvm=={compiled_with}")
        self.target = target
        self._tvm = tvm
        self.device_kind = info.get("device", "cpu")
        if self.device_kind == "cuda":
            self._device = _open_cuda(bundle, tvm, info.get("cuda") or {})
        elif self.device_kind == "cpu":
            self._device = tvm.cpu()
        else:
            raise _bundle_error(bundle, f"{MODULE_INFO} names device {self.device_kind!r}; this engine runs "
                                "cpu and cuda modules")
        self._main = self._load(bundle, tvm, library)
        self._check_io(bundle)

    def _check_machine(self, bundle, library: bytes, built_for: str, target: dict) -> None:
        in_elf = _elf_machine(library)
        if in_elf != built_for:
            raise _bundle_error(bundle, f"{bundle.payload('model')} is {in_elf}, but {MODULE_INFO} says {built_for}")
        here = _this_machine()
        if built_for != here:
            raise _bundle_error(bundle, f"its TVM module was compiled for {built_for} (target {bundle.target}); "
                                f"this machine is {here}")
        cpu = target.get("host", target)       # a CUDA target's CPU side is its host
        needs = X86_CPU_FLAGS.get(str(cpu.get("mcpu", ""))) if here == "x86_64" else None
        flags = cpu_flags()
        missing = [f for f in needs or () if flags and f not in flags]
        if missing:
            raise _bundle_error(bundle, f"its TVM module was compiled for {cpu.get('mcpu')}, which needs "
                                f"{', '.join(missing)}; this CPU lacks it")

    def _load(self, bundle, tvm, library: bytes):
        # load_module takes a path; the verified bytes are written to a private file (not
        # the bundle folder's copy, which could change after the hash check) and unlinked
        # once loaded: the loader keeps its mapping.
        fd, path = tempfile.mkstemp(prefix="edgekit-tvm-", suffix=".so")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(library)
            try:
                module = tvm.runtime.load_module(path)
                vm = tvm.runtime.vm.VirtualMachine(module, self._device)
                return vm["main"]
            except Exception as exc:  # tvm raises its own error types for a library it cannot load
                raise _bundle_error(bundle, f"TVM cannot load {bundle.payload('model')}: "
                                    f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
        finally:
            os.unlink(path)

    def _check_io(self, bundle) -> None:
        # The Relax VM checks each argument's shape and dtype against the function's
        # signature when called: one call on zeros of the manifest's inputs checks them,
        # and its results give the outputs to compare with the manifest.
        zeros = [np.zeros(s["shape"], s["dtype"]) for s in bundle.manifest["inputs"]]
        try:
            outs = self.run(zeros)
        except Exception as exc:
            raise _bundle_error(bundle, f"the TVM module does not take the inputs manifest.json declares: "
                                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from None
        check_io(bundle, "outputs", [(o.shape, o.dtype.name) for o in outs])

    def run(self, inputs: list) -> list:
        tensor, device = self._tvm.runtime.tensor, self._device
        out = self._main(*[tensor(x, device) for x in inputs])
        if hasattr(out, "numpy"):
            return [out.numpy()]
        return [o.numpy() for o in out]

    def close(self) -> None:
        self._main = None

    def describe(self) -> str:
        lib = "libtvm_runtime only" if self.runtime_only else "full TVM library"
        if self.device_kind == "cuda":
            host = self.target.get("host", {}).get("mcpu")
            return (f"Apache TVM {self.version} (Relax VM, {lib}; CUDA {self.target.get('arch')} on "
                    f"GPU {self._device.device_name}, host {host})")
        return f"Apache TVM {self.version} (Relax VM, {lib}; compiled for {self.target.get('mcpu')})"


ENGINE = TvmEngine
