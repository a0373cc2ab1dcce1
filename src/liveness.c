/* The run-directory lock and the peer watchdog (see liveness.h). One background thread per rank; it makes no
 * MPI call. Its state is this file's, by necessity: the thread and the atexit handler need it. */
#define _GNU_SOURCE
#include "vamp/liveness.h"
#include "vamp/check.h"
#include "vamp/config.h"
#include "vamp/runlog.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    char host[256];
    long pid;
    char job[64];     /* SLURM_JOB_ID or "-" */
    char restart[32]; /* SLURM_RESTART_COUNT or "0" */
} lock_holder;

static struct {
    char path[VAMP_FILE_PATH_LEN + 32]; /* the lock file, "" when this process does not hold one */
    char dir[VAMP_FILE_PATH_LEN];
    int created_dir;
    lock_holder me;
    char others[2048]; /* the other ranks' hosts, for the watchdog's message */
    int rank;
    double peer_timeout;
    pthread_t thread;
    int thread_running;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    int stop;
    /* the blocking MPI call this rank is in: since_ns is 0 outside one; the rest is set before it */
    _Atomic long long since_ns;
    const char *call, *file;
    int line;
} L = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void holder_of_this_process(lock_holder *h)
{
    memset(h, 0, sizeof *h);
    if (gethostname(h->host, sizeof h->host - 1) != 0) snprintf(h->host, sizeof h->host, "?");
    h->pid = (long)getpid();
    const char *job = getenv("SLURM_JOB_ID"), *restart = getenv("SLURM_RESTART_COUNT");
    snprintf(h->job, sizeof h->job, "%s", job && *job ? job : "-");
    snprintf(h->restart, sizeof h->restart, "%s", restart && *restart ? restart : "0");
}

static void holder_line(const lock_holder *h, char *out, size_t n)
{
    snprintf(out, n, "host=%s pid=%ld slurm_job=%s slurm_restart=%s\n", h->host, h->pid, h->job, h->restart);
}

/* 1 if the lock file could be read and parsed into h. */
static int holder_read(const char *path, lock_holder *h)
{
    char buf[512] = {0};
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    memset(h, 0, sizeof *h);
    return sscanf(buf, "host=%255s pid=%ld slurm_job=%63s slurm_restart=%31s", h->host, &h->pid, h->job,
                  h->restart) == 4;
}

static int same_holder(const lock_holder *a, const lock_holder *b)
{
    return strcmp(a->host, b->host) == 0 && a->pid == b->pid && strcmp(a->job, b->job) == 0 &&
           strcmp(a->restart, b->restart) == 0;
}

/* Why the holder of a lock is gone (why filled, returns 1), or 0 if it may still run. */
/* 1 if pid does not run on this host: gone, or a zombie that its parent has not reaped yet. */
static int process_gone(long pid)
{
    if (kill((pid_t)pid, 0) != 0) return errno == ESRCH;
    char path[64], stat[256] = {0};
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = fread(stat, 1, sizeof stat - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *paren = strrchr(stat, ')'); /* "pid (comm) S ...": comm may hold spaces */
    return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static int holder_gone(const lock_holder *h, int parsed, double age_s, char *why, size_t n)
{
    if (parsed && strcmp(h->host, L.me.host) == 0 && h->pid > 0 && process_gone(h->pid)) {
        snprintf(why, n, "its process %ld on %s no longer exists", h->pid, h->host);
        return 1;
    }
    if (parsed && strcmp(h->job, "-") != 0 && strcmp(h->job, L.me.job) == 0 && strcmp(h->restart, L.me.restart) != 0) {
        snprintf(why, n, "it is this Slurm job %s before its requeue (restart %s, now %s)", h->job, h->restart,
                 L.me.restart);
        return 1;
    }
    if (age_s > LIVENESS_STALE_S) {
        snprintf(why, n, "its heartbeat stopped %.0f s ago (its node may have died)", age_s);
        return 1;
    }
    return 0;
}

/* Rank 0: takes the lock. 0 on success; otherwise a message in err. */
static int lock_take(char *err, size_t n)
{
    char line[512];
    holder_line(&L.me, line, sizeof line);
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = open(L.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ssize_t w = write(fd, line, strlen(line));
            int ok = w == (ssize_t)strlen(line);
            if (close(fd) != 0) ok = 0;
            if (ok) return 0;
            snprintf(err, n, "cannot write the lock file %s: %s", L.path, strerror(errno ? errno : EIO));
            unlink(L.path);
            return -1;
        }
        if (errno != EEXIST) {
            snprintf(err, n, "cannot create the lock file %s: %s", L.path, strerror(errno));
            return -1;
        }
        lock_holder h;
        int parsed = holder_read(L.path, &h);
        struct stat st;
        if (stat(L.path, &st) != 0) continue; /* released meanwhile: try again */
        double age = difftime(time(NULL), st.st_mtime);
        char why[400];
        if (!holder_gone(&h, parsed, age, why, sizeof why)) {
            if (parsed)
                snprintf(err, n,
                         "run.dir %s is in use by another run: host %s, pid %ld, Slurm job %s, last heartbeat %.0f s "
                         "ago (lock file %s). Wait for it to end or choose another run.dir; the lock of a run that "
                         "died is taken over at once on the same host, and from another host once its heartbeat "
                         "is %d s old",
                         L.dir, h.host, h.pid, h.job, age, L.path, LIVENESS_STALE_S);
            else
                snprintf(err, n,
                         "run.dir %s is locked by %s (unreadable holder, written %.0f s ago): another run may be "
                         "starting there; it is taken over once it is %d s old",
                         L.dir, L.path, age, LIVENESS_STALE_S);
            return 1;
        }
        printf("run.dir %s: taking over the lock of an earlier run: %s\n", L.dir, why);
        if (unlink(L.path) != 0 && errno != ENOENT) {
            snprintf(err, n, "cannot remove the stale lock file %s: %s", L.path, strerror(errno));
            return -1;
        }
    }
    snprintf(err, n, "run.dir %s: the lock file %s keeps reappearing: another run is starting there", L.dir, L.path);
    return 1;
}

static void lock_release(void)
{
    if (!L.path[0]) return;
    lock_holder h;
    if (holder_read(L.path, &h) && same_holder(&h, &L.me)) unlink(L.path);
    L.path[0] = '\0';
    if (L.created_dir) rmdir(L.dir); /* only if this run left it empty */
}

static void watchdog_expired(double waited_s)
{
    fprintf(stderr,
            "vamp_mpi: error: rank %d on %s: no answer from the other ranks for %.0f s in %s (%s:%d): a node may "
            "have died or the network stalled (run.peer_timeout = %g s; the other ranks run on: %s). Ending this "
            "rank so that the job ends; the last complete checkpoint in run.dir is intact: resubmit to resume.\n",
            L.rank, L.me.host, waited_s, L.call, L.file, L.line, L.peer_timeout, L.others[0] ? L.others : "this host");
    fflush(stderr);
    lock_release(); /* rank 0: so that the resubmitted job can start at once */
    _exit(1);
}

static void *liveness_thread(void *arg)
{
    (void)arg;
    long long last_beat = now_ns();
    pthread_mutex_lock(&L.mu);
    while (!L.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        pthread_cond_timedwait(&L.wake, &L.mu, &until);
        if (L.stop) break;
        long long now = now_ns(), since = atomic_load(&L.since_ns);
        if (L.peer_timeout > 0 && since && (double)(now - since) * 1e-9 > L.peer_timeout)
            watchdog_expired((double)(now - since) * 1e-9);
        if (L.path[0] && now - last_beat >= (long long)LIVENESS_HEARTBEAT_S * 1000000000LL) {
            last_beat = now;
            if (utimensat(AT_FDCWD, L.path, NULL, 0) != 0 && errno == ENOENT)
                fprintf(stderr, "vamp_mpi: warning: the lock file %s was removed by someone else\n", L.path);
        }
    }
    pthread_mutex_unlock(&L.mu);
    return NULL;
}

/* "host (ranks a b ...)" for every host other than this rank's. */
static void describe_other_hosts(MPI_Comm comm, int size)
{
    char *names = xcalloc((size_t)size * MPI_MAX_PROCESSOR_NAME);
    char mine[MPI_MAX_PROCESSOR_NAME] = {0};
    int len = 0;
    CHECK_MPI(MPI_Get_processor_name(mine, &len));
    CHECK_MPI(MPI_Allgather(mine, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, comm));
    size_t used = 0;
    L.others[0] = '\0';
    for (int r = 0; r < size; r++) {
        const char *h = names + (size_t)r * MPI_MAX_PROCESSOR_NAME;
        int seen = strcmp(h, mine) == 0;
        for (int q = 0; q < r && !seen; q++) seen = strcmp(h, names + (size_t)q * MPI_MAX_PROCESSOR_NAME) == 0;
        if (seen) continue;
        used += (size_t)snprintf(L.others + used, used < sizeof L.others ? sizeof L.others - used : 0, "%s%s (ranks",
                                 used ? ", " : "", h);
        for (int q = r; q < size && used < sizeof L.others; q++)
            if (strcmp(h, names + (size_t)q * MPI_MAX_PROCESSOR_NAME) == 0)
                used += (size_t)snprintf(L.others + used, sizeof L.others - used, " %d", q);
        if (used < sizeof L.others) used += (size_t)snprintf(L.others + used, sizeof L.others - used, ")");
    }
    free(names);
}

void liveness_start(const char *run_dir, double peer_timeout_s, MPI_Comm comm)
{
    int size;
    CHECK_MPI(MPI_Comm_rank(comm, &L.rank));
    CHECK_MPI(MPI_Comm_size(comm, &size));
    holder_of_this_process(&L.me);
    L.peer_timeout = peer_timeout_s;
    describe_other_hosts(comm, size);
    char err[3 * VAMP_FILE_PATH_LEN + 1024] = {0};
    int status = 0; /* 0 taken, 1 refused (input), -1 cannot (runtime) */
    if (L.rank == 0) {
        snprintf(L.dir, sizeof L.dir, "%s", run_dir);
        struct stat st;
        L.created_dir = stat(run_dir, &st) != 0;
        int e = run_dir_make(run_dir);
        if (e != 0) { /* the same words as run_dir_prepare's */
            snprintf(err, sizeof err, "[run] dir = \"%s\": cannot create or write the run directory: %s", run_dir,
                     strerror(e));
            status = 1;
            L.created_dir = 0;
        } else {
            snprintf(L.path, sizeof L.path, "%s/%s", run_dir, LIVENESS_LOCK_NAME);
            status = lock_take(err, sizeof err);
            if (status != 0) {
                L.path[0] = '\0';
                if (L.created_dir) rmdir(run_dir);
            }
        }
    }
    CHECK_MPI(MPI_Bcast(&status, 1, MPI_INT, 0, comm));
    if (status > 0) vamp_input_error(comm, "%s", err);
    if (status < 0) vamp_exit_error(comm, 1, "%s", err);
    atexit(liveness_stop);
    L.stop = 0;
    if (pthread_create(&L.thread, NULL, liveness_thread, NULL) == 0) L.thread_running = 1;
}

void liveness_enter(const char *call, const char *file, int line)
{
    L.call = call;
    L.file = file;
    L.line = line;
    atomic_store(&L.since_ns, now_ns());
}

void liveness_leave(void)
{
    atomic_store(&L.since_ns, 0);
}

void liveness_stop(void)
{
    if (L.thread_running) {
        pthread_mutex_lock(&L.mu);
        L.stop = 1;
        pthread_cond_signal(&L.wake);
        pthread_mutex_unlock(&L.mu);
        pthread_join(L.thread, NULL);
        L.thread_running = 0;
    }
    lock_release();
}
