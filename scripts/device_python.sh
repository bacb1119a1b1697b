#!/usr/bin/env bash
# An old device image's Python, for real: Debian 11 (bullseye: Python 3.9.2, glibc 2.31, the
# userland of Raspberry Pi OS Bullseye) in a folder, with a venv holding edgekit's base install
# and the runtime-onnxruntime and runtime-tflite extras from PyPI (onnxruntime 1.19.2,
# tflite-runtime 2.13.0, numpy 1.x). Prints the path of a launcher that runs that venv's Python
# inside the root, with the caller's working folder, /tmp, $TMPDIR and $PYTHONPATH folders
# visible at the same paths; tests/runtime/test_device_python.py runs it as $EDGEKIT_DEVICE_PYTHON:
#
#   EDGEKIT_DEVICE_PYTHON=$(scripts/device_python.sh) pytest tests/runtime/test_device_python.py
#
# The root is built once (debootstrap, about 2 minutes) into the cache folder and reused; the
# venv is rebuilt when pyproject.toml or this script changes. Needs root (debootstrap, chroot,
# a private mount namespace), network access to a Debian mirror and PyPI, and installs
# debootstrap with apt-get when it is missing.
#   usage: scripts/device_python.sh [CACHE_DIR]   (default ~/.cache/edgekit/device-python-bullseye)
#   DEBIAN_MIRROR=http://... to use another mirror (default: deb.debian.org, which serves bullseye)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/edgekit/device-python-bullseye}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
suite=bullseye
venv=/opt/edgekit-venv   # inside the root
# tflite-runtime 2.13.0 is what aarch64 Bullseye boards get (the last aarch64 wheels for 3.9);
# onnxruntime is left to pip, which must pick 1.19.2 (the last for 3.9) from the extra alone.
pins="tflite-runtime==2.13.0"

say() { echo "device_python: $*" >&2; }
die() { say "$*"; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot); run it as root, e.g. sudo $0"
command -v unshare >/dev/null && command -v chroot >/dev/null || die "needs unshare and chroot (util-linux, coreutils)"
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  apt-get install -y --no-install-recommends debootstrap >&2 \
    || { apt-get update >&2 && apt-get install -y --no-install-recommends debootstrap >&2; } \
    || die "could not install debootstrap with apt-get"
fi

mkdir -p "$cache"
root=$cache/root
start=$SECONDS
if [ ! -f "$cache/root.done" ]; then
  say "debootstrap $suite from $mirror into $root"
  rm -rf "$root"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$root" "$mirror" >"$cache/debootstrap.log" 2>&1 \
    || die "debootstrap $suite from $mirror failed; the last lines of $cache/debootstrap.log:
$(tail -5 "$cache/debootstrap.log")"
  touch "$cache/root.done"
  say "root built in $((SECONDS - start)) s"
fi

# The venv depends on edgekit's packaging metadata, the pins and this script.
key=$(cat "$repo/pyproject.toml" "$0" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$cache/venv.key" 2>/dev/null)" != "$key" ]; then
  t0=$SECONDS
  say "building the wheel of this checkout"
  wheels=$(mktemp -d)
  trap 'rm -rf "$wheels"' EXIT
  python=$repo/.venv/bin/python
  [ -x "$python" ] || python=python3
  "$python" -m pip wheel --quiet --no-deps --no-build-isolation -w "$wheels" "$repo" >"$cache/wheel.log" 2>&1 \
    || die "building the wheel failed: $cache/wheel.log"
  wheel=$(basename "$wheels"/edgekit-*.whl)
  rm -f "$cache/venv.key"
  rm -rf "$root$venv" "$root/tmp/edgekit-wheel"
  mkdir -p "$root/tmp/edgekit-wheel"
  cp "$wheels/$wheel" "$root/tmp/edgekit-wheel/"
  echo "$pins" >"$root/tmp/edgekit-wheel/pins.txt"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # The host's CA certificates: a mirror or TLS-inspecting proxy the host trusts is trusted too.
  cp "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" "$root/etc/ssl/host-ca.pem"
  say "installing $wheel[runtime-onnxruntime,runtime-tflite] into a Python 3.9 venv from PyPI"
  # A clean environment: the host's pip settings (find-links, certificates, local indexes)
  # name paths that do not exist in the root. An index or proxy of the caller's is kept.
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 PIP_CERT=/etc/ssl/host-ca.pem \
    ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} ${https_proxy:+https_proxy=$https_proxy} \
    ${http_proxy:+http_proxy=$http_proxy} ${no_proxy:+no_proxy=$no_proxy} \
    chroot "$root" /bin/sh -euc "
      python3 -m venv $venv
      $venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir \
        --constraint /tmp/edgekit-wheel/pins.txt '/tmp/edgekit-wheel/$wheel[runtime-onnxruntime,runtime-tflite]'
      rm -rf /tmp/edgekit-wheel
      $venv/bin/python -m pip list --disable-pip-version-check --format=freeze > $venv/versions.txt" >&2 \
    || die "installing edgekit into the bullseye venv failed (above)"
  echo "$key" >"$cache/venv.key"
  say "venv built in $((SECONDS - t0)) s: $(grep -E '^(numpy|onnxruntime|tflite-runtime)==' "$root$venv/versions.txt" | tr '\n' ' ')"
fi

launcher=$cache/python3.9
cat >"$launcher.new" <<EOF
#!/bin/sh
# Python 3.9 of Debian 11 (bullseye) with edgekit's runtime extras, run inside $root
# (written by scripts/device_python.sh). In a private mount namespace, the working folder,
# /tmp, \$TMPDIR and the \$PYTHONPATH folders appear inside the root at the same paths.
root='$root'
if [ -z "\${EDGEKIT_DEVICE_ROOT_ENTERED:-}" ]; then
  EDGEKIT_DEVICE_ROOT_ENTERED=1 exec unshare --mount --propagation private "\$0" "\$@"
fi
unset EDGEKIT_DEVICE_ROOT_ENTERED
here=\$(pwd)
old_ifs=\$IFS; IFS=:
for dir in /proc /sys /dev /tmp "\${TMPDIR:-}" "\$here" \${PYTHONPATH:-}; do
  [ -d "\$dir" ] && [ "\$dir" != / ] || continue
  mkdir -p "\$root\$dir"
  mount --rbind "\$dir" "\$root\$dir"
done
IFS=\$old_ifs
exec chroot "\$root" /bin/sh -c 'cd "\$0" && exec $venv/bin/python "\$@"' "\$here" "\$@"
EOF
chmod +x "$launcher.new"
mv "$launcher.new" "$launcher"
"$launcher" -c "import sys; assert sys.version_info[:2] == (3, 9), sys.version" \
  || die "the launcher $launcher does not run (mount namespaces need root with CAP_SYS_ADMIN)"
say "ready in $((SECONDS - start)) s"
echo "$launcher"
