/* The run directory and what rank 0 writes there while training: config.ini (the resolved configuration)
 * and metrics.csv (one row per epoch). It does not write parameter files (see checkpoint.h). */
#ifndef VAMP_RUNLOG_H
#define VAMP_RUNLOG_H

#include <mpi.h>
#include <stdio.h>

#define VAMP_METRICS_HEADER \
    "epoch,step,beta,train_loss,train_re,train_kl,val_loss,val_re,val_kl,seconds,samples_per_s"

/* Collective. Creates dir (and parents), removes the temporary files an interrupted run left there
 * ("*.tmp", "*.tmp.<pid>": a checkpoint or final.h5 half written when the process was killed) and writes
 * dir/config.ini atomically. A directory that cannot be created or written is an input error naming it (exit 2).
 * Call it only when every check of the run's inputs has passed: it is the first write to dir. */
void run_dir_prepare(const char *dir, const char *config_ini, MPI_Comm comm);

/* Collective. --resume none over a directory that holds files of an earlier run (checkpoints, final.h5,
 * metrics.csv, pictures, ...): rank 0 moves every file of dir but the run lock into a new subdirectory
 * dir/previous-<N> (the first N free) and says so; nothing is deleted. A failure is an input error (exit 2). */
void run_dir_set_aside(const char *dir, MPI_Comm comm);

/* mkdir -p of dir, which must end up a writable directory; 0 or an errno. Not collective. */
int run_dir_make(const char *dir);

typedef struct {
    FILE *f; /* rank 0 only; NULL elsewhere */
} vamp_metrics;

/* Collective. Rank 0 opens dir/metrics.csv: a fresh file with the header (first_epoch = 1), or, when a run
 * resumes at first_epoch > 1, the existing file keeping only the rows of earlier epochs. */
void metrics_open(vamp_metrics *m, const char *dir, int first_epoch, MPI_Comm comm);
/* Not collective: rank 0 appends one row (others do nothing) and flushes. */
void metrics_row(vamp_metrics *m, int epoch, long step, double beta, double tl, double tre, double tkl, double vl,
                 double vre, double vkl, double seconds, double samples_per_s);
void metrics_close(vamp_metrics *m);

/* Wall-clock seconds (monotonic). */
double wall_seconds(void);

#endif
