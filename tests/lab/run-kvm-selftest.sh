#!/bin/bash
# Build a KVM selftest from the lab kernel's own source with the patch
# series scripts/kernel/*.patch applied, and run it in the lab.
#
#   tests/lab/run-kvm-selftest.sh [--test NAME] [--build-only] [--log FILE]
#                                 [LAB_RUN_OPTION...]
#
# NAME is a selftest under tools/testing/selftests/kvm/x86_64/ (default
# svm_nested_reinject_state_test, which the series adds: it saves and
# restores a vCPU while KVM re-injects an event L1 injected into L2).
# LAB_RUN_OPTIONs go to "scripts/lab run" unchanged (--kernel 6.12,
# --timeout 600, ...); the test runs on L1's /dev/kvm and its TAP output
# is printed, and with --log also written to FILE.  The exit status is
# the test's (scripts/lab's for a lab failure).  --build-only prints the
# binary's path instead.
#
# The source is Debian's linux-source package of the lab's 6.12 kernel
# (build/lab/kernel-6.12.package, written by "scripts/lab fetch --kernel
# 6.12"), fetched with scripts/apt-private.sh into build/kernel/dl if it
# is not there yet.  Only what the selftests and "make headers" need is
# unpacked, with every file the series changes, into
# build/kvm-selftest/src-<version>; the series is applied with patch(1)
# to a copy of it, the uAPI headers are installed there ("make headers")
# and the test is built with the host's compiler into
# build/kvm-selftest/<key>/, where the key is a digest of the version, the
# series and this script, so a rerun with nothing changed builds nothing.
# A test is userspace: it needs only the series' uAPI headers and
# selftest files, whatever KVM module the lab then loads.
#
# Environment: NKVM_BUILD (default build/), NKVM_KVM_PATCHES (the folder
# holding the series, default scripts/kernel), NKVM_JOBS (default 2).
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
self=$top/tests/lab/run-kvm-selftest.sh
build=${NKVM_BUILD:-$top/build}
out_dir=$build/kvm-selftest
series_dir=${NKVM_KVM_PATCHES:-$top/scripts/kernel}
jobs=${NKVM_JOBS:-2}
test_name=svm_nested_reinject_state_test
build_only=0
log=
lab_args=()

usage() {
    sed -n '5,6p' "$0" | sed 's/^# \{0,1\}/usage: /' >&2
    exit 2
}

msg() { echo "run-kvm-selftest: $*" >&2; }
die() { echo "run-kvm-selftest: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --test) test_name=${2:?}; shift 2 ;;
        --build-only) build_only=1; shift ;;
        --log) log=${2:?}; shift 2 ;;
        --help|-h) usage ;;
        --) usage ;;
        *) lab_args+=("$1"); shift ;;
    esac
done
[[ $test_name =~ ^[a-z0-9_]+$ ]] || die "--test takes a selftest's name"
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "NKVM_JOBS must be a number"

# --- the source ----------------------------------------------------------

# shellcheck source=scripts/kernel/lab-kernel.sh
. "$top/scripts/kernel/lab-kernel.sh"
lab_kernel_version "$build" ||
    die "no lab 6.12 kernel yet: run scripts/lab fetch --kernel 6.12"
src_pkg=linux-source-$(cut -d. -f1-2 <<< "$version")    # linux-source-6.12
deb=$build/kernel/dl/${src_pkg}_${version}_all.deb
src=$out_dir/src-$version

mapfile -t series < <(find "$series_dir" -maxdepth 1 -name '*.patch' |
                      LC_ALL=C sort)
[ ${#series[@]} -gt 0 ] || die "no patches in $series_dir"

# Files the series changes that exist before it: they are unpacked too,
# so that every patch of the series applies in full.
changed_files() {
    sed -n 's|^--- a/\([^[:space:]]*\).*|\1|p' "${series[@]}" | sort -u
}

unpack_source() {
    local tmp=$out_dir/src.tmp f members=()
    if [ ! -f "$deb" ]; then
        msg "fetching $src_pkg=$version"
        mkdir -p "$(dirname "$deb")"
        (cd "$(dirname "$deb")" &&
             "$top/scripts/apt-private.sh" "$build/apt" -q download \
                 "$src_pkg=$version" >&2) ||
            die "cannot download $src_pkg=$version"
    fi
    msg "unpacking $(basename "$deb") into $src"
    for f in Makefile scripts include arch/x86 tools usr; do
        members+=("$src_pkg/$f")
    done
    while read -r f; do
        case $f in
            scripts/*|include/*|arch/x86/*|tools/*|usr/*) ;;
            *) members+=("$src_pkg/$f") ;;
        esac
    done < <(changed_files)
    rm -rf "$tmp"
    mkdir -p "$tmp"
    dpkg-deb --fsys-tarfile "$deb" |
        tar -xO "./usr/src/$src_pkg.tar.xz" |
        tar -xJ -C "$tmp" --strip-components=1 "${members[@]}" ||
        die "cannot unpack $deb (does the series change a file it lacks?)"
    changed_files > "$tmp/.changed"
    rm -rf "$src"
    mv "$tmp" "$src"
}

if [ ! -f "$src/Makefile" ] || ! changed_files | cmp -s - "$src/.changed"; then
    unpack_source
fi

# --- the build -----------------------------------------------------------

key=$( { echo "$version $test_name"; cat "${series[@]}" "$self"; } |
       sha256sum | cut -c1-16)
dest=$out_dir/$key
bin=$dest/$test_name

if [ ! -x "$bin" ]; then
    tree=$dest/tree
    rm -rf "$dest"
    mkdir -p "$dest"
    msg "applying ${#series[@]} patches to a copy of $src"
    cp -a "$src" "$tree"
    for p in "${series[@]}"; do
        patch -d "$tree" -p1 --quiet --forward < "$p" ||
            die "$(basename "$p") does not apply"
    done
    [ -f "$tree/tools/testing/selftests/kvm/x86_64/$test_name.c" ] ||
        die "the series adds no selftest $test_name"
    msg "installing the uAPI headers (make headers)"
    make -s -C "$tree" -j"$jobs" headers >&2 ||
        die "make headers failed"
    msg "building $test_name"
    make -s -C "$tree/tools/testing/selftests/kvm" -j"$jobs" \
         OUTPUT="$dest/obj" "$dest/obj/x86_64/$test_name" >&2 ||
        die "the selftest does not build"
    cp "$dest/obj/x86_64/$test_name" "$bin.tmp"
    mv "$bin.tmp" "$bin"
    # Keep the binary only: the tree and objects are rebuilt on demand.
    rm -rf "$tree" "$dest/obj"
fi

if [ "$build_only" = 1 ]; then
    echo "$bin"
    exit 0
fi

# --- the run -------------------------------------------------------------

msg "running $bin in the lab"
status=0
if [ -n "$log" ]; then
    "$top/scripts/lab" run "${lab_args[@]}" -- "$bin" | tee "$log" ||
        status=$?
else
    "$top/scripts/lab" run "${lab_args[@]}" -- "$bin" || status=$?
fi
exit "$status"
