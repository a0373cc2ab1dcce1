/* Pictures of a model for people: PNG grids (libpng) of samples from the prior, test reconstructions beside
 * their originals and the VampPrior's pseudo-inputs, plus the same arrays in pictures.h5 for analysis.
 * It does not decide when to draw (epochs.c and main.c do). */
#ifndef VAMP_PICTURES_H
#define VAMP_PICTURES_H

#include <stddef.h>
#include "vamp/train.h"

/* Not collective. Writes n images (n, h*w) with values in [0,1] as a grid with `cols` columns and a 1-pixel
 * gap, 8-bit grey PNG, atomically (temporary name, then rename). Returns 0, or -1 with errno set. */
int png_write_grid(const char *path, const float *images, int n, int h, int w, int cols);

/* Collective (rank 0 computes and writes; the prior components are computed by all). Writes into dir:
 * <prefix>samples.png (100 samples: component k ~ U{1..K} for mixture priors, z ~ its Gaussian, x = mean of
 * p(x|z); the pixelhvae draws it pixel by pixel, see model_decode), <prefix>reconstructions.png (pairs of rows: test
 * images and their reconstructions from the posterior means; pixelhvae: drawn pixel by pixel from them), <prefix>pseudo_inputs.png (the first 100 pseudo-inputs, vampprior only) and <prefix>pictures.h5 with
 * datasets samples, originals, reconstructions, pseudo_inputs. A write failure is an error (exit 1). */
void pictures_write(vamp_trainer *t, const vamp_data *data, const char *dir, const char *prefix);

#endif
