/* Provenance: what produced a run's bits. Results are bit-identical for any rank count on one machine, but the
 * digits depend on the BLAS kernels OpenBLAS picks for the processor, so every HDF5 file vamp_mpi writes and
 * the run log carry the program version, git commit, compiler, OpenBLAS core and configuration, the MPI and
 * HDF5 libraries and the rank count. It does not judge them: comparing two runs is the reader's business. */
#ifndef VAMP_PROVENANCE_H
#define VAMP_PROVENANCE_H

#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>

typedef struct {
    char version[32];          /* vamp_mpi version (CMake's project version) */
    char git_commit[64];       /* commit the build was made from, "-dirty" if the tree had changes */
    char compiler[64];         /* e.g. "GNU 12.2.0" */
    char openblas_core[64];    /* openblas_get_corename(): the kernels in use */
    char openblas_config[256]; /* openblas_get_config() */
    char mpi_library[256];     /* MPI_Get_library_version(), first line */
    char hdf5_version[32];     /* H5get_libversion() */
    int ranks;                 /* MPI ranks of this run (0: not inside an MPI job) */
} vamp_provenance;

/* Collective over comm: every rank gets rank 0's values. comm may be MPI_COMM_NULL (not collective; also
 * before MPI_Init, e.g. for --version): ranks = 0. */
void provenance_collect(vamp_provenance *p, MPI_Comm comm);

/* Writes the fields as attributes of loc (UTF-8 strings; ranks an integer), names prefixed "build_" except
 * "ranks". Returns 0, or -1 if an HDF5 call failed. Collective exactly when loc is in a file opened
 * collectively (every rank must then call it with the same values). */
int provenance_write_attrs(hid_t loc, const vamp_provenance *p);

/* "key: value" lines, one per field, each prefixed by `prefix`. */
void provenance_print(FILE *out, const char *prefix, const vamp_provenance *p);

#endif
