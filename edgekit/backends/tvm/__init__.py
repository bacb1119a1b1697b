"""TVM backend for Linux targets: an IR graph (float, or int8 as QDQ) becomes a shared
library that TVM's Relax virtual machine runs (``edgekit.runtime.engines.tvm``).

    from edgekit.backends.tvm import TuningOptions, compile_tvm
    result = compile_tvm(graph, load_target("rpi4"))
    result.library        # bytes of the exported .so (aarch64 here, cross-compiled)
    result.tvm_target     # the TVM target, in dict form
    tuned = compile_tvm(graph, load_target("x86_64"), tuning=TuningOptions(trials=64))
    tuned.tuning          # trials run, best latencies, the database folder

The path: IR -> ONNX (edgekit's own writer, NHWC at the boundary) -> Relax
(``tvm.relax.frontend.onnx.from_onnx``) -> ``tvm.compile`` for the target's CPU, or for
its GPU through CUDA (Jetsons with sm_75 or later: the module holds CUDA source that
NVRTC compiles on the device) -> ``export_library`` (Debian's ``aarch64-linux-gnu-gcc``
for aarch64 boards). With ``tuning``, MetaSchedule first searches schedules on this
machine, kept in a database that later compiles reuse (``tuning.py``). Needs the ``tvm``
extra; TVM is imported only when a compile asks for it.
"""

from edgekit.backends.tvm.compiler import (
    CUDA_MIN_SM,
    INT8_NOTE,
    JETSON_NOTE,
    TvmCompileResult,
    TvmUnavailableError,
    compile_tvm,
    cpu_target,
    device_note,
    import_tvm_compiler,
    tvm_target,
    uses_cuda,
)
from edgekit.backends.tvm.tuning import TuningOptions, TuningProgress, default_db_root

__all__ = ["CUDA_MIN_SM", "INT8_NOTE", "JETSON_NOTE", "TuningOptions", "TuningProgress", "TvmCompileResult",
           "TvmUnavailableError", "compile_tvm", "cpu_target", "default_db_root", "device_note",
           "import_tvm_compiler", "tvm_target", "uses_cuda"]
