/* Importance-sampled log-likelihood, active units and KL per unit over a data split (see eval.h); the rows come
 * through the plan's block loop (data.h), the noise through trainer_noise. */
#include "vamp/eval.h"
#include "vamp/ticker.h"
#include "vamp/check.h"
#include "vamp/rng.h"
#include "vamp/runlog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The importance-sampled log-likelihood of one image (global row `row`), its S samples in blocks of `block`
 * rows; the log-sum-exp streams in double. */
static double image_log_likelihood(vamp_trainer *t, const float *x, long row, int S, int block)
{
    vamp_model *m = &t->model;
    const size_t D = m->D;
    model_encode(m, &t->acts, t->params, x, 1);
    for (int r = 0; r < block; r++) memcpy(t->xbuf + (size_t)r * D, x, D * sizeof(float));
    double amax = -INFINITY, sum = 0.0; /* streaming log-sum-exp: sum of exp(w - amax) */
    for (int s0 = 0; s0 < S; s0 += block) {
        int R = S - s0 < block ? S - s0 : block;
        model_encode_broadcast(m, &t->acts, R);
        for (int r = 0; r < R; r++) /* sample s of image `row`: keyed, so any rank draws the same */
            trainer_noise(t, r, RNG_IS, (uint32_t)(s0 + r), (uint64_t)row);
        model_forward_encoded(m, &t->acts, t->params, t->xbuf, t->eps_top, t->eps1, R, t->pm, t->plv, 1.0f);
        for (int r = 0; r < R; r++) {
            double w = -((double)t->acts.re[r] + (double)t->acts.kl[r]); /* log p(x,z) - log q(z|x) */
            if (w > amax) {
                sum = sum * exp(amax - w) + 1.0;
                amax = w;
            } else {
                sum += exp(w - amax);
            }
        }
    }
    return amax + log(sum) - log((double)S);
}

/* Collective: every rank's n values (its rows) in split order into out on rank 0. */
static void gather_rows(const vamp_trainer *t, const float *mine, long n, float *out)
{
    int *counts = NULL, *displs = NULL;
    if (t->rank == 0) {
        counts = xmalloc((size_t)t->size * sizeof(int));
        displs = xmalloc((size_t)t->size * sizeof(int));
    }
    int cnt = (int)n;
    CHECK_MPI(MPI_Gather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, 0, t->comm));
    if (t->rank == 0)
        for (int r = 0, off = 0; r < t->size; r++) {
            displs[r] = off;
            off += counts[r];
        }
    CHECK_MPI(MPI_Gatherv(mine, cnt, MPI_FLOAT, out, counts, displs, MPI_FLOAT, 0, t->comm));
    free(counts);
    free(displs);
}

double eval_log_likelihood(vamp_trainer *t, const vamp_split *sp, int S, int block, float *per_image, int progress)
{
    const size_t D = t->model.D;
    if (block > t->acts.rows) block = t->acts.rows;
    const int nloc = sp->stripe_hi - sp->stripe_lo;
    const long nrows = sp->row_hi - sp->row_lo;
    double *stripe_sum = xcalloc((size_t)nloc * sizeof(double));
    float *mine = xmalloc((size_t)(nrows > 0 ? nrows : 1) * sizeof(float));
    trainer_prior_components(t);

    vamp_ticker tick;
    ticker_start(&tick, progress ? t->progress_every : 0.0, t->rank);
    for (vamp_block b = block_first(sp, 1); b.rows > 0; block_next(sp, &b)) { /* image by image */
        double ll = image_log_likelihood(t, sp->x + (size_t)(b.row - sp->row_lo) * D, b.row, S, block);
        mine[b.row - sp->row_lo] = (float)ll;
        stripe_sum[b.i] += ll;
        ticker_phase(&tick, "test log-likelihood", b.row - sp->row_lo + 1, nrows);
    }
    double total;
    reduce_chunk_scalars(&total, stripe_sum, nloc, sp->stripes, 1, t->comm);
    gather_rows(t, mine, nrows, per_image);
    free(mine);
    free(stripe_sum);
    return total / (double)sp->n;
}

void eval_active_units(vamp_trainer *t, const vamp_split *sp, int *active_top, int *active_z1)
{
    vamp_model *m = &t->model;
    const size_t D = m->D;
    const int Zt = m->Ztop, Z1 = m->Z1, Zall = Zt + Z1, B = t->cfg.eval_batch;
    const int nloc = sp->stripe_hi - sp->stripe_lo;
    /* per stripe: sum of means and sum of squared means of every unit */
    double *acc = xcalloc((size_t)nloc * 2 * Zall * sizeof(double));
    trainer_prior_components(t);
    memset(t->eps_top, 0, (size_t)t->acts.rows * Zt * sizeof(float)); /* eps = 0: z = its posterior mean */
    if (Z1) memset(t->eps1, 0, (size_t)t->acts.rows * Z1 * sizeof(float));
    for (vamp_block b = block_first(sp, B); b.rows > 0; block_next(sp, &b)) {
        double *a = acc + (size_t)b.i * 2 * Zall;
        model_forward(m, &t->acts, t->params, sp->x + (size_t)(b.row - sp->row_lo) * D, t->eps_top, t->eps1, b.rows,
                      t->pm, t->plv, 1.0f);
        for (int r = 0; r < b.rows; r++) {
            for (int u = 0; u < Zt; u++) {
                double v = t->acts.enc.mean[(size_t)r * Zt + u];
                a[u] += v;
                a[Zall + u] += v * v;
            }
            for (int u = 0; u < Z1; u++) {
                double v = t->acts.q1_mean[(size_t)r * Z1 + u];
                a[Zt + u] += v;
                a[Zall + Zt + u] += v * v;
            }
        }
    }
    double *tot = xmalloc((size_t)2 * Zall * sizeof(double));
    reduce_chunk_scalars(tot, acc, nloc, sp->stripes, 2 * Zall, t->comm);
    *active_top = 0;
    *active_z1 = 0;
    for (int u = 0; u < Zall; u++) {
        double mean = tot[u] / sp->n, var = tot[Zall + u] / sp->n - mean * mean;
        *(u < Zt ? active_top : active_z1) += var > VAMP_ACTIVE_THRESHOLD;
    }
    free(tot);
    free(acc);
}

static double log_n(double z, double m, double lv) { return -0.5 * (1.8378770664093453 + lv + (z - m) * (z - m) * exp(-lv)); }

/* log p_u(z) of the top latent's unit u: N(0,1) for the standard prior, else the 1-D mixture of the K
 * components' unit-u Gaussians (max-shifted log-sum-exp; lk: K scratch doubles). */
static double log_prior_unit(const vamp_trainer *t, double z, int u, double *lk)
{
    const int K = t->model.K, Zt = t->model.Ztop;
    if (!K) return log_n(z, 0.0, 0.0);
    double mx = -INFINITY, sum = 0.0;
    for (int k = 0; k < K; k++) {
        lk[k] = log_n(z, t->pm[(size_t)k * Zt + u], t->plv[(size_t)k * Zt + u]);
        if (lk[k] > mx) mx = lk[k];
    }
    for (int k = 0; k < K; k++) sum += exp(lk[k] - mx);
    return mx + log(sum / K);
}

void eval_kl_per_unit(vamp_trainer *t, const vamp_split *sp, double *kl_top, double *kl_z1)
{
    vamp_model *m = &t->model;
    const size_t D = m->D;
    const int Zt = m->Ztop, Z1 = m->Z1, Zall = Zt + Z1, K = m->K;
    const int nloc = sp->stripe_hi - sp->stripe_lo;
    double *acc = xcalloc((size_t)nloc * Zall * sizeof(double));
    double *lk = xmalloc((size_t)(K ? K : 1) * sizeof(double));
    const vamp_acts *A = &t->acts;
    trainer_prior_components(t);
    for (vamp_block b = block_first(sp, t->cfg.eval_batch); b.rows > 0; block_next(sp, &b)) {
        double *a = acc + (size_t)b.i * Zall;
        for (int r = 0; r < b.rows; r++) /* the same keyed noise as the test ELBO */
            trainer_noise(t, r, RNG_EPS_EVAL, 0, (uint64_t)(b.row + r));
        model_forward(m, &t->acts, t->params, sp->x + (size_t)(b.row - sp->row_lo) * D, t->eps_top, t->eps1, b.rows,
                      t->pm, t->plv, 1.0f);
        for (int r = 0; r < b.rows; r++) {
            for (int u = 0; u < Zt; u++) {
                size_t k0 = (size_t)r * Zt + u;
                double z = A->z_top[k0];
                a[u] += log_n(z, A->enc.mean[k0], A->enc.logvar[k0]) - log_prior_unit(t, z, u, lk);
            }
            for (int u = 0; u < Z1; u++) {
                size_t k1 = (size_t)r * Z1 + u;
                a[Zt + u] += log_n(A->z1[k1], A->q1_mean[k1], A->q1_logvar[k1]) -
                             log_n(A->z1[k1], A->pz1_mean[k1], A->pz1_logvar[k1]);
            }
        }
    }
    double *tot = xmalloc((size_t)Zall * sizeof(double));
    reduce_chunk_scalars(tot, acc, nloc, sp->stripes, Zall, t->comm);
    for (int u = 0; u < Zt; u++) kl_top[u] = tot[u] / sp->n;
    for (int u = 0; u < Z1 && kl_z1; u++) kl_z1[u] = tot[Zt + u] / sp->n;
    free(tot);
    free(lk);
    free(acc);
}
