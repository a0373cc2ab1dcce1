#!/bin/bash
# vamp_mpi beside what a PyTorch user would run instead, in one run: vamp_bench on 1 rank, on 1 rank with
# data.stripes = 1, on 1 rank with 2 OpenBLAS threads (the hybrid choice) and on 2 ranks (one thread each);
# the same models in PyTorch with 1 and 2 intra-op threads and under DistributedDataParallel (gloo, 2 processes x
# 1 thread, the batch split between them). REPS repetitions, interleaved, so that the machine's drift hits every
# side alike; analysis/bench_summary.py prints median and range per figure, ratios within one repetition, and
# the targets. Then the scaling projection of every model (analysis/scaling_model.py; plots in the output directory).
# Prints figures only; decides nothing.
#   analysis/bench.sh [STEPS] [REPS]       (default 30 steps, 3 repetitions; outputs in $BENCH_OUT or a temp dir)
#   BENCH_MODELS=convhvae_standard,pixelhvae_standard analysis/bench.sh 3 3   (other models than vamp_bench's
#   default vae_standard,vae_vampprior,hvae_vampprior; the scaling projection then covers them)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-30}
REPS=${2:-3}
OUT=${BENCH_OUT:-$(mktemp -d /tmp/vamp_bench.XXXXXX)}
M=()
if [ -n "${BENCH_MODELS:-}" ]; then M=(--models "$BENCH_MODELS"); fi
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPI=(mpirun --oversubscribe)
if [ "$(id -u)" -eq 0 ]; then MPI+=(--allow-run-as-root); fi
echo "== $(date -Is) on $(hostname) ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))," \
  "outputs in $OUT"
for r in $(seq 1 "$REPS"); do
  d=$OUT/rep$r
  mkdir -p "$d"
  echo "== repetition $r of $REPS"
  OPENBLAS_NUM_THREADS=1 "${MPI[@]}" -np 1 build/vamp_bench --steps "$STEPS" "${M[@]}" >"$d/vamp1.txt"
  OPENBLAS_NUM_THREADS=1 "${MPI[@]}" -np 1 build/vamp_bench --steps "$STEPS" "${M[@]}" --stripes 1 --no-is >"$d/vamp1s1.txt"
  OPENBLAS_NUM_THREADS=2 "${MPI[@]}" -np 1 --bind-to none build/vamp_bench --steps "$STEPS" "${M[@]}" --no-is >"$d/vamp1t2.txt"
  OPENBLAS_NUM_THREADS=1 "${MPI[@]}" -np 2 build/vamp_bench --steps "$STEPS" "${M[@]}" >"$d/vamp2.txt"
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 analysis/bench_torch.py --steps "$STEPS" "${M[@]}" --threads 1 >"$d/torch1.txt"
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 analysis/bench_torch.py --steps "$STEPS" "${M[@]}" --threads 2 >"$d/torch2.txt"
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 analysis/bench_torch.py --steps "$STEPS" "${M[@]}" --ddp 2 >"$d/ddp2.txt"
  [ "$r" -eq 1 ] && cat "$d/vamp1.txt" "$d/vamp2.txt" "$d/torch1.txt"
done
/usr/bin/python3 analysis/bench_summary.py "$OUT"
for m in $(echo "${BENCH_MODELS:-vae_standard,vae_vampprior,hvae_vampprior}" | tr , ' '); do
  echo "== scaling model of $m (analysis/scaling_model.py: 1-rank phases + loopback allreduce fit, repetition 1)"
  /usr/bin/python3 analysis/scaling_model.py "$OUT/rep1/vamp1.txt" "$OUT/rep1/vamp2.txt" --model "$m" \
    --plot "$OUT/scaling_$m.png"
done
