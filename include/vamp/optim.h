/* Adam, optionally with the reference's per-tensor gradient normalisation (AdamNormGrad: g / (||g||_2 + 1e-7)
 * for each parameter tensor) applied to the already-reduced gradient. One loop over the layout; the same
 * result on every rank because every rank sees the same gradient. */
#ifndef VAMP_OPTIM_H
#define VAMP_OPTIM_H

#include "vamp/config.h"
#include "vamp/layout.h"

typedef struct {
    vamp_optimizer kind;
    float lr, eps;
    double beta1, beta2; /* double like the reference's Python floats: 1 - beta and beta^step come from these */
    long step;           /* steps taken so far */
} vamp_adam;

/* beta1 0.9, beta2 0.999, eps 1e-8, step 0. */
void adam_init(vamp_adam *o, vamp_optimizer kind, float lr);
/* Not collective. One Adam step on tensors [t0, t1) of the layout (a rank's share of the sharded optimiser;
 * all of them: 0, l->n, base 0): params -= the update from grads, with the moments m, v; o->step += 1. Each
 * tensor's update depends on that tensor alone. params hold the whole layout; grads, m and v only from element
 * `base` on (element i at grads[i - base]). grads are not modified. */
void adam_step_tensors(vamp_adam *o, const vamp_layout *l, int t0, int t1, float *params, const float *grads,
                       float *m, float *v, size_t base);

#endif
