# shellcheck shell=bash
# Shared by scripts/lab (the SVM lab on the fork's TCG) and scripts/lab-vmx
# (the VMX lab on Bochs): Debian packages through the private apt
# configuration, kernels, and the module closure of an initramfs.  Nothing
# here is installed on the host: packages are unpacked with dpkg-deb -x.
#
# The sourcing script sets top (the repository), lab (the folder that
# holds downloads and unpacked kernels, build/lab), apt_dir and
# LAB_EXIT_FAILED; refresh=1 re-resolves cached package names.
#
# SPDX-License-Identifier: GPL-2.0-or-later

: "${top:?lab-common.sh: set top before sourcing it}"
: "${lab:?lab-common.sh: set lab before sourcing it}"
: "${apt_dir:?lab-common.sh: set apt_dir before sourcing it}"
: "${LAB_EXIT_FAILED:?lab-common.sh: set LAB_EXIT_FAILED before sourcing it}"

msg() { echo "lab: $*" >&2; }

# A failure of the lab (not of the command) exits LAB_EXIT_FAILED.
die() {
    msg "error: $*"
    exit "$LAB_EXIT_FAILED"
}

# --- run folders ----------------------------------------------------------

# new_run_dir RUNS: a fresh scratch folder under RUNS, in run_dir; only
# the newest 20 are kept.
new_run_dir() {
    local runs=$1 old
    mkdir -p "$runs"
    find "$runs" -mindepth 1 -maxdepth 1 -type d | sort | head -n -19 |
        while read -r old; do rm -rf "$old"; done
    run_dir=$(mktemp -d "$runs/$(date +%Y%m%d-%H%M%S)-XXXX")
    chmod 0755 "$run_dir"
}

# console_tail: the last lines of the L1 console on stderr (Bochs's
# serial console ends its lines with CR LF).
console_tail() {
    msg "last lines of the L1 console ($run_dir/console.log):"
    tail -n 30 "$run_dir/console.log" 2>/dev/null | tr -d '\r' |
        sed 's/^/  | /' >&2
}

# --- package download and unpacking -------------------------------------

# apt-private.sh writes build/apt/apt.conf and refreshes the package lists
# when they are missing; "apt-get --version" is a no-op that triggers that.
apt_ready() {
    "$top/scripts/apt-private.sh" "$apt_dir" --version > /dev/null
}

apt_cache() {
    apt-cache -c "$apt_dir/apt.conf" "$@"
}

# Newest image package name for a kernel series, from the private lists:
# Debian 12's 6.1 ABI (linux-image-6.1.0-N-amd64) and trixie's 6.12
# (linux-image-6.12.N+deb13-amd64).  The name is cached so that later runs
# work offline and stay on the same kernel until "fetch --refresh".
kernel_package() {
    local series=$1 cache=$lab/kernel-$1.package re name
    if [ -s "$cache" ] && [ "${refresh:-0}" = 0 ]; then
        cat "$cache"
        return
    fi
    case $series in
        6.1) re='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
        6.12) re='^linux-image-6\.12\.[0-9]+\+deb13-amd64$' ;;
        *) die "unknown kernel series '$series' (use 6.1 or 6.12)" ;;
    esac
    apt_ready
    name=$(apt_cache pkgnames linux-image-6. | grep -E "$re" | sort -V |
           tail -n 1 || true)
    [ -n "$name" ] || die "no $series kernel image in the private apt lists"
    mkdir -p "$lab"
    echo "$name" > "$cache"
    echo "$name"
}

# download PKG: the .deb for PKG in build/lab/dl (downloaded once).
download() {
    local pkg=$1 deb
    mkdir -p "$lab/dl"
    deb=$(find_deb "$pkg")
    if [ -z "$deb" ]; then
        apt_ready
        (cd "$lab/dl" && "$top/scripts/apt-private.sh" "$apt_dir" -q \
            download "$pkg" >&2) || die "cannot download $pkg"
        deb=$(find_deb "$pkg")
        [ -n "$deb" ] || die "downloaded $pkg but found no .deb"
    fi
    echo "$deb"
}

# find_deb PKG[/SUITE]: the newest downloaded .deb of PKG; firmware and
# boot loaders (bochsbios, isolinux) are architecture "all".
find_deb() {
    local name=${1%%/*}
    find "$lab/dl" -maxdepth 1 \( -name "${name}_*_amd64.deb" -o \
         -name "${name}_*_all.deb" \) | sort -V | tail -n 1
}

# unpack DEB DIR: dpkg-deb -x into DIR once; a stamp marks completion so an
# interrupted unpack is redone.
unpack() {
    local deb=$1 dir=$2
    if [ "$(cat "$dir/.unpacked" 2>/dev/null)" != "$(basename "$deb")" ]; then
        msg "unpacking $(basename "$deb")"
        rm -rf "$dir"
        mkdir -p "$dir"
        dpkg-deb -x "$deb" "$dir"
        basename "$deb" > "$dir/.unpacked"
    fi
}

# --- initramfs -----------------------------------------------------------

# module_dir KTREE: the lib/modules/<version> folder of an unpacked kernel.
module_dir() {
    local d
    d=$(find "$1/lib/modules" "$1/usr/lib/modules" \
            -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -n 1 || true)
    [ -n "$d" ] || die "no modules folder in $1"
    echo "$d"
}

# Module index of an unpacked kernel: "name path" lines, names with '_'.
module_index() {
    local moddir=$1
    find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz' -o -name '*.ko.zst' |
        while read -r path; do
            local base=${path##*/}
            base=${base%%.ko*}
            echo "${base//-/_} $path"
        done
}

# decompress PATH OUT: a loadable .ko (busybox insmod takes plain files).
decompress() {
    case $1 in
        *.ko.xz) xz -dc "$1" > "$2" ;;
        *.ko.zst) zstd -qdc "$1" > "$2" ;;
        *) cp "$1" "$2" ;;
    esac
}

# depends_of KO: its .modinfo "depends=" list, comma-separated names.
depends_of() {
    local sect
    sect=$(mktemp)
    objcopy -O binary --only-section=.modinfo "$1" "$sect"
    tr '\0' '\n' < "$sect" | sed -n 's/^depends=//p'
    rm -f "$sect"
}

# Fill load_order (names, dependencies first) for want_modules, depth
# first over .modinfo depends=.  Built-in modules are skipped.
declare -A mod_path mod_done
load_order=()
resolve() {
    local name=${1//-/_} ko deps dep
    [ -z "${mod_done[$name]:-}" ] || return 0
    mod_done[$name]=1
    if [ -z "${mod_path[$name]:-}" ]; then
        grep -qE "/${name//_/[-_]}\.ko\$" "$moddir/modules.builtin" ||
            die "module $name is neither a file nor built in"
        return 0
    fi
    ko=$stage/lib/modules/$name.ko
    decompress "${mod_path[$name]}" "$ko"
    deps=$(depends_of "$ko")
    for dep in ${deps//,/ }; do
        resolve "$dep"
    done
    load_order+=("$name")
}

# write_cpio STAGE OUT [gzip|none]: the folder as a newc archive.  The host
# has no cpio: busybox's own writes it (busybox-static unpacked in
# $lab/busybox), and -R 0:0 makes every file root's, whoever builds it.
write_cpio() {
    local stage=$1 out=$2 comp=${3:-gzip}
    (cd "$stage" && find . | LC_ALL=C sort |
        "$lab/busybox/usr/bin/busybox" cpio -o -H newc -R 0:0 2>/dev/null) |
        if [ "$comp" = gzip ]; then gzip -6; else cat; fi > "$out.tmp"
    mv "$out.tmp" "$out"
}
