/* Rank 0's output files and HDF5 attribute I/O, in one place:
 *  - io_save / io_put: every file vamp_mpi writes reaches the disk here: under a temporary name, fsync'd, then
 *    renamed into place, so a crash or a full disk never leaves a half-written file under the real name;
 *  - io_agree_or_exit / io_agree_any: the verdict on a write, the same on every rank (a collective failure is
 *    decided collectively: every rank makes the same MPI calls whatever happened to the file);
 *  - HDF5 files built in memory (core driver, no backing store) whose image goes through io_save / io_put. Why:
 *    an I/O error inside HDF5's own flush or close (a full disk) leaves HDF5 1.10 in a state where MPI_Finalize
 *    crashes, and in a file opened collectively it desynchronises the ranks; an in-memory file cannot fail that
 *    way, and its image is an ordinary buffer whose write() either succeeds or names the error;
 *  - attribute writers and readers, float datasets.
 * The HDF5 helpers return 0 or -1 (a status, never an abort) because a file that cannot be built or read is a
 * verdict for the caller to word. It does not decide what goes into the files. */
#ifndef VAMP_H5IO_H
#define VAMP_H5IO_H

#include <hdf5.h>
#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

/* ---- files put in place atomically (not collective) ---- */

/* Writes n bytes to `tmp` (created or truncated), fsyncs and closes it. `pause_s` > 0: a test hook that pauses
 * half-way through the write (testhooks.h). Returns 0, or -1 with errno set; on failure `tmp` is removed. */
int io_save(const char *tmp, const void *bytes, size_t n, unsigned pause_s);

/* io_save to `tmp` (NULL: "<path>.tmp"), then rename over `path`. Returns 0, or -1 with errno set; on failure
 * `path` is untouched and no temporary file is left. */
int io_put(const char *path, const char *tmp, const void *bytes, size_t n);

/* ---- the verdict on a write (collective) ---- */

#define VAMP_MSG_LEN 2048 /* a verdict message, broadcast whole */

/* Rank 0's `msg` ("" = success; ignored on the other ranks) becomes every rank's: if it is not empty, every rank
 * exits with `status` (1: a failed write, VAMP_EXIT_INPUT: an unusable run directory), rank 0 printing it. */
void io_agree_or_exit(MPI_Comm comm, const char *msg, int status);

/* Every rank's own verdict `why` ("" = success) becomes one: returns the lowest rank whose `why` is not empty (or
 * the communicator size if none), and that rank's `why` is copied into every rank's (why: VAMP_MSG_LEN bytes). */
int io_agree_any(MPI_Comm comm, char *why);

/* ---- HDF5 files in memory (not collective) ---- */

/* A new, empty in-memory HDF5 file, or -1. */
hid_t h5file_create(void);

/* Closes f (always) and io_save's its image to `tmp`. Returns 0, or -1 with errno set (tmp removed). */
int h5file_save(hid_t f, const char *tmp, unsigned pause_s);

/* Closes f (always) and io_put's its image to `path` (tmp: as io_put). Returns 0, or -1 with errno set. */
int h5file_put(hid_t f, const char *path, const char *tmp);

/* ---- attributes and datasets: 0, or -1 if an HDF5 call failed (or, reading: absent, another type) ---- */

int h5_attr_utf8(hid_t loc, const char *name, const char *value);   /* variable-length UTF-8 (h5py: str) */
int h5_attr_double(hid_t loc, const char *name, double value);
int h5_attr_u32(hid_t loc, const char *name, uint32_t value);
int h5_attr_i32(hid_t loc, const char *name, int32_t value);
int h5_attr_i64(hid_t loc, const char *name, int64_t value);

int h5_attr_read_double(hid_t loc, const char *name, double *out);
int h5_attr_read_u32(hid_t loc, const char *name, uint32_t *out);
/* A string attribute (variable-length, as written now, or fixed-length, as in files of earlier versions) in a
 * new buffer (the caller frees it); NULL if absent or not a string. */
char *h5_attr_read_string(hid_t loc, const char *name);

/* A float32 dataset of rank 1..4 at `name` (intermediate groups are created). */
int h5_dataset_f32(hid_t loc, const char *name, int ndim, const hsize_t *dims, const float *data);

/* h5_dataset_read_f32's verdicts besides 0 */
#define H5IO_MISSING (-1)  /* no such dataset (or group on its path) */
#define H5IO_SHAPE (-2)    /* another rank or shape: *found_ndim and found[] say which */
#define H5IO_UNREADABLE (-3)
#define H5IO_MAX_DIMS 4 /* the largest rank h5_dataset_read_f32 reads (a Conv2d weight) */
/* Reads the float dataset `name` (rank ndim, 1 .. H5IO_MAX_DIMS, `want` = its ndim dims) into out. found
 * (H5IO_MAX_DIMS) receives the dims found, 1 beyond the rank found. */
int h5_dataset_read_f32(hid_t loc, const char *name, int ndim, const hsize_t *want, float *out, int *found_ndim,
                        hsize_t *found);

#endif
