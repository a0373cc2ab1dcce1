#!/bin/bash
# The test command: installs the test role's Debian packages (scripts/install-deps.sh test), builds, runs every test (unit, MPI under -n 1/2/4, scripts, PyTorch parity), then the unit
# tests again in an -fsanitize=address,undefined build. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scripts/build.sh
ctest --test-dir build --output-on-failure
echo "== sanitizer build (address, undefined): unit tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVAMP_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
# Open MPI's own allocations are reported as leaks by LeakSanitizer; leaks are not checked here.
ASAN_OPTIONS=detect_leaks=0 ctest --test-dir build-asan --output-on-failure -L unit
