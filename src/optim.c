/* Adam / AdamNormGrad over the tensor table (see optim.h); the reference's formula: eps is added to sqrt(v)
 * and the bias corrections fold into the step size. */
#include "vamp/optim.h"

#include <math.h>

void adam_init(vamp_adam *o, vamp_optimizer kind, float lr)
{
    o->kind = kind;
    o->lr = lr;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->step = 0;
}

void adam_step(vamp_adam *o, const vamp_layout *l, float *params, float *grads, float *m, float *v)
{
    o->step++;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step), bc2 = 1.0 - pow(o->beta2, (double)o->step);
    const float step_size = (float)(o->lr * sqrt(bc2) / bc1);
    const float b1 = o->beta1, b2 = o->beta2;
    for (int t = 0; t < l->n; t++) {
        const size_t off = l->t[t].offset, n = l->t[t].size;
        float *g = grads + off, *p = params + off, *mt = m + off, *vt = v + off;
        if (o->kind == OPT_ADAMNORMGRAD) { /* g / (||g||_2 + 1e-7), per tensor */
            double ss = 0.0;
            for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
            float inv = (float)(1.0 / (sqrt(ss) + 1e-7));
            for (size_t i = 0; i < n; i++) g[i] *= inv;
        }
        for (size_t i = 0; i < n; i++) {
            mt[i] = b1 * mt[i] + (1.0f - b1) * g[i];
            vt[i] = b2 * vt[i] + (1.0f - b2) * g[i] * g[i];
            p[i] -= step_size * mt[i] / (sqrtf(vt[i]) + o->eps);
        }
    }
}
