#!/usr/bin/env bash
# Runs one lflow-dist command as the tasks of a SLURM job step, and requeues the job when the
# command was preempted (status 75: a checkpoint was written) or lost a rank (status 69: the
# collective watchdog ended it). Called by Launch/slurm.sbatch and Launch/search.sbatch:
#
#   Launch/slurm-job.sh train  --config C --data D --run-dir R [--set k=v ...]
#   Launch/slurm-job.sh search --config C --data D --run-dir R [--grid f=v1,v2 ...]
#
# Launcher. `srun --mpi=pmix` starts one rank per task (OpenMPI 4 and 5 talk PMIx to SLURM's
# pmix plugin). It is the launcher SLURM knows: --signal=USR1@N and scancel --signal reach the
# ranks themselves, the ranks are the job's tasks (accounting, cleanup, --kill-on-bad-exit), and
# nothing needs root flags. Plain `srun` without --mpi=pmix dies in MPI_Init on clusters whose
# MpiDefault is not pmix, hence the explicit flag. Where SLURM has no pmix plugin
# (`srun --mpi=list`), `mpirun` is used instead: OpenMPI reads the allocation from SLURM and
# starts its daemons with srun; signals sent to the batch shell (scancel --batch, SIGTERM) are
# passed on to it. LFLOW_LAUNCHER=srun|mpirun forces one.
#
# Environment: LFLOW_DIST (the binary, default lflow-dist on PATH), LFLOW_MAX_RESTARTS (default
# 20: requeue at most this often), LFLOW_LAUNCHER. OPENBLAS_NUM_THREADS and OMP_NUM_THREADS are
# set to --cpus-per-task.
set -uo pipefail
bin=${LFLOW_DIST:-lflow-dist}
threads=${SLURM_CPUS_PER_TASK:-1}
export OPENBLAS_NUM_THREADS=$threads OMP_NUM_THREADS=$threads
# srun does not inherit --cpus-per-task from the allocation since SLURM 22.05.
export SRUN_CPUS_PER_TASK=$threads
restarts=${SLURM_RESTART_COUNT:-0}
max_restarts=${LFLOW_MAX_RESTARTS:-20}

launcher=${LFLOW_LAUNCHER:-}
if [ -z "$launcher" ]; then
    if srun --mpi=list 2>&1 | grep -qw pmix; then launcher=srun; else launcher=mpirun; fi
fi
case $launcher in
    srun) command=(srun --mpi=pmix --kill-on-bad-exit=1 "$bin" "$@") ;;
    mpirun) command=(mpirun "$bin" "$@") ;;
    *) echo "slurm-job: LFLOW_LAUNCHER must be srun or mpirun, not '$launcher'" >&2; exit 2 ;;
esac
echo "slurm-job: job ${SLURM_JOB_ID:-?} (run $((restarts + 1)), ${SLURM_NTASKS:-?} tasks × $threads threads on ${SLURM_JOB_NODELIST:-?}): ${command[*]}"

# The step runs in the background so that this shell can pass signals on: SLURM's own signals
# (time limit, requeue, scancel) reach the tasks directly, but scancel --batch and the
# B:-prefixed --signal reach only this shell.
"${command[@]}" &
step=$!
terminated=
trap 'kill -s USR1 "$step" 2>/dev/null' USR1
trap 'terminated=1; kill -s TERM "$step" 2>/dev/null' TERM
status=0
while :; do
    wait "$step"
    status=$?
    kill -0 "$step" 2>/dev/null || break     # a trapped signal interrupted `wait`; keep waiting
done

# What a field of `scontrol show job` says now.
job_field() { scontrol show job -o "$SLURM_JOB_ID" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p"; }

case $status in
    75|69)
        what=$([ "$status" = 75 ] && echo "preempted (checkpoint written)" || echo "a rank or host was lost (collective watchdog)")
        if [ -n "$terminated" ]; then
            # SIGTERM came from SLURM: requeue after a time limit or a preemption; not after a
            # user's scancel, nor when SLURM requeued the job itself (scontrol requeue, preemption
            # in requeue mode: its restart count has already gone up).
            reason=$(job_field Reason)
            if [ "$(job_field Restarts)" -gt "$restarts" ] 2>/dev/null; then
                echo "slurm-job: $what; SLURM has requeued the job itself, it resumes from the newest checkpoint"
                exit "$status"
            fi
            case $reason in
                TimeLimit|Preempt*) ;;
                *) echo "slurm-job: $what after the job was cancelled (reason: ${reason:-none}); not requeueing. Submit the same command again to resume from the newest checkpoint."
                   exit "$status" ;;
            esac
        fi
        if [ "$restarts" -ge "$max_restarts" ]; then
            echo "slurm-job: $what, but the job was already requeued $restarts times (LFLOW_MAX_RESTARTS); not requeueing. Submit it again to resume." >&2
            exit "$status"
        fi
        echo "slurm-job: $what; requeueing job $SLURM_JOB_ID to resume from the newest checkpoint (exit $status)"
        # SLURM may end this script as soon as the requeue is accepted.
        scontrol requeue "$SLURM_JOB_ID" ||
            echo "slurm-job: scontrol requeue failed; run the same sbatch command again to resume" >&2
        ;;
esac
exit "$status"
