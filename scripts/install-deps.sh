#!/bin/bash
# Install the Debian 12 packages that `make check` and `make demo` need.
# Only missing packages are installed; the system's apt sources are used
# as they are (QEMU itself and newer meson come through the private
# configuration in scripts/apt-private.sh, not from here).
set -euo pipefail

PKGS=(
    build-essential ninja-build pkg-config patch xz-utils perl
    python3 python3-venv
    libglib2.0-dev     # QEMU and our unit tests
    lib32gcc-12-dev    # configure's -m32 check and the x86 option ROMs
    clang libclang-rt-14-dev   # libFuzzer, ASan and UBSan
    iproute2           # network namespaces as test hosts
    strace             # exact system-call counts (tests/lab/test_syscalls.py)
    ccache             # stock's build reuses the fork's objects
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
        grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
