"""Graph rewrites. Each pass is a function ``graph -> bool`` (True when it changed
something), registered by name; ``run_passes`` applies a list until nothing changes.
"""

from edgekit.ir.passes.base import PASSES, register, run_passes, DEFAULT_PIPELINE
from edgekit.ir.passes import batchnorm, cleanup, constant_fold, dequantize, fuse, hoist, layout  # noqa: F401  (registration)

__all__ = ["PASSES", "register", "run_passes", "DEFAULT_PIPELINE"]
