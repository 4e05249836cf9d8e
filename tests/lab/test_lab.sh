#!/bin/bash
# The lab end to end: for each L1 kernel, boot L1 under the fork's TCG with
# nested SVM, and inside it check kvm_amd (nested=1), /dev/kvm, an L2 Linux
# boot under -accel nested-kvm, and that the fork runs under -accel kvm and
# -accel nested-kvm on L1's KVM, the smoke guest under kvm and nested-kvm, a
# live migration and the mirror's QMP view (tests/lab/in-l1.sh, which also runs
# tests/functional/test_accel.py).
#
#   tests/lab/test_lab.sh [KERNEL...]     default: 6.1 6.12 ("none": no
#                                         in-l1.sh run)
#
# Two hosts (scripts/lab pair, host A on 6.1 and B on 6.12, or
# LAB_PAIR=A,B; LAB_PAIR=none skips it): the torture migrated between
# them (tests/lab/in-pair.sh).
#
# Libvirt (LAB_LIBVIRT=KERNEL, default 6.12; none skips it): Debian
# 12's libvirt 9.0 manages the torture guest under nested-kvm, as
# libvirt-qemu, through virsh save/restore and managedsave, and virsh
# migrate --live to a second host on the other kernel and back
# (LAB_LIBVIRT_MIGRATIONS, default 6; tests/lab/in-l1-libvirt.sh,
# docs/libvirt.rst).
#
# The KVM uAPI series (LAB_KVM_UAPI=KERNEL, only 6.12, the default;
# none skips it): its selftest on Debian's modules and on the series'
# (scripts/lab run --kvm patched; tests/lab/in-l1-kvm-uapi.sh).
#
# These boots run in LAB_LANES lanes at once (default 2, one per host
# core; 1: one after the other): each lane takes the next job when its
# last one ends, and a job's TAP is shown when it ends.  The order: the
# kernels, the KVM uAPI series, libvirt, the pair.  The two stages that
# boot two L1s come last, since one that runs on alone at the end keeps
# both cores busy, where the uAPI series' one L1 left one idle (its last
# 130 s in the clean-clone make check at e0c8dd7).
#
# Prints TAP ("ok N - lab 6.1: ...", "# nrips=..." diagnostics) and exits 1
# if any check failed.  LAB_SMP and LAB_TIMEOUT tune the L1 VM.
#
# SPDX-License-Identifier: GPL-2.0-or-later
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
# cpu_run and cpu_of: each job's CPU seconds
# shellcheck source=scripts/tap-stages.sh
. "$top/scripts/tap-stages.sh"
# Two L1 vCPUs, on scripts/lab's one TCG thread: a guest hypervisor's
# host has more than one CPU, and with a thread per vCPU nested guests
# that migrate lose their QEMU now and then (docs/lab.rst, "Known
# problems").
smp=${LAB_SMP:-2}
# A guard against a hung L1, not a budget: with two lanes and the VMX
# lab and the later stages beside them, the 6.12 boot took 1,893 s and
# 2,780 s in the clean-clone make checks of 2026-12-03 (1,051 s alone on
# its core the day before).
timeout=${LAB_TIMEOUT:-3600}
lanes=${LAB_LANES:-2}
number=0
failures=0

# tap ok|"not ok" NAME: one result, unnumbered: a job runs in a lane of
# its own, and emit numbers its results once it ends.
tap() {
    echo "$1 - $2"
}

# result ok|"not ok" NAME: one result, numbered and counted here.
result() {
    number=$((number + 1))
    [ "$1" = ok ] || failures=$((failures + 1))
    echo "$1 $number - $2"
}

# emit FILE: a job's output, its results numbered and counted here.
emit() {
    local line
    while IFS= read -r line; do
        case $line in
            "ok - "*) result ok "${line#ok - }" ;;
            "not ok - "*) result "not ok" "${line#not ok - }" ;;
            *) echo "$line" ;;
        esac
    done < "$1"
}

# relay LABEL FILE: FILE's TAP lines named after LABEL (emit numbers them),
# its "# " lines kept as diagnostics; sets relayed to the number of TAP
# lines.  A SKIP inside the lab is a failure: L1's /dev/kvm must be
# usable there.
relay() {
    local label=$1 file=$2 line status name
    relayed=0
    while IFS= read -r line; do
        if [[ $line =~ ^(not\ ok|ok)\ [0-9]*\ ?-\ (.*)$ ]]; then
            status=${BASH_REMATCH[1]}
            name=${BASH_REMATCH[2]}
            relayed=$((relayed + 1))
            if [[ $name == *"# SKIP"* ]]; then
                status="not ok"
            fi
            tap "$status" "lab $label: $name"
        elif [[ $line == "# "* ]]; then
            echo "# $label: ${line#\# }"
        else
            echo "# $label | $line"
        fi
    done < "$file"
}

# lab_kernel K: one L1 boot running in-l1.sh; its TAP lines are named
# after K.  A SKIP inside the lab is a failure: L1's
# /dev/kvm must be usable there.
lab_kernel() {
    local k=$1 out rc start elapsed seen=0 want
    out=$(mktemp)
    start=$(date +%s)
    "$top/scripts/lab" run --kernel "$k" --smp "$smp" --timeout "$timeout" \
        -- bash tests/lab/in-l1.sh > "$out" 2> "$out.err"
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    sed 's/^/# /' "$out.err"
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 125 ]; then
        tap "not ok" "lab $k: L1 boots and runs the checks (status $rc after $elapsed s)"
        rm -f "$out" "$out.err"
        return
    fi
    tap ok "lab $k: L1 boots and runs the checks ($elapsed s)"
    relay "$k" "$out"
    seen=$relayed
    # in-l1.sh has 14 checks of its own (8 torture), test_kvm_probe.py 5,
    # test_accel.py 8, test_smoke.py 10 per accelerator, test_mirror.py
    # 12, test_svm_timer.py 3 per accelerator, test_failure_phases.py 12,
    # test_compat.py 4, test_event_migration.py 24 and test_states.py 20,
    # and on 6.12 test_syscalls.py 5: fewer means something crashed.
    want=125
    [ "$k" != 6.12 ] || want=130
    if [ "$seen" -lt "$want" ]; then
        tap "not ok" "lab $k: all $want checks reported (got $seen, status $rc)"
    fi
    rm -f "$out" "$out.err"
}

# lab_stage LABEL FLOOR WHAT LAB-ARGS...: "scripts/lab LAB-ARGS", its TAP
# relayed under LABEL; fewer than FLOOR checks (WHAT) is a failure of its
# own, since a stage that crashed reports less.
lab_stage() {
    local label=$1 floor=$2 what=$3 out rc start elapsed
    shift 3
    out=$(mktemp)
    start=$(date +%s)
    "$top/scripts/lab" "$@" > "$out" 2> "$out.err"
    rc=$?
    elapsed=$(( $(date +%s) - start ))
    sed 's/^/# /' "$out.err"
    relay "$label" "$out"
    if [ "$relayed" -lt "$floor" ]; then
        tap "not ok" "lab $label: $what reported (got $relayed, status $rc after $elapsed s)"
    fi
    rm -f "$out" "$out.err"
}

# lab_prepare LABEL WHAT CMD...: a host-side step a stage needs (a
# download, a build), its stdout left in $prepared.  If it fails, its
# output becomes comments and WHAT one failed check, so that a stage
# that could not start is counted rather than skipped.
lab_prepare() {
    local label=$1 what=$2 err
    shift 2
    err=$(mktemp)
    if prepared=$("$@" 2> "$err"); then
        rm -f "$err"
        return 0
    fi
    printf '%s\n' "$prepared" | cat - "$err" | sed 's/^/# /'
    tap "not ok" "lab $label: $what"
    rm -f "$err"
    return 1
}

# lab_pair A,B: one pair boot running in-pair.sh on host A.
lab_pair() {
    lab_stage "pair $1" 2 "both checks" pair --kernels "$1" --smp "$smp" \
        --timeout "$timeout" -- bash tests/lab/in-pair.sh
}

# The libvirt checks: 14 in tests/lab/test_libvirt.py on host A of a
# pair on KERNEL, and 6 more for virsh migrate --live to host B, on the
# other kernel, and back; then 3 with --no-nesting in an L1 whose kvm_amd
# has nested=0 (a nested-kvm domain must not start there).
lab_libvirt() {
    local k=$1 kb=6.1
    [ "$k" != 6.1 ] || kb=6.12
    lab_prepare "libvirt $k" "Debian 12's libvirt 9.0 unpacked" \
        "$top/scripts/fetch-upstream.sh" libvirt || return 0
    lab_stage "libvirt $k,$kb" 20 "all 20 checks" pair --kernels "$k,$kb" \
        --smp "$smp" --timeout "$timeout" -- bash tests/lab/in-l1-libvirt.sh \
        --pair-migrations "${LAB_LIBVIRT_MIGRATIONS:-6}"
    lab_stage "libvirt $k nested=0" 3 "all 3 checks" run --kernel "$k" \
        --kvm-amd "nested=0 nrips=1" --timeout "$timeout" \
        -- bash tests/lab/in-l1-libvirt.sh --no-nesting
}

# The KVM uAPI series (scripts/kernel, docs/kvm-uapi.rst): its selftest,
# built here, on Debian's modules (where it must catch the loss: 3
# checks) and on the series' own (2 checks), where the torture also runs
# with state-source=kernel (3 checks).
lab_kvm_uapi() {
    local k=$1 bin
    lab_prepare "kvm uapi $k" "the series' selftest builds" \
        "$top/tests/lab/run-kvm-selftest.sh" --build-only || return 0
    bin=$prepared
    lab_stage "kvm uapi $k stock" 3 "all 3 checks" run --kernel "$k" \
        --timeout "$timeout" -- bash tests/lab/in-l1-kvm-uapi.sh stock "$bin"
    lab_stage "kvm uapi $k patched" 5 "all 5 checks" run --kernel "$k" \
        --kvm patched --timeout "$timeout" \
        -- bash tests/lab/in-l1-kvm-uapi.sh patched "$bin"
}

# run_jobs JOB...: each JOB (a function and its arguments, one word
# each) in the background, at most $lanes at a time, in the order given;
# each one's output is emitted when it ends, so a lane's results show
# while the other runs on.  scripts/lab prepares each kernel's files
# under a lock, so jobs that share a kernel do not unpack it twice.
run_jobs() {
    local jobs_dir pid job cpu i=0
    local -a queue=("$@")
    local -A running=() started=()
    jobs_dir=$(mktemp -d)
    while [ "$i" -lt ${#queue[@]} ] || [ ${#running[@]} -gt 0 ]; do
        while [ "$i" -lt ${#queue[@]} ] && [ ${#running[@]} -lt "$lanes" ]; do
            job=${queue[$i]}
            # shellcheck disable=SC2086 # a job is its words
            cpu_run "$jobs_dir/$i.cpu" $job > "$jobs_dir/$i" 2>&1 &
            running[$!]=$i
            started[$i]=$SECONDS
            echo "# lab: started $job"
            i=$((i + 1))
        done
        pid=""
        wait -n -p pid "${!running[@]}"
        if [ -z "$pid" ]; then
            result "not ok" "lab: wait returned no job, ${#running[@]} still counted as running"
            break
        fi
        job=${running[$pid]}
        unset "running[$pid]"
        cpu_of "$jobs_dir/$job.cpu"
        echo "# lab: ${queue[$job]} ended after $((SECONDS - started[$job])) s, CPU $cpu s"
        emit "$jobs_dir/$job"
    done
    rm -rf "$jobs_dir"
}

main() {
    local kernels=("$@") k
    local -a jobs=()
    [ ${#kernels[@]} -gt 0 ] || kernels=(6.1 6.12)
    [[ $lanes =~ ^[1-9]$ ]] || { echo "LAB_LANES takes 1 to 9, not '$lanes'" >&2; exit 2; }
    for k in "${kernels[@]}"; do
        # "none": only the pair and libvirt stages
        [ "$k" = none ] || jobs+=("lab_kernel $k")
    done
    [ "${LAB_KVM_UAPI:-6.12}" = none ] || jobs+=("lab_kvm_uapi ${LAB_KVM_UAPI:-6.12}")
    [ "${LAB_LIBVIRT:-6.12}" = none ] || jobs+=("lab_libvirt ${LAB_LIBVIRT:-6.12}")
    [ "${LAB_PAIR:-6.1,6.12}" = none ] || jobs+=("lab_pair ${LAB_PAIR:-6.1,6.12}")
    run_jobs "${jobs[@]}"
    echo "1..$number"
    [ "$failures" -eq 0 ]
}

main "$@"
