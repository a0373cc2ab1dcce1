#!/bin/bash
# Several nodes for real, on one machine: tests/cluster/cluster.sh makes 3 hosts (network + UTS + mount
# namespaces on a bridge) with one slurmd each and slurmctld beside them, and this test checks:
#  - the hosts resolve by name; Slurm shows 3 idle nodes; srun --mpi=pmix -N 2 -n 4 runs on two hosts;
#  - Open MPI across hosts (mpirun --host A:2,B:2, launcher agent): TCP between hosts, shared memory (vader)
#    only inside a host, asserted from --mca btl_base_verbose output;
#  - jobs/multi_node.sbatch on 2 nodes x 2 ranks ends bit-identical (h5diff /params) to 1 rank outside;
#  - one checkpoint chain over three layouts: 2 hosts x 2 ranks (mpirun) stop at train.max_steps, 1 host x 1
#    rank resumes and stops, 3 nodes x 1 rank (multi_node.sbatch) finish: bit-identical to the 1-rank run;
#  - jobs/requeue.sbatch on 2 nodes under a real time limit (--time=2 --signal=B:USR1@100): USR1 from Slurm,
#    checkpoint, exit 75, requeue, the next run resumes and ends bit-identical;
#  - jobs/array_presets.sbatch gives every task its own run directory when the user passes run.dir; every job
#    script carries the commented template lines (--time, --account, --partition, --mem, module load).
#  - a network stall (a host cut off for 3 s) is survived, bit-identical;
#  - a host that dies (cut off, every process in it killed, slurmd too) under mpirun: the job ends within a minute
#    naming the lost host (Open MPI's daemon keepalive or vamp_mpi's run.peer_timeout), the rerun on the surviving
#    hosts resumes from the last checkpoint, bit-identical; under Slurm (multi_node.sbatch on 2 nodes): the
#    surviving rank ends after run.peer_timeout naming the lost host, the job ends, and a rerun resumes
#    bit-identical.
# Needs root (ip netns); prints "SKIP: needs root and ip netns" and exits 77 (CTest's skip) otherwise.
# usage: tests/cluster/run_tests.sh BUILD_DIR SOURCE_DIR   (CTest: test_cluster)
set -uo pipefail
if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! ip netns list >/dev/null 2>&1; then
  echo "SKIP: needs root and ip netns"
  exit 77
fi
# The hosts replace /tmp by their own: everything they share (data, runs, cluster state) lives in /var/tmp,
# and a build or clone under /tmp is bound into every host's /tmp (CLUSTER_SHARE).
export TMPDIR=/var/tmp
source "$(dirname "$0")/../lib.sh" "$@"
source "$(dirname "$0")/../lib_slurm.sh"
unset TMPDIR
CLUSTER=$SRC/tests/cluster/cluster.sh
export CLUSTER_ID=auto CLUSTER_DIR=$TMP/cluster CLUSTER_SLURMD_TIMEOUT=20 CLUSTER_OWNER=$$ CLUSTER_SHARE=$BUILD:$SRC
cleanup() {
  [ -f "$TMP/cluster/env" ] && (source "$TMP/cluster/env" && "$CLUSTER" down >/dev/null)
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for cmd in slurmctld slurmd sbatch srun mpicc h5diff nsenter unshare; do
  command -v $cmd >/dev/null || { echo "FAIL: $cmd not found"; echo "0 passed, 1 failed"; exit 1; }
done
if ! timeout 60 "$CLUSTER" up 3 >"$TMP/up.log" 2>&1; then
  echo "FAIL: the cluster did not come up"; cat "$TMP/up.log"; echo "0 passed, 1 failed"; exit 1
fi
source "$TMP/cluster/env"
read -r H1 H2 H3 <<<"$CLUSTER_HOSTS"
export OPENBLAS_NUM_THREADS=1 OMPI_MCA_btl_vader_single_copy_mechanism=none VAMP_MPI=$BUILD/vamp_mpi
ok "cluster up: $(sed -n 1p "$TMP/up.log")"

# --- hosts, names, Slurm
names=$(for h in $CLUSTER_HOSTS; do "$CLUSTER" exec "$h" hostname; done | xargs)
addr=$(getent hosts "$H2" | awk '{print $1}')
[ "$names" = "$CLUSTER_HOSTS" ] && [ -n "$addr" ] && "$CLUSTER" exec "$H1" getent hosts "$H3" >/dev/null &&
  ok "every host has its own name ($names); $H2 resolves to $addr" || bad "host names: '$names', $H2 -> '$addr'"
[ "$(sinfo -h -o '%D %t')" = "3 idle" ] && ok "sinfo: $(sinfo -h -o '%D nodes %t (%N)')" || bad "sinfo: $(sinfo 2>&1)"
timeout 60 srun --mpi=pmix -N 2 -n 4 hostname >"$TMP/srun.out" 2>&1
srun_hosts=$(sort "$TMP/srun.out" | uniq -c | awk '{print $2 "x" $1}' | xargs)
[ "$srun_hosts" = "${H1}x2 ${H2}x2" ] && ok "srun --mpi=pmix -N 2 -n 4 hostname: $srun_hosts" ||
  bad "srun -N 2 -n 4 hostname: '$srun_hosts'" "$TMP/srun.out"

# --- Open MPI across hosts: which BTL each pair of ranks uses
mpicc -O2 -o "$TMP/mpi_hosts" "$SRC/tests/cluster/mpi_hosts.c" || { bad "mpicc mpi_hosts.c"; finish; exit; }
timeout 60 mpirun --host "$H1:2,$H2:2" --mca btl tcp,vader,self --mca btl_base_verbose 100 "$TMP/mpi_hosts" \
  >"$TMP/btl.out" 2>&1
grep -q "pairs ok 12 of 12" "$TMP/btl.out" && [ "$(grep -c "^rank [0-3] on $H1$" "$TMP/btl.out")" = 2 ] &&
  [ "$(grep -c "^rank [0-3] on $H2$" "$TMP/btl.out")" = 2 ] &&
  ok "mpirun --host $H1:2,$H2:2 (launcher agent): 2 ranks on each host, every pair exchanged" ||
  bad "mpirun across hosts" "$TMP/btl.out"
# "[nodeA:pid] mca: bml: Using BTL btl for send to [[job,1],r] on node nodeB", one line per pair and direction
grep -E '^\[[^:]+:[0-9]+\] mca: bml: Using [a-z]+ btl for send to .* on node ' "$TMP/btl.out" |
  sed -E 's/^\[([^:]+):.* Using ([a-z]+) btl .* on node ([^ ]+)$/\1 \2 \3/' >"$TMP/btl.pairs"
cross=$(awk '$1 != $3' "$TMP/btl.pairs" | awk '{print $2}' | sort | uniq -c | xargs)
local_=$(awk '$1 == $3 && $2 != "self"' "$TMP/btl.pairs" | awk '{print $2}' | sort | uniq -c | xargs)
[ "$cross" = "8 tcp" ] && [ "$local_" = "4 vader" ] &&
  ok "BTLs: between hosts $cross, inside a host $local_ (from btl_base_verbose)" ||
  bad "BTLs between hosts: '$cross', inside a host: '$local_' (wanted 8 tcp, 4 vader)" "$TMP/btl.pairs"
# and no shared memory between hosts: with vader and self alone, ranks on two hosts cannot reach each other
timeout 60 mpirun --host "$H1:1,$H2:1" --mca btl vader,self "$TMP/mpi_hosts" >"$TMP/novader.out" 2>&1
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -qi "unable to reach\|unreachable" "$TMP/novader.out" &&
  ok "--mca btl vader,self across two hosts fails (exit $rc): no shared memory between hosts" ||
  bad "vader,self across hosts: exit $rc" "$TMP/novader.out"

# --- training: one reference run of 1 rank outside the cluster; 12 stripes allow 1, 2, 3, 4, 6 and 12 ranks
tiny_config "$TMP/c.ini" 2 40
sed -i -e 's/^batch_size = 20/batch_size = 24/' -e 's/^train_limit = 4000/train_limit = 2400/' \
  -e 's/^\[data\]/[data]\nstripes = 12/' "$TMP/c.ini" # 100 steps per epoch
timeout 120 mpiexec -n 1 "$VAMP_MPI" "$TMP/c.ini" --set run.dir="$TMP/ref" >"$TMP/ref.log" 2>&1 ||
  { bad "reference run (1 rank)" "$TMP/ref.log"; finish; exit; }
same() { # NAME RUN_DIR: final /params bit-identical to the reference
  if h5diff "$TMP/ref/final.h5" "$2/final.h5" /params /params >"$TMP/h5diff.out" 2>&1; then ok "$1"; else bad "$1" "$TMP/h5diff.out"; fi
}
cd "$SRC" # job scripts are submitted from the repository root

id=$(submit --nodes=2 --ntasks-per-node=2 jobs/multi_node.sbatch "$TMP/c.ini" --set run.dir="$TMP/multi")
wait_state "$id" COMPLETED 300 && grep -q "^job $id on .*(2 node(s), 4 task(s))" "$TMP/job-$id.out" &&
  ok "multi_node.sbatch --nodes=2: job $id, 2 nodes x 2 ranks, COMPLETED" ||
  bad "multi_node.sbatch --nodes=2: job $id $(state "$id")" "$TMP/job-$id.out"
same "multi_node.sbatch, 2 nodes x 2 ranks: final parameters bit-identical to 1 rank" "$TMP/multi"

# --- one checkpoint chain over three layouts
timeout 180 mpirun --host "$H1:2,$H2:2" "$VAMP_MPI" "$TMP/c.ini" --set run.dir="$TMP/chain" --set train.max_steps=60 \
  >"$TMP/chain1.log" 2>&1
[ -f "$TMP/chain/ckpt-00000040.h5" ] && ! compgen -G "$TMP/chain/*.tmp*" >/dev/null &&
  ok "2 hosts x 2 ranks: checkpoint of step 40 written collectively, stopped at step 60" ||
  bad "checkpoint from 2 hosts x 2 ranks: $(ls "$TMP/chain" 2>&1 | xargs)" "$TMP/chain1.log"
timeout 180 mpirun --host "$H3:1" "$VAMP_MPI" "$TMP/c.ini" --set run.dir="$TMP/chain" --set train.max_steps=130 \
  >"$TMP/chain2.log" 2>&1
grep -q "resumed from $TMP/chain/ckpt-00000040.h5" "$TMP/chain2.log" && [ -f "$TMP/chain/ckpt-00000120.h5" ] &&
  ok "1 host ($H3) x 1 rank resumed from it (step 40) and stopped at step 130" || bad "resume on 1 rank" "$TMP/chain2.log"
id=$(submit --nodes=3 --ntasks-per-node=1 jobs/multi_node.sbatch "$TMP/c.ini" --set run.dir="$TMP/chain")
wait_state "$id" COMPLETED 300 && grep -q "resumed from $TMP/chain/ckpt-00000120.h5" "$TMP/job-$id.out" &&
  grep -q "(3 node(s), 3 task(s))" "$TMP/job-$id.out" &&
  ok "multi_node.sbatch --nodes=3 x 1 rank resumed from step 120 and COMPLETED" ||
  bad "3-node resume: job $id $(state "$id")" "$TMP/job-$id.out"
same "checkpoint chain 2x2 -> 1x1 -> 3x1: final parameters bit-identical to the uninterrupted run" "$TMP/chain"

# --- requeue across nodes under a real time limit. Slurm checks time limits every 30 s: USR1@150 of a
# 3-minute limit arrives 30-60 s into the job (seen later under load: once a 2-minute job finished before any
# signal came). The first run writes each of its 20 checkpoints slowly (a test hook that changes no result), so
# that it runs past the signal's latest time and still has 30 s to checkpoint; the requeued run is not slowed.
cat >"$TMP/slow_first.sh" <<EOF
#!/bin/sh
[ "\${SLURM_RESTART_COUNT:-0}" = 0 ] && export VAMP_INJECT_CKPT_DELAY=8
exec $VAMP_MPI "\$@"
EOF
chmod +x "$TMP/slow_first.sh"
id=$(VAMP_MPI=$TMP/slow_first.sh submit --nodes=2 --ntasks-per-node=1 --time=3 --signal=B:USR1@150 \
  jobs/requeue.sbatch "$TMP/c.ini" --set run.dir="$TMP/long" --set checkpoint.every_steps=10)
wait_state "$id" COMPLETED 330
log=$TMP/job-$id.out
grep -q "restart 0" "$log" && grep -q "got USR1" "$log" && grep -q "vamp_mpi exited with status 75" "$log" &&
  grep -q "requeueing job $id" "$log" && grep -q "(2 node(s), 2 task(s))" "$log" &&
  ok "requeue.sbatch, 2 nodes, --time=3: USR1 from the time limit -> checkpoint, exit 75, requeued" ||
  bad "requeue across nodes: job $id $(state "$id")" "$log"
[ "$(state "$id")" = COMPLETED ] && grep -q "restart 1" "$log" && grep -q "resumed from $TMP/long/ckpt-" "$log" &&
  ok "the requeued run resumed from the checkpoint and COMPLETED" || bad "requeued run: $(state "$id")" "$log"
same "requeue across nodes: final parameters bit-identical to the uninterrupted run" "$TMP/long"

# --- the array job: one run directory per task, also when the user passes run.dir
mkdir -p "$TMP/presets"
cp "$TMP/c.ini" "$TMP/presets/hvae_vampprior.ini"
sed 's/^\[prior\]/[prior]\ntype = standard/' "$TMP/c.ini" >"$TMP/presets/hvae_standard.ini"
id=$(submit -N1 -n1 --array=0-1 jobs/array_presets.sbatch "$TMP/presets" --set run.dir="$TMP/sweep" --set train.epochs=1)
wait_state "${id}_0" COMPLETED 120 && wait_state "${id}_1" COMPLETED 120 &&
  [ -f "$TMP/sweep/hvae_standard/final.h5" ] && [ -f "$TMP/sweep/hvae_vampprior/final.h5" ] &&
  ok "array_presets.sbatch --set run.dir=D: task i trained in D/<preset>" ||
  { bad "array job run directories: $(ls -R "$TMP/sweep" 2>&1 | xargs)"; tail -5 "$TMP"/job-"$id"*.out 2>/dev/null; }

# --- a stall and dead hosts. Open MPI's daemons keep their TCP links alive with probes (short here, see
# docs/running.md), so that mpirun notices a host that vanished without a word.
KEEPALIVE=(--mca oob_tcp_keepalive_time 5 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3)
# resume_on HOSTS NAME WHAT: rerun of run directory $TMP/NAME on HOSTS resumes from a checkpoint and ends
# bit-identical to the uninterrupted run
resume_on() {
  timeout 300 mpirun --host "$1" "$VAMP_MPI" "$TMP/c.ini" --set run.dir="$TMP/$2" >"$TMP/$2.resume.log" 2>&1
  local rc=$?
  [ $rc = 0 ] && grep -q "resumed from $TMP/$2/ckpt-" "$TMP/$2.resume.log" &&
    ok "$3: rerun on $1 resumed from the last checkpoint" || bad "$3: rerun on $1 (exit $rc)" "$TMP/$2.resume.log"
  same "$3: final parameters bit-identical to the uninterrupted run" "$TMP/$2"
}
timeout 300 mpirun "${KEEPALIVE[@]}" --host "$H1:1,$H2:1" "$VAMP_MPI" "$TMP/c.ini" --set run.dir="$TMP/stall" \
  --set run.peer_timeout=60 >"$TMP/stall.log" 2>&1 &
pid=$!
wait_for_file "$TMP/stall/latest" 120 && { "$CLUSTER" link "$H2" down; sleep 3; "$CLUSTER" link "$H2" up; }
wait $pid
rc=$?
[ $rc = 0 ] && ok "$H2 cut off for 3 s mid-run (run.peer_timeout = 60): the run went on" || bad "stall (exit $rc)" "$TMP/stall.log"
same "after the stall: final parameters bit-identical to the uninterrupted run" "$TMP/stall"

timeout 300 mpirun "${KEEPALIVE[@]}" --host "$H1:1,$H2:1" "$VAMP_MPI" "$TMP/c.ini" --set run.dir="$TMP/death" \
  --set run.peer_timeout=20 >"$TMP/death.log" 2>&1 &
pid=$!
if wait_for_file "$TMP/death/latest" 120; then
  t0=$(date +%s)
  "$CLUSTER" crash "$H2"
  wait $pid
  rc=$?
  took=$(($(date +%s) - t0))
  # who notices first: the launcher agent here is a local process that becomes H2's orted, so its death is seen
  # at once ("unable to reliably start one or more daemons"); over ssh, the keepalive ("lost communication with a
  # remote daemon ... on node H2") or the surviving rank's run.peer_timeout ("no answer from the other ranks")
  if [ $rc != 0 ] && [ $rc != 124 ] && [ $took -le 60 ] && grep -qE "lost communication with a remote daemon|no \
answer from the other ranks|unable to reliably start one or more daemons" "$TMP/death.log"; then
    ok "$H2 died under mpirun: the job ended after $took s (exit $rc: $(grep -oE "lost communication with a remote \
daemon|no answer from the other ranks|unable to reliably start one or more daemons" "$TMP/death.log" | head -1))"
  else
    bad "$H2 died under mpirun: exit $rc after $took s" "$TMP/death.log"
  fi
  ls "$TMP/death"/*.tmp* >/dev/null 2>&1 && bad "a temporary file was left: $(ls "$TMP/death")"
  resume_on "$H1:1,$H3:1" death "after $H2 died"
else
  bad "the run before the host death wrote no checkpoint" "$TMP/death.log"
  kill $pid 2>/dev/null
fi

# under Slurm: $H3 dies while a 2-node job runs on $H1 and $H3 ($H2 is dead already)
id=$(submit --nodes=2 --ntasks-per-node=1 -w "$H1,$H3" jobs/multi_node.sbatch "$TMP/c.ini" --set run.dir="$TMP/sdeath" \
  --set run.peer_timeout=20)
if wait_for_file "$TMP/sdeath/latest" 120; then
  t0=$(date +%s)
  "$CLUSTER" crash "$H3"
  # the job ends (Slurm requeues a batch job whose node failed: it may be PENDING again, held by the dead node)
  wait_state "$id" "FAILED|NODE_FAIL|CANCELLED|TIMEOUT|COMPLETED|PENDING" 180
  took=$(($(date +%s) - t0))
  st=$(state "$id")
  scancel "$id" 2>/dev/null
  if [[ "$st" =~ ^(FAILED|NODE_FAIL|CANCELLED|PENDING)$ ]] &&
     grep -q "no answer from the other ranks .*$H3" "$TMP/job-$id.out"; then
    ok "$H3 died under Slurm: the rank on $H1 named $H3 after run.peer_timeout, job $id no longer running ($st) after $took s"
  else
    bad "$H3 died under Slurm: job $id $st after $took s" "$TMP/job-$id.out"
  fi
  resume_on "$H1:1" sdeath "after $H3 died"
else
  bad "the Slurm job before the host death wrote no checkpoint: job $id $(state "$id")" "$TMP/job-$id.out"
  scancel "$id" 2>/dev/null
fi

missing=""
for f in jobs/*.sbatch; do
  for t in '^##?SBATCH --time=' '^##SBATCH --account=' '^##SBATCH --partition=' '^##SBATCH --mem=' '^# *module load '; do
    grep -qE -- "$t" "$f" || missing="$missing $f:'$t'"
  done
done
[ -z "$missing" ] && ok "every job script has the --time line and commented --account, --partition, --mem, module load" ||
  bad "job script template lines missing:$missing"

finish
