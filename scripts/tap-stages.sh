# Sourced by scripts/check.sh and scripts/check-sanitize.sh: run stages
# that print TAP-style "ok"/"not ok" lines and add them up.  The caller
# sets logdir and starts passed, failed and skipped at 0; a stage that
# dies without saying which test failed counts as one failure.
#
# SPDX-License-Identifier: GPL-2.0-or-later

count() {
    local log=$1 rc=$2 name=$3 ok notok skip
    skip=$(grep -c '^ok .*# SKIP' "$log")
    ok=$(( $(grep -c '^ok ' "$log") - skip ))
    notok=$(grep -c '^not ok ' "$log")
    if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
        echo "not ok - $name exited with status $rc (log: $log)"
        notok=1
    fi
    passed=$((passed + ok))
    skipped=$((skipped + skip))
    failed=$((failed + notok))
}

# cpu_ticks: sets ticks to the CPU time (user and system, in clock
# ticks of 1/100 s) of the children this shell has waited for: its
# /proc stat's cutime and cstime.  Called in the shell that ran a
# stage's command, never in $(...), whose children are not that
# shell's.
cpu_ticks() {
    local st
    read -r -a st < "/proc/$BASHPID/stat"
    ticks=$((st[15] + st[16]))
}

# cpu_run FILE CMD...: run CMD and write its CPU seconds, with those of
# every process it waited for, to FILE; returns CMD's status.  In a
# shell of its own, so that nothing else this shell waits for (a stage
# running beside it) is counted.
cpu_run() (
    local file=$1 rc
    shift
    "$@"
    rc=$?
    cpu_ticks
    echo "$((ticks / 100))" > "$file"
    exit "$rc"
)

# cpu_of FILE: sets cpu to the seconds cpu_run wrote to FILE, or "?"
# where it wrote none (the command was killed).
cpu_of() {
    cpu="?"
    [ ! -f "$1" ] || read -r cpu < "$1"
}

# stage NAME CMD...: run CMD, show its output, count its TAP lines, and
# add "NAME SECONDS" to stage_times and "NAME CPU-SECONDS" to stage_cpu,
# which the caller prints at the end, where CI's tail of the output
# shows where the time went.
stage_times=""
stage_cpu=""
stage() {
    local name=$1 log rc start=$SECONDS cpu
    shift
    log=$logdir/$name.log
    echo "=== $name"
    cpu_run "$logdir/$name.cpu" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    count "$log" "$rc" "$name"
    stage_times+="${stage_times:+, }$name $((SECONDS - start))"
    cpu_of "$logdir/$name.cpu"
    stage_cpu+="${stage_cpu:+, }$name $cpu"
}

# side_stage NAME CMD...: a stage run beside another, in the background:
# CMD's output goes to NAME's log only, its status and seconds to
# NAME.status and its CPU seconds to NAME.cpu, for side_report to show
# and count once the other is done (counters set in a background shell
# would be lost).
side_stage() {
    local name=$1 start=$SECONDS
    shift
    cpu_run "$logdir/$name.cpu" "$@" > "$logdir/$name.log" 2>&1
    echo "$? $((SECONDS - start))" > "$logdir/$name.status"
}

# side_report NAME...: each side stage's log and count, as stage shows
# them; one that left no status (killed, say) counts as a failure.
side_report() {
    local name rc secs cpu
    for name in "$@"; do
        echo "=== $name (beside the lab; log: $logdir/$name.log)"
        [ -f "$logdir/$name.log" ] || : > "$logdir/$name.log"
        cat "$logdir/$name.log"
        rc=1
        secs=?
        [ ! -f "$logdir/$name.status" ] || read -r rc secs < "$logdir/$name.status"
        count "$logdir/$name.log" "$rc" "$name"
        stage_times+="${stage_times:+, }$name (beside the lab) $secs"
        cpu_of "$logdir/$name.cpu"
        stage_cpu+="${stage_cpu:+, }$name $cpu"
    done
}
