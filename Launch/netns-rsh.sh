#!/usr/bin/env bash
# rsh agent for OpenMPI on a pretend netns cluster (see netns-cluster.sh):
#   mpirun --mca plm_rsh_agent /work/main/Launch/netns-rsh.sh ...
exec "$(dirname "$(readlink -f "$0")")/netns-cluster.sh" agent "$@"
