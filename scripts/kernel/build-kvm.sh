#!/bin/bash
# Build the lab 6.12 kernel's KVM modules (kvm.ko, kvm-amd.ko,
# kvm-intel.ko) from Debian's own linux-source, with the patch series
# scripts/kernel/*.patch applied in order (none: stock modules, built from
# source).  See docs/lab.rst, "Patched KVM modules".
#
#   scripts/kernel/build-kvm.sh [--jobs N] [--force] [--quiet]
#
# The kernel is the lab's (build/lab/kernel-6.12.package, written by
# "scripts/lab fetch --kernel 6.12"), so the modules' vermagic and symbol
# versions match the L1 kernel exactly.  The build runs in a private
# trixie root unpacked from .debs (build/kernel/root-<abi>, entered with
# chroot; nothing is installed on the host) holding Debian's own compiler
# for that kernel (gcc-14, checked against the kernel's
# CONFIG_CC_VERSION_TEXT), and Debian's linux-headers and linux-kbuild
# packages of the same version.  The modules are built out of tree against
# those headers; headers the series changes are overlaid on a per-build
# copy of them.
#
# The result is cached under build/kernel/kvm-<abi>/<key>, where the key is
# a digest of the kernel version, the patch series (names and contents),
# the build root's package list and this script: a rebuild with nothing
# changed takes a second.  The last lines on stdout are the paths of the
# three .ko files; progress goes to stderr.
#
# Environment: NKVM_BUILD (default build/), NKVM_KVM_PATCHES (the folder
# holding the series, default scripts/kernel), NKVM_JOBS (default 2).
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
self=$top/scripts/kernel/build-kvm.sh
build=${NKVM_BUILD:-$top/build}
kdir=$build/kernel
apt_dir=$build/apt
series_dir=${NKVM_KVM_PATCHES:-$top/scripts/kernel}
jobs=${NKVM_JOBS:-2}
force=0
quiet=0
t0=$(date +%s)

usage() {
    sed -n '7p' "$0" | sed 's/^# \{0,1\}/usage: /' >&2
    exit 2
}

msg() { [ "$quiet" = 1 ] || echo "build-kvm: $* [$(( $(date +%s) - t0 )) s]" >&2; }
die() { echo "build-kvm: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case $1 in
        --jobs) jobs=${2:?}; shift 2 ;;
        --force) force=1; shift ;;
        --quiet) quiet=1; shift ;;
        *) usage ;;
    esac
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "--jobs takes a number"
[ "$(id -u)" = 0 ] || die "must run as root (the build enters its root with chroot)"

private_apt() {
    "$top/scripts/apt-private.sh" "$apt_dir" -q "$@"
}

# --- the kernel ----------------------------------------------------------

# The lab's 6.12 image package, its version and ABI name: the deb that
# scripts/lab unpacked names the version, so no apt lookup is needed.
# shellcheck source=scripts/kernel/lab-kernel.sh
. "$top/scripts/kernel/lab-kernel.sh"
lab_kernel_version "$build" ||
    die "no lab 6.12 kernel unpacked (${image_pkg:-none chosen}): run scripts/lab fetch --kernel 6.12"
abi=${image_pkg#linux-image-}                   # 6.12.117+deb13-amd64
base=${abi%-amd64}                              # 6.12.117+deb13
stock_kvm=$(find "$build/lab/kernel-6.12/usr/lib/modules/$abi" \
                 -path '*/arch/x86/kvm/kvm.ko*' | head -n 1)
[ -n "$stock_kvm" ] || die "no stock kvm.ko in build/lab/kernel-6.12"

# --- the build root ------------------------------------------------------

# What the build needs from trixie.  The headers package itself is fetched
# apart: it depends on the kernel image, which the root does not need.
root_wants=(gcc-14 make libc6-dev libc-bin binutils bash dash coreutils sed
            grep mawk findutils diffutils
            "linux-kbuild-$base=$version"
            "linux-headers-$base-common=$version")
root=$kdir/root-$abi

# root_packages: name=version of the closure of root_wants, resolved by
# apt's simulation against an empty package status (an empty system).
root_packages() {
    local empty
    empty=$(mktemp)
    private_apt -s -o "Dir::State::status=$empty" \
        -o APT::Install-Recommends=false -t trixie \
        install "${root_wants[@]}" |
        awk '$1 == "Inst" && $3 ~ /^\(/ { print $2 "=" substr($3, 2) }' |
        sort
    rm -f "$empty"
    echo "linux-headers-$abi=$version"
}

make_root() {
    local dl=$kdir/dl/root tmp=$kdir/root.tmp list deb n=0 total name ver
    msg "step 1/4: build root $root (trixie, from .debs)"
    list=$(root_packages) ||
        die "apt could not resolve the build root's packages"
    [ -n "$list" ] || die "apt resolved no packages for the build root"
    total=$(wc -l <<< "$list")
    mkdir -p "$dl"
    msg "downloading $total packages into $dl"
    # shellcheck disable=SC2046
    (cd "$dl" && private_apt download $(cat <<< "$list") >&2) ||
        die "cannot download the build root's packages"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # Trixie's packages put everything under /usr; the merged-/usr links
    # come first so that a package shipping /lib64/... lands in usr/.
    ln -s usr/bin "$tmp/bin"
    ln -s usr/sbin "$tmp/sbin"
    ln -s usr/lib "$tmp/lib"
    ln -s usr/lib64 "$tmp/lib64"
    mkdir -p "$tmp/usr/bin" "$tmp/usr/sbin" "$tmp/usr/lib" "$tmp/usr/lib64"
    while read -r p; do
        n=$(( n + 1 ))
        # apt writes an epoch's colon as %3a in the file name.
        name=${p%%=*}
        ver=${p#*=}
        ver=${ver//:/%3a}
        deb=$(find "$dl" -maxdepth 1 -name "${name}_${ver}_*.deb" | head -n 1)
        [ -n "$deb" ] || die "no .deb for $p in $dl"
        dpkg-deb -x "$deb" "$tmp"
        if [ $(( n % 10 )) = 0 ] || [ "$n" = "$total" ]; then
            msg "unpacked $n/$total packages"
        fi
    done <<< "$list"
    # Alternatives are set up by maintainer scripts, which dpkg-deb -x does
    # not run: kbuild needs awk.
    ln -s mawk "$tmp/usr/bin/awk"
    # No device nodes or /proc in the root: make and the compiler need
    # only /dev/null; /tmp for their temporary files.
    mkdir -p "$tmp/dev" "$tmp/tmp" "$tmp/build"
    chmod 1777 "$tmp/tmp"
    mknod -m 0666 "$tmp/dev/null" c 1 3
    chroot "$tmp" /usr/sbin/ldconfig ||
        die "the new build root cannot run its own programs"
    echo "$list" > "$tmp/.packages"
    rm -rf "$root"
    mv "$tmp" "$root"
}

# --- the source ----------------------------------------------------------

src=$kdir/src-$version
src_deb_name=linux-source-$(cut -d. -f1-2 <<< "$version")   # linux-source-6.12
# What the modules are built from; the rest of the tree is not unpacked.
src_parts=(arch/x86/kvm virt/kvm include arch/x86/include)

make_src() {
    local deb tmp=$kdir/src.tmp p members=()
    msg "step 2/4: pristine source $src"
    mkdir -p "$kdir/dl"
    deb=$kdir/dl/${src_deb_name}_${version}_all.deb
    if [ ! -f "$deb" ]; then
        (cd "$kdir/dl" && private_apt download "$src_deb_name=$version" >&2) ||
            die "cannot download $src_deb_name=$version"
    fi
    rm -rf "$tmp"
    mkdir -p "$tmp"
    for p in "${src_parts[@]}"; do
        members+=("$src_deb_name/$p")
    done
    dpkg-deb --fsys-tarfile "$deb" |
        tar -xO "./usr/src/$src_deb_name.tar.xz" |
        tar -xJ -C "$tmp" --strip-components=1 "${members[@]}" ||
        die "cannot unpack $deb"
    basename "$deb" > "$tmp/.unpacked"
    rm -rf "$src"
    mv "$tmp" "$src"
}

# --- the patch series ----------------------------------------------------

mapfile -t series < <(find "$series_dir" -maxdepth 1 -name '*.patch' | LC_ALL=C sort)

# touched: every path a patch of the series changes, once.
touched() {
    local p
    for p in "${series[@]}"; do
        sed -n 's|^diff --git a/\([^ ]*\) b/.*|\1|p' "$p"
    done | sort -u
}

# Paths a patch may change: the modules' sources and the headers they
# include.  Documentation and tools (selftests) are not part of the
# modules and are left out; anything else is built into the kernel
# image, which the lab does not replace.
check_paths() {
    local path bad=""
    while read -r path; do
        [ -n "$path" ] || continue
        case $path in
            arch/x86/kvm/*|virt/kvm/*|include/*|arch/x86/include/*) ;;
            Documentation/*|tools/*) ;;
            *) bad="$bad $path" ;;
        esac
    done < <(touched)
    [ -z "$bad" ] ||
        die "the series changes files outside the KVM modules (built into the kernel image, which the lab does not rebuild):$bad"
}

# --- the key -------------------------------------------------------------

mkdir -p "$kdir"
exec 8> "$kdir/.build-kvm.lock"
if ! flock -n 8; then
    msg "waiting for another build-kvm.sh to finish"
    flock -w 3600 8 || die "gave up waiting for $kdir/.build-kvm.lock"
fi
check_paths
[ -f "$root/.packages" ] || make_root
[ -f "$src/.unpacked" ] || make_src

key=$( {
    echo "kernel $image_pkg $version"
    cat "$root/.packages"
    sha256sum "$self" | cut -d' ' -f1
    for p in "${series[@]}"; do
        echo "patch $(basename "$p") $(sha256sum < "$p" | cut -d' ' -f1)"
    done; } | sha256sum | cut -c1-16)
out=$kdir/kvm-$abi/$key
modules=(kvm.ko kvm-amd.ko kvm-intel.ko)

print_result() {
    local m
    msg "modules (${#series[@]} patches, key $key):"
    for m in "${modules[@]}"; do
        echo "$out/$m"
    done
}

if [ "$force" = 0 ] && [ -f "$out/.done" ]; then
    msg "cached: $out"
    print_result
    exit 0
fi

# --- the build -----------------------------------------------------------

# modinfo KO FIELD: a field of the module's .modinfo (the host has no
# modinfo; objcopy reads the section).
modinfo() {
    local sect
    sect=$(mktemp)
    case $1 in
        *.xz) xz -dc "$1" > "$sect.ko" ;;
        *) cp "$1" "$sect.ko" ;;
    esac
    objcopy -O binary --only-section=.modinfo "$sect.ko" "$sect"
    tr '\0' '\n' < "$sect" | sed -n "s/^$2=//p"
    rm -f "$sect" "$sect.ko"
}

# build_id KO: the GNU build ID of an ELF file, in hex.
build_id() {
    readelf -n "$1" | sed -n 's/^ *Build ID: *//p' | head -n 1
}

work_rel=build/$key
work=$root/$work_rel
hdr_common=/usr/src/linux-headers-$base-common
hdr_arch=/usr/src/linux-headers-$abi
kbuild_dir=/usr/lib/linux-kbuild-$base

# The compiler must be the kernel's own: kbuild's check of it is turned
# off by Debian's headers (DEBIAN_KERNEL_NO_CC_VERSION_CHECK), so check here.
want_cc=$(sed -n 's/^CONFIG_CC_VERSION_TEXT="\(.*\)"$/\1/p' "$root$hdr_arch/.config")
have_cc=$(chroot "$root" /usr/bin/x86_64-linux-gnu-gcc-14 --version | head -n 1)
[ "$want_cc" = "$have_cc" ] ||
    die "compiler mismatch: the kernel was built with '$want_cc', the build root has '$have_cc'"

msg "step 3/4: sources for key $key (${#series[@]} patches from $series_dir)"
# A failed build's folder stays for its log until the next build.
find "$root/build" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
mkdir -p "$work/src/arch/x86" "$work/src/virt"
cp -a "$src/arch/x86/kvm" "$work/src/arch/x86/"
cp -a "$src/virt/kvm" "$work/src/virt/"
# Pristine copies of the headers the series changes, to patch.
hdrs=()
while read -r path; do
    case $path in
        include/*|arch/x86/include/*)
            hdrs+=("$path")
            if [ -f "$src/$path" ]; then
                mkdir -p "$work/src/$(dirname "$path")"
                cp -a "$src/$path" "$work/src/$path"
            fi ;;
    esac
done < <(touched)
for p in "${series[@]}"; do
    msg "applying $(basename "$p")"
    # GIT_CEILING_DIRECTORIES: never mistake the enclosing worktree for
    # the tree to patch.
    (cd "$work/src" && GIT_CEILING_DIRECTORIES=$work git apply \
        --exclude='Documentation/*' --exclude='tools/*' "$p") ||
        die "$(basename "$p") does not apply to $src_deb_name $version"
done

# The headers: a copy of Debian's (hard links, so it costs little) with
# the patched ones in place of the originals, and the flavour's folder
# pointing at that copy.  Links to the kbuild package become absolute.
cp -al "$root$hdr_common" "$work/hdr-common"
cp -al "$root$hdr_arch" "$work/hdr-arch"
for d in hdr-common hdr-arch; do
    for l in scripts tools; do
        rm -f "$work/$d/$l"
        ln -s "$kbuild_dir/$l" "$work/$d/$l"
    done
done
rm -f "$work/hdr-arch/Makefile"
echo "include /$work_rel/hdr-common/Makefile" > "$work/hdr-arch/Makefile"
for path in "${hdrs[@]}"; do
    rm -f "$work/hdr-common/$path"
    if [ -f "$work/src/$path" ]; then
        mkdir -p "$work/hdr-common/$(dirname "$path")"
        cp "$work/src/$path" "$work/hdr-common/$path"
    fi
done

# arch/x86/kvm/Makefile names its siblings through $(srctree), which is
# the headers here: point those at the copied sources instead.
kmk=$work/src/arch/x86/kvm/Makefile
# $(srctree) and $(src) are make's, not the shell's.
# shellcheck disable=SC2016
mk_include='include $(srctree)/virt/kvm/Makefile.kvm'
# shellcheck disable=SC2016
mk_flags='ccflags-y += -I $(srctree)/arch/x86/kvm'
if ! grep -qxF "$mk_include" "$kmk" || ! grep -qxF "$mk_flags" "$kmk"; then
    die "arch/x86/kvm/Makefile changed shape: update build-kvm.sh"
fi
# shellcheck disable=SC2016
sed -i -e 's|^include $(srctree)/virt/kvm/Makefile.kvm$|include $(src)/../../../virt/kvm/Makefile.kvm|' \
    -e 's|^ccflags-y += -I $(srctree)/arch/x86/kvm$|ccflags-y += -I $(src) -I $(src)/../../../include/trace|' \
    "$kmk"
# trace.h's TRACE_INCLUDE_PATH (../../arch/x86/kvm) is relative to
# include/trace/ of a kernel tree: this empty folder stands in for it.
mkdir -p "$work/src/include/trace"

# Objects to compile, for the progress count: every .o the two Makefiles
# name, the modules themselves left out (Debian's configuration builds
# them all).
total=$(cat "$kmk" "$work/src/virt/kvm/Makefile.kvm" |
        grep -o '[A-Za-z0-9_/().-]*\.o\b' |
        grep -vE '^kvm(-amd|-intel)?\.o$|^\(obj\)/|^[A-Z]+FLAGS_' |
        sort -u | wc -l)
# compiled: how many of those the log shows done so far.
compiled() {
    grep -E '^ +(CC|AS) \[M\] .*\.o$' "$log" |
        grep -cvE '\.mod\.o$|/\.module-common\.o$' || true
}

msg "step 4/4: compiling with $have_cc, make -j$jobs (log: $work/build.log)"
log=$work/build.log
: > "$log"
nice -n 10 chroot "$root" /usr/bin/env -i PATH=/usr/bin:/usr/sbin HOME=/tmp \
    LANG=C.UTF-8 TMPDIR=/tmp \
    make -C "/$work_rel/hdr-arch" M="/$work_rel/src/arch/x86/kvm" \
    -j"$jobs" CC=x86_64-linux-gnu-gcc-14 modules > "$log" 2>&1 &
make_pid=$!
trap 'kill "$make_pid" 2>/dev/null || true' INT TERM EXIT
last=-1
last_t=0
while kill -0 "$make_pid" 2>/dev/null; do
    n=$(compiled)
    if [ "$n" != "$last" ] && [ $(( $(date +%s) - last_t )) -ge 5 ]; then
        cur=$(grep -E '^ +(CC|AS|LD|BTF|MODPOST) ' "$log" | tail -n 1 |
              sed 's|/'"$work_rel"'/src/||; s/^ *//' || true)
        msg "compiled $n/$total${cur:+ ($cur)}"
        last=$n
        last_t=$(date +%s)
    fi
    sleep 1
done
wait "$make_pid" && rc=0 || rc=$?
trap - INT TERM EXIT
if [ "$rc" != 0 ]; then
    grep -E 'error|Error' "$log" | head -n 20 >&2 || true
    die "make failed (status $rc); the whole log is $log"
fi
n=$(compiled)
msg "compiled $n/$total, linked"

# --- checks and result ---------------------------------------------------

want_vermagic=$(modinfo "$stock_kvm" vermagic)
tmp_out=$out.tmp
rm -rf "$tmp_out"
mkdir -p "$tmp_out"
for m in "${modules[@]}"; do
    ko=$work/src/arch/x86/kvm/$m
    [ -f "$ko" ] || die "make built no $m"
    vm=$(modinfo "$ko" vermagic)
    [ "$vm" = "$want_vermagic" ] ||
        die "$m has vermagic '$vm', the lab kernel's kvm.ko '$want_vermagic'"
    # As Debian's modules_install does (INSTALL_MOD_STRIP): no debug
    # information in what L1 loads; the full module stays in debug/.
    mkdir -p "$tmp_out/debug"
    cp "$ko" "$tmp_out/debug/$m"
    chroot "$root" /usr/bin/x86_64-linux-gnu-strip --strip-debug \
        -o "/$work_rel/$m" "/$work_rel/src/arch/x86/kvm/$m"
    mv "$work/$m" "$tmp_out/$m"
done
# The kernel's symbols that the new kvm.ko imports must carry the CRCs
# the stock kvm.ko imports (modpost took them from Debian's
# Module.symvers; a header change that altered them would make the
# module unloadable).
/usr/bin/python3 - "$tmp_out/kvm.ko" "$stock_kvm" <<'PY' || die "symbol versions differ from the stock kvm.ko"
import lzma, subprocess, sys, tempfile

def versions(path):
    data = open(path, 'rb').read()
    if path.endswith('.xz'):
        data = lzma.decompress(data)
    with tempfile.NamedTemporaryFile() as ko, tempfile.NamedTemporaryFile() as sect:
        ko.write(data)
        ko.flush()
        subprocess.run(['objcopy', '-O', 'binary', '--only-section=__versions',
                        ko.name, sect.name], check=True)
        raw = open(sect.name, 'rb').read()
    out = {}
    for off in range(0, len(raw), 64):
        crc = int.from_bytes(raw[off:off + 8], 'little')
        out[raw[off + 8:off + 64].split(b'\0')[0].decode()] = crc
    return out

new, old = versions(sys.argv[1]), versions(sys.argv[2])
diff = [s for s in new if s in old and new[s] != old[s]]
if diff or not new:
    print('build-kvm: CRC mismatch: ' + ' '.join(sorted(diff)[:20]), file=sys.stderr)
    sys.exit(1)
print('build-kvm: %d imported symbol versions, %d shared with the stock kvm.ko, all equal'
      % (len(new), len([s for s in new if s in old])), file=sys.stderr)
PY
{
    echo "kernel: $image_pkg $version"
    echo "compiler: $have_cc"
    echo "series: $series_dir"
    for p in "${series[@]}"; do
        echo "  $(basename "$p") $(sha256sum < "$p" | cut -d' ' -f1)"
    done
    # The build ID tells these modules from Debian's in L1:
    # /sys/module/kvm/notes/.note.gnu.build-id holds the loaded one's.
    for m in "${modules[@]}"; do
        echo "$m: vermagic=$(modinfo "$tmp_out/$m" vermagic)" \
             "build-id=$(build_id "$tmp_out/$m")"
    done
} > "$tmp_out/info.txt"
cp "$log" "$tmp_out/build.log"
date -u +%FT%TZ > "$tmp_out/.done"
rm -rf "$out"
mv "$tmp_out" "$out"
rm -rf "$work"
# Keep the newest 8 builds (about 45 MB each, debug copies included).
find "$kdir/kvm-$abi" -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' |
    sort -rn | tail -n +9 | cut -d' ' -f2- |
    while read -r old; do rm -rf "$old"; done
msg "built in $(( $(date +%s) - t0 )) s; vermagic '$want_vermagic'"
print_result
