/* Up-front memory checks (see memory.h): the room a rank has, from Linux's /proc and cgroup files and the
 * process limits, against an estimate its caller makes. Nothing here allocates or tracks allocations. */
#include "vamp/memory.h"
#include "vamp/check.h"
#include "vamp/config.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* OpenBLAS takes one work buffer per thread at its first BLAS call: 128 MiB + a page with the Haswell/SkylakeX
 * kernels (measured: VmSize grows by 131 MiB). Address space only: most of it is never touched. */
#define BLAS_BUFFER_BYTES (128.0 * 1048576.0 + 4096.0)

const char *mem_text(double bytes, char *buf, int len)
{
    const char *unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 5) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(buf, (size_t)len, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

/* "Key:   123 kB" from a /proc file, in bytes; -1 if absent. */
static double proc_kb(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    if (!f) return -1;
    char line[256];
    size_t n = strlen(key);
    double v = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            v = 1024.0 * strtod(line + n + 1, NULL);
            break;
        }
    fclose(f);
    return v;
}

/* The first number in a file ("max" or a missing file: -1). */
static double file_number(const char *dir, const char *name)
{
    char path[VAMP_FILE_PATH_LEN + 64]; /* a cgroup directory and a file in it */
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char word[64] = "";
    int ok = fscanf(f, "%63s", word) == 1;
    fclose(f);
    if (!ok || !strcmp(word, "max")) return -1;
    return strtod(word, NULL);
}

/* "key value" from a cgroup memory.stat; 0 if absent. */
static double stat_value(const char *dir, const char *key)
{
    char path[VAMP_FILE_PATH_LEN + 64], k[64];
    snprintf(path, sizeof path, "%s/memory.stat", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    double v, found = 0;
    while (fscanf(f, "%63s %lf", k, &v) == 2)
        if (!strcmp(k, key)) {
            found = v;
            break;
        }
    fclose(f);
    return found;
}

/* Room left in this process's memory cgroup (v2, else v1), less reclaimable file cache; -1 if unlimited or
 * unknown. The cgroup path is tried below the mount point, then the mount point itself (a container's view). */
static double cgroup_room(void)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) return -1;
    char line[1024], v2[1024] = "", v1[1024] = "";
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "0::", 3)) snprintf(v2, sizeof v2, "%s", line + 3);
        char *c = strstr(line, ":memory:");
        if (c) snprintf(v1, sizeof v1, "%s", c + 8);
    }
    fclose(f);
    const char *mount[2] = {"/sys/fs/cgroup", "/sys/fs/cgroup/memory"};
    const char *sub[2] = {v2, v1}, *limit[2] = {"memory.max", "memory.limit_in_bytes"},
               *usage[2] = {"memory.current", "memory.usage_in_bytes"},
               *cache[2] = {"inactive_file", "total_inactive_file"};
    for (int v = 0; v < 2; v++) {
        if (v == 0 && !v2[0]) continue;
        if (v == 1 && !v1[0]) continue;
        for (int tries = 0; tries < 2; tries++) {
            char dir[VAMP_FILE_PATH_LEN];
            snprintf(dir, sizeof dir, "%s%s", mount[v], tries == 0 ? sub[v] : "");
            double lim = file_number(dir, limit[v]), use = file_number(dir, usage[v]);
            if (lim < 0 || use < 0) continue;
            if (lim >= 1e18) return -1; /* v1 writes "unlimited" as a huge number */
            double room = lim - (use - stat_value(dir, cache[v]));
            return room > 0 ? room : 0;
        }
    }
    return -1;
}

typedef struct {
    double room;
    char limit[128];
    int ulimit; /* the binding limit is ulimit -v or -d */
} room_t;

static void tighter(room_t *r, double room, int ulimit, const char *fmt, ...)
{
    if (room >= r->room) return;
    r->room = room > 0 ? room : 0;
    r->ulimit = ulimit;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->limit, sizeof r->limit, fmt, ap);
    va_end(ap);
}

/* This rank's room; `blas` bytes are still to be mapped by OpenBLAS (counted against the process limits only). */
static room_t rank_room(int node_ranks, double blas)
{
    room_t r = {INFINITY, "no limit found", 0};
    char a[32], b[32];
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        double mapped = proc_kb("/proc/self/status", "VmSize");
        if (mapped >= 0)
            tighter(&r, (double)rl.rlim_cur - mapped - blas, 1, "ulimit -v %s, %s of it mapped already%s",
                    mem_text((double)rl.rlim_cur, a, 32), mem_text(mapped, b, 32),
                    blas > 0 ? ", and OpenBLAS's work buffer still to come" : "");
    }
    if (getrlimit(RLIMIT_DATA, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        double data = proc_kb("/proc/self/status", "VmData");
        if (data >= 0)
            tighter(&r, (double)rl.rlim_cur - data - blas, 1, "ulimit -d %s, %s of it in use",
                    mem_text((double)rl.rlim_cur, a, 32), mem_text(data, b, 32));
    }
    double avail = proc_kb("/proc/meminfo", "MemAvailable"), swap = proc_kb("/proc/meminfo", "SwapFree");
    if (avail >= 0)
        tighter(&r, (avail + (swap > 0 ? swap : 0)) / node_ranks, 0, "the node's available memory %s shared by %d "
                "rank(s)", mem_text(avail + (swap > 0 ? swap : 0), a, 32), node_ranks);
    double cg = cgroup_room();
    if (cg >= 0)
        tighter(&r, cg / node_ranks, 0, "the job's memory limit (cgroup) with %s free, shared by %d rank(s)",
                mem_text(cg, a, 32), node_ranks);
    return r;
}

void mem_require(MPI_Comm comm, double need, int blas, const char *what, const char *advice)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    MPI_Comm node;
    int node_ranks;
    CHECK_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
    CHECK_MPI(MPI_Comm_size(node, &node_ranks));
    CHECK_MPI(MPI_Comm_free(&node));
    double blas_bytes = blas ? BLAS_BUFFER_BYTES * openblas_get_num_threads() : 0.0;
    room_t r = rank_room(node_ranks, blas_bytes);
    struct { double margin; int rank; } mine = {r.room - need, rank}, worst;
    CHECK_MPI(MPI_Allreduce(&mine, &worst, 1, MPI_DOUBLE_INT, MPI_MINLOC, comm));
    if (worst.margin >= 0) return;
    /* the short rank's own figures, so every rank reports the same */
    double figures[3] = {need, r.room, r.ulimit};
    CHECK_MPI(MPI_Bcast(figures, 3, MPI_DOUBLE, worst.rank, comm));
    CHECK_MPI(MPI_Bcast(r.limit, (int)sizeof r.limit, MPI_CHAR, worst.rank, comm));
    char a[32], b[32];
    /* a ulimit used up before this run's own buffers (by MPI and OpenBLAS) is the thing to change */
    const char *what_to_do = figures[1] == 0 && figures[2] != 0 ? "raise the ulimit (e.g. ulimit -v unlimited)" : advice;
    vamp_input_error(comm, "%s: about %s per rank needed, but rank %d has only %s (%s): %s%s", what,
                     mem_text(figures[0], a, 32), worst.rank, mem_text(figures[1], b, 32), r.limit, what_to_do,
                     figures[2] != 0 && figures[1] > 0 ? ", or raise the ulimit" : "");
}
