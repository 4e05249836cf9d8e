#!/bin/bash
# Build the fork: pristine QEMU 10.0.13 + our overlay + the hook patches.
#
#   scripts/build-fork.sh            the fork -> build/qemu-system-x86_64
#   scripts/build-fork.sh --pristine stock 10.0.13 (build-fix patch only)
#                                    -> build/qemu-system-x86_64-stock
#
# QEMU_SRC=/path/to/qemu-10.0.13 replaces the Debian download.  Re-running
# is incremental: the tree and build directory are reused, and only changed
# overlay files are copied, so ninja rebuilds only what they touch.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=${NKVM_BUILD:-$top/build}
flavour=fork
if [ "${1:-}" = "--pristine" ]; then
    flavour=stock
fi

if [ "$flavour" = fork ]; then
    tree=$build/qemu-10.0.13
    objdir=$build/qemu-build
    binary=$build/qemu-system-x86_64
    patches=("$top"/scripts/patches/*.patch)
    pkgversion="qemu-nested-kvm fork"
else
    tree=$build/qemu-10.0.13-stock
    objdir=$build/qemu-build-stock
    binary=$build/qemu-system-x86_64-stock
    patches=("$top"/scripts/patches/0001-*.patch)
    pkgversion="pristine 10.0.13 baseline"
fi

log() { echo "build-fork[$flavour]: $*"; }

# Overlay directories of the repo and where they land in QEMU's tree.
OVERLAY=(
    "accel/nested-kvm:accel/nested-kvm"
)

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

lay_overlay() {
    local entry
    for entry in "${OVERLAY[@]}"; do
        sync_dir "$top/${entry%%:*}" "$tree/${entry#*:}"
    done
}

configure_tree() {
    local cc=cc
    command -v ccache >/dev/null && cc="ccache cc"
    mkdir -p "$objdir"
    log "configuring in $objdir"
    (cd "$objdir" && "$tree/configure" --python=/usr/bin/python3 \
        --cc="$cc" --target-list=x86_64-softmmu --disable-docs \
        --disable-werror --without-default-features --enable-kvm \
        --enable-tcg --disable-download --disable-install-blobs \
        --with-pkgversion="$pkgversion") > "$objdir/configure.log" 2>&1 || {
        tail -n 30 "$objdir/configure.log"
        log "configure failed; full log in $objdir/configure.log"
        exit 1
    }
}

# ninja prints one status line per step; show one line per 5 % instead.
run_ninja() {
    NINJA_STATUS="@@ %p %f %t @@ " ninja -C "$objdir" "$@" 2>&1 |
        awk '
            $1 == "@@" {
                p = $2; sub(/%/, "", p); p = int(p / 5) * 5
                if (p != last) {
                    print "  build " p "% (" $3 "/" $4 " steps)"; fflush()
                    last = p
                }
                next
            }
            /error|Error|FAILED/ { print; fflush() }
        '
    return "${PIPESTATUS[0]}"
}

link_firmware() {
    local fw=$build/firmware rom
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
    if [ "$flavour" = fork ]; then
        lay_overlay
    fi
    if [ ! -f "$objdir/build.ninja" ]; then
        configure_tree
    fi
    log "building qemu-system-x86_64 and option ROMs"
    run_ninja qemu-system-x86_64
    # The option ROMs (multiboot, linuxboot) come from a Makefile, not ninja.
    make -s -C "$objdir/pc-bios/optionrom" all > "$objdir/optionrom.log" 2>&1 || {
        tail -n 20 "$objdir/optionrom.log"; exit 1; }
    ln -sf "$objdir/qemu-system-x86_64" "$binary"
    [ "$flavour" = stock ] || link_firmware
    log "done in $(( $(date +%s) - start )) s: $binary"
}

main
