"""TVM backend for Linux targets: an IR graph (float, or int8 as QDQ) becomes a shared
library that TVM's Relax virtual machine runs (``edgekit.runtime.engines.tvm``).

    from edgekit.backends.tvm import compile_tvm
    result = compile_tvm(graph, load_target("rpi4"))
    result.library        # bytes of the exported .so (aarch64 here, cross-compiled)
    result.tvm_target     # the TVM target, in dict form

The path: IR -> ONNX (edgekit's own writer, NHWC at the boundary) -> Relax
(``tvm.relax.frontend.onnx.from_onnx``) -> ``tvm.compile`` for the target's CPU ->
``export_library`` (Debian's ``aarch64-linux-gnu-gcc`` for aarch64 boards). Untuned: no
MetaSchedule search. Needs the ``tvm`` extra; TVM is imported only when a compile asks for it.
"""

from edgekit.backends.tvm.compiler import (
    INT8_NOTE,
    JETSON_NOTE,
    TvmCompileResult,
    TvmUnavailableError,
    compile_tvm,
    import_tvm_compiler,
    tvm_target,
)

__all__ = ["INT8_NOTE", "JETSON_NOTE", "TvmCompileResult", "TvmUnavailableError", "compile_tvm", "import_tvm_compiler",
           "tvm_target"]
