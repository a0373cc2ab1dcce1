/* Checked calls and fatal errors.
 * Every MPI/HDF5 call goes through CHECK_MPI / CHECK_H5 (or, for HDF5 files built or read by rank 0, through
 * h5io.h's helpers, which turn a failure into a message), every allocation through xmalloc (alloc.h): on failure
 * we print rank, file, line, the call and a hint, then MPI_Abort. vamp_mpi_init sets MPI_ERRORS_RETURN on
 * MPI_COMM_WORLD (communicators made from it inherit it), so a failing MPI call reaches CHECK_MPI, whose message
 * carries MPI_Error_string. User-input errors are not asserted: vamp_input_error
 * prints a message naming the file/key/dataset and exits with status 2 (see its collective contract). */
#ifndef VAMP_CHECK_H
#define VAMP_CHECK_H

#include <mpi.h>
#include <stddef.h>
#include "vamp/alloc.h"

#include "vamp/liveness.h"

#define VAMP_EXIT_INPUT 2      /* bad config, data file or checkpoint: nothing was written */
#define VAMP_EXIT_RESUMABLE 75 /* stopped early on a signal, checkpoint written (EX_TEMPFAIL) */

void vamp_fatal(const char *file, int line, const char *call, const char *hint) __attribute__((noreturn));
/* vamp_fatal with MPI's own description of error code rc as the hint. */
void vamp_mpi_fatal(const char *file, int line, const char *call, int rc) __attribute__((noreturn));

/* Every MPI call is also marked for the peer watchdog (liveness.h): a rank that waits too long in one ends the job. */
#define CHECK_MPI(call)                                                                            \
    do {                                                                                           \
        liveness_enter(#call, __FILE__, __LINE__);                                                 \
        int vamp_rc_ = (call);                                                                     \
        liveness_leave();                                                                          \
        if (vamp_rc_ != MPI_SUCCESS) vamp_mpi_fatal(__FILE__, __LINE__, #call, vamp_rc_);          \
    } while (0)

/* HDF5 calls return a negative value (herr_t or hid_t) on failure. */
#define CHECK_H5(call)                                                                             \
    do {                                                                                           \
        if ((long long)(call) < 0) vamp_fatal(__FILE__, __LINE__, #call, "HDF5 call failed");      \
    } while (0)

/* Report a user-input error and exit with VAMP_EXIT_INPUT. Call it on every rank with the same condition
 * (config and file metadata are read identically everywhere); only rank 0 prints. For a condition that only
 * some ranks can see, first agree with vamp_any(comm, flag). Finalizes MPI if it is initialised. */
void vamp_input_error(MPI_Comm comm, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Same contract as vamp_input_error, with an explicit exit status (e.g. 1 for a failed write). */
void vamp_exit_error(MPI_Comm comm, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4), noreturn));

/* Collective: true on every rank if flag is true on any rank. */
int vamp_any(MPI_Comm comm, int flag);

/* Rank 0 prints to stdout (others stay silent). Not collective. */
void log0(MPI_Comm comm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* MPI_Init for the programs that do MPI-IO, with two things settled first (see check.c): Open MPI's I/O
 * components that work for long paths, and a refusal (exit 2, before MPI_Init can crash) of an address-space
 * limit (ulimit -v) too small for MPI and OpenBLAS to start. Then vamp_mpi_errors_return(MPI_COMM_WORLD) and
 * vamp_h5_quiet(): the two process-wide error settings, made here once. */
void vamp_mpi_init(int *argc, char ***argv);

/* MPI errors on comm (and on every communicator later derived from it) return to the caller, so CHECK_MPI can
 * name the failing call; under MPI's default (MPI_ERRORS_ARE_FATAL) MPI would abort before CHECK_MPI sees it. */
void vamp_mpi_errors_return(MPI_Comm comm);

/* Silence HDF5's own error stack printing; our CHECK_H5 / input errors say what failed. Process-wide: called
 * once by vamp_mpi_init (programs without MPI call it themselves). */
void vamp_h5_quiet(void);

#endif
