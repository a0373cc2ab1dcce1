#!/bin/bash
# Fault suite: what happens to a run, its files and its resume when things go wrong while it writes, is killed,
# is signalled, or finds damaged or changed inputs. Every case runs real MPI ranks (2) on real files and asserts:
#  - bounded time: every run has a deadline, and a run that has to be killed at its deadline is a FAILURE;
#  - the exit status the README documents (1 runtime failure, 2 bad input, 75 stopped resumable, or mpirun's own);
#  - the message names the culprit (file, rank, attribute, split);
#  - files that existed before the fault (checkpoints, final.h5, config.ini) are byte-identical after it (cmp)
#    and no temporary file is left where the program could clean up;
#  - where the run can go on, the resumed run ends with final parameters (and metrics) bit-identical to an
#    uninterrupted run.
# Cases: a full disk (a tmpfs) at each write (checkpoint, final.h5, pictures.h5, eval.h5; needs root to mount),
# a checkpoint write that fails on one rank only, kill -9 of a rank during a step, a checkpoint write and the
# evaluation, signals to mpirun and to the ranks, every checkpoint attribute corrupted in turn (each byte of
# each numeric attribute, three bytes of each string, each attribute deleted), records forged with a valid
# checksum, truncated checkpoints and data files, a changed data file at the same path, a refused resume.
# usage: test_faults.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
MNT=$TMP/mnt
trap 'umount "$MNT" 2>/dev/null; rm -rf "$TMP"' EXIT
cases=0 clear=0 recovered=0
case_() { cases=$((cases + 1)); echo "-- $1"; }

# ---- running with a deadline ------------------------------------------------------------------------------------
# launch LOG NP CONFIG ARGS...: mpirun in the background (PID = mpirun)
launch() {
  local log=$1 np=$2 cfg=$3
  shift 3
  echo "== $*" >>"$log"
  $MPIEXEC --allow-run-as-root --oversubscribe -n "$np" "$BUILD/vamp_mpi" "$cfg" "$@" >>"$log" 2>&1 &
  PID=$!
}
# finish_within SECONDS: RC = the exit status of PID; at the deadline it and its ranks are killed and RC = 124
finish_within() {
  local t=0
  while kill -0 "$PID" 2>/dev/null; do
    if [ $t -ge $(($1 * 10)) ]; then
      kill -KILL $(pgrep -P "$PID") "$PID" 2>/dev/null
      wait "$PID" 2>/dev/null
      RC=124
      return
    fi
    sleep 0.1
    t=$((t + 1))
  done
  wait "$PID"
  RC=$?
}
run() { launch "$@"; finish_within 90; }     # run LOG NP CONFIG ARGS...
until_() { # until_ SECONDS COMMAND...: wait until COMMAND succeeds; 1 if it never does
  local t=0
  while ! "${@:2}" 2>/dev/null; do
    [ $t -ge $(($1 * 20)) ] && return 1
    sleep 0.05
    t=$((t + 1))
  done
}
rank_pid() { # rank_pid R: the process of rank R of the mpirun PID
  local c
  for c in $(pgrep -P "$PID"); do
    grep -qz "^OMPI_COMM_WORLD_RANK=$1\$" "/proc/$c/environ" 2>/dev/null && { echo "$c"; return; }
  done
}

# ---- assertions ----------------------------------------------------------------------------------------------------
# status NAME WANT LOG REGEX: exit status WANT (a timeout never passes) and a message matching REGEX
status() {
  if [ "$RC" -eq 124 ]; then bad "$1: TIMED OUT (the job hung)" "$3"; return 1; fi
  if [ "$RC" -eq "$2" ] && grep -qE -- "$4" "$3"; then
    clear=$((clear + 1))
    ok "$1: exit $RC, $(grep -oE -- "$4" "$3" | head -1 | cut -c1-150)"
  else bad "$1: exit $RC (want $2 and /$4/)" "$3"; return 1; fi
}
snap() { rm -rf "$TMP/snap"; mkdir -p "$TMP/snap"; cp -p "$1"/* "$TMP/snap/" 2>/dev/null; } # snap DIR
# unchanged NAME DIR [all|tmpok]: the snapshot's checkpoints and final.h5 (all: every file) are identical, and no
# temporary file is left (tmpok: a killed writer may leave one; the next run removes it)
unchanged() {
  local f n=0 diff=""
  for f in "$TMP"/snap/*; do
    [ -f "$f" ] || continue
    case "$(basename "$f")" in ckpt-*.h5 | final.h5) ;; *) [ "${3:-}" = all ] || continue ;; esac
    n=$((n + 1))
    cmp -s "$f" "$2/$(basename "$f")" || diff="$diff $(basename "$f")"
  done
  local tmps=$(ls "$2" | grep -E '\.tmp(\.[0-9]+)?$' | tr '\n' ' ')
  [ "${3:-}" = tmpok ] && tmps=""
  if [ -z "$diff" ] && [ -z "$tmps" ]; then ok "$1: $n earlier files byte-identical, no temporary file"
  else bad "$1: changed:$diff; temporaries: $tmps"; fi
}
same() { # same NAME DIR [REFDIR]: final parameters bit-identical to the uninterrupted run, same metrics
  local ref=${3:-$TMP/ref}
  if /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$ref/final.h5" "$2/final.h5" --exact >"$TMP/cmp" 2>&1 &&
    diff <(cut -d, -f1-9 "$ref/metrics.csv") <(cut -d, -f1-9 "$2/metrics.csv") >>"$TMP/cmp"; then
    recovered=$((recovered + 1))
    ok "$1: resumed, final parameters bit-identical"
  else bad "$1: not bit-identical" "$TMP/cmp"; fi
}
# prepare DIR FROM STEP: a run directory as the uninterrupted run FROM left it at checkpoint STEP (and before)
prepare() {
  rm -rf "$1"
  mkdir -p "$1"
  local f s
  for f in "$2"/ckpt-*.h5; do
    s=$(basename "$f" .h5)
    s=$((10#${s#ckpt-}))
    [ "$s" -le "$3" ] && cp -p "$f" "$1/"
  done
  cp -p "$2/config.ini" "$2/metrics.csv" "$1/"
  printf 'ckpt-%08d.h5\n' "$3" >"$1/latest"
}

# ---- the configurations and the uninterrupted runs ----------------------------------------------------------------
# the tiny configuration on 1200 training images: 60 steps per epoch, a checkpoint every 20 steps, all kept;
# the data file is a copy that case 9 may change
tiny_config "$TMP/base.ini" 2 20
cp "$TMP/fm.h5" "$TMP/data.h5"
sed -e "s|^path = .*|path = $TMP/data.h5|" -e 's/^train_limit = .*/train_limit = 1200/' "$TMP/base.ini" >"$TMP/c.ini"
echo "keep = 100" >>"$TMP/c.ini"
sed 's/^epochs = .*/epochs = 6/' "$TMP/c.ini" >"$TMP/c6.ini" # long enough to be signalled mid-run
# a smaller model for the checkpoint-corruption loop (one copy per damaged byte)
sed 's/^hidden = .*/hidden = 8/; s/^components = .*/components = 10/' "$TMP/c.ini" >"$TMP/cs.ini"
for r in ref:c ref6:c6 refs:cs; do
  run "$TMP/${r%%:*}.log" 2 "$TMP/${r#*:}.ini" --set run.dir="$TMP/${r%%:*}"
  [ "$RC" -eq 0 ] || { bad "uninterrupted run ${r%%:*} (exit $RC)" "$TMP/${r%%:*}.log"; finish; exit 1; }
done
C=$(stat -c %s "$TMP/ref/ckpt-00000100.h5")
F=$(stat -c %s "$TMP/ref/final.h5")
P=$(stat -c %s "$TMP/ref/pictures.h5")
G=$(cat "$TMP"/ref/*.png | wc -c)
echo "uninterrupted runs done: checkpoint $C bytes, final.h5 $F, pictures.h5 $P, PNGs $G"

# ---- 1. a full disk at each write ----------------------------------------------------------------------------------
if [ "$(id -u)" -ne 0 ]; then
  echo "SKIP: not root (a full disk needs a tmpfs mount): disk-full cases not run"
elif ! { mkdir -p "$MNT" && mount -t tmpfs -o size=64m tmpfs "$MNT"; }; then
  echo "SKIP: cannot mount a tmpfs at $MNT: disk-full cases not run"
else
  # full TARGET FREE FROM STEP REGEX ARGS...: the run dir on the tmpfs with FREE bytes left, resumed from STEP
  full() {
    local target=$1 free=$2 from=$3 step=$4 re=$5 d=$MNT/run
    shift 5
    case_ "disk full at $target"
    rm -rf "$d" "$MNT/ballast"
    if [ "$step" = all ]; then mkdir -p "$d" && cp -p "$from"/* "$d/"; else prepare "$d" "$from" "$step"; fi
    snap "$d"
    local avail=$(df -B1 --output=avail "$MNT" | tail -1)
    fallocate -l $((avail - free)) "$MNT/ballast"
    echo "   $(df -B1 --output=avail "$MNT" | tail -1) bytes free on the tmpfs (wanted $free)"
    run "$TMP/full_$target.log" 2 "$TMP/c.ini" "$@"
    status "disk full at $target" 1 "$TMP/full_$target.log" "$re"
    unchanged "disk full at $target" "$d"
    rm -f "$MNT/ballast"
    run "$TMP/full_$target.log" 2 "$TMP/c.ini" "$@"
  }
  S=131072 # room for config.ini, metrics.csv and their temporaries
  full checkpoint $((C / 2)) "$TMP/ref" 100 "cannot write checkpoint \"$MNT/run/ckpt-00000120.h5\" \(rank 0: No space left on device\)" --set run.dir="$MNT/run"
  same "disk full at checkpoint, space freed" "$MNT/run"
  full final.h5 $((C + S + F / 2)) "$TMP/ref" 100 "cannot write \"$MNT/run/final.h5\": No space left on device" --set run.dir="$MNT/run"
  same "disk full at final.h5, space freed" "$MNT/run"
  full pictures.h5 $((C + S + F + G + P / 2)) "$TMP/ref" 100 "cannot write \"$MNT/run/pictures.h5\": No space left on device" --set run.dir="$MNT/run"
  same "disk full at pictures.h5, space freed" "$MNT/run"
  full eval.h5 $((F / 2)) "$TMP/ref" all "cannot write \"$MNT/run/eval.h5\": No space left on device" --set run.dir="$MNT/run" --eval "$MNT/run"
  [ "$RC" -eq 0 ] && /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$MNT/run/final.h5" "$MNT/run/eval.h5" --exact >/dev/null &&
    { recovered=$((recovered + 1)); ok "disk full at eval.h5, space freed: --eval writes eval.h5"; } || bad "--eval after freeing space (exit $RC)" "$TMP/full_eval.h5.log"
  rm -rf "$MNT/run"
  umount "$MNT"
fi

# ---- 2. a checkpoint write that fails on one rank only ---------------------------------------------------------------
for r in 1 0; do
  case_ "checkpoint write fails on rank $r only"
  prepare "$TMP/one$r" "$TMP/ref" 40
  snap "$TMP/one$r"
  VAMP_INJECT_CKPT_FAILURE_RANK=$r run "$TMP/one$r.log" 2 "$TMP/c.ini" --set run.dir="$TMP/one$r"
  status "failure on rank $r only" 1 "$TMP/one$r.log" "cannot write checkpoint \"$TMP/one$r/ckpt-00000060.h5\" \(rank $r: injected"
  unchanged "failure on rank $r only" "$TMP/one$r"
  run "$TMP/one$r.log" 2 "$TMP/c.ini" --set run.dir="$TMP/one$r"
  same "failure on rank $r only, rerun" "$TMP/one$r"
done

# ---- 3. kill -9 of a rank during a step, a checkpoint write, the evaluation -----------------------------------------
# killed NAME RANK WAIT_CONDITION... : resumed from 40 (checkpoint writes held 2 s), rank RANK killed once the
# condition holds; the job must end, the files before stay, the rerun removes any temporary and ends identical
killed() {
  local name=$1 r=$2 d=$TMP/$1
  shift 2
  case_ "kill -9 of rank $r $name"
  prepare "$d" "$TMP/ref" 40
  snap "$d"
  VAMP_INJECT_CKPT_DELAY=2 launch "$TMP/$name.log" 2 "$TMP/c.ini" --set run.dir="$d" $EXTRA
  until_ 60 "$@" || bad "$name: the moment to kill never came" "$TMP/$name.log"
  kill -KILL "$(rank_pid "$r")"
  finish_within 60
  if [ "$RC" -eq 124 ]; then bad "$name: TIMED OUT after kill -9"; elif [ "$RC" -ne 0 ]; then clear=$((clear + 1)); ok "$name: the job ended (exit $RC)"; else bad "$name: exit 0 after kill -9" "$TMP/$name.log"; fi
  unchanged "$name" "$d" tmpok
  run "$TMP/$name.log" 2 "$TMP/c.ini" --set run.dir="$d" $EXTRA
  same "$name, rerun" "$d"
  [ -z "$(ls "$d" | grep -E '\.tmp(\.[0-9]+)?$')" ] && ok "$name: no temporary file after the rerun" || bad "$name: temporaries left: $(ls "$d")"
}
EXTRA=""
killed "during-step" 1 test -e "$TMP/during-step/ckpt-00000060.h5"
killed "during-write" 0 test -e "$TMP/during-write/ckpt-00000060.h5.tmp"
grep -q "removed $TMP/during-write/ckpt-00000060.h5.tmp, a temporary file left by an interrupted run" "$TMP/during-write.log" &&
  grep -q "resumed from $TMP/during-write/ckpt-00000040.h5" "$TMP/during-write.log" &&
  ok "during-write: the rerun removed the half-written temporary and resumed from the previous checkpoint" || bad "during-write: cleanup" "$TMP/during-write.log"
EXTRA="--set eval.samples=500"
killed "during-evaluation" 1 grep -q "test log-likelihood:" "$TMP/during-evaluation.log"
grep -q "resumed from $TMP/during-evaluation/ckpt-00000120.h5: epoch 3, batch 0" "$TMP/during-evaluation.log" &&
  ok "during-evaluation: the rerun resumed from the end-of-training checkpoint (evaluation only)" || bad "during-evaluation: resume point" "$TMP/during-evaluation.log"
EXTRA=""

# ---- 4. signals ----------------------------------------------------------------------------------------------------
# signalled NAME WANT REGEX TARGET SIGNAL: a 6-epoch run signalled as soon as it trains
signalled() {
  local name=$1 want=$2 re=$3 target=$4 sig=$5 d=$TMP/$1
  case_ "$name"
  rm -rf "$d"
  mkdir -p "$d"
  snap "$d"
  launch "$TMP/$name.log" 2 "$TMP/c6.ini" --set run.dir="$d"
  until_ 60 grep -q "steps per epoch" "$TMP/$name.log"
  case $target in
  mpirun) kill -"$sig" "$PID" ;;
  ranks) kill -"$sig" "$(rank_pid 0)" "$(rank_pid 1)" ;;
  everyone) kill -"$sig" "$PID" "$(rank_pid 0)" "$(rank_pid 1)" ;;
  rank1) kill -"$sig" "$(rank_pid 1)" ;;
  esac
  finish_within 60
  status "$name" "$want" "$TMP/$name.log" "$re"
  unchanged "$name" "$d" # nothing from before; no temporary left behind
  run "$TMP/$name.log" 2 "$TMP/c6.ini" --set run.dir="$d"
  same "$name, rerun" "$d" "$TMP/ref6"
}
STOP="stop signal: checkpoint .*ckpt-[0-9]+.h5 written at epoch [0-9]+ batch [0-9]+"
signalled "SIGTERM to mpirun" 1 "$STOP" mpirun TERM
signalled "SIGINT to mpirun (Ctrl-C)" 1 "$STOP" mpirun INT
signalled "SIGTERM to mpirun and every rank (Slurm scancel)" 1 "$STOP" everyone TERM
signalled "SIGTERM to every rank" 75 "$STOP" ranks TERM
signalled "SIGTERM to one rank" 75 "$STOP" rank1 TERM
signalled "SIGINT to one rank" 75 "$STOP" rank1 INT
signalled "SIGUSR1 to mpirun" 75 "$STOP" mpirun USR1

case_ "SIGUSR1 to mpirun during the final evaluation"
d=$TMP/sigeval
rm -rf "$d"
launch "$TMP/sigeval.log" 2 "$TMP/c.ini" --set run.dir="$d" --set eval.samples=500
until_ 60 grep -q "test log-likelihood:" "$TMP/sigeval.log"
kill -USR1 "$PID"
finish_within 60
status "SIGUSR1 during the evaluation" 75 "$TMP/sigeval.log" "stop signal during the final evaluation: training is checkpointed; exiting with status 75"
run "$TMP/sigeval.log" 2 "$TMP/c.ini" --set run.dir="$d" --set eval.samples=500
same "SIGUSR1 during the evaluation, rerun" "$d"

case_ "SIGTERM to mpirun during a slow checkpoint write (killed by mpirun's SIGKILL 1 s later)"
prepare "$TMP/sigwrite" "$TMP/ref" 40
snap "$TMP/sigwrite"
VAMP_INJECT_CKPT_DELAY=5 launch "$TMP/sigwrite.log" 2 "$TMP/c.ini" --set run.dir="$TMP/sigwrite"
until_ 60 test -e "$TMP/sigwrite/ckpt-00000060.h5.tmp"
kill -TERM "$PID"
finish_within 60
status "SIGTERM to mpirun mid-write" 1 "$TMP/sigwrite.log" "resumed from .*ckpt-00000040.h5"
unchanged "SIGTERM to mpirun mid-write" "$TMP/sigwrite" tmpok
run "$TMP/sigwrite.log" 2 "$TMP/c.ini" --set run.dir="$TMP/sigwrite"
grep -q "removed $TMP/sigwrite/ckpt-00000060.h5.tmp, a temporary file left by an interrupted run" "$TMP/sigwrite.log" &&
  ok "SIGTERM mid-write: the rerun removed the temporary" || bad "SIGTERM mid-write: cleanup" "$TMP/sigwrite.log"
same "SIGTERM mid-write, rerun" "$TMP/sigwrite"

# ---- 5. every checkpoint attribute corrupted in turn ----------------------------------------------------------------
# one damaged copy per (attribute, byte) and per deleted attribute, newer than the intact ckpt-80; --resume auto
# must refuse each with a warning naming it, fall back to ckpt-80 in the end and finish bit-identical
case_ "checkpoint attributes corrupted byte by byte"
mkdir -p "$TMP/variants"
/usr/bin/python3 "$SRC/tests/tools/ckpt_corrupt.py" variants "$TMP/refs/ckpt-00000080.h5" "$TMP/variants" 1000 "$TMP/manifest" || bad "ckpt_corrupt.py"
split -l 125 "$TMP/manifest" "$TMP/batch."
nb=0 named=0 total=$(wc -l <"$TMP/manifest")
for b in "$TMP"/batch.*; do
  nb=$((nb + 1))
  d=$TMP/corrupt$nb
  prepare "$d" "$TMP/refs" 80
  rm "$d/latest" # the damaged copies are newer: auto tries each of them first
  while read -r f attr what; do mv "$f" "$d/"; done <"$b"
  run "$TMP/corrupt$nb.log" 2 "$TMP/cs.ini" --set run.dir="$d"
  [ "$RC" -eq 124 ] && bad "corruption batch $nb: TIMED OUT"
  while read -r f attr what; do
    f=$d/$(basename "$f")
    line=$(grep -F "warning: cannot resume from $f: " "$TMP/corrupt$nb.log")
    if [ -n "$line" ] && { [[ "$line" == *"$attr"* ]] || [[ "$line" == *"checksum mismatch in the attributes"* ]]; }; then
      named=$((named + 1))
    else echo "     not refused or culprit not named: $attr $what: ${line:-no warning}"; fi
  done <"$b"
  grep -q "resumed from $d/ckpt-00000080.h5: epoch 2, batch 20" "$TMP/corrupt$nb.log" || bad "batch $nb: no fallback to the intact checkpoint" "$TMP/corrupt$nb.log"
  same "corruption batch $nb" "$d" "$TMP/refs"
done
clear=$((clear + named))
[ "$named" -eq "$total" ] && ok "$total damaged copies ($(cut -d' ' -f2 "$TMP/manifest" | sort -u | wc -l) attributes): every one refused, naming the attribute or the attribute checksum" ||
  bad "$((total - named)) of $total damaged copies not refused with the culprit named"
cmp -s "$TMP/refs/ckpt-00000080.h5" "$d/ckpt-00000080.h5" && ok "the intact checkpoint is byte-identical" || bad "intact checkpoint changed"

# records with a correct checksum but wrong values, and an older format: refused by --resume PATH, exit 2
forged() { # forged ATTR VALUE REGEX
  case_ "forged record: $1 = $2 with a valid checksum"
  /usr/bin/python3 "$SRC/tests/tools/ckpt_corrupt.py" forge "$TMP/refs/ckpt-00000080.h5" "$TMP/forged.h5" "$1" "$2"
  prepare "$TMP/forged" "$TMP/refs" 80
  snap "$TMP/forged"
  run "$TMP/forged_$1.log" 1 "$TMP/cs.ini" --set run.dir="$TMP/forged" --resume "$TMP/forged.h5"
  status "forged $1 = $2" 2 "$TMP/forged_$1.log" "$3"
  unchanged "forged $1 = $2" "$TMP/forged" all
}
forged it 50 "forged.h5: inconsistent progress record \(step 80, epoch 2, it 50, 60 steps per epoch\)"
forged epoch 0 "forged.h5: attribute epoch = 0 is outside its range"
forged nsteps 25 "forged.h5: inconsistent progress record .*nsteps exceeds it"
forged best_epoch 2 "forged.h5: inconsistent progress record .*best_epoch or since_best exceeds"
forged data_pixels 783 "forged.h5 was written for other data: .* now has a training split of 1200 rows x 784 pixels"
forged version 1 "forged.h5: checkpoint format version 1, written by an older vamp_mpi"

# ---- 6. truncated checkpoints and data files ---------------------------------------------------------------------------
case_ "truncated checkpoints"
d=$TMP/trunc
prepare "$d" "$TMP/refs" 80
rm "$d/latest"
Cs=$(stat -c %s "$TMP/refs/ckpt-00000080.h5")
n=0
for size in 0 100 2048 $((Cs / 3)) $((Cs * 2 / 3)) $((Cs - 1)); do
  n=$((n + 1))
  head -c "$size" "$TMP/refs/ckpt-00000080.h5" >"$d/ckpt-0000200$n.h5"
done
run "$TMP/trunc.log" 2 "$TMP/cs.ini" --set run.dir="$d"
k=$(grep -cE "warning: cannot resume from $d/ckpt-0000200[1-6].h5: .*(not a readable HDF5 file|cannot be opened as HDF5|cannot be read)" "$TMP/trunc.log")
[ "$k" -eq 6 ] && { clear=$((clear + 6)); ok "6 truncated checkpoints (0 bytes .. one byte short) refused as truncated or corrupt"; } || bad "truncated: $k of 6 refused" "$TMP/trunc.log"
same "truncated checkpoints, fallback" "$d" "$TMP/refs"
run "$TMP/trunc1.log" 1 "$TMP/cs.ini" --set run.dir="$d" --resume "$d/ckpt-00002005.h5"
status "--resume of a truncated checkpoint" 2 "$TMP/trunc1.log" "--resume: $d/ckpt-00002005.h5: (not a readable HDF5 file|cannot be opened as HDF5)"

for size in 1000 $(($(stat -c %s "$TMP/fm.h5") / 2)); do
  case_ "data file truncated to $size bytes"
  head -c "$size" "$TMP/fm.h5" >"$TMP/data.h5"
  rm -rf "$TMP/tdata"
  run "$TMP/tdata.log" 2 "$TMP/c.ini" --set run.dir="$TMP/tdata"
  status "data file truncated to $size bytes" 2 "$TMP/tdata.log" "$TMP/data.h5"
  [ ! -e "$TMP/tdata" ] && ok "truncated data: nothing written (no run directory)" || bad "truncated data: $TMP/tdata was created"
done
cp "$TMP/fm.h5" "$TMP/data.h5"

# ---- 7. a changed data file at the same path ------------------------------------------------------------------------
for split in train:training test:test; do
  case_ "data file changed at the same path (one pixel of /${split%%:*})"
  d=$TMP/changed
  prepare "$d" "$TMP/ref" 80
  snap "$d"
  /usr/bin/python3 -c "
import sys, h5py
with h5py.File(sys.argv[1], 'r+') as f:
    x = f[sys.argv[2]]
    x[7, 400] = 255 - x[7, 400]" "$TMP/data.h5" "${split%%:*}"
  run "$TMP/changed.log" 2 "$TMP/c.ini" --set run.dir="$d"
  status "changed /${split%%:*}" 2 "$TMP/changed.log" "ckpt-00000080.h5 was written for other data: data.path = $TMP/data.h5 now has a ${split#*:} split"
  unchanged "changed /${split%%:*}: refused, nothing written" "$d" all
  cp "$TMP/fm.h5" "$TMP/data.h5"
  run "$TMP/changed.log" 2 "$TMP/c.ini" --set run.dir="$d"
  same "the original data file restored" "$d"
done

# ---- 8. a refused resume writes nothing ----------------------------------------------------------------------------
case_ "resume refused for a changed model: the run directory stays as it was"
d=$TMP/refused
rm -rf "$d"
cp -rp "$TMP/ref" "$d"
snap "$d"
run "$TMP/refused.log" 2 "$TMP/c.ini" --set run.dir="$d" --set model.hidden=32
status "changed model.hidden" 2 "$TMP/refused.log" "cannot resume: .*ckpt-00000120.h5 was written with a different model or data order; these keys differ: model.hidden"
unchanged "changed model.hidden" "$d" all
run "$TMP/refused.log" 2 --eval "$d" # its own config.ini
[ "$RC" -eq 0 ] && ok "--eval of that run still works (its config.ini was not replaced)" || bad "--eval after the refusal (exit $RC)" "$TMP/refused.log"

echo "fault cases: $cases tried, $clear clear errors (status and culprit asserted), $recovered recoveries bit-identical"
finish
