"""C backend for microcontrollers: an int8 IR graph becomes dependency-free C99 (model.c /
model.h with the weights in flash and one static arena) plus exactly the kernels of
runtimes/micro it uses.

    from edgekit.backends.c import compile_model
    result = compile_model(graph, "cortex-m4", "out/kws")
    result.arena_bytes, result.flash, result.fit.table()

Modules, in the order the stage uses them: ``params`` (kernel parameters of each op),
``library`` (kernel variants and files), ``plan`` (the arena), ``codegen`` (model.c /
model.h), ``build`` (host and cross compilers, sizes, QEMU), ``fit`` (memories),
``report``, ``compile`` (the stage). ``shared_library`` builds the same model C for a Linux
target (x86_64, aarch64) into a shared library and a harness (runtimes/linux).

Other writers of the same model (``edgekit.bundle``'s model packages) use the lowering and
the arena plan through this interface, so their bytes match the generated C:
``check_supported``, ``lower_op`` (one ``KernelCall`` per op; its arguments are
``TensorRef``, ``ConstArray``, ``F32``, ``PointerList`` and ``Struct``), ``plan_arena``.
"""

from edgekit.backends.c.compile import CompileResult, DynamicShapeError, compile_model
from edgekit.backends.c.fit import FitError, FitReport
from edgekit.backends.c.params import (F32, ConstArray, KernelCall, PointerList, Struct, TensorRef, check_supported,
                                       lower_op)
from edgekit.backends.c.plan import plan_arena

__all__ = ["CompileResult", "ConstArray", "DynamicShapeError", "F32", "FitError", "FitReport", "KernelCall",
           "PointerList", "Struct", "TensorRef", "check_supported", "compile_model", "lower_op", "plan_arena"]
