#!/bin/bash
# Inside L1 (scripts/lab run ... -- tests/lab/kvm-modules.sh): which KVM
# modules are loaded.  For kvm and kvm_amd it prints the taint, the build
# ID the kernel holds for the loaded module and the file on the host with
# that build ID: Debian's (build/lab/kernel-<series>) or one built by
# scripts/kernel/build-kvm.sh (build/kernel/kvm-<abi>/<key>), and then
# kvm_amd's nested and nrips.  Exit status 0 when every module was found,
# 1 otherwise.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build=${NKVM_BUILD:-$top/build}
rel=$(uname -r)

# loaded_id MODULE: the build ID of the loaded module, from its ELF note
# (12-byte header, "GNU\0", then the ID).
loaded_id() {
    od -An -tx1 -j16 "/sys/module/$1/notes/.note.gnu.build-id" 2>/dev/null |
        tr -d ' \n'
}

# file_id KO: the build ID of a module file (.ko or .ko.xz).
file_id() {
    local f=$1 tmp
    if [[ $f == *.xz ]]; then
        tmp=$(mktemp)
        xz -dc "$f" > "$tmp"
        readelf -n "$tmp" | sed -n 's/^ *Build ID: *//p' | head -n 1
        rm -f "$tmp"
    else
        readelf -n "$f" | sed -n 's/^ *Build ID: *//p' | head -n 1
    fi
}

rc=0
for m in kvm kvm_amd; do
    file=${m//_/-}
    id=$(loaded_id "$m")
    taint=$(cat "/sys/module/$m/taint" 2>/dev/null || echo "?")
    where="no module file on the host has this build ID"
    if [ -z "$id" ]; then
        where="not loaded"
        rc=1
    else
        found=""
        for f in "$build"/lab/kernel-*/usr/lib/modules/"$rel"/kernel/arch/x86/kvm/"$file".ko* \
                 "$build"/kernel/kvm-"$rel"/*/"$file".ko; do
            [ -f "$f" ] || continue
            if [ "$(file_id "$f")" = "$id" ]; then
                found=$f
                break
            fi
        done
        case $found in
            "") rc=1 ;;
            "$build"/lab/*) where="Debian's ${found#"$build"/}" ;;
            *) where="built by build-kvm.sh: ${found#"$build"/}" ;;
        esac
    fi
    echo "$m: taint '${taint}' build-id ${id:-none}: $where"
done
for p in nested nrips; do
    echo "kvm_amd $p=$(cat "/sys/module/kvm_amd/parameters/$p" 2>/dev/null || echo "?")"
done
exit "$rc"
