/* Fatal-error reporting for checked MPI/HDF5 calls and allocations, user-input errors, and rank-0 logging.
 * Nothing here decides policy: callers choose between a fatal (bug/system) error and an input error. */
#include "vamp/check.h"

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

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

void vamp_mpi_fatal(const char *file, int line, const char *call, int rc)
{
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) snprintf(text, sizeof text, "error code %d", rc);
    char hint[MPI_MAX_ERROR_STRING + 32];
    snprintf(hint, sizeof hint, "MPI call failed: %s", text);
    vamp_fatal(file, line, call, hint);
}

/* The up-front checks (memory.h) should refuse a run that cannot fit; this names the size if one slips by. */
static void out_of_memory(const char *file, int line, const char *call, size_t n)
{
    char hint[160];
    snprintf(hint, sizeof hint, "out of memory for %zu bytes (%.1f MiB): lower model.hidden, prior.components or "
             "train.batch_size, or give the job more memory", n, (double)n / 1048576.0);
    vamp_fatal(file, line, call, hint);
}

void *xmalloc_at(size_t n, const char *file, int line)
{
    void *p = malloc(n ? n : 1);
    if (!p) out_of_memory(file, line, "malloc", n);
    return p;
}

void *xcalloc_at(size_t n, const char *file, int line)
{
    void *p = calloc(n ? n : 1, 1);
    if (!p) out_of_memory(file, line, "calloc", n);
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

/* Below this address-space limit Open MPI 4.1's MPI_Init itself can crash (a segfault was seen at 100 MiB; it
 * maps 210-260 MiB here), so the limit is checked before MPI_Init; above it, memory.h's checks compare the room
 * left after MPI_Init with what the run will allocate, OpenBLAS's work buffer included. */
#define VAMP_MIN_ADDRESS_SPACE (256ull << 20)

/* The launcher's rank before MPI_Init (Open MPI, PMIx, MPICH/Slurm PMI), 0 if there is none. */
static int launch_rank(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(vars[i]);
        if (v) return atoi(v);
    }
    return 0;
}

void vamp_mpi_init(int *argc, char ***argv)
{
    /* Open MPI's OMPIO asks each shared-file-pointer component whether it can serve every MPI_File_open, and the
     * "lockedfile" component answers by writing the file name + ".locktest.<rank>" into a 256-byte stack buffer:
     * a data.path or run.dir of about 245 characters or more aborts with "buffer overflow detected" (Open MPI 4.1;
     * the buffer is unchanged upstream). HDF5 never uses shared file pointers and OMPIO opens files without any
     * such component, so that one component is excluded and OMPIO stays the I/O component (excluding OMPIO for
     * ROMIO also works, but changes the whole I/O path). Paths up to the documented 1023 characters then work
     * (tests/test_input_errors.sh). A user's own OMPI_MCA_sharedfp (or mpirun --mca sharedfp) wins; other MPIs
     * ignore the variable. It must be set before MPI_Init, which reads the MCA parameters. */
    setenv("OMPI_MCA_sharedfp", "^lockedfile", 0);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < VAMP_MIN_ADDRESS_SPACE) {
        if (launch_rank() == 0)
            fprintf(stderr, "vamp_mpi: error: the address-space limit (ulimit -v) is %llu MiB, too small for MPI "
                    "and OpenBLAS to start (they map about 400 MiB before any training buffer): raise it, e.g. "
                    "ulimit -v unlimited\n", (unsigned long long)rl.rlim_cur >> 20);
        exit(VAMP_EXIT_INPUT);
    }
    /* FUNNELED: the liveness thread (liveness.h) makes no MPI call */
    int provided = 0;
    CHECK_MPI(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    vamp_mpi_errors_return(MPI_COMM_WORLD);
    vamp_h5_quiet();
}

void vamp_mpi_errors_return(MPI_Comm comm) { CHECK_MPI(MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN)); }

void vamp_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }
