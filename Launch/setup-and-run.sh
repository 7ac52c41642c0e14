#!/usr/bin/env bash
# The main job from a fresh machine: install the system libraries, build, and train on the
# built-in Lorenz data (generated once at Checkpoints/lorenz.h5) under mpirun. It ends with a
# table of validation metrics and the path of the NLB submission file.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/install-deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

swift build -c release --product lflow-dist
bin="$(swift build -c release --show-bin-path)/lflow-dist"
mpirun --oversubscribe -n 1 "$bin" train "$@"
