#!/bin/bash
# make demo: the live-migration demo (tests/functional/demo_migrate.py).
#
# The mirrored event state exists only under -accel nested-kvm, which
# needs a KVM with nested SVM.  Where this host's /dev/kvm is one
# (kvm_amd nested=1), the demo runs here; otherwise it runs inside the
# lab (docs/lab.rst: real kvm_amd under the fork's TCG), which takes a
# minute or two more.  DEMO_ACCEL=tcg runs the TCG version here, which
# migrates the same guest but has no mirror to show.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top" || exit 1
demo=tests/functional/demo_migrate.py
accel=${DEMO_ACCEL:-nested-kvm}

if [ "$accel" = tcg ]; then
    exec /usr/bin/python3 "$demo" --accel tcg
fi
if grep -qxE '1|Y' /sys/module/kvm_amd/parameters/nested 2>/dev/null &&
   [ -w /dev/kvm ]; then
    exec /usr/bin/python3 "$demo" --accel "$accel"
fi
echo "demo: no nested SVM on this host's /dev/kvm; running the demo in" \
     "the lab under -accel $accel" >&2
scripts/lab run --kernel 6.1 --timeout 600 -- \
    /usr/bin/python3 "$demo" --accel "$accel"
