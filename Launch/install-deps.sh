#!/usr/bin/env bash
# Installs the system libraries lflow-dist links against (Debian/Ubuntu, as root).
# Idempotent: does nothing when they are already present.
set -euo pipefail
if pkg-config --exists ompi-c hdf5 openblas 2>/dev/null && command -v mpirun >/dev/null; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq libopenmpi-dev openmpi-bin libopenblas-dev libhdf5-dev pkg-config >/dev/null
