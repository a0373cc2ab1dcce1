/* Every kernel of conv.h against central finite differences (tests/fd_check.h) on tiny shapes with odd sizes,
 * stride 2 and padding, and the backward contract (adds; a NULL d-output is skipped); the forward passes against
 * the definitions in double; the masks 'A' and 'B'; the masked convolution's unmasked weight gradient; and
 * BatchNorm2d over a batch cut into chunks: bit-identical however the same chunks are grouped into "ranks",
 * within float tolerance of the whole batch as one chunk. */
#include "fd_check.h"

#include "vamp/conv.h"

static int piece(int n, int c, int i) { return (int)((long)n * i / c); } /* first of piece i of c */

static float *fbuf(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* y (B,cout,oh,ow) of the convolution by its definition, in double. */
static void conv_ref(double *y, const float *x, const float *W, const float *b, const vamp_conv *g, int B)
{
    for (int n = 0; n < B; n++)
        for (int o = 0; o < g->cout; o++)
            for (int oy = 0; oy < g->oh; oy++)
                for (int ox = 0; ox < g->ow; ox++) {
                    double v = b ? b[o] : 0.0;
                    for (int c = 0; c < g->cin; c++)
                        for (int ki = 0; ki < g->k; ki++)
                            for (int kj = 0; kj < g->k; kj++) {
                                int iy = oy * g->stride - g->pad + ki, ix = ox * g->stride - g->pad + kj;
                                if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) continue;
                                v += (double)x[((size_t)(n * g->cin + c) * g->h + iy) * g->w + ix] *
                                     W[((size_t)(o * g->cin + c) * g->k + ki) * g->k + kj];
                            }
                    y[((size_t)(n * g->cout + o) * g->oh + oy) * g->ow + ox] = v;
                }
}

/* ---- conv2d and masked conv2d ------------------------------------------------------------------------------ */

typedef struct {
    kcase k;
    vamp_conv g;
    int B, bias;
    float *x, *W, *b, *mask; /* (B,cin,h,w), (cout,cin,k,k), (cout), mask NULL: a plain convolution */
    float *y, *c, *scratch;  /* (B,cout,oh,ow) twice */
    size_t nx, nw, ny;
} conv_case;

static double conv_obj_plain(kcase *k)
{
    conv_case *C = (conv_case *)k;
    conv2d_forward(C->y, C->x, C->W, C->bias ? C->b : NULL, &C->g, C->B, C->scratch);
    return dot_c(C->c, C->y, C->ny);
}
static double conv_obj(kcase *k)
{
    conv_case *C = (conv_case *)k;
    if (!C->mask) return conv_obj_plain(k);
    masked_conv2d_forward(C->y, C->x, C->W, C->mask, C->bias ? C->b : NULL, &C->g, C->B, C->scratch);
    return dot_c(C->c, C->y, C->ny);
}
static void conv_bwd(kcase *k, float **d)
{
    conv_case *C = (conv_case *)k;
    float *db = C->bias ? d[2] : NULL;
    if (C->mask) masked_conv2d_backward(d[0], d[1], db, C->c, C->x, C->W, C->mask, &C->g, C->B, C->scratch);
    else conv2d_backward(d[0], d[1], db, C->c, C->x, C->W, &C->g, C->B, C->scratch);
}

static void conv_setup(conv_case *C, vamp_conv g, int B, int bias, char mask, uint64_t seed)
{
    memset(C, 0, sizeof *C);
    C->g = g;
    C->B = B;
    C->bias = bias;
    C->nx = (size_t)B * g.cin * g.h * g.w;
    C->nw = (size_t)g.cout * g.cin * g.k * g.k;
    C->ny = (size_t)B * g.cout * g.oh * g.ow;
    C->x = fbuf(C->nx), C->W = fbuf(C->nw), C->b = fbuf((size_t)g.cout);
    C->y = fbuf(C->ny), C->c = fbuf(C->ny), C->scratch = fbuf(masked_conv2d_scratch_floats(&g));
    lcg r = {seed};
    fill(&r, C->x, C->nx, -1, 1);
    fill(&r, C->W, C->nw, -1, 1);
    fill(&r, C->b, (size_t)g.cout, -1, 1);
    fill(&r, C->c, C->ny, -1, 1);
    if (mask) {
        C->mask = fbuf(C->nw);
        conv_mask_build(C->mask, g.cout, g.cin, g.k, mask);
    }
    C->k = (kcase){.name = mask == 'A' ? "masked conv A" : mask == 'B' ? "masked conv B" : "conv2d",
                   .nin = bias ? 3 : 2, .in_name = {"x", "W", "b"}, .in = {C->x, C->W, C->b},
                   .n_in = {C->nx, C->nw, (size_t)g.cout}, .objective = conv_obj, .backward = conv_bwd};
    /* the masked kernel promises autograd's full weight gradient: that of the unmasked convolution (which does
     * not depend on the weight), not that of the masked objective (zero at the masked positions) */
    if (mask) C->k.objective_for[1] = conv_obj_plain;
}

static void conv_free(conv_case *C)
{
    free(C->x), free(C->W), free(C->b), free(C->y), free(C->c), free(C->scratch), free(C->mask);
}

/* The forward pass against the definition in double (with W * mask for a masked case). */
static void check_conv_forward(conv_case *C)
{
    float *Wm = fbuf(C->nw);
    for (size_t i = 0; i < C->nw; i++) Wm[i] = C->mask ? C->W[i] * C->mask[i] : C->W[i];
    double *ref = calloc(C->ny, sizeof(double)), worst = 0.0;
    conv_ref(ref, C->x, Wm, C->bias ? C->b : NULL, &C->g, C->B);
    conv_obj(&C->k);
    for (size_t i = 0; i < C->ny; i++) worst = fmax(worst, fabs(C->y[i] - ref[i]) / fmax(1.0, fabs(ref[i])));
    printf("  %-22s forward against the definition: worst %.2e\n", C->k.name, worst);
    assert_true(worst < 1e-5);
    free(ref);
    free(Wm);
}

static void test_conv2d(void **s)
{
    (void)s;
    struct { vamp_conv g; int B, bias; } cases[] = {
        {conv_geom(2, 5, 7, 3, 3, 2, 1), 2, 1}, /* odd sizes, stride 2, padding 1 */
        {conv_geom(3, 6, 5, 2, 5, 1, 2), 2, 0}, /* k 5, padding 2, no bias */
        {conv_geom(2, 6, 6, 3, 3, 2, 0), 3, 1}, /* stride 2 not dividing: the last row and column unused */
        {conv_geom(3, 3, 5, 2, 1, 1, 0), 2, 1}, /* 1x1: no im2col */
        {conv_geom(1, 7, 5, 4, 7, 1, 3), 2, 1}, /* the reference's first layer's shape, k 7 padding 3 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        conv_case C;
        conv_setup(&C, cases[i].g, cases[i].B, cases[i].bias, 0, 100 + i);
        printf(" conv2d cin %d %dx%d cout %d k %d stride %d pad %d -> %dx%d, B %d%s\n", C.g.cin, C.g.h, C.g.w,
               C.g.cout, C.g.k, C.g.stride, C.g.pad, C.g.oh, C.g.ow, C.B, C.bias ? "" : ", no bias");
        check_conv_forward(&C);
        check_kernel(&C.k);
        conv_free(&C);
    }
}

static void test_mask_values(void **s)
{
    (void)s;
    /* k 3: the reference's mask[:, :, 1, 1 + (B):] = 0 and mask[:, :, 2:] = 0, for every (out, in) pair */
    const float A3[9] = {1, 1, 1, 1, 0, 0, 0, 0, 0}, B3[9] = {1, 1, 1, 1, 1, 0, 0, 0, 0};
    float m[2 * 3 * 25];
    for (int t = 0; t < 2; t++) {
        conv_mask_build(m, 2, 3, 3, t ? 'B' : 'A');
        for (int oc = 0; oc < 6; oc++) assert_memory_equal(m + oc * 9, t ? B3 : A3, sizeof A3);
    }
    conv_mask_build(m, 2, 3, 5, 'A'); /* k 5: two full rows, then the centre row's first two */
    for (int oc = 0; oc < 6; oc++)
        for (int i = 0; i < 25; i++) assert_true(m[oc * 25 + i] == (i < 12 ? 1.0f : 0.0f));
}

static void test_masked_conv2d(void **s)
{
    (void)s;
    for (int t = 0; t < 2; t++) {
        conv_case C, P;
        const vamp_conv g = conv_geom(2, 5, 5, 3, 3, 1, 1);
        conv_setup(&C, g, 2, 1, t ? 'B' : 'A', 200 + t);
        check_conv_forward(&C);
        check_kernel(&C.k);
        /* the same x, W, upstream as a plain convolution: dW identical (full, unmasked), dx not */
        conv_setup(&P, g, 2, 1, 0, 200 + t);
        float **gm = alloc_grads(&C.k), **gp = alloc_grads(&P.k);
        conv_bwd(&C.k, gm);
        conv_bwd(&P.k, gp);
        assert_memory_equal(gm[1], gp[1], C.nw * sizeof(float));
        int masked_nonzero = 0;
        for (size_t i = 0; i < C.nw; i++) masked_nonzero += C.mask[i] == 0.0f && gm[1][i] != 0.0f;
        printf("  %-22s dW non-zero at %d of the masked positions\n", C.k.name, masked_nonzero);
        assert_true(masked_nonzero > 0);
        assert_true(memcmp(gm[0], gp[0], C.nx * sizeof(float)) != 0);
        free_grads(&C.k, gm);
        free_grads(&P.k, gp);
        conv_free(&C);
        conv_free(&P);
    }
}

/* ---- gated conv2d -------------------------------------------------------------------------------------------- */

typedef struct {
    kcase k;
    vamp_conv g;
    int B;
    float *x, *Wh, *bh, *Wg, *bg, *y, *h, *gt, *c, *scratch;
    size_t nx, nw, ny;
} gconv_case;

static double gconv_obj(kcase *k)
{
    gconv_case *G = (gconv_case *)k;
    gated_conv2d_forward(G->y, G->h, G->gt, G->x, G->Wh, G->bh, G->Wg, G->bg, &G->g, G->B, G->scratch);
    return dot_c(G->c, G->y, G->ny);
}
static void gconv_bwd(kcase *k, float **d)
{
    gconv_case *G = (gconv_case *)k;
    gconv_obj(k);
    gated_conv2d_backward(d[0], d[1], d[2], d[3], d[4], G->c, G->x, G->h, G->gt, G->Wh, G->Wg, &G->g, G->B,
                          G->scratch);
}

static void test_gated_conv2d(void **s)
{
    (void)s;
    gconv_case G;
    memset(&G, 0, sizeof G);
    G.g = conv_geom(2, 5, 7, 3, 3, 2, 1);
    G.B = 2;
    G.nx = (size_t)G.B * 2 * 5 * 7, G.nw = 3 * 2 * 9, G.ny = (size_t)G.B * 3 * G.g.oh * G.g.ow;
    G.x = fbuf(G.nx), G.Wh = fbuf(G.nw), G.Wg = fbuf(G.nw), G.bh = fbuf(3), G.bg = fbuf(3);
    G.y = fbuf(G.ny), G.h = fbuf(G.ny), G.gt = fbuf(G.ny), G.c = fbuf(G.ny);
    G.scratch = fbuf(gated_conv2d_scratch_floats(&G.g));
    G.k = (kcase){.name = "gated conv2d", .nin = 5, .in_name = {"x", "Wh", "bh", "Wg", "bg"},
                  .in = {G.x, G.Wh, G.bh, G.Wg, G.bg}, .n_in = {G.nx, G.nw, 3, G.nw, 3},
                  .objective = gconv_obj, .backward = gconv_bwd};
    lcg r = {300};
    fill_inputs(&r, &G.k, -1, 1);
    fill(&r, G.c, G.ny, -1, 1);
    check_kernel(&G.k);
    /* the forward itself: conv_h(x) * sigmoid(conv_g(x)) */
    double *hr = calloc(G.ny, sizeof(double)), *gr = calloc(G.ny, sizeof(double)), worst = 0.0;
    conv_ref(hr, G.x, G.Wh, G.bh, &G.g, G.B);
    conv_ref(gr, G.x, G.Wg, G.bg, &G.g, G.B);
    gconv_obj(&G.k);
    for (size_t i = 0; i < G.ny; i++) worst = fmax(worst, fabs(G.y[i] - hr[i] / (1.0 + exp(-gr[i]))));
    printf("  gated conv2d forward against the definition: worst %.2e\n", worst);
    assert_true(worst < 1e-5);
    free(hr), free(gr);
    free(G.x), free(G.Wh), free(G.Wg), free(G.bh), free(G.bg), free(G.y), free(G.h), free(G.gt), free(G.c);
    free(G.scratch);
}

/* ---- BatchNorm2d --------------------------------------------------------------------------------------------- */

/* A batch of images cut into chunks (first images row0[0..nchunks]), one "rank" after another as
 * simulated ranks: rank r holds chunks [piece(nchunks, nranks, r), piece(.., r + 1)), computes their partials,
 * "allgathers" them into parts by chunk index, and combines them itself (own total, statistics, invstd). */
typedef struct {
    int B, C, HW, nchunks, nranks;
    const float *x, *gamma, *beta, *dy; /* (B,C,HW), (C), (C), (B,C,HW); dy NULL: forward only */
    float *y, *dx, *dgamma, *dbeta;     /* outputs; dgamma, dbeta: per chunk (nchunks, C), as per-chunk gradients */
    float *running_mean, *running_var;  /* updated once, by rank 0 */
} bn_run;

static void bn_gather(bn_run *R, double *parts, size_t len, int pass, const float *mean, const float *invstd)
{
    for (int rk = 0; rk < R->nranks; rk++)
        for (int j = piece(R->nchunks, R->nranks, rk); j < piece(R->nchunks, R->nranks, rk + 1); j++) {
            const int r0 = piece(R->B, R->nchunks, j), n = piece(R->B, R->nchunks, j + 1) - r0;
            const size_t o = (size_t)r0 * R->C * R->HW;
            if (pass == 0) batchnorm2d_forward_partial(parts + j * len, R->x + o, n, R->C, R->HW);
            else batchnorm2d_backward_partial(parts + j * len, R->dy + o, R->x + o, mean, invstd, n, R->C, R->HW);
        }
}

static void bn_train(bn_run *R)
{
    const int C = R->C;
    const size_t len = batchnorm2d_partial_len(C);
    double *parts = calloc(R->nchunks * len, sizeof(double)), *bparts = calloc(R->nchunks * len, sizeof(double));
    double *total = calloc(len, sizeof(double));
    float *mean = fbuf(C), *var = fbuf(C), *invstd = fbuf(C);
    bn_gather(R, parts, len, 0, NULL, NULL);
    for (int rk = 0; rk < R->nranks; rk++) { /* every rank its own combine */
        batchnorm2d_combine(total, parts, R->nchunks, len);
        batchnorm2d_stats(mean, var, invstd, total, C, 1e-5f);
        if (rk == 0 && R->running_mean) batchnorm2d_running_update(R->running_mean, R->running_var, total, C, 0.1f);
        for (int j = piece(R->nchunks, R->nranks, rk); j < piece(R->nchunks, R->nranks, rk + 1); j++) {
            const int r0 = piece(R->B, R->nchunks, j), n = piece(R->B, R->nchunks, j + 1) - r0;
            const size_t o = (size_t)r0 * C * R->HW;
            batchnorm2d_forward_apply(R->y + o, R->x + o, mean, invstd, R->gamma, R->beta, n, C, R->HW);
        }
    }
    if (R->dy) {
        bn_gather(R, bparts, len, 1, mean, invstd);
        for (int rk = 0; rk < R->nranks; rk++) {
            batchnorm2d_combine(total, bparts, R->nchunks, len);
            for (int j = piece(R->nchunks, R->nranks, rk); j < piece(R->nchunks, R->nranks, rk + 1); j++) {
                const int r0 = piece(R->B, R->nchunks, j), n = piece(R->B, R->nchunks, j + 1) - r0;
                const size_t o = (size_t)r0 * C * R->HW;
                batchnorm2d_backward_apply(R->dx ? R->dx + o : NULL, R->dgamma ? R->dgamma + (size_t)j * C : NULL,
                                           R->dbeta ? R->dbeta + (size_t)j * C : NULL, bparts + j * len, total,
                                           R->dy + o, R->x + o, mean, invstd, R->gamma, n, C, R->HW);
            }
        }
    }
    free(parts), free(bparts), free(total), free(mean), free(var), free(invstd);
}

/* per-chunk (nchunks, C) gradients summed in chunk order, as the gradient reduction would (in double) */
static void chunk_sum(float *out, const float *per_chunk, int nchunks, int C)
{
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int j = 0; j < nchunks; j++) s += per_chunk[(size_t)j * C + c];
        out[c] = (float)s;
    }
}

enum { BN_B = 3, BN_C = 2, BN_HW = 15, BN_N = BN_B * BN_C * BN_HW, BN_CHUNKS = 2 };

typedef struct {
    kcase k;
    float x[BN_N], gamma[BN_C], beta[BN_C], y[BN_N], c[BN_N];
    float dg[BN_CHUNKS * BN_C], db[BN_CHUNKS * BN_C];
} bn_case;

static double bn_obj(kcase *k)
{
    bn_case *N = (bn_case *)k;
    bn_run R = {BN_B, BN_C, BN_HW, BN_CHUNKS, 1, N->x, N->gamma, N->beta, NULL, N->y, NULL, NULL, NULL, NULL, NULL};
    bn_train(&R);
    return dot_c(N->c, N->y, BN_N);
}
static void bn_bwd(kcase *k, float **d)
{
    bn_case *N = (bn_case *)k;
    memset(N->dg, 0, sizeof N->dg);
    memset(N->db, 0, sizeof N->db);
    bn_run R = {BN_B, BN_C, BN_HW, BN_CHUNKS, 1, N->x, N->gamma, N->beta, N->c, N->y, d[0],
                d[1] ? N->dg : NULL, d[2] ? N->db : NULL, NULL, NULL};
    bn_train(&R);
    float s[BN_C];
    for (int j = 1; j < 3; j++) /* add the chunk sums, so that the d-outputs take the backward's ADD contract */
        if (d[j]) {
            chunk_sum(s, j == 1 ? N->dg : N->db, BN_CHUNKS, BN_C);
            for (int c = 0; c < BN_C; c++) d[j][c] += s[c];
        }
}

static void test_batchnorm_fd(void **s)
{
    (void)s;
    bn_case N;
    memset(&N, 0, sizeof N);
    N.k = (kcase){.name = "batchnorm2d (2 chunks)", .nin = 3, .in_name = {"x", "gamma", "beta"},
                  .in = {N.x, N.gamma, N.beta}, .n_in = {BN_N, BN_C, BN_C}, .objective = bn_obj,
                  .backward = bn_bwd};
    lcg r = {400};
    fill_inputs(&r, &N.k, -1, 1);
    for (int i = 0; i < BN_N; i++) N.x[i] += (i / BN_HW) % BN_C ? 0.5f : -0.3f; /* channel means off zero */
    fill(&r, N.c, BN_N, -1, 1);
    check_kernel(&N.k);
}

/* One batch (6 images, 3 channels, 7 positions) with the results of every chunking x grouping. */
enum { GB = 6, GC = 3, GHW = 7, GN = GB * GC * GHW };

typedef struct {
    float y[GN], dx[GN], dgamma[GC], dbeta[GC], rmean[GC], rvar[GC];
} bn_out;

static void bn_grouped(bn_out *o, const float *x, const float *gamma, const float *beta, const float *dy, int nchunks,
                       int nranks)
{
    float dg[6 * GC] = {0}, db[6 * GC] = {0};
    memset(o, 0, sizeof *o);
    for (int c = 0; c < GC; c++) o->rmean[c] = 0.2f * (float)c, o->rvar[c] = 1.5f - 0.25f * (float)c;
    bn_run R = {GB, GC, GHW, nchunks, nranks, x, gamma, beta, dy, o->y, o->dx, dg, db, o->rmean, o->rvar};
    bn_train(&R);
    chunk_sum(o->dgamma, dg, nchunks, GC);
    chunk_sum(o->dbeta, db, nchunks, GC);
}

/* max |a - b| / max(1, |b|) */
static double worst_rel(const float *a, const float *b, size_t n)
{
    double w = 0.0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]) / fmax(1.0, fabs((double)b[i])));
    return w;
}

/* The same chunks grouped into 1..4 "ranks": bit-identical outputs, gradients and running statistics. Other
 * chunkings (1, 2, 3, 6 chunks): within float tolerance of the whole batch as one chunk. */
static void test_batchnorm_chunks(void **s)
{
    (void)s;
    float x[GN], gamma[GC], beta[GC], dy[GN];
    lcg r = {410};
    fill(&r, x, GN, -1, 1);
    for (int i = 0; i < GN; i++) x[i] = 2.0f * x[i] + (float)((i / GHW) % GC) - 1.0f; /* means -1, 0, 1 */
    fill(&r, gamma, GC, 0.5, 1.5);
    fill(&r, beta, GC, -1, 1);
    fill(&r, dy, GN, -1, 1);
    bn_out whole, first, o;
    bn_grouped(&whole, x, gamma, beta, dy, 1, 1);
    const int chunkings[] = {1, 2, 3, 6};
    for (int ci = 0; ci < 4; ci++) {
        const int nc = chunkings[ci];
        bn_grouped(&first, x, gamma, beta, dy, nc, 1);
        for (int nr = 2; nr <= nc && nr <= 4; nr++) {
            bn_grouped(&o, x, gamma, beta, dy, nc, nr);
            if (memcmp(&o, &first, sizeof o))
                printf("  batchnorm2d: %d chunks on %d ranks differ from 1 rank\n", nc, nr);
            assert_memory_equal(&o, &first, sizeof o);
        }
        double wy = worst_rel(first.y, whole.y, GN), wdx = worst_rel(first.dx, whole.dx, GN);
        double wg = fmax(worst_rel(first.dgamma, whole.dgamma, GC), worst_rel(first.dbeta, whole.dbeta, GC));
        double wr = fmax(worst_rel(first.rmean, whole.rmean, GC), worst_rel(first.rvar, whole.rvar, GC));
        printf("  batchnorm2d %d chunk(s), bit-identical on 1..%d ranks; against 1 chunk: y %.1e, dx %.1e, "
               "dgamma/dbeta %.1e, running %.1e\n", nc, nc < 4 ? nc : 4, wy, wdx, wg, wr);
        assert_true(wy < 1e-5 && wdx < 1e-5 && wg < 1e-5 && wr < 1e-6);
    }
}

/* Training-mode output and running statistics, and evaluation mode, against torch's formulas in double. */
static void test_batchnorm_formulas(void **s)
{
    (void)s;
    float x[GN], gamma[GC], beta[GC], y[GN];
    lcg r = {420};
    fill(&r, x, GN, -1, 3);
    fill(&r, gamma, GC, 0.5, 1.5);
    fill(&r, beta, GC, -1, 1);
    bn_out o;
    bn_grouped(&o, x, gamma, beta, x, 3, 2);
    double wy = 0.0, wr = 0.0, we = 0.0;
    const double n = GB * GHW;
    batchnorm2d_eval_forward(y, x, o.rmean, o.rvar, gamma, beta, GB, GC, GHW, 1e-5f);
    for (int c = 0; c < GC; c++) {
        double m = 0.0, v = 0.0;
        for (int b = 0; b < GB; b++)
            for (int i = 0; i < GHW; i++) m += x[(b * GC + c) * GHW + i] / n;
        for (int b = 0; b < GB; b++)
            for (int i = 0; i < GHW; i++) v += pow(x[(b * GC + c) * GHW + i] - m, 2) / n; /* biased */
        wr = fmax(wr, fabs(o.rmean[c] - (0.9 * 0.2 * c + 0.1 * m)));
        wr = fmax(wr, fabs(o.rvar[c] - (0.9 * (1.5 - 0.25 * c) + 0.1 * v * n / (n - 1)))); /* unbiased */
        for (int b = 0; b < GB; b++)
            for (int i = 0; i < GHW; i++) {
                const int k = (b * GC + c) * GHW + i;
                wy = fmax(wy, fabs(o.y[k] - ((x[k] - m) / sqrt(v + 1e-5) * gamma[c] + beta[c])));
                we = fmax(we, fabs(y[k] - ((x[k] - o.rmean[c]) / sqrt(o.rvar[c] + 1e-5) * gamma[c] + beta[c])));
            }
    }
    printf("  batchnorm2d against the formulas: train y %.1e, running stats %.1e, eval y %.1e\n", wy, wr, we);
    assert_true(wy < 1e-5 && wr < 1e-6 && we < 1e-5);
}

/* ---- ReLU ---------------------------------------------------------------------------------------------------- */

enum { NR = 24 };

typedef struct {
    kcase k;
    float x[NR], y[NR], c[NR];
} relu_case;

static double relu_obj(kcase *k)
{
    relu_case *T = (relu_case *)k;
    relu_forward(T->y, T->x, NR);
    return dot_c(T->c, T->y, NR);
}
static void relu_bwd(kcase *k, float **d)
{
    relu_case *T = (relu_case *)k;
    relu_backward(d[0], T->c, T->x, NR);
}

static void test_relu(void **s)
{
    (void)s;
    relu_case T;
    memset(&T, 0, sizeof T);
    lcg r = {500};
    for (int i = 0; i < NR; i++) { /* both sides, at least 0.05 from the kink */
        float v;
        do v = lcg_range(&r, -1, 1);
        while (fabsf(v) <= 0.05f);
        T.x[i] = v;
    }
    fill(&r, T.c, NR, -1, 1);
    T.k = (kcase){.name = "relu", .nin = 1, .in_name = {"x"}, .in = {T.x}, .n_in = {NR}, .objective = relu_obj,
                  .backward = relu_bwd};
    check_kernel(&T.k);
    /* torch's gradient at the kink: 0 at x = 0 */
    float x0[2] = {0.0f, -0.0f}, y0[2], d0[2] = {0, 0}, one[2] = {1, 1};
    relu_forward(y0, x0, 2);
    relu_backward(d0, one, x0, 2);
    assert_true(y0[0] == 0.0f && y0[1] == 0.0f && d0[0] == 0.0f && d0[1] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),        cmocka_unit_test(test_mask_values),
        cmocka_unit_test(test_masked_conv2d), cmocka_unit_test(test_gated_conv2d),
        cmocka_unit_test(test_batchnorm_fd),  cmocka_unit_test(test_batchnorm_chunks),
        cmocka_unit_test(test_batchnorm_formulas), cmocka_unit_test(test_relu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
