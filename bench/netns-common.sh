# bench/netns-common.sh: what the network-namespace benchmarks share (sourced by
# bench/scaling-netns.sh and bench/overlap-netns.sh): waiting for an idle CPU on a shared
# machine, and shaping every host's link with a token bucket. Expects NAME (the cluster's name
# in Launch/netns-cluster.sh), HOSTS, QUIET and QUIET_WAIT to be set by the caller.

# idle: percent of CPU time idle over the next 3 s.
idle() {
  local a b c d e f g t1 i1 t2 i2
  read -r _ a b c d e f g _ </proc/stat; t1=$((a + b + c + d + e + f + g)); i1=$((d + e))
  sleep 3
  read -r _ a b c d e f g _ </proc/stat; t2=$((a + b + c + d + e + f + g)); i2=$((d + e))
  echo $(( 100 * (i2 - i1) / (t2 - t1) ))
}

# quiet: wait until idle >= QUIET (at most QUIET_WAIT s); prints what it saw.
quiet() {
  local i seen=100
  [[ $QUIET -gt 0 ]] || { echo "idle not checked"; return; }
  for i in $(seq 1 $(( (QUIET_WAIT + 2) / 3 ))); do
    seen=$(idle); [[ $seen -ge $QUIET ]] && break
  done
  echo "idle $seen% before it (after $(( i * 3 )) s)"
}

# shape RATE: a tbf of RATE (e.g. 10gbit) on both ends of every host's veth, the host's eth0
# (what it sends) and its bridge port (what it receives); none: no qdisc of ours.
shape() {
  local rate=$1 i bits burst
  for i in $(seq 1 "$HOSTS"); do
    tc qdisc del dev "$NAME-v$i" root 2>/dev/null || true
    ip netns exec "$NAME-h$i" tc qdisc del dev eth0 root 2>/dev/null || true
  done
  [[ $rate == none ]] && return 0
  bits=$(( ${rate%gbit} * 1000000000 ))
  # 1 ms at the rate (at least 64 KiB, one GSO packet): larger than the timer tick's worth, so
  # the bucket and not the timer sets the rate; the queue holds 50 ms more.
  burst=$(( bits / 8 / 1000 )); [[ $burst -lt 65536 ]] && burst=65536
  for i in $(seq 1 "$HOSTS"); do
    tc qdisc add dev "$NAME-v$i" root tbf rate "$rate" burst "$burst" latency 50ms
    ip netns exec "$NAME-h$i" tc qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
  done
}
