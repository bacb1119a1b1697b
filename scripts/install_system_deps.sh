#!/usr/bin/env bash
# Installs the Debian packages edgekit's later stages use, when they are missing.
# As root it runs apt-get; otherwise it prints the command to run. Never fails the
# build: tests that need a missing tool skip and say what to install.
set -u
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have arm-none-eabi-gcc || need+=(gcc-arm-none-eabi)
[ -e /usr/lib/arm-none-eabi/newlib/libc.a ] || [ -d /usr/lib/arm-none-eabi/newlib ] || need+=(libnewlib-arm-none-eabi)
have qemu-system-arm || need+=(qemu-system-arm)
have qemu-aarch64 || need+=(qemu-user)
have aarch64-linux-gnu-gcc || need+=(gcc-aarch64-linux-gnu)
have mosquitto || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
have gcc || need+=(gcc)
[ ${#need[@]} -eq 0 ] && exit 0
cmd="apt-get update && apt-get install -y --no-install-recommends ${need[*]}"
if [ "$(id -u)" = "0" ] && have apt-get; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! (apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null); then
    echo "warning: apt-get failed; tests that need these tools will skip. Run: $cmd" >&2
  fi
else
  echo "edgekit: missing system packages: ${need[*]}"
  echo "  install them with: sudo sh -c '$cmd'"
  echo "  (tests that need them skip until then)"
fi
exit 0
