/* Parameter files (final.h5, eval.h5) and training checkpoints. Rank 0 builds every file in memory and writes it
 * under a temporary name that is renamed into place only when the whole file is on disk, so a crash or a full
 * disk never leaves a half-written file under the real name; the other ranks take part only through MPI calls
 * that every rank makes whatever happens to the file (see h5file.h for why not parallel HDF5).
 * Format "vamp_mpi-params" version 1: /params/<torch name> for every tensor of the layout (float32, its
 * shape), root attributes format and config (UTF-8 strings: h5py reads str), version (integer), the build
 * provenance and the named values (counts as integers, the rest as doubles). Files written before these types were
 * settled hold format and config as fixed-length strings and every number as a double: both read the same. */
#ifndef VAMP_CHECKPOINT_H
#define VAMP_CHECKPOINT_H

#include <mpi.h>
#include <stdint.h>
#include "vamp/layout.h"

#define VAMP_PARAMS_FORMAT "vamp_mpi-params"
#define VAMP_PARAMS_VERSION 1

typedef struct {
    const char *key;
    double value;
    int integer; /* 1: stored as a 64-bit integer attribute (a count), else as a double */
} vamp_attr;

/* An extra 1-D float dataset written beside /params (e.g. per-image test log-likelihoods). */
typedef struct {
    const char *name; /* path in the file, e.g. "eval/test_ll" */
    const float *data;
    size_t n;
} vamp_extra;

/* Collective (rank 0 writes, the others wait for the verdict). On failure every rank exits with status 1 and
 * a message naming the file; any previous file at `path` is left untouched and no temporary file remains. */
void params_write(const char *path, const vamp_layout *l, const float *params, const char *config_ini,
                  const vamp_attr *attrs, int nattrs, const vamp_extra *extra, int nextra, MPI_Comm comm);

/* Collective. Reads every tensor of the layout from `path` into params (all ranks). Missing file, foreign
 * format, missing tensor or wrong shape: vamp_input_error naming the file and tensor. */
void params_read(const char *path, const vamp_layout *l, float *params, MPI_Comm comm);


/* ---- training checkpoints ----------------------------------------------------------------------------------
 * Format "vamp_mpi-checkpoint" version 2: groups /params, /adam_m, /adam_v, /best with every tensor by name;
 * root attributes format, version, config (resolved INI), the build provenance, the progress record (step,
 * adam_step, the vamp_progress fields, the identity of the data: see the field table in checkpoint.c), a
 * CRC-32 of each group's buffer (crc32_<group>) and crc32_attrs, a CRC-32 over every other root attribute
 * (name, type class and stored bytes, in name order). Version 1 files (CRCs of the buffers only) are refused.
 * Files are dir/ckpt-<step>.h5; dir/latest names the newest, dir/best the one written when the validation loss
 * last improved. Temporary name while written: dir/ckpt-<step>.h5.tmp. */
#include "vamp/data.h"
#include "vamp/train.h"

#define VAMP_CKPT_FORMAT "vamp_mpi-checkpoint"
#define VAMP_CKPT_VERSION 2
#define VAMP_CKPT_MAX 256

/* What identifies the data a run trains on (a checkpoint records it; a resume must find the same). The CRCs are
 * of the values as read (float32, rows in order, before any binarisation), combined over ranks, so they do not
 * depend on the rank count. */
typedef struct {
    long rows[3];     /* train, valid, test rows used (after data.*_limit) */
    long pixels;      /* D */
    uint32_t crc[3];  /* CRC-32 of each split's values */
} vamp_data_id;

/* Collective. */
void checkpoint_data_id(vamp_data_id *id, const vamp_data *d, MPI_Comm comm);

/* Collective. Writes a checkpoint of t and p into t->cfg.run_dir, keeps the newest checkpoint.keep files plus
 * the best. On failure (e.g. disk full, on any rank) every rank exits with status 1 and a message naming the
 * file; earlier checkpoints are untouched and the temporary file is removed. Returns after the file is in place. */
void checkpoint_write(const vamp_trainer *t, const vamp_progress *p, const vamp_data_id *id, const char *config_ini,
                      int is_best);

/* checkpoint_read's verdicts besides 0 */
#define VAMP_CKPT_DAMAGED (-1) /* unreadable, truncated, corrupt (checksum, range): an older checkpoint may serve */
#define VAMP_CKPT_REFUSED (-2) /* intact but not for this run: other model/data-order keys, another data file, an
                                  older format. The user decides; falling back would silently go elsewhere. */

/* Collective (rank 0 reads and checks, then broadcasts the verdict and the buffers). Loads path into t (params,
 * Adam moments of the tensors each rank owns, Adam step, best) and p. Returns 0, or VAMP_CKPT_DAMAGED /
 * VAMP_CKPT_REFUSED with a message naming the file and the culprit (attribute, key, dataset) in err, the same
 * on every rank. Nothing in t or p is changed on failure. */
int checkpoint_read(const char *path, vamp_trainer *t, vamp_progress *p, const vamp_data_id *id, char *err,
                    size_t errlen);

/* Not collective. Checkpoint files of dir, newest first (the one `latest` names, then by step, descending).
 * Returns how many were found (at most max). Temporary files (".tmp") are never listed. */
int checkpoint_list(const char *dir, char (*paths)[VAMP_FILE_PATH_LEN], int max);

#endif
