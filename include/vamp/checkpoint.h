/* Parameter files: final.h5 (and, later, full training checkpoints). Files are written under a temporary name
 * in the same directory and renamed into place, so a crash never leaves a half-written file behind.
 * Format "vamp_mpi-params" version 1: /params/<torch name> for every tensor of the layout (float32, its
 * shape), root attributes format, version, config (the resolved INI text) and any named double values. */
#ifndef VAMP_CHECKPOINT_H
#define VAMP_CHECKPOINT_H

#include <mpi.h>
#include "vamp/layout.h"

#define VAMP_PARAMS_FORMAT "vamp_mpi-params"
#define VAMP_PARAMS_VERSION 1

typedef struct {
    const char *key;
    double value;
} vamp_attr;

/* An extra 1-D float dataset written beside /params (e.g. per-image test log-likelihoods). */
typedef struct {
    const char *name; /* path in the file, e.g. "eval/test_ll" */
    const float *data;
    size_t n;
} vamp_extra;

/* Collective (rank 0 writes, the others wait for the verdict). On failure every rank exits with status 1 and
 * a message naming the file; any previous file at `path` is left untouched. */
void params_write(const char *path, const vamp_layout *l, const float *params, const char *config_ini,
                  const vamp_attr *attrs, int nattrs, const vamp_extra *extra, int nextra, MPI_Comm comm);

/* Collective. Reads every tensor of the layout from `path` into params (all ranks). Missing file, foreign
 * format, missing tensor or wrong shape: vamp_input_error naming the file and tensor. */
void params_read(const char *path, const vamp_layout *l, float *params, MPI_Comm comm);

#endif
