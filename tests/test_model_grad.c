/* Finite-difference check of the whole model's gradient: for vae/hvae/convhvae/pixelhvae x bernoulli/logistic256 x every
 * prior, the
 * hand-written backward pass (pseudo-inputs through the encoder and their hardtanh, the MoG parameters) against
 * central differences of the training loss as the trainer computes it on one rank, tensor by tensor.
 * The model has kinks (hardtanh of log-variances and pseudo-inputs, the clamps of the likelihoods): the test
 * point is drawn so that every kink argument is well away from its kink (with one unit of each hardtanh far
 * outside it, so the clamped branch is checked too), and a coordinate whose stencil still straddles one is
 * detected from the forward values alone and skipped (counted; the test fails if more than 2% are).
 * The convhvae (6x5 images -> 3x3 -> 2x2: the smallest on which every tap of every kernel meets the image, odd
 * and even sides) has ~5.7e5 parameters: every tensor is checked, on CONV_COORDS coordinates spread over it, with
 * a larger step and absolute tolerance (its convolution gradients are ~1e-2, near the float noise of the finite
 * differences; test_parity checks them against float64 PyTorch to 1e-4). Its 1x1 heads share one bias over all
 * pixels, so its likelihood clamps stay unsaturated here (test_parity saturates them).
 * The pixelhvae (same images; every prior, standard and VampPrior with both likelihoods) is checked in training mode:
 * BatchNorm with the statistics of the R rows, through which
 * every row's gradient flows into every other's. Its masked taps are not checked here: the loss does not depend on
 * them, while their gradient is by design the full, unmasked one (conv.h; test_parity checks it against the
 * reference's); its running statistics are no parameters. ReLU kinks inside the PixelCNN are left to the
 * stencil's kink detection.
 * It does not compare against PyTorch (tests/reference does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vamp/config.h"
#include "vamp/conv.h"
#include "vamp/model.h"

enum { R = 4, D_MLP = 5, CONV_H = 6, CONV_W = 5, CONV_COORDS = 6 }; /* rows, pixels, convhvae image */

static const float BETA = 0.6f;
static const double FD_H_MLP = 1e-2;       /* step; the loss is float inside, so smaller steps only add noise */
/* convhvae: its convolution gradients are ~1e-2, where the float noise of a loss of ~300 over a step of 1e-2
 * (~1e-3) would drown them; its parameters are small and the loss smooth in them, so a larger step is exact
 * enough after the Richardson extrapolation; the noise left, a few float ulps of the loss over the step
 * (measured: ~5e-7 |loss| over CONV_COORDS coordinates), sets its absolute tolerance, TOL_ABS_CONV |loss| */
static const double FD_H_CONV = 1e-1;
/* pixelhvae: its loss is far more curved in each parameter (8 layers of BatchNorm, conv weights of ~0.04): a
 * smaller step (at 1e-1 the PixelCNN's gradients were off by 3%); the loss's float noise, ~1e-7 of it (measured
 * over ulp steps of one parameter), over this step then sets the absolute tolerance, TOL_ABS_PIXEL |loss| (over
 * CONV_COORDS coordinates, with the extrapolation's 5/3): gradients of ~0.1 and more (the PixelCNN's) are checked
 * to 1%, the small ones of the encoders only roughly (the convhvae checks those; test_parity checks all to 1e-4) */
static const double FD_H_PIXEL = 2e-2;
static const double TOL_ABS_PIXEL = 1e-5;
static const double TOL_ABS_CONV = 1e-6;
static const double TOL_REL = 1e-2;    /* per tensor: ||a - n|| <= TOL_REL ||n|| + TOL_ABS */
static const double TOL_ABS = 1e-4;
static const double MAX_SKIPPED = 0.02; /* fraction of coordinates that may be skipped for a kink */

/* ---- a small deterministic generator (test-local) ------------------------------------------------------- */

typedef struct { uint64_t s; } lcg;

static double lcg_unit(lcg *r) /* uniform in [0,1) */
{
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(r->s >> 11) * (1.0 / 9007199254740992.0);
}
static double lcg_normal(lcg *r)
{
    double u1 = 1.0 - lcg_unit(r), u2 = lcg_unit(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- the fixture: one configuration ----------------------------------------------------------------------- */

typedef struct {
    vamp_model m;
    vamp_acts a;
    vamp_enc_acts pa;                    /* pseudo-input encoder, vampprior only */
    float *params;                       /* (layout.total) */
    int D;                               /* pixels */
    float *x;                            /* (R,D) */
    float *eps_top, *eps1;               /* (R,Ztop), (R,Z1) */
    float *pm, *plv;                     /* (K,Ztop) vampprior components */
    float *dpm, *dplv;                   /* (K,Ztop) their gradient, vampprior only */
} fixture;

static float *tensor(const vamp_model *m, float *buf, int idx) { return buf + m->layout.t[idx].offset; }

/* The training loss, sum over rows of re + beta kl, as the trainer computes it on one rank: vampprior
 * components encoded from all K pseudo-inputs, mog components read from the parameters. */
static double loss(fixture *f)
{
    const vamp_model *m = &f->m;
    const float *pm = NULL, *plv = NULL;
    if (m->pseudo >= 0) {
        model_pseudo_forward(m, &f->pa, f->params, 0, m->K, f->pm, f->plv);
        pm = f->pm;
        plv = f->plv;
    } else if (m->mog_means >= 0) {
        pm = tensor(m, f->params, m->mog_means);
        plv = tensor(m, f->params, m->mog_logvars);
    }
    return model_forward_train(m, &f->a, f->params, f->x, f->eps_top, f->eps1, R, pm, plv, BETA);
}

/* grads (layout.total) = d(scale * loss)/d params, through the prior components as the trainer does. */
static void analytic(fixture *f, float *grads, float scale)
{
    const vamp_model *m = &f->m;
    memset(grads, 0, m->layout.total * sizeof(float));
    loss(f);
    const float *pm = NULL, *plv = NULL;
    float *dpm = NULL, *dplv = NULL;
    if (m->pseudo >= 0) {
        memset(f->dpm, 0, (size_t)m->K * m->Ztop * sizeof(float));
        memset(f->dplv, 0, (size_t)m->K * m->Ztop * sizeof(float));
        pm = f->pm;
        plv = f->plv;
        dpm = f->dpm;
        dplv = f->dplv;
    } else if (m->mog_means >= 0) {
        pm = tensor(m, f->params, m->mog_means);
        plv = tensor(m, f->params, m->mog_logvars);
        dpm = tensor(m, grads, m->mog_means);
        dplv = tensor(m, grads, m->mog_logvars);
    }
    model_backward_train(m, &f->a, f->params, grads, dpm, dplv, pm, plv, R, BETA, scale);
    if (m->pseudo >= 0) model_pseudo_backward(m, &f->pa, f->params, grads, 0, m->K, dpm, dplv);
}

/* The model's kinks (private constants of src/model.c, repeated here): hardtanh of the latent log-variances and
 * of the logistic log-scale, the clamp of the Bernoulli mean to [1e-5, 1-1e-5] and of the logistic mean to
 * [1/512, 1-1/512] (as logits: +-log((1-e)/e)). */
#define LV_LO -6.0
#define LV_HI 2.0
#define XLV_LO -4.5
#define XLV_HI 0.0
static const double BERN_LOGIT = 11.512915464920228; /* log((1 - 1e-5) / 1e-5) */
static const double LOGI_LOGIT = 6.2363695902037044; /* log(511) */

static double margin_to(const float *v, size_t n, double lo, double hi, double m)
{
    for (size_t i = 0; i < n; i++) m = fmin(m, fmin(fabs(v[i] - lo), fabs(v[i] - hi)));
    return m;
}

/* Smallest distance of any argument of a kink from it, at the current parameters (after loss()). */
static double kink_margin(const fixture *f)
{
    const vamp_model *m = &f->m;
    const int D = f->D;
    const vamp_acts *a = &f->a;
    double g = INFINITY;
    g = margin_to(a->enc.lv_pre, (size_t)R * m->Ztop, LV_LO, LV_HI, g);
    if (m->pseudo >= 0) {
        g = margin_to(f->pa.lv_pre, (size_t)m->K * m->Ztop, LV_LO, LV_HI, g);
        g = margin_to(tensor(m, f->params, m->pseudo), m->layout.t[m->pseudo].size, 0.0, 1.0, g);
    }
    if (m->hvae) {
        g = margin_to(a->q1_lv_pre, (size_t)R * m->Z1, LV_LO, LV_HI, g);
        g = margin_to(a->pz1_lv_pre, (size_t)R * m->Z1, LV_LO, LV_HI, g);
    }
    if (m->logistic) {
        g = margin_to(a->xlv_pre, (size_t)R * D, XLV_LO, XLV_HI, g);
        g = margin_to(a->x_pre, (size_t)R * D, -LOGI_LOGIT, LOGI_LOGIT, g);
    } else {
        g = margin_to(a->x_pre, (size_t)R * D, -BERN_LOGIT, BERN_LOGIT, g);
    }
    return g;
}

static void scale_tensor(const vamp_model *m, float *params, int idx, float s)
{
    float *p = tensor(m, params, idx);
    for (size_t i = 0; i < m->layout.t[idx].size; i++) p[i] *= s;
}

/* The likelihood's parameters of the MLP models. */
static void draw_px_mlp(fixture *f, lcg *r)
{
    const vamp_model *m = &f->m;
    const int D = f->D;
    if (m->logistic) { /* logistic log-scales mostly inside (-4.5, 0); pixel 0 clamped above, pixel 1 below */
        scale_tensor(m, f->params, m->px_logvar.W, 0.3f);
        float *b = tensor(m, f->params, m->px_logvar.b);
        for (int d = 0; d < D; d++) b[d] = (float)(-2.2 + 0.3 * lcg_normal(r));
        b[0] = 3.0f;
        b[1] = -7.5f;
    }
    { /* the likelihood's clamp of the mean: pixel D-1 far beyond it (small weights, large bias) */
        float *W = tensor(m, f->params, m->px_mean.W), *b = tensor(m, f->params, m->px_mean.b);
        for (int j = 0; j < m->H; j++) W[(size_t)(D - 1) * m->H + j] *= 0.3f;
        b[D - 1] = m->logistic ? 9.0f : 14.0f; /* logits beyond log(511) = 6.24 / log(1e5 - 1) = 11.5 */
    }
}

/* The convhvae's 1x1 heads: one bias for all pixels, so no pixel can be pushed alone beyond a clamp; the
 * log-scales are kept inside (-4.5, 0) (small weights, bias -2.2). */
static void draw_px_conv(fixture *f, lcg *r)
{
    const vamp_model *m = &f->m;
    if (m->pixel) { /* under ReLU outputs ~5 (see draw_point): mean logits within a few units of 0 and (no bias)
                     * negative log-scale weights for log-scales ~ -2.2, inside (-4.5, 0) */
        scale_tensor(m, f->params, m->px_mean.W, 0.2f);
        float *W = m->logistic ? tensor(m, f->params, m->px_logvar.W) : NULL;
        for (int c = 0; W && c < VAMP_PIXEL_CH; c++) W[c] = (float)(-2.2 / (5.0 * VAMP_PIXEL_CH) * (1.0 + 0.2 * lcg_normal(r)));
    } else if (m->logistic) {
        scale_tensor(m, f->params, m->px_logvar.W, 0.3f);
        tensor(m, f->params, m->px_logvar.b)[0] = (float)(-2.2 + 0.3 * lcg_normal(r));
    }
}

/* One draw of parameters, data and noise from generator r. */
static void draw_point(fixture *f, lcg *r)
{
    const vamp_model *m = &f->m;
    /* the model's own initialisation, then noise so that no bias sits at a degenerate value (a convolution's
     * weights: noise of their own init's size, so that the activations keep torch's scale) */
    model_init_params(m, f->params, 7);
    for (int t = 0; t < m->layout.n; t++) {
        const vamp_tensor *T = &m->layout.t[t];
        const double s = T->ndim == 4 ? 1.0 / sqrt((double)(T->size / T->shape[0])) : 0.15;
        for (size_t i = 0; i < T->size; i++) f->params[T->offset + i] += (float)(s * lcg_normal(r));
    }
    /* log-variance heads: small weights and biases in (-1, 0.5), so that no log-variance sits at -6 with its
     * sample far away (log-densities of -1e4 would drown the differences in float noise); one unit of each
     * hardtanh far outside it instead, so that the clamped branch is checked too */
    const vamp_linear *heads[3] = {&m->enc.logvar, &m->q1_logvar, &m->pz1_logvar};
    for (int h = 0; h < (m->hvae ? 3 : 1); h++) {
        scale_tensor(m, f->params, heads[h]->W, 0.3f);
        float *b = tensor(m, f->params, heads[h]->b);
        for (size_t i = 0; i < m->layout.t[heads[h]->b].size; i++) b[i] = (float)(-1.0 + 1.5 * lcg_unit(r));
    }
    tensor(m, f->params, m->enc.logvar.b)[0] = -9.0f; /* clamped at -6 */
    if (m->hvae) {
        tensor(m, f->params, m->q1_logvar.b)[0] = -9.0f;         /* clamped at -6 */
        tensor(m, f->params, m->pz1_logvar.b)[m->Z1 - 1] = 4.0f; /* clamped at 2 */
    }
    if (m->conv) draw_px_conv(f, r);
    else draw_px_mlp(f, r);
    for (int l = 0; m->pixel && l < VAMP_PIXEL_LAYERS; l++) { /* BatchNorm's outputs ~ N(5, 1): the PixelCNN's
        * ReLUs in their linear part (60,000 kinks at N(0, 1) put some in every stencil; at N(3, 1) the few elements
        * below -3 sigma still did, measured) */
        float *gamma = tensor(m, f->params, m->pcnn[l].gamma), *beta = tensor(m, f->params, m->pcnn[l].beta);
        for (int c = 0; c < VAMP_PIXEL_CH; c++) {
            gamma[c] = (float)(1.0 + 0.1 * lcg_normal(r));
            beta[c] = (float)(5.0 + 0.1 * lcg_normal(r));
        }
    }
    if (m->pseudo >= 0) { /* mostly inside (0,1), every fourth outside by far: both sides of the hardtanh */
        float *u = tensor(m, f->params, m->pseudo);
        for (size_t i = 0; i < m->layout.t[m->pseudo].size; i++)
            u[i] = i % 4 == 3 ? (i % 8 == 3 ? -0.3f : 1.3f)
                              : (float)(m->conv ? 0.2 + 0.6 * lcg_unit(r) : 0.1 + 0.8 * lcg_unit(r)); /* conv: D = 30 */
    }
    for (int i = 0; i < R * f->D; i++) {
        int k = (int)(256.0 * lcg_unit(r)); /* 0..255 */
        f->x[i] = m->logistic ? (float)k / 255.0f : (float)(k & 1);
    }
    for (int i = 0; i < R * m->Ztop; i++) f->eps_top[i] = (float)lcg_normal(r);
    for (int i = 0; i < R * m->Z1; i++) f->eps1[i] = (float)lcg_normal(r);
}

/* Builds the model for a configuration and draws points until every kink argument is at least MIN_MARGIN
 * from its kink (then a step of 2h in one parameter rarely crosses one; the curvature test catches the rest). */
static const double MIN_MARGIN = 0.15;

/* The small sizes every check here uses. */
static vamp_config small_config(vamp_model_type type, vamp_likelihood lik, vamp_prior_type prior)
{
    vamp_config c;
    config_defaults(&c);
    c.model_type = type;
    c.likelihood = lik;
    c.prior = prior;
    c.hidden = 6;
    c.z1 = 3;
    c.z2 = 2;
    c.components = 3;
    return c;
}

static int fixture_init(fixture *f, vamp_model_type type, vamp_likelihood lik, vamp_prior_type prior)
{
    memset(f, 0, sizeof *f);
    const vamp_config c = small_config(type, lik, prior);
    vamp_model *m = &f->m;
    if (type == MODEL_CONVHVAE || type == MODEL_PIXELHVAE) model_init(m, &c, CONV_H, CONV_W);
    else model_init(m, &c, 1, D_MLP);
    f->D = (int)m->D;
    const int D = f->D;
    int Zt = m->Ztop, Z1 = m->Z1 ? m->Z1 : 1, Kc = m->K ? m->K : 1;
    f->params = malloc(m->layout.total * sizeof(float));
    f->x = malloc((size_t)R * D * sizeof(float));
    f->eps_top = malloc((size_t)R * Zt * sizeof(float));
    f->eps1 = malloc((size_t)R * Z1 * sizeof(float));
    f->pm = calloc((size_t)Kc * Zt, sizeof(float));
    f->plv = calloc((size_t)Kc * Zt, sizeof(float));
    f->dpm = calloc((size_t)Kc * Zt, sizeof(float));
    f->dplv = calloc((size_t)Kc * Zt, sizeof(float));
    acts_init(&f->a, m, R);
    if (m->pseudo >= 0) enc_acts_init(&f->pa, m, m->K, 1);

    lcg r = {1000u + 100u * type + 10u * lik + prior};
    for (int attempt = 1; attempt <= 100; attempt++) {
        draw_point(f, &r);
        loss(f);
        if (kink_margin(f) >= MIN_MARGIN) return attempt;
    }
    return 0;
}

static void fixture_free(fixture *f)
{
    if (f->m.pseudo >= 0) enc_acts_free(&f->pa);
    acts_free(&f->a);
    free(f->params);
    free(f->x);
    free(f->eps_top);
    free(f->eps1);
    free(f->pm);
    free(f->plv);
    free(f->dpm);
    free(f->dplv);
}

/* ---- the check ----------------------------------------------------------------------------------------------- */

typedef struct { vamp_model_type type; vamp_likelihood lik; vamp_prior_type prior; } config_triple;

/* d loss / d p from central differences with steps h and 2h combined by Richardson extrapolation,
 * (4 D_h - D_2h) / 3: the h^2 error term cancels, which matters where the loss is strongly curved (gradients
 * of 30 and more at this point), while the float noise stays that of a step h. Returns NAN when a kink lies in
 * the stencil. That test is on the forward values only (never on the analytic gradient, so it cannot hide a
 * wrong backward): the curvatures estimated with steps h and 2h agree for a smooth loss (to O(h^2) plus float
 * noise, ~0.1 here) and differ by about |jump in slope| / h when a kink lies within 2h. */
static double numeric_derivative(fixture *f, float *p, double f0)
{
    const double FD_H = f->m.pixel ? FD_H_PIXEL : f->m.conv ? FD_H_CONV : FD_H_MLP;
    const float keep = *p;
    float v[4] = {(float)(keep - 2 * FD_H), (float)(keep - FD_H), (float)(keep + FD_H), (float)(keep + 2 * FD_H)};
    double fv[4];
    for (int i = 0; i < 4; i++) {
        *p = v[i];
        fv[i] = loss(f);
    }
    *p = keep;
    double c1 = (fv[2] - 2 * f0 + fv[1]) / (FD_H * FD_H), c2 = (fv[3] - 2 * f0 + fv[0]) / (4 * FD_H * FD_H);
    if (fabs(c1 - c2) > 1.0 + 0.05 * (fabs(c1) + fabs(c2))) return NAN;
    /* the steps actually taken in float */
    double d1 = (fv[2] - fv[1]) / ((double)v[2] - (double)v[1]), d2 = (fv[3] - fv[0]) / ((double)v[3] - (double)v[0]);
    return (4.0 * d1 - d2) / 3.0;
}

/* The coordinates checked in a tensor of `size`: all of them, or (convhvae) CONV_COORDS spread evenly. */
static size_t coords_of(const vamp_model *m, size_t size) { return m->conv && size > CONV_COORDS ? CONV_COORDS : size; }
static size_t coord(size_t size, size_t k, size_t n) { return (size_t)(((double)k + 0.5) * (double)size / (double)n); }

typedef struct { double err, ref; size_t checked, skipped; } tensor_check;

static double tol_abs(const vamp_model *m, double f0)
{
    return m->conv ? fmax(TOL_ABS, (m->pixel ? TOL_ABS_PIXEL : TOL_ABS_CONV) * fabs(f0)) : TOL_ABS;
}

/* pixelhvae: whether element i of tensor t is a masked tap of a PixelCNN weight (the loss does not depend on it). */
static int masked_tap(const vamp_model *m, int t, size_t i)
{
    for (int l = 0; m->pixel && l < VAMP_PIXEL_LAYERS; l++)
        if (m->pcnn[l].W == t) return !conv_mask_keeps((int)(i / 3 % 3), (int)(i % 3), 3, m->pcnn[l].mask);
    return 0;
}

/* Coordinate k of the n checked in tensor t: spread evenly, moved on to the next unmasked tap. */
static size_t checked_coord(const vamp_model *m, int t, size_t k, size_t n)
{
    size_t i = coord(m->layout.t[t].size, k, n);
    while (masked_tap(m, t, i)) i++; /* the tap at 0 of every kernel is kept, so this stays in the tensor */
    return i;
}

/* ||analytic - numeric|| and ||numeric|| over the checked coordinates of tensor t; prints them on failure. */
static tensor_check check_tensor(fixture *f, const float *g, int t, double f0, const char *label)
{
    const vamp_tensor *T = &f->m.layout.t[t];
    const size_t n = coords_of(&f->m, T->size);
    double dd = 0.0, nn = 0.0;
    tensor_check c = {0.0, 0.0, n, 0};
    for (size_t k = 0; k < n; k++) {
        const size_t i = checked_coord(&f->m, t, k, n);
        double num = numeric_derivative(f, &f->params[T->offset + i], f0);
        if (isnan(num)) {
            c.skipped++;
            continue;
        }
        double an = g[T->offset + i];
        dd += (an - num) * (an - num);
        nn += num * num;
    }
    c.err = sqrt(dd);
    c.ref = sqrt(nn);
    if (!(c.err <= TOL_REL * c.ref + tol_abs(&f->m, f0)) || c.ref == 0.0) { /* an all-zero gradient would check nothing */
        printf("  FAIL %s %s: ||a-n|| = %.3g, ||n|| = %.3g (%zu skipped)\n", label, T->name, c.err, c.ref, c.skipped);
        for (size_t k = 0; k < n; k++) { /* the coordinates, to see the pattern */
            const size_t i = checked_coord(&f->m, t, k, n);
            double num = numeric_derivative(f, &f->params[T->offset + i], f0);
            printf("       [%zu] analytic % .6f numeric % .6f\n", i, g[T->offset + i], num);
        }
    }
    if (c.skipped) printf("  %s %s: %zu of %zu coordinates skipped (kink in the stencil)\n", label, T->name,
                          c.skipped, n);
    return c;
}

static void check_config(void **state)
{
    const config_triple *ct = *state;
    fixture f;
    const int attempts = fixture_init(&f, ct->type, ct->lik, ct->prior);
    assert_true(attempts > 0); /* no point with every kink argument MIN_MARGIN from its kink in 100 draws */
    const vamp_model *m = &f.m;
    const size_t N = m->layout.total;
    char label[64];
    snprintf(label, sizeof label, "%s/%s/%s", config_model_name(ct->type), config_likelihood_name(ct->lik),
             config_prior_name(ct->prior));

    float *g = malloc(N * sizeof(float));
    analytic(&f, g, 1.0f);
    const double f0 = loss(&f);
    assert_true(isfinite(f0));

    int failures = 0, worst_t = -1;
    size_t skipped = 0, checked = 0;
    double worst_ratio = -1.0;
    for (int t = 0; t < m->layout.n; t++) {
        if (m->layout.t[t].buffer) continue; /* BatchNorm's running statistics: not in the training loss */
        tensor_check c = check_tensor(&f, g, t, f0, label);
        double ratio = c.err / (TOL_REL * c.ref + tol_abs(m, f0));
        skipped += c.skipped;
        checked += c.checked;
        if (ratio > worst_ratio) {
            worst_ratio = ratio;
            worst_t = t;
        }
        failures += !(ratio <= 1.0) || c.ref == 0.0;
    }
    const vamp_tensor *W = &m->layout.t[worst_t];
    printf("  %-31s draw %d (kink margin %.2f), loss %7.2f, %zu of %zu params, %zu skipped; worst %s: "
           "||a-n|| / (%.0e ||n|| + %.0e) = %.3f\n", label, attempts, kink_margin(&f), f0, checked, N, skipped,
           W->name, TOL_REL, tol_abs(m, f0), worst_ratio);
    assert_int_equal(failures, 0);
    assert_true((double)skipped <= MAX_SKIPPED * (double)checked);

    /* the scale argument (the trainer passes 1/batch) scales every gradient, prior components included */
    float *g4 = malloc(N * sizeof(float));
    analytic(&f, g4, 0.25f);
    for (size_t i = 0; i < N; i++) assert_true(fabs(g4[i] - 0.25 * g[i]) <= 1e-6 * fmax(1.0, fabs(g[i])));
    free(g4);
    free(g);
    fixture_free(&f);
}

static config_triple configs[] = {
    {MODEL_VAE, LIK_BERNOULLI, PRIOR_STANDARD},     {MODEL_VAE, LIK_BERNOULLI, PRIOR_MOG},
    {MODEL_VAE, LIK_BERNOULLI, PRIOR_VAMPPRIOR},    {MODEL_VAE, LIK_BERNOULLI, PRIOR_VAMPPRIOR_DATA},
    {MODEL_VAE, LIK_LOGISTIC256, PRIOR_STANDARD},   {MODEL_VAE, LIK_LOGISTIC256, PRIOR_MOG},
    {MODEL_VAE, LIK_LOGISTIC256, PRIOR_VAMPPRIOR},  {MODEL_VAE, LIK_LOGISTIC256, PRIOR_VAMPPRIOR_DATA},
    {MODEL_HVAE, LIK_BERNOULLI, PRIOR_STANDARD},    {MODEL_HVAE, LIK_BERNOULLI, PRIOR_MOG},
    {MODEL_HVAE, LIK_BERNOULLI, PRIOR_VAMPPRIOR},   {MODEL_HVAE, LIK_BERNOULLI, PRIOR_VAMPPRIOR_DATA},
    {MODEL_HVAE, LIK_LOGISTIC256, PRIOR_STANDARD},  {MODEL_HVAE, LIK_LOGISTIC256, PRIOR_MOG},
    {MODEL_HVAE, LIK_LOGISTIC256, PRIOR_VAMPPRIOR}, {MODEL_HVAE, LIK_LOGISTIC256, PRIOR_VAMPPRIOR_DATA},
    {MODEL_CONVHVAE, LIK_BERNOULLI, PRIOR_STANDARD},   {MODEL_CONVHVAE, LIK_BERNOULLI, PRIOR_MOG},
    {MODEL_CONVHVAE, LIK_BERNOULLI, PRIOR_VAMPPRIOR},  {MODEL_CONVHVAE, LIK_BERNOULLI, PRIOR_VAMPPRIOR_DATA},
    {MODEL_CONVHVAE, LIK_LOGISTIC256, PRIOR_STANDARD}, {MODEL_CONVHVAE, LIK_LOGISTIC256, PRIOR_MOG},
    {MODEL_CONVHVAE, LIK_LOGISTIC256, PRIOR_VAMPPRIOR}, {MODEL_CONVHVAE, LIK_LOGISTIC256, PRIOR_VAMPPRIOR_DATA},
    /* every prior; the standard prior and the VampPrior (pseudo-inputs through the convolutional encoder) with
     * both likelihoods */
    {MODEL_PIXELHVAE, LIK_BERNOULLI, PRIOR_STANDARD},   {MODEL_PIXELHVAE, LIK_BERNOULLI, PRIOR_VAMPPRIOR},
    {MODEL_PIXELHVAE, LIK_LOGISTIC256, PRIOR_STANDARD}, {MODEL_PIXELHVAE, LIK_LOGISTIC256, PRIOR_VAMPPRIOR},
    {MODEL_PIXELHVAE, LIK_BERNOULLI, PRIOR_MOG},        {MODEL_PIXELHVAE, LIK_LOGISTIC256, PRIOR_VAMPPRIOR_DATA},
};

/* The pixelhvae draws its pictures pixel by pixel, each pass on a band of the last L + 1 rows only (model_decode).
 * The conditional mean it records for pixel (i,j) must be the teacher-forced pass's mean at (i,j) on the finished
 * image with the same latents: the masks make pixel (i,j) depend on earlier pixels only, and the band must lose
 * nothing. 11x5 images: rows beyond L + 1 = 9, so that the band is cut. BatchNorm's running statistics are moved off
 * their initial 0 / 1 so that the evaluation mode is not the identity, and its weights to ~2, so that a band one
 * row short shows (measured: 3e-4 against 6e-8 for the right band). */
static void pixel_sampling(void **state)
{
    const vamp_likelihood lik = *(const vamp_likelihood *)*state;
    enum { PR = 3, PH = 11, PW = 5 };
    const vamp_config c = small_config(MODEL_PIXELHVAE, lik, PRIOR_STANDARD);
    vamp_model m;
    model_init(&m, &c, PH, PW);
    const size_t D = m.D, N = m.layout.total;
    float *params = malloc(N * sizeof(float)), *x = malloc(PR * D * sizeof(float));
    float *drawn = malloc(PR * D * sizeof(float)), *eps = calloc(PR * 3, sizeof(float));
    model_init_params(&m, params, 5);
    lcg r = {77u + lik};
    for (int l = 0; l < VAMP_PIXEL_LAYERS; l++) {
        float *mean = tensor(&m, params, m.pcnn[l].rmean), *var = tensor(&m, params, m.pcnn[l].rvar);
        float *gamma = tensor(&m, params, m.pcnn[l].gamma); /* > 1: a far row's influence grows layer by layer */
        for (int ch = 0; ch < VAMP_PIXEL_CH; ch++) {
            mean[ch] = (float)(0.2 * lcg_normal(&r));
            var[ch] = (float)(0.5 + lcg_unit(&r));
            gamma[ch] = (float)(2.0 + 0.2 * lcg_normal(&r));
        }
    }
    for (size_t i = 0; i < PR * D; i++) x[i] = lik == LIK_LOGISTIC256 ? (float)lcg_unit(&r) : (float)(lcg_unit(&r) < 0.4);
    vamp_acts a;
    acts_init(&a, &m, PR);
    model_forward(&m, &a, params, x, eps, eps, PR, NULL, NULL, 1.0f); /* latents: the posterior means of x */
    float *cond = malloc(PR * D * sizeof(float));
    model_decode(&m, &a, params, a.z_top, NULL, PR, cond, 9, 0);
    for (int row = 0; row < PR; row++) memcpy(drawn + row * D, a.pin + row * 3 * D, D * sizeof(float)); /* channel 0 */
    int changed = 0;
    for (size_t i = 0; i < PR * D; i++) changed += drawn[i] != x[i];
    assert_true(changed > 0); /* a drawn image, not the input */
    model_forward_encoded(&m, &a, params, drawn, eps, eps, PR, NULL, NULL, 1.0f); /* x's latents, the drawn image */
    double worst = 0.0;
    for (size_t i = 0; i < PR * D; i++) worst = fmax(worst, fabs((double)cond[i] - a.x_mean[i]));
    printf("  pixelhvae/%s: %dx%d images, max |conditional mean - teacher-forced mean| = %.2e\n",
           config_likelihood_name(lik), PH, PW, worst);
    assert_true(worst <= 2.5e-7); /* a few float ulps: the band and the full pass round differently, nothing more */
    acts_free(&a);
    free(cond);
    free(eps);
    free(drawn);
    free(x);
    free(params);
}

int main(void)
{
    enum { NCONF = sizeof configs / sizeof configs[0] };
    static const vamp_likelihood liks[2] = {LIK_BERNOULLI, LIK_LOGISTIC256};
    struct CMUnitTest tests[NCONF + 2];
    static char names[NCONF][64];
    for (int i = 0; i < NCONF; i++) {
        snprintf(names[i], sizeof names[i], "%s/%s/%s", config_model_name(configs[i].type),
                 config_likelihood_name(configs[i].lik), config_prior_name(configs[i].prior));
        tests[i] = (struct CMUnitTest)cmocka_unit_test_prestate(check_config, &configs[i]);
        tests[i].name = names[i];
    }
    for (int i = 0; i < 2; i++) {
        tests[NCONF + i] = (struct CMUnitTest)cmocka_unit_test_prestate(pixel_sampling, (void *)&liks[i]);
        tests[NCONF + i].name = i ? "pixelhvae/logistic256: sampling pixel by pixel" : "pixelhvae/bernoulli: sampling pixel by pixel";
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
