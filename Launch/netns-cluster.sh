#!/usr/bin/env bash
# A pretend multi-host cluster made of network namespaces, for tests (needs root and iproute2).
#
#   Launch/netns-cluster.sh up NAME N          N hosts NAME-h1..NAME-hN, each with a veth into the bridge
#                                              NAME-br (10.77.X.1/24) in the root namespace; hosts get
#                                              10.77.X.11, .12, ...  Prints the host addresses, one a line.
#   Launch/netns-cluster.sh down NAME          kills every process in the namespaces, deletes namespaces,
#                                              veths, bridge and state.  Idempotent.
#   Launch/netns-cluster.sh link-down NAME I   takes host I's link down (its bridge port: the veth end in
#   Launch/netns-cluster.sh link-up NAME I     the root namespace), or back up.
#   Launch/netns-cluster.sh hosts NAME         prints the host addresses again.
#   Launch/netns-cluster.sh subnet NAME        prints the subnet (10.77.X.0/24), for btl/oob_tcp_if_include.
#   Launch/netns-cluster.sh exec NAME I CMD..  runs CMD (argv, no shell) in host I.
#   Launch/netns-cluster.sh agent [ssh options] HOST COMMAND...
#                                              an rsh/ssh stand-in for OpenMPI (--mca plm_rsh_agent):
#                                              runs `sh -c "COMMAND..."` in the namespace of HOST
#                                              (an address 10.77.X.1N, a name NAME-hI, or NAME-hI's
#                                              hostname).  Ignores ssh options such as -x, -l USER, -p N.
#
# NAME is a short prefix (letters, digits, at most 9 characters: interface names are limited to 15)
# so that several clusters can coexist.  State lives in /run/netns-cluster/NAME/.
#
# The namespaces share everything but the network (and, for processes started by `agent`, the host
# name): `ip netns exec` keeps the root filesystem, so the cluster sees one shared filesystem.
# Each host also gets /etc/netns/NAME-hI/hosts, which `ip netns exec` bind-mounts over /etc/hosts
# inside that host, so the host names NAME-h1.. resolve there.
#
# Why link-down takes down the root-side veth end (the bridge port), not the one inside the host:
#  * it is what a dead switch port or a pulled cable looks like: the host's own configuration stays
#    untouched (interface admin-UP, address and routes kept); it only loses carrier (NO-CARRIER), and
#    packets it sends are silently dropped, so its TCP peers see silence and time out, as on real
#    hardware.  Taking the host's end down is an administrative act on the host: the kernel removes
#    its connected route, and its own sends fail at once with ENETUNREACH, which is a different and
#    friendlier failure than a lost link.
#  * link-up then restores exactly the previous state (no routes to re-add inside the host).
#  * the host is frozen from the outside without running anything inside its namespace.
set -euo pipefail

STATE_ROOT=/run/netns-cluster
LOCK=$STATE_ROOT/.lock

die() { echo "netns-cluster: $*" >&2; exit 1; }

check_name() {
  [[ ${1:-} =~ ^[A-Za-z][A-Za-z0-9]{0,8}$ ]] || die "NAME must be a letter then up to 8 letters/digits: '${1:-}'"
}

# A free 10.77.X.0/24: not on any interface or route of the root namespace, not taken by another cluster.
free_x() {
  local used x
  used=$( { ip -4 -o addr show; ip -4 route show table all; cat "$STATE_ROOT"/*/subnet 2>/dev/null; } \
            | grep -oE '10\.77\.[0-9]+\.' | cut -d. -f3 | sort -un)
  for x in $(seq 1 254); do
    grep -qx "$x" <<<"$used" || { echo "$x"; return; }
  done
  die "no free 10.77.X.0/24"
}

cmd_up() {
  local name=${1:-} n=${2:-}
  check_name "$name"
  [[ $n =~ ^[0-9]+$ && $n -ge 1 && $n -le 99 ]] || die "N must be 1..99"
  mkdir -p "$STATE_ROOT"
  exec 9>"$LOCK"; flock 9
  [[ -e $STATE_ROOT/$name ]] && die "cluster $name already exists (run: $0 down $name)"
  local x; x=$(free_x)
  local dir=$STATE_ROOT/$name
  mkdir -p "$dir"
  echo "$x" >"$dir/subnet"
  echo "$n" >"$dir/n"
  trap 'echo "netns-cluster: up failed, tearing down" >&2; cmd_down_locked "$name"' ERR
  local br=$name-br
  ip link add "$br" type bridge
  ip addr add "10.77.$x.1/24" dev "$br"
  ip link set "$br" up
  local hosts="" i
  for i in $(seq 1 "$n"); do hosts+="10.77.$x.$((10 + i)) $name-h$i"$'\n'; done
  : >"$dir/hosts"
  for i in $(seq 1 "$n"); do
    local ns=$name-h$i veth=$name-v$i addr=10.77.$x.$((10 + i))
    ip netns add "$ns"
    ip link add "$veth" type veth peer name "$name-p$i"
    ip link set "$name-p$i" netns "$ns"
    ip link set "$veth" master "$br"
    ip link set "$veth" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "$name-p$i" name eth0
    ip -n "$ns" addr add "$addr/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "10.77.$x.1"
    mkdir -p "/etc/netns/$ns"
    { printf '127.0.0.1 localhost\n'; printf '%s' "$hosts"; } >"/etc/netns/$ns/hosts"
    echo "$addr $ns" >>"$dir/hosts"
  done
  trap - ERR
  cut -d' ' -f1 "$dir/hosts"
}

kill_ns_procs() {
  # SIGTERM, then SIGKILL whatever is left (ranks stuck in MPI calls may ignore or defer SIGTERM);
  # then wait until every process seen has really gone (a process being killed can already have
  # left the namespace listing while it still exists).
  local ns=$1 pids seen="" round p
  for round in 1 2 3 4 5 6 7 8 9 10; do
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [[ -z $pids ]] && break
    seen+=" $pids"
    if [[ $round -eq 1 ]]; then kill -TERM $pids 2>/dev/null || true; sleep 0.5
    else kill -KILL $pids 2>/dev/null || true; sleep 0.2; fi
  done
  for round in $(seq 1 50); do
    local alive=""
    for p in $seen; do
      [[ -e /proc/$p ]] && [[ $(awk '{print $3}' "/proc/$p/stat" 2>/dev/null) != Z ]] && alive+=" $p"
    done
    [[ -z $alive ]] && return 0
    kill -KILL $alive 2>/dev/null || true
    sleep 0.1
  done
  echo "netns-cluster: processes survive from $ns:$alive" >&2
}

cmd_down_locked() {
  local name=$1 dir=$STATE_ROOT/$1 ns i
  # Namespaces named NAME-h<number>, whether or not the state says so (state may be half written).
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$name-h[0-9]+$" || true); do
    kill_ns_procs "$ns"
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"
  done
  # Root-side veth ends (deleting one deletes its peer) and the bridge.
  for i in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 \
             | grep -E "^$name-(v|p)[0-9]+$" || true); do
    ip link del "$i" 2>/dev/null || true
  done
  ip link del "$name-br" 2>/dev/null || true
  rm -rf "/etc/netns/$name-h"[0-9]* 2>/dev/null || true
  rm -rf "$dir"
  rmdir /etc/netns 2>/dev/null || true
}

cmd_down() {
  local name=${1:-}
  check_name "$name"
  mkdir -p "$STATE_ROOT"
  exec 9>"$LOCK"; flock 9
  cmd_down_locked "$name"
}

need_cluster() {
  check_name "${1:-}"
  [[ -d $STATE_ROOT/$1 ]] || die "no cluster $1"
}

cmd_link() {
  local updown=$1 name=${2:-} i=${3:-}
  need_cluster "$name"
  [[ $i =~ ^[0-9]+$ ]] && ip link show "$name-v$i" >/dev/null 2>&1 || die "no host $i in $name"
  ip link set "$name-v$i" "$updown"
}

# ns name for an address, an ns name, or a host name; searches every cluster.
resolve_host() {
  local h=${1#*@} f
  h=${h%%:*}
  for f in "$STATE_ROOT"/*/hosts; do
    [[ -f $f ]] || continue
    awk -v h="$h" '$1 == h || $2 == h { print $2; found = 1; exit } END { exit !found }' "$f" && return 0
  done
  return 1
}

cmd_agent() {
  [[ -n ${NETNS_CLUSTER_AGENT_LOG:-} ]] && printf '%s argv:%s\n' "$(date +%T.%N)" "$(printf ' [%s]' "$@")" >>"$NETNS_CLUSTER_AGENT_LOG"
  # Skip ssh options; those that take an argument consume the next word too.
  while [[ $# -gt 0 && $1 == -* ]]; do
    case $1 in
      --) shift; break ;;
      -[bcDEeFIiJLlmOoPpQRSWw]) shift; shift || true ;;
      *) shift ;;
    esac
  done
  [[ $# -ge 1 ]] || die "agent: usage: agent [ssh options] HOST COMMAND..."
  local host=$1; shift
  local ns; ns=$(resolve_host "$host") || die "agent: unknown host '$host'"
  local cmd="$*"
  [[ -n ${NETNS_CLUSTER_AGENT_LOG:-} ]] && printf '%s host=%s ns=%s cmd=%s\n' "$(date +%T.%N)" "$host" "$ns" "$cmd" >>"$NETNS_CLUSTER_AGENT_LOG"
  # Own UTS namespace with the host's name, so each pretend host has its own hostname (OpenMPI
  # names per-node session directories after it).  No command: an interactive shell, like ssh.
  if [[ -z $cmd ]]; then
    exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1"; exec sh -i' sh "$ns"
  fi
  exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1"; exec sh -c "$2"' sh "$ns" "$cmd"
}

cmd_exec() {
  local name=${1:-} i=${2:-}
  need_cluster "$name"; shift 2
  exec ip netns exec "$name-h$i" unshare --uts sh -c 'hostname "$1"; shift; exec "$@"' sh "$name-h$i" "$@"
}

sub=${1:-}; shift || true
case $sub in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  link-down) cmd_link down "$@" ;;
  link-up) cmd_link up "$@" ;;
  hosts) need_cluster "${1:-}"; cut -d' ' -f1 "$STATE_ROOT/$1/hosts" ;;
  subnet) need_cluster "${1:-}"; echo "10.77.$(cat "$STATE_ROOT/$1/subnet").0/24" ;;
  exec) cmd_exec "$@" ;;
  agent) cmd_agent "$@" ;;
  *) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
