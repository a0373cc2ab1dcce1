/* Mixture of diagonal Gaussians with uniform weights: the density behind the MoG prior and the VampPrior.
 * Direct O(B K Z) evaluation (exact differences, no |z|^2 - 2zm + |m|^2 cancellation) with one exp per component
 * and unit, not per sample, vectorised over samples: cheap next to the encoder passes, also for importance
 * sampling (built with -O3). */
#include "vamp/prior.h"
#include "vamp/vector.h"
#include "vamp/nn.h"

#include <math.h>

/* q (B) = sum_j (z_bj - m_j)^2 iv_j for one component, vectorised over the rows b: each row's sum still runs
 * over j in order, so the bits are those of the plain per-row loop. zt (Z,B) is z transposed. */
VECTOR_KERNEL static void component_quadratic(float *restrict q, const float *restrict zt, const float *m,
                                              const float *iv, int B, int Z)
{
    for (int b = 0; b < B; b++) q[b] = 0.0f;
    for (int j = 0; j < Z; j++) {
        const float *zj = zt + (size_t)j * B;
        const float mj = m[j], ivj = iv[j];
        for (int b = 0; b < B; b++) {
            float d = zj[b] - mj;
            q[b] += d * d * ivj;
        }
    }
}

void mixture_log_prob_forward(float *logp, float *resp, const float *z, const float *pm, const float *plv, int B,
                              int K, int Z)
{
    const float logK = logf((float)K);
    float iv[Z];      /* exp(-logvar) of one component: Z exponentials per component, not per sample */
    float zt[Z * B];  /* z transposed; B is at most a block of rows (tens of KB) */
    float q[B];
    for (int b = 0; b < B; b++)
        for (int j = 0; j < Z; j++) zt[(size_t)j * B + b] = z[(size_t)b * Z + j];
    for (int k = 0; k < K; k++) {
        const float *m = pm + (size_t)k * Z, *lv = plv + (size_t)k * Z;
        float c = 0.0f;
        for (int j = 0; j < Z; j++) {
            iv[j] = expf(-lv[j]);
            c += VAMP_LOG_2PI + lv[j];
        }
        component_quadratic(q, zt, m, iv, B, Z);
        for (int b = 0; b < B; b++) resp[(size_t)b * K + k] = -0.5f * (c + q[b]); /* log N(z_b; k) for now */
    }
    for (int b = 0; b < B; b++) { /* stable log-sum-exp, then the responsibilities in place */
        float *a = resp + (size_t)b * K;
        float amax = -INFINITY;
        for (int k = 0; k < K; k++)
            if (a[k] > amax) amax = a[k];
        double sum = 0.0;
        for (int k = 0; k < K; k++) {
            a[k] = vamp_expf_or_zero(a[k] - amax);
            sum += a[k];
        }
        float inv = (float)(1.0 / sum);
        for (int k = 0; k < K; k++) a[k] *= inv;
        logp[b] = amax + (float)log(sum) - logK;
    }
}

void mixture_log_prob_backward(float *dz, float *dpm, float *dplv, const float *w, const float *z,
                               const float *pm, const float *plv, const float *resp, int B, int K, int Z)
{
    float iv[Z];
    for (int k = 0; k < K; k++) {
        const float *m = pm + (size_t)k * Z, *lv = plv + (size_t)k * Z;
        for (int j = 0; j < Z; j++) iv[j] = expf(-lv[j]);
        for (int b = 0; b < B; b++) {
            float wr = w[b] * resp[(size_t)b * K + k];
            if (wr == 0.0f) continue;
            const float *zb = z + (size_t)b * Z;
            for (int j = 0; j < Z; j++) {
                float d = zb[j] - m[j];
                if (dz) dz[(size_t)b * Z + j] -= wr * d * iv[j];
                if (dpm) dpm[(size_t)k * Z + j] += wr * d * iv[j];
                if (dplv) dplv[(size_t)k * Z + j] += wr * (-0.5f + 0.5f * d * d * iv[j]);
            }
        }
    }
}
