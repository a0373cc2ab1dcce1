#!/bin/bash
# Step times across hosts: vamp_bench on the emulated cluster (tests/cluster/cluster.sh, network namespaces on
# this machine; root only) for 1 host x 1 rank, 1 host x 2 ranks (shared memory), 2 hosts x 1 rank and 3 hosts x 1
# rank (TCP over veth), then analysis/scaling_model.py fed with the 1-rank phases and the allreduce times that
# vamp_bench measured between two hosts, to set its projection beside the measured 2-host step. Prints figures
# only; run on an otherwise idle machine. With 2 cores, 3 ranks share 2 cores: that row measures
# oversubscription, not the network.
#   analysis/cluster_bench.sh [STEPS] [MODELS]     (defaults 20, vae_vampprior,hvae_vampprior; uses build/: build it first)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "cluster_bench.sh: needs root (network namespaces)" >&2; exit 2; }
STEPS=${1:-20}
MODELS=${2:-vae_vampprior,hvae_vampprior}
OUT=$(mktemp -d /var/tmp/cluster_bench.XXXXXX)
export CLUSTER_ID=auto CLUSTER_DIR=$OUT/cluster OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 \
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none STEPS MODELS OUT
echo "== $(date -Is) on $(hostname) ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
tests/cluster/cluster.sh with 3 --no-slurm bash -c '
  set -e
  read -r H1 H2 H3 <<<"$CLUSTER_HOSTS"
  run() { # NAME HOSTS
    echo "== $1 (mpirun --host $2)"
    mpirun --oversubscribe --host "$2" build/vamp_bench --steps "$STEPS" --models "$MODELS" | tee "$OUT/$1.txt"
  }
  run one "$H1:1"
  run shm "$H1:2"
  run tcp2 "$H1:1,$H2:1"
  run tcp3 "$H1:1,$H2:1,$H3:1"
'
echo "== summary: ms per step (exact reduction), speed-up over 1 rank"
for m in ${MODELS//,/ }; do
  row=$m
  one=$(awk -v m="$m" '$1==m && $2=="exact" {print $3}' "$OUT/one.txt")
  for c in one shm tcp2 tcp3; do
    t=$(awk -v m="$m" '$1==m && $2=="exact" {print $3}' "$OUT/$c.txt")
    row="$row  $c $t ($(awk -v a="$one" -v b="$t" 'BEGIN {printf "%.2fx", a / b}'))"
  done
  echo "$row"
done
echo "== scaling model fed with the 2-host allreduce (analysis/scaling_model.py one.txt tcp2.txt)"
/usr/bin/python3 analysis/scaling_model.py "$OUT/one.txt" "$OUT/tcp2.txt" --model hvae_vampprior
echo "(raw output in $OUT)"
