"""Model bundles for devices. ``micro_package``: the model package the model-slot
firmware runs (docs/model-package.md)."""

from __future__ import annotations

from edgekit.bundle.micro_package import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    PackageHeader,
    TensorInfo,
    pack_model,
    read_package_header,
    verify_package,
)

__all__ = ["FORMAT_MAJOR", "FORMAT_MINOR", "PackageHeader", "TensorInfo", "pack_model",
           "read_package_header", "verify_package"]
