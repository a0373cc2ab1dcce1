/* Adam / AdamNormGrad over the tensor table (see optim.h), written as the reference's PyTorch code computes it:
 * eps is added to sqrt(v) and both bias corrections fold into one step size (torch.optim.Adam of 2017; today's
 * torch.optim.Adam adds eps after dividing by sqrt(1 - beta2^t) instead). Elementwise work is float like the
 * reference's float32 tensors; the norm and the step size are double. No weight decay, no AMSGrad. */
#include "vamp/optim.h"
#include "vamp/vector.h"

#include <math.h>

/* sum of g^2 in double, in LANES interleaved partial sums added in a fixed order: vectorisable, and the
 * same result on every machine (the order does not depend on the vector width). */
enum { LANES = 8 };
VECTOR_KERNEL static double sum_squares(const float *g, size_t n)
{
    double part[LANES] = {0};
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) part[k] += (double)g[i + k] * g[i + k];
    for (; i < n; i++) part[i % LANES] += (double)g[i] * g[i];
    double ss = 0.0;
    for (int k = 0; k < LANES; k++) ss += part[k];
    return ss;
}

/* One pass over a tensor: g / den (AdamNormGrad's normalised gradient; den = 1 for Adam, and x / 1 is x exactly),
 * then the moments and the parameter, in the order of the two-pass form (normalise g in place, then update), so
 * the same bits with one read of g instead of a read, a write and a read. */
VECTOR_KERNEL static void adam_update(float *restrict p, const float *restrict g, float *restrict mt,
                                      float *restrict vt, size_t n, float den, float b1, float c1, float b2, float c2,
                                      float step_size, float eps)
{
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] / den;
        mt[i] = b1 * mt[i] + c1 * gi;
        vt[i] = b2 * vt[i] + c2 * gi * gi;
        p[i] -= step_size * mt[i] / (sqrtf(vt[i]) + eps);
    }
}

void adam_init(vamp_adam *o, vamp_optimizer kind, float lr)
{
    o->kind = kind;
    o->lr = lr;
    o->eps = 1e-8f;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->step = 0;
}

void adam_step_tensors(vamp_adam *o, const vamp_layout *l, int t0, int t1, float *params, const float *grads,
                       float *m, float *v, size_t base)
{
    o->step++;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step), bc2 = 1.0 - pow(o->beta2, (double)o->step);
    const float step_size = (float)(o->lr * sqrt(bc2) / bc1);
    /* torch: exp_avg.mul_(beta1).add_(1 - beta1, grad) casts each Python double to float on its own */
    const float b1 = (float)o->beta1, c1 = (float)(1.0 - o->beta1);
    const float b2 = (float)o->beta2, c2 = (float)(1.0 - o->beta2);
    const float eps = o->eps;
    for (int t = t0; t < t1; t++) {
        if (l->t[t].buffer) continue; /* not trained: BatchNorm's running statistics */
        const size_t off = l->t[t].offset, n = l->t[t].size;
        const float *g = grads + (off - base); /* (n) */
        float *p = params + off, *mt = m + (off - base), *vt = v + (off - base);
        /* AdamNormGrad: grad / (torch.norm(grad, 2) + 1e-7), per tensor */
        const float den = o->kind == OPT_ADAMNORMGRAD ? (float)sqrt(sum_squares(g, n)) + 1e-7f : 1.0f;
        adam_update(p, g, mt, vt, n, den, b1, c1, b2, c2, step_size, eps);
    }
}
