#!/bin/bash
# Checkpoint/resume and fault tests with real MPI ranks and real files. The yardstick is always an
# uninterrupted run: a resumed run must end with bit-identical final parameters.
#  - SIGUSR1 to mpirun mid-epoch -> checkpoint, exit 75; resumed on another rank count -> identical
#  - kill -9 of one rank mid-run -> resume from the last periodic checkpoint -> identical
#  - kill -9 while a checkpoint is being written -> the previous checkpoint is intact and used -> identical
#  - one flipped byte -> refused (checksum); --resume auto falls back to the previous one and says so
#  - a failing write (injected, as a full disk) -> exit 1, clear message, previous checkpoint intact
#  - a changed model on resume -> exit 2 naming the keys; a changed train.epochs is accepted
# usage: test_checkpoint.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
same() { # name, run dir: final.h5 bit-identical to the reference
  if /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$TMP/ref/final.h5" "$2/final.h5" --exact >"$TMP/cmp" 2>&1 &&
    diff <(cut -d, -f1-9 "$TMP/ref/metrics.csv") <(cut -d, -f1-9 "$2/metrics.csv") >>"$TMP/cmp"; then ok "$1"; else bad "$1" "$TMP/cmp"; fi
}
launch() { # np, run dir, extra args... (background; sets PID)
  local np=$1 dir=$2
  shift 2
  $MPIEXEC --allow-run-as-root --oversubscribe -n "$np" "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$dir" "$@" \
    >>"$dir.log" 2>&1 &
  PID=$!
}
run() { launch "$@"; wait $PID; }
wait_for() { # file glob pattern, seconds: wait until a file matching appears
  local pat=$1 t=0
  while [ $t -lt $(($2 * 10)) ]; do compgen -G "$pat" >/dev/null && return 0; sleep 0.1; t=$((t + 1)); done
  return 1
}

tiny_config "$TMP/c.ini" 4 70
run 2 "$TMP/ref" || { echo "reference run failed"; cat "$TMP/ref.log"; exit 1; }

# 1. a stop signal mid-run, resumed on 4 ranks. The whole run takes ~1 s; holding each checkpoint write 1 s
#    (a test hook that changes no result) keeps the signal mid-run however fast the machine is. Same in 2.
VAMP_INJECT_CKPT_DELAY=1 launch 2 "$TMP/sig"
wait_for "$TMP/sig/ckpt-00000070.h5" 60
sleep 0.5
kill -USR1 $PID
wait $PID
rc=$?
if [ $rc -eq 75 ] && grep -q "stop signal: checkpoint" "$TMP/sig.log"; then ok "SIGUSR1: checkpoint written, exit status 75"; else bad "SIGUSR1: exit $rc" "$TMP/sig.log"; fi
run 4 "$TMP/sig"
grep -q "resumed from" "$TMP/sig.log" && ok "resume auto found the signal checkpoint" || bad "no resume" "$TMP/sig.log"
same "stopped on 2 ranks, resumed on 4: final parameters bit-identical" "$TMP/sig"

# 2. kill -9 of one rank
VAMP_INJECT_CKPT_DELAY=1 launch 2 "$TMP/k9"
wait_for "$TMP/k9/ckpt-00000140.h5" 60
pkill -9 -f -- "run.dir=$TMP/k9" -n >/dev/null 2>&1 || pkill -9 -f -- "vamp_mpi.*$TMP/k9" >/dev/null 2>&1
wait $PID
rc=$?
[ $rc -ne 0 ] && ok "kill -9 of a rank ends the job (exit $rc)" || bad "job survived kill -9" "$TMP/k9.log"
run 1 "$TMP/k9"
same "killed with -9, resumed on 1 rank: final parameters bit-identical" "$TMP/k9"

# 3. kill -9 during a checkpoint write (the write is slowed down to open a window)
VAMP_INJECT_CKPT_DELAY=5 launch 2 "$TMP/kw"
wait_for "$TMP/kw/ckpt-00000140.h5.tmp" 90
pkill -9 -f -- "vamp_mpi.*$TMP/kw" >/dev/null 2>&1
wait $PID
if [ -f "$TMP/kw/ckpt-00000070.h5" ] && [ ! -f "$TMP/kw/ckpt-00000140.h5" ] && grep -q "ckpt-00000070.h5" "$TMP/kw/latest"; then
  ok "killed mid-write: previous checkpoint intact and still 'latest'"; else bad "killed mid-write: state" ; ls -la "$TMP/kw" | sed 's/^/     /'; fi
run 2 "$TMP/kw"
grep -q "resumed from $TMP/kw/ckpt-00000070.h5" "$TMP/kw.log" && ok "resumed from the previous checkpoint" || bad "resume point" "$TMP/kw.log"
same "killed mid-write, resumed: final parameters bit-identical" "$TMP/kw"

# 4. a flipped byte
mkdir -p "$TMP/fl"
launch 2 "$TMP/fl" --set train.max_steps=150
wait $PID
cp "$TMP/fl/ckpt-00000140.h5" "$TMP/pristine.h5"
/usr/bin/python3 - "$TMP/fl/ckpt-00000140.h5" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x10
open(p, "wb").write(bytes(b))
PY
$MPIEXEC --allow-run-as-root -n 1 "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$TMP/fl" --resume "$TMP/fl/ckpt-00000140.h5" >"$TMP/fl1.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -qE "ckpt-00000140.h5: (checksum mismatch|cannot be|not a readable)" "$TMP/fl1.log" && ok "flipped byte: --resume PATH refused, exit 2: $(grep -oE 'ckpt-00000140.h5: [^(]*' "$TMP/fl1.log" | head -1)" || bad "flipped byte not refused (exit $rc)" "$TMP/fl1.log"
run 2 "$TMP/fl"
grep -q "warning: cannot resume from $TMP/fl/ckpt-00000140.h5" "$TMP/fl.log" && grep -q "falling back to the previous checkpoint" "$TMP/fl.log" &&
  grep -q "resumed from $TMP/fl/ckpt-00000070.h5" "$TMP/fl.log" && ok "flipped byte: auto falls back to the previous checkpoint and says so" || bad "fallback" "$TMP/fl.log"
same "after the fallback: final parameters bit-identical" "$TMP/fl"

# 5. a failing checkpoint write
mkdir -p "$TMP/df"
launch 2 "$TMP/df" --set train.max_steps=100
wait $PID
VAMP_INJECT_CKPT_FAILURE=1 launch 2 "$TMP/df"
wait $PID
rc=$?
[ $rc -eq 1 ] && grep -q "cannot write checkpoint .*ckpt-00000140.h5.*previous checkpoints are unchanged" "$TMP/df.log" &&
  [ ! -e "$TMP/df/ckpt-00000140.h5.tmp" ] && [ ! -e "$TMP/df/ckpt-00000140.h5" ] && ok "failed write: exit 1, clear message, no partial file" || bad "failed write (exit $rc)" "$TMP/df.log"
run 2 "$TMP/df"
same "after the failed write, resumed from the intact checkpoint: bit-identical" "$TMP/df"

# 6. config changes on resume
$MPIEXEC --allow-run-as-root -n 1 "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$TMP/df" --set model.hidden=32 --set run.seed=2 >"$TMP/cc.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "these keys differ: run.seed, model.hidden" "$TMP/cc.log" && ok "changed model on resume: refused naming run.seed, model.hidden" || bad "changed model (exit $rc)" "$TMP/cc.log"
$MPIEXEC --allow-run-as-root -n 1 "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$TMP/df" --set train.epochs=5 >"$TMP/ce.log" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "resumed from" "$TMP/ce.log" && [ "$(tail -1 "$TMP/df/metrics.csv" | cut -d, -f1)" = 5 ] && ok "changed train.epochs on resume: accepted, trained on to epoch 5" || bad "epochs change (exit $rc)" "$TMP/ce.log"

# 7. a non-finite gradient (injected at step 30): stop with a checkpoint of the last good state, or skip
VAMP_INJECT_NAN_STEP=30 $MPIEXEC --allow-run-as-root --oversubscribe -n 2 "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$TMP/nan" >"$TMP/nan.log" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "the gradient of p_x_mean.linear.bias is not finite" "$TMP/nan.log" && [ -f "$TMP/nan/ckpt-00000029.h5" ] &&
  ok "non-finite gradient: exit 1 naming the tensor, checkpoint of step 29 written" || bad "non-finite gradient (exit $rc)" "$TMP/nan.log"
run 2 "$TMP/nan"
same "resumed after the non-finite stop: bit-identical (the bad step was never applied)" "$TMP/nan"
VAMP_INJECT_NAN_STEP=30 $MPIEXEC --allow-run-as-root --oversubscribe -n 2 "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$TMP/skip" --set train.on_nan=skip --set train.max_steps=40 >"$TMP/skip.log" 2>&1
rc=$?
[ $rc -eq 0 ] && grep -q "epoch 1 batch 29: the gradient of p_x_mean.linear.bias is not finite; batch skipped" "$TMP/skip.log" &&
  awk -F, 'NR==2 && $2==40 {f=1} END {exit !f}' "$TMP/skip/metrics.csv" && ok "train.on_nan = skip: the batch is skipped and training goes on" || bad "skip (exit $rc)" "$TMP/skip.log"

finish
