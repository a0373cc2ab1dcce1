/* The trainer's side of each prior (see prior_hooks.h): buffers, components, and where their gradient goes. */
#include "vamp/prior_hooks.h"
#include "vamp/check.h"
#include "vamp/rng.h"
#include "vamp/runlog.h"

#include <stdlib.h>
#include <string.h>

/* ---- mog: the components are parameters ----------------------------------------------------------------- */

static void mog_components(vamp_trainer *t)
{
    const vamp_model *m = &t->model;
    const size_t n = (size_t)m->K * m->Ztop * sizeof(float);
    memcpy(t->pm, t->params + m->layout.t[m->mog_means].offset, n);
    memcpy(t->plv, t->params + m->layout.t[m->mog_logvars].offset, n);
}

static void mog_chunk_targets(vamp_trainer *t, int i, float **dpm, float **dplv)
{
    const vamp_model *m = &t->model;
    *dpm = t->chunk_grads[i] + m->layout.t[m->mog_means].offset;
    *dplv = t->chunk_grads[i] + m->layout.t[m->mog_logvars].offset;
}

/* ---- vampprior: the components are encodings of the pseudo-inputs, one chunk per stripe ----------------- */

static double vamp_floats(const vamp_model *m, const vamp_config *c, const vamp_data *d, int nloc)
{
    (void)d;
    const int K = m->K, S = c->stripes;
    const double KZ = (double)K * m->Ztop;
    return nloc * ((double)enc_acts_floats(m, (K + S - 1) / S, 1) + 2.0 * KZ) + 2.0 * KZ;
}

static void vamp_init(vamp_trainer *t)
{
    const vamp_model *m = &t->model;
    const int K = m->K, Zt = m->Ztop;
    t->npseudo_loc = t->nloc;
    layout_init(&t->aux_layout);
    layout_add(&t->aux_layout, "prior.dmeans", (size_t)K, (size_t)Zt);
    layout_add(&t->aux_layout, "prior.dlogvars", (size_t)K, (size_t)Zt);
    t->chunk_aux = xmalloc((size_t)t->nloc * sizeof(float *));
    for (int i = 0; i < t->nloc; i++) t->chunk_aux[i] = xcalloc(t->aux_layout.total * sizeof(float));
    t->aux_sum = xcalloc(t->aux_layout.total * sizeof(float));
    reducer_init(&t->red_aux, &t->aux_layout, t->cfg.reduce, t->comm);
    t->pseudo_acts = xmalloc((size_t)t->npseudo_loc * sizeof(vamp_enc_acts));
    for (int i = 0; i < t->npseudo_loc; i++) {
        int s = t->stripe_lo + i;
        enc_acts_init(&t->pseudo_acts[i], m, pseudo_start(K, t->S, s + 1) - pseudo_start(K, t->S, s), 1);
    }
    /* pseudo-input chunk s back-propagates into its own columns of the (D, K) pseudo-inputs only: the reduction
     * reads just those (3/4 of the tensor in every chunk skipped at 4 stripes), and they alone are zeroed */
    int *bounds = xmalloc(((size_t)t->S + 1) * sizeof(int));
    for (int s = 0; s <= t->S; s++) bounds[s] = pseudo_start(K, t->S, s);
    reducer_set_column_chunks(&t->red, m->pseudo, bounds, t->S);
    free(bounds);
    t->pk_counts = xmalloc((size_t)t->size * sizeof(int));
    t->pk_displs = xmalloc((size_t)t->size * sizeof(int));
    for (int r = 0; r < t->size; r++) { /* the pseudo-input rows of rank r's chunks, in floats */
        int lo, hi;
        plan_rank_stripes(t->S, t->size, r, &lo, &hi);
        int k0 = pseudo_start(K, t->S, lo), k1 = pseudo_start(K, t->S, hi);
        t->pk_counts[r] = (k1 - k0) * Zt;
        t->pk_displs[r] = k0 * Zt;
    }
}

static void vamp_release(vamp_trainer *t)
{
    for (int i = 0; i < t->nloc; i++) free(t->chunk_aux[i]);
    free(t->chunk_aux);
    free(t->aux_sum);
    reducer_free(&t->red_aux);
    for (int i = 0; i < t->npseudo_loc; i++) enc_acts_free(&t->pseudo_acts[i]);
    free(t->pseudo_acts);
    free(t->pk_counts);
    free(t->pk_displs);
}

static void vamp_components(vamp_trainer *t)
{
    const vamp_model *m = &t->model;
    const int K = m->K, Zt = m->Ztop;
    for (int i = 0; i < t->npseudo_loc; i++) {
        int s = t->stripe_lo + i, k0 = pseudo_start(K, t->S, s), k1 = pseudo_start(K, t->S, s + 1);
        model_pseudo_forward(m, &t->pseudo_acts[i], t->params, k0, k1, t->pm + (size_t)k0 * Zt,
                             t->plv + (size_t)k0 * Zt);
    }
    if (t->size > 1) {
        CHECK_MPI(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, t->pm, t->pk_counts, t->pk_displs, MPI_FLOAT,
                                 t->comm));
        CHECK_MPI(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, t->plv, t->pk_counts, t->pk_displs, MPI_FLOAT,
                                 t->comm));
    }
}

static void vamp_chunk_targets(vamp_trainer *t, int i, float **dpm, float **dplv)
{
    memset(t->chunk_aux[i], 0, t->aux_layout.total * sizeof(float));
    *dpm = t->chunk_aux[i];
    *dplv = t->chunk_aux[i] + t->aux_layout.t[1].offset;
}

/* The prior's gradient w.r.t. every component (exactly reduced), then back through this rank's pseudo chunks. */
static void vamp_backward(vamp_trainer *t)
{
    const vamp_model *m = &t->model;
    const int Zt = m->Ztop;
    double c0 = wall_seconds();
    reducer_sum(&t->red_aux, t->aux_sum, t->chunk_aux, t->nloc, t->S);
    double c1 = wall_seconds();
    t->t_reduce += c1 - c0;
    const float *dpm = t->aux_sum, *dplv = t->aux_sum + t->aux_layout.t[1].offset;
    for (int i = 0; i < t->npseudo_loc; i++) {
        int s = t->stripe_lo + i, k0 = pseudo_start(m->K, t->S, s), k1 = pseudo_start(m->K, t->S, s + 1);
        model_pseudo_backward(m, &t->pseudo_acts[i], t->params, t->chunk_grads[i], k0, k1, dpm + (size_t)k0 * Zt,
                              dplv + (size_t)k0 * Zt);
    }
    t->t_prior += wall_seconds() - c1;
}

/* ---- vampprior_data: as vampprior, pseudo-inputs start from training images --------------------------- */

static double vamp_data_floats(const vamp_model *m, const vamp_config *c, const vamp_data *d, int nloc)
{
    return vamp_floats(m, c, d, nloc) + (double)m->K * (double)m->D + (double)d->train.n;
}

/* Pseudo-input k = training image chosen by a keyed permutation + N(0, pseudo_std) noise. */
static void vamp_data_init_params(vamp_trainer *t)
{
    const vamp_model *m = &t->model;
    const int K = m->K;
    const size_t D = m->D;
    long n = t->data->train.n;
    uint32_t *perm = xmalloc((size_t)n * sizeof(uint32_t));
    rng_permutation(perm, (uint32_t)n, t->cfg.seed, RNG_PSEUDO, 0, 0);
    long *rows = xmalloc((size_t)K * sizeof(long));
    for (int k = 0; k < K; k++) rows[k] = perm[k % n];
    float *img = xmalloc((size_t)K * D * sizeof(float));
    data_read_train_rows(&t->cfg, t->data, rows, K, img, t->comm);
    float *W = t->params + m->layout.t[m->pseudo].offset; /* (D,K) */
    float *noise = xmalloc(D * sizeof(float));
    for (int k = 0; k < K; k++) {
        rng_normal_fill(noise, D, t->cfg.seed, RNG_PSEUDO, 1, (uint64_t)k, 0);
        for (size_t d = 0; d < D; d++) W[d * K + k] = img[(size_t)k * D + d] + t->cfg.pseudo_std * noise[d];
    }
    free(noise);
    free(img);
    free(rows);
    free(perm);
}

/* ---- the table ---------------------------------------------------------------------------------------- */

static const vamp_prior_hooks HOOKS[] = {
    [PRIOR_STANDARD] = {0},
    [PRIOR_MOG] = {.components = mog_components, .chunk_targets = mog_chunk_targets},
    [PRIOR_VAMPPRIOR] = {.floats = vamp_floats, .init = vamp_init, .release = vamp_release,
                         .components = vamp_components, .chunk_targets = vamp_chunk_targets,
                         .backward = vamp_backward},
    [PRIOR_VAMPPRIOR_DATA] = {.floats = vamp_data_floats, .init_params = vamp_data_init_params, .init = vamp_init,
                              .release = vamp_release, .components = vamp_components,
                              .chunk_targets = vamp_chunk_targets, .backward = vamp_backward},
};

const vamp_prior_hooks *prior_hooks(vamp_prior_type p) { return &HOOKS[p]; }
