#!/usr/bin/env bash
# Preemption soak: sends SIGTERM or SIGUSR1, at seeded random moments, to real runs late in
# their training, and checks that every one ends cleanly: status 75 with a checkpoint named
# (or 0 when the run was already done before the signal was seen), and nothing from a
# sanitizer, glibc's heap checks or the kernel (a trap) in its output. Every 10th signalled run
# is then resumed to its end. The runs rotate over five moments that each hold something to
# tear: checkpoint writes (a checkpoint every epoch), the end-of-run prediction, the switch
# between ensemble members, a PBT exploit, and the Area2_Bump small-data config with the eval
# trials' held-in spikes.
#
#   bash Launch/test.sh --sanitize address --quick       # builds .build-asan (and runs the quick tier)
#   Launch/signal-soak.sh .build-asan/release/lflow-dist 200 [SEED] [DIR]
#
# It prints one line per run and a summary; the exit status is 0 only if every run was clean.
# DIR (default: a new temporary directory) keeps the data, the base runs and each run's log.
set -uo pipefail
bin=$(realpath "${1:?usage: Launch/signal-soak.sh BINARY RUNS [SEED] [DIR]}")
runs=${2:-200}
seed=${3:-1}
dir=${4:-$(mktemp -d /tmp/signal-soak.XXXXXX)}
repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dir"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# ASan: a report ends the process with status 99 (never 75), and leaks are not this soak's subject.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:exitcode=99:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=98}
RANDOM=$seed
uniform() { echo "$(( RANDOM % 1000 ))"; }     # 0..999, seeded

mpi() { mpirun --oversubscribe -x OPENBLAS_NUM_THREADS -x ASAN_OPTIONS -x UBSAN_OPTIONS -n "$@"; }

# --- data ---------------------------------------------------------------------------------
lorenz=$dir/lorenz.h5
[ -f "$lorenz" ] || "$bin" synth --out "$lorenz" --conditions 6 --trials-per-condition 10 --bins 20 --forward-bins 4 \
    --neurons 16 --held-out 4 --seed 5 >/dev/null
area2=$dir/area2/input.h5
if [ ! -f "$area2" ]; then
    python3 "$repo/../shared/tools/nlbsynth/make_dataset.py" --preset area2_bump --trials 240 --out "$dir/area2" --seed 7 \
        >/dev/null 2>&1 || "$bin" synth --out "$area2" --conditions 8 --trials-per-condition 30 --bins 30 --forward-bins 10 \
        --neurons 49 --held-out 16 --seed 7 >/dev/null
fi

# --- the five kinds of run: name, ranks and arguments (the run directory is appended) --------
tiny=(--config "$repo/Configs/tiny.yaml" --data "$lorenz")
declare -A ranks args
ranks[checkpoint]=2; args[checkpoint]="train ${tiny[*]} --set epochs=100 --set checkpointEvery=1"
ranks[endofrun]=2;   args[endofrun]="train ${tiny[*]} --set epochs=4 --set predictionSamples=100"
ranks[ensemble]=2;   args[ensemble]="train ${tiny[*]} --set epochs=15 --set ensemble=4"
ranks[pbt]=2;        args[pbt]="search ${tiny[*]} --strategy pbt --population 2 --generation-epochs 2 --set epochs=16"
ranks[area2]=1;      args[area2]="train --config $repo/Configs/area2_bump.yaml --data $area2 --set hidden=16 --set feedForward=32 --set epochs=40 --set klWarmupEpochs=4 --set weightDecayWarmupEpochs=4 --set ensemble=2 --set batchSize=32"
kinds=(checkpoint endofrun ensemble pbt area2)
# Where each kind's signalled runs start: a copy of a base run taken part-way, so signals land
# late in training (checkpoint: at epoch 60 of 100), or after it (endofrun: a finished run, so
# the command only predicts and reports), or nothing (ensemble, pbt, area2: their switches,
# exploits and second models are spread over the whole run, and a resumed ensemble keeps
# finished members, so a base run would leave nothing to signal).
declare -A start
start[checkpoint]="--set epochs=60"; start[endofrun]=""; start[ensemble]=fresh; start[pbt]=fresh
start[area2]=fresh

run() { # run KIND RUNDIR [extra args]: the command, in the foreground
    local kind=$1 rundir=$2; shift 2
    # shellcheck disable=SC2086
    mpi "${ranks[$kind]}" "$bin" ${args[$kind]} "$@" --run-dir "$rundir"
}

declare -A duration
for kind in "${kinds[@]}"; do
    base=$dir/base-$kind
    if [ ! -d "$base" ] && [ "${start[$kind]}" = fresh ]; then
        mkdir -p "$base"
    elif [ ! -d "$base" ]; then
        # shellcheck disable=SC2086
        run "$kind" "$base" ${start[$kind]} >"$dir/base-$kind.log" 2>&1 || { echo "base run $kind failed: $dir/base-$kind.log"; exit 1; }
    fi
    # How long the rest takes, unsignalled (on a copy), to aim the signals inside it.
    rm -rf "$dir/calibrate"; cp -a "$base" "$dir/calibrate"
    t0=$(date +%s.%N)
    run "$kind" "$dir/calibrate" >"$dir/calibrate-$kind.log" 2>&1 || { echo "calibration run $kind failed: $dir/calibrate-$kind.log"; exit 1; }
    duration[$kind]=$(echo "$(date +%s.%N) - $t0" | bc)
    echo "$kind: the rest of the run takes ${duration[$kind]} s unsignalled"
done

problems() { grep -E -m3 'AddressSanitizer|UndefinedBehaviorSanitizer|ThreadSanitizer|runtime error|LeakSanitizer|corrupted|double free|free\(\): |malloc\(\)|Fatal error|Segmentation fault|Illegal instruction|Aborted|core dumped|signal [0-9]+ \(' "$1"; }

preempted=0 finished=0 failed=0 resumed=0
for i in $(seq 0 $((runs - 1))); do
    kind=${kinds[$((i % ${#kinds[@]}))]}
    rundir=$dir/run
    rm -rf "$rundir"; cp -a "$dir/base-$kind" "$rundir"
    # A moment between 0.1 s and 98% of the rest of the run (in the first 0.1 s the ranks are
    # being exec'd and their libraries loaded, before any code of ours can install a handler);
    # SIGTERM or SIGUSR1; every rank (as srun signals a job step) or one rank only (the others
    # learn it at the next agreement).
    delay=$(echo "scale=3; 0.1 + (${duration[$kind]} * 0.98 - 0.1) * $(uniform) / 1000" | bc)
    signal=$([ $((RANDOM % 2)) = 0 ] && echo TERM || echo USR1)
    whom=$([ $((RANDOM % 3)) = 0 ] && echo one || echo all)
    log=$dir/run-$i-$kind.log
    run "$kind" "$rundir" >"$log" 2>&1 &
    job=$!
    sleep "$delay"
    pids=$(pgrep -f "^$bin .*--run-dir $rundir" || true)
    [ "$whom" = one ] && pids=$(echo "$pids" | head -1)
    [ -n "$pids" ] && kill -s "$signal" $pids 2>/dev/null
    wait "$job"
    status=$?
    found=$(problems "$log")
    verdict=""
    if [ -n "$found" ]; then verdict="FAIL (sanitizer or crash: $found)"
    elif [ "$status" = 75 ]; then verdict="preempted, 75"; preempted=$((preempted + 1))
    elif [ "$status" = 0 ] && grep -q "done in\|search finished\|search done" "$log"; then verdict="finished before the signal, 0"; finished=$((finished + 1))
    else verdict="FAIL (status $status)"
    fi
    if [[ $verdict != FAIL* ]] && [ "$status" = 75 ] && [ $((preempted % 10)) = 0 ]; then
        run "$kind" "$rundir" >"$log.resume" 2>&1
        rs=$?
        if [ "$rs" = 0 ] && [ -z "$(problems "$log.resume")" ]; then resumed=$((resumed + 1)); verdict="$verdict, resumed to the end"
        else verdict="FAIL (the resume ended with $rs: $log.resume)"; preempted=$((preempted - 1)); fi
    fi
    [[ $verdict == FAIL* ]] && failed=$((failed + 1))
    printf '%4d %-10s SIG%-4s to %-3s after %6.2f s: %s\n' "$i" "$kind" "$signal" "$whom" "$delay" "$verdict"
done
echo "signal soak (seed $seed, $bin): $runs runs, $preempted ended with 75 ($resumed of them resumed to the end), $finished finished before the signal, $failed failed; logs in $dir"
[ "$failed" = 0 ]
