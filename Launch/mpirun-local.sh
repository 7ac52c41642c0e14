#!/usr/bin/env bash
# mpirun on one machine: allows running as root, oversubscribes the cores, and gives each rank
# one OpenBLAS thread (several ranks sharing the cores must not also spawn BLAS threads).
# Usage: Launch/mpirun-local.sh N <lflow-dist binary> <subcommand> [flags...]
set -euo pipefail
ranks=${1:?usage: Launch/mpirun-local.sh N <binary> <args...>}
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun --oversubscribe -x OPENBLAS_NUM_THREADS=1 -n "$ranks" "$@"
