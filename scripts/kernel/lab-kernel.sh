# shellcheck shell=bash
# The lab's 6.12 kernel as scripts/lab fetch left it, for the scripts that
# build against its source (build-kvm.sh, tests/lab/run-kvm-selftest.sh).
#
# SPDX-License-Identifier: GPL-2.0-or-later

# lab_kernel_version BUILD: sets image_pkg (linux-image-6.12.N+debNN-amd64)
# and version (its Debian version, 6.12.N-M) from what scripts/lab fetch
# unpacked into BUILD/lab; returns 1 if nothing or something else is there.
lab_kernel_version() {
    local image_deb
    image_pkg=$(cat "$1/lab/kernel-6.12.package" 2>/dev/null || true)
    image_deb=$(cat "$1/lab/kernel-6.12/.unpacked" 2>/dev/null || true)
    [ -n "$image_pkg" ] || return 1
    case $image_deb in
        "${image_pkg}_"*_amd64.deb)
            version=${image_deb#"${image_pkg}_"}
            version=${version%_amd64.deb} ;;
        *) return 1 ;;
    esac
}
