/* Writing and reading parameter files (final.h5) atomically; see checkpoint.h for the format.
 * Rank 0 does the serial HDF5 I/O for these small files; full collective checkpoints come with resume. */
#include "vamp/checkpoint.h"
#include "vamp/check.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_string_attr(hid_t loc, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0) return -1;
    int ok = H5Tset_size(type, strlen(value) + 1) >= 0;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ok && attr >= 0 && H5Awrite(attr, type, value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    H5Tclose(type);
    return ok ? 0 : -1;
}

static int write_double_attr(hid_t loc, const char *name, double value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(loc, name, H5T_NATIVE_DOUBLE, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = attr >= 0 && H5Awrite(attr, H5T_NATIVE_DOUBLE, &value) >= 0;
    if (attr >= 0) H5Aclose(attr);
    if (space >= 0) H5Sclose(space);
    return ok ? 0 : -1;
}

/* Returns 0 on success; on failure the temporary file is removed. */
static int write_file(const char *tmp, const vamp_layout *l, const float *params, const char *config_ini,
                      const vamp_attr *attrs, int nattrs, const vamp_extra *extra, int nextra)
{
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    int ok = write_string_attr(f, "format", VAMP_PARAMS_FORMAT) == 0 &&
             write_double_attr(f, "version", VAMP_PARAMS_VERSION) == 0 &&
             write_string_attr(f, "config", config_ini) == 0;
    for (int i = 0; ok && i < nattrs; i++) ok = write_double_attr(f, attrs[i].key, attrs[i].value) == 0;
    hid_t g = ok ? H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ok && g >= 0;
    for (int i = 0; ok && i < l->n; i++) {
        const vamp_tensor *t = &l->t[i];
        hsize_t dims[2] = {t->shape[0], t->shape[1]};
        hid_t space = H5Screate_simple(t->ndim, dims, NULL);
        hid_t ds = space >= 0 ? H5Dcreate2(g, t->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)
                              : -1;
        ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, params + t->offset) >= 0;
        if (ds >= 0) H5Dclose(ds);
        if (space >= 0) H5Sclose(space);
    }
    if (g >= 0) H5Gclose(g);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    ok = ok && lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0;
    for (int i = 0; ok && i < nextra; i++) {
        hsize_t dims[1] = {extra[i].n};
        hid_t space = H5Screate_simple(1, dims, NULL);
        hid_t ds = space >= 0 ? H5Dcreate2(f, extra[i].name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT)
                              : -1;
        ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, extra[i].data) >= 0;
        if (ds >= 0) H5Dclose(ds);
        if (space >= 0) H5Sclose(space);
    }
    if (lcpl >= 0) H5Pclose(lcpl);
    if (H5Fflush(f, H5F_SCOPE_GLOBAL) < 0) ok = 0;
    if (H5Fclose(f) < 0) ok = 0;
    if (!ok) unlink(tmp);
    return ok ? 0 : -1;
}

void params_write(const char *path, const vamp_layout *l, const float *params, const char *config_ini,
                  const vamp_attr *attrs, int nattrs, const vamp_extra *extra, int nextra, MPI_Comm comm)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    char msg[1200] = "";
    if (rank == 0) {
        char tmp[1100];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
        vamp_h5_quiet();
        if (write_file(tmp, l, params, config_ini, attrs, nattrs, extra, nextra) != 0)
            snprintf(msg, sizeof msg, "cannot write \"%s\" (disk full or directory not writable?); "
                     "any previous file there is unchanged", path);
        else if (rename(tmp, path) != 0) {
            snprintf(msg, sizeof msg, "cannot rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
            unlink(tmp);
        }
    }
    CHECK_MPI(MPI_Bcast(msg, sizeof msg, MPI_CHAR, 0, comm));
    if (msg[0]) vamp_exit_error(comm, 1, "%s", msg);
}

void params_read(const char *path, const vamp_layout *l, float *params, MPI_Comm comm)
{
    vamp_h5_quiet();
    if (access(path, R_OK) != 0)
        vamp_input_error(comm, "cannot open parameter file \"%s\": %s", path, strerror(errno));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) vamp_input_error(comm, "\"%s\" is not an HDF5 file", path);
    for (int i = 0; i < l->n; i++) {
        const vamp_tensor *t = &l->t[i];
        char name[VAMP_NAME_LEN + 16];
        snprintf(name, sizeof name, "params/%s", t->name);
        if (H5Lexists(f, "params", H5P_DEFAULT) <= 0 || H5Lexists(f, name, H5P_DEFAULT) <= 0)
            vamp_input_error(comm, "%s: dataset /%s is missing (was the file written for another model/prior?)",
                             path, name);
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        hid_t space = H5Dget_space(ds);
        hsize_t dims[2] = {0, 1};
        int nd = H5Sget_simple_extent_ndims(space);
        if (nd < 1 || nd > 2) vamp_input_error(comm, "%s: dataset /%s has rank %d, expected %d", path, name, nd, t->ndim);
        H5Sget_simple_extent_dims(space, dims, NULL);
        if (nd != t->ndim || dims[0] != t->shape[0] || (nd == 2 && dims[1] != t->shape[1]))
            vamp_input_error(comm, "%s: dataset /%s has shape %llux%llu, the model needs %zux%zu", path, name,
                             (unsigned long long)dims[0], (unsigned long long)(nd == 2 ? dims[1] : 1),
                             t->shape[0], t->shape[1]);
        CHECK_H5(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, params + t->offset));
        H5Sclose(space);
        H5Dclose(ds);
    }
    H5Fclose(f);
}
