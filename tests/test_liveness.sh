#!/bin/bash
# The run-directory lock and the peer watchdog (include/vamp/liveness.h), on 2 real ranks:
#  - a second run on a run directory in use refuses (exit 2, naming host and pid) and changes nothing there;
#  - the lock of a run killed with kill -9 is taken over at once on the same host, one from another host once
#    its heartbeat is older than 120 s, one of the same Slurm job after a requeue at once; a fresh one of another
#    host is refused; a run that ends (finished, or refused on resume) leaves no lock and no directory it made;
#  - a stalled peer (SIGSTOP of one rank) longer than run.peer_timeout ends the job in bounded time with a message
#    naming the call and the stall; the last checkpoint is intact and the rerun ends bit-identical to an
#    uninterrupted run; a stall shorter than the timeout is survived, bit-identical too.
# usage: test_liveness.sh BUILD_DIR SOURCE_DIR
source "$(dirname "$0")/lib.sh" "$@"
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
MPI=("$MPIEXEC" -n 2 --oversubscribe)
[ "$(id -u)" = 0 ] && MPI+=(--allow-run-as-root)
tiny_config "$TMP/cfg.ini" 2 25
VAMP() { "${MPI[@]}" "$BUILD/vamp_mpi" "$TMP/cfg.ini" "$@"; }
LOCK=vamp_mpi.lock

# the reference: uninterrupted
VAMP --set run.dir="$TMP/ref" >"$TMP/ref.log" 2>&1 || bad "reference run" "$TMP/ref.log"
[ ! -e "$TMP/ref/$LOCK" ] && ok "a finished run leaves no lock" || bad "a finished run leaves no lock"

# rank_pids RUN_DIR: the vamp_mpi rank processes of the run in RUN_DIR (not mpiexec, whose command line names it too)
rank_pids() { for p in $(pgrep -f "run.dir=$1( |$)"); do [ "$(cat /proc/$p/comm 2>/dev/null)" = vamp_mpi ] && echo $p; done; }

# 1. a second run refuses while the first runs; kill -9 of the first; its lock is taken over
D="$TMP/busy"
# slowed by a 2 s pause in every checkpoint write (a test hook that changes no result): still running when the
# second run starts and when it is killed, within the 2 epochs of the reference
VAMP_INJECT_CKPT_DELAY=2 "${MPI[@]}" "$BUILD/vamp_mpi" "$TMP/cfg.ini" --set run.dir="$D" >"$TMP/a.log" 2>&1 &
A=$!
if wait_for_file "$D/$LOCK" 60; then
  holder=$(cat "$D/$LOCK")
  VAMP --set run.dir="$D" --set train.epochs=50 >"$TMP/b.log" 2>&1
  rc=$?
  if [ $rc = 2 ] && grep -q "is in use by another run: host $(hostname), pid" "$TMP/b.log" &&
     [ "$(cat "$D/$LOCK")" = "$holder" ]; then
    ok "a second run on a busy run.dir: exit 2 naming the holder, the lock untouched"
  else
    bad "a second run on a busy run.dir (exit $rc)" "$TMP/b.log"
  fi
  wait_for_file "$D/latest" 120 || bad "the first run wrote no checkpoint" "$TMP/a.log"
  kill -9 $(rank_pids "$D") 2>/dev/null # the ranks only: mpiexec ends the job
  wait $A 2>/dev/null
  [ -e "$D/$LOCK" ] && ok "kill -9 leaves the lock" || bad "kill -9 leaves the lock"
  VAMP --set run.dir="$D" >"$TMP/c.log" 2>&1
  rc=$?
  if [ $rc = 0 ] && grep -q "taking over the lock of an earlier run: its process .* no longer exists" "$TMP/c.log" &&
     [ ! -e "$D/$LOCK" ] && /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$D/final.h5" "$TMP/ref/final.h5" --exact >/dev/null; then
    ok "the lock of a killed run is taken over on the same host; the resumed run ends bit-identical"
  else
    bad "taking over after kill -9 (exit $rc)" "$TMP/c.log"
  fi
else
  bad "the first run never took the lock" "$TMP/a.log"
  kill $A 2>/dev/null
fi

# 2. locks of other hosts and of a requeued Slurm job (forged lock files; one rank, Slurm's own launch
#    components off so that the SLURM_* variables only name the holder)
forge() { # forge DIR HOST JOB RESTART AGE_S
  mkdir -p "$1"
  echo "host=$2 pid=12345 slurm_job=$3 slurm_restart=$4" >"$1/$LOCK"
  touch -d "-$5 seconds" "$1/$LOCK"
}
ONE=("$MPIEXEC" -n 1)
[ "$(id -u)" = 0 ] && ONE+=(--allow-run-as-root)
one() { OMPI_MCA_ras=^slurm OMPI_MCA_plm=^slurm OMPI_MCA_ess=^slurm "${ONE[@]}" "$BUILD/vamp_mpi" "$TMP/cfg.ini" \
        --set train.epochs=1 --set checkpoint.every_steps=0 "$@"; }
forge "$TMP/h1" elsewhere - 0 5
one --set run.dir="$TMP/h1" >"$TMP/h1.log" 2>&1
rc=$?
[ $rc = 2 ] && grep -q "in use by another run: host elsewhere, pid 12345" "$TMP/h1.log" && [ ! -e "$TMP/h1/config.ini" ] &&
  ok "a fresh lock of another host: refused, nothing written" || bad "a fresh lock of another host (exit $rc)" "$TMP/h1.log"
forge "$TMP/h2" elsewhere - 0 200
one --set run.dir="$TMP/h2" >"$TMP/h2.log" 2>&1
rc=$?
[ $rc = 0 ] && grep -q "its heartbeat stopped 2.. s ago" "$TMP/h2.log" && [ ! -e "$TMP/h2/$LOCK" ] &&
  ok "a lock without heartbeat for 200 s: taken over" || bad "a stale lock of another host (exit $rc)" "$TMP/h2.log"
forge "$TMP/h3" elsewhere 4242 0 5
SLURM_JOB_ID=4242 SLURM_RESTART_COUNT=1 one --set run.dir="$TMP/h3" >"$TMP/h3.log" 2>&1
rc=$?
[ $rc = 0 ] && grep -q "this Slurm job 4242 before its requeue" "$TMP/h3.log" &&
  ok "the lock of the same Slurm job before its requeue: taken over" || bad "requeued job's lock (exit $rc)" "$TMP/h3.log"
forge "$TMP/h4" elsewhere 4242 1 5
SLURM_JOB_ID=4242 SLURM_RESTART_COUNT=1 one --set run.dir="$TMP/h4" >"$TMP/h4.log" 2>&1
rc=$?
[ $rc = 2 ] && ok "a fresh lock of the same Slurm job and restart (another step): refused" ||
  bad "same job, same restart (exit $rc)" "$TMP/h4.log"

# 3. a run refused on resume (changed model) leaves the directory as it was, without a lock; a refused run in a
#    directory that did not exist leaves no directory
before=$(cd "$TMP/ref" && ls -l --time-style=full-iso | md5sum)
VAMP --set run.dir="$TMP/ref" --set model.hidden=32 >"$TMP/r.log" 2>&1
rc=$?
after=$(cd "$TMP/ref" && ls -l --time-style=full-iso | md5sum)
[ $rc = 2 ] && [ "$before" = "$after" ] && ok "a refused resume: exit 2, run.dir unchanged, no lock left" ||
  bad "a refused resume (exit $rc)" "$TMP/r.log"

# 4. the watchdog: one rank stopped for longer than run.peer_timeout ends the job; a shorter stall is survived
D="$TMP/stall"
"${MPI[@]}" "$BUILD/vamp_mpi" "$TMP/cfg.ini" --set run.dir="$D" --set run.peer_timeout=4 >"$TMP/s.log" 2>&1 &
S=$!
if wait_for_file "$D/latest" 120; then
  victim=$(rank_pids "$D" | tail -1)
  kill -STOP "$victim"
  t1=$(date +%s)
  for _ in $(seq 600); do kill -0 $S 2>/dev/null || break; sleep 0.1; done
  if kill -0 $S 2>/dev/null; then
    bad "a stalled peer: the job still runs 60 s later"
    kill -CONT "$victim"; kill -9 $(rank_pids "$D") $S 2>/dev/null
  else
    wait $S
    rc=$?
    took=$(($(date +%s) - t1))
    if [ $rc != 0 ] && [ $took -le 30 ] && grep -q "no answer from the other ranks for [4-9] s in MPI_" "$TMP/s.log" &&
       grep -q "run.peer_timeout = 4 s" "$TMP/s.log"; then
      ok "a peer stopped for longer than run.peer_timeout = 4 s: the job ended after $took s naming the call (exit $rc)"
    else
      bad "a stalled peer (exit $rc after $took s)" "$TMP/s.log"
    fi
  fi
  kill -9 "$victim" 2>/dev/null
  VAMP --set run.dir="$D" --set run.peer_timeout=4 >"$TMP/s2.log" 2>&1
  rc=$?
  if [ $rc = 0 ] && /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$D/final.h5" "$TMP/ref/final.h5" --exact >/dev/null; then
    ok "after the stall the rerun resumes from the last checkpoint and ends bit-identical"
  else
    bad "rerun after the stall (exit $rc)" "$TMP/s2.log"
  fi
else
  bad "the stall run wrote no checkpoint" "$TMP/s.log"
  kill -9 $(rank_pids "$D") $S 2>/dev/null
fi

D="$TMP/pause"
"${MPI[@]}" "$BUILD/vamp_mpi" "$TMP/cfg.ini" --set run.dir="$D" --set run.peer_timeout=20 >"$TMP/p.log" 2>&1 &
P=$!
if wait_for_file "$D/latest" 120; then
  victim=$(rank_pids "$D" | tail -1)
  kill -STOP "$victim"; sleep 3; kill -CONT "$victim"
fi
wait $P
rc=$?
[ $rc = 0 ] && /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$D/final.h5" "$TMP/ref/final.h5" --exact >/dev/null &&
  ok "a 3 s stall under run.peer_timeout = 20 s: the run goes on and ends bit-identical" ||
  bad "a short stall (exit $rc)" "$TMP/p.log"
finish
