"""The engine interface of the runtime: what every engine that runs a bundle's payload
implements, and how the runtime finds one.

An engine is one module here, named as the bundle manifest's ``engine`` field names it
(``litert.py`` runs ``"engine": "litert"``), holding a subclass of ``Engine`` bound to
the module-level name ``ENGINE``. Adding an engine adds one file and touches no other:
``load_engine`` imports the module by name. Python 3.8 syntax (docs/runtime.md).
"""

from __future__ import annotations

import abc
import importlib
import pkgutil
import re

from edgekit.errors import BadInputError, EdgekitError


class EngineUnavailableError(EdgekitError):
    """The engine's library is not installed on this machine, or the device it runs the
    model on does not answer (exit code 1: the bundle is fine, the device lacks a package
    or a board)."""


class Engine(abc.ABC):
    """One opened model. ``open`` gets the bundle (``edgekit.bundle.bundle_reader.Bundle``,
    already verified) and the caller's options; ``run`` takes and returns lists of numpy
    arrays in the manifest's input/output order, already checked for dtype and shape."""

    name = ""
    # True when the engine as opened computes int8 with TFLM's integer semantics (the
    # reference interpreter's), so golden outputs hold to the manifest's ``int_steps``;
    # other paths get ``int_steps_other`` (docs/bundle-format.md).
    tflm_exact = False
    # Options ``open`` accepts; others are refused with the list of these.
    options = ()

    def __init__(self, bundle, options: dict):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise BadInputError(f"engine {self.name!r}: unknown engine option(s) {', '.join(unknown)}; "
                                f"it takes {', '.join(self.options) or 'none'}")
        self.bundle = bundle
        self.engine_options = dict(options)

    @abc.abstractmethod
    def run(self, inputs: list) -> list:
        """The outputs for one set of inputs."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the engine's native resources (idempotent)."""

    def describe(self) -> str:
        """The library and version that runs the model, e.g. 'ai_edge_litert 2.3.0 (XNNPACK)'."""
        return self.name

    def healthy(self) -> bool:
        """Whether the engine can run the model now. True unless the engine depends on
        something that can go away (the serial engine's board), which it then asks cheaply."""
        return True


def check_io(bundle, kind: str, found: list) -> None:
    """Refuse a bundle whose model file's inputs or outputs (``found``: (shape, dtype
    name) per tensor, in order) are not what its manifest says."""
    from edgekit.bundle.bundle_format import BundleError

    specs = bundle.manifest[kind]
    want = [(tuple(s["shape"]), s["dtype"]) for s in specs]
    got = [(tuple(d if d is None or isinstance(d, str) else int(d) for d in shape), str(dtype))
           for shape, dtype in found]
    if want != got:
        raise BundleError(f"bundle {bundle.path}: the model file's {kind} {got} are not the {want} "
                          "manifest.json declares")


_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def engine_names() -> list:
    """The engines this edgekit has (one module each), installed or not."""
    import edgekit.runtime.engines as pkg

    return sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.name.startswith("_"))


def load_engine(name: str):
    """The ``Engine`` subclass of engine ``name``."""
    if not _NAME.match(name or "") or name not in engine_names():
        raise BadInputError(f"the bundle needs engine {name!r}, which this edgekit does not have "
                            f"(it has {', '.join(engine_names())})")
    module = importlib.import_module(f"edgekit.runtime.engines.{name}")
    return module.ENGINE
