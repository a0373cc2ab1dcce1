/* Progress lines inside long phases (see ticker.h). Printing only: no MPI, no effect on any result. */
#include "vamp/ticker.h"
#include "vamp/runlog.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

double ticker_default_every(void)
{
    if (!isatty(STDOUT_FILENO)) return VAMP_TICK_LOG;
    /* Open MPI hands its ranks a pseudo-terminal for stdout whatever mpirun writes to: ask where the parent's
     * (mpirun's, or the shell's) output goes, when /proc says so */
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%ld/fd/1", (long)getppid());
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return VAMP_TICK_TERMINAL;
    target[n] = '\0';
    return !strncmp(target, "/dev/pts/", 9) || !strncmp(target, "/dev/tty", 8) ? VAMP_TICK_TERMINAL : VAMP_TICK_LOG;
}

void ticker_start(vamp_ticker *t, double every, int rank)
{
    t->every = rank == 0 && every > 0 ? every : 0.0;
    t->t0 = t->last = wall_seconds();
}

int ticker_due(vamp_ticker *t)
{
    if (t->every <= 0) return 0;
    double now = wall_seconds();
    if (now - t->last < t->every) return 0;
    t->last = now;
    return 1;
}

const char *ticker_hms(double s, char *buf, size_t len)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, len, "?");
        return buf;
    }
    long x = (long)(s + 0.5);
    if (x >= 3600) snprintf(buf, len, "%ld:%02ld:%02ld", x / 3600, x / 60 % 60, x % 60);
    else snprintf(buf, len, "%ld:%02ld", x / 60, x % 60);
    return buf;
}

void ticker_phase(vamp_ticker *t, const char *what, long done, long n)
{
    if (!ticker_due(t) || done <= 0) return;
    double rate = done / (t->last - t->t0);
    char eta[32];
    printf("  %s: %ld/%ld images on rank 0 (%.0f%%), %.1f images/s, ETA %s\n", what, done, n,
           n > 0 ? 100.0 * done / n : 100.0, rate, ticker_hms((n - done) / rate, eta, sizeof eta));
    fflush(stdout);
}
