#!/bin/bash
# Obtain what the fork's build needs from Debian, without touching the
# system's apt configuration:
#   source  pristine QEMU 10.0.13 (the orig tarball of Debian's qemu
#           1:10.0.13+ds-0+deb13u1), verified against its pinned SHA-256
#   tools   meson >= 1.5 and pycotap, unpacked into build/tools
#   firmware SeaBIOS, unpacked into build/tools
#
# Usage: scripts/fetch-upstream.sh [source|tools|all]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${NKVM_BUILD:-$top/build}
dl=$build/dl
apt=$build/apt

QEMU_DEB_VERSION=1:10.0.13+ds-0+deb13u1
QEMU_ORIG=qemu_10.0.13+ds.orig.tar.xz
QEMU_ORIG_SHA256=6a0888e806c2ffc0c5f0733e974f9aea55491950d3c47c98669c8b236dde59ae
TOOL_DEBS="meson/bookworm-backports python3-pycotap/bookworm-backports seabios/bookworm"

log() { echo "fetch: $*" >&2; }

private_apt() {
    "$top/scripts/apt-private.sh" "$apt" -q "$@"
}

verify_orig() {
    echo "$QEMU_ORIG_SHA256  $dl/$QEMU_ORIG" | sha256sum --quiet -c - 2>/dev/null
}

fetch_source() {
    mkdir -p "$dl"
    if [ -f "$dl/$QEMU_ORIG" ] && verify_orig; then
        log "$QEMU_ORIG present and verified"
        return
    fi
    log "downloading Debian source package qemu=$QEMU_DEB_VERSION"
    rm -f "$dl/$QEMU_ORIG"
    (cd "$dl" && private_apt source --download-only "qemu=$QEMU_DEB_VERSION" >&2)
    if ! verify_orig; then
        log "SHA-256 mismatch for $QEMU_ORIG (want $QEMU_ORIG_SHA256)"
        exit 1
    fi
    log "$QEMU_ORIG verified"
}

fetch_tools() {
    local stamp=$build/tools/.stamp
    if [ -f "$stamp" ]; then
        return
    fi
    mkdir -p "$dl/tools" "$build/tools"
    log "downloading $TOOL_DEBS"
    # shellcheck disable=SC2086
    (cd "$dl/tools" && private_apt download $TOOL_DEBS >&2)
    for deb in "$dl"/tools/*.deb; do
        dpkg-deb -x "$deb" "$build/tools"
    done
    touch "$stamp"
}

case "${1:-all}" in
source) fetch_source ;;
tools) fetch_tools ;;
all) fetch_source; fetch_tools ;;
*) echo "usage: $0 [source|tools|all]" >&2; exit 2 ;;
esac
