/* Liveness of a run: the run-directory lock and the peer watchdog (one background thread per rank that makes
 * no MPI call, so MPI_THREAD_FUNNELED is enough).
 *
 * Lock: rank 0 holds <run.dir>/vamp_mpi.lock while the run lives. The file names its holder (host, pid, Slurm
 * job id and restart count) and the thread renews its modification time every LIVENESS_HEARTBEAT_S seconds.
 * A second run on the same directory refuses to start (exit 2, naming the holder) unless the holder is gone:
 * its pid no longer exists on this host, it is this Slurm job before a requeue (same job id, another restart
 * count), or its heartbeat is older than LIVENESS_STALE_S seconds (its node died). Taking over a stale lock
 * says so. The lock is removed when the run ends, whatever the exit status, except after SIGKILL or a dead
 * node: then the rules above let the next run in.
 *
 * Watchdog: the blocking MPI calls of the run are marked by liveness_enter / liveness_leave (CHECK_MPI does
 * it). A rank that has waited in one call longer than run.peer_timeout seconds prints the call, where it was
 * made and the hosts of the other ranks, and exits with status 1, which makes mpirun or srun end the job: a
 * dead node or a stalled network ends the job in bounded time instead of a hang until Slurm's time limit.
 * The last complete checkpoint is intact (files are renamed into place only when complete). */
#ifndef VAMP_LIVENESS_H
#define VAMP_LIVENESS_H

#include <mpi.h>

#define LIVENESS_HEARTBEAT_S 15
#define LIVENESS_STALE_S 120
#define LIVENESS_LOCK_NAME "vamp_mpi.lock"

/* Collective. Rank 0 takes the lock of run_dir (creating the directory if needed; if this run created it and
 * ends without writing anything there, the directory is removed again); on refusal every rank exits 2.
 * Starts the watchdog thread on every rank (peer_timeout_s <= 0: no timeout, the lock's heartbeat only).
 * Gathers the host names of all ranks for the watchdog's message. */
void liveness_start(const char *run_dir, double peer_timeout_s, MPI_Comm comm);

/* Not collective: mark the start and end of a blocking MPI call (call text, source file and line). */
void liveness_enter(const char *call, const char *file, int line);
void liveness_leave(void);

/* Stops the thread and releases the lock (rank 0; only if the lock is still this run's). Safe to call twice;
 * also runs at exit(). */
void liveness_stop(void);

#endif
