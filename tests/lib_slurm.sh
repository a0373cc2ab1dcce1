# Slurm helpers shared by tests/test_slurm.sh (one node) and tests/cluster/ (several emulated hosts); sourced,
# defines functions only.

# slurm_conf_head NAME CONTROLLER PORT DIR SUFFIX: the slurm.conf lines before the node lines, on stdout.
# CONTROLLER is host(address); slurmctld listens on PORT and slurmd on PORT + 1. State, spool, pid and log files
# live under DIR; SUFFIX ("" for one slurmd, "-%n" for one per node) keeps several slurmd apart. No
# authentication, cgroups or accounting: a throw-away test cluster run as root.
slurm_conf_head() {
  cat <<CONF
ClusterName=$1
SlurmctldHost=$2
SlurmctldPort=$3
SlurmdPort=$(($3 + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
AuthInfo=cred_expire=10
StateSaveLocation=$4/state
SlurmdSpoolDir=$4/spool$5
SlurmctldPidFile=$4/slurmctld.pid
SlurmdPidFile=$4/slurmd$5.pid
SlurmctldLogFile=$4/slurmctld.log
SlurmdLogFile=$4/slurmd$5.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
KillWait=5
MinJobAge=600
CONF
}

# The state of job JOBID (PENDING, RUNNING, COMPLETED, ...), empty once Slurm has forgotten it.
state() { scontrol show job "$1" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2; }
# wait_state JOBID STATE-REGEX SECONDS: 0 as soon as the job's state matches, 1 after SECONDS.
wait_state() {
  for _ in $(seq 1 $(($3 * 2))); do
    [[ "$(state "$1")" =~ ^($2)$ ]] && return 0
    sleep 0.5
  done
  return 1
}
# submit SBATCH-ARGS...: the job id; the job's output goes to $TMP/job-<id>.out.
submit() { sbatch --parsable --output="$TMP/job-%j.out" "$@" | cut -d';' -f1; }
