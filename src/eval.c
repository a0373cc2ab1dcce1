/* Importance-sampled log-likelihood and active units over a data split (see eval.h). */
#include "vamp/eval.h"
#include "vamp/check.h"
#include "vamp/rng.h"
#include "vamp/runlog.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double eval_log_likelihood(vamp_trainer *t, const vamp_split *sp, int S, int block, float *per_image, int progress)
{
    vamp_model *m = &t->model;
    const size_t D = m->D;
    const int Zt = m->Ztop, Z1 = m->Z1;
    if (block > t->acts.rows) block = t->acts.rows;
    const int nloc = sp->stripe_hi - sp->stripe_lo;
    const long nrows = sp->row_hi - sp->row_lo;
    double *stripe_sum = xcalloc((size_t)nloc * sizeof(double));
    float *mine = xmalloc((size_t)(nrows > 0 ? nrows : 1) * sizeof(float));
    trainer_prior_components(t);

    double t0 = wall_seconds(), last = t0;
    for (long row = sp->row_lo; row < sp->row_hi; row++) {
        const float *x = sp->x + (size_t)(row - sp->row_lo) * D;
        model_encode(m, &t->acts, t->params, x, 1);
        for (int r = 0; r < block; r++) memcpy(t->xbuf + (size_t)r * D, x, D * sizeof(float));
        double amax = -INFINITY, sum = 0.0; /* streaming log-sum-exp: sum of exp(w - amax) */
        for (int s0 = 0; s0 < S; s0 += block) {
            int R = S - s0 < block ? S - s0 : block;
            model_encode_broadcast(m, &t->acts, R);
            for (int r = 0; r < R; r++) { /* sample s of image `row`: keyed, so any rank draws the same */
                rng_normal_fill(t->eps_top + (size_t)r * Zt, (size_t)Zt, t->cfg.seed, RNG_IS, (uint32_t)(s0 + r),
                                (uint64_t)row, 0);
                if (Z1)
                    rng_normal_fill(t->eps1 + (size_t)r * Z1, (size_t)Z1, t->cfg.seed, RNG_IS, (uint32_t)(s0 + r),
                                    (uint64_t)row, (uint32_t)Zt);
            }
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
        double ll = amax + log(sum) - log((double)S);
        mine[row - sp->row_lo] = (float)ll;
        int s = sp->stripe_lo;
        while (s + 1 < sp->stripe_hi && row >= stripe_start(sp->n, sp->stripes, s + 1)) s++;
        stripe_sum[s - sp->stripe_lo] += ll;
        double now = wall_seconds();
        if (progress && now - last > 10.0) {
            last = now;
            long done = row - sp->row_lo + 1;
            double rate = done / (now - t0);
            log0(t->comm, "  test log-likelihood: %ld of %ld images on rank 0 (%.1f images/s per rank, ETA %.0f s)\n",
                 done, nrows, rate, (nrows - done) / rate);
        }
    }
    double total;
    reduce_chunk_scalars(&total, stripe_sum, nloc, 1, t->comm);

    { /* gather every rank's rows in split order onto rank 0 */
        int *counts = NULL, *displs = NULL;
        if (t->rank == 0) {
            counts = xmalloc((size_t)t->size * sizeof(int));
            displs = xmalloc((size_t)t->size * sizeof(int));
        }
        int cnt = (int)nrows;
        CHECK_MPI(MPI_Gather(&cnt, 1, MPI_INT, counts, 1, MPI_INT, 0, t->comm));
        if (t->rank == 0)
            for (int r = 0, off = 0; r < t->size; r++) {
                displs[r] = off;
                off += counts[r];
            }
        CHECK_MPI(MPI_Gatherv(mine, cnt, MPI_FLOAT, per_image, counts, displs, MPI_FLOAT, 0, t->comm));
        free(counts);
        free(displs);
    }
    free(mine);
    free(stripe_sum);
    return total / (double)sp->n;
}

void eval_active_units(vamp_trainer *t, const vamp_split *sp, int *active_top, int *active_z1, double *var_top,
                       double *var_z1)
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
    for (int i = 0; i < nloc; i++) {
        int s = sp->stripe_lo + i;
        long s0 = stripe_start(sp->n, sp->stripes, s), s1 = stripe_start(sp->n, sp->stripes, s + 1);
        double *a = acc + (size_t)i * 2 * Zall;
        for (long r0 = s0; r0 < s1; r0 += B) {
            int R = (int)(s1 - r0 < B ? s1 - r0 : B);
            model_forward(m, &t->acts, t->params, sp->x + (size_t)(r0 - sp->row_lo) * D, t->eps_top, t->eps1, R,
                          t->pm, t->plv, 1.0f);
            for (int r = 0; r < R; r++) {
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
    }
    double *tot = xmalloc((size_t)2 * Zall * sizeof(double));
    reduce_chunk_scalars(tot, acc, nloc, 2 * Zall, t->comm);
    *active_top = 0;
    *active_z1 = 0;
    for (int u = 0; u < Zall; u++) {
        double mean = tot[u] / sp->n, var = tot[Zall + u] / sp->n - mean * mean;
        int active = var > VAMP_ACTIVE_THRESHOLD;
        if (u < Zt) {
            *active_top += active;
            if (var_top) var_top[u] = var;
        } else {
            *active_z1 += active;
            if (var_z1) var_z1[u - Zt] = var;
        }
    }
    free(tot);
    free(acc);
}

static double log_n(double z, double m, double lv) { return -0.5 * (1.8378770664093453 + lv + (z - m) * (z - m) * exp(-lv)); }

void eval_kl_per_unit(vamp_trainer *t, const vamp_split *sp, double *kl_top, double *kl_z1)
{
    vamp_model *m = &t->model;
    const size_t D = m->D;
    const int Zt = m->Ztop, Z1 = m->Z1, Zall = Zt + Z1, B = t->cfg.eval_batch, K = m->K;
    const int nloc = sp->stripe_hi - sp->stripe_lo;
    double *acc = xcalloc((size_t)nloc * Zall * sizeof(double));
    double *lk = xmalloc((size_t)(K ? K : 1) * sizeof(double));
    trainer_prior_components(t);
    for (int i = 0; i < nloc; i++) {
        int s = sp->stripe_lo + i;
        long s0 = stripe_start(sp->n, sp->stripes, s), s1 = stripe_start(sp->n, sp->stripes, s + 1);
        double *a = acc + (size_t)i * Zall;
        for (long r0 = s0; r0 < s1; r0 += B) {
            int R = (int)(s1 - r0 < B ? s1 - r0 : B);
            for (int r = 0; r < R; r++) { /* the same keyed noise as the test ELBO */
                rng_normal_fill(t->eps_top + (size_t)r * Zt, (size_t)Zt, t->cfg.seed, RNG_EPS_EVAL, 0, (uint64_t)(r0 + r), 0);
                if (Z1)
                    rng_normal_fill(t->eps1 + (size_t)r * Z1, (size_t)Z1, t->cfg.seed, RNG_EPS_EVAL, 0, (uint64_t)(r0 + r),
                                    (uint32_t)Zt);
            }
            model_forward(m, &t->acts, t->params, sp->x + (size_t)(r0 - sp->row_lo) * D, t->eps_top, t->eps1, R,
                          t->pm, t->plv, 1.0f);
            const vamp_acts *A = &t->acts;
            for (int r = 0; r < R; r++) {
                for (int u = 0; u < Zt; u++) {
                    size_t k0 = (size_t)r * Zt + u;
                    double z = A->z_top[k0], lq = log_n(z, A->enc.mean[k0], A->enc.logvar[k0]), lp;
                    if (!K) {
                        lp = log_n(z, 0.0, 0.0);
                    } else { /* log of the 1-D mixture marginal, max-shifted */
                        double mx = -INFINITY, sum = 0.0;
                        for (int k = 0; k < K; k++) {
                            lk[k] = log_n(z, t->pm[(size_t)k * Zt + u], t->plv[(size_t)k * Zt + u]);
                            if (lk[k] > mx) mx = lk[k];
                        }
                        for (int k = 0; k < K; k++) sum += exp(lk[k] - mx);
                        lp = mx + log(sum / K);
                    }
                    a[u] += lq - lp;
                }
                for (int u = 0; u < Z1; u++) {
                    size_t k1 = (size_t)r * Z1 + u;
                    a[Zt + u] += log_n(A->z1[k1], A->q1_mean[k1], A->q1_logvar[k1]) -
                                 log_n(A->z1[k1], A->pz1_mean[k1], A->pz1_logvar[k1]);
                }
            }
        }
    }
    double *tot = xmalloc((size_t)Zall * sizeof(double));
    reduce_chunk_scalars(tot, acc, nloc, Zall, t->comm);
    for (int u = 0; u < Zt; u++) kl_top[u] = tot[u] / sp->n;
    for (int u = 0; u < Z1 && kl_z1; u++) kl_z1[u] = tot[Zt + u] / sp->n;
    free(tot);
    free(lk);
    free(acc);
}
