# shellcheck shell=bash
# Shared by the scripts that run inside a lab L1 (in-l1.sh, in-pair.sh):
# TAP lines without numbers (tests/lab/test_lab.sh numbers them) and the
# torture run with its diagnostics.  Source it after setting $top.
#
# SPDX-License-Identifier: GPL-2.0-or-later

: "${top:?lab-lib.sh: set top (the repository) before sourcing it}"

check() {
    local name=$1
    shift
    if "$@"; then echo "ok - $name"; else echo "not ok - $name"; fi
}

# lab_torture LABEL LIMIT ARGS...: tests/lab/torture.py ARGS within LIMIT
# seconds; prints its JSON line, its status and time (what make check's
# length is made of; 124 is the limit), and what went wrong as "# "
# lines, and returns its status.
lab_torture() {
    local label=$1 limit=$2 out rc err start=$SECONDS
    shift 2
    err=$(mktemp)
    out=$(timeout "$limit" /usr/bin/python3 "$top/tests/lab/torture.py" \
        "$@" 2>"$err")
    rc=$?
    grep '^{' <<<"$out" | sed "s/^/# $label: /"
    echo "# $label: status $rc after $((SECONDS - start)) s"
    # the guest's per-round diagnostics, the failures that went wrong,
    # the pair's hosts, and the tail if it failed
    grep -E 'guest: torture: (cpu [0-9]+ )?round|induced failure|strict refusal|pair:|(precopy|multifd|postcopy|paused|savevm) failed|negative control' \
        "$err" | head -20 | sed 's/^/# /'
    [ "$rc" -eq 0 ] || tail -5 "$err" | sed 's/^/# /'
    rm -f "$err"
    return "$rc"
}
