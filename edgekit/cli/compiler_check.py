"""Whether this installation can run edgekit's model compiler.

The base install is the device side (``edgekit run``/``bench`` on bundles, ``flash`` of a
package file, ``device``), and runs on Python 3.8. The compiler (import, quantize,
compile, package, ...) needs Python 3.11 and the ``compiler`` extra's packages. A command
that needs what is missing stops with exit code 2 and says what to install, instead of an
ImportError or a SyntaxError deep inside a stage.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Optional, Tuple

from edgekit.errors import BadInputError

COMPILER_PYTHON = (3, 11)
# Import names of the `compiler` extra in pyproject.toml (tests/packaging checks they match).
COMPILER_MODULES = ("onnx", "flatbuffers")
INSTALL_HINT = "pip install 'edgekit[compiler]'"


class CompilerMissingError(BadInputError):
    """A command needs the model compiler, which this installation lacks."""


def missing_for_compiler(version: Tuple[int, ...] = tuple(sys.version_info[:3]),
                         needs_packages: bool = True) -> Optional[str]:
    """What keeps the compiler from running here, in words, or None when nothing does.
    ``needs_packages=False``: only the Python version counts (commands that read target
    files but import no model)."""
    if tuple(version[:2]) < COMPILER_PYTHON:
        return "Python {}.{} or newer (this is Python {})".format(
            *COMPILER_PYTHON, ".".join(str(v) for v in version))
    if needs_packages:
        absent = [m for m in COMPILER_MODULES if importlib.util.find_spec(m) is None]
        if absent:
            return f"the compiler's packages ({', '.join(absent)} not installed)"
    return None


def compiler_message(what: str, missing: str, needs_packages: bool = True) -> str:
    if not needs_packages:
        return (f"{what} needs {missing}; the device commands (edgekit run and bench on a bundle, flash, device) "
                "run on Python 3.8 and newer")
    return (f"{what} is part of edgekit's model compiler, which needs {missing}: on Python "
            "{}.{}+, {}. The device commands (edgekit run and bench on a bundle, flash of a package file, device) "
            "work without it".format(*COMPILER_PYTHON, INSTALL_HINT))


def require_compiler(what: str, needs_packages: bool = True) -> None:
    """Raise CompilerMissingError (exit code 2) naming what to install when the compiler
    cannot run here; ``what`` names the command, e.g. "edgekit compile"."""
    missing = missing_for_compiler(needs_packages=needs_packages)
    if missing is not None:
        raise CompilerMissingError(compiler_message(what, missing, needs_packages))
