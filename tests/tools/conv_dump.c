/* conv_dump: every kernel of conv.h on random inputs, dumped to HDF5 for tests/reference/conv_parity.py.
 * usage: conv_dump OUT.h5 [SEED]
 * One group per case, /<case>/ with attributes kind (conv, gated, masked, batchnorm, relu) and the geometry, and
 * datasets in torch's shapes: in/<name> (x, the upstream gradient dy, the parameters under the reference
 * module's state_dict names), out/<name> (forward outputs; BatchNorm also the running statistics after the
 * update and the evaluation-mode output with them) and grad/<name> (x and every parameter). BatchNorm runs on
 * its batch cut into 3 chunks, through partials, combine and apply, as a data-parallel step would. */
#include "vamp/check.h"
#include "vamp/h5io.h"
#include "vamp/conv.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- inputs: a splitmix64 stream (test data only: the kernels need no randomness) -------------------------- */

static uint64_t state;
static float unif(float lo, float hi)
{
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)((double)(z >> 11) * (1.0 / 9007199254740992.0));
}
static float *falloc(size_t n) { return xmalloc(n * sizeof(float)); }
static float *fzero(size_t n) { return xcalloc(n * sizeof(float)); }
static float *rnd(size_t n, float lo, float hi)
{
    float *p = falloc(n);
    for (size_t i = 0; i < n; i++) p[i] = unif(lo, hi);
    return p;
}

/* ---- HDF5 ------------------------------------------------------------------------------------------------- */

static void write_nd(hid_t g, const char *name, const float *x, int nd, const int *shape)
{
    hsize_t dims[4];
    for (int i = 0; i < nd; i++) dims[i] = (hsize_t)shape[i];
    CHECK_H5(h5_dataset_f32(g, name, nd, dims, x));
}
/* WRITE(group, name, data, dims...): a dataset of that shape */
#define WRITE(g, name, x, ...) \
    write_nd(g, name, x, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), (int[]){__VA_ARGS__})

static void attr_i(hid_t g, const char *name, int v) { CHECK_H5(h5_attr_i32(g, name, v)); }

static void attr_s(hid_t g, const char *name, const char *v) { CHECK_H5(h5_attr_utf8(g, name, v)); }

typedef struct { hid_t g, in, out, grad; } dump_group;

static dump_group group_open(hid_t f, const char *name, const char *kind)
{
    dump_group d;
    CHECK_H5(d.g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK_H5(d.in = H5Gcreate2(d.g, "in", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK_H5(d.out = H5Gcreate2(d.g, "out", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    CHECK_H5(d.grad = H5Gcreate2(d.g, "grad", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    attr_s(d.g, "kind", kind);
    return d;
}

static void group_close(dump_group *d)
{
    CHECK_H5(H5Gclose(d->grad));
    CHECK_H5(H5Gclose(d->out));
    CHECK_H5(H5Gclose(d->in));
    CHECK_H5(H5Gclose(d->g));
}

static void attr_geom(hid_t g, const vamp_conv *c)
{
    attr_i(g, "k", c->k);
    attr_i(g, "stride", c->stride);
    attr_i(g, "pad", c->pad);
}

/* ---- the cases ---------------------------------------------------------------------------------------------- */

/* Conv2d, or with mask 'A' / 'B' the reference's MaskedConv2d (W random everywhere, masked positions too). */
static void dump_conv(hid_t f, const char *name, vamp_conv g, int B, int bias, char mask)
{
    const size_t nx = (size_t)B * g.cin * g.h * g.w, nw = (size_t)g.cout * g.cin * g.k * g.k;
    const size_t ny = (size_t)B * g.cout * g.oh * g.ow;
    const float s = 1.0f / (float)g.k / (g.cin > 1 ? 1.5f : 1.0f);
    float *x = rnd(nx, -1, 1), *W = rnd(nw, -s, s), *b = bias ? rnd((size_t)g.cout, -0.5f, 0.5f) : NULL;
    float *dy = rnd(ny, -1, 1), *y = falloc(ny), *m = mask ? falloc(nw) : NULL;
    float *dx = fzero(nx), *dW = fzero(nw), *db = fzero((size_t)g.cout);
    float *scratch = falloc(masked_conv2d_scratch_floats(&g));
    if (mask) {
        conv_mask_build(m, g.cout, g.cin, g.k, mask);
        masked_conv2d_forward(y, x, W, m, b, &g, B, scratch);
        masked_conv2d_backward(dx, dW, bias ? db : NULL, dy, x, W, m, &g, B, scratch);
    } else {
        conv2d_forward(y, x, W, b, &g, B, scratch);
        conv2d_backward(dx, dW, bias ? db : NULL, dy, x, W, &g, B, scratch);
    }
    dump_group d = group_open(f, name, mask ? "masked" : "conv");
    attr_geom(d.g, &g);
    attr_s(d.g, "mask_type", mask == 'A' ? "A" : mask == 'B' ? "B" : "");
    WRITE(d.in, "x", x, B, g.cin, g.h, g.w);
    WRITE(d.in, "dy", dy, B, g.cout, g.oh, g.ow);
    WRITE(d.in, "weight", W, g.cout, g.cin, g.k, g.k);
    if (mask) WRITE(d.in, "mask", m, g.cout, g.cin, g.k, g.k);
    WRITE(d.out, "y", y, B, g.cout, g.oh, g.ow);
    WRITE(d.grad, "x", dx, B, g.cin, g.h, g.w);
    WRITE(d.grad, "weight", dW, g.cout, g.cin, g.k, g.k);
    if (bias) {
        WRITE(d.in, "bias", b, g.cout);
        WRITE(d.grad, "bias", db, g.cout);
    }
    group_close(&d);
    free(x), free(W), free(b), free(dy), free(y), free(m), free(dx), free(dW), free(db), free(scratch);
}

/* GatedConv2d: parameters named as the reference module's state_dict (h.weight, h.bias, g.weight, g.bias). */
static void dump_gated(hid_t f, const char *name, vamp_conv g, int B)
{
    const size_t nx = (size_t)B * g.cin * g.h * g.w, nw = (size_t)g.cout * g.cin * g.k * g.k;
    const size_t ny = (size_t)B * g.cout * g.oh * g.ow, nc = (size_t)g.cout;
    const float s = 1.0f / (float)g.k;
    float *x = rnd(nx, -1, 1), *Wh = rnd(nw, -s, s), *bh = rnd(nc, -.5f, .5f), *Wg = rnd(nw, -s, s);
    float *bg = rnd(nc, -.5f, .5f), *dy = rnd(ny, -1, 1);
    float *y = falloc(ny), *h = falloc(ny), *gt = falloc(ny), *dx = fzero(nx);
    float *dWh = fzero(nw), *dbh = fzero(nc), *dWg = fzero(nw), *dbg = fzero(nc);
    float *scratch = falloc(gated_conv2d_scratch_floats(&g));
    gated_conv2d_forward(y, h, gt, x, Wh, bh, Wg, bg, &g, B, scratch);
    gated_conv2d_backward(dx, dWh, dbh, dWg, dbg, dy, x, h, gt, Wh, Wg, &g, B, scratch);
    dump_group d = group_open(f, name, "gated");
    attr_geom(d.g, &g);
    WRITE(d.in, "x", x, B, g.cin, g.h, g.w);
    WRITE(d.in, "dy", dy, B, g.cout, g.oh, g.ow);
    const float *in[4] = {Wh, bh, Wg, bg}, *gr[4] = {dWh, dbh, dWg, dbg};
    const char *names[4] = {"h.weight", "h.bias", "g.weight", "g.bias"};
    for (int i = 0; i < 4; i++) {
        if (i % 2 == 0) WRITE(d.in, names[i], in[i], g.cout, g.cin, g.k, g.k);
        else WRITE(d.in, names[i], in[i], g.cout);
        if (i % 2 == 0) WRITE(d.grad, names[i], gr[i], g.cout, g.cin, g.k, g.k);
        else WRITE(d.grad, names[i], gr[i], g.cout);
    }
    WRITE(d.out, "y", y, B, g.cout, g.oh, g.ow);
    WRITE(d.grad, "x", dx, B, g.cin, g.h, g.w);
    group_close(&d);
    free(x), free(Wh), free(bh), free(Wg), free(bg), free(dy), free(y), free(h), free(gt), free(dx);
    free(dWh), free(dbh), free(dWg), free(dbg), free(scratch);
}

/* BatchNorm2d in training mode over B images cut into `chunks` pieces (partials per chunk, the ordered combine,
 * apply per chunk), the running statistics after the update, then evaluation mode with them. */
typedef struct {
    int B, C, H, W, chunks;
    float *x, *gamma, *beta, *rm, *rv, *dy;      /* inputs; rm, rv: running statistics, updated in place */
    float *y, *dx, *dgamma, *dbeta, *mean, *var, *invstd, *y_eval;
} bn_case;

static int piece(int n, int c, int i) { return (int)((long)n * i / c); }

static void bn_step(bn_case *c)
{
    const int HW = c->H * c->W, C = c->C;
    const size_t len = batchnorm2d_partial_len(C);
    double *parts = xmalloc((size_t)c->chunks * len * sizeof(double)), *total = xmalloc(len * sizeof(double));
    double *bparts = xmalloc((size_t)c->chunks * len * sizeof(double)), *btotal = xmalloc(len * sizeof(double));
    for (int j = 0; j < c->chunks; j++) {
        const int r0 = piece(c->B, c->chunks, j), n = piece(c->B, c->chunks, j + 1) - r0;
        batchnorm2d_forward_partial(parts + j * len, c->x + (size_t)r0 * C * HW, n, C, HW);
    }
    batchnorm2d_combine(total, parts, c->chunks, len);
    batchnorm2d_stats(c->mean, c->var, c->invstd, total, C, 1e-5f);
    batchnorm2d_running_update(c->rm, c->rv, total, C, 0.1f);
    for (int j = 0; j < c->chunks; j++) {
        const int r0 = piece(c->B, c->chunks, j), n = piece(c->B, c->chunks, j + 1) - r0;
        const size_t o = (size_t)r0 * C * HW;
        batchnorm2d_forward_apply(c->y + o, c->x + o, c->mean, c->invstd, c->gamma, c->beta, n, C, HW);
        batchnorm2d_backward_partial(bparts + j * len, c->dy + o, c->x + o, c->mean, c->invstd, n, C, HW);
    }
    batchnorm2d_combine(btotal, bparts, c->chunks, len);
    for (int j = 0; j < c->chunks; j++) { /* dgamma, dbeta: per-chunk shares, here summed into one buffer */
        const int r0 = piece(c->B, c->chunks, j), n = piece(c->B, c->chunks, j + 1) - r0;
        const size_t o = (size_t)r0 * C * HW;
        batchnorm2d_backward_apply(c->dx + o, c->dgamma, c->dbeta, bparts + j * len, btotal, c->dy + o, c->x + o,
                                   c->mean, c->invstd, c->gamma, n, C, HW);
    }
    batchnorm2d_eval_forward(c->y_eval, c->x, c->rm, c->rv, c->gamma, c->beta, c->B, C, HW, 1e-5f);
    free(parts), free(total), free(bparts), free(btotal);
}

static void dump_bn(hid_t f, const char *name, int B, int C, int H, int W, int chunks)
{
    const size_t n = (size_t)B * C * H * W, nc = (size_t)C;
    bn_case c = {B, C, H, W, chunks, rnd(n, -2, 2), rnd(nc, .5f, 1.5f), rnd(nc, -.5f, .5f), rnd(nc, -.5f, .5f),
                 rnd(nc, .5f, 1.5f), rnd(n, -1, 1), falloc(n), fzero(n), fzero(nc), fzero(nc), falloc(nc),
                 falloc(nc), falloc(nc), falloc(n)};
    for (size_t i = 0; i < n; i++) c.x[i] += (float)((i / ((size_t)H * W)) % nc) - 1.0f; /* channel means differ */
    dump_group d = group_open(f, name, "batchnorm");
    attr_i(d.g, "chunks", chunks);
    WRITE(d.in, "x", c.x, B, C, H, W);
    WRITE(d.in, "dy", c.dy, B, C, H, W);
    WRITE(d.in, "weight", c.gamma, C);
    WRITE(d.in, "bias", c.beta, C);
    WRITE(d.in, "running_mean", c.rm, C);
    WRITE(d.in, "running_var", c.rv, C);
    bn_step(&c);
    WRITE(d.out, "y", c.y, B, C, H, W);
    WRITE(d.out, "running_mean", c.rm, C);
    WRITE(d.out, "running_var", c.rv, C);
    WRITE(d.out, "y_eval", c.y_eval, B, C, H, W);
    WRITE(d.grad, "x", c.dx, B, C, H, W);
    WRITE(d.grad, "weight", c.dgamma, C);
    WRITE(d.grad, "bias", c.dbeta, C);
    group_close(&d);
    free(c.x), free(c.gamma), free(c.beta), free(c.rm), free(c.rv), free(c.dy), free(c.y), free(c.dx);
    free(c.dgamma), free(c.dbeta), free(c.mean), free(c.var), free(c.invstd), free(c.y_eval);
}

/* ReLU, with some inputs exactly 0 (torch's gradient there: 0). */
static void dump_relu(hid_t f, const char *name, int B, int C, int H, int W)
{
    const size_t n = (size_t)B * C * H * W;
    float *x = rnd(n, -1, 1), *dy = rnd(n, -1, 1), *y = falloc(n), *dx = fzero(n);
    for (size_t i = 0; i < n; i += 7) x[i] = 0.0f;
    relu_forward(y, x, n);
    relu_backward(dx, dy, x, n);
    dump_group d = group_open(f, name, "relu");
    WRITE(d.in, "x", x, B, C, H, W);
    WRITE(d.in, "dy", dy, B, C, H, W);
    WRITE(d.out, "y", y, B, C, H, W);
    WRITE(d.grad, "x", dx, B, C, H, W);
    group_close(&d);
    free(x), free(dy), free(y), free(dx);
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: conv_dump OUT.h5 [SEED]\n");
        return VAMP_EXIT_INPUT;
    }
    state = argc == 3 ? strtoull(argv[2], NULL, 10) : 1;
    MPI_Init(&argc, &argv);
    vamp_h5_quiet();
    hid_t f = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(f);
    dump_conv(f, "conv_k3_s2_p1", conv_geom(3, 9, 7, 5, 3, 2, 1), 4, 1, 0);
    dump_conv(f, "conv_k5_s1_p2", conv_geom(4, 10, 9, 3, 5, 1, 2), 3, 1, 0);
    dump_conv(f, "conv_k7_s1_p3", conv_geom(1, 12, 10, 8, 7, 1, 3), 3, 1, 0);
    dump_conv(f, "conv_k3_s2_p0_nobias", conv_geom(3, 8, 8, 4, 3, 2, 0), 3, 0, 0);
    dump_conv(f, "conv_k1", conv_geom(8, 5, 7, 2, 1, 1, 0), 3, 1, 0);
    dump_gated(f, "gated_k3_s2_p1", conv_geom(3, 9, 9, 4, 3, 2, 1), 3);
    dump_gated(f, "gated_k3_s1_p1", conv_geom(4, 7, 7, 4, 3, 1, 1), 2);
    dump_conv(f, "masked_A", conv_geom(3, 8, 8, 6, 3, 1, 1), 3, 0, 'A');
    dump_conv(f, "masked_B", conv_geom(6, 8, 8, 6, 3, 1, 1), 3, 0, 'B');
    dump_conv(f, "masked_B_bias", conv_geom(6, 7, 9, 5, 5, 1, 2), 2, 1, 'B');
    dump_bn(f, "batchnorm_3chunks", 7, 4, 5, 7, 3);
    dump_bn(f, "batchnorm_1chunk", 5, 3, 6, 6, 1);
    dump_relu(f, "relu", 3, 4, 5, 5);
    CHECK_H5(H5Fclose(f));
    MPI_Finalize();
    return 0;
}
