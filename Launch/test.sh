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
log=$(mktemp)
trap 'rm -f "$log"' EXIT
swift test -c release -Xswiftc -enable-testing ${args[@]+"${args[@]}"} 2>&1 | tee "$log"
# bf16: the suites above ran the path this CPU has (PrecisionTests prints it). On a CPU with
# AVX512-BF16 the emulated path, which every other CPU runs, is checked as well, by capping
# oneDNN's ISA below it (DNNL_MAX_CPU_ISA, oneDNN's own switch; the conversions follow it).
bf16=$(grep -m1 '^bf16 path:' "$log" || true)
if [ ${#args[@]} -eq 0 ] || [ "$quick" = 1 ]; then
    if grep -q avx512_bf16 /proc/cpuinfo && grep -q 'bf16 path: hardware' "$log"; then
        DNNL_MAX_CPU_ISA=AVX512_CORE swift test -c release -Xswiftc -enable-testing --filter 'PrecisionTests|GEMMTests' 2>&1 \
            | tee "$log" | grep -E '^bf16|✘|Test run' || true
        grep -q 'Test run with .* passed' "$log" || { echo "the emulated bf16 path failed (DNNL_MAX_CPU_ISA=AVX512_CORE)"; exit 1; }
        bf16="$bf16; the emulated path passed too (DNNL_MAX_CPU_ISA=AVX512_CORE)"
    fi
fi
if [ "$quick" = 0 ] && [ ${#args[@]} -eq 0 ]; then
    LFLOW_DIST_BIN="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/lflow-dist" bash python/run-tests.sh
fi
[ -n "$bf16" ] && echo "$bf16"
