#!/bin/bash
# Build the fork: pristine QEMU 10.0.13 + our overlay + the hook patches.
#
#   scripts/build-fork.sh            the fork -> build/qemu-system-x86_64
#   scripts/build-fork.sh --pristine stock 10.0.13 (build-fix patch only)
#                                    -> build/qemu-system-x86_64-stock
#   scripts/build-fork.sh --sanitize the fork with ASan+UBSan, same tree,
#                                    own build directory qemu-build-asan
#                                    -> build/qemu-system-x86_64-asan
#                                    (scripts/check-sanitize.sh)
#   scripts/build-fork.sh --no-kvm   the fork without KVM (--disable-kvm,
#                                    TCG only), same tree, own build
#                                    directory qemu-build-nokvm
#                                    -> build/qemu-system-x86_64-nokvm
#                                    (the nokvm stage of scripts/check.sh)
#
# QEMU_SRC=/path/to/qemu-10.0.13 replaces the Debian download.  Re-running
# is incremental: the tree and build directory are reused, and only changed
# overlay files are copied, so ninja rebuilds only what they touch.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${NKVM_BUILD:-$top/build}
flavour=fork
case "${1:-}" in
    --pristine) flavour=stock ;;
    --sanitize) flavour=asan ;;
    --no-kvm) flavour=nokvm ;;
esac

# Every flavour but stock builds the fork's tree (its patches and
# overlay); each flavour has its own build directory and binary, named by
# a suffix, so that none touches another's.
# firmware: the -L directory this flavour fills (SeaBIOS and its option
# ROMs); none for stock, whose tests use the fork's, nor for nokvm, whose
# check needs none.
tree=$build/qemu-10.0.13
patches=("$top"/scripts/patches/*.patch)
case "$flavour" in
    fork)
        suffix=
        firmware=$build/firmware
        pkgversion="qemu-nested-kvm fork"
        ;;
    asan)
        suffix=-asan
        firmware=$build/firmware-asan
        pkgversion="qemu-nested-kvm fork, ASan+UBSan"
        ;;
    nokvm)
        suffix=-nokvm
        firmware=
        pkgversion="qemu-nested-kvm fork, without KVM"
        ;;
    stock)
        suffix=-stock
        tree=$build/stock/qemu-10.0.13
        firmware=
        patches=("$top"/scripts/patches/0001-*.patch)
        pkgversion="pristine 10.0.13 baseline"
        ;;
esac
objdir=$build/qemu-build$suffix
# Stock's tree and build directory sit as the fork's do, one level down,
# so that each compile's relative paths (../qemu-10.0.13/...) are the
# fork's and ccache can reuse the fork's objects for files that the
# patches and overlay leave alone: 91 % of stock's compiles, 143 s
# against 600 s for the fork's build just before it (2026-12-03).
[ "$flavour" != stock ] || objdir=$build/stock/qemu-build
binary=$build/qemu-system-x86_64$suffix

log() { echo "build-fork[$flavour]: $*"; }

# Overlay directories (synchronised whole) and single files of the repo,
# and where they land in QEMU's tree.
OVERLAY=(
    "accel/nested-kvm:accel/nested-kvm"
    "target-i386:target/i386/nested-kvm"
    "target-i386/qapi/nested-kvm-target.json:qapi/nested-kvm-target.json"
)

# One cache per build folder, so that a fresh clone starts from nothing
# and stock's build finds the fork's objects there (those of the builds
# without KVM and with sanitizers differ, through config-poison.h,
# config-host.h or their flags): BASEDIR makes absolute paths under
# build/ relative, and NOHASHDIR leaves the build directory (which -g
# would name in the debug info) out of the hash.  DEPEND: a miss takes
# the headers from the compiler's -MD list instead of running the
# preprocessor once more; every hit here is a direct one anyway.  A miss
# cost 22 % more CPU than a compile without ccache, 3 % more in depend
# mode (eight of QEMU's files, 2026-12-03).
export CCACHE_DIR=${CCACHE_DIR:-$build/ccache}
export CCACHE_BASEDIR=$build CCACHE_NOHASHDIR=true CCACHE_DEPEND=true
export PYTHONPATH="$build/tools/usr/lib/python3/dist-packages${PYTHONPATH:+:$PYTHONPATH}"

series_id() {
    {
        echo "${QEMU_SRC:-debian}"
        cat "${patches[@]}"
    } | sha256sum | cut -d' ' -f1
}

extract_tree() {
    local id=$1 tmp=$tree.tmp
    rm -rf "$tree" "$tmp" "$objdir"
    mkdir -p "$tmp"
    if [ -n "${QEMU_SRC:-}" ]; then
        log "copying upstream from QEMU_SRC=$QEMU_SRC"
        [ -f "$QEMU_SRC/VERSION" ] || { log "no VERSION in $QEMU_SRC"; exit 1; }
        cp -a "$QEMU_SRC/." "$tmp/"
    else
        log "extracting $(basename "$build"/dl/qemu_*.orig.tar.xz)"
        tar -xJf "$build"/dl/qemu_10.0.13+ds.orig.tar.xz -C "$tmp" \
            --strip-components=1
    fi
    local p
    for p in "${patches[@]}"; do
        log "applying $(basename "$p")"
        patch -d "$tmp" -p1 --forward --quiet < "$p"
    done
    echo "$id" > "$tmp/.nkvm-series"
    mv "$tmp" "$tree"
}

# Copy only files whose content changed, so timestamps of unchanged files
# stay put and ninja's incremental rebuild stays small.
sync_dir() {
    local src=$1 dst=$2 f rel
    mkdir -p "$dst"
    while IFS= read -r -d '' f; do
        rel=${f#"$src"/}
        if ! cmp -s "$f" "$dst/$rel"; then
            mkdir -p "$(dirname "$dst/$rel")"
            cp "$f" "$dst/$rel"
        fi
    done < <(find "$src" -type f -print0)
    while IFS= read -r -d '' f; do
        rel=${f#"$dst"/}
        [ -e "$src/$rel" ] || rm -f "$f"
    done < <(find "$dst" -type f -print0)
}

sync_file() {
    local src=$1 dst=$2
    if ! cmp -s "$src" "$dst"; then
        mkdir -p "$(dirname "$dst")"
        cp "$src" "$dst"
    fi
}

lay_overlay() {
    local entry src dst
    for entry in "${OVERLAY[@]}"; do
        src=$top/${entry%%:*}
        dst=$tree/${entry#*:}
        if [ -d "$src" ]; then
            sync_dir "$src" "$dst"
        else
            sync_file "$src" "$dst"
        fi
    done
}

configure_args() {
    local cc=cc kvm=--enable-kvm
    # nokvm never finds an object of the others' in the cache (its
    # config-poison.h, its flags), so a cache would only cost it time.
    if [ "$flavour" != nokvm ] && command -v ccache >/dev/null; then
        cc="ccache cc"
    fi
    # nokvm: the fork must also build and link for TCG alone.
    [ "$flavour" != nokvm ] || kvm=--disable-kvm
    # virtfs: the lab shares the host's filesystem with L1 over 9p, and
    # the fork itself is the lab's L0.
    printf '%s\n' --python=/usr/bin/python3 --cc="$cc" \
        --target-list=x86_64-softmmu --disable-docs --disable-werror \
        --without-default-features "$kvm" --enable-tcg \
        --enable-virtfs --enable-attr \
        --disable-download --disable-install-blobs \
        --with-pkgversion="$pkgversion"
    # The fork and stock (which share the compiler cache, so the same
    # flags) keep line tables only: -g1 after meson's -g.  Full debug
    # information was a fifth of each compile (five of QEMU's files:
    # 6.1 CPU s with -g, 4.9 with -g1, 4.7 with -g0), and a backtrace
    # needs only function names and lines.
    if [ "$flavour" = fork ] || [ "$flavour" = stock ]; then
        printf '%s\n' --extra-cflags=-g1
    fi
    # nokvm's test only starts it stopped (-S) and talks QMP, so it is
    # built unoptimised and without debug information, for the compile
    # time: it builds beside the lab, on make check's busiest cores.
    if [ "$flavour" = nokvm ]; then
        printf '%s\n' -Doptimization=0 -Ddebug=false
    fi
    # QEMU's own sanitizer options (meson asan/ubsan); frame pointers so
    # that ASan's fast unwinder shows whole allocation and free stacks.
    if [ "$flavour" = asan ]; then
        printf '%s\n' --enable-asan --enable-ubsan \
            --extra-cflags=-fno-omit-frame-pointer
    fi
}

# Configure when the build directory is new or the arguments changed.
configure_tree() {
    local args stamp=$objdir/.nkvm-configure
    args=$(configure_args)
    if [ -f "$objdir/build.ninja" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$args" ]; then
        return
    fi
    mkdir -p "$objdir"
    log "configuring in $objdir"
    local -a argv
    mapfile -t argv <<< "$args"
    (cd "$objdir" && "$tree/configure" "${argv[@]}") \
        > "$objdir/configure.log" 2>&1 || {
        tail -n 30 "$objdir/configure.log"
        log "configure failed; full log in $objdir/configure.log"
        exit 1
    }
    echo "$args" > "$stamp"
}

# ninja prints one status line per step; show one line per 5 % instead.
run_ninja() {
    local -a jobs=()
    # NKVM_JOBS: ninja's parallel jobs (default: ninja's own, cores + 2).
    [ -z "${NKVM_JOBS:-}" ] || jobs=(-j "$NKVM_JOBS")
    NINJA_STATUS="@@ %p %f %t @@ " ninja -C "$objdir" "${jobs[@]}" "$@" 2>&1 |
        awk '
            $1 == "@@" {
                p = $2; sub(/%/, "", p); p = int(p / 5) * 5
                if (p != last) {
                    print "  build " p "% (" $3 "/" $4 " steps)"; fflush()
                    last = p
                }
                next
            }
            /error|Error|FAILED|undefined reference|multiple definition/ {
                print; fflush()
            }
        '
    return "${PIPESTATUS[0]}"
}

link_firmware() {
    local fw=$firmware rom
    mkdir -p "$fw"
    ln -sf "$build/tools/usr/share/seabios/bios-256k.bin" "$fw/bios-256k.bin"
    for rom in "$objdir"/pc-bios/optionrom/*.bin; do
        ln -sf "$rom" "$fw/$(basename "$rom")"
    done
}

main() {
    local id start
    start=$(date +%s)
    "$top/scripts/fetch-upstream.sh" tools
    [ -n "${QEMU_SRC:-}" ] || "$top/scripts/fetch-upstream.sh" source
    id=$(series_id)
    if [ "$(cat "$tree/.nkvm-series" 2>/dev/null)" != "$id" ]; then
        extract_tree "$id"
    fi
    if [ "$flavour" != stock ]; then
        lay_overlay
    fi
    configure_tree
    log "building qemu-system-x86_64 and option ROMs"
    run_ninja qemu-system-x86_64
    # The option ROMs (multiboot, linuxboot) come from a Makefile, not ninja.
    make -s -C "$objdir/pc-bios/optionrom" all > "$objdir/optionrom.log" 2>&1 || {
        tail -n 20 "$objdir/optionrom.log"; exit 1; }
    ln -sf "$objdir/qemu-system-x86_64" "$binary"
    [ -z "$firmware" ] || link_firmware
    log "done in $(( $(date +%s) - start )) s: $binary"
}

main
