#!/bin/bash
# The test command: installs the test role's Debian packages (scripts/install-deps.sh test), builds, runs every
# test (unit, MPI under -n 1/2/4, scripts, PyTorch parity), then in an
# -fsanitize=address,undefined build the unit tests, the fuzzing of the input parsers and the input-error scripts
# (the ones that feed bad input; training-heavy scripts stay in the fast build). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scripts/build.sh
# test_fuzz runs in the sanitizer build below, where it can see memory errors
ctest --test-dir build --output-on-failure -E '^test_fuzz$'
echo "== sanitizer build (address, undefined): unit tests, fuzzing, input-error scripts"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVAMP_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
# Open MPI's own allocations are reported as leaks by LeakSanitizer; leaks are not checked here.
ASAN_OPTIONS=detect_leaks=0 ctest --test-dir build-asan --output-on-failure -L unit
ASAN_OPTIONS=detect_leaks=0 ctest --test-dir build-asan --output-on-failure \
  -R '^test_(fuzz|input_errors|data_errors|prepare)$'
