#!/bin/bash
# An emulated cluster of N hosts on this machine (root, Linux network namespaces), for tests and by hand:
# every host is a network namespace with its own address on one bridge, its own host name (UTS namespace) and
# its own /tmp (a private mount namespace); all else (build, data, run directories) is shared, like a
# cluster's shared file system. Names resolve through /etc/hosts lines added here and removed on `down`.
#  - Open MPI: `mpirun --host node1:2,node2:2 ...` with the environment of `cluster.sh env` (a launcher agent
#    that runs orted inside the named host, TCP limited to the cluster subnet): ranks on different hosts talk
#    TCP, ranks on one host shared memory (vader).
#  - Slurm: slurmctld beside the hosts (root network namespace, host name "head") and one slurmd per host
#    (own NodeName = NodeHostname, own NodeAddr). Not Slurm's "multiple slurmd" mode (several slurmd on one
#    host, told apart by port): Debian's slurm-wlm is not built for it, and there all "nodes" would share one
#    network stack and host name, so MPI would use shared memory between nodes and nothing would go over a
#    network. slurmd is entered with nsenter --net, not `ip netns exec` (which remounts /sys: slurmd then
#    finds no cgroup fs); every host needs its own /tmp (srun --mpi=pmix makes per-job dirs in /tmp).
#
# usage: cluster.sh up N [--no-slurm]     create N >= 1 hosts (and Slurm) and leave them up
#        cluster.sh down                  stop everything of this cluster, delete hosts, links, /etc/hosts lines
#        cluster.sh with N [--no-slurm] CMD...   up, run CMD with the cluster's environment, down (also on failure)
#        cluster.sh env                   the cluster's environment as shell exports (eval "$(cluster.sh env)")
#        cluster.sh exec HOST CMD...      run CMD on HOST (its network, host name and /tmp)
#        cluster.sh status                hosts, sinfo
#        cluster.sh link HOST down|up     cut HOST off the network (its veth on the bridge) or reconnect it
#        cluster.sh crash HOST            HOST dies: cut off, then every process in it killed (slurmd too)
# Environment (all optional):
#   CLUSTER_ID     0 (default): hosts node1.., controller "head", subnet 10.250.0.0/24, Slurm ports 17800/17801;
#                  k in 1..9: hosts c<k>node1.., "c<k>head", subnet 10.250.<10+k>.0/24, ports 17800+2k/+1;
#                  "auto" (with `with`): the first k in 1..9 not in use (for tests that may run side by side)
#   CLUSTER_DIR    state, logs, slurm.conf, per-host /tmp (default /var/tmp/vamp-cluster-<id>); not under
#                  /tmp, which every host replaces by its own
#   CLUSTER_SHARE  colon-separated paths under /tmp that every host must see as the machine has them (a
#                  build or a clone in /tmp: tests/cluster/run_tests.sh passes its build and source dirs)
#   CLUSTER_SLURMD_TIMEOUT   SlurmdTimeout in seconds (default 300; tests use a short one)
#   CLUSTER_CPUS   CPUs per node in slurm.conf (default: nproc)
#   CLUSTER_OWNER  a pid: once it is gone, `CLUSTER_ID=auto` may take this cluster down and reuse its id
set -uo pipefail

SELF=$(readlink -f "$0")
source "$(dirname "$SELF")/../lib_slurm.sh"
die() { echo "cluster.sh: $*" >&2; exit 1; }
[ $# -ge 1 ] || { sed -n '/^# usage/,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
CMD=$1
shift

LOCKS=/run/vamp-cluster # one directory per cluster id in use: its state dir and the owning process

# names ID: every name and address of cluster ID, as shell variables
names() {
  ID=$1
  if [ "$ID" = 0 ]; then PREFIX=node HEAD=head NET=10.250.0; else PREFIX=c${ID}node HEAD=c${ID}head NET=10.250.$((10 + ID)); fi
  TAG=vc$ID # interface names: TAGbr (bridge), TAGhI (root end of host I's veth), at most 15 characters
  PORT=$((17800 + 2 * ID))
  DIR=${CLUSTER_DIR:-/var/tmp/vamp-cluster-$ID}
  HOSTS_MARK="# vamp-cluster $ID"
}

# the cluster id: CLUSTER_ID, or for `up`/`with` with CLUSTER_ID=auto the first free one
pick_id() {
  local want=${CLUSTER_ID:-0}
  if [ "$want" != auto ]; then
    [[ "$want" =~ ^[0-9]$ ]] || die "CLUSTER_ID must be 0..9 or auto, not '$want'"
    echo "$want"
    return
  fi
  mkdir -p "$LOCKS"
  for k in 1 2 3 4 5 6 7 8 9; do
    if mkdir "$LOCKS/$k" 2>/dev/null; then echo "$k"; return; fi
    owner=$(cat "$LOCKS/$k/owner" 2>/dev/null)
    if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then # left behind by a killed run: reclaim it
      CLUSTER_DIR=$(cat "$LOCKS/$k/dir" 2>/dev/null) CLUSTER_ID=$k "$SELF" down >&2
      mkdir "$LOCKS/$k" 2>/dev/null && { echo "$k"; return; }
    fi
  done
  die "no free cluster id (see $LOCKS)"
}

# host_pids NAME: the processes inside network namespace NAME
host_pids() { ip netns pids "$1" 2>/dev/null; }

# exec_on HOST CMD...: CMD inside HOST's network namespace, with HOST's host name and its own /tmp, in which
# the directories of CLUSTER_SHARE under /tmp are the machine's (bound in this host's mount namespace only)
exec_on() {
  local h=$1 p shared=""
  shift
  [ -e "/run/netns/$h" ] || die "no host $h (is the cluster up?)"
  mkdir -p "$DIR/tmp-$h" && chmod 1777 "$DIR/tmp-$h"
  for p in $(tmp_shares); do
    mkdir -p "$DIR/tmp-$h/$p" && shared+=" $p"
  done
  exec nsenter --net="/run/netns/$h" unshare --uts --mount sh -c '
    t=$1 h=$2 s=$3; shift 3
    for p in $s; do mount --bind "/tmp/$p" "$t/$p" || exit 1; done
    mount --rbind "$t" /tmp && hostname "$h" && exec "$@"' sh "$DIR/tmp-$h" "$h" "$shared" "$@"
}

# the first components under /tmp of the paths in CLUSTER_SHARE (colon-separated), e.g. ci1 for /tmp/ci1/build
tmp_shares() {
  local p
  local IFS=:
  for p in ${CLUSTER_SHARE:-}; do
    p=$(readlink -m "$p")
    [[ "$p" == /tmp/?* ]] || continue
    p=${p#/tmp/}
    echo "${p%%/*}"
  done | sort -u
}

write_env() { # the environment every user of the cluster needs
  cat >"$DIR/env" <<ENV
export CLUSTER_ID=$ID CLUSTER_DIR=$DIR CLUSTER_HOSTS="$HOSTS" CLUSTER_HEAD=$HEAD CLUSTER_NET=$NET.0/24
export SLURM_CONF=$DIR/slurm.conf
export OMPI_MCA_plm_rsh_agent=$DIR/agent OMPI_MCA_btl_tcp_if_include=$NET.0/24 OMPI_MCA_oob_tcp_if_include=$NET.0/24
# more ranks than cores: waiting ranks yield the CPU instead of spinning (a 2x2-rank run took 13x longer without)
export OMPI_MCA_mpi_yield_when_idle=1
ENV
  # Open MPI's launcher agent: "agent HOST COMMAND-LINE" runs the command line (orted) on HOST
  cat >"$DIR/agent" <<AGENT
#!/bin/sh
h=\$1; shift
CLUSTER_ID=$ID CLUSTER_DIR=$DIR exec "$SELF" exec "\$h" sh -c "\$*"
AGENT
  chmod +x "$DIR/agent"
}

write_slurm_conf() {
  local cpus=${CLUSTER_CPUS:-$(nproc)} i=0
  {
    slurm_conf_head "vampcluster$ID" "$HEAD($NET.1)" "$PORT" "$DIR" -%n
    echo "SlurmdTimeout=${CLUSTER_SLURMD_TIMEOUT:-300}"
  } >"$DIR/slurm.conf"
  for h in $HOSTS; do
    i=$((i + 1))
    echo "NodeName=$h NodeAddr=$NET.$((10 + i)) NodeHostname=$h CPUs=$cpus State=UNKNOWN" >>"$DIR/slurm.conf"
  done
  echo "PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES" >>"$DIR/slurm.conf"
}

hosts_edit() { # hosts_edit add|remove: this cluster's lines in /etc/hosts (rewritten in place: it may be a mount)
  local new i=0
  new=$(mktemp)
  (
    flock 9
    grep -vF "$HOSTS_MARK" /etc/hosts >"$new"
    if [ "$1" = add ]; then
      echo "$NET.1 $HEAD $HOSTS_MARK" >>"$new"
      for h in $HOSTS; do i=$((i + 1)); echo "$NET.$((10 + i)) $h $HOSTS_MARK" >>"$new"; done
    fi
    cat "$new" >/etc/hosts
  ) 9>>/run/vamp-cluster.hosts.lock
  rm -f "$new"
}

up() {
  local n=$1 slurm=$2 i=0
  [[ "$n" =~ ^[1-9]$ ]] || die "up N: N must be 1..9"
  [ "$(id -u)" -eq 0 ] || die "needs root (ip netns)"
  [ -e "/sys/class/net/${TAG}br" ] && die "cluster $ID is up already (${TAG}br exists): cluster.sh down first"
  mkdir -p "$LOCKS/$ID" "$DIR/state"
  echo "$DIR" >"$LOCKS/$ID/dir"
  [ -n "${CLUSTER_OWNER:-}" ] && echo "$CLUSTER_OWNER" >"$LOCKS/$ID/owner" # a later `auto` may reclaim it once gone
  HOSTS=$(for i in $(seq 1 "$n"); do printf '%s ' "$PREFIX$i"; done)
  HOSTS=${HOSTS% }
  ip link add "${TAG}br" type bridge || die "cannot create a bridge"
  ip addr add "$NET.1/24" dev "${TAG}br" && ip link set "${TAG}br" up || die "bridge ${TAG}br"
  i=0
  for h in $HOSTS; do
    i=$((i + 1))
    ip netns add "$h" && ip -n "$h" link set lo up &&
      ip link add "${TAG}h$i" type veth peer name "${TAG}p$i" && ip link set "${TAG}p$i" netns "$h" &&
      ip -n "$h" link set "${TAG}p$i" name eth0 && ip -n "$h" addr add "$NET.$((10 + i))/24" dev eth0 &&
      ip -n "$h" link set eth0 up && ip link set "${TAG}h$i" master "${TAG}br" && ip link set "${TAG}h$i" up ||
      die "host $h: network setup failed"
  done
  write_env
  hosts_edit add
  echo "cluster $ID: hosts $HOSTS on $NET.0/24 (bridge ${TAG}br), state in $DIR"
  [ "$slurm" = 1 ] || return 0
  for cmd in slurmctld slurmd sinfo; do command -v $cmd >/dev/null || die "$cmd not found (apt-get install slurm-wlm)"; done
  write_slurm_conf
  export SLURM_CONF=$DIR/slurm.conf
  # slurmctld must find itself as SlurmctldHost: give it that host name (its network is the root namespace's)
  unshare --uts sh -c "hostname $HEAD && exec slurmctld -c -f $SLURM_CONF" >"$DIR/slurmctld.out" 2>&1 ||
    die "slurmctld did not start: $(tail -3 "$DIR/slurmctld.out" "$DIR/slurmctld.log" 2>/dev/null)"
  for h in $HOSTS; do
    mkdir -p "$DIR/spool-$h"
    (exec_on "$h" slurmd -N "$h" -f "$SLURM_CONF") >"$DIR/slurmd-$h.out" 2>&1 ||
      die "slurmd on $h did not start: $(tail -3 "$DIR/slurmd-$h.out" "$DIR/slurmd-$h.log" 2>/dev/null)"
  done
  for _ in $(seq 1 60); do # bounded: 30 s
    [ "$(sinfo -h -o '%t %D' 2>/dev/null)" = "idle $n" ] && { echo "slurm: $(sinfo -h -o '%D nodes %t: %N')"; return 0; }
    sleep 0.5
  done
  die "Slurm did not show $n idle nodes within 30 s: $(sinfo 2>&1 | tail -3); see $DIR/*.log"
}

down() {
  local pids p h
  # daemons first (by their pid files), then whatever still runs inside the hosts (jobs, orted, ranks)
  for p in "$DIR"/slurmd-*.pid "$DIR"/slurmctld.pid; do
    [ -f "$p" ] && kill "$(cat "$p")" 2>/dev/null
  done
  hosts_list=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^$PREFIX[0-9]+$")
  for sig in TERM KILL; do
    pids=""
    for h in $hosts_list; do pids="$pids $(host_pids "$h")"; done
    [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null && pids="$pids $(cat "$DIR/slurmctld.pid")"
    pids=$(echo $pids)
    [ -n "$pids" ] || break
    kill -$sig $pids 2>/dev/null
    for _ in $(seq 1 20); do # up to 5 s for them to go
      alive=0
      for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
      [ $alive -eq 0 ] && break
      sleep 0.25
    done
  done
  for h in $hosts_list; do ip netns del "$h" 2>/dev/null; done
  for l in $(ls /sys/class/net 2>/dev/null | grep -E "^$TAG(br|h[0-9]+)$"); do ip link del "$l" 2>/dev/null; done
  hosts_edit remove
  rm -rf "$LOCKS/$ID"
  echo "cluster $ID down"
}

case $CMD in
up)
  [ $# -ge 1 ] || die "usage: cluster.sh up N [--no-slurm]"
  names "$(pick_id)"
  slurm=1
  [ "${2:-}" = --no-slurm ] && slurm=0
  trap 'down >/dev/null' EXIT # a failed `up` leaves nothing behind
  up "$1" $slurm
  trap - EXIT
  echo "use it: eval \"\$(CLUSTER_ID=$ID $SELF env)\"; then mpirun --host ${PREFIX}1:2,${PREFIX}2:2 ... or sbatch ..."
  ;;
down)
  [ "${CLUSTER_ID:-0}" != auto ] || die "down: give the CLUSTER_ID of the cluster"
  names "$(pick_id)"
  [ -z "${CLUSTER_DIR:-}" ] && [ -f "$LOCKS/$ID/dir" ] && DIR=$(cat "$LOCKS/$ID/dir")
  down
  ;;
with)
  [ $# -ge 2 ] || die "usage: cluster.sh with N [--no-slurm] CMD..."
  n=$1
  shift
  slurm=1
  [ "$1" = --no-slurm ] && { slurm=0; shift; }
  names "$(pick_id)"
  trap 'down >/dev/null' EXIT
  trap 'exit 130' INT TERM
  mkdir -p "$LOCKS/$ID" && echo $$ >"$LOCKS/$ID/owner"
  up "$n" $slurm || exit 1
  source "$DIR/env"
  "$@"
  exit $?
  ;;
env)
  names "$(pick_id)"
  [ -z "${CLUSTER_DIR:-}" ] && [ -f "$LOCKS/$ID/dir" ] && DIR=$(cat "$LOCKS/$ID/dir")
  [ -f "$DIR/env" ] || die "cluster $ID is not up"
  cat "$DIR/env"
  ;;
exec)
  [ $# -ge 2 ] || die "usage: cluster.sh exec HOST CMD..."
  names "$(pick_id)"
  [ -z "${CLUSTER_DIR:-}" ] && [ -f "$LOCKS/$ID/dir" ] && DIR=$(cat "$LOCKS/$ID/dir")
  exec_on "$@"
  ;;
status)
  names "$(pick_id)"
  [ -z "${CLUSTER_DIR:-}" ] && [ -f "$LOCKS/$ID/dir" ] && DIR=$(cat "$LOCKS/$ID/dir")
  ip netns list | grep -E "^$PREFIX[0-9]+" || echo "cluster $ID: no hosts"
  [ -f "$DIR/slurm.conf" ] && SLURM_CONF=$DIR/slurm.conf sinfo 2>&1
  ;;
link)
  [ $# -eq 2 ] && [[ "$2" =~ ^(up|down)$ ]] || die "usage: cluster.sh link HOST down|up"
  names "$(pick_id)"
  i=${1##*node}
  [ -e "/run/netns/$1" ] && [ -e "/sys/class/net/${TAG}h$i" ] || die "no host $1 in cluster $ID"
  ip link set "${TAG}h$i" "$2"
  ;;
crash)
  [ $# -eq 1 ] || die "usage: cluster.sh crash HOST"
  names "$(pick_id)"
  i=${1##*node}
  [ -e "/run/netns/$1" ] && [ -e "/sys/class/net/${TAG}h$i" ] || die "no host $1 in cluster $ID"
  ip link set "${TAG}h$i" down # first: a dead host sends nothing more, not even a TCP reset
  host_pids "$1" | xargs -r kill -9
  ;;
*) die "unknown command $CMD (up, down, with, env, exec, status, link, crash)" ;;
esac
