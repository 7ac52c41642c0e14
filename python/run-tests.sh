#!/usr/bin/env bash
# Installs the Python package and its test dependencies, then runs its tests against the
# lflow-dist binary (LFLOW_DIST_BIN, else the repository's .build/release or .build/debug one:
# build it first, e.g. `swift build -c release`). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q torch    # any build; the tests run on the CPU
python3 -m pip install -q h5py numpy pytest tensorboard
python3 -m pip install -q --no-deps .
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cd tests && python3 -m pytest -q "$@"
