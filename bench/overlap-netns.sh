#!/usr/bin/env bash
# The gain of overlapping the gradient reduction with the backward (overlapAllreduce, Sources/
# Distributed/GradientReduction.swift) on a limited link: the training step of a bench size timed
# between network-namespace "hosts" over TCP (1 rank each), each host's link limited by tc, with the
# overlap on and off, alternating (on, off, on, off, ...) so that drift in the machine's load falls on
# both alike. docs/performance.md, "Past one node", has the results.
#
#   bench/overlap-netns.sh OUT_DIR            (a few minutes at paper size on 2 cores)
#
# needs root, iproute2 (tc), Open MPI and a release build. Environment (defaults):
#   BIN=.build/release/lflow-dist
#   SIZE=paper                bench size; its own global batch (paper 256), split over the ranks
#   HOSTS_LIST="2 4"          ranks (= hosts) to measure
#   RATE=1gbit                tc rate of every host's link, both directions (as bench/scaling-netns.sh)
#   STEPS=8 WARMUP=2          timed and untimed steps per run (bench's worker: the trainer's TrainingStep)
#   ROUNDS=2                  on/off pairs per host count
#   NAME=ovl                  the cluster's name; taken down on exit
#   QUIET=85 QUIET_WAIT=300   wait until the CPUs are QUIET % idle over 3 s before each run (0: no wait)
# Writes OUT_DIR/pP-overlapX-rR.json (bench's worker result: per-step seconds, phases) and
# OUT_DIR/summary.txt (median step per configuration, and the gain).
set -euo pipefail

OUT=${1:?usage: bench/overlap-netns.sh OUT_DIR}
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
NC=$ROOT/Launch/netns-cluster.sh
BIN=${BIN:-$ROOT/.build/release/lflow-dist}
SIZE=${SIZE:-paper}
HOSTS_LIST=${HOSTS_LIST:-"2 4"}
RATE=${RATE:-1gbit}
STEPS=${STEPS:-8}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-2}
NAME=${NAME:-ovl}
QUIET=${QUIET:-85}
QUIET_WAIT=${QUIET_WAIT:-300}
[[ -x $BIN ]] || { echo "no $BIN: run swift build -c release first" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
mkdir -p "$OUT"
HOSTS=0
for p in $HOSTS_LIST; do [[ $p -gt $HOSTS ]] && HOSTS=$p; done

# idle, quiet and shape (the token buckets of bench/scaling-netns.sh).
source "$ROOT/bench/netns-common.sh"

trap 'bash "$NC" down "$NAME"' EXIT
bash "$NC" up "$NAME" "$HOSTS" >"$OUT/hosts"
mapfile -t ADDR <"$OUT/hosts"
SUBNET=$(bash "$NC" subnet "$NAME")
{ echo "date: $(date -u +%FT%TZ)"; echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"; echo "cores: $(nproc)"
  echo "mpi: $(mpirun --version | head -1)"; echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "size $SIZE, rate $RATE, steps $WARMUP + $STEPS, rounds $ROUNDS"; echo "load before: $(uptime)"; } >"$OUT/env.txt"

shape "$RATE"

for p in $HOSTS_LIST; do
  hostlist=$(printf '%s:1,' "${ADDR[@]:0:$p}"); hostlist=${hostlist%,}
  for r in $(seq 1 "$ROUNDS"); do
    for overlap in on off; do
      label="p$p-overlap$overlap-r$r"
      echo "$label: $(quiet); $(uptime)" | tee -a "$OUT/load.txt"
      mpirun --oversubscribe --bind-to none --mca plm_rsh_agent "$ROOT/Launch/netns-rsh.sh" \
        --mca btl tcp,self --mca btl_tcp_if_include "$SUBNET" --mca oob_tcp_if_include "$SUBNET" \
        --host "$hostlist" -x OPENBLAS_NUM_THREADS=1 -n "$p" \
        "$BIN" bench --worker-size "$SIZE" --worker-threads 1 --worker-precision float32 --worker-overlap "$overlap" \
        --steps "$STEPS" --warmup "$WARMUP" --worker-out "$OUT/$label.json" >"$OUT/$label.log" 2>&1
    done
  done
done

python3 - "$OUT" "$HOSTS_LIST" <<'EOF' | tee "$OUT/summary.txt"
import glob, json, statistics, sys
out, hosts = sys.argv[1], sys.argv[2].split()
print("ranks  overlap  median step s (all timed steps of all rounds)  allreduce phase s/step  rank wait s/step")
med = {}
for p in hosts:
    for o in ["on", "off"]:
        runs = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/p{p}-overlap{o}-r*.json"))]
        steps = [s for r in runs for s in r["stepSeconds"]]
        ar = statistics.mean(r["phases"].get("allreduce", 0) for r in runs)
        wait = statistics.mean(r["phases"].get("waiting for the slowest rank", 0) for r in runs)
        med[(p, o)] = statistics.median(steps)
        print(f"{p:>5}  {o:>7}  {med[(p, o)]:.3f} ({min(steps):.3f}-{max(steps):.3f}, {len(steps)} steps)"
              f"                  {ar:.3f}                  {wait:.3f}")
for p in hosts:
    on, off = med[(p, "on")], med[(p, "off")]
    print(f"{p} ranks: overlap saves {off - on:.3f} s a step ({100 * (off - on) / off:.1f}% of the step without it)")
EOF
