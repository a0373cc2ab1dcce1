/* What each prior needs from the data-parallel trainer beyond the model's own tensors: one row of hooks per
 * prior (a NULL hook: nothing to do). The standard prior has no components; the MoG prior's components are
 * parameters; the VampPrior's are encodings of pseudo-inputs, computed per pseudo-input chunk (plan.h) and
 * allgathered, their gradient reduced exactly and sent back through this rank's chunks.
 * Adding a prior: its name (config.h/config.c), its tensors and initial values (model.c), one row here. */
#ifndef VAMP_PRIOR_HOOKS_H
#define VAMP_PRIOR_HOOKS_H

#include "vamp/train.h"

typedef struct {
    /* floats of this prior's trainer buffers on one rank (for the memory check before anything is allocated) */
    double (*floats)(const vamp_model *m, const vamp_config *c, const vamp_data *d, int nloc);
    /* collective: initial values beyond model_init_params (the parameters exist, the buffers not yet) */
    void (*init_params)(vamp_trainer *t);
    /* collective: allocates this prior's buffers; release frees them */
    void (*init)(vamp_trainer *t);
    void (*release)(vamp_trainer *t);
    /* collective: t->pm, t->plv for the current parameters */
    void (*components)(vamp_trainer *t);
    /* where local chunk i's gradient w.r.t. t->pm and t->plv goes (zeroed by the hook), left NULL if nowhere */
    void (*chunk_targets)(vamp_trainer *t, int i, float **dpm, float **dplv);
    /* collective, after every local chunk: the components' gradient back into t->chunk_grads */
    void (*backward)(vamp_trainer *t);
} vamp_prior_hooks;

const vamp_prior_hooks *prior_hooks(vamp_prior_type p);

#endif
