#!/usr/bin/env bash
# Prepares what running a TVM bundle for an aarch64 target under qemu-aarch64 needs
# (hwtests/test_tvm_aarch64.py): a Debian 12 arm64 Python 3.11 (the Raspberry Pi OS
# Bookworm one) unpacked into DEST/root, and the aarch64 wheels of numpy and TVM's runtime
# at the versions of requirements.lock unpacked into DEST/site. Nothing is installed into
# the system: the packages are downloaded and unpacked. Needs root once, to let apt fetch
# arm64 packages (dpkg --add-architecture arm64; apt-get update), and network access.
#
#   sudo scripts/aarch64_tvm_sysroot.sh /opt/edgekit-aarch64
#   EDGEKIT_AARCH64_TVM_SYSROOT=/opt/edgekit-aarch64 .venv/bin/python -m pytest hwtests/test_tvm_aarch64.py
set -euo pipefail
dest=${1:?usage: $0 DEST}
repo=$(cd "$(dirname "$0")/.." && pwd)
pip=${PIP:-$repo/.venv/bin/pip}
pin() { grep -i "^$1==" "$repo/requirements.lock" | head -1 | cut -d' ' -f1; }

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  dpkg --add-architecture arm64
  apt-get update -qq
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq \
  python3.11-minimal:arm64 libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 \
  libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 libexpat1:arm64 zlib1g:arm64 libffi8:arm64 \
  libssl3:arm64 libbz2-1.0:arm64 liblzma5:arm64 libsqlite3-0:arm64 libuuid1:arm64 \
  libncursesw6:arm64 libtinfo6:arm64 libreadline8:arm64 libcrypt1:arm64)
rm -rf "$dest/root" "$dest/site"
mkdir -p "$dest/root" "$dest/site"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$dest/root"; done

"$pip" download -q --no-deps --only-binary=:all: --python-version 3.11 -d "$work/wheels" \
  --platform manylinux_2_28_aarch64 --platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 \
  "$(pin numpy)" "$(pin ml_dtypes)" "$(pin typing_extensions)" "$(pin apache-tvm)" "$(pin apache-tvm-ffi)"
for whl in "$work"/wheels/*.whl; do python3 -m zipfile -e "$whl" "$dest/site"; done
qemu-aarch64 -L "$dest/root" "$dest/root/usr/bin/python3.11" -c 'import sys; print("arm64 Python", sys.version.split()[0])'
echo "ready: EDGEKIT_AARCH64_TVM_SYSROOT=$dest"
