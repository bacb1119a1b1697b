"""Model bundles for devices: the model package the model-slot firmware runs
(docs/model-package.md). ``micro_package_reader`` reads and checks one (standard library
only: what the device side and ``edgekit flash`` use); ``micro_package_writer`` packs a
graph into one through the C backend, and is imported only when ``pack_model`` is asked
for, so reading a package never loads the compiler."""

from __future__ import annotations

from edgekit.bundle.micro_package_reader import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    PackageHeader,
    TensorInfo,
    body_hash,
    read_package_header,
    verify_package,
)

__all__ = ["FORMAT_MAJOR", "FORMAT_MINOR", "PackageHeader", "TensorInfo", "body_hash", "pack_model",
           "read_package_header", "verify_package"]


def __getattr__(name: str):
    if name == "pack_model":
        from edgekit.bundle.micro_package_writer import pack_model
        return pack_model
    raise AttributeError(f"module 'edgekit.bundle' has no attribute {name!r}")
