"""C backend for microcontrollers: an int8 IR graph becomes dependency-free C99 (model.c /
model.h with the weights in flash and one static arena) plus exactly the kernels of
runtimes/micro it uses.

    from edgekit.backends.c import compile_model
    result = compile_model(graph, "cortex-m4", "out/kws")
    result.arena_bytes, result.flash, result.fit.table()

Modules, in the order the stage uses them: ``params`` (kernel parameters of each op),
``library`` (kernel variants and files), ``plan`` (the arena), ``codegen`` (model.c /
model.h), ``build`` (host and cross compilers, sizes, QEMU), ``fit`` (memories),
``report``, ``compile`` (the stage).
"""

from edgekit.backends.c.compile import CompileResult, DynamicShapeError, compile_model
from edgekit.backends.c.fit import FitError, FitReport

__all__ = ["CompileResult", "DynamicShapeError", "FitError", "FitReport", "compile_model"]
