#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system libraries, then `swift test`, optimised
# (the end-to-end tests train real models through the release binary; -enable-testing keeps
# @testable imports).
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
