#!/bin/bash
# The job scripts in jobs/ on a real Slurm: starts slurmctld + slurmd (Debian's slurm-wlm) on this machine
# with a minimal slurm.conf, submits the scripts with a tiny config and checks:
#  - single_node.sbatch (mpirun in the allocation) and multi_node.sbatch (srun --mpi=pmix) end with final
#    parameters bit-identical to the same run outside Slurm;
#  - requeue.sbatch: USR1 sent to the batch script mid-run -> checkpoint, exit 75, the job requeues itself,
#    the second run resumes (SLURM_RESTART_COUNT=1) and ends bit-identical to the uninterrupted run;
#    suspended and resumed (scontrol suspend), its stop timer follows the end Slurm moved;
#  - array_presets.sbatch runs one preset per array task;
#  - a job script run outside Slurm refuses with exit 2.
# If the daemons cannot start, the test fails saying why (no fake scheduler).
# usage: test_slurm.sh BUILD_DIR SOURCE_DIR
set -uo pipefail
source "$(dirname "$0")/lib.sh" "$@"
source "$(dirname "$0")/lib_slurm.sh"
cleanup() {
  for p in "$TMP"/slurmd.pid "$TMP"/slurmctld.pid; do [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null; done
  sleep 1
  rm -rf "$TMP"
}
trap cleanup EXIT

for cmd in slurmctld slurmd sbatch scontrol scancel; do
  command -v $cmd >/dev/null || { echo "FAIL: $cmd not found (apt-get install slurm-wlm)"; echo "0 passed, 1 failed"; exit 1; }
done
HOST=$(hostname -s)
export SLURM_CONF=$TMP/slurm.conf
mkdir -p "$TMP/state" "$TMP/spool"
{
  slurm_conf_head vamptest "$HOST(127.0.0.1)" 16817 "$TMP" ""
  echo "NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN"
  echo "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES"
} >"$SLURM_CONF"
slurmctld -c -f "$SLURM_CONF" >"$TMP/ctld.out" 2>&1
slurmd -f "$SLURM_CONF" >"$TMP/slurmd.out" 2>&1
up=0
for _ in $(seq 1 60); do
  [ "$(sinfo -h -o %t 2>/dev/null | head -1)" = idle ] && { up=1; break; }
  sleep 0.5
done
if [ $up -ne 1 ]; then
  echo "FAIL: Slurm did not come up on this machine; sinfo says: $(sinfo 2>&1 | tail -2)"
  echo "slurmctld log:"; tail -5 "$TMP/slurmctld.log" 2>/dev/null; tail -5 "$TMP/ctld.out"
  echo "slurmd log:"; tail -5 "$TMP/slurmd.log" 2>/dev/null; tail -5 "$TMP/slurmd.out"
  echo "0 passed, 1 failed"
  exit 1
fi
ok "single-node Slurm up: $(sinfo -h -o '%P %D %t %c')"


tiny_config "$TMP/c.ini" 6 100
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none VAMP_MPI=$BUILD/vamp_mpi
mpirun --allow-run-as-root -np 2 "$BUILD/vamp_mpi" "$TMP/c.ini" --set run.dir="$TMP/ref" >"$TMP/ref.log" 2>&1 ||
  { echo "reference run failed"; cat "$TMP/ref.log"; exit 1; }
same() { /usr/bin/python3 "$SRC/tests/tools/h5params.py" "$TMP/ref/final.h5" "$2/final.h5" --exact >"$TMP/cmp" 2>&1 && ok "$1" || bad "$1" "$TMP/cmp"; }

cd "$SRC" # job scripts are submitted from the repository root
bash jobs/single_node.sbatch "$TMP/c.ini" >"$TMP/outside.log" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "not inside a Slurm job" "$TMP/outside.log" && ok "outside Slurm: refused (exit 2)" || bad "outside Slurm (exit $rc)" "$TMP/outside.log"

id=$(submit -N1 -n2 jobs/single_node.sbatch "$TMP/c.ini" --set run.dir="$TMP/single")
wait_state "$id" COMPLETED 300 && ok "single_node.sbatch: job $id COMPLETED" || bad "single_node.sbatch: job $id $(state "$id")" "$TMP/job-$id.out"
grep -qE "^job $id on $HOST .*restart 0, [0-9]{4}-" "$TMP/job-$id.out" && ok "the job script echoes job id, nodes and date" || bad "job header" "$TMP/job-$id.out"
same "single_node.sbatch: final parameters bit-identical to the run outside Slurm" "$TMP/single"

id=$(submit -N1 -n2 --ntasks-per-node=2 jobs/multi_node.sbatch "$TMP/c.ini" --set run.dir="$TMP/multi")
wait_state "$id" COMPLETED 300 && ok "multi_node.sbatch (srun --mpi=pmix): job $id COMPLETED" || bad "multi_node.sbatch: job $id $(state "$id")" "$TMP/job-$id.out"
same "multi_node.sbatch: final parameters bit-identical" "$TMP/multi"

# The run takes ~2 s; every checkpoint write is held 1 s (a test hook that changes no result) so that USR1
# lands mid-run however fast the machine is. sbatch passes the environment to the job and to its requeue.
id=$(VAMP_INJECT_CKPT_DELAY=1 submit -N1 -n2 jobs/requeue.sbatch "$TMP/c.ini" --set run.dir="$TMP/long")
has_ckpt() { compgen -G "$TMP/long/ckpt-*.h5" >/dev/null; }
for _ in $(seq 1 240); do has_ckpt && break; sleep 0.5; done
grep -q "started vamp_mpi" "$TMP/job-$id.out" && has_ckpt || bad "requeue job did not start" "$TMP/job-$id.out"
scancel --signal=USR1 --batch "$id"
requeued=0
for _ in $(seq 1 240); do
  if scontrol show job "$id" | grep -q "Restarts=1"; then requeued=1; break; fi
  sleep 0.5
done
[ $requeued -eq 1 ] && grep -q "vamp_mpi exited with status 75" "$TMP/job-$id.out" && grep -q "requeueing job $id" "$TMP/job-$id.out" &&
  ok "requeue.sbatch: USR1 -> checkpoint, exit 75, job requeued" || bad "requeue: state $(state "$id")" "$TMP/job-$id.out"
# no "scontrol update StartTime=now": starting before the old credential expires (cred_expire = 10 s) fails
# the job with "credential revoked"; the requeued job starts by itself cred_expire + 1 s later
wait_state "$id" COMPLETED 300 && ok "requeue.sbatch: second run COMPLETED" || bad "requeued job $(state "$id")" "$TMP/job-$id.out"
grep -q "restart 1" "$TMP/job-$id.out" && grep -q "resumed from $TMP/long/ckpt-" "$TMP/job-$id.out" && ok "the second run (SLURM_RESTART_COUNT=1) resumed from the checkpoint" || bad "resume in the requeued run" "$TMP/job-$id.out"
same "requeue.sbatch: final parameters bit-identical to the uninterrupted run" "$TMP/long"

# requeue.sbatch suspended (scontrol suspend, as preemption does): Slurm moves the job's end by the time it was
# suspended, and the script's own stop timer must follow. Limit 120 s, own margin 60 s, suspended for 70 s from
# about 10 s in: the end moves to about 110 s after the resume, so the own timer is due about 50 s after it; a
# timer that slept on through the suspension fires at the resume. Slurm's warning is set 30 s before the end:
# Slurm sends it up to 30 s early (its time-limit pass runs every 30 s), so at 60 s it could come 20 s after
# the resume and hide the timer's verdict; at 30 s it comes no sooner than the timer. The run is cancelled once
# it has stopped.
id=$(VAMP_STOP_MARGIN=60 submit -N1 -n2 --time=2 --signal=B:USR1@30 jobs/requeue.sbatch "$TMP/c.ini" \
  --set run.dir="$TMP/suspended" --set train.epochs=100000)
log=$TMP/job-$id.out
for _ in $(seq 1 120); do grep -q "started vamp_mpi" "$log" 2>/dev/null && break; sleep 0.5; done
sleep 8
scontrol suspend "$id" && sleep 70 && scontrol resume "$id" || bad "scontrol suspend / resume of job $id failed" "$log"
resumed=$(date +%s)
for _ in $(seq 1 240); do grep -q "vamp_mpi exited" "$log" && break; sleep 0.5; done
stopped=$(grep -m1 "got USR1" "$log" | cut -d' ' -f1)
gap=$(( $(date -d "${stopped:-now}" +%s) - resumed ))
[ -n "$stopped" ] && [ $gap -ge 30 ] && grep -q "vamp_mpi exited with status 75" "$log" &&
  ok "requeue.sbatch suspended for 70 s: USR1 $gap s after the resume (due about 50 s after), checkpoint, exit 75" ||
  bad "requeue.sbatch suspended: USR1 ${stopped:-never} ($gap s after the resume; due about 50 s after)" "$log"
scancel "$id"
wait_state "$id" "CANCELLED|COMPLETED|" 60

mkdir -p "$TMP/presets"
for p in standard vampprior; do
  sed -e "s|^\[data\]|[run]\ndir = $TMP/sweep_$p\n[data]|" "$TMP/c.ini" >"$TMP/presets/vae_$p.ini"
done
sed -i 's/^components = 40/components = 40\ntype = standard/' "$TMP/presets/vae_standard.ini"
id=$(submit -N1 -n2 --array=0-1 jobs/array_presets.sbatch "$TMP/presets" --set train.epochs=1)
done_all=1
for t in 0 1; do wait_state "${id}_$t" COMPLETED 300 || done_all=0; done
[ $done_all -eq 1 ] && [ -f "$TMP/sweep_standard/final.h5" ] && [ -f "$TMP/sweep_vampprior/final.h5" ] &&
  ok "array_presets.sbatch: tasks 0 and 1 trained one preset each" || { bad "array job"; cat "$TMP"/job-*.out | tail -20; }

finish
