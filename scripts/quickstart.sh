#!/bin/bash
# The README's first command: installs missing Debian packages, builds, converts Debian's Fashion-MNIST to
# data/fashion_mnist.h5 and trains HVAE + VampPrior on 2 ranks with configs/quickstart.ini.
# Extra arguments are passed to vamp_mpi (e.g. --set train.epochs=1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh main
scripts/build.sh
if [ ! -f data/fashion_mnist.h5 ]; then
  mkdir -p data
  build/vamp_prepare fashion-mnist --out data/fashion_mnist.h5
fi
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN=(mpirun -np 2)
if [ "$(id -u)" -eq 0 ]; then MPIRUN+=(--allow-run-as-root); fi
"${MPIRUN[@]}" build/vamp_mpi configs/quickstart.ini "$@"
