#!/usr/bin/env bash
# Throwaway single-node SLURM cluster for tests, run as root, everything under DIR.
#
#   eval "$(Launch/slurm-cluster.sh start /tmp/slurm-test)"   # prints: export SLURM_CONF=...
#   sbatch -n 2 --wrap 'srun hostname'
#   Launch/slurm-cluster.sh stop /tmp/slurm-test             # kills what start started, removes DIR
#
# No system-wide config is used or touched (/etc/slurm, /etc/munge, /run/munge): munged runs with
# its own key and socket in DIR, slurm.conf points at that socket (AuthInfo=socket=...), and
# slurmctld/slurmd listen on free ports picked at start so that two clusters do not collide.
# Tunables (environment): SLURM_CLUSTER_KILLWAIT (default 5 s), SLURM_CLUSTER_CRED_EXPIRE
# (default 10 s; it is also the delay before a requeued job may start again, SLURM default 120).
set -uo pipefail

usage() { echo "usage: $0 start|stop|status DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
cmd=$1
dir=$2
case "$dir" in /*) ;; *) dir="$(pwd)/$dir" ;; esac
dir=${dir%/}

log() { echo "slurm-cluster: $*" >&2; }

# Is TCP port $1 free (nobody listening, no socket bound)?
port_free() { [ -z "$(ss -Hantu "( sport = :$1 )" 2>/dev/null)" ]; }

pick_port() {  # pick_port EXCLUDE -> a free port in 20000..59999 not equal to EXCLUDE
    local p i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 40000))
        [ "$p" != "${1:-}" ] && port_free "$p" && { echo "$p"; return 0; }
    done
    return 1
}

# alive = exists and is not a zombie (killed children of a killed slurmstepd linger as zombies)
pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

read_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1"; }

# Processes named $1 (exact comm) that belong to this cluster: started with SLURM_CONF=DIR/slurm.conf
# in their environment (start exports it to every daemon, slurmstepd inherits it from slurmd), or,
# for munged, with DIR's socket on the command line.
cluster_procs() {
    local p
    for p in $(pgrep -x "$1" 2>/dev/null); do
        if { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qxF "SLURM_CONF=$dir/slurm.conf" ||
           { tr '\0' '\n' <"/proc/$p/cmdline"; } 2>/dev/null | grep -qxF -- "--socket=$dir/munge/munge.socket"; then
            echo "$p"
        fi
    done
}

descendants() {  # all descendants of the given pids
    local p c
    for p in "$@"; do
        for c in $(pgrep -P "$p" 2>/dev/null); do
            echo "$c"
            descendants "$c"
        done
    done
}

wait_gone() {  # wait_gone TIMEOUT_S PID... -> 0 if all gone
    local deadline=$((SECONDS + $1)); shift
    local p alive
    while :; do
        alive=
        for p in "$@"; do pid_alive "$p" && alive="$alive $p"; done
        [ -z "$alive" ] && return 0
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.1
    done
}

tails() {
    local f
    for f in "$dir"/log/munged.log "$dir"/log/slurmctld.log "$dir"/log/slurmd.log "$dir"/log/*.out; do
        [ -s "$f" ] || continue
        echo "---- tail $f" >&2
        tail -n 25 "$f" >&2
    done
}

fail() {  # fail REASON: log tails, one-line reason, stop everything, exit 1
    tails
    log "FAILED: $*"
    SLURM_CLUSTER_KEEP_DIR=1 "$0" stop "$dir" >/dev/null 2>&1   # kill what started, keep logs
    log "logs kept in $dir/log; run: $0 stop $dir"
    exit 1
}

do_start() {
    local host cpus memkb mem ctld_port slurmd_port t0 d
    t0=$SECONDS
    [ "$(id -u)" -eq 0 ] || { log "FAILED: must run as root"; exit 1; }
    for b in munged slurmctld slurmd sinfo scontrol ss; do
        command -v "$b" >/dev/null || { log "FAILED: $b not found in PATH"; exit 1; }
    done
    if [ -e "$dir/slurm.conf" ] && pid_alive "$(read_pid "$dir/run/slurmctld.pid")"; then
        log "FAILED: a cluster is already running in $dir (stop it first)"; exit 1
    fi
    # munged refuses group/other-writable directories on the path to its key/socket/log.
    mkdir -p "$dir" || { log "FAILED: cannot create $dir"; exit 1; }
    chmod 0755 "$dir"
    for d in munge run log state spool tmp; do mkdir -p "$dir/$d"; done
    chmod 0700 "$dir/state" "$dir/spool"
    chmod 0755 "$dir/munge"   # socket dir: munged wants it o+x
    chmod 0755 "$dir/run" "$dir/log"

    host=$(hostname -s)
    cpus=$(nproc)
    memkb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    mem=$((memkb / 1024 * 9 / 10))           # MB, 90 % of total
    ctld_port=$(pick_port) || { log "FAILED: no free port for slurmctld"; exit 1; }
    slurmd_port=$(pick_port "$ctld_port") || { log "FAILED: no free port for slurmd"; exit 1; }

    # --- munge ---------------------------------------------------------------------------
    if [ ! -s "$dir/munge/munge.key" ]; then
        dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 0400 "$dir/munge/munge.key"
    : >"$dir/log/munged.log"; chmod 0600 "$dir/log/munged.log"
    munged --socket="$dir/munge/munge.socket" \
           --key-file="$dir/munge/munge.key" \
           --pid-file="$dir/run/munged.pid" \
           --log-file="$dir/log/munged.log" \
           --seed-file="$dir/munge/munged.seed" \
           >>"$dir/log/munged.log" 2>&1 ||
        fail "munged: $(grep -h -E "Error|Fatal" "$dir/log/munged.log" | tail -n1)"
    for _ in $(seq 1 50); do [ -S "$dir/munge/munge.socket" ] && break; sleep 0.1; done
    [ -S "$dir/munge/munge.socket" ] || fail "munged did not create $dir/munge/munge.socket"
    if command -v munge >/dev/null && command -v unmunge >/dev/null; then
        munge -n -S "$dir/munge/munge.socket" | unmunge -S "$dir/munge/munge.socket" >/dev/null 2>&1 ||
            fail "munge/unmunge round trip through $dir/munge/munge.socket failed"
    fi

    # --- slurm.conf ------------------------------------------------------------------------
    cat >"$dir/slurm.conf" <<EOF
# Generated by $0 start $dir on $(date -Is)
ClusterName=throwaway$(echo "$dir" | cksum | cut -c1-6)
SlurmUser=root
SlurmdUser=root
SlurmctldHost=$host
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket,cred_expire=${SLURM_CLUSTER_CRED_EXPIRE:-10}
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
# Several throwaway clusters may run at once (the tests do): their job ids and the step
# daemons' scratch (PMIx's rendezvous directories among it) must not meet.
TmpFS=$dir/tmp
FirstJobId=$((ctld_port * 100))
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$dir/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_min_interval=0,sched_interval=2,bf_interval=1
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=${SLURM_CLUSTER_KILLWAIT:-5}
InactiveLimit=0
Waittime=0
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
TCPTimeout=5
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
    : >"$dir/plugstack.conf"   # keep /etc/slurm/plugstack.conf(.d) out of this cluster
    export SLURM_CONF="$dir/slurm.conf"

    # --- slurmctld, slurmd (they daemonize; pid files in DIR) --------------------------------
    slurmctld -i >>"$dir/log/slurmctld.stderr" 2>&1 ||
        fail "slurmctld exited with status $? ($(tail -n1 "$dir/log/slurmctld.stderr" 2>/dev/null))"
    local i
    for i in $(seq 1 100); do
        scontrol ping >/dev/null 2>&1 && break
        pid_alive "$(read_pid "$dir/run/slurmctld.pid")" || [ "$i" -lt 10 ] ||
            fail "slurmctld died: $(grep -h -i -E 'error|fatal' "$dir/log/slurmctld.log" | tail -n1)"
        sleep 0.2
    done
    scontrol ping >/dev/null 2>&1 ||
        fail "slurmctld not answering on port $ctld_port: $(grep -h -i -E 'error|fatal' "$dir/log/slurmctld.log" "$dir/log/slurmctld.stderr" 2>/dev/null | tail -n1)"

    slurmd >>"$dir/log/slurmd.stderr" 2>&1 ||
        fail "slurmd exited with status $? ($(tail -n1 "$dir/log/slurmd.stderr" 2>/dev/null))"

    local deadline=$((SECONDS + 30)) state=
    while [ "$SECONDS" -lt "$deadline" ]; do
        state=$(sinfo -h -n "$host" -o '%T' 2>/dev/null | head -n1)
        [ "$state" = idle ] && break
        if ! pid_alive "$(read_pid "$dir/run/slurmd.pid")" && [ $((SECONDS - t0)) -gt 3 ]; then
            fail "slurmd died: $(grep -h -i -E 'error|fatal' "$dir/log/slurmd.log" "$dir/log/slurmd.stderr" 2>/dev/null | tail -n1)"
        fi
        sleep 0.2
    done
    [ "$state" = idle ] ||
        fail "node $host not idle after 30 s (state '${state:-unknown}'): $(grep -h -i -E 'error|fatal' "$dir/log/slurmd.log" "$dir/log/slurmctld.log" 2>/dev/null | tail -n1)"

    log "cluster up in $((SECONDS - t0)) s: node $host ($cpus CPUs, ${mem} MB), slurmctld :$ctld_port, slurmd :$slurmd_port"
    echo "export SLURM_CONF=$dir/slurm.conf"
}

do_stop() {
    local t0=$SECONDS p f stepds tasks daemons=() mungeds=()
    # 1. Job processes first: slurmstepd of this cluster and everything below it (SIGKILL; the
    #    cluster is going away, nobody needs a clean job end). slurmd would otherwise wait for
    #    its stepds, which keep retrying RPCs to a dead slurmctld.
    stepds=$(cluster_procs slurmstepd)
    if [ -n "$stepds" ]; then
        tasks=$(descendants $stepds)
        kill -KILL $stepds $tasks 2>/dev/null
        wait_gone 5 $stepds $tasks
    fi
    # 2. slurmctld (+ its slurmscriptd) and slurmd: pid files, plus any found by environment
    #    (covers a daemon that had not written its pid file yet when start failed).
    for f in slurmctld slurmd; do
        p=$(read_pid "$dir/run/$f.pid")
        pid_alive "$p" && grep -qx "$f" "/proc/$p/comm" 2>/dev/null && daemons+=("$p")
    done
    daemons+=($(cluster_procs slurmctld) $(cluster_procs slurmscriptd) $(cluster_procs slurmd))
    if [ ${#daemons[@]} -gt 0 ]; then
        kill -TERM "${daemons[@]}" 2>/dev/null
        wait_gone 5 "${daemons[@]}" || { kill -KILL "${daemons[@]}" 2>/dev/null; wait_gone 5 "${daemons[@]}"; }
    fi
    stepds=$(cluster_procs slurmstepd)   # anything slurmd started meanwhile
    if [ -n "$stepds" ]; then
        tasks=$(descendants $stepds)
        kill -KILL $stepds $tasks 2>/dev/null
        wait_gone 5 $stepds $tasks
    fi
    # 3. munged last.
    p=$(read_pid "$dir/run/munged.pid")
    pid_alive "$p" && grep -qx munged "/proc/$p/comm" 2>/dev/null && mungeds+=("$p")
    mungeds+=($(cluster_procs munged))
    if [ ${#mungeds[@]} -gt 0 ]; then
        kill -TERM "${mungeds[@]}" 2>/dev/null
        wait_gone 5 "${mungeds[@]}" || { kill -KILL "${mungeds[@]}" 2>/dev/null; wait_gone 5 "${mungeds[@]}"; }
    fi
    if [ -d "$dir" ] && [ -n "${SLURM_CLUSTER_KEEP_DIR:-}" ]; then
        log "killed daemons, kept $dir"
    elif [ -d "$dir" ]; then
        rm -rf "$dir"
        log "stopped in $((SECONDS - t0)) s, removed $dir"
    else
        log "nothing left of $dir"
    fi
    # Report (do not fail on) anything still alive.
    local left
    left=$(cluster_procs slurmctld; cluster_procs slurmscriptd; cluster_procs slurmd; cluster_procs slurmstepd; cluster_procs munged)
    if [ -n "$left" ]; then
        log "WARNING: still running: $(echo $left)"; return 1
    fi
    return 0
}

do_status() {
    local f p
    for f in munged slurmctld slurmd; do
        p=$(read_pid "$dir/run/$f.pid")
        if pid_alive "$p"; then echo "$f running (pid $p)"; else echo "$f not running"; fi
    done
    [ -f "$dir/slurm.conf" ] && SLURM_CONF="$dir/slurm.conf" sinfo 2>&1
}

case "$cmd" in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *) usage ;;
esac
