/* The data-parallel training step and ELBO evaluation (see train.h for the plan of a step).
 * Buffers are allocated once in trainer_init; trainer_step allocates nothing. It does not decide when to stop,
 * write files or print: main.c does. */
#include "vamp/train.h"
#include "vamp/check.h"
#include "vamp/testhooks.h"
#include "vamp/memory.h"
#include "vamp/rng.h"
#include "vamp/runlog.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

float trainer_beta(const vamp_config *c, int epoch)
{
    if (c->warmup <= 0) return 1.0f;
    float b = (float)epoch / (float)c->warmup;
    return b > 1.0f ? 1.0f : b;
}

static int is_vamp(const vamp_model *m)
{
    return m->prior == PRIOR_VAMPPRIOR || m->prior == PRIOR_VAMPPRIOR_DATA;
}

/* First pseudo-input of pseudo chunk s: chunks have fixed boundaries whatever the rank count. */
static int pseudo_start(int K, int S, int s) { return (int)((long)s * K / S); }

/* vampprior_data: pseudo-input k = training image chosen by a keyed permutation + N(0, pseudo_std) noise. */
static void init_pseudo_from_data(vamp_trainer *t)
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

/* Collective, before trainer_init allocates: the parameter count must fit the reduction's int counts, and the
 * buffers below (estimated from the same sizes: parameters, best copy, one gradient per local stripe, the owned
 * optimiser share, the reduction's buffers, activations, pseudo-input encoders) must fit this rank's memory. */
static void require_memory(const vamp_model *m, const vamp_config *c, const vamp_data *d, int size, MPI_Comm comm)
{
    const double N = (double)m->layout.total;
    const char *names = "model.hidden, model.z1/z2 or prior.components";
    if (N > INT_MAX)
        vamp_input_error(comm, "the model has %.0f parameters (model.hidden = %d, prior.components = %d); at most "
                         "%d are supported: lower %s", N, c->hidden, c->components, INT_MAX, names);
    const int S = c->stripes, nloc = d->train.stripe_hi - d->train.stripe_lo, K = m->K, Zt = m->Ztop;
    int rows = c->batch_size / S > c->eval_batch ? c->batch_size / S : c->eval_batch;
    if (c->eval_samples > 0 && c->eval_block > rows) rows = c->eval_block;
    const double reducer = c->reduce == REDUCE_EXACT ? (nloc <= 2 ? nloc * N : 2.0 * N) : N;
    const double state = 4.0 * ((2.0 + nloc) * N + 3.0 * N / size + reducer);
    double acts = (double)acts_floats(m, rows) + (double)rows * (double)(m->D + (size_t)Zt + (size_t)m->Z1 + 2) +
                  2.0 * K * Zt;
    if (is_vamp(m))
        acts += nloc * ((double)enc_acts_floats(m, (K + S - 1) / S, 1) + 2.0 * K * Zt) + 2.0 * K * Zt;
    if (m->prior == PRIOR_VAMPPRIOR_DATA) acts += (double)K * (double)m->D + (double)d->train.n;
    acts = 4.0 * acts + 4.0 * (double)(d->train.row_hi - d->train.row_lo); /* + the local permutations */
    char what[512], a[32], b[32], advice[256];
    snprintf(what, sizeof what, "the model (%.0f parameters: model.type = %s, model.hidden = %d, prior.components = "
             "%d) with its gradients and optimiser state (%s) and activations for %d rows (%s)", N,
             config_model_name(c->model_type), c->hidden, K, mem_text(state, a, 32), rows, mem_text(acts, b, 32));
    if (state >= acts)
        snprintf(advice, sizeof advice, "lower %s%s", names,
                 nloc > 1 ? ", or hold fewer stripes per rank (each of its data.stripes / ranks keeps a full "
                            "gradient)" : "");
    else
        snprintf(advice, sizeof advice, "lower train.batch_size, eval.batch%s", c->eval_samples > 0 ? " or eval.block" : "");
    mem_require(comm, state + acts, 1, what, advice);
}

void trainer_init(vamp_trainer *t, const vamp_config *c, vamp_data *d, MPI_Comm comm)
{
    memset(t, 0, sizeof *t);
    t->comm = comm;
    CHECK_MPI(MPI_Comm_rank(comm, &t->rank));
    CHECK_MPI(MPI_Comm_size(comm, &t->size));
    t->cfg = *c;
    t->data = d;
    vamp_model *m = &t->model;
    model_init(m, c, d->D);
    require_memory(m, c, d, t->size, comm);
    const size_t N = m->layout.total;

    t->params = xmalloc(N * sizeof(float));
    t->best = xmalloc(N * sizeof(float));
    model_init_params(m, t->params, c->seed);
    if (m->prior == PRIOR_VAMPPRIOR_DATA) init_pseudo_from_data(t);
    memcpy(t->best, t->params, N * sizeof(float));
    adam_init(&t->opt, c->optimizer, c->lr);

    t->S = c->stripes;
    t->stripe_lo = d->train.stripe_lo;
    t->nloc = d->train.stripe_hi - d->train.stripe_lo;
    t->rows_per_chunk = c->batch_size / t->S;
    long min_stripe = -1;
    for (int s = 0; s < t->S; s++) {
        long len = stripe_start(d->train.n, t->S, s + 1) - stripe_start(d->train.n, t->S, s);
        if (min_stripe < 0 || len < min_stripe) min_stripe = len;
    }
    t->steps_per_epoch = min_stripe / t->rows_per_chunk;
    if (t->steps_per_epoch < 1)
        vamp_input_error(comm, "%s: dataset /train: %ld rows are too few for train.batch_size = %d "
                         "(each of the %d stripes needs at least %d rows)",
                         c->data_path, d->train.n, c->batch_size, t->S, t->rows_per_chunk);

    t->npseudo_loc = is_vamp(m) ? t->nloc : 0;
    t->chunk_grads = xmalloc((size_t)t->nloc * sizeof(float *));
    for (int i = 0; i < t->nloc; i++) t->chunk_grads[i] = xcalloc(N * sizeof(float));
    reducer_init(&t->red, &m->layout, c->reduce, comm);
    /* the optimiser is sharded: this rank's gradient sum and Adam moments cover only the tensors it owns */
    const size_t own = (size_t)t->red.counts[t->rank] + 1; /* + 1: a rank may own nothing */
    t->grads = xcalloc(own * sizeof(float));
    t->adam_m = xcalloc(own * sizeof(float));
    t->adam_v = xcalloc(own * sizeof(float));

    const int K = m->K, Zt = m->Ztop;
    if (K) {
        t->pm = xcalloc((size_t)K * Zt * sizeof(float));
        t->plv = xcalloc((size_t)K * Zt * sizeof(float));
    }
    if (is_vamp(m)) {
        layout_init(&t->aux_layout);
        layout_add(&t->aux_layout, "prior.dmeans", (size_t)K, (size_t)Zt);
        layout_add(&t->aux_layout, "prior.dlogvars", (size_t)K, (size_t)Zt);
        t->chunk_aux = xmalloc((size_t)t->nloc * sizeof(float *));
        for (int i = 0; i < t->nloc; i++) t->chunk_aux[i] = xcalloc(t->aux_layout.total * sizeof(float));
        t->aux_sum = xcalloc(t->aux_layout.total * sizeof(float));
        reducer_init(&t->red_aux, &t->aux_layout, c->reduce, comm);
        t->pseudo_acts = xmalloc((size_t)t->npseudo_loc * sizeof(vamp_enc_acts));
        for (int i = 0; i < t->npseudo_loc; i++) {
            int s = t->stripe_lo + i;
            enc_acts_init(&t->pseudo_acts[i], m, pseudo_start(K, t->S, s + 1) - pseudo_start(K, t->S, s), 1);
        }
        t->pk_counts = xmalloc((size_t)t->size * sizeof(int));
        t->pk_displs = xmalloc((size_t)t->size * sizeof(int));
        int per = t->S / t->size;
        for (int r = 0; r < t->size; r++) {
            int k0 = pseudo_start(K, t->S, r * per), k1 = pseudo_start(K, t->S, (r + 1) * per);
            t->pk_counts[r] = (k1 - k0) * Zt;
            t->pk_displs[r] = k0 * Zt;
        }
    }

    int rows = t->rows_per_chunk > c->eval_batch ? t->rows_per_chunk : c->eval_batch;
    if (c->eval_samples > 0 && c->eval_block > rows) rows = c->eval_block;
    acts_init(&t->acts, m, rows);
    t->xbuf = xmalloc((size_t)rows * m->D * sizeof(float));
    t->grow = xmalloc((size_t)rows * sizeof(long));
    t->eps_top = xmalloc((size_t)rows * Zt * sizeof(float));
    t->eps1 = m->Z1 ? xmalloc((size_t)rows * m->Z1 * sizeof(float)) : NULL;
    t->perm = xmalloc((size_t)t->nloc * sizeof(uint32_t *));
    for (int i = 0; i < t->nloc; i++) {
        int s = t->stripe_lo + i;
        long len = stripe_start(d->train.n, t->S, s + 1) - stripe_start(d->train.n, t->S, s);
        t->perm[i] = xmalloc((size_t)len * sizeof(uint32_t));
    }
    t->chunk_stats = xcalloc((size_t)t->nloc * 2 * sizeof(double));
    t->inject_nan_step = testhook_nan_step();
    t->perm_epoch = -1;
}

void trainer_free(vamp_trainer *t)
{
    for (int i = 0; i < t->nloc; i++) free(t->chunk_grads[i]);
    free(t->chunk_grads);
    reducer_free(&t->red);
    if (t->chunk_aux) {
        for (int i = 0; i < t->nloc; i++) free(t->chunk_aux[i]);
        free(t->chunk_aux);
        free(t->aux_sum);
        reducer_free(&t->red_aux);
        for (int i = 0; i < t->npseudo_loc; i++) enc_acts_free(&t->pseudo_acts[i]);
        free(t->pseudo_acts);
        free(t->pk_counts);
        free(t->pk_displs);
    }
    free(t->pm);
    free(t->plv);
    acts_free(&t->acts);
    free(t->xbuf);
    free(t->grow);
    free(t->eps_top);
    free(t->eps1);
    for (int i = 0; i < t->nloc; i++) free(t->perm[i]);
    free(t->perm);
    free(t->chunk_stats);
    free(t->params);
    free(t->grads);
    free(t->adam_m);
    free(t->adam_v);
    free(t->best);
    memset(t, 0, sizeof *t);
}

void trainer_prior_components(vamp_trainer *t)
{
    vamp_model *m = &t->model;
    const int K = m->K, Zt = m->Ztop;
    if (m->prior == PRIOR_MOG) {
        memcpy(t->pm, t->params + m->layout.t[m->mog_means].offset, (size_t)K * Zt * sizeof(float));
        memcpy(t->plv, t->params + m->layout.t[m->mog_logvars].offset, (size_t)K * Zt * sizeof(float));
        return;
    }
    if (!is_vamp(m)) return;
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

/* Noise for `rows` consecutive samples given by global row numbers. */
static void fill_eps(vamp_trainer *t, const long *grow, int rows, uint32_t purpose, uint32_t epoch)
{
    const int Zt = t->model.Ztop, Z1 = t->model.Z1;
    for (int r = 0; r < rows; r++) {
        rng_normal_fill(t->eps_top + (size_t)r * Zt, (size_t)Zt, t->cfg.seed, purpose, epoch, (uint64_t)grow[r], 0);
        if (Z1)
            rng_normal_fill(t->eps1 + (size_t)r * Z1, (size_t)Z1, t->cfg.seed, purpose, epoch, (uint64_t)grow[r],
                            (uint32_t)Zt);
    }
}

vamp_elbo trainer_step(vamp_trainer *t, int epoch, long it)
{
    vamp_model *m = &t->model;
    const vamp_split *tr = &t->data->train;
    const size_t D = m->D;
    const int R = t->rows_per_chunk, Zt = m->Ztop;
    const float beta = trainer_beta(&t->cfg, epoch);
    const float scale = 1.0f / (float)t->cfg.batch_size;
    long *grow = t->grow;

    if (t->perm_epoch != epoch) { /* each stripe's own permutation for this epoch */
        for (int i = 0; i < t->nloc; i++) {
            int s = t->stripe_lo + i;
            long len = stripe_start(tr->n, t->S, s + 1) - stripe_start(tr->n, t->S, s);
            rng_permutation(t->perm[i], (uint32_t)len, t->cfg.seed, RNG_PERMUTE, (uint32_t)epoch, (uint64_t)s);
        }
        t->perm_epoch = epoch;
    }
    double c0 = wall_seconds();
    trainer_prior_components(t);
    double c1 = wall_seconds();
    t->t_prior += c1 - c0;

    for (int i = 0; i < t->nloc; i++) {
        int s = t->stripe_lo + i;
        long s0 = stripe_start(tr->n, t->S, s);
        for (int r = 0; r < R; r++) {
            grow[r] = s0 + t->perm[i][it * R + r];
            const float *src = tr->x + (size_t)(grow[r] - tr->row_lo) * D;
            if (t->cfg.binarize == BIN_DYNAMIC)
                binarize_row(t->xbuf + (size_t)r * D, src, D, t->cfg.seed, RNG_BINARIZE, (uint32_t)epoch, grow[r]);
            else
                memcpy(t->xbuf + (size_t)r * D, src, D * sizeof(float));
        }
        fill_eps(t, grow, R, RNG_EPS_TRAIN, (uint32_t)epoch);

        float *G = t->chunk_grads[i];
        memset(G, 0, m->layout.total * sizeof(float));
        float *dpm = NULL, *dplv = NULL;
        if (m->prior == PRIOR_MOG) {
            dpm = G + m->layout.t[m->mog_means].offset;
            dplv = G + m->layout.t[m->mog_logvars].offset;
        } else if (is_vamp(m)) {
            memset(t->chunk_aux[i], 0, t->aux_layout.total * sizeof(float));
            dpm = t->chunk_aux[i];
            dplv = t->chunk_aux[i] + t->aux_layout.t[1].offset;
        }
        c0 = wall_seconds();
        model_forward(m, &t->acts, t->params, t->xbuf, t->eps_top, t->eps1, R, t->pm, t->plv, beta);
        c1 = wall_seconds();
        model_backward(m, &t->acts, t->params, G, dpm, dplv, t->pm, t->plv, R, beta, scale);
        t->t_forward += c1 - c0;
        t->t_backward += wall_seconds() - c1;
        double sre = 0.0, skl = 0.0;
        for (int r = 0; r < R; r++) {
            sre += t->acts.re[r];
            skl += t->acts.kl[r];
        }
        t->chunk_stats[2 * i] = sre;
        t->chunk_stats[2 * i + 1] = skl;
    }

    if (is_vamp(m)) { /* the prior's gradient w.r.t. every component, then back through this rank's pseudo chunks */
        c0 = wall_seconds();
        reducer_sum(&t->red_aux, t->aux_sum, t->chunk_aux, t->nloc, t->S);
        c1 = wall_seconds();
        t->t_reduce += c1 - c0;
        const float *dpm = t->aux_sum, *dplv = t->aux_sum + t->aux_layout.t[1].offset;
        for (int i = 0; i < t->npseudo_loc; i++) {
            int s = t->stripe_lo + i, k0 = pseudo_start(m->K, t->S, s), k1 = pseudo_start(m->K, t->S, s + 1);
            model_pseudo_backward(m, &t->pseudo_acts[i], t->params, t->chunk_grads[i], k0, k1, dpm + (size_t)k0 * Zt,
                                  dplv + (size_t)k0 * Zt);
        }
        t->t_prior += wall_seconds() - c1;
    }
    if (t->inject_nan_step > 0 && t->step + 1 == t->inject_nan_step) { /* tests only; once, on every rank */
        if (t->nloc > 0) t->chunk_grads[0][m->layout.t[m->px_mean.b].offset] = NAN;
        t->inject_nan_step = 0;
    }
    c0 = wall_seconds();
    /* the reduced gradient is the same on every rank, so is the verdict on its finiteness */
    int bad = reducer_sum_owned(&t->red, t->grads, t->chunk_grads, t->nloc, t->S);
    c1 = wall_seconds();
    t->t_reduce += c1 - c0;
    if (bad < 0) { /* sharded optimiser: each rank updates the tensors it owns, then all ranks get them all */
        adam_step_tensors(&t->opt, &m->layout, t->red.t_lo, t->red.t_hi, t->params, t->grads, t->adam_m,
                          t->adam_v, (size_t)t->red.displs[t->rank]);
        reducer_allgather_owned(&t->red, t->params);
        t->step++;
    }
    t->t_optim += wall_seconds() - c1;

    double sums[2];
    reduce_chunk_scalars(sums, t->chunk_stats, t->nloc, 2, t->comm);
    vamp_elbo e;
    e.n = t->cfg.batch_size;
    e.re = sums[0] / e.n;
    e.kl = sums[1] / e.n;
    e.loss = e.re + beta * e.kl;
    e.bad_tensor = bad;
    return e;
}

vamp_elbo trainer_eval_elbo(vamp_trainer *t, const vamp_split *sp)
{
    vamp_model *m = &t->model;
    const size_t D = m->D;
    const int B = t->cfg.eval_batch;
    int nloc = sp->stripe_hi - sp->stripe_lo;
    double *stats = xcalloc((size_t)nloc * 2 * sizeof(double));
    long *grow = t->grow;
    trainer_prior_components(t);
    for (int i = 0; i < nloc; i++) {
        int s = sp->stripe_lo + i;
        long s0 = stripe_start(sp->n, sp->stripes, s), s1 = stripe_start(sp->n, sp->stripes, s + 1);
        for (long r0 = s0; r0 < s1; r0 += B) { /* fixed blocks from the stripe's start: rank-count independent */
            int R = (int)(s1 - r0 < B ? s1 - r0 : B);
            for (int r = 0; r < R; r++) grow[r] = r0 + r;
            fill_eps(t, grow, R, RNG_EPS_EVAL, 0);
            model_forward(m, &t->acts, t->params, sp->x + (size_t)(r0 - sp->row_lo) * D, t->eps_top, t->eps1, R,
                          t->pm, t->plv, 1.0f);
            for (int r = 0; r < R; r++) {
                stats[2 * i] += t->acts.re[r];
                stats[2 * i + 1] += t->acts.kl[r];
            }
        }
    }
    double sums[2];
    reduce_chunk_scalars(sums, stats, nloc, 2, t->comm);
    free(stats);
    vamp_elbo e;
    e.n = sp->n;
    e.re = sums[0] / sp->n;
    e.kl = sums[1] / sp->n;
    e.loss = e.re + e.kl;
    e.bad_tensor = -1;
    return e;
}
