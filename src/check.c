/* Fatal-error reporting for checked MPI/HDF5 calls and allocations, user-input errors, and rank-0 logging.
 * Nothing here decides policy: callers choose between a fatal (bug/system) error and an input error. */
#include "vamp/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int world_rank(void)
{
    int init = 0, fin = 0, rank = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    return rank;
}

void vamp_fatal(const char *file, int line, const char *call, const char *hint)
{
    fprintf(stderr, "vamp_mpi: rank %d: %s:%d: %s: %s\n", world_rank(), file, line, call, hint);
    fflush(stderr);
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (init && !fin) MPI_Abort(MPI_COMM_WORLD, 1);
    abort();
}

void *xmalloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) vamp_fatal(file, line, "malloc", "out of memory");
    return p;
}

void *xcalloc_at(size_t n, const char *file, int line)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) vamp_fatal(file, line, "calloc", "out of memory");
    return p;
}

static void __attribute__((noreturn)) exit_error_v(MPI_Comm comm, int status, const char *fmt, va_list ap)
{
    int init = 0, fin = 0, rank = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    int live = init && !fin;
    if (live) MPI_Comm_rank(comm, &rank);
    if (rank == 0) {
        fputs("vamp_mpi: error: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        fflush(stderr);
    }
    if (live) MPI_Finalize();
    exit(status);
}

void vamp_input_error(MPI_Comm comm, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    exit_error_v(comm, VAMP_EXIT_INPUT, fmt, ap);
}

void vamp_exit_error(MPI_Comm comm, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    exit_error_v(comm, status, fmt, ap);
}

int vamp_any(MPI_Comm comm, int flag)
{
    int in = flag ? 1 : 0, out = 0;
    CHECK_MPI(MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MAX, comm));
    return out;
}

void log0(MPI_Comm comm, const char *fmt, ...)
{
    int rank = 0;
    MPI_Comm_rank(comm, &rank);
    if (rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

void vamp_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
