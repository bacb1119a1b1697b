"""Bundles, one format for every target (docs/bundle-format.md): ``bundle_reader`` reads
and verifies one (``verify``, ``read_bundle``; standard library only, what devices run),
``bundle_writer`` writes one, ``compile_bundle`` compiles a graph into one (compiler
side, imported only when asked for).

The model package the model-slot firmware runs
(docs/model-package.md), the payload of an MCU bundle. ``micro_package_reader`` reads and checks one (standard library
only: what the device side and ``edgekit flash`` use); ``micro_package_writer`` packs a
graph into one through the C backend, and is imported only when ``pack_model`` is asked
for, so reading a package never loads the compiler."""

from __future__ import annotations

from edgekit.bundle.bundle_format import FORMAT_VERSION, BundleError
from edgekit.bundle.bundle_reader import Bundle, is_bundle_path, read_bundle, verify
from edgekit.bundle.micro_package_reader import (
    FORMAT_MAJOR,
    FORMAT_MINOR,
    PackageHeader,
    TensorInfo,
    body_hash,
    read_package_header,
    verify_package,
)

__all__ = ["Bundle", "BundleError", "FORMAT_VERSION", "is_bundle_path", "read_bundle", "verify",
           "compile_bundle", "write_bundle",
           "FORMAT_MAJOR", "FORMAT_MINOR", "PackageHeader", "TensorInfo", "body_hash", "pack_model",
           "read_package_header", "verify_package"]


def __getattr__(name: str):
    if name == "pack_model":
        from edgekit.bundle.micro_package_writer import pack_model
        return pack_model
    if name == "write_bundle":
        from edgekit.bundle.bundle_writer import write_bundle
        return write_bundle
    if name == "compile_bundle":
        from edgekit.bundle.bundle_compiler import compile_bundle
        return compile_bundle
    raise AttributeError(f"module 'edgekit.bundle' has no attribute {name!r}")
