/* Evaluation of a trained model beyond the ELBO: the importance-sampled test log-likelihood and active units.
 * Images are split over ranks by the fixed stripes of their split, partial sums are reduced in stripe order,
 * so results do not depend on the rank count. It does not train or write files. */
#ifndef VAMP_EVAL_H
#define VAMP_EVAL_H

#include "vamp/train.h"

/* Collective. log p(x) ~ logsumexp_s [log p(x, z_s) - log q(z_s|x)] - log S, z_s ~ q(z|x), for every image
 * of the split: x is encoded once, its S samples are processed in blocks of `block` rows (block <= the
 * trainer's activation rows), the log-sum-exp is accumulated in double. Returns the mean over images (nats).
 * per_image: on rank 0, (n) floats that receive each image's estimate in split order (other ranks: ignored). progress: rank 0 prints images done, rate and ETA about every 10 s. */
double eval_log_likelihood(vamp_trainer *t, const vamp_split *sp, int S, int block, float *per_image, int progress);

/* Collective. Active units (Burda et al. 2016): unit u is active if Cov_x(E_q[z_u | x]) > 0.01 over the split.
 * For the hvae, E_q[z1 | x] is the mean of q(z1 | x, z2 = E_q[z2 | x]). Counts per latent layer:
 * *active_top (z for vae, z2 for hvae) and *active_z1 (0 for vae). */
void eval_active_units(vamp_trainer *t, const vamp_split *sp, int *active_top, int *active_z1);

#define VAMP_ACTIVE_THRESHOLD 0.01

/* Collective. KL per latent unit over the split, one-sample Monte Carlo per image with z ~ q:
 * E[log q(z_u | .) - log p_u(z_u | .)], where p_u is the prior's marginal in unit u (standard: N(0,1);
 * mog / vampprior: the 1-D mixture of the K components' unit-u Gaussians; hvae z1: p(z1_u | z2)). For the
 * factorised priors these sum to the KL term; for mixtures the marginals show which units the prior uses.
 * kl_top (Ztop) and kl_z1 (Z1, hvae; may be NULL for vae) receive the means over images. */
void eval_kl_per_unit(vamp_trainer *t, const vamp_split *sp, double *kl_top, double *kl_z1);

#endif
