#!/usr/bin/env bash
# Installs the Debian packages edgekit's tests and later stages use, and checks that
# what the tests actually use works (headers, C libraries, emulators), not only that
# a binary exists: `gcc-aarch64-linux-gnu` without its Recommends has no C headers.
#
# As root it runs apt-get; otherwise it prints the command to run.
# Exit status: 0 when everything works. When something is still missing it exits 1
# if EDGEKIT_REQUIRE_SYSTEM_DEPS=1 (CI) and 0 otherwise (tests that need the missing
# tool skip on a user's machine and say what to install).
set -u

# package -> what is checked for it (see check_* below)
packages=(
  gcc                       # host C compiler: runtime and kernel tests
  libc6-dev                 # host C headers
  gcc-arm-none-eabi         # Cortex-M cross compiler
  libnewlib-arm-none-eabi   # its C library (newlib, newlib-nano specs)
  qemu-system-arm           # the emulated Cortex-M boards
  qemu-user                 # runs aarch64 Linux binaries on the host
  gcc-aarch64-linux-gnu     # Cortex-A cross compiler
  libc6-dev-arm64-cross     # its C headers and libc: a Recommends, so named here
  mosquitto                 # MQTT broker for the sync tests
  postgresql                # initdb/pg_ctl: the hub tests start a throwaway PostgreSQL cluster
)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '#include <stdio.h>\n#include <stdint.h>\n#include <string.h>\nint main(void){puts("ok");return 0;}\n' > "$work/hello.c"

check() {  # name, command...: prints the name when the command fails
  local name=$1; shift
  "$@" >/dev/null 2>&1 || echo "$name"
}

failures() {
  check "gcc (host C compiler with libc headers)" gcc "$work/hello.c" -o "$work/host"
  check "arm-none-eabi-gcc with newlib-nano (Cortex-M builds)" \
    arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb --specs=nano.specs --specs=nosys.specs "$work/hello.c" -o "$work/m4.elf"
  check "qemu-system-arm with the mps2-an386 and mps3-an547 boards" \
    sh -c 'qemu-system-arm -M help | grep -q mps2-an386 && qemu-system-arm -M help | grep -q mps3-an547'
  check "aarch64-linux-gnu-gcc with the arm64 C headers and libc (libc6-dev-arm64-cross)" \
    aarch64-linux-gnu-gcc "$work/hello.c" -o "$work/a64"
  check "qemu-aarch64 running an aarch64 binary against /usr/aarch64-linux-gnu" \
    sh -c "qemu-aarch64 -L /usr/aarch64-linux-gnu '$work/a64' | grep -q ok"
  check "mosquitto broker" sh -c 'command -v mosquitto || test -x /usr/sbin/mosquitto'
  check "PostgreSQL server binaries (initdb, pg_ctl)" sh -c 'ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/pg_ctl'
}

missing=$(failures)
if [ -n "$missing" ]; then
  cmd="apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "edgekit: installing system packages (missing: $(echo "$missing" | paste -sd ';' -))"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
      || echo "edgekit: apt-get failed; run: $cmd" >&2
    missing=$(failures)
  else
    echo "edgekit: install the system packages with: sudo sh -c '$cmd'"
  fi
fi

if [ -n "$missing" ]; then
  echo "edgekit: these system tools do not work yet:" >&2
  echo "$missing" | sed 's/^/  - /' >&2
  if [ "${EDGEKIT_REQUIRE_SYSTEM_DEPS:-0}" = "1" ]; then
    echo "edgekit: EDGEKIT_REQUIRE_SYSTEM_DEPS=1: failing (CI must not hide a missing tool)" >&2
    exit 1
  fi
  echo "  (tests that need them skip until then)" >&2
fi
exit 0
