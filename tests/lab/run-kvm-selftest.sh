#!/bin/bash
# Build a KVM selftest from the lab kernel's own source with the patch
# series scripts/kernel/*.patch applied, and run it in the lab.
#
#   tests/lab/run-kvm-selftest.sh [--test NAME]... [--build-only] [--log FILE]
#                                 [LAB_RUN_OPTION...]
#
# NAME is a selftest under tools/testing/selftests/kvm/x86_64/ (default
# svm_nested_reinject_state_test, which the series adds: it saves and
# restores a vCPU while KVM re-injects an event L1 injected into L2);
# several --test build several in one tree (the VMX lab's nVMX tests).
# LAB_RUN_OPTIONs go to "scripts/lab run" unchanged (--kernel 6.12,
# --timeout 600, --vmx, ...); the tests run one after the other in one
# L1 on its /dev/kvm and their TAP output is printed, and with --log also
# written to FILE.  The exit status is the last failing test's (scripts/
# lab's for a lab failure).  --build-only prints the binaries' paths
# instead, one a line.
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
test_names=()
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
        --test) test_names+=("${2:?}"); shift 2 ;;
        --build-only) build_only=1; shift ;;
        --log) log=${2:?}; shift 2 ;;
        --help|-h) usage ;;
        --) usage ;;
        *) lab_args+=("$1"); shift ;;
    esac
done
[ ${#test_names[@]} -gt 0 ] || test_names=(svm_nested_reinject_state_test)
for t in "${test_names[@]}"; do
    [[ $t =~ ^[a-z0-9_]+$ ]] || die "--test takes a selftest's name, not '$t'"
done
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

key=$( { echo "$version ${test_names[*]}"; cat "${series[@]}" "$self"; } |
       sha256sum | cut -c1-16)
dest=$out_dir/$key
bins=("${test_names[@]/#/$dest/}")

if [ ! -x "${bins[-1]}" ]; then
    tree=$dest/tree
    rm -rf "$dest"
    mkdir -p "$dest"
    msg "applying ${#series[@]} patches to a copy of $src"
    cp -a "$src" "$tree"
    for p in "${series[@]}"; do
        patch -d "$tree" -p1 --quiet --forward < "$p" ||
            die "$(basename "$p") does not apply"
    done
    for t in "${test_names[@]}"; do
        [ -f "$tree/tools/testing/selftests/kvm/x86_64/$t.c" ] ||
            die "no selftest $t in the source or the series"
    done
    msg "installing the uAPI headers (make headers)"
    make -s -C "$tree" -j"$jobs" headers >&2 ||
        die "make headers failed"
    msg "building ${test_names[*]}"
    make -s -C "$tree/tools/testing/selftests/kvm" -j"$jobs" \
         OUTPUT="$dest/obj" "${test_names[@]/#/$dest/obj/x86_64/}" >&2 ||
        die "the selftests do not build"
    # The last binary is written last: its presence says all are built.
    for t in "${test_names[@]}"; do
        cp "$dest/obj/x86_64/$t" "$dest/$t.tmp"
        mv "$dest/$t.tmp" "$dest/$t"
    done
    # Keep the binary only: the tree and objects are rebuilt on demand.
    rm -rf "$tree" "$dest/obj"
fi

if [ "$build_only" = 1 ]; then
    printf '%s\n' "${bins[@]}"
    exit 0
fi

# --- the run -------------------------------------------------------------

msg "running ${test_names[*]} in the lab"
# One L1 runs them all; each binary is an argument, so the VMX lab, which
# ships the files its command names, takes them along.
# shellcheck disable=SC2016 # expanded in L1
each='rc=0; for b; do "$b" || rc=$?; done; exit $rc'
status=0
if [ -n "$log" ]; then
    "$top/scripts/lab" run "${lab_args[@]}" -- bash -c "$each" bash "${bins[@]}" |
        tee "$log" || status=$?
else
    "$top/scripts/lab" run "${lab_args[@]}" -- bash -c "$each" bash "${bins[@]}" ||
        status=$?
fi
exit "$status"
