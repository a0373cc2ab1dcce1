# Sourced by the job scripts in jobs/: refuses to run outside Slurm, prints where and when the job runs, and
# finds the vamp_mpi binary (VAMP_MPI, else build/vamp_mpi in the directory the job was submitted from).
if [ -z "${SLURM_JOB_ID:-}" ]; then
  echo "$(basename "$0"): not inside a Slurm job: submit it with sbatch (see README, Running on a cluster)" >&2
  exit 2
fi
echo "job ${SLURM_JOB_ID}${SLURM_ARRAY_TASK_ID:+ (array task $SLURM_ARRAY_TASK_ID)} on ${SLURM_JOB_NODELIST:-?}" \
  "(${SLURM_NNODES:-?} node(s), ${SLURM_NTASKS:-?} task(s)), restart ${SLURM_RESTART_COUNT:-0}, $(date -Is)"
cd "${SLURM_SUBMIT_DIR:-.}"
VAMP_MPI=${VAMP_MPI:-build/vamp_mpi}
if [ ! -x "$VAMP_MPI" ]; then
  echo "vamp_mpi not found at $VAMP_MPI (build it with scripts/build.sh, or set VAMP_MPI)" >&2
  exit 2
fi
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
MPIRUN=(mpirun -np "${SLURM_NTASKS:-1}")
if [ "$(id -u)" -eq 0 ]; then MPIRUN+=(--allow-run-as-root); fi
