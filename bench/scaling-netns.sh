#!/usr/bin/env bash
# The inputs of docs/performance.md's scaling table ("Past one node"): the allreduce of the real
# gradient buffers (bench sizes small and paper) between network-namespace "hosts" over TCP, with
# each host's link limited by tc to each rate in turn.
#
#   bench/scaling-netns.sh OUT_DIR              (about 10 minutes on 2 cores, more if it waits)
#   python3 bench/scaling-table.py OUT_DIR      the fits and the tables, as Markdown
#
# needs root, iproute2 (tc), Open MPI, iperf3 and ping, and a release build
# (swift build -c release). Environment (defaults):
#   BIN=.build/release/lflow-dist
#   PHASES="steps allreduce" steps: first the step times the table combines with, on this machine
#                            without namespaces, into OUT_DIR/steps/: 1 rank, 1 thread, float32
#                            (bench's worker under mpirun -n 1, 1 + 5 steps) at the size's own
#                            batch B and at B/2, B/8, B/32, B/64 (one rank's share of a fixed
#                            global batch on 2, 8, 32, 64 ranks; its step without the allreduce),
#                            then `lflow-dist bench --sizes S --steps 5 --no-pytorch` (1×1, 1×2,
#                            2×1; STEPS_DRIVER=0 skips it)
#   HOSTS=4                  hosts made (Launch/netns-cluster.sh up NAME HOSTS); the allreduce
#                            runs on 2, 3, …, HOSTS of them, 1 rank each
#   RATES="none 1gbit 10gbit 25gbit"   tc rates; none: the veth as it is (what this machine reaches)
#   REPEATS=20 WARMUP=3      bench --allreduce repetitions per buffer and path
#   FLOATS=1,4096,65536,1048576   extra buffer lengths (for the latency/bandwidth fit)
#   NAME=scal                the cluster's name; it is taken down (netns-cluster.sh down NAME) on exit
#   QUIET=85 QUIET_WAIT=300  before each measurement, wait (at most QUIET_WAIT s) until the CPUs
#                            are QUIET % idle over 3 s, so that other work on a shared machine
#                            stays out of it; what it saw is logged beside it (QUIET=0: no wait)
#
# For each rate it shapes both ends of every host's veth with a token bucket (tbf: the host's
# eth0, which limits what the host sends, and its bridge port in the root namespace, which limits
# what it receives: a NIC of that rate into a non-blocking switch), then writes to OUT_DIR/RATE/:
#   tc.txt            the qdiscs as set (tc -s qdisc), after the measurements
#   ping.txt          round trip host 1 → host 2, idle link (200 pings, 10 ms apart)
#   iperf1.json       one TCP stream host 1 → host 2 for 5 s (iperf3 -J): the link's achieved rate
#   pP.json / pP.txt  mpirun over hosts 1..P (btl tcp only), lflow-dist bench --allreduce
#                     --sizes small,paper --floats $FLOATS: the trainer's path and the blocking one
#   pHOSTS-nbcring.*  the same at P = HOSTS with --mca coll_libnbc_iallreduce_algorithm 1, i.e. the
#                     trainer's non-blocking allreduce made to use a ring (Open MPI 4.1's libnbc
#                     picks a binomial tree for every in-place MPI_Iallreduce)
# Traffic goes only between the namespaces it made. Nothing else on the machine is changed.
set -euo pipefail

OUT=${1:?usage: bench/scaling-netns.sh OUT_DIR}
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
NC=$ROOT/Launch/netns-cluster.sh
BIN=${BIN:-$ROOT/.build/release/lflow-dist}
PHASES=${PHASES:-steps allreduce}
HOSTS=${HOSTS:-4}
RATES=${RATES:-"none 1gbit 10gbit 25gbit"}
REPEATS=${REPEATS:-20}
WARMUP=${WARMUP:-3}
FLOATS=${FLOATS:-1,4096,65536,1048576}
NAME=${NAME:-scal}
[[ -x $BIN ]] || { echo "no $BIN: run swift build -c release first" >&2; exit 1; }
[[ $HOSTS -ge 2 ]] || { echo "HOSTS must be >= 2" >&2; exit 1; }
QUIET=${QUIET:-85}
QUIET_WAIT=${QUIET_WAIT:-300}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1

mkdir -p "$OUT"

# idle, quiet and shape (the token buckets).
source "$ROOT/bench/netns-common.sh"

if [[ " $PHASES " == *" steps "* ]]; then
  mkdir -p "$OUT/steps"
  for spec in "small 64" "paper 256"; do
    read -r size batch <<<"$spec"
    for p in 1 2 8 32 64; do
      b=$(( batch / p ))
      echo "== steps: $size at per-rank batch $b: $(quiet); $(uptime)" | tee -a "$OUT/steps/load.txt"
      mpirun --oversubscribe --bind-to none -x OPENBLAS_NUM_THREADS=1 -n 1 "$BIN" bench --worker-size "$size" --batch "$b" \
        --worker-threads 1 --worker-precision float32 --steps 5 --warmup 1 --worker-out "$OUT/steps/$size-b$b.json"
    done
    if [[ ${STEPS_DRIVER:-1} == 1 ]]; then
      echo "== steps: bench --sizes $size: $(quiet); $(uptime)" | tee -a "$OUT/steps/load.txt"
      "$BIN" bench --sizes "$size" --steps 5 --no-pytorch --json "$OUT/steps/$size.json" >"$OUT/steps/$size.txt" 2>&1
    fi
  done
fi
[[ " $PHASES " == *" allreduce "* ]] || exit 0
trap 'bash "$NC" down "$NAME"' EXIT
bash "$NC" up "$NAME" "$HOSTS" >"$OUT/hosts"
mapfile -t ADDR <"$OUT/hosts"
SUBNET=$(bash "$NC" subnet "$NAME")
{ echo "date: $(date -u +%FT%TZ)"; echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"; echo "cores: $(nproc)"
  echo "kernel: $(uname -r)"; echo "mpi: $(mpirun --version | head -1)"; echo "load before: $(uptime)"
  echo "hosts: ${ADDR[*]} ($SUBNET)"; } >"$OUT/env.txt"

# allreduce P LABEL [mpirun options]: 1 rank on each of hosts 1..P.
allreduce() {
  local p=$1 label=$2; shift 2
  local hostlist; hostlist=$(printf '%s:1,' "${ADDR[@]:0:$p}"); hostlist=${hostlist%,}
  echo "$label: $(quiet); $(uptime)" | tee -a "$OUT/$rate/load.txt"
  mpirun --oversubscribe --bind-to none --mca plm_rsh_agent "$ROOT/Launch/netns-rsh.sh" \
    --mca btl tcp,self --mca btl_tcp_if_include "$SUBNET" --mca oob_tcp_if_include "$SUBNET" \
    --host "$hostlist" -x OPENBLAS_NUM_THREADS=1 -n "$p" "$@" \
    "$BIN" bench --allreduce --sizes small,paper --floats "$FLOATS" --repeats "$REPEATS" --warmup "$WARMUP" \
    --json "$OUT/$rate/$label.json" >"$OUT/$rate/$label.txt" 2>&1
  cat "$OUT/$rate/$label.txt"
}

for rate in $RATES; do
  echo "== link: $rate"
  mkdir -p "$OUT/$rate"
  shape "$rate"
  ip netns exec "$NAME-h1" ping -c 200 -i 0.01 -q "${ADDR[1]}" >"$OUT/$rate/ping.txt" 2>&1 || true
  tail -1 "$OUT/$rate/ping.txt"
  ip netns exec "$NAME-h2" iperf3 -s -1 -D -B "${ADDR[1]}"
  sleep 0.5
  ip netns exec "$NAME-h1" iperf3 -c "${ADDR[1]}" -t 5 -J >"$OUT/$rate/iperf1.json"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("iperf3, 1 stream: %.2f Gbit/s" % (d["end"]["sum_received"]["bits_per_second"]/1e9))' "$OUT/$rate/iperf1.json"
  for p in $(seq 2 "$HOSTS"); do allreduce "$p" "p$p"; done
  allreduce "$HOSTS" "p$HOSTS-nbcring" --mca coll_libnbc_iallreduce_algorithm 1
  : >"$OUT/$rate/tc.txt"
  for i in $(seq 1 "$HOSTS"); do
    { echo "$NAME-v$i (bridge port):"; tc -s qdisc show dev "$NAME-v$i"
      echo "$NAME-h$i eth0:"; ip netns exec "$NAME-h$i" tc -s qdisc show dev eth0; } >>"$OUT/$rate/tc.txt"
  done
done
echo "load after: $(uptime)" >>"$OUT/env.txt"
