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


/* ---- training checkpoints ----------------------------------------------------------------------------------
 * Format "vamp_mpi-checkpoint" version 1, written collectively with parallel HDF5 (each rank writes its rows of
 * every tensor): groups /params, /adam_m, /adam_v, /best with every tensor by name; attributes format,
 * version, config (resolved INI), step, adam_step, the vamp_progress fields, and a CRC-32 of each buffer.
 * Files are dir/ckpt-<step>.h5; dir/latest names the newest, dir/best the one written when the validation loss
 * last improved. Written under a temporary name, renamed into place by rank 0 after every rank closed it. */
#include "vamp/train.h"

#define VAMP_CKPT_FORMAT "vamp_mpi-checkpoint"
#define VAMP_CKPT_VERSION 1
#define VAMP_CKPT_MAX 256

/* Collective. Writes a checkpoint of t and p into t->cfg.run_dir, keeps the newest checkpoint.keep files plus
 * the best. On failure (e.g. disk full) every rank exits with status 1 and a message naming the file; earlier
 * checkpoints are untouched. Returns after the file is in place. */
void checkpoint_write(const vamp_trainer *t, const vamp_progress *p, const char *config_ini, int is_best);

/* Collective. Loads path into t (params, Adam moments and step, best) and p. Returns 0, or -1 with a message
 * in err (truncated, not a checkpoint, checksum mismatch, tensor missing or of another shape, or a model
 * that differs from t's: the differing config keys are named). Nothing in t is changed on failure. */
int checkpoint_read(const char *path, vamp_trainer *t, vamp_progress *p, char *err, size_t errlen);

/* Not collective. Checkpoint files of dir, newest first (the one `latest` names, then by step, descending).
 * Returns how many were found (at most max). */
int checkpoint_list(const char *dir, char (*paths)[1100], int max);

#endif
