#!/bin/bash
# Obtain what the fork's build needs from Debian, without touching the
# system's apt configuration:
#   source  pristine QEMU 10.0.13 (the orig tarball of Debian's qemu
#           1:10.0.13+ds-0+deb13u1), verified against its pinned SHA-256
#   tools   meson >= 1.5 and pycotap, unpacked into build/tools
#   firmware SeaBIOS, unpacked into build/tools
#   libvirt Debian 12's libvirt 9.0 daemon, QEMU driver and virsh, and
#           whichever of their libraries this host lacks, unpacked into
#           build/libvirt-root for the lab's libvirt test (never
#           installed: tests/lab/in-l1-libvirt.sh overlays it in L1)
#
# Usage: scripts/fetch-upstream.sh [source|tools|libvirt|all]
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${NKVM_BUILD:-$top/build}
dl=$build/dl
apt=$build/apt

QEMU_DEB_VERSION=1:10.0.13+ds-0+deb13u1
QEMU_ORIG=qemu_10.0.13+ds.orig.tar.xz
QEMU_ORIG_SHA256=6a0888e806c2ffc0c5f0733e974f9aea55491950d3c47c98669c8b236dde59ae
TOOL_DEBS="meson/bookworm-backports python3-pycotap/bookworm-backports seabios/bookworm"
LIBVIRT_VERSION=9.0.0-4+deb12u2
LIBVIRT_DEBS="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients"

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

# The packages that installing LIBVIRT_DEBS from bookworm would add to
# this host, as name=version, and libvirt-daemon-system alone, for its
# configuration files (its own dependencies are systemd's and the
# firewall's, which the lab does not use).
libvirt_packages() {
    local p pkgs=()
    for p in $LIBVIRT_DEBS; do
        pkgs+=("$p=$LIBVIRT_VERSION")
    done
    private_apt -s install --no-install-recommends -t bookworm "${pkgs[@]}" |
        awk '$1 == "Inst" && $3 ~ /^\(/ { print $2 "=" substr($3, 2) }'
    echo "libvirt-daemon-system=$LIBVIRT_VERSION"
}

fetch_libvirt() {
    local root=$build/libvirt-root stamp=$build/libvirt-root/.stamp
    local missing
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$LIBVIRT_VERSION" ]; then
        return
    fi
    rm -rf "$root" "$dl/libvirt"
    mkdir -p "$dl/libvirt" "$root"
    log "downloading libvirt $LIBVIRT_VERSION and the libraries it needs"
    # shellcheck disable=SC2046
    (cd "$dl/libvirt" && private_apt download $(libvirt_packages) >&2)
    for deb in "$dl"/libvirt/*.deb; do
        dpkg-deb -x "$deb" "$root"
    done
    # Debian 12's / has /lib -> usr/lib (and bin, sbin): a real lib/ in
    # an overlay's upper layer would hide the host's, C library and all.
    for d in bin sbin lib lib64; do
        if [ -d "$root/$d" ] && [ ! -L "$root/$d" ]; then
            mkdir -p "$root/usr/$d"
            cp -a "$root/$d/." "$root/usr/$d/"
            rm -rf "${root:?}/$d"
        fi
    done
    missing=$(LD_LIBRARY_PATH=$root/usr/lib/x86_64-linux-gnu \
        ldd "$root/usr/sbin/libvirtd" "$root/usr/bin/virsh" \
            "$root"/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so |
        grep 'not found' | sort -u || true)
    if [ -n "$missing" ]; then
        log "libvirt in $root lacks libraries: $missing"
        exit 1
    fi
    echo "$LIBVIRT_VERSION" > "$stamp"
}

case "${1:-all}" in
source) fetch_source ;;
tools) fetch_tools ;;
libvirt) fetch_libvirt ;;
all) fetch_source; fetch_tools ;;
*) echo "usage: $0 [source|tools|libvirt|all]" >&2; exit 2 ;;
esac
