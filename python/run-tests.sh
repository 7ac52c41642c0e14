#!/usr/bin/env bash
# Installs the Python package and its test dependencies, then runs its tests against the
# lflow-dist binary (LFLOW_DIST_BIN, else the repository's .build/release or .build/debug one:
# build it first, e.g. `swift build -c release`). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q torch    # any build; the tests run on the CPU
python3 -m pip install -q h5py "numpy<2" pytest tensorboard
# NWB in and out (lflow_dist.prepare/export): pynwb, and nlb_tools' reader without its pins (nlb-tools
# 0.0.4 pins pandas<=1.3.4, which has no Python 3.11 build) plus what it imports; pandas < 3 because
# nlb_tools' resample writes into DataFrame.to_numpy() arrays, read-only under pandas 3's copy-on-write
python3 -m pip install -q pynwb "pandas<3" scipy
python3 -m pip install -q --no-deps nlb-tools
python3 -m pip install -q --no-deps .
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
cd tests && python3 -m pytest -q "$@"
