/* The ending shared by training and --eval: the test-set evaluation of the current parameters (ELBO, active
 * units, KL per unit, importance-sampled log-likelihood) and where it goes: final.h5 / eval.h5 with the
 * parameters, the pictures, and the `key = value` lines printed last. It does not train. */
#ifndef VAMP_RESULTS_H
#define VAMP_RESULTS_H

#include "vamp/checkpoint.h"
#include "vamp/train.h"

/* Collective. Evaluates tr->params on the test set, writes them to path with the attributes test_ll,
 * test_elbo, test_re, test_kl, active_units_z1, active_units_z2 followed by `more` (at most 10) and the arrays
 * eval/kl_per_unit_z1, eval/kl_per_unit_z2 (hvae), eval/test_ll (eval.samples > 0); then the pictures into
 * pic_dir with pic_prefix (unless eval.pictures = no), and prints the results. */
void results_write(vamp_trainer *tr, const vamp_data *data, const char *ini, const vamp_attr *more, int nmore,
                   const char *path, const char *pic_dir, const char *pic_prefix);

/* Collective (rank 0 reads, every rank gets the verdict). Whether the run whose parameter file is `path`
 * (final.h5) is finished for this configuration: the file exists, its config attribute is `ini` exactly, and
 * training is over (`over`: the resumed checkpoint says so; or that checkpoint's `step` is not past the steps the
 * file records). If so, rank 0 prints the file's results as results_write and training do (the same `key = value`
 * lines) and 1 is returned; else 0. Writes nothing. */
int results_saved(const vamp_trainer *tr, const char *path, const char *ini, long step, int over);

/* Collective. For a finished run (results_saved): if dir holds no pictures.h5, the last file results_write
 * writes, a stop came while the pictures were drawn; draws them from the parameters in path (final.h5), as the
 * uninterrupted run would have. Nothing with eval.pictures = no. */
void results_finish_pictures(vamp_trainer *tr, const vamp_data *data, const char *path, const char *dir);

#endif
