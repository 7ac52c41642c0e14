#!/usr/bin/env bash
# The whole test suite, from a fresh machine: system libraries, then `swift test`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash Launch/install-deps.sh --test
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
swift test "$@"
