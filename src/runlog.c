/* Run directory, config.ini and metrics.csv (rank 0 writes; errors are agreed on by every rank). */
#include "vamp/runlog.h"
#include "vamp/check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* mkdir -p; returns 0 or an errno. */
static int make_dirs(const char *dir)
{
    char buf[1024];
    if (strlen(dir) >= sizeof buf) return ENAMETOOLONG;
    strcpy(buf, dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return errno;
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return errno;
    struct stat st;
    if (stat(buf, &st) != 0) return errno;
    if (!S_ISDIR(st.st_mode)) return ENOTDIR;
    if (access(buf, W_OK) != 0) return errno;
    return 0;
}

void run_dir_prepare(const char *dir, const char *config_ini, MPI_Comm comm)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    char msg[1400] = "";
    if (rank == 0) {
        int err = make_dirs(dir);
        if (err) {
            snprintf(msg, sizeof msg, "[run] dir = \"%s\": cannot create or write the run directory: %s", dir,
                     strerror(err));
        } else {
            char path[1100], tmp[1120];
            snprintf(path, sizeof path, "%s/config.ini", dir);
            snprintf(tmp, sizeof tmp, "%s.tmp", path);
            FILE *f = fopen(tmp, "w");
            int ok = f && fputs(config_ini, f) >= 0;
            if (f && fclose(f) != 0) ok = 0;
            if (!ok || rename(tmp, path) != 0) {
                snprintf(msg, sizeof msg, "cannot write \"%s\": %s", path, strerror(errno));
                unlink(tmp);
            }
        }
    }
    CHECK_MPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm));
    if (msg[0]) vamp_input_error(comm, "%s", msg);
}

void metrics_open(vamp_metrics *m, const char *dir, int first_epoch, MPI_Comm comm)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    m->f = NULL;
    char msg[1200] = "";
    if (rank == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/metrics.csv", dir);
        char *keep = NULL; /* rows of epochs before first_epoch, when resuming */
        size_t klen = 0;
        FILE *old = first_epoch > 1 ? fopen(path, "r") : NULL;
        if (old) {
            FILE *mem = open_memstream(&keep, &klen);
            char line[4096];
            if (fgets(line, sizeof line, old)) /* header */
                while (fgets(line, sizeof line, old))
                    if (atoi(line) >= 1 && atoi(line) < first_epoch) fputs(line, mem);
            fclose(mem);
            fclose(old);
        }
        m->f = fopen(path, "w");
        if (!m->f) {
            snprintf(msg, sizeof msg, "cannot write \"%s\": %s", path, strerror(errno));
        } else {
            fprintf(m->f, "%s\n", VAMP_METRICS_HEADER);
            if (keep) fputs(keep, m->f);
            fflush(m->f);
        }
        free(keep);
    }
    CHECK_MPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm));
    if (msg[0]) vamp_exit_error(comm, 1, "%s", msg);
}

void metrics_row(vamp_metrics *m, int epoch, long step, double beta, double tl, double tre, double tkl, double vl,
                 double vre, double vkl, double seconds, double samples_per_s)
{
    if (!m->f) return;
    fprintf(m->f, "%d,%ld,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.3f,%.1f\n", epoch, step, beta, tl, tre, tkl, vl, vre,
            vkl, seconds, samples_per_s);
    fflush(m->f);
}

void metrics_close(vamp_metrics *m)
{
    if (m->f) fclose(m->f);
    m->f = NULL;
}
