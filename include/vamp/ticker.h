/* Progress lines inside long phases (a training epoch, the validation and test ELBO, the importance-sampled
 * log-likelihood). Rank 0 alone decides, from its own clock, when a line is due: no MPI call, nothing that
 * touches a result; the other ranks print nothing. Lines are whole lines (never a carriage return), so a log
 * reads the same as a terminal. How often: --progress SECONDS, else every 10 s when rank 0's output reaches a
 * terminal and every 60 s when it goes to a file or a pipe (a Slurm log). */
#ifndef VAMP_TICKER_H
#define VAMP_TICKER_H

#include <stddef.h>

#define VAMP_TICK_TERMINAL 10.0 /* seconds between progress lines on a terminal */
#define VAMP_TICK_LOG 60.0      /* ... in a log file or a pipe */

typedef struct {
    double every; /* seconds between lines; 0: none (and on every rank but 0) */
    double t0;    /* start of the phase */
    double last;  /* time of the last line (or the start) */
} vamp_ticker;

/* Not collective. The default interval for this process: VAMP_TICK_TERMINAL if its standard output is a
 * terminal, else VAMP_TICK_LOG. Under mpirun a rank's stdout is a pseudo-terminal even when mpirun's output goes
 * to a file, so the standard output of the launching parent (mpirun) decides when it can be seen. */
double ticker_default_every(void);

/* Not collective. Starts a phase: lines every `every` seconds on rank 0, none elsewhere. */
void ticker_start(vamp_ticker *t, double every, int rank);

/* Not collective. 1 if a line is due now (and counts it as printed), else 0. */
int ticker_due(vamp_ticker *t);

/* "h:mm:ss" or "m:ss" of a duration (seconds; "?" if not finite or negative) in buf. */
const char *ticker_hms(double seconds, char *buf, size_t len);

/* Not collective (rank 0 prints). One line for a phase done image by image on each rank: "  <what>: <done>/<n>
 * images on rank 0 (<pct>%), <rate> images/s, ETA <hms>", when a line is due. */
void ticker_phase(vamp_ticker *t, const char *what, long done, long n);

#endif
