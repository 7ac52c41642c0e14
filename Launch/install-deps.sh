#!/usr/bin/env bash
# Installs the system packages lflow-dist needs (Debian/Ubuntu, as root or with sudo).
# Idempotent: installs only what is missing.
#
#   Launch/install-deps.sh          # build and run: OpenMPI, OpenBLAS, HDF5, oneDNN
#   Launch/install-deps.sh --test   # also what the tests drive for real: SLURM daemons and munge
#                                   # (a throwaway cluster), iproute2 (network-namespace hosts),
#                                   # chromium (renders the run report headless)
set -euo pipefail
packages=()
need() { # need CHECK PACKAGE...: install the packages unless CHECK succeeds
    local check=$1; shift
    eval "$check" >/dev/null 2>&1 || packages+=("$@")
}
need "pkg-config --exists ompi-c && command -v mpirun" libopenmpi-dev openmpi-bin pkg-config
need "pkg-config --exists openblas" libopenblas-dev pkg-config
need "pkg-config --exists hdf5" libhdf5-dev pkg-config
need "test -e /usr/include/oneapi/dnnl/dnnl.h" libdnnl-dev
if [ "${1:-}" = --test ]; then
    need "command -v slurmctld && command -v slurmd && command -v sbatch" slurm-wlm
    need "command -v munged" munge
    need "command -v ip" iproute2
    need "command -v chromium" chromium
fi
[ ${#packages[@]} -eq 0 ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
echo "installing: ${packages[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
