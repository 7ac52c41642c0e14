#!/usr/bin/env bash
# The main job from a fresh machine: install the system libraries, build, and train
# data-parallel on 2 MPI ranks on the built-in Lorenz data (generated once at
# Checkpoints/lorenz.h5). It ends with a table of validation metrics and the path of the NLB
# submission file. RANKS=N changes the number of ranks; extra arguments go to `train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/install-deps.sh

swift build -c release --product lflow-dist
bin="$(swift build -c release --show-bin-path)/lflow-dist"
bash Launch/mpirun-local.sh "${RANKS:-2}" "$bin" train "$@"
