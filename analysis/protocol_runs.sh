#!/bin/bash
# Runs paper presets one after another through the paper's whole protocol, each in ROOT/<dataset>/<preset>
# (outside the repository), resuming any that an earlier call left unfinished (--resume auto) and skipping those
# with a final.h5. Each run's output goes to ROOT/<dataset>/<preset>.log. Stop it at any time (SIGTERM/SIGINT to
# this script ends the current run with a checkpoint: exit 75) and call it again to continue.
# usage: analysis/protocol_runs.sh ROOT NP PRESET.ini... [-- --set key=value ...]
#   e.g. analysis/protocol_runs.sh /work/runs 2 configs/frey/*.ini -- --set data.path=/work/data/frey.h5
set -uo pipefail
cd "$(dirname "$0")/.."
root=$1 np=$2
shift 2
presets=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do presets+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
MPIRUN=(mpirun -np "$np")
if [ "$(id -u)" -eq 0 ]; then MPIRUN+=(--allow-run-as-root); fi
VAMP=${VAMP_MPI:-build/vamp_mpi}
child=
trap '[ -n "$child" ] && kill -USR1 "$child"; wait; exit 75' TERM INT  # USR1: mpirun forwards it to the ranks
for p in "${presets[@]}"; do
  name=$(basename "$p" .ini)
  dataset=$(basename "$(dirname "$p")")
  dir="$root/$dataset/$name"
  if [ -f "$dir/final.h5" ]; then echo "$dataset/$name: done ($dir/final.h5)"; continue; fi
  mkdir -p "$root/$dataset"
  echo "$(date -u +%FT%TZ) $dataset/$name: ${MPIRUN[*]} $VAMP $p --set run.dir=$dir $*"
  start=$(date +%s)
  "${MPIRUN[@]}" "$VAMP" "$p" --set run.dir="$dir" "$@" >>"$root/$dataset/$name.log" 2>&1 &
  child=$!
  wait "$child"
  rc=$?
  child=
  echo "$(date -u +%FT%TZ) $dataset/$name: exit $rc after $(( $(date +%s) - start )) s"
  [ $rc -eq 0 ] || exit $rc
done
