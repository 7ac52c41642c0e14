#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system libraries, then `swift test`, optimised
# (the end-to-end tests train real models through the release binary; -enable-testing keeps
# @testable imports); then the Python package's tests (pytest: PyTorch parity with the binary
# on checkpoints of every option, TensorBoard's own reader on the event files) against it; then
# the quick tier again under AddressSanitizer with leak checking.
#
#   bash Launch/test.sh            everything (CI runs this)
#   bash Launch/test.sh --quick    skips the slow tiers: the real SLURM cluster, the
#                                  network-namespace hosts, headless Chromium, the kill soaks
#                                  and the sanitizer pass
#   bash Launch/test.sh --sanitize address|undefined|thread [--quick]
#                                  the suite under a sanitizer, built in .build-<sanitizer> (the
#                                  end-to-end tests spawn the lflow-dist beside the test bundle,
#                                  so the sanitized one); every report of every process goes to
#                                  one directory, and any report fails the run. address checks
#                                  leaks too (ASAN_OPTIONS=detect_leaks=0 turns that off);
#                                  undefined instruments the C targets (swiftc has no UBSan on
#                                  Linux; Swift traps on overflow and bounds itself)
# Other arguments go to `swift test` (e.g. --filter ResumeTests).
#
# bf16: the suites run the bf16 path this CPU has and say which ("bf16 path: hardware
# (AVX512-BF16)" or "emulated"); on a CPU with AVX512-BF16 the emulated path, which every other
# CPU runs, is checked too, by capping oneDNN's ISA below it (DNNL_MAX_CPU_ISA, oneDNN's own
# switch; the conversions follow it).
set -euo pipefail
cd "$(dirname "$0")/.."
# The slow tier, by suite: the one place it is named.
slow='SlurmTests|SlurmTimeLimitTests|ClusterTests|ChromiumTests|RunReportTests/rendered|faultSoak|pbtKillSoak'
quick=0
sanitize=
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick=1 ;;
        --sanitize) sanitize=${2:?--sanitize needs address, undefined or thread}; shift ;;
        --sanitize=*) sanitize=${1#--sanitize=} ;;
        *) args+=("$1") ;;
    esac
    shift
done
build=(-c release -Xswiftc -enable-testing)
if [ -n "$sanitize" ]; then
    # Sanitizer reports, one file per process (children of mpirun and of the tests included,
    # whose stderr the tests capture), and what a report is.
    logs=$(mktemp -d "${TMPDIR:-/tmp}/lflow-$sanitize.XXXXXX")
    case "$sanitize" in
        address)
            build+=(--sanitize=address --scratch-path .build-asan)
            # Leak checking too: OpenMPI's allocations in MPI_Init (from plugins it dlcloses
            # before exit, so only full stacks name them) and Foundation's are suppressed.
            export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0:log_path=$logs/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
            export LSAN_OPTIONS="suppressions=$PWD/Launch/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
            reports='ERROR: (AddressSanitizer|LeakSanitizer)' ;;
        undefined)
            build+=(-Xcc -fsanitize=undefined -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined --scratch-path .build-ubsan)
            export UBSAN_OPTIONS="print_stacktrace=1:log_path=$logs/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
            reports='runtime error:' ;;
        thread)
            build+=(--sanitize=thread --scratch-path .build-tsan)
            export TSAN_OPTIONS="halt_on_error=0:log_path=$logs/tsan${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
            reports='WARNING: ThreadSanitizer' ;;
        *) echo "--sanitize: address, undefined or thread, not '$sanitize'" >&2; exit 2 ;;
    esac
fi
bash Launch/install-deps.sh --test
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$quick" = 1 ]; then args+=(--skip "$slow"); fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
started=$SECONDS
swift test "${build[@]}" ${args[@]+"${args[@]}"} 2>&1 | tee "$log" || status=$?
bf16=$(grep -m1 '^bf16 path:' "$log" || true)
if grep -q avx512_bf16 /proc/cpuinfo && grep -q 'bf16 path: hardware' "$log"; then
    DNNL_MAX_CPU_ISA=AVX512_CORE swift test "${build[@]}" --filter 'PrecisionTests|GEMMTests' 2>&1 \
        | tee "$log" | grep -E '^bf16|✘|Test run' || true
    if grep -q 'Test run with .* passed' "$log"; then
        bf16="$bf16; the emulated path passed too (DNNL_MAX_CPU_ISA=AVX512_CORE)"
    else
        bf16="$bf16; the emulated path FAILED (DNNL_MAX_CPU_ISA=AVX512_CORE)"
        status=1
    fi
fi
if [ "$quick" = 0 ] && [ ${#args[@]} -eq 0 ]; then
    LFLOW_DIST_BIN="$(swift build "${build[@]}" --show-bin-path)/lflow-dist" bash python/run-tests.sh || status=$?
fi
summary="${sanitize:-no} sanitizer, $((SECONDS - started)) s"
if [ -n "$sanitize" ]; then
    found=$(grep -lE "$reports" "$logs"/* 2>/dev/null || true)
    if [ -n "$found" ]; then
        for f in $found; do echo "=== $f"; cat "$f"; done
        summary="$summary: $(echo "$found" | wc -l) process(es) reported; logs in $logs"
        [ "$status" = 0 ] && status=1
    else
        summary="$summary: no reports"
    fi
fi
[ -n "$bf16" ] && echo "$bf16"
echo "test.sh (${summary}): $([ "$status" = 0 ] && echo passed || echo "FAILED ($status)")"
# Everything: the quick tier again under AddressSanitizer (with leak checking).
if [ "$quick" = 0 ] && [ -z "$sanitize" ] && [ ${#args[@]} -eq 0 ]; then
    bash "$0" --sanitize address --quick || status=$?
fi
exit "$status"
