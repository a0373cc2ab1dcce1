#!/bin/bash
# Runs the benchmark side by side: vamp_bench on 1 and 2 ranks (one OpenBLAS thread per rank) and the same
# models in PyTorch (one thread), then the scaling projection (analysis/scaling_model.py, plot in
# analysis/scaling_model.png). Prints figures only. Run on an otherwise idle machine.
#   analysis/bench.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30}
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
MPI=(mpirun --oversubscribe)
if [ "$(id -u)" -eq 0 ]; then MPI+=(--allow-run-as-root); fi
echo "== $(date -Is) on $(hostname) ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo "== vamp_mpi, 1 rank"
"${MPI[@]}" -np 1 build/vamp_bench --steps "$STEPS" | tee /tmp/vamp_bench_1.txt
echo "== vamp_mpi, 1 rank, data.stripes = 1 (one 100-row chunk per step: the GEMM size alone, not -np 2/4 compatible)"
"${MPI[@]}" -np 1 build/vamp_bench --steps "$STEPS" --stripes 1 | grep -v "IS log" | tee /tmp/vamp_bench_1s1.txt
echo "== vamp_mpi, 2 ranks"
"${MPI[@]}" -np 2 build/vamp_bench --steps "$STEPS" | tee /tmp/vamp_bench_2.txt
echo "== PyTorch reference"
/usr/bin/python3 analysis/bench_torch.py --steps "$STEPS" | tee /tmp/vamp_bench_torch.txt
echo "== summary (ms per step at batch 100; speed-up = 1 rank / 2 ranks; torch ratio = torch / vamp_mpi 1 rank)"
for m in vae_standard vae_vampprior hvae_vampprior; do
  one=$(awk -v m=$m '$1==m && $2=="exact" {print $3}' /tmp/vamp_bench_1.txt)
  two=$(awk -v m=$m '$1==m && $2=="exact" {print $3}' /tmp/vamp_bench_2.txt)
  twof=$(awk -v m=$m '$1==m && $2=="fast" {print $3}' /tmp/vamp_bench_2.txt)
  tor=$(awk -v m=$m '$1==m {print $5}' /tmp/vamp_bench_torch.txt)
  awk -v m=$m -v a="$one" -v b="$two" -v f="$twof" -v t="$tor" 'BEGIN {
    printf "%-15s 1 rank %7.2f  2 ranks %7.2f (speed-up %.2f; fast reduce %7.2f, exact costs %+.0f%%)  torch %7.2f (%.2fx)\n",
      m, a, b, a / b, f, 100 * (b - f) / f, t, t / a }'
done
echo "== scaling model (analysis/scaling_model.py: 1-rank phases + loopback allreduce fit)"
/usr/bin/python3 analysis/scaling_model.py /tmp/vamp_bench_1.txt /tmp/vamp_bench_2.txt --plot analysis/scaling_model.png
