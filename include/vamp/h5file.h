/* HDF5 output files built in memory and put on disk with plain POSIX writes, and small helpers to fill them.
 * Why: an I/O error inside HDF5's own flush or close (a full disk) leaves HDF5 1.10 in a state where
 * MPI_Finalize crashes, and in a file opened collectively it desynchronises the ranks (one waits in a barrier,
 * another in an allreduce: the job hangs). An in-memory file (core driver, no backing store) cannot fail that
 * way; its image is then an ordinary buffer whose write() either succeeds or names the error.
 * Not collective: one process builds and writes a file. It does not decide what goes into the files. */
#ifndef VAMP_H5FILE_H
#define VAMP_H5FILE_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>

/* A new, empty in-memory HDF5 file, or -1. */
hid_t h5file_create(void);

/* Closes f (always) and writes its image to `tmp` (created or truncated, then fsync'd). `pause_s` > 0: a test
 * hook that pauses half-way through the write. Returns 0, or -1 with errno set; on failure `tmp` is removed. */
int h5file_save(hid_t f, const char *tmp, unsigned pause_s);

/* h5file_save to "<path>.tmp", then rename over `path`. Returns 0, or -1 with errno set; on failure `path` is
 * untouched and no temporary file is left. */
int h5file_put(hid_t f, const char *path);

/* Attributes and datasets of an in-memory file (each returns 0, or -1 if an HDF5 call failed). */
int h5_attr_string(hid_t loc, const char *name, const char *value); /* fixed-length, NUL-terminated */
int h5_attr_double(hid_t loc, const char *name, double value);
int h5_attr_u32(hid_t loc, const char *name, uint32_t value);
/* A float32 dataset of rank 1..3 at `name` (intermediate groups are created). */
int h5_dataset_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *data);

#endif
