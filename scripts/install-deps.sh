#!/bin/bash
# Installs the Debian 12 packages one role needs, and nothing that is already there.
#   main  (default) build, convert Fashion-MNIST and train: what scripts/quickstart.sh needs
#   test  main + what the test suite needs: cmocka, hdf5-tools, Python with torch/h5py/numpy/scipy/
#         matplotlib/yaml for the reference checks, and slurm-wlm/munge for the job-script tests (they start
#         their own daemons; on a login node with a site Slurm, run the tests elsewhere)
# Needs root (or password-less sudo) and apt-get; otherwise it prints the packages to install and exits 1.
set -euo pipefail
role=${1:-main}
MAIN=(build-essential cmake pkg-config libopenmpi-dev openmpi-bin libhdf5-openmpi-dev libopenblas-dev libinih-dev
      librandom123-dev libpng-dev zlib1g-dev libmatio-dev dataset-fashion-mnist)
TEST=(libcmocka-dev hdf5-tools python3-torch python3-h5py python3-numpy python3-scipy python3-matplotlib
      python3-yaml slurm-wlm munge)
case "$role" in
  main) PKGS=("${MAIN[@]}") ;;
  test) PKGS=("${MAIN[@]}" "${TEST[@]}") ;;
  *) echo "install-deps: unknown role \"$role\": expected main or test" >&2; exit 2 ;;
esac
missing=()
if command -v dpkg-query >/dev/null; then
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
else
  missing=("${PKGS[@]}")
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages of role $role present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
fi
if [ "$SUDO" = "none" ] || ! command -v apt-get >/dev/null; then
  cat >&2 <<MSG
install-deps: cannot install packages here (needs Debian's apt-get as root or with password-less sudo).
Missing for role $role, as Debian 12 packages:
  ${missing[*]}
Elsewhere, install the equivalents: a C11 compiler, CMake >= 3.20, pkg-config, an MPI library, parallel HDF5
(built with MPI), OpenBLAS, inih, Random123, matio, libpng and zlib; with Spack: packaging/spack/package.py.
MSG
  exit 1
fi
echo "install-deps: installing for role $role: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
