#!/usr/bin/env bash
# The main job from a fresh machine: install the system libraries, build, generate the built-in
# Lorenz data (once), and run the model on it.
#
# Until `train` lands (issue 3) the job is: initialise the default Lorenz model from the data
# and run one full forward and backward on 64 trials with `inspect`, under mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/install-deps.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

swift build -c release --product lflow-dist
bin="$(swift build -c release --show-bin-path)/lflow-dist"
run=runs/main
mkdir -p "$run"
[ -f runs/lorenz.h5 ] || "$bin" synth --out runs/lorenz.h5 --seed 0
mpirun --oversubscribe -n 1 "$bin" init --config Configs/lorenz.yaml --data runs/lorenz.h5 --out "$run/init.h5" --seed 0
mpirun --oversubscribe -n 1 "$bin" inspect --checkpoint "$run/init.h5" --data runs/lorenz.h5 --trials 64 --out "$run/state.h5"
echo "main job done: $run/init.h5 (checkpoint), $run/state.h5 (log-rates, latents, loss, gradients)"
