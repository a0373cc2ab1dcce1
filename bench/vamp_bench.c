/* vamp_bench: measured speed of the training step and the IS log-likelihood, next to this machine's sgemm peak
 * measured in the same run. Prints figures; decides nothing (speed targets are not tests).
 * usage: mpirun -np P vamp_bench [--steps N] [--models vae_standard,vae_vampprior,hvae_vampprior] [--stripes S]
 *        [--no-is] (skips the IS log-likelihood) [--shm-compare] (see below)
 *        (models: vae_*, hvae_*, convhvae_*, pixelhvae_* with * = standard or vampprior)
 * (P <= S; P need not divide S: the ranks then hold ceil(S/P) or floor(S/P) stripes each)
 * Per model at batch 100 (K = 500, 300 hidden, z = 40, stripes 4 unless --stripes: chunks of 100 / S rows): ms per step and per phase (max over ranks),
 * useful GFLOP/s and % of the sgemm peak, for train.reduce = exact and fast; IS seconds per test image at
 * S = 5000 (measured on a few images; convhvae, pixelhvae: S = 500 on one image per stripe, their decoders cost
 * ~0.35 and ~0.5 GFLOP per sample); peak resident memory per rank; on 2 or more ranks, MPI_Allreduce times
 * of doubles from 8 B to 32 MB (the input of analysis/scaling_model.py) and whether overlapping the gradient
 * allreduce with computation pays on this machine. Synthetic data, no files.
 * --shm-compare: instead of the exact and fast rows, per model four exact rows in the order no-shm, exact, exact,
 * no-shm: without the reduction's shared-memory window (VAMP_REDUCE_SHM=0) and with it (as the environment says),
 * interleaved so that the machine's drift hits both alike, each with a probe of the reduction alone (reduce_probe);
 * no IS log-likelihood.
 * vamp_bench --conv: instead, the GatedConv2d layers of the reference's convHVAE (conv.h) at batch 100 on rank 0:
 * ms forward and backward, GFLOP/s and % of the sgemm peak, scratch and activation memory. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "vamp/check.h"
#include "vamp/conv.h"
#include "vamp/eval.h"
#include "vamp/rng.h"
#include "vamp/runlog.h"
#include "vamp/train.h"

static double sgemm_peak_gflops(void)
{
    const int n = 1024;
    float *a = xmalloc((size_t)n * n * sizeof(float)), *b = xmalloc((size_t)n * n * sizeof(float)),
          *c = xcalloc((size_t)n * n * sizeof(float));
    for (size_t i = 0; i < (size_t)n * n; i++) a[i] = b[i] = 1e-3f * (float)(i % 977);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double t0 = wall_seconds();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double g = 2.0 * n * n * n / (wall_seconds() - t0) * 1e-9;
        if (g > best) best = g;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static void synthetic_split(vamp_split *s, long n, int S, int rank, int size, size_t D, uint32_t tag)
{
    s->n = n;
    s->stripes = S;
    plan_rank_stripes(S, size, rank, &s->stripe_lo, &s->stripe_hi);
    s->row_lo = stripe_start(n, S, s->stripe_lo);
    s->row_hi = stripe_start(n, S, s->stripe_hi);
    size_t rows = (size_t)(s->row_hi - s->row_lo);
    s->x = xmalloc(rows * D * sizeof(float));
    for (size_t r = 0; r < rows; r++) {
        rng_uniform_fill(s->x + r * D, D, 1, RNG_SAMPLE, tag, (uint64_t)(s->row_lo + (long)r), 0);
        for (size_t d = 0; d < D; d++) s->x[r * D + d] = s->x[r * D + d] < 0.3f ? 0.0f : s->x[r * D + d];
    }
}

/* Output positions per image of the convolution whose weight is tensor i (convhvae; the pixelhvae's PixelCNN and
 * heads are at full resolution, as the convhvae's heads). */
static double conv_positions(const vamp_model *m, int i)
{
    const vamp_conv_stack *stacks[3] = {&m->enc_conv, &m->q1_conv, &m->px_conv};
    for (int s = 0; s < 3; s++)
        for (int l = 0; l < stacks[s]->n; l++) {
            const vamp_gconv *L = &stacks[s]->l[l];
            if (i == L->h.W || i == L->g.W) return (double)L->geo.oh * L->geo.ow;
        }
    return (double)m->px_head.oh * m->px_head.ow; /* p_x_mean.conv, p_x_logvar.conv */
}

/* Useful FLOPs of one training step: forward 2*R*in*out per Linear (2*R*size*positions per convolution),
 * backward the same for dW and for dx except where the input is the data (the first layer of each encoder of x:
 * dx not needed); pseudo-inputs: the encoder on K rows, with dx. */
static double step_flops(const vamp_model *m, int B, double *is_flops_per_sample)
{
    double data = 0, pseudo = 0, is = 0;
    const char *first = m->hvae ? "q_z2_layers.0." : "q_z_layers.0.";
    for (int i = 0; i < m->layout.n; i++) {
        const vamp_tensor *t = &m->layout.t[i];
        if (t->ndim == 1 || i == m->pseudo || i == m->mog_means || i == m->mog_logvars) continue;
        double w = (double)t->size * (t->ndim == 4 ? conv_positions(m, i) : 1.0);
        int x_branch = strncmp(t->name, "q_z1_layers_x", 13) == 0;
        int from_x = strncmp(t->name, first, strlen(first)) == 0 || strncmp(t->name, "q_z1_layers_x.0.", 16) == 0;
        data += 2.0 * B * w * (from_x ? 2 : 3);
        int in_enc = strncmp(t->name, m->hvae ? "q_z2_" : "q_z_", m->hvae ? 5 : 4) == 0;
        if (in_enc && m->pseudo >= 0) pseudo += 2.0 * m->K * w * 3;
        if (!in_enc && !x_branch) is += 2.0 * w;
    }
    *is_flops_per_sample = is;
    return data + pseudo;
}

/* Parameters (= gradient floats) of the default hvae with a VampPrior on images of D pixels. */
static size_t hvae_vampprior_params(size_t D)
{
    vamp_config c;
    config_defaults(&c);
    c.model_type = MODEL_HVAE;
    c.prior = PRIOR_VAMPPRIOR;
    vamp_model m;
    model_init(&m, &c, 1, (int)D); /* the MLP sees only D */
    return m.layout.total; /* model_init allocates nothing */
}

static double max_over_ranks(double v, MPI_Comm comm)
{
    double r;
    CHECK_MPI(MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MAX, comm));
    return r;
}

static double min_over_ranks(double v, MPI_Comm comm)
{
    double r;
    CHECK_MPI(MPI_Allreduce(&v, &r, 1, MPI_DOUBLE, MPI_MIN, comm));
    return r;
}

/* Best-of time of an in-place MPI_Allreduce (MPI_DOUBLE, MPI_SUM) per size: the latency / bandwidth data of
 * analysis/scaling_model.py. Lines "allreduce P BYTES MICROSECONDS". */
static void allreduce_times(MPI_Comm comm, int size)
{
    const size_t max_n = (size_t)1 << 22; /* 32 MB of doubles */
    double *buf = xcalloc(max_n * sizeof(double));
    for (size_t n = 1; n <= max_n; n *= 8) {
        double best = INFINITY;
        int reps = n < 4096 ? 200 : 10;
        for (int r = 0; r < reps; r++) {
            CHECK_MPI(MPI_Barrier(comm));
            double t0 = wall_seconds();
            CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, comm));
            double dt = max_over_ranks(wall_seconds() - t0, comm);
            if (dt < best) best = dt;
        }
        log0(comm, "allreduce %d %zu %.2f\n", size, n * sizeof(double), best * 1e6);
    }
    free(buf);
}

/* Would overlapping the gradient allreduce with computation pay on this machine? Times GEMM work alone, a
 * blocking allreduce of n doubles alone, and MPI_Iallreduce started before the same GEMM work (MPI_Test
 * between GEMMs to progress it) and waited for after. Overlap pays if the last is below the sum of the first
 * two. On shared memory the "communication" is the same cores copying memory, so it cannot. */
static void overlap_probe(MPI_Comm comm, size_t n)
{
    const int M = 125, K = 784, N = 300, reps = 8;
    float *a = xcalloc((size_t)M * K * sizeof(float)), *b = xcalloc((size_t)K * N * sizeof(float)),
          *c = xcalloc((size_t)M * N * sizeof(float));
    double *buf = xcalloc(n * sizeof(double));
    double best[3] = {INFINITY, INFINITY, INFINITY};
    for (int trial = 0; trial < 5; trial++)
        for (int mode = 0; mode < 3; mode++) {
            MPI_Request rq = MPI_REQUEST_NULL;
            CHECK_MPI(MPI_Barrier(comm));
            double t0 = wall_seconds();
            if (mode == 1) CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, comm));
            if (mode == 2) CHECK_MPI(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, comm, &rq));
            for (int r = 0; r < reps && mode != 1; r++) {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
                int done;
                if (mode == 2) CHECK_MPI(MPI_Test(&rq, &done, MPI_STATUS_IGNORE));
            }
            if (mode == 2) CHECK_MPI(MPI_Wait(&rq, MPI_STATUS_IGNORE));
            double dt = max_over_ranks(wall_seconds() - t0, comm);
            if (dt < best[mode]) best[mode] = dt;
        }
    log0(comm, "overlap probe (%zu doubles): GEMMs %.2f ms + allreduce %.2f ms = %.2f ms apart; Iallreduce during "
         "the GEMMs %.2f ms: overlap %s here\n", n, best[0] * 1e3, best[1] * 1e3, (best[0] + best[1]) * 1e3,
         best[2] * 1e3, best[2] < best[0] + best[1] ? "pays" : "does not pay");
    free(a);
    free(b);
    free(c);
    free(buf);
}

/* The gradient reduction alone (vamp_bench --shm-compare): the trainer's own reducer_sum_owned on its chunk buffers,
 * refilled before every call (the backward writes them, so they arrive from memory, not cache), started together
 * after a barrier; per call the slowest rank's time. The fastest and the median of `calls` calls: under load a
 * step's reduce phase mostly measures one rank waiting for the other, the fastest call what the sum itself costs. */
static void reduce_probe(vamp_trainer *t, int calls, MPI_Comm comm, double *fastest, double *median)
{
    const size_t N = t->model.layout.total;
    double *ms = xmalloc((size_t)calls * sizeof(double));
    for (int k = 0; k < calls; k++) {
        for (int c = 0; c < t->nloc; c++)
            for (size_t i = 0; i < N; i++) t->chunk_grads[c][i] = 1e-3f * (float)((i + (size_t)k + (size_t)c) % 7) - 3e-3f;
        CHECK_MPI(MPI_Barrier(comm));
        const double t0 = wall_seconds();
        reducer_sum_owned(&t->red, t->grads, t->chunk_grads, t->nloc, t->S);
        ms[k] = max_over_ranks(wall_seconds() - t0, comm) * 1e3;
    }
    for (int a = 1; a < calls; a++) /* insertion sort: a few dozen values */
        for (int b = a; b > 0 && ms[b - 1] > ms[b]; b--) {
            const double x = ms[b];
            ms[b] = ms[b - 1];
            ms[b - 1] = x;
        }
    *fastest = ms[0];
    *median = ms[calls / 2];
    free(ms);
    for (int c = 0; c < t->nloc; c++) memset(t->chunk_grads[c], 0, N * sizeof(float)); /* as the trainer left them */
}

/* One model with train.reduce = exact (red 0, also the IS log-likelihood unless with_is is 0), fast (red 1) or exact
 * without the shared-memory window (red 2): the table row. */
static void bench_reduction(const char *name, const vamp_config *base, vamp_data *d, int red, int steps, double peak,
                            int with_is, int probe, MPI_Comm comm)
{
    vamp_config c = *base;
    int rank, size;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    CHECK_MPI(MPI_Comm_size(comm, &size));
    c.reduce = red == 1 ? REDUCE_FAST : REDUCE_EXACT;
    const char *label = red == 1 ? "fast" : red == 2 ? "no-shm" : "exact", *shm = getenv("VAMP_REDUCE_SHM");
    char shm_was[16] = "";
    if (shm) snprintf(shm_was, sizeof shm_was, "%s", shm);
    if (red == 2) setenv("VAMP_REDUCE_SHM", "0", 1); /* read by reducer_init */
    vamp_trainer t;
    trainer_init(&t, &c, d, comm);
    if (red == 2 && shm) setenv("VAMP_REDUCE_SHM", shm_was, 1);
    else if (red == 2) unsetenv("VAMP_REDUCE_SHM");
    for (int i = 0; i < 3; i++) trainer_step(&t, 1, i); /* warm up */
    t.t_prior = t.t_forward = t.t_backward = t.t_reduce = t.t_optim = 0;
    CHECK_MPI(MPI_Barrier(comm));
    double t0 = wall_seconds();
    for (int i = 0; i < steps; i++) trainer_step(&t, 1, 3 + i % (t.steps_per_epoch - 3));
    double step = max_over_ranks((wall_seconds() - t0) / steps, comm);
    double is_fps;
    double flops = step_flops(&t.model, c.batch_size, &is_fps);
    /* the chunk work of the slowest and the fastest rank: on a quiet machine their ratio is the load imbalance when
     * P does not divide the stripes (ceil(S/P) / floor(S/P) stripes; the others wait in the reduction) */
    double chunks_max = max_over_ranks((t.t_forward + t.t_backward) / steps, comm) * 1e3;
    double chunks_min = min_over_ranks((t.t_forward + t.t_backward) / steps, comm) * 1e3;
    double ph[5] = {t.t_prior, t.t_forward, t.t_backward, t.t_reduce, t.t_optim};
    for (int k = 0; k < 5; k++) ph[k] = max_over_ranks(ph[k] / steps, comm) * 1e3;
    double gf = flops / step * 1e-9;
    log0(comm, "%-18s %-6s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %8.1f %6.1f%%\n", name, label,
         step * 1e3, ph[0], ph[1], ph[2], ph[3], ph[4], gf, 100.0 * gf / (peak * size));
    if (size > 1)
        log0(comm, "%-18s forward + backward per step: %.2f ms on the slowest rank, %.2f on the fastest (ratio "
             "%.2f; most and fewest stripes per rank %d and %d)\n", "", chunks_max, chunks_min, chunks_max / chunks_min,
             plan_max_stripes(c.stripes, size), c.stripes / size);
    if (probe) {
        double fastest, median;
        reduce_probe(&t, 40, comm, &fastest, &median);
        log0(comm, "%-18s reduce probe (%s, %d chunks per rank of %zu floats): fastest %.2f ms, median %.2f ms\n", "",
             label, t.nloc, t.model.layout.total, fastest, median);
    }
    if (red == 0)
        log0(comm, "%-18s useful work per step: %.2f GFLOP, %zu parameters\n", "", flops * 1e-9,
             t.model.layout.total);
    if (red == 0 && with_is) {
        int S = t.model.conv ? 500 : 5000;
        float *per_image = rank == 0 ? xmalloc((size_t)d->test.n * sizeof(float)) : NULL;
        double e0 = wall_seconds();
        eval_log_likelihood(&t, &d->test, S, c.eval_block, per_image, 0);
        free(per_image);
        double per = max_over_ranks(wall_seconds() - e0, comm) / ((double)d->test.n / size);
        log0(comm, "%-18s IS log-likelihood, S = %d: %.3f s per image per rank, %.1f GFLOP/s (%.0f%% of peak)\n",
             "", S, per, is_fps * S / per * 1e-9, 100.0 * is_fps * S / per * 1e-9 / peak);
    }
    trainer_free(&t);
}

/* ---- vamp_bench --conv ------------------------------------------------------------------------------------- */

/* Best-of-reps seconds of the gated layer's forward (phase 0) or backward with every d-output (phase 1). */
static double time_gated(const vamp_conv *g, int B, int phase, int reps, float *const *t, float *scratch)
{
    const size_t nw = (size_t)g->cout * g->cin * g->k * g->k;
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = wall_seconds();
        if (phase == 0) gated_conv2d_forward(t[2], t[3], t[4], t[0], t[5], t[6], t[7], t[8], g, B, scratch);
        else gated_conv2d_backward(t[1], t[9], t[10], t[11], t[12], t[2], t[0], t[3], t[4], t[5], t[7], g, B,
                                   scratch);
        double dt = wall_seconds() - t0;
        if (dt < best) best = dt;
        if (phase == 1) memset(t[9], 0, nw * sizeof(float)); /* keep the sums from growing */
    }
    return best;
}

/* One row of the table: the GatedConv2d (two convolutions) of geometry g on B images. */
static void bench_conv_layer(const char *name, vamp_conv g, int B, double peak)
{
    const size_t nx = (size_t)B * g.cin * g.h * g.w, ny = (size_t)B * g.cout * g.oh * g.ow;
    const size_t nw = (size_t)g.cout * g.cin * g.k * g.k, nc = (size_t)g.cout;
    const size_t sizes[13] = {nx, nx, ny, ny, ny, nw, nc, nw, nc, nw, nc, nw, nc};
    float *t[13]; /* x dx y h g Wh bh Wg bg dWh dbh dWg dbg */
    for (int i = 0; i < 13; i++) {
        t[i] = xcalloc(sizes[i] * sizeof(float));
        for (size_t j = 0; j < sizes[i]; j++) t[i][j] = 1e-2f * (float)((j * 7 + (size_t)i) % 199) - 0.99f;
    }
    const size_t scratch_n = gated_conv2d_scratch_floats(&g);
    float *scratch = xmalloc(scratch_n * sizeof(float));
    const int reps = 5;
    double fwd = time_gated(&g, B, 0, reps, t, scratch), bwd = time_gated(&g, B, 1, reps, t, scratch);
    /* useful FLOPs: two convolutions of 2 B cout oh ow cin k k each; the backward twice that (dW and dx) */
    const double f = 2.0 * 2.0 * B * (double)g.cout * g.oh * g.ow * g.cin * g.k * g.k;
    printf("%-22s %8.2f %8.2f %8.1f %8.1f %6.1f%% %9.1f %9.1f\n", name, fwd * 1e3, bwd * 1e3, f / fwd * 1e-9,
           2 * f / bwd * 1e-9, 100.0 * 3 * f / (fwd + bwd) * 1e-9 / peak, scratch_n * 4.0 / 1024.0,
           3.0 * ny * 4.0 / (1024.0 * 1024.0));
    for (int i = 0; i < 13; i++) free(t[i]);
    free(scratch);
}

/* The GatedConv2d layers of the reference's convHVAE on 28x28 images at batch 100, on this process. */
static void bench_conv(double peak)
{
    const int B = 100;
    printf("vamp_bench --conv: GatedConv2d layers of the reference's convHVAE, batch %d, one image per GEMM; "
           "sgemm peak (1024^3, one thread): %.1f GFLOP/s\n", B, peak);
    printf("%-22s %8s %8s %8s %8s %7s %9s %9s\n", "layer", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s", "% peak",
           "scratchK", "acts MiB");
    bench_conv_layer("1->32 k7 s1 p3 28x28", conv_geom(1, 28, 28, 32, 7, 1, 3), B, peak);
    bench_conv_layer("32->32 k3 s2 p1 28x28", conv_geom(32, 28, 28, 32, 3, 2, 1), B, peak);
    bench_conv_layer("32->64 k5 s1 p2 14x14", conv_geom(32, 14, 14, 64, 5, 1, 2), B, peak);
    bench_conv_layer("64->64 k3 s2 p1 14x14", conv_geom(64, 14, 14, 64, 3, 2, 1), B, peak);
    bench_conv_layer("64->6 k3 s1 p1 7x7", conv_geom(64, 7, 7, 6, 3, 1, 1), B, peak);
    bench_conv_layer("dec 64->64 k3 s1 p1 28", conv_geom(64, 28, 28, 64, 3, 1, 1), B, peak);
    printf("(GF/s: useful FLOPs of the two convolutions, 2 B cout oh ow cin k^2 each, the backward twice that; "
           "scratchK: the backward's scratch in KiB, independent of B; acts: y, h, g kept for the backward)\n");
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm comm = MPI_COMM_WORLD;
    int rank, size;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    int steps = 30, stripes = 4, with_is = 1, conv = 0, shm_compare = 0;
    const char *models = "vae_standard,vae_vampprior,hvae_vampprior";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-is")) with_is = 0;
        else if (!strcmp(argv[i], "--conv")) conv = 1;
        else if (!strcmp(argv[i], "--shm-compare")) shm_compare = 1;
        else if (i + 1 == argc) break;
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--models")) models = argv[++i];
        else if (!strcmp(argv[i], "--stripes")) stripes = atoi(argv[++i]);
    }
    if (steps < 1 || stripes < 1 || 100 % stripes || stripes < size)
        vamp_input_error(comm, "vamp_bench: need --steps >= 1 and --stripes dividing the batch (100) and at least "
                         "the rank count (%d)", size);
    double peak = sgemm_peak_gflops();
    if (conv) {
        if (rank == 0) bench_conv(peak);
        MPI_Finalize();
        return 0;
    }
    log0(comm, "vamp_bench: %d rank(s), %d steps per measurement, data.stripes = %d (chunks of %d rows); sgemm "
         "peak (1024^3, one thread): %.1f GFLOP/s\n", size, steps, stripes, 100 / stripes, peak);
    log0(comm, "stripes per rank: at most %d, %.2f on average (the step waits for the fullest rank: ideal speed-up "
         "%.2f over 1 rank)\n", plan_max_stripes(stripes, size), (double)stripes / size,
         (double)stripes / plan_max_stripes(stripes, size));
    log0(comm, "%-18s %-6s %8s %8s %8s %8s %8s %8s %8s %7s\n", "model", "reduce", "step ms", "prior", "forward",
         "backward", "reduce", "optim", "GFLOP/s", "% peak");
    const size_t D = 784;
    char list[256];
    snprintf(list, sizeof list, "%s", models);
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ",")) {
        vamp_config c;
        config_defaults(&c);
        c.model_type = !strncmp(name, "convhvae", 8)    ? MODEL_CONVHVAE
                       : !strncmp(name, "pixelhvae", 9) ? MODEL_PIXELHVAE
                       : !strncmp(name, "hvae", 4)      ? MODEL_HVAE
                                                        : MODEL_VAE;
        const int conv = c.model_type == MODEL_CONVHVAE || c.model_type == MODEL_PIXELHVAE;
        c.prior = strstr(name, "vampprior") ? PRIOR_VAMPPRIOR : PRIOR_STANDARD;
        c.eval_samples = 5000;
        if (conv) c.eval_block = c.eval_batch = 100; /* as their presets: ~4-5.5 MB per row */
        c.stripes = stripes;
        vamp_data d;
        memset(&d, 0, sizeof d);
        d.D = D;
        d.height = d.width = 28;
        synthetic_split(&d.train, 4000, c.stripes, rank, size, D, 1);
        synthetic_split(&d.test, conv ? c.stripes : 8, c.stripes, rank, size, D, 2);
        const int order[4] = {2, 0, 0, 2};
        if (shm_compare)
            for (int k = 0; k < 4; k++) bench_reduction(name, &c, &d, order[k], steps, peak, 0, 1, comm);
        else
            for (int red = 0; red < 2; red++) bench_reduction(name, &c, &d, red, steps, peak, with_is, 0, comm);
        data_free(&d);
    }
    if (size > 1 && !shm_compare) {
        allreduce_times(comm, size);
        overlap_probe(comm, hvae_vampprior_params(D)); /* as large as the hvae + vampprior gradient */
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = max_over_ranks((double)ru.ru_maxrss / 1024.0, comm);
    log0(comm, "peak resident memory per rank: %.0f MiB\n", rss);
    MPI_Finalize();
    return 0;
}
