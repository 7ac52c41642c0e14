#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system libraries, then `swift test`, optimised
# (the end-to-end tests train real models through the release binary; -enable-testing keeps
# @testable imports); then the Python package's tests (pytest: PyTorch parity with the binary
# on checkpoints of every option, TensorBoard's own reader on the event files) against it.
#
#   bash Launch/test.sh            everything (CI runs this)
#   bash Launch/test.sh --quick    skips the slow tiers: the real SLURM cluster, the
#                                  network-namespace hosts, headless Chromium and the kill soaks
# Other arguments go to `swift test` (e.g. --filter ResumeTests).
set -euo pipefail
cd "$(dirname "$0")/.."
# The slow tier, by suite: the one place it is named.
slow='SlurmTests|SlurmTimeLimitTests|ClusterTests|ChromiumTests|RunReportTests/rendered|faultSoak|pbtKillSoak'
quick=0
args=()
for a in "$@"; do
    if [ "$a" = --quick ]; then quick=1; else args+=("$a"); fi
done
bash Launch/install-deps.sh --test
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$quick" = 1 ]; then args+=(--skip "$slow"); fi
swift test -c release -Xswiftc -enable-testing ${args[@]+"${args[@]}"}
if [ "$quick" = 0 ] && [ ${#args[@]} -eq 0 ]; then
    LFLOW_DIST_BIN="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/lflow-dist" bash python/run-tests.sh
fi
