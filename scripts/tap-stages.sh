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

# stage NAME CMD...: run CMD, show its output, count its TAP lines, and
# add "NAME SECONDS" to stage_times, which the caller prints at the end,
# where CI's tail of the output shows where the time went.
stage_times=""
stage() {
    local name=$1 log rc start=$SECONDS
    shift
    log=$logdir/$name.log
    echo "=== $name"
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    count "$log" "$rc" "$name"
    stage_times+="${stage_times:+, }$name $((SECONDS - start))"
}

# side_stage NAME CMD...: a stage run beside another, in the background:
# CMD's output goes to NAME's log only, and its status and seconds to
# NAME.status, for side_report to show and count once the other is done
# (counters set in a background shell would be lost).
side_stage() {
    local name=$1 start=$SECONDS
    shift
    "$@" > "$logdir/$name.log" 2>&1
    echo "$? $((SECONDS - start))" > "$logdir/$name.status"
}

# side_report NAME...: each side stage's log and count, as stage shows
# them; one that left no status (killed, say) counts as a failure.
side_report() {
    local name rc secs
    for name in "$@"; do
        echo "=== $name (beside the lab; log: $logdir/$name.log)"
        [ -f "$logdir/$name.log" ] || : > "$logdir/$name.log"
        cat "$logdir/$name.log"
        rc=1
        secs=?
        [ ! -f "$logdir/$name.status" ] || read -r rc secs < "$logdir/$name.status"
        count "$logdir/$name.log" "$rc" "$name"
        stage_times+="${stage_times:+, }$name (beside the lab) $secs"
    done
}
