/* The data-parallel training step and ELBO evaluation (see train.h for the plan of a step).
 * Buffers are allocated once in trainer_init; trainer_step allocates nothing. It does not decide when to stop,
 * write files or print: epochs.c does. What differs between priors is in prior_hooks.c. */
#include "vamp/train.h"
#include "vamp/check.h"
#include "vamp/testhooks.h"
#include "vamp/ticker.h"
#include "vamp/memory.h"
#include "vamp/prior_hooks.h"
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

void trainer_noise(vamp_trainer *t, int r, uint32_t purpose, uint32_t counter, uint64_t index)
{
    const int Zt = t->model.Ztop, Z1 = t->model.Z1;
    rng_normal_fill(t->eps_top + (size_t)r * Zt, (size_t)Zt, t->cfg.seed, purpose, counter, index, 0);
    if (Z1) rng_normal_fill(t->eps1 + (size_t)r * Z1, (size_t)Z1, t->cfg.seed, purpose, counter, index, (uint32_t)Zt);
}

/* Activation rows: a training chunk, an evaluation block, an importance-sampling block, whichever is largest. */
static int activation_rows(const vamp_config *c)
{
    int rows = c->batch_size / c->stripes > c->eval_batch ? c->batch_size / c->stripes : c->eval_batch;
    if (c->eval_samples > 0 && config_eval_block(c) > rows) rows = config_eval_block(c);
    return rows;
}

/* Collective, before trainer_init allocates: the parameter count must fit the reduction's int counts, and the
 * buffers below (estimated from the same sizes: parameters, best copy, one gradient per local stripe, the owned
 * optimiser share, the reduction's buffers, activations, the prior's buffers) must fit this rank's memory. */
static void require_memory(const vamp_model *m, const vamp_config *c, const vamp_data *d, int size, MPI_Comm comm)
{
    const double N = (double)m->layout.total;
    const char *names = "model.hidden, model.z1/z2 or prior.components";
    if (N > INT_MAX)
        vamp_input_error(comm, "the model has %.0f parameters (model.hidden = %d, prior.components = %d); at most "
                         "%d are supported: lower %s", N, c->hidden, c->components, INT_MAX, names);
    const int nloc = d->train.stripe_hi - d->train.stripe_lo, K = m->K, Zt = m->Ztop;
    const int rows = activation_rows(c);
    const double reducer = c->reduce == REDUCE_EXACT ? (nloc <= 2 ? nloc * N : 2.0 * N) : N;
    const double state = 4.0 * ((2.0 + nloc) * N + 3.0 * N / size + reducer);
    double acts = (double)acts_floats(m, rows) + (double)rows * (double)(m->D + (size_t)Zt + (size_t)m->Z1 + 2) +
                  2.0 * K * Zt;
    if (model_sync_layers(m)) { /* every local chunk's own activations, input and noise (init_stage_buffers) */
        const int R = c->batch_size / c->stripes;
        acts += nloc * ((double)acts_floats(m, R) + (double)R * (double)(m->D + (size_t)Zt + (size_t)m->Z1));
    }
    const vamp_prior_hooks *h = prior_hooks(m->prior);
    if (h->floats) acts += h->floats(m, c, d, nloc);
    acts = 4.0 * acts + 4.0 * (double)(d->train.row_hi - d->train.row_lo); /* + the local permutations */
    char what[512], a[32], b[32], advice[256];
    snprintf(what, sizeof what, "the model (%.0f parameters: model.type = %s, model.hidden = %d, prior.components = "
             "%d) with its gradients and optimiser state (%s) and activations for %d rows (%s)", N,
             config_model_name(c->model_type), c->hidden, K, mem_text(state, a, 32), rows, mem_text(acts, b, 32));
    if (state >= acts)
        snprintf(advice, sizeof advice, "lower %s%s", names,
                 nloc > 1 ? ", or hold fewer stripes per rank (each stripe a rank holds keeps a full gradient: "
                            "run on more ranks, up to data.stripes)" : "");
    else
        snprintf(advice, sizeof advice, "lower train.batch_size, eval.batch%s", c->eval_samples > 0 ? " or eval.block" : "");
    mem_require(comm, state + acts, 1, what, advice);
}

/* This rank's stripes and the steps of an epoch: the shortest stripe decides, every stripe gives R rows. */
static void plan_stripes(vamp_trainer *t)
{
    const vamp_split *tr = &t->data->train;
    t->S = t->cfg.stripes;
    t->stripe_lo = tr->stripe_lo;
    t->nloc = tr->stripe_hi - tr->stripe_lo;
    t->rows_per_chunk = t->cfg.batch_size / t->S;
    long min_stripe = -1;
    for (int s = 0; s < t->S; s++) {
        long len = stripe_len(tr->n, t->S, s);
        if (min_stripe < 0 || len < min_stripe) min_stripe = len;
    }
    t->steps_per_epoch = min_stripe / t->rows_per_chunk;
    if (t->steps_per_epoch < 1)
        vamp_input_error(t->comm, "%s: dataset /train: %ld rows are too few for train.batch_size = %d "
                         "(each of the %d stripes needs at least %d rows)",
                         t->cfg.data_path, tr->n, t->cfg.batch_size, t->S, t->rows_per_chunk);
}

/* Gradients: one full buffer per local chunk, the reduction, and the sharded optimiser's share. */
static void init_gradients(vamp_trainer *t)
{
    const size_t N = t->model.layout.total;
    t->chunk_grads = xmalloc((size_t)t->nloc * sizeof(float *));
    for (int i = 0; i < t->nloc; i++) t->chunk_grads[i] = xcalloc(N * sizeof(float));
    reducer_init(&t->red, &t->model.layout, t->cfg.reduce, t->comm);
    reducer_consume_chunks(&t->red); /* the chunks start zeroed (xcalloc), and each sum leaves them so */
    /* the optimiser is sharded: this rank's gradient sum and Adam moments cover only the tensors it owns */
    const size_t own = (size_t)t->red.counts[t->rank] + 1; /* + 1: a rank may own nothing */
    t->grads = xcalloc(own * sizeof(float));
    t->adam_m = xcalloc(own * sizeof(float));
    t->adam_v = xcalloc(own * sizeof(float));
}

/* Activations, the input and noise of one block, and each local stripe's permutation. */
static void init_step_buffers(vamp_trainer *t)
{
    const vamp_model *m = &t->model;
    const int rows = activation_rows(&t->cfg);
    acts_init(&t->acts, m, rows);
    t->xbuf = xmalloc((size_t)rows * m->D * sizeof(float));
    t->grow = xmalloc((size_t)rows * sizeof(long));
    t->eps_top = xmalloc((size_t)rows * m->Ztop * sizeof(float));
    t->eps1 = m->Z1 ? xmalloc((size_t)rows * m->Z1 * sizeof(float)) : NULL;
    t->perm = xmalloc((size_t)t->nloc * sizeof(uint32_t *));
    for (int i = 0; i < t->nloc; i++)
        t->perm[i] = xmalloc((size_t)stripe_len(t->data->train.n, t->S, t->stripe_lo + i) * sizeof(uint32_t));
    t->chunk_stats = xcalloc((size_t)t->nloc * 2 * sizeof(double));
    t->perm_epoch = -1;
}

/* BatchNorm models: per local chunk activations, input and noise; the partial sums of one stage. */
static void init_stage_buffers(vamp_trainer *t)
{
    const vamp_model *m = &t->model;
    const int R = t->rows_per_chunk, n = t->nloc;
    t->sync_layers = model_sync_layers(m);
    if (!t->sync_layers) return;
    t->chunk_acts = xmalloc((size_t)(n ? n : 1) * sizeof(vamp_acts));
    for (int i = 0; i < n; i++) acts_init(&t->chunk_acts[i], m, R);
    t->chunk_x = xmalloc(((size_t)n * R * m->D + 1) * sizeof(float));
    t->chunk_eps_top = xmalloc(((size_t)n * R * m->Ztop + 1) * sizeof(float));
    t->chunk_eps1 = xmalloc(((size_t)n * R * m->Z1 + 1) * sizeof(float));
    t->sync_part = xmalloc(((size_t)n * model_sync_len(m) + 1) * sizeof(double));
    t->sync_total = xmalloc(model_sync_len(m) * sizeof(double));
    t->chunk_dpm = xcalloc(2 * (size_t)(n ? n : 1) * sizeof(float *));
    t->chunk_dplv = t->chunk_dpm + (n ? n : 1);
}

static void free_stage_buffers(vamp_trainer *t)
{
    if (!t->sync_layers) return;
    for (int i = 0; i < t->nloc; i++) acts_free(&t->chunk_acts[i]);
    free(t->chunk_acts);
    free(t->chunk_x);
    free(t->chunk_eps_top);
    free(t->chunk_eps1);
    free(t->sync_part);
    free(t->sync_total);
    free(t->chunk_dpm);
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
    model_init(m, c, d->height, d->width);
    require_memory(m, c, d, t->size, comm);
    const vamp_prior_hooks *h = prior_hooks(m->prior);
    const size_t N = m->layout.total;

    t->params = xmalloc(N * sizeof(float));
    t->best = xmalloc(N * sizeof(float));
    model_init_params(m, t->params, c->seed);
    if (h->init_params) h->init_params(t);
    memcpy(t->best, t->params, N * sizeof(float));
    adam_init(&t->opt, c->optimizer, c->lr);

    plan_stripes(t);
    init_gradients(t);
    if (m->K) {
        t->pm = xcalloc((size_t)m->K * m->Ztop * sizeof(float));
        t->plv = xcalloc((size_t)m->K * m->Ztop * sizeof(float));
    }
    if (h->init) h->init(t);
    init_step_buffers(t);
    init_stage_buffers(t);
    t->inject_nan_step = testhook_nan_step();
}

void trainer_free(vamp_trainer *t)
{
    const vamp_prior_hooks *h = prior_hooks(t->model.prior);
    for (int i = 0; i < t->nloc; i++) free(t->chunk_grads[i]);
    free(t->chunk_grads);
    reducer_free(&t->red);
    if (h->release) h->release(t);
    free(t->pm);
    free(t->plv);
    acts_free(&t->acts);
    free_stage_buffers(t);
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
    const vamp_prior_hooks *h = prior_hooks(t->model.prior);
    if (h->components) h->components(t);
}

/* Each local stripe's own permutation of its rows, drawn at the first step of an epoch. */
static void draw_permutations(vamp_trainer *t, int epoch)
{
    if (t->perm_epoch == epoch) return;
    for (int i = 0; i < t->nloc; i++) {
        int s = t->stripe_lo + i;
        long len = stripe_len(t->data->train.n, t->S, s);
        rng_permutation(t->perm[i], (uint32_t)len, t->cfg.seed, RNG_PERMUTE, (uint32_t)epoch, (uint64_t)s);
    }
    t->perm_epoch = epoch;
}

/* Local chunk i of batch `it`: its global rows (t->grow), their images (t->xbuf, binarised per step if
 * data.binarize = dynamic) and their noise. */
static void load_chunk(vamp_trainer *t, int i, int epoch, long it)
{
    const vamp_split *tr = &t->data->train;
    const size_t D = t->model.D;
    const int R = t->rows_per_chunk;
    long s0 = stripe_start(tr->n, t->S, t->stripe_lo + i);
    for (int r = 0; r < R; r++) {
        t->grow[r] = s0 + t->perm[i][it * R + r];
        const float *src = tr->x + (size_t)(t->grow[r] - tr->row_lo) * D;
        if (t->cfg.binarize == BIN_DYNAMIC)
            binarize_row(t->xbuf + (size_t)r * D, src, D, t->cfg.seed, RNG_BINARIZE, (uint32_t)epoch, t->grow[r]);
        else
            memcpy(t->xbuf + (size_t)r * D, src, D * sizeof(float));
    }
    for (int r = 0; r < R; r++) trainer_noise(t, r, RNG_EPS_TRAIN, (uint32_t)epoch, (uint64_t)t->grow[r]);
}

/* Local chunk i's summed loss terms, from the activations of its last forward pass, into chunk_stats. */
static void chunk_stats_from(vamp_trainer *t, int i, const vamp_acts *a)
{
    double sre = 0.0, skl = 0.0;
    for (int r = 0; r < t->rows_per_chunk; r++) {
        sre += a->re[r];
        skl += a->kl[r];
    }
    t->chunk_stats[2 * i] = sre;
    t->chunk_stats[2 * i + 1] = skl;
}

/* Forward and backward of the loaded chunk i into its own gradient (and the prior's targets); its summed loss
 * terms go to chunk_stats. */
static void chunk_forward_backward(vamp_trainer *t, int i, float beta)
{
    vamp_model *m = &t->model;
    const int R = t->rows_per_chunk;
    const vamp_prior_hooks *h = prior_hooks(m->prior);
    float *G = t->chunk_grads[i], *dpm = NULL, *dplv = NULL;
    reducer_prepare_chunk(&t->red, G, t->stripe_lo + i); /* zero where the reduction reads it */
    if (h->chunk_targets) h->chunk_targets(t, i, &dpm, &dplv);
    double c0 = wall_seconds();
    model_forward(m, &t->acts, t->params, t->xbuf, t->eps_top, t->eps1, R, t->pm, t->plv, beta);
    double c1 = wall_seconds();
    model_backward(m, &t->acts, t->params, G, dpm, dplv, t->pm, t->plv, R, beta, 1.0f / (float)t->cfg.batch_size);
    t->t_forward += c1 - c0;
    t->t_backward += wall_seconds() - c1;
    chunk_stats_from(t, i, &t->acts);
}

/* Collective. The forward and backward of every local chunk in stages (model.h): after each stage, every chunk's
 * partial sums of all ranks are summed in chunk order (the same bits for any rank count) and handed to the next
 * stage; the forward's sums also move the running statistics (every rank alike). Chunk i's input and noise are
 * loaded into its own buffers first. */
static void chunks_forward_backward_staged(vamp_trainer *t, int epoch, long it, float beta)
{
    vamp_model *m = &t->model;
    const int R = t->rows_per_chunk, L = t->sync_layers, n = t->nloc;
    const size_t len = model_sync_len(m), D = m->D, Zt = (size_t)m->Ztop, Z1 = (size_t)m->Z1;
    const vamp_prior_hooks *h = prior_hooks(m->prior);
    float **dpm = t->chunk_dpm, **dplv = t->chunk_dplv;
    for (int i = 0; i < n; i++) {
        load_chunk(t, i, epoch, it);
        memcpy(t->chunk_x + (size_t)i * R * D, t->xbuf, (size_t)R * D * sizeof(float));
        memcpy(t->chunk_eps_top + (size_t)i * R * Zt, t->eps_top, (size_t)R * Zt * sizeof(float));
        if (Z1) memcpy(t->chunk_eps1 + (size_t)i * R * Z1, t->eps1, (size_t)R * Z1 * sizeof(float));
        reducer_prepare_chunk(&t->red, t->chunk_grads[i], t->stripe_lo + i);
        dpm[i] = dplv[i] = NULL;
        if (h->chunk_targets) h->chunk_targets(t, i, &dpm[i], &dplv[i]);
    }
    double c0 = wall_seconds();
    for (int s = 0; s <= L; s++) {
        for (int i = 0; i < n; i++) {
            model_forward_stage(m, &t->chunk_acts[i], t->params, t->chunk_x + (size_t)i * R * D,
                                t->chunk_eps_top + (size_t)i * R * Zt, Z1 ? t->chunk_eps1 + (size_t)i * R * Z1 : NULL,
                                R, t->pm, t->plv, beta, s, t->sync_total);
            if (s < L) memcpy(t->sync_part + (size_t)i * len, t->chunk_acts[i].bn_part + (size_t)s * len,
                              len * sizeof(double));
        }
        if (s == L) break;
        reduce_chunk_scalars(t->sync_total, t->sync_part, n, t->S, (int)len, t->comm);
        model_bn_running_update(m, t->params, s, t->sync_total);
    }
    double c1 = wall_seconds();
    for (int s = L; s >= 0; s--) {
        for (int i = 0; i < n; i++) {
            vamp_acts *a = &t->chunk_acts[i];
            model_backward_stage(m, a, t->params, t->chunk_grads[i], dpm[i], dplv[i], t->pm, t->plv, R, beta,
                                 1.0f / (float)t->cfg.batch_size, s, t->sync_total);
            if (s > 0) memcpy(t->sync_part + (size_t)i * len, a->bn_part + (size_t)(s - 1) * len, len * sizeof(double));
        }
        if (s > 0) reduce_chunk_scalars(t->sync_total, t->sync_part, n, t->S, (int)len, t->comm);
    }
    t->t_forward += c1 - c0;
    t->t_backward += wall_seconds() - c1;
    for (int i = 0; i < n; i++) chunk_stats_from(t, i, &t->chunk_acts[i]);
}

/* Collective: the exact sum of the chunk gradients into the owned tensors, then (all finite) Adam on them and
 * the allgather of the parameters. Returns the index of a non-finite tensor (nothing updated), or -1. */
static int reduce_and_update(vamp_trainer *t)
{
    const vamp_model *m = &t->model;
    if (t->inject_nan_step > 0 && t->step + 1 == t->inject_nan_step) { /* tests only; once, on every rank */
        if (t->nloc > 0) t->chunk_grads[0][m->layout.t[m->px_mean.b].offset] = NAN;
        t->inject_nan_step = 0;
    }
    double c0 = wall_seconds();
    /* the reduced gradient is the same on every rank, so is the verdict on its finiteness */
    int bad = reducer_sum_owned(&t->red, t->grads, t->chunk_grads, t->nloc, t->S);
    double c1 = wall_seconds();
    t->t_reduce += c1 - c0;
    if (bad < 0) { /* sharded optimiser: each rank updates the tensors it owns, then all ranks get them all */
        adam_step_tensors(&t->opt, &m->layout, t->red.t_lo, t->red.t_hi, t->params, t->grads, t->adam_m,
                          t->adam_v, (size_t)t->red.displs[t->rank]);
        reducer_allgather_owned(&t->red, t->params);
        model_apply_masks(m, t->params);
        t->step++;
    }
    t->t_optim += wall_seconds() - c1;
    return bad;
}

vamp_elbo trainer_step(vamp_trainer *t, int epoch, long it)
{
    const float beta = trainer_beta(&t->cfg, epoch);
    const vamp_prior_hooks *h = prior_hooks(t->model.prior);
    draw_permutations(t, epoch);
    double c0 = wall_seconds();
    trainer_prior_components(t);
    t->t_prior += wall_seconds() - c0;
    if (t->sync_layers) {
        chunks_forward_backward_staged(t, epoch, it, beta);
    } else {
        for (int i = 0; i < t->nloc; i++) {
            load_chunk(t, i, epoch, it);
            chunk_forward_backward(t, i, beta);
        }
    }
    if (h->backward) h->backward(t);
    int bad = reduce_and_update(t);

    double sums[2];
    reduce_chunk_scalars(sums, t->chunk_stats, t->nloc, t->S, 2, t->comm);
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
    double *stats = xcalloc((size_t)(sp->stripe_hi - sp->stripe_lo) * 2 * sizeof(double));
    trainer_prior_components(t);
    vamp_ticker tick;
    ticker_start(&tick, t->progress_every, t->rank);
    const char *what = sp == &t->data->valid ? "validation ELBO" : sp == &t->data->test ? "test ELBO" : "ELBO";
    for (vamp_block b = block_first(sp, t->cfg.eval_batch); b.rows > 0; block_next(sp, &b)) {
        ticker_phase(&tick, what, b.row - sp->row_lo, sp->row_hi - sp->row_lo);
        for (int r = 0; r < b.rows; r++) trainer_noise(t, r, RNG_EPS_EVAL, 0, (uint64_t)(b.row + r));
        model_forward(m, &t->acts, t->params, sp->x + (size_t)(b.row - sp->row_lo) * D, t->eps_top, t->eps1, b.rows,
                      t->pm, t->plv, 1.0f);
        for (int r = 0; r < b.rows; r++) {
            stats[2 * b.i] += t->acts.re[r];
            stats[2 * b.i + 1] += t->acts.kl[r];
        }
    }
    double sums[2];
    reduce_chunk_scalars(sums, stats, sp->stripe_hi - sp->stripe_lo, sp->stripes, 2, t->comm);
    free(stats);
    vamp_elbo e;
    e.n = sp->n;
    e.re = sums[0] / sp->n;
    e.kl = sums[1] / sp->n;
    e.loss = e.re + e.kl;
    e.bad_tensor = -1;
    return e;
}
