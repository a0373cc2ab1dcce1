/* Run directory, config.ini and metrics.csv (rank 0 writes; errors are agreed on by every rank). */
#include "vamp/runlog.h"
#include "vamp/config.h"
#include "vamp/h5io.h"
#include "vamp/check.h"

#include <ctype.h>
#include <dirent.h>
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

int run_dir_make(const char *dir)
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

/* A temporary file of ours: "<name>.tmp" or "<name>.tmp.<pid>" (every file vamp_mpi writes goes through one). */
static int is_temporary(const char *name)
{
    const char *t = strstr(name, ".tmp");
    while (t && t[4] != '\0' && t[4] != '.') t = strstr(t + 1, ".tmp");
    if (!t || t == name) return 0;
    if (t[4] == '\0') return 1;
    const char *d = t + 5;
    if (!*d) return 0;
    for (; *d; d++)
        if (!isdigit((unsigned char)*d)) return 0;
    return 1;
}

/* Rank 0: removes the temporary files a killed run left in dir (a checkpoint or final.h5 being written). */
static void remove_stale_temporaries(const char *dir, MPI_Comm comm)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_temporary(e->d_name)) continue;
        char path[VAMP_FILE_PATH_LEN];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && unlink(path) == 0)
            log0(comm, "removed %s, a temporary file left by an interrupted run\n", path);
    }
    closedir(d);
}

void run_dir_prepare(const char *dir, const char *config_ini, MPI_Comm comm)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    char msg[VAMP_MSG_LEN] = "";
    if (rank == 0) {
        int err = run_dir_make(dir);
        if (err) {
            snprintf(msg, sizeof msg, "[run] dir = \"%s\": cannot create or write the run directory: %s", dir,
                     strerror(err));
        } else {
            remove_stale_temporaries(dir, comm);
            char path[VAMP_FILE_PATH_LEN];
            snprintf(path, sizeof path, "%s/config.ini", dir);
            if (io_put(path, NULL, config_ini, strlen(config_ini)) != 0)
                snprintf(msg, sizeof msg, "cannot write \"%s\": %s", path, strerror(errno));
        }
    }
    io_agree_or_exit(comm, msg, VAMP_EXIT_INPUT);
}

void run_dir_set_aside(const char *dir, MPI_Comm comm)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    char msg[VAMP_MSG_LEN] = "";
    if (rank == 0) {
        DIR *d = opendir(dir);
        char aside[VAMP_FILE_PATH_LEN] = "", from[VAMP_FILE_PATH_LEN + 256], to[2 * VAMP_FILE_PATH_LEN];
        int moved = 0;
        struct dirent *e;
        while (d && !msg[0] && (e = readdir(d)) != NULL) {
            struct stat st;
            snprintf(from, sizeof from, "%s/%s", dir, e->d_name);
            if (!strcmp(e->d_name, "vamp_mpi.lock") || lstat(from, &st) != 0 || !S_ISREG(st.st_mode)) continue;
            if (!aside[0]) { /* the first file to move: a fresh previous-<N> */
                for (int n = 1; n < 100000; n++) {
                    snprintf(aside, sizeof aside, "%s/previous-%d", dir, n);
                    if (mkdir(aside, 0777) == 0) break;
                    if (errno != EEXIST) {
                        snprintf(msg, sizeof msg, "--resume none: cannot create \"%s\": %s", aside, strerror(errno));
                        break;
                    }
                }
                if (msg[0]) break;
            }
            snprintf(to, sizeof to, "%s/%s", aside, e->d_name);
            if (rename(from, to) != 0)
                snprintf(msg, sizeof msg, "--resume none: cannot move \"%s\" into \"%.1200s\": %s", e->d_name, aside, strerror(errno));
            else moved++;
        }
        if (d) closedir(d);
        if (moved && !msg[0])
            printf("--resume none: moved the %d file(s) of the earlier run in %s (checkpoints, final.h5, metrics, "
                   "pictures) to %s; starting afresh\n", moved, dir, aside);
        fflush(stdout);
    }
    io_agree_or_exit(comm, msg, VAMP_EXIT_INPUT);
}

void metrics_open(vamp_metrics *m, const char *dir, int first_epoch, MPI_Comm comm)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    m->f = NULL;
    char msg[VAMP_MSG_LEN] = "";
    if (rank == 0) {
        char path[VAMP_FILE_PATH_LEN];
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
    io_agree_or_exit(comm, msg, 1);
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
