#!/bin/bash
# Rank counts that do not divide data.stripes (the plan gives rank r of P stripes [r*S/P, (r+1)*S/P)), with real
# MPI ranks on the tiny hvae + vampprior: the bits depend on S, never on P.
#  1. S = 4 on 3 ranks (1 + 1 + 2 stripes): final parameters and metrics bit-identical to 1 rank;
#  2. a checkpoint written on those 3 ranks, resumed on 2 (2 + 2): bit-identical to 1 rank;
#  3. S = 20 on 16 ranks (oversubscribed; 4 ranks hold 2 stripes, 12 hold 1): bit-identical to 1 rank;
#  4. S = 4 on 16 ranks: refused before anything is written, exit 2, proposing data.stripes = 20 and fewer ranks.
# usage: test_ranks.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
run() { # np, run dir, extra args...
  local np=$1 dir=$2
  shift 2
  $MPIEXEC --allow-run-as-root --oversubscribe -n "$np" "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$dir" "$@" \
    >"$dir.log" 2>&1
}
same() { # name, reference run dir, run dir[, metrics too]: final.h5 bit-identical (and metrics.csv but for timings)
  if /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$2/final.h5" "$3/final.h5" --exact >"$TMP/cmp" 2>&1 &&
    { [ -z "${4:-}" ] || diff <(cut -d, -f1-9 "$2/metrics.csv") <(cut -d, -f1-9 "$3/metrics.csv") >>"$TMP/cmp"; }; then
    ok "$1"
  else bad "$1" "$TMP/cmp"; fi
}

tiny_config "$TMP/c.ini" 1 10 # batch 20, 40 pseudo-inputs; checkpoints every 10 steps
steps="--set train.max_steps=30 --set checkpoint.keep=5"

# 1. S = 4 on 3 ranks
run 1 "$TMP/s4_np1" $steps || bad "S = 4, -np 1 run failed" "$TMP/s4_np1.log"
run 3 "$TMP/s4_np3" $steps || bad "S = 4, -np 3 run failed" "$TMP/s4_np3.log"
same "S = 4: -np 3 (uneven) final parameters and metrics bit-identical to -np 1" "$TMP/s4_np1" "$TMP/s4_np3" metrics

# 2. the -np 3 checkpoint of step 10, resumed on 2 ranks in a run directory of its own
mkdir -p "$TMP/s4_res"
if cp "$TMP/s4_np3/ckpt-00000010.h5" "$TMP/s4_res/"; then
  run 2 "$TMP/s4_res" $steps --resume "$TMP/s4_res/ckpt-00000010.h5" || bad "resume on -np 2 failed" "$TMP/s4_res.log"
  grep -q "resumed from $TMP/s4_res/ckpt-00000010.h5" "$TMP/s4_res.log" && ok "the -np 3 checkpoint of step 10 resumed on -np 2" ||
    bad "no resume from step 10" "$TMP/s4_res.log"
  same "S = 4: written on -np 3, resumed on -np 2: final parameters bit-identical to -np 1" "$TMP/s4_np1" "$TMP/s4_res"
else bad "no checkpoint of step 10 from -np 3" "$TMP/s4_np3.log"; fi

# 3. S = 20 on 16 ranks (two stripes on ranks 3, 7, 11 and 15), fewer steps: 16 ranks share the machine's cores
s20="--set data.stripes=20 --set train.max_steps=20"
run 1 "$TMP/s20_np1" $s20 || bad "S = 20, -np 1 run failed" "$TMP/s20_np1.log"
run 16 "$TMP/s20_np16" $s20 || bad "S = 20, -np 16 run failed" "$TMP/s20_np16.log"
same "S = 20: -np 16 (4 ranks with 2 stripes, 12 with 1) bit-identical to -np 1" "$TMP/s20_np1" "$TMP/s20_np16" metrics

# 4. more ranks than stripes: an input error that proposes what works
run 16 "$TMP/s4_np16"
rc=$?
msg=$(grep -o "stripes = 4 is fewer than the 16 ranks.*" "$TMP/s4_np16.log" | head -1)
if [ $rc -eq 2 ] && [ ! -e "$TMP/s4_np16" ] && [[ $msg == *"--set data.stripes=20"* ]] &&
  [[ $msg == *"4 ranks hold 2 stripes, 12 hold 1"* ]] && [[ $msg == *"another data order"* ]] &&
  [[ $msg == *"mpirun -np 4"* ]]; then
  ok "S = 4 on -np 16: exit 2, nothing written, proposes data.stripes = 20 or -np 4"
else bad "S = 4 on -np 16: exit $rc, message: $msg" "$TMP/s4_np16.log"; fi

finish
