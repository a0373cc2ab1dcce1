/* parity_dump: one training-step gradient of a tiny model, dumped to HDF5 for tests/reference/compare.py.
 * usage: parity_dump OUT.h5 vae|hvae|convhvae|pixelhvae bernoulli|logistic256 standard|mog|vampprior|vampprior_data B
 *        SEED [CHUNKS]
 * It computes what a one-rank training step computes (pseudo-input encodings, chunk forward/backward with
 * scale 1/B in the model's stages with the chunks' BatchNorm sums combined in between, pseudo-input backward), with
 * the batch and the pseudo-inputs cut into CHUNKS pieces (default 1) as data.stripes cuts them, and writes /params,
 * /grads, /x, /eps_top, /eps1, /re, /kl and the loss. With BatchNorm (pixelhvae) also /running (the running
 * statistics after the step) and /eval_re, /eval_kl (the evaluation-mode terms of the batch with them).
 * Not a training run: parameters are the initialisation, pushed so that every clamp saturates somewhere.
 * Images are 3x4 for vae/hvae, 7x6 for convhvae and pixelhvae (odd and even sides through the two stride-2 layers:
 * F = 24), or SIDE x SIDE for the latter (28: the data sets' size). */
#include "vamp/check.h"
#include "vamp/h5io.h"
#include "vamp/config.h"
#include "vamp/model.h"
#include "vamp/rng.h"

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_ds(hid_t g, const char *name, const float *x, size_t r, size_t c)
{
    const hsize_t dims[2] = {r, c};
    CHECK_H5(h5_dataset_f32(g, name, c ? 2 : 1, dims, x));
}

/* A layout tensor with its torch shape (1 to 4 dimensions). */
static void write_tensor(hid_t g, const vamp_tensor *t, const float *x)
{
    hsize_t dims[VAMP_MAX_DIMS];
    for (int i = 0; i < VAMP_MAX_DIMS; i++) dims[i] = t->shape[i];
    CHECK_H5(h5_dataset_f32(g, t->name, t->ndim, dims, x));
}

static void attr_d(hid_t f, const char *name, double v) { CHECK_H5(h5_attr_double(f, name, v)); }

static void attr_s(hid_t f, const char *name, const char *v) { CHECK_H5(h5_attr_utf8(f, name, v)); }

static int lookup(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static long parse_long(const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    return (*s && !*end && v >= lo && v <= hi) ? v : lo - 1;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Moves the bias of output `unit` of a Linear so that `edge` falls midway between the two middle values of
 * that unit's pre-activation over the R rows of the last forward pass (pre (R,n)): about half of the rows then
 * sit on each side of the clamp's edge, well away from it, and the test sees whether the C backward masks
 * exactly the saturated elements. */
static void straddle(const vamp_model *m, float *params, vamp_linear lin, int unit, float edge, const float *pre,
                     int R, int n)
{
    float *b = params + m->layout.t[lin.b].offset, v[64];
    for (int r = 0; r < R; r++) v[r] = pre[(size_t)r * n + unit] - b[unit];
    qsort(v, (size_t)R, sizeof(float), cmp_float);
    b[unit] = edge - 0.5f * (v[R / 2 - 1] + v[R / 2]);
}

/* convhvae: the 1x1 convolution `conv` (one output channel, one bias for every pixel) cannot straddle two edges
 * with its bias alone; its weights and bias are scaled instead so that the pre-activations pre (n of them) of
 * the last forward pass map the midpoints at the first and third quartiles to lo and hi: a quarter of the
 * elements beyond each edge. */
static void spread(const vamp_model *m, float *params, vamp_linear conv, float lo, float hi, const float *pre,
                   size_t n)
{
    float *W = params + m->layout.t[conv.W].offset, *b = conv.b >= 0 ? params + m->layout.t[conv.b].offset : NULL;
    float *v = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = pre[i] - (b ? b[0] : 0.0f);
    qsort(v, n, sizeof(float), cmp_float);
    const float q1 = 0.5f * (v[n / 4 - 1] + v[n / 4]), q3 = 0.5f * (v[3 * n / 4 - 1] + v[3 * n / 4]);
    float s = (hi - lo) / (q3 - q1);
    if (b) {
        b[0] = lo - s * q1;
    } else if (q1 < 0.0f && q3 > 0.0f) { /* no bias (the pixelhvae's logistic heads): scale until both quartiles
                                          * pass their edges (which straddle or touch 0) */
        s = 1.5f * fmaxf(lo / q1, hi > 0.0f ? hi / q3 : 0.0f);
    }
    for (size_t i = 0; i < m->layout.t[conv.W].size; i++) W[i] *= s;
    free(v);
}

/* Puts both edges of every clamp inside the data, layer by layer (each stage changes the next's input). */
static void calibrate(const vamp_model *m, float *params, const float *x, const float *eps_top, const float *eps1,
                      int R, float beta)
{
    const int Zt = m->Ztop, Z1 = m->Z1;
    const size_t D = m->D;
    vamp_acts cal;
    acts_init(&cal, m, R);
    /* the clamps' inputs do not depend on the prior: any valid components will do */
    float *noprior = m->K ? xcalloc((size_t)m->K * Zt * sizeof(float)) : NULL;
    const float edge = m->logistic ? 6.2383246f : 11.512915f; /* logit(1 - 1/512) logistic, logit(1 - 1e-5) Bernoulli */
    model_encode(m, &cal, params, x, R);
    straddle(m, params, m->enc.logvar, 0, -6.0f, cal.enc.lv_pre, R, Zt);
    straddle(m, params, m->enc.logvar, 1, 2.0f, cal.enc.lv_pre, R, Zt);
    if (m->hvae) {
        model_forward_train(m, &cal, params, x, eps_top, eps1, R, noprior, noprior, beta);
        straddle(m, params, m->q1_logvar, 0, -6.0f, cal.q1_lv_pre, R, Z1);
        straddle(m, params, m->q1_logvar, 1, 2.0f, cal.q1_lv_pre, R, Z1);
        straddle(m, params, m->pz1_logvar, 0, -6.0f, cal.pz1_lv_pre, R, Z1);
        straddle(m, params, m->pz1_logvar, 1, 2.0f, cal.pz1_lv_pre, R, Z1);
    }
    model_forward_train(m, &cal, params, x, eps_top, eps1, R, noprior, noprior, beta);
    if (m->conv) {
        spread(m, params, m->px_mean, -edge, edge, cal.x_pre, (size_t)R * D);
        if (m->logistic) spread(m, params, m->px_logvar, -4.5f, 0.0f, cal.xlv_pre, (size_t)R * D);
    } else {
        straddle(m, params, m->px_mean, 2, -edge, cal.x_pre, R, (int)D);
        straddle(m, params, m->px_mean, 3, edge, cal.x_pre, R, (int)D);
        if (m->logistic) {
            straddle(m, params, m->px_logvar, 0, -4.5f, cal.xlv_pre, R, (int)D);
            straddle(m, params, m->px_logvar, 1, 0.0f, cal.xlv_pre, R, (int)D);
        }
    }
    acts_free(&cal);
    free(noprior);
}

/* First element of piece i when n elements are cut into c nearly equal pieces. */
static int piece(int n, int c, int i) { return (int)((long)n * i / c); }

int main(int argc, char **argv)
{
    static const char *const models[] = {"vae", "hvae", "convhvae", "pixelhvae"};
    static const char *const liks[] = {"bernoulli", "logistic256"};
    static const char *const priors[] = {"standard", "mog", "vampprior", "vampprior_data"};
    if (argc < 7 || argc > 9) {
        fprintf(stderr, "usage: parity_dump OUT.h5 vae|hvae|convhvae|pixelhvae bernoulli|logistic256 "
                        "standard|mog|vampprior|vampprior_data B SEED [CHUNKS [SIDE]]\n");
        return VAMP_EXIT_INPUT;
    }
    const int model = lookup(argv[2], models, 4), lik = lookup(argv[3], liks, 2), prior = lookup(argv[4], priors, 4);
    const long B = parse_long(argv[5], 2, 64), seed = parse_long(argv[6], 0, 1L << 40);
    const long chunks = argc >= 8 ? parse_long(argv[7], 1, 64) : 1;
    const long side = argc == 9 ? parse_long(argv[8], 5, 64) : 0; /* SIDE x SIDE images for the conv models */
    const int K = 6; /* prior components */
    if (model < 0 || lik < 0 || prior < 0 || B < 2 || seed < 0 || chunks < 1 || chunks > B || (argc == 9 && side < 5) ||
        (prior >= PRIOR_VAMPPRIOR && chunks > K)) {
        fprintf(stderr, "parity_dump: bad argument (model %s, likelihood %s, prior %s, B %s, SEED %s%s%s%s%s): "
                        "2 <= B <= 64, SEED >= 0, 1 <= CHUNKS <= B (and <= %d for a vampprior), 5 <= SIDE <= 64\n",
                argv[2], argv[3], argv[4], argv[5], argv[6], argc >= 8 ? ", CHUNKS " : "", argc >= 8 ? argv[7] : "",
                argc == 9 ? ", SIDE " : "", argc == 9 ? argv[8] : "", K);
        return VAMP_EXIT_INPUT;
    }
    MPI_Init(&argc, &argv);
    vamp_config c;
    config_defaults(&c);
    c.model_type = (vamp_model_type)model;
    c.likelihood = (vamp_likelihood)lik;
    c.prior = (vamp_prior_type)prior;
    c.hidden = 16;
    c.z1 = 5;
    c.z2 = 4;
    c.components = K;
    const int conv = model == MODEL_CONVHVAE || model == MODEL_PIXELHVAE;
    const int height = conv ? (side ? (int)side : 7) : 3, width = conv ? (side ? (int)side : 6) : 4;
    const float beta = 0.7f; /* not 1: the warm-up factor must scale only the KL */

    vamp_model m;
    model_init(&m, &c, height, width);
    const size_t D = m.D;
    const size_t N = m.layout.total;
    float *params = xmalloc(N * sizeof(float)), *grads = xcalloc(N * sizeof(float));
    model_init_params(&m, params, (uint64_t)seed);
    if (m.pseudo >= 0) { /* pseudo-inputs over (-0.25, 1.25): a third of them clamped by the hardtanh */
        float *W = params + m.layout.t[m.pseudo].offset;
        for (size_t i = 0; i < m.layout.t[m.pseudo].size; i++)
            W[i] = -0.25f + 1.5f * rng_uniform((uint64_t)seed, RNG_PSEUDO, 7, 0, (uint32_t)i);
    }
    if (m.mog_logvars >= 0) { /* non-trivial component variances */
        float *lv = params + m.layout.t[m.mog_logvars].offset;
        for (size_t i = 0; i < m.layout.t[m.mog_logvars].size; i++)
            lv[i] = 0.5f * rng_normal((uint64_t)seed, RNG_INIT, 9, 0, (uint32_t)i);
    }
    const int Zt = m.Ztop, Z1 = m.Z1, R = (int)B, C = (int)chunks;
    float *x = xmalloc((size_t)R * D * sizeof(float));
    for (size_t i = 0; i < (size_t)R * D; i++) {
        float u = rng_uniform((uint64_t)seed, RNG_BINARIZE, 1, 0, (uint32_t)i);
        x[i] = m.logistic ? (float)(int)(u * 255.999f) / 255.0f : (u < 0.4f ? 1.0f : 0.0f); /* k/255 or 0/1 */
    }
    float *eps_top = xmalloc((size_t)R * Zt * sizeof(float));
    float *eps1 = Z1 ? xmalloc((size_t)R * Z1 * sizeof(float)) : NULL;
    rng_normal_fill(eps_top, (size_t)R * Zt, (uint64_t)seed, RNG_EPS_TRAIN, 0, 0, 0);
    if (Z1) rng_normal_fill(eps1, (size_t)R * Z1, (uint64_t)seed, RNG_EPS_TRAIN, 0, 1, 0);

    calibrate(&m, params, x, eps_top, eps1, R, beta);

    /* prior components (K,Ztop) and their gradient, wired as trainer_step wires them */
    float *pm = NULL, *plv = NULL, *dpm = NULL, *dplv = NULL;
    vamp_enc_acts *pa = NULL; /* one per pseudo-input piece */
    if (m.pseudo >= 0) {
        pm = xmalloc((size_t)K * Zt * sizeof(float));
        plv = xmalloc((size_t)K * Zt * sizeof(float));
        dpm = xcalloc((size_t)K * Zt * sizeof(float));
        dplv = xcalloc((size_t)K * Zt * sizeof(float));
        pa = xmalloc((size_t)C * sizeof *pa);
        for (int i = 0; i < C; i++) {
            int k0 = piece(K, C, i), k1 = piece(K, C, i + 1);
            enc_acts_init(&pa[i], &m, k1 - k0, 1);
            model_pseudo_forward(&m, &pa[i], params, k0, k1, pm + (size_t)k0 * Zt, plv + (size_t)k0 * Zt);
        }
    } else if (m.mog_means >= 0) {
        pm = params + m.layout.t[m.mog_means].offset;
        plv = params + m.layout.t[m.mog_logvars].offset;
        dpm = grads + m.layout.t[m.mog_means].offset;
        dplv = grads + m.layout.t[m.mog_logvars].offset;
    }

    float *re = xmalloc((size_t)R * sizeof(float)), *kl = xmalloc((size_t)R * sizeof(float));
    vamp_acts *a = xmalloc((size_t)C * sizeof *a); /* each piece keeps its activations across the stages */
    for (int i = 0; i < C; i++) acts_init(&a[i], &m, piece(R, C, i + 1) - piece(R, C, i));
    const int L = model_sync_layers(&m);
    const size_t len = model_sync_len(&m);
    double *parts = xmalloc(((size_t)C * len + 1) * sizeof(double));      /* (C, len) one stage's partials */
    double *totals = xmalloc(((size_t)(L + 1) * len + 1) * sizeof(double)); /* (L, len) the forward's combines */
    double *total = totals + (size_t)L * len;
    double sum = 0.0;
    for (int s = 0; s <= L; s++) { /* the forward, stage by stage (one stage without BatchNorm) */
        for (int i = 0; i < C; i++) {
            const int r0 = piece(R, C, i), n = piece(R, C, i + 1) - r0;
            sum += model_forward_stage(&m, &a[i], params, x + (size_t)r0 * D, eps_top + (size_t)r0 * Zt,
                                       Z1 ? eps1 + (size_t)r0 * Z1 : NULL, n, pm, plv, beta, s,
                                       s ? totals + (size_t)(s - 1) * len : NULL);
            if (s < L) memcpy(parts + (size_t)i * len, a[i].bn_part + (size_t)s * len, len * sizeof(double));
        }
        if (s < L) batchnorm2d_combine(totals + (size_t)s * len, parts, C, len);
    }
    for (int s = L; s >= 0; s--) { /* and the backward */
        for (int i = 0; i < C; i++) {
            const int n = piece(R, C, i + 1) - piece(R, C, i);
            model_backward_stage(&m, &a[i], params, grads, dpm, dplv, pm, plv, n, beta, 1.0f / (float)R, s, total);
            if (s > 0) memcpy(parts + (size_t)i * len, a[i].bn_part + (size_t)(s - 1) * len, len * sizeof(double));
        }
        if (s > 0) batchnorm2d_combine(total, parts, C, len);
    }
    for (int i = 0; i < C; i++) {
        const int r0 = piece(R, C, i), n = piece(R, C, i + 1) - r0;
        memcpy(re + r0, a[i].re, (size_t)n * sizeof(float));
        memcpy(kl + r0, a[i].kl, (size_t)n * sizeof(float));
    }
    /* BatchNorm: the running statistics after the step, and the evaluation-mode terms of the batch with them */
    float *after = xmalloc(N * sizeof(float)), *eval_re = xmalloc((size_t)R * sizeof(float));
    float *eval_kl = xmalloc((size_t)R * sizeof(float));
    memcpy(after, params, N * sizeof(float));
    for (int s = 0; s < L; s++) model_bn_running_update(&m, after, s, totals + (size_t)s * len);
    for (int i = 0; L && i < C; i++) {
        const int r0 = piece(R, C, i), n = piece(R, C, i + 1) - r0;
        model_forward(&m, &a[i], after, x + (size_t)r0 * D, eps_top + (size_t)r0 * Zt,
                      Z1 ? eps1 + (size_t)r0 * Z1 : NULL, n, pm, plv, 1.0f);
        memcpy(eval_re + r0, a[i].re, (size_t)n * sizeof(float));
        memcpy(eval_kl + r0, a[i].kl, (size_t)n * sizeof(float));
    }
    if (m.pseudo >= 0)
        for (int i = 0; i < C; i++) {
            int k0 = piece(K, C, i), k1 = piece(K, C, i + 1);
            model_pseudo_backward(&m, &pa[i], params, grads, k0, k1, dpm + (size_t)k0 * Zt, dplv + (size_t)k0 * Zt);
        }

    vamp_h5_quiet();
    hid_t f = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(f);
    hid_t gp = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(gp);
    hid_t gg = H5Gcreate2(f, "grads", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(gg);
    for (int i = 0; i < m.layout.n; i++) {
        const vamp_tensor *t = &m.layout.t[i];
        write_tensor(gp, t, params + t->offset);
        write_tensor(gg, t, grads + t->offset);
    }
    CHECK_H5(H5Gclose(gp));
    CHECK_H5(H5Gclose(gg));
    if (L) {
        hid_t gr = H5Gcreate2(f, "running", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        CHECK_H5(gr);
        for (int i = 0; i < m.layout.n; i++)
            if (m.layout.t[i].buffer) write_tensor(gr, &m.layout.t[i], after + m.layout.t[i].offset);
        CHECK_H5(H5Gclose(gr));
        write_ds(f, "eval_re", eval_re, (size_t)R, 0);
        write_ds(f, "eval_kl", eval_kl, (size_t)R, 0);
    }
    write_ds(f, "x", x, (size_t)R, D);
    write_ds(f, "eps_top", eps_top, (size_t)R, (size_t)Zt);
    if (Z1) write_ds(f, "eps1", eps1, (size_t)R, (size_t)Z1);
    write_ds(f, "re", re, (size_t)R, 0);
    write_ds(f, "kl", kl, (size_t)R, 0);
    attr_d(f, "loss", sum / R);
    attr_d(f, "beta", beta);
    attr_s(f, "model", argv[2]);
    attr_s(f, "likelihood", argv[3]);
    attr_s(f, "prior", argv[4]);
    attr_d(f, "D", (double)D);
    attr_d(f, "height", height);
    attr_d(f, "width", width);
    attr_d(f, "H", c.hidden);
    attr_d(f, "Z1", c.z1);
    attr_d(f, "Z2", c.z2);
    attr_d(f, "K", K);
    attr_d(f, "B", R);
    attr_d(f, "chunks", C);
    CHECK_H5(H5Fclose(f));

    for (int i = 0; i < C; i++) acts_free(&a[i]);
    free(a);
    free(parts);
    free(totals);
    free(after);
    free(eval_re);
    free(eval_kl);
    if (pa) {
        for (int i = 0; i < C; i++) enc_acts_free(&pa[i]);
        free(pa);
        free(pm);
        free(plv);
        free(dpm);
        free(dplv);
    }
    free(re);
    free(kl);
    free(eps1);
    free(eps_top);
    free(x);
    free(grads);
    free(params);
    MPI_Finalize();
    return 0;
}
