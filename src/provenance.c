/* Provenance fields (see provenance.h): gathered from the build header and the libraries at run time. */
#include "vamp/provenance.h"
#include "vamp/build_info.h"
#include "vamp/check.h"
#include "vamp/h5io.h"

#include <cblas.h>
#include <stddef.h>
#include <string.h>

static void copy_trimmed(char *dst, size_t len, const char *src)
{
    snprintf(dst, len, "%s", src ? src : "unknown");
    dst[strcspn(dst, "\n")] = '\0'; /* first line only (MPI's version string runs over several) */
    size_t n = strlen(dst);
    while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == ',')) dst[--n] = '\0';
}

void provenance_collect(vamp_provenance *p, MPI_Comm comm)
{
    memset(p, 0, sizeof *p);
    copy_trimmed(p->version, sizeof p->version, VAMP_VERSION);
    copy_trimmed(p->git_commit, sizeof p->git_commit, VAMP_GIT_COMMIT);
    copy_trimmed(p->compiler, sizeof p->compiler, VAMP_COMPILER);
    copy_trimmed(p->openblas_core, sizeof p->openblas_core, openblas_get_corename());
    copy_trimmed(p->openblas_config, sizeof p->openblas_config, openblas_get_config());
    char mpi[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    if (MPI_Get_library_version(mpi, &len) != MPI_SUCCESS) snprintf(mpi, sizeof mpi, "unknown");
    copy_trimmed(p->mpi_library, sizeof p->mpi_library, mpi);
    unsigned maj = 0, min = 0, rel = 0;
    H5get_libversion(&maj, &min, &rel);
    snprintf(p->hdf5_version, sizeof p->hdf5_version, "%u.%u.%u", maj, min, rel);
    if (comm == MPI_COMM_NULL) return;
    CHECK_MPI(MPI_Comm_size(comm, &p->ranks));
    /* rank 0's values everywhere: attributes of a collectively written file must agree on every rank, even on
     * a cluster whose nodes differ (the OpenBLAS core of rank 0's node is then the one recorded) */
    CHECK_MPI(MPI_Bcast(p, (int)sizeof *p, MPI_BYTE, 0, comm));
}

/* The string fields: attribute name (the label in logs and --version is the name without "build_"). */
static const struct {
    const char *attr;
    size_t offset;
} STRING_FIELDS[] = {
    {"build_version", offsetof(vamp_provenance, version)},
    {"build_git_commit", offsetof(vamp_provenance, git_commit)},
    {"build_compiler", offsetof(vamp_provenance, compiler)},
    {"build_openblas_core", offsetof(vamp_provenance, openblas_core)},
    {"build_openblas_config", offsetof(vamp_provenance, openblas_config)},
    {"build_mpi_library", offsetof(vamp_provenance, mpi_library)},
    {"build_hdf5_version", offsetof(vamp_provenance, hdf5_version)},
};
#define N_STRING_FIELDS (sizeof STRING_FIELDS / sizeof STRING_FIELDS[0])

static const char *field(const vamp_provenance *p, size_t i) { return (const char *)p + STRING_FIELDS[i].offset; }

int provenance_write_attrs(hid_t loc, const vamp_provenance *p)
{
    /* variable-length UTF-8 strings: h5py reads them as str (a fixed-length one comes back as bytes) */
    for (size_t i = 0; i < N_STRING_FIELDS; i++)
        if (h5_attr_utf8(loc, STRING_FIELDS[i].attr, field(p, i)) != 0) return -1;
    return h5_attr_i32(loc, "ranks", p->ranks);
}

void provenance_print(FILE *out, const char *prefix, const vamp_provenance *p)
{
    for (size_t i = 0; i < N_STRING_FIELDS; i++)
        fprintf(out, "%s%s: %s\n", prefix, STRING_FIELDS[i].attr + strlen("build_"), field(p, i));
    if (p->ranks > 0) fprintf(out, "%sranks: %d\n", prefix, p->ranks);
}
