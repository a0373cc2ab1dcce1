/* In-memory HDF5 output files written with POSIX calls (see h5file.h). Only the final write() can meet a full
 * disk, and it is an ordinary error return here. */
#include "vamp/h5file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

hid_t h5file_create(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    /* no backing store: the file lives in memory, grown 4 MiB at a time */
    hid_t f = H5Pset_fapl_core(fapl, (size_t)4 << 20, 0) >= 0 ? H5Fcreate("vamp_mpi-image", H5F_ACC_TRUNC,
                                                                         H5P_DEFAULT, fapl)
                                                             : -1;
    H5Pclose(fapl);
    return f;
}

/* Writes all n bytes (retrying after a signal or a short write); 0 or -1 with errno. */
static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int h5file_save(hid_t f, const char *tmp, unsigned pause_s)
{
    unsigned char *image = NULL;
    ssize_t n = H5Fflush(f, H5F_SCOPE_LOCAL) >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    if (n > 0) image = malloc((size_t)n);
    int ok = image && H5Fget_file_image(f, image, (size_t)n) == n;
    if (H5Fclose(f) < 0) ok = 0; /* in memory: cannot meet the disk */
    if (!ok) {
        errno = n > 0 && !image ? ENOMEM : EIO;
        free(image);
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    ok = fd >= 0;
    if (ok && pause_s) { /* tests: a window to kill the writer with half a file on disk */
        ok = write_all(fd, image, (size_t)n / 2) == 0;
        for (unsigned left = pause_s; left > 0;) left = sleep(left); /* the whole pause, signals or not */
        ok = ok && write_all(fd, image + n / 2, (size_t)n - (size_t)n / 2) == 0;
    } else if (ok) {
        ok = write_all(fd, image, (size_t)n) == 0;
    }
    if (ok && fsync(fd) != 0 && errno != EINVAL) ok = 0; /* a full disk may only show here (e.g. NFS) */
    if (fd >= 0 && close(fd) != 0) ok = 0;
    int e = errno;
    free(image);
    if (!ok) {
        if (fd >= 0) unlink(tmp);
        errno = e ? e : EIO;
        return -1;
    }
    return 0;
}

int h5file_put(hid_t f, const char *path)
{
    size_t len = strlen(path) + 8;
    char *tmp = malloc(len);
    if (!tmp) {
        H5Fclose(f);
        errno = ENOMEM;
        return -1;
    }
    snprintf(tmp, len, "%s.tmp", path);
    int rc = h5file_save(f, tmp, 0);
    if (rc == 0 && rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        rc = -1;
    }
    free(tmp);
    return rc;
}

int h5_attr_string(hid_t loc, const char *name, const char *value)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0) return -1;
    int ok = H5Tset_size(type, strlen(value) + 1) >= 0;
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = ok && space >= 0 ? H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = attr >= 0 && H5Awrite(attr, type, value) >= 0;
    if (attr >= 0 && H5Aclose(attr) < 0) ok = 0;
    if (space >= 0) H5Sclose(space);
    H5Tclose(type);
    return ok ? 0 : -1;
}

static int attr_scalar(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = attr >= 0 && H5Awrite(attr, mem_type, value) >= 0;
    if (attr >= 0 && H5Aclose(attr) < 0) ok = 0;
    if (space >= 0) H5Sclose(space);
    return ok ? 0 : -1;
}

int h5_attr_double(hid_t loc, const char *name, double value)
{
    return attr_scalar(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int h5_attr_u32(hid_t loc, const char *name, uint32_t value)
{
    return attr_scalar(loc, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &value);
}

int h5_dataset_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    int ok = lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0;
    hid_t space = ok ? H5Screate_simple(ndim, dims, NULL) : -1;
    hid_t ds = space >= 0 ? H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (ds >= 0 && H5Dclose(ds) < 0) ok = 0;
    if (space >= 0) H5Sclose(space);
    if (lcpl >= 0) H5Pclose(lcpl);
    return ok ? 0 : -1;
}
