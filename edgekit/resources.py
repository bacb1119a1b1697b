"""Where the non-Python files edgekit's commands read are: the built-in target files, the
C kernel library and the firmware sources.

In the repository they are the top-level folders ``targets/``, ``runtimes/`` and
``firmware/``. A wheel or sdist carries them inside the package as
``edgekit/_bundled/<folder>`` (mapped there by ``[tool.setuptools]`` in pyproject.toml),
so an installed edgekit needs no checkout. Both places are found from the ``edgekit``
package itself (importlib.resources): an installed copy has ``_bundled/``; a source
checkout or an editable install (``pip install -e``), whose package is the checkout's
``edgekit/``, has the folders beside it.

    from edgekit import resources
    resources.targets_dir() / "cortex-m4.toml"
    resources.micro_runtime_dir() / "kernels.json"
    resources.firmware_dir() / "boards" / "mps2-an386" / "link.ld"
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from edgekit.errors import EdgekitError

__all__ = ["ResourceMissingError", "firmware_dir", "micro_runtime_dir", "runtimes_dir", "targets_dir"]

BUNDLE = "_bundled"


class ResourceMissingError(EdgekitError):
    """edgekit's installation lacks one of its resource folders (a broken install)."""


def _package_dir() -> Path:
    package = files("edgekit")
    # The C compilers and the firmware build read these files by path: edgekit must be
    # installed as plain files (pip always does), not imported from a zip archive.
    if not isinstance(package, Path):
        raise ResourceMissingError(f"edgekit is imported from {package}, not from a folder; "
                                   "install it with pip")
    return package


def _folder(name: str) -> Path:
    package = _package_dir()
    bundled = package / BUNDLE / name   # wheel or sdist install
    if bundled.is_dir():
        return bundled
    checkout = package.parent / name    # source checkout or editable install
    if checkout.is_dir():
        return checkout
    raise ResourceMissingError(f"edgekit's {name}/ folder is missing (looked in {bundled} and {checkout}); "
                               "reinstall edgekit")


def targets_dir() -> Path:
    """The built-in target files (``<name>.toml``)."""
    return _folder("targets")


def runtimes_dir() -> Path:
    """The device runtimes' sources (``micro/``: the C kernel library for MCUs)."""
    return _folder("runtimes")


def micro_runtime_dir() -> Path:
    """The C kernel library for MCUs: ``kernels.json``, ``include/``, ``src/``."""
    return runtimes_dir() / "micro"


def firmware_dir() -> Path:
    """The board firmware sources: ``app/``, ``boards/<board>/`` (with linker scripts), ``common/``."""
    return _folder("firmware")
