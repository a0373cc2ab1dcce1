/* Rank 0's output files (temporary name, fsync, rename), the verdict on a write shared by every rank, in-memory
 * HDF5 files and attribute I/O (see h5io.h). Only the final write() can meet a full disk, and it is an ordinary
 * error return here. */
#include "vamp/h5io.h"
#include "vamp/check.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- files put in place atomically ---------------------------------------------------------------------------- */

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

int io_save(const char *tmp, const void *bytes, size_t n, unsigned pause_s)
{
    const unsigned char *b = bytes;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    int ok = fd >= 0;
    if (ok && pause_s) { /* tests: a window to kill the writer with half a file on disk */
        ok = write_all(fd, b, n / 2) == 0;
        for (unsigned left = pause_s; left > 0;) left = sleep(left); /* the whole pause, signals or not */
        ok = ok && write_all(fd, b + n / 2, n - n / 2) == 0;
    } else if (ok) {
        ok = write_all(fd, b, n) == 0;
    }
    if (ok && fsync(fd) != 0 && errno != EINVAL) ok = 0; /* a full disk may only show here (e.g. NFS) */
    if (fd >= 0 && close(fd) != 0) ok = 0;
    if (ok) return 0;
    int e = errno;
    if (fd >= 0) unlink(tmp);
    errno = e ? e : EIO;
    return -1;
}

int io_put(const char *path, const char *tmp, const void *bytes, size_t n)
{
    char *own = NULL;
    if (!tmp) {
        size_t len = strlen(path) + sizeof ".tmp";
        own = malloc(len);
        if (!own) {
            errno = ENOMEM;
            return -1;
        }
        snprintf(own, len, "%s.tmp", path);
        tmp = own;
    }
    int rc = io_save(tmp, bytes, n, 0);
    if (rc == 0 && rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        rc = -1;
    }
    free(own);
    return rc;
}

/* ---- the verdict on a write --------------------------------------------------------------------------------------- */

void io_agree_or_exit(MPI_Comm comm, const char *msg, int status)
{
    int rank;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    char verdict[VAMP_MSG_LEN] = "";
    if (rank == 0) snprintf(verdict, sizeof verdict, "%s", msg);
    CHECK_MPI(MPI_Bcast(verdict, sizeof verdict, MPI_CHAR, 0, comm));
    if (verdict[0]) vamp_exit_error(comm, status, "%s", verdict);
}

int io_agree_any(MPI_Comm comm, char *why)
{
    int rank, size;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    CHECK_MPI(MPI_Comm_size(comm, &size));
    int first_bad = why[0] ? rank : size;
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &first_bad, 1, MPI_INT, MPI_MIN, comm));
    if (first_bad < size) CHECK_MPI(MPI_Bcast(why, VAMP_MSG_LEN, MPI_CHAR, first_bad, comm));
    return first_bad;
}

/* ---- HDF5 files in memory ------------------------------------------------------------------------------------------ */

hid_t h5file_create(void)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return -1;
    /* no backing store: the file lives in memory, grown 4 MiB at a time */
    hid_t f = H5Pset_fapl_core(fapl, (size_t)4 << 20, 0) >= 0
                  ? H5Fcreate("vamp_mpi-image", H5F_ACC_TRUNC, H5P_DEFAULT, fapl)
                  : -1;
    if (H5Pclose(fapl) < 0 && f >= 0) {
        H5Fclose(f);
        return -1;
    }
    return f;
}

/* Closes f and returns its image (n bytes, to be freed), or NULL with errno set. */
static unsigned char *take_image(hid_t f, size_t *n)
{
    unsigned char *image = NULL;
    ssize_t len = H5Fflush(f, H5F_SCOPE_LOCAL) >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    if (len > 0) image = malloc((size_t)len);
    int ok = image && H5Fget_file_image(f, image, (size_t)len) == len;
    if (H5Fclose(f) < 0) ok = 0; /* in memory: cannot meet the disk */
    if (!ok) {
        errno = len > 0 && !image ? ENOMEM : EIO;
        free(image);
        return NULL;
    }
    *n = (size_t)len;
    return image;
}

/* Closes f and hands its image to io_put (path given) or io_save. */
static int write_image(hid_t f, const char *path, const char *tmp, unsigned pause_s)
{
    size_t n = 0;
    unsigned char *image = take_image(f, &n);
    int rc = !image ? -1 : path ? io_put(path, tmp, image, n) : io_save(tmp, image, n, pause_s);
    int e = errno;
    free(image);
    errno = e;
    return rc;
}

int h5file_save(hid_t f, const char *tmp, unsigned pause_s) { return write_image(f, NULL, tmp, pause_s); }
int h5file_put(hid_t f, const char *path, const char *tmp) { return write_image(f, path, tmp, 0); }

/* ---- attributes ------------------------------------------------------------------------------------------------------ */

/* A scalar attribute of file type `ftype`, written from `value` of memory type `mtype`. */
static int attr_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t attr = space >= 0 ? H5Acreate2(loc, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int ok = attr >= 0 && H5Awrite(attr, mtype, value) >= 0;
    if (attr >= 0 && H5Aclose(attr) < 0) ok = 0;
    if (space >= 0 && H5Sclose(space) < 0) ok = 0;
    return ok ? 0 : -1;
}

/* A C string type of `size` bytes (H5T_VARIABLE: variable length) in character set `cset`, or -1. */
static hid_t string_type(size_t size, H5T_cset_t cset)
{
    hid_t type = H5Tcopy(H5T_C_S1);
    if (type < 0) return -1;
    if (H5Tset_size(type, size) < 0 || H5Tset_cset(type, cset) < 0) {
        H5Tclose(type);
        return -1;
    }
    return type;
}

static int attr_write_string(hid_t loc, const char *name, hid_t type, const void *value)
{
    if (type < 0) return -1;
    int ok = attr_write(loc, name, type, type, value) == 0;
    if (H5Tclose(type) < 0) ok = 0;
    return ok ? 0 : -1;
}

int h5_attr_utf8(hid_t loc, const char *name, const char *value)
{
    return attr_write_string(loc, name, string_type(H5T_VARIABLE, H5T_CSET_UTF8), &value);
}

int h5_attr_double(hid_t loc, const char *name, double value)
{
    return attr_write(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

int h5_attr_u32(hid_t loc, const char *name, uint32_t value)
{
    return attr_write(loc, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, &value);
}

int h5_attr_i32(hid_t loc, const char *name, int32_t value)
{
    return attr_write(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &value);
}

int h5_attr_i64(hid_t loc, const char *name, int64_t value)
{
    return attr_write(loc, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

static int attr_read(hid_t loc, const char *name, hid_t mtype, void *out)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    int ok = a >= 0 && H5Aread(a, mtype, out) >= 0;
    if (a >= 0 && H5Aclose(a) < 0) ok = 0;
    return ok ? 0 : -1;
}

int h5_attr_read_double(hid_t loc, const char *name, double *out) { return attr_read(loc, name, H5T_NATIVE_DOUBLE, out); }
int h5_attr_read_u32(hid_t loc, const char *name, uint32_t *out) { return attr_read(loc, name, H5T_NATIVE_UINT32, out); }

char *h5_attr_read_string(hid_t loc, const char *name)
{
    if (H5Aexists(loc, name) <= 0) return NULL;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1;
    size_t n = t >= 0 ? H5Tget_size(t) : 0;
    if (t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0) { /* UTF-8, as written now */
        hid_t mt = string_type(H5T_VARIABLE, H5Tget_cset(t));
        char *v = NULL, *s = NULL;
        if (mt >= 0 && H5Aread(a, mt, &v) >= 0 && v && strlen(v) <= ((size_t)1 << 24)) {
            s = xmalloc(strlen(v) + 1);
            strcpy(s, v);
        }
        if (v) H5free_memory(v);
        if (mt >= 0) H5Tclose(mt);
        H5Tclose(t);
        H5Aclose(a);
        return s;
    }
    int ok = t >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) == 0 && n > 0 && n <= ((size_t)1 << 24);
    char *s = ok ? xcalloc(n + 1) : NULL;
    /* n + 1: a fixed-length string may fill all n bytes (NULLPAD, as h5py writes numpy bytes) */
    hid_t mt = ok ? string_type(n + 1, H5Tget_cset(t)) : -1;
    ok = mt >= 0 && H5Aread(a, mt, s) >= 0;
    if (mt >= 0 && H5Tclose(mt) < 0) ok = 0;
    if (t >= 0 && H5Tclose(t) < 0) ok = 0;
    if (a >= 0 && H5Aclose(a) < 0) ok = 0;
    if (!ok) {
        free(s);
        return NULL;
    }
    return s;
}

/* ---- datasets --------------------------------------------------------------------------------------------------------- */

int h5_dataset_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    int ok = lcpl >= 0 && H5Pset_create_intermediate_group(lcpl, 1) >= 0;
    hid_t space = ok ? H5Screate_simple(ndim, dims, NULL) : -1;
    hid_t ds = space >= 0 ? H5Dcreate2(loc, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT) : -1;
    ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0;
    if (ds >= 0 && H5Dclose(ds) < 0) ok = 0;
    if (space >= 0 && H5Sclose(space) < 0) ok = 0;
    if (lcpl >= 0 && H5Pclose(lcpl) < 0) ok = 0;
    return ok ? 0 : -1;
}

/* name's link exists, and so does every group on its path (H5Lexists fails on a missing intermediate group). */
static int link_exists(hid_t loc, const char *name)
{
    char part[512];
    for (const char *slash = strchr(name, '/'); slash; slash = strchr(slash + 1, '/')) {
        snprintf(part, sizeof part, "%.*s", (int)(slash - name), name);
        if (H5Lexists(loc, part, H5P_DEFAULT) <= 0) return 0;
    }
    return H5Lexists(loc, name, H5P_DEFAULT) > 0;
}

int h5_dataset_read_f32(hid_t loc, const char *name, int ndim, const hsize_t *want, float *out, int *found_ndim,
                        hsize_t *found)
{
    for (int i = 0; i < H5IO_MAX_DIMS; i++) found[i] = i ? 1 : 0;
    *found_ndim = -1;
    if (!link_exists(loc, name)) return H5IO_MISSING;
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
    int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    *found_ndim = nd;
    int rc = nd < 0 ? H5IO_UNREADABLE : 0;
    if (rc == 0 && (nd < 1 || nd > H5IO_MAX_DIMS || H5Sget_simple_extent_dims(space, found, NULL) < 0)) rc = H5IO_SHAPE;
    for (int i = 0; rc == 0 && i < nd; i++)
        if (nd != ndim || found[i] != want[i]) rc = H5IO_SHAPE;
    if (rc == 0 && H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0) rc = H5IO_UNREADABLE;
    if (space >= 0 && H5Sclose(space) < 0 && rc == 0) rc = H5IO_UNREADABLE;
    if (ds >= 0 && H5Dclose(ds) < 0 && rc == 0) rc = H5IO_UNREADABLE;
    return rc;
}
