/* The paper's VAE / HVAE: parameter table with torch state_dict names, keyed initialisation, and the forward /
 * backward pass of the ELBO for one chunk of rows. The backward pass reads as the forward pass in reverse.
 * It does not loop over batches, talk to other ranks or update parameters. */
#include "vamp/model.h"
#include "vamp/check.h"
#include "vamp/nn.h"
#include "vamp/prior.h"
#include "vamp/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGVAR_LO -6.0f /* hardtanh on every latent log-variance, as the reference */
#define LOGVAR_HI 2.0f
#define XLOGVAR_LO -4.5f /* hardtanh on the logistic log-scale */
#define XLOGVAR_HI 0.0f
#define BERN_EPS 1e-5f   /* the reference clamps Bernoulli means to [1e-5, 1-1e-5] */
#define LOGI_CLAMP (1.0f / 512.0f)
#define LOGI_BIN (1.0f / 256.0f)

/* ---- layout ------------------------------------------------------------------------------------------- */

static vamp_linear add_linear(vamp_layout *l, const char *name, int in, int out, int bias)
{
    char buf[VAMP_NAME_LEN];
    vamp_linear lin;
    snprintf(buf, sizeof buf, "%s.weight", name);
    lin.W = layout_add(l, buf, (size_t)out, (size_t)in);
    lin.b = -1;
    if (bias) {
        snprintf(buf, sizeof buf, "%s.bias", name);
        lin.b = layout_add(l, buf, (size_t)out, 0);
    }
    return lin;
}

static vamp_gated add_gated(vamp_layout *l, const char *name, int in, int out)
{
    char buf[VAMP_NAME_LEN];
    vamp_gated g;
    snprintf(buf, sizeof buf, "%s.h", name);
    g.h = add_linear(l, buf, in, out, 1);
    snprintf(buf, sizeof buf, "%s.g", name);
    g.g = add_linear(l, buf, in, out, 1);
    return g;
}

void model_init(vamp_model *m, const vamp_config *c, size_t D)
{
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->D = D;
    m->H = c->hidden;
    m->hvae = c->model_type == MODEL_HVAE;
    m->gray = c->likelihood == LIK_LOGISTIC256;
    m->prior = c->prior;
    m->Ztop = m->hvae ? c->z2 : c->z1;
    m->Z1 = m->hvae ? c->z1 : 0;
    m->K = c->prior == PRIOR_STANDARD ? 0 : c->components;
    m->pseudo = m->mog_means = m->mog_logvars = -1;

    vamp_layout *l = &m->layout;
    layout_init(l);
    const int d = (int)D, H = m->H, Zt = m->Ztop, Z1 = m->Z1;
    const char *q = m->hvae ? "q_z2" : "q_z";
    char name[VAMP_NAME_LEN];
    /* encoder of the top latent, in the reference's module order */
    snprintf(name, sizeof name, "%s_layers.0", q);
    m->enc.l1 = add_gated(l, name, d, H);
    snprintf(name, sizeof name, "%s_layers.1", q);
    m->enc.l2 = add_gated(l, name, H, H);
    snprintf(name, sizeof name, "%s_mean", q);
    m->enc.mean = add_linear(l, name, H, Zt, 1);
    snprintf(name, sizeof name, "%s_logvar.linear", q);
    m->enc.logvar = add_linear(l, name, H, Zt, 1);
    if (m->hvae) {
        m->q1_x = add_gated(l, "q_z1_layers_x.0", d, H);
        m->q1_z2 = add_gated(l, "q_z1_layers_z2.0", Zt, H);
        m->q1_joint = add_gated(l, "q_z1_layers_joint.0", 2 * H, H);
        m->q1_mean = add_linear(l, "q_z1_mean", H, Z1, 1);
        m->q1_logvar = add_linear(l, "q_z1_logvar.linear", H, Z1, 1);
        m->pz1_l1 = add_gated(l, "p_z1_layers.0", Zt, H);
        m->pz1_l2 = add_gated(l, "p_z1_layers.1", H, H);
        m->pz1_mean = add_linear(l, "p_z1_mean", H, Z1, 1);
        m->pz1_logvar = add_linear(l, "p_z1_logvar.linear", H, Z1, 1);
        m->px_z1 = add_gated(l, "p_x_layers_z1.0", Z1, H);
        m->px_z2 = add_gated(l, "p_x_layers_z2.0", Zt, H);
        m->px_joint = add_gated(l, "p_x_layers_joint.0", 2 * H, H);
    } else {
        m->px_l1 = add_gated(l, "p_x_layers.0", Zt, H);
        m->px_l2 = add_gated(l, "p_x_layers.1", H, H);
    }
    m->px_mean = add_linear(l, "p_x_mean.linear", H, d, 1);
    m->px_logvar.W = m->px_logvar.b = -1;
    if (m->gray) m->px_logvar = add_linear(l, "p_x_logvar.linear", H, d, 1);
    if (config_prior_is_vamp(m->prior))
        m->pseudo = layout_add(l, "means.linear.weight", D, (size_t)m->K); /* (D,K), before the hardtanh */
    if (m->prior == PRIOR_MOG) {
        m->mog_means = layout_add(l, "mog.means", (size_t)m->K, (size_t)Zt);
        m->mog_logvars = layout_add(l, "mog.logvars", (size_t)m->K, (size_t)Zt);
    }
}

void model_init_params(const vamp_model *m, float *params, uint64_t seed)
{
    const vamp_layout *l = &m->layout;
    for (int t = 0; t < l->n; t++) {
        const vamp_tensor *T = &l->t[t];
        float *p = params + T->offset;
        if (t == m->pseudo) {
            rng_normal_fill(p, T->size, seed, RNG_INIT, 0, (uint64_t)t, 0);
            for (size_t i = 0; i < T->size; i++) p[i] = m->cfg.pseudo_mean + m->cfg.pseudo_std * p[i];
        } else if (t == m->mog_means) {
            rng_normal_fill(p, T->size, seed, RNG_INIT, 0, (uint64_t)t, 0);
        } else if (t == m->mog_logvars) {
            memset(p, 0, T->size * sizeof(float));
        } else if (T->ndim == 2) { /* Linear weight (out, in): He-normal */
            rng_normal_fill(p, T->size, seed, RNG_INIT, 0, (uint64_t)t, 0);
            float s = sqrtf(2.0f / (float)T->shape[1]);
            for (size_t i = 0; i < T->size; i++) p[i] *= s;
        } else { /* bias right after its weight: torch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
            rng_uniform_fill(p, T->size, seed, RNG_INIT, 0, (uint64_t)t, 0);
            float bound = 1.0f / sqrtf((float)l->t[t - 1].shape[1]);
            for (size_t i = 0; i < T->size; i++) p[i] = bound * (2.0f * p[i] - 1.0f);
        }
    }
}

/* ---- activation buffers: one allocation each, carved in two passes (count, then assign) ---------------- */

typedef struct { float *base; size_t used; } carver;

static float *carve(carver *c, size_t n)
{
    float *p = c->base ? c->base + c->used : NULL;
    c->used += (n + 15) & ~(size_t)15; /* 64-byte aligned slices */
    return p;
}

static void carve_enc(carver *c, vamp_enc_acts *a, const vamp_model *m, int R, int with_pseudo)
{
    size_t RH = (size_t)R * m->H, RZ = (size_t)R * m->Ztop;
    a->rows = R;
    a->h1 = carve(c, RH); a->g1 = carve(c, RH); a->o1 = carve(c, RH);
    a->h2 = carve(c, RH); a->g2 = carve(c, RH); a->o2 = carve(c, RH);
    a->mean = carve(c, RZ); a->lv_pre = carve(c, RZ); a->logvar = carve(c, RZ);
    a->u = with_pseudo ? carve(c, (size_t)R * m->D) : NULL;
    a->du = with_pseudo ? carve(c, (size_t)R * m->D) : NULL;
    a->d_o1 = carve(c, RH); a->d_o2 = carve(c, RH); a->d_lv = carve(c, RZ);
    a->gscratch = carve(c, 2 * RH);
}

void enc_acts_init(vamp_enc_acts *a, const vamp_model *m, int rows, int with_pseudo)
{
    carver c = {NULL, 0};
    carve_enc(&c, a, m, rows, with_pseudo);
    c.base = xcalloc(c.used * sizeof(float));
    c.used = 0;
    carve_enc(&c, a, m, rows, with_pseudo);
    a->buf = c.base;
}

size_t enc_acts_floats(const vamp_model *m, int rows, int with_pseudo)
{
    vamp_enc_acts a;
    carver c = {NULL, 0};
    carve_enc(&c, &a, m, rows, with_pseudo);
    return c.used;
}

void enc_acts_free(vamp_enc_acts *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

static void carve_acts(carver *c, vamp_acts *a, const vamp_model *m, int R)
{
    size_t RH = (size_t)R * m->H, RZ = (size_t)R * m->Ztop, RZ1 = (size_t)R * m->Z1, RD = (size_t)R * m->D;
    a->rows = R;
    carve_enc(c, &a->enc, m, R, 0);
    a->z_top = carve(c, RZ); a->eps_top = carve(c, RZ);
    if (m->hvae) {
        a->q1x_h = carve(c, RH); a->q1x_g = carve(c, RH); a->q1x_o = carve(c, RH);
        a->q1z_h = carve(c, RH); a->q1z_g = carve(c, RH); a->q1z_o = carve(c, RH);
        a->q1_cat = carve(c, 2 * RH);
        a->q1j_h = carve(c, RH); a->q1j_g = carve(c, RH); a->q1j_o = carve(c, RH);
        a->q1_mean = carve(c, RZ1); a->q1_lv_pre = carve(c, RZ1); a->q1_logvar = carve(c, RZ1);
        a->z1 = carve(c, RZ1); a->eps1 = carve(c, RZ1);
        a->pz1_h1 = carve(c, RH); a->pz1_g1 = carve(c, RH); a->pz1_o1 = carve(c, RH);
        a->pz1_h2 = carve(c, RH); a->pz1_g2 = carve(c, RH); a->pz1_o2 = carve(c, RH);
        a->pz1_mean = carve(c, RZ1); a->pz1_lv_pre = carve(c, RZ1); a->pz1_logvar = carve(c, RZ1);
        a->px_cat = carve(c, 2 * RH);
        a->pxj_h = carve(c, RH); a->pxj_g = carve(c, RH); a->pxj_o = carve(c, RH);
        a->d_z1 = carve(c, RZ1); a->d_q1m = carve(c, RZ1); a->d_q1lv = carve(c, RZ1);
        a->d_q1lvpre = carve(c, RZ1); a->d_pz1m = carve(c, RZ1); a->d_pz1lv = carve(c, RZ1);
        a->d_pz1lvpre = carve(c, RZ1);
        a->log_q1 = carve(c, (size_t)R); a->log_p1 = carve(c, (size_t)R);
    }
    a->px_h1 = carve(c, RH); a->px_g1 = carve(c, RH); a->px_o1 = carve(c, RH);
    a->px_h2 = carve(c, RH); a->px_g2 = carve(c, RH); a->px_o2 = carve(c, RH);
    a->x_pre = carve(c, RD); a->x_mean = carve(c, RD);
    if (m->gray) { a->xlv_pre = carve(c, RD); a->x_logvar = carve(c, RD); }
    a->re = carve(c, (size_t)R); a->kl = carve(c, (size_t)R);
    a->log_q_top = carve(c, (size_t)R); a->log_p_top = carve(c, (size_t)R);
    a->resp = m->K ? carve(c, (size_t)R * m->K) : NULL;
    a->w_pos = carve(c, (size_t)R); a->w_neg = carve(c, (size_t)R);
    a->d_xa = carve(c, RD); a->d_xb = carve(c, RD);
    a->d_h = carve(c, RH); a->d_h2 = carve(c, RH); a->d_h3 = carve(c, RH); a->d_h4 = carve(c, RH);
    a->d_cat = carve(c, 2 * RH);
    a->gscratch = carve(c, 2 * RH);
    a->d_ztop = carve(c, RZ); a->d_mtop = carve(c, RZ); a->d_lvtop = carve(c, RZ); a->d_lvpre_top = carve(c, RZ);
}

void acts_init(vamp_acts *a, const vamp_model *m, int rows)
{
    memset(a, 0, sizeof *a);
    carver c = {NULL, 0};
    carve_acts(&c, a, m, rows);
    c.base = xcalloc(c.used * sizeof(float));
    c.used = 0;
    carve_acts(&c, a, m, rows);
    a->buf = c.base;
}

size_t acts_floats(const vamp_model *m, int rows)
{
    vamp_acts a;
    carver c = {NULL, 0};
    carve_acts(&c, &a, m, rows);
    return c.used;
}

void acts_free(vamp_acts *a)
{
    free(a->buf);
    memset(a, 0, sizeof *a);
}

/* ---- building blocks ---------------------------------------------------------------------------------- */

#define TP(P, idx) ((idx) >= 0 ? (P) + m->layout.t[(idx)].offset : NULL)

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

static void gated_fwd(const vamp_model *m, const float *P, const vamp_gated *G, float *o, float *h, float *g,
                      const float *x, int R, int in)
{
    gated_forward(o, h, g, x, TP(P, G->h.W), TP(P, G->h.b), TP(P, G->g.W), TP(P, G->g.b), R, in, m->H);
}

static void gated_bwd(const vamp_model *m, const float *P, float *Gr, const vamp_gated *G, float *dx,
                      const float *dy, const float *x, const float *h, const float *g, int R, int in,
                      float *scratch)
{
    gated_backward(dx, TP(Gr, G->h.W), TP(Gr, G->h.b), TP(Gr, G->g.W), TP(Gr, G->g.b), dy, x, h, g,
                   TP(P, G->h.W), TP(P, G->g.W), R, in, m->H, scratch);
}

static void linear_fwd(const vamp_model *m, const float *P, const vamp_linear *L, float *y, const float *x, int R,
                       int in, int out)
{
    linear_forward(y, x, TP(P, L->W), TP(P, L->b), R, in, out);
}

static void linear_bwd(const vamp_model *m, const float *P, float *Gr, const vamp_linear *L, float *dx,
                       const float *dy, const float *x, int R, int in, int out)
{
    linear_backward(dx, TP(Gr, L->W), TP(Gr, L->b), dy, x, TP(P, L->W), R, in, out);
}

/* Gaussian heads on a hidden layer: mean and hardtanh(-6,2) log-variance. */
static void heads_fwd(const vamp_model *m, const float *P, const vamp_linear *Lm, const vamp_linear *Llv,
                      float *mean, float *lv_pre, float *logvar, const float *hin, int R, int Z)
{
    linear_fwd(m, P, Lm, mean, hin, R, m->H, Z);
    linear_fwd(m, P, Llv, lv_pre, hin, R, m->H, Z);
    hardtanh_forward(logvar, lv_pre, (size_t)R * Z, LOGVAR_LO, LOGVAR_HI);
}

/* d_hin is zeroed here; d_lvpre is scratch (R,Z). */
static void heads_bwd(const vamp_model *m, const float *P, float *Gr, const vamp_linear *Lm,
                      const vamp_linear *Llv, float *d_hin, float *d_lvpre, const float *dmean,
                      const float *dlogvar, const float *lv_pre, const float *hin, int R, int Z)
{
    zero(d_lvpre, (size_t)R * Z);
    hardtanh_backward(d_lvpre, dlogvar, lv_pre, (size_t)R * Z, LOGVAR_LO, LOGVAR_HI);
    zero(d_hin, (size_t)R * m->H);
    linear_bwd(m, P, Gr, Lm, d_hin, dmean, hin, R, m->H, Z);
    linear_bwd(m, P, Gr, Llv, d_hin, d_lvpre, hin, R, m->H, Z);
}

/* The top encoder on x (R,D). */
static void top_encoder_forward(const vamp_model *m, vamp_enc_acts *e, const float *P, const float *x, int R)
{
    const vamp_top_encoder *E = &m->enc;
    gated_fwd(m, P, &E->l1, e->o1, e->h1, e->g1, x, R, (int)m->D);
    gated_fwd(m, P, &E->l2, e->o2, e->h2, e->g2, e->o1, R, m->H);
    heads_fwd(m, P, &E->mean, &E->logvar, e->mean, e->lv_pre, e->logvar, e->o2, R, m->Ztop);
}

/* dmean, dlogvar (R,Ztop) -> grads; dx (R,D) += d x (NULL: the input needs no gradient). */
static void top_encoder_backward(const vamp_model *m, vamp_enc_acts *e, const float *P, float *Gr,
                                 const float *x, const float *dmean, const float *dlogvar, float *dx, int R)
{
    const vamp_top_encoder *E = &m->enc;
    heads_bwd(m, P, Gr, &E->mean, &E->logvar, e->d_o2, e->d_lv, dmean, dlogvar, e->lv_pre, e->o2, R, m->Ztop);
    zero(e->d_o1, (size_t)R * m->H);
    gated_bwd(m, P, Gr, &E->l2, e->d_o1, e->d_o2, e->o1, e->h2, e->g2, R, m->H, e->gscratch);
    gated_bwd(m, P, Gr, &E->l1, dx, e->d_o1, x, e->h1, e->g1, R, (int)m->D, e->gscratch);
}

/* ---- pseudo-inputs -------------------------------------------------------------------------------------- */

void model_pseudo_forward(const vamp_model *m, vamp_enc_acts *a, const float *params, int k0, int k1,
                          float *pm_rows, float *plv_rows)
{
    const int R = k1 - k0, K = m->K;
    const size_t D = m->D;
    const float *W = TP(params, m->pseudo); /* (D,K): pseudo-input k is column k */
    for (int r = 0; r < R; r++)
        for (size_t d = 0; d < D; d++) {
            float v = W[d * K + (k0 + r)];
            a->u[r * D + d] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        }
    top_encoder_forward(m, a, params, a->u, R);
    memcpy(pm_rows, a->mean, (size_t)R * m->Ztop * sizeof(float));
    memcpy(plv_rows, a->logvar, (size_t)R * m->Ztop * sizeof(float));
}

void model_pseudo_backward(const vamp_model *m, vamp_enc_acts *a, const float *params, float *grads, int k0,
                           int k1, const float *dpm_rows, const float *dplv_rows)
{
    const int R = k1 - k0, K = m->K;
    const size_t D = m->D;
    zero(a->du, (size_t)R * D);
    top_encoder_backward(m, a, params, grads, a->u, dpm_rows, dplv_rows, a->du, R);
    const float *W = TP(params, m->pseudo);
    float *dW = TP(grads, m->pseudo);
    for (int r = 0; r < R; r++)
        for (size_t d = 0; d < D; d++) {
            size_t i = d * K + (k0 + r);
            if (W[i] > 0.0f && W[i] < 1.0f) dW[i] += a->du[r * D + d]; /* hardtanh(0,1) */
        }
}

/* ---- likelihoods ------------------------------------------------------------------------------------------ */

static inline float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

/* log P(bin of x) under the discretised logistic with mean mu and log-scale lv, as the reference:
 * log(sigmoid((xb + 1/256 - mu)/s) - sigmoid((xb - mu)/s) + 1e-7), xb = floor(256 x)/256. In double: the
 * difference of two close CDF values loses most float digits. Optionally its derivatives in mu and lv. */
static double logistic256_logp(float x, float mu, float lv, double *d_mu, double *d_lv)
{
    double inv = exp(-(double)lv);
    double xb = floor((double)x / LOGI_BIN) * LOGI_BIN;
    double xp = (xb + LOGI_BIN - mu) * inv, xm = (xb - mu) * inv;
    double cp = 1.0 / (1.0 + exp(-xp)), cm = 1.0 / (1.0 + exp(-xm));
    double den = cp - cm + 1e-7;
    if (d_mu) {
        double sp = cp * (1.0 - cp), sm = cm * (1.0 - cm);
        *d_mu = inv * (sm - sp) / den;
        *d_lv = (sm * xm - sp * xp) / den;
    }
    return log(den);
}

/* re (R) = -log p(x|.) from x_pre (and xlv_pre); fills x_mean (and x_logvar). */
static void likelihood_forward(const vamp_model *m, vamp_acts *a, const float *x, int R)
{
    const size_t D = m->D;
    if (m->gray) hardtanh_forward(a->x_logvar, a->xlv_pre, (size_t)R * D, XLOGVAR_LO, XLOGVAR_HI);
    for (int r = 0; r < R; r++) {
        double s = 0.0; /* a sum of D terms: double keeps it independent of D's size */
        for (size_t d = 0; d < D; d++) {
            size_t i = r * D + d;
            float p = sigm(a->x_pre[i]);
            if (!m->gray) {
                a->x_mean[i] = p;
                float pc = p < BERN_EPS ? BERN_EPS : (p > 1.0f - BERN_EPS ? 1.0f - BERN_EPS : p);
                /* binary pixels need one logarithm: the other term is exactly +-0, so the same bits */
                if (x[i] == 1.0f) s += logf(pc);
                else if (x[i] == 0.0f) s += logf(1.0f - pc);
                else s += x[i] * logf(pc) + (1.0f - x[i]) * logf(1.0f - pc);
            } else {
                float mu = p < LOGI_CLAMP ? LOGI_CLAMP : (p > 1.0f - LOGI_CLAMP ? 1.0f - LOGI_CLAMP : p);
                a->x_mean[i] = mu;
                s += logistic256_logp(x[i], mu, a->x_logvar[i], NULL, NULL);
            }
        }
        a->re[r] = (float)-s;
    }
}

/* d_xa (R,D) = d(scale * sum re)/d x_pre ; d_xb = d/d xlv_pre (gray). */
static void likelihood_backward(const vamp_model *m, vamp_acts *a, const float *x, int R, float scale)
{
    const size_t D = m->D, n = (size_t)R * D;
    for (size_t i = 0; i < n; i++) {
        float p = sigm(a->x_pre[i]);
        if (!m->gray) { /* d(-log p(x))/d logit = p - x where the clamp is inactive (torch: inclusive bounds) */
            a->d_xa[i] = (p >= BERN_EPS && p <= 1.0f - BERN_EPS) ? scale * (p - x[i]) : 0.0f;
        } else {
            double dlogp_dmu, dlogp_dlv;
            logistic256_logp(x[i], a->x_mean[i], a->x_logvar[i], &dlogp_dmu, &dlogp_dlv);
            int inside = p >= LOGI_CLAMP && p <= 1.0f - LOGI_CLAMP;
            a->d_xa[i] = inside ? (float)(-scale * dlogp_dmu * p * (1.0f - p)) : 0.0f;
            float lv = a->xlv_pre[i];
            a->d_xb[i] = (lv > XLOGVAR_LO && lv < XLOGVAR_HI) ? (float)(-scale * dlogp_dlv) : 0.0f;
        }
    }
}

/* ---- the chunk forward / backward ------------------------------------------------------------------------ */

/* hvae p(z1 | z2) on a->z_top: fills pz1_* of R rows. */
static void pz1_forward(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    gated_fwd(m, P, &m->pz1_l1, a->pz1_o1, a->pz1_h1, a->pz1_g1, a->z_top, R, m->Ztop);
    gated_fwd(m, P, &m->pz1_l2, a->pz1_o2, a->pz1_h2, a->pz1_g2, a->pz1_o1, R, m->H);
    heads_fwd(m, P, &m->pz1_mean, &m->pz1_logvar, a->pz1_mean, a->pz1_lv_pre, a->pz1_logvar, a->pz1_o2, R, m->Z1);
}

/* p(x | z) (vae, a->z_top) or p(x | z1, z2) (hvae, a->z1 and a->z_top) up to the logits x_pre (and the
 * logistic log-scale pre-activation xlv_pre). */
static void px_forward(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    const int H = m->H, Zt = m->Ztop, Z1 = m->Z1;
    const float *hin; /* input of the p(x|.) heads */
    if (m->hvae) {
        gated_fwd(m, P, &m->px_z1, a->px_o1, a->px_h1, a->px_g1, a->z1, R, Z1);
        gated_fwd(m, P, &m->px_z2, a->px_o2, a->px_h2, a->px_g2, a->z_top, R, Zt);
        for (int r = 0; r < R; r++) {
            memcpy(a->px_cat + (size_t)r * 2 * H, a->px_o1 + (size_t)r * H, H * sizeof(float));
            memcpy(a->px_cat + (size_t)r * 2 * H + H, a->px_o2 + (size_t)r * H, H * sizeof(float));
        }
        gated_fwd(m, P, &m->px_joint, a->pxj_o, a->pxj_h, a->pxj_g, a->px_cat, R, 2 * H);
        hin = a->pxj_o;
    } else {
        gated_fwd(m, P, &m->px_l1, a->px_o1, a->px_h1, a->px_g1, a->z_top, R, Zt);
        gated_fwd(m, P, &m->px_l2, a->px_o2, a->px_h2, a->px_g2, a->px_o1, R, H);
        hin = a->px_o2;
    }
    linear_fwd(m, P, &m->px_mean, a->x_pre, hin, R, H, (int)m->D);
    if (m->gray) linear_fwd(m, P, &m->px_logvar, a->xlv_pre, hin, R, H, (int)m->D);
}

void model_decode(const vamp_model *m, vamp_acts *a, const float *params, const float *z_top, const float *eps1,
                  int R, float *x_mean)
{
    const size_t n = (size_t)R * m->D;
    memcpy(a->z_top, z_top, (size_t)R * m->Ztop * sizeof(float));
    if (m->hvae) {
        pz1_forward(m, a, params, R);
        reparam_forward(a->z1, a->pz1_mean, a->pz1_logvar, eps1, (size_t)R * m->Z1);
    }
    px_forward(m, a, params, R);
    for (size_t i = 0; i < n; i++) {
        float p = 1.0f / (1.0f + expf(-a->x_pre[i]));
        if (m->gray) p = p < LOGI_CLAMP ? LOGI_CLAMP : (p > 1.0f - LOGI_CLAMP ? 1.0f - LOGI_CLAMP : p);
        x_mean[i] = p;
    }
}

void model_encode(const vamp_model *m, vamp_acts *a, const float *params, const float *x, int R)
{
    top_encoder_forward(m, &a->enc, params, x, R);
    if (m->hvae) gated_fwd(m, params, &m->q1_x, a->q1x_o, a->q1x_h, a->q1x_g, x, R, (int)m->D);
}

void model_encode_broadcast(const vamp_model *m, vamp_acts *a, int R)
{
    const size_t Zt = (size_t)m->Ztop, H = (size_t)m->H;
    for (int r = 1; r < R; r++) {
        memcpy(a->enc.mean + r * Zt, a->enc.mean, Zt * sizeof(float));
        memcpy(a->enc.logvar + r * Zt, a->enc.logvar, Zt * sizeof(float));
        if (m->hvae) memcpy(a->q1x_o + r * H, a->q1x_o, H * sizeof(float));
    }
}

double model_forward(const vamp_model *m, vamp_acts *a, const float *params, const float *x, const float *eps_top,
                     const float *eps1, int R, const float *pm, const float *plv, float beta)
{
    model_encode(m, a, params, x, R);
    return model_forward_encoded(m, a, params, x, eps_top, eps1, R, pm, plv, beta);
}

double model_forward_encoded(const vamp_model *m, vamp_acts *a, const float *params, const float *x,
                             const float *eps_top, const float *eps1, int R, const float *pm, const float *plv,
                             float beta)
{
    const float *P = params;
    const int H = m->H, Zt = m->Ztop, Z1 = m->Z1;
    a->x = x;
    memcpy(a->eps_top, eps_top, (size_t)R * Zt * sizeof(float));

    /* z_top ~ q(z_top | x), whose encoding is already in a->enc */
    reparam_forward(a->z_top, a->enc.mean, a->enc.logvar, a->eps_top, (size_t)R * Zt);
    if (m->hvae) {
        memcpy(a->eps1, eps1, (size_t)R * Z1 * sizeof(float));
        /* q(z1 | x, z2): the x-branch was computed by model_encode */
        gated_fwd(m, P, &m->q1_z2, a->q1z_o, a->q1z_h, a->q1z_g, a->z_top, R, Zt);
        for (int r = 0; r < R; r++) {
            memcpy(a->q1_cat + (size_t)r * 2 * H, a->q1x_o + (size_t)r * H, H * sizeof(float));
            memcpy(a->q1_cat + (size_t)r * 2 * H + H, a->q1z_o + (size_t)r * H, H * sizeof(float));
        }
        gated_fwd(m, P, &m->q1_joint, a->q1j_o, a->q1j_h, a->q1j_g, a->q1_cat, R, 2 * H);
        heads_fwd(m, P, &m->q1_mean, &m->q1_logvar, a->q1_mean, a->q1_lv_pre, a->q1_logvar, a->q1j_o, R, Z1);
        reparam_forward(a->z1, a->q1_mean, a->q1_logvar, a->eps1, (size_t)R * Z1);
        pz1_forward(m, a, P, R);
    }
    px_forward(m, a, P, R);
    likelihood_forward(m, a, x, R);

    /* KL terms */
    log_normal_forward(a->log_q_top, a->z_top, a->enc.mean, a->enc.logvar, R, Zt);
    if (m->K) mixture_log_prob_forward(a->log_p_top, a->resp, a->z_top, pm, plv, R, m->K, Zt);
    else log_normal_forward(a->log_p_top, a->z_top, NULL, NULL, R, Zt);
    if (m->hvae) {
        log_normal_forward(a->log_q1, a->z1, a->q1_mean, a->q1_logvar, R, Z1);
        log_normal_forward(a->log_p1, a->z1, a->pz1_mean, a->pz1_logvar, R, Z1);
    }
    double total = 0.0;
    for (int r = 0; r < R; r++) {
        float kl = a->log_q_top[r] - a->log_p_top[r];
        if (m->hvae) kl += a->log_q1[r] - a->log_p1[r];
        a->kl[r] = kl;
        total += (double)a->re[r] + (double)beta * kl;
    }
    return total;
}

void model_backward(const vamp_model *m, vamp_acts *a, const float *params, float *grads, float *dpm,
                    float *dplv, const float *pm, const float *plv, int R, float beta, float scale)
{
    const float *P = params, *x = a->x;
    float *G = grads;
    const int H = m->H, Zt = m->Ztop, Z1 = m->Z1, d = (int)m->D;
    const size_t RZ = (size_t)R * Zt, RZ1 = (size_t)R * Z1;
    for (int r = 0; r < R; r++) {
        a->w_pos[r] = scale * beta;
        a->w_neg[r] = -scale * beta;
    }
    zero(a->d_ztop, RZ);
    zero(a->d_mtop, RZ);
    zero(a->d_lvtop, RZ);
    if (m->hvae) {
        zero(a->d_z1, RZ1);
        zero(a->d_q1m, RZ1);
        zero(a->d_q1lv, RZ1);
        zero(a->d_pz1m, RZ1);
        zero(a->d_pz1lv, RZ1);
    }

    /* KL terms (reverse of their forward) */
    if (m->hvae) {
        log_normal_backward(a->d_z1, a->d_pz1m, a->d_pz1lv, a->w_neg, a->z1, a->pz1_mean, a->pz1_logvar, R, Z1);
        log_normal_backward(a->d_z1, a->d_q1m, a->d_q1lv, a->w_pos, a->z1, a->q1_mean, a->q1_logvar, R, Z1);
    }
    if (m->K) mixture_log_prob_backward(a->d_ztop, dpm, dplv, a->w_neg, a->z_top, pm, plv, a->resp, R, m->K, Zt);
    else log_normal_backward(a->d_ztop, NULL, NULL, a->w_neg, a->z_top, NULL, NULL, R, Zt);
    log_normal_backward(a->d_ztop, a->d_mtop, a->d_lvtop, a->w_pos, a->z_top, a->enc.mean, a->enc.logvar, R, Zt);

    /* p(x | .) heads */
    likelihood_backward(m, a, x, R, scale);
    const float *hin = m->hvae ? a->pxj_o : a->px_o2;
    zero(a->d_h, (size_t)R * H); /* d hin */
    linear_bwd(m, P, G, &m->px_mean, a->d_h, a->d_xa, hin, R, H, d);
    if (m->gray) linear_bwd(m, P, G, &m->px_logvar, a->d_h, a->d_xb, hin, R, H, d);

    if (m->hvae) {
        /* p(x | z1, z2) */
        zero(a->d_cat, (size_t)R * 2 * H);
        gated_bwd(m, P, G, &m->px_joint, a->d_cat, a->d_h, a->px_cat, a->pxj_h, a->pxj_g, R, 2 * H, a->gscratch);
        for (int r = 0; r < R; r++) {
            memcpy(a->d_h2 + (size_t)r * H, a->d_cat + (size_t)r * 2 * H, H * sizeof(float));
            memcpy(a->d_h3 + (size_t)r * H, a->d_cat + (size_t)r * 2 * H + H, H * sizeof(float));
        }
        gated_bwd(m, P, G, &m->px_z1, a->d_z1, a->d_h2, a->z1, a->px_h1, a->px_g1, R, Z1, a->gscratch);
        gated_bwd(m, P, G, &m->px_z2, a->d_ztop, a->d_h3, a->z_top, a->px_h2, a->px_g2, R, Zt, a->gscratch);
        /* p(z1 | z2) */
        heads_bwd(m, P, G, &m->pz1_mean, &m->pz1_logvar, a->d_h, a->d_pz1lvpre, a->d_pz1m, a->d_pz1lv,
                  a->pz1_lv_pre, a->pz1_o2, R, Z1);
        zero(a->d_h2, (size_t)R * H);
        gated_bwd(m, P, G, &m->pz1_l2, a->d_h2, a->d_h, a->pz1_o1, a->pz1_h2, a->pz1_g2, R, H, a->gscratch);
        gated_bwd(m, P, G, &m->pz1_l1, a->d_ztop, a->d_h2, a->z_top, a->pz1_h1, a->pz1_g1, R, Zt, a->gscratch);
        /* q(z1 | x, z2) */
        reparam_backward(a->d_q1m, a->d_q1lv, a->d_z1, a->q1_logvar, a->eps1, RZ1);
        heads_bwd(m, P, G, &m->q1_mean, &m->q1_logvar, a->d_h, a->d_q1lvpre, a->d_q1m, a->d_q1lv, a->q1_lv_pre,
                  a->q1j_o, R, Z1);
        zero(a->d_cat, (size_t)R * 2 * H);
        gated_bwd(m, P, G, &m->q1_joint, a->d_cat, a->d_h, a->q1_cat, a->q1j_h, a->q1j_g, R, 2 * H, a->gscratch);
        for (int r = 0; r < R; r++) {
            memcpy(a->d_h2 + (size_t)r * H, a->d_cat + (size_t)r * 2 * H, H * sizeof(float));
            memcpy(a->d_h3 + (size_t)r * H, a->d_cat + (size_t)r * 2 * H + H, H * sizeof(float));
        }
        gated_bwd(m, P, G, &m->q1_x, NULL, a->d_h2, x, a->q1x_h, a->q1x_g, R, d, a->gscratch);
        gated_bwd(m, P, G, &m->q1_z2, a->d_ztop, a->d_h3, a->z_top, a->q1z_h, a->q1z_g, R, Zt, a->gscratch);
    } else {
        zero(a->d_h2, (size_t)R * H);
        gated_bwd(m, P, G, &m->px_l2, a->d_h2, a->d_h, a->px_o1, a->px_h2, a->px_g2, R, H, a->gscratch);
        gated_bwd(m, P, G, &m->px_l1, a->d_ztop, a->d_h2, a->z_top, a->px_h1, a->px_g1, R, Zt, a->gscratch);
    }

    /* q(z_top | x) */
    reparam_backward(a->d_mtop, a->d_lvtop, a->d_ztop, a->enc.logvar, a->eps_top, RZ);
    top_encoder_backward(m, &a->enc, P, G, x, a->d_mtop, a->d_lvtop, NULL, R);
}
