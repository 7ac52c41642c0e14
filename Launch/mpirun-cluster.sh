#!/usr/bin/env bash
# mpirun across hosts, supervised so that a lost host cannot keep the job alive.
#
#   Launch/mpirun-cluster.sh --host node1:2,node2:2 -n 4 lflow-dist train --config C --data D --run-dir R
#
# Every argument goes to mpirun unchanged (add `--mca btl tcp,self` to force TCP). What this adds:
#  * lflow-dist's collective watchdog (config collectiveTimeoutSeconds) ends a rank that waits in a
#    collective for a lost rank, host or link, with status 69 and a message naming the collective,
#    the step and the checkpoint to resume from. mpirun then aborts the job, but when a host is
#    really gone it waits for that host's daemon until TCP gives up (about 15 minutes). This
#    script ends mpirun LFLOW_ABORT_GRACE seconds (default 15) after the first watchdog report,
#    and exits 69 itself.
#  * SIGTERM, SIGINT and SIGUSR1 are passed on to mpirun (which passes them to the ranks); after
#    SIGTERM or SIGINT, mpirun gets LFLOW_ABORT_GRACE + 15 seconds to finish before it is killed.
#
# Exit status: mpirun's (0 done, 75 preempted with a checkpoint, 1 an error), or 69 when the
# watchdog ended the job; 69 and 75 mean "run the same command again to resume" (on the
# remaining hosts, after a host is lost).
set -u
grace=${LFLOW_ABORT_GRACE:-15}
mark=$(mktemp -d "${TMPDIR:-/tmp}/mpirun-cluster.XXXXXX")

# mpirun's standard error goes through a reader that copies it and notes the watchdog's report.
# (A FIFO rather than a process substitution: the reader's pid is known, so it can be stopped
# even while a daemon on a lost host still holds the other end open.)
mkfifo "$mark/stderr"
while IFS= read -r line; do
    printf '%s\n' "$line" >&2
    case $line in *"collective watchdog:"*) [ -e "$mark/watchdog" ] || date +%s > "$mark/watchdog" ;; esac
done < "$mark/stderr" &
reader=$!
mpirun "$@" 2> "$mark/stderr" &
pid=$!
# At the end, let the reader copy what is left (EOF comes when every writer is gone, which a
# daemon on a lost host may never be), then stop it.
drain() {
    local i
    for i in $(seq 1 30); do kill -0 "$reader" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$reader" 2>/dev/null
    rm -rf "$mark"
}
trap drain EXIT
forward() { kill -s "$1" "$pid" 2>/dev/null; [ "$1" = USR1 ] || { [ -e "$mark/stop" ] || date +%s > "$mark/stop"; }; }
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward USR1' USR1

# A deadline, once something asked the job to end: kill mpirun if it outlives it.
expired() {
    local file=$1 limit=$2
    [ -e "$file" ] && [ $(( $(date +%s) - $(cat "$file") )) -gt "$limit" ]
}
while kill -0 "$pid" 2>/dev/null; do
    if expired "$mark/watchdog" "$grace" || expired "$mark/stop" $((grace + 15)); then
        echo "mpirun-cluster: mpirun is still waiting for a lost host ${grace}s after the job was ended; killing it." >&2
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        [ -e "$mark/watchdog" ] && exit 69
        exit 143
    fi
    sleep 1
done
# `wait` returns early when a trapped signal arrives; loop until mpirun is really done.
while :; do
    wait "$pid"
    status=$?
    kill -0 "$pid" 2>/dev/null || break
done
[ -e "$mark/watchdog" ] && [ "$status" -ne 0 ] && exit 69
exit "$status"
