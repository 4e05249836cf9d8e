#!/bin/bash
# make demo, in two parts.
#
# 1. Between two lab hosts (scripts/lab pair, A on 6.1 and B on 6.12,
#    docs/lab.rst "Two hosts"): the torture guest hypervisor, 2 vCPUs,
#    live-migrated back and forth under -accel kvm and then -accel
#    nested-kvm, and what each lost, side by side
#    (tests/lab/demo_pair.py; DEMO_MIGRATIONS, default 14: with two L1
#    vCPUs per host, 20 took the demo to 300 s on a slow day, 14 to 171 s,
#    and upstream still lost or misdirected 6 events).
# 2. The NMI-pending live-migration demo (tests/functional/demo_migrate.py).
#    The mirrored event state exists only under -accel nested-kvm, which
#    needs a KVM with nested SVM.  Where this host's /dev/kvm is one
#    (kvm_amd nested=1), it runs here; otherwise inside the lab (real
#    kvm_amd under the fork's TCG).
#
# DEMO_ACCEL=tcg runs part 2 only, under TCG here: it migrates the same
# guest but has no mirror to show.  DEMO_PAIR=0 skips part 1, as does
# running inside a lab L1, where the tree is read-only.
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
status=0
if [ -n "${LAB_OUT:-}" ]; then
    # Inside a lab L1 the host's tree is read-only: no lab of our own.
    echo "demo: inside the lab; part 1 (two lab hosts) needs the lab" \
         "itself and is skipped" >&2
elif [ "${DEMO_PAIR:-1}" != 0 ]; then
    echo "demo: part 1, two lab hosts" >&2
    scripts/lab pair --kernels 6.1,6.12 --timeout 1200 -- \
        /usr/bin/python3 tests/lab/demo_pair.py \
        --migrations "${DEMO_MIGRATIONS:-14}" || status=1
    echo "demo: part 2, an NMI held pending across a migration" >&2
fi
if grep -qxE '1|Y' /sys/module/kvm_amd/parameters/nested 2>/dev/null &&
   [ -w /dev/kvm ]; then
    /usr/bin/python3 "$demo" --accel "$accel" || status=1
    exit $status
fi
echo "demo: no nested SVM on this host's /dev/kvm; running the demo in" \
     "the lab under -accel $accel" >&2
scripts/lab run --kernel 6.1 --timeout 600 -- \
    /usr/bin/python3 "$demo" --accel "$accel" || status=1
exit $status
