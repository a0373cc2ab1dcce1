/* The paper's VAE / HVAE / convHVAE: parameter table with torch state_dict names, keyed initialisation, and the
 * forward / backward pass of the ELBO for one chunk of rows. The backward pass reads as the forward pass in
 * reverse. The convHVAE is the HVAE with convolutional blocks swapped in (its encoders of x, p(x|z1,z2) after the
 * joint layer); everything else (p(z1|z2), the heads, the KL, the likelihood, the priors) is shared.
 * It does not loop over batches, talk to other ranks or update parameters. */
#include "vamp/model.h"
#include "vamp/alloc.h"
#include "vamp/check.h"
#include "vamp/conv.h"
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

/* buf = name + suffix: a torch state_dict key. Names are the program's own, so a key longer than the layout
 * holds is a programming error, not input. */
static void key_join(char buf[VAMP_NAME_LEN], const char *name, const char *suffix)
{
    int n = snprintf(buf, VAMP_NAME_LEN, "%s%s", name, suffix);
    if (n < 0 || n >= VAMP_NAME_LEN) {
        fprintf(stderr, "internal error: tensor name %s%s longer than %d characters\n", name, suffix, VAMP_NAME_LEN - 1);
        abort();
    }
}

static vamp_linear add_linear(vamp_layout *l, const char *name, int in, int out, int bias)
{
    char buf[VAMP_NAME_LEN];
    vamp_linear lin;
    key_join(buf, name, ".weight");
    lin.W = layout_add(l, buf, (size_t)out, (size_t)in);
    lin.b = -1;
    if (bias) {
        key_join(buf, name, ".bias");
        lin.b = layout_add(l, buf, (size_t)out, 0);
    }
    return lin;
}

static vamp_gated add_gated(vamp_layout *l, const char *name, int in, int out)
{
    char buf[VAMP_NAME_LEN];
    vamp_gated g;
    key_join(buf, name, ".h");
    g.h = add_linear(l, buf, in, out, 1);
    key_join(buf, name, ".g");
    g.g = add_linear(l, buf, in, out, 1);
    return g;
}

/* A Conv2d: weight (cout,cin,k,k) and (bias: 1) bias (cout), as torch names them. */
static vamp_linear add_conv_bias(vamp_layout *l, const char *name, vamp_conv geo, int bias)
{
    char buf[VAMP_NAME_LEN];
    const size_t shape[4] = {(size_t)geo.cout, (size_t)geo.cin, (size_t)geo.k, (size_t)geo.k};
    vamp_linear c;
    key_join(buf, name, ".weight");
    c.W = layout_add_dims(l, buf, 4, shape);
    c.b = -1;
    if (bias) {
        key_join(buf, name, ".bias");
        c.b = layout_add(l, buf, (size_t)geo.cout, 0);
    }
    return c;
}
static vamp_linear add_conv(vamp_layout *l, const char *name, vamp_conv geo) { return add_conv_bias(l, name, geo, 1); }

/* A stack of GatedConv2d on images (cin, h, w); spec rows are (cout, k, stride), padding k / 2 as the reference. */
static void add_stack(vamp_layout *l, vamp_conv_stack *s, const char *name, int cin, int h, int w,
                      const int (*spec)[3], int n)
{
    char buf[VAMP_NAME_LEN];
    s->n = n;
    for (int i = 0; i < n; i++) {
        vamp_gconv *L = &s->l[i];
        L->geo = conv_geom(cin, h, w, spec[i][0], spec[i][1], spec[i][2], spec[i][1] / 2);
        snprintf(buf, sizeof buf, "%s.%d.h", name, i);
        L->h = add_conv(l, buf, L->geo);
        snprintf(buf, sizeof buf, "%s.%d.g", name, i);
        L->g = add_conv(l, buf, L->geo);
        cin = L->geo.cout;
        h = L->geo.oh;
        w = L->geo.ow;
    }
}

/* Floats per image of layer i's output. */
static size_t layer_out(const vamp_conv_stack *s, int i)
{
    const vamp_conv *g = &s->l[i].geo;
    return (size_t)g->cout * (size_t)g->oh * (size_t)g->ow;
}

/* The MLP VAE / HVAE, in the reference's module order. */
static void layout_mlp(vamp_model *m)
{
    vamp_layout *l = &m->layout;
    const int d = (int)m->D, H = m->H, Zt = m->Ztop, Z1 = m->Z1;
    const char *q = m->hvae ? "q_z2" : "q_z";
    char name[VAMP_NAME_LEN];
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
    if (m->logistic) m->px_logvar = add_linear(l, "p_x_logvar.linear", H, d, 1);
}

/* The encoders and p(z1|z2) of the convHVAE and the PixelHVAE (models/convHVAE_2level.py, PixelHVAE_2level.py),
 * in their module order; their Gaussian heads are NonLinear (".linear"). */
static void layout_conv_encoders(vamp_model *m)
{
    static const int ENC[5][3] = {{32, 7, 1}, {32, 3, 2}, {64, 5, 1}, {64, 3, 2}, {6, 3, 1}};
    static const int Q1X[5][3] = {{32, 3, 1}, {32, 3, 2}, {64, 3, 1}, {64, 3, 2}, {6, 3, 1}};
    vamp_layout *l = &m->layout;
    const int H = m->H, Zt = m->Ztop, Z1 = m->Z1, h = m->height, w = m->width;
    add_stack(l, &m->enc_conv, "q_z2_layers", 1, h, w, ENC, 5);
    m->F = (int)layer_out(&m->enc_conv, 4);
    const int F = m->F;
    m->enc.mean = add_linear(l, "q_z2_mean.linear", F, Zt, 1);
    m->enc.logvar = add_linear(l, "q_z2_logvar.linear", F, Zt, 1);
    add_stack(l, &m->q1_conv, "q_z1_layers_x", 1, h, w, Q1X, 5);
    m->q1_z2 = add_gated(l, "q_z1_layers_z2.0", Zt, F);
    m->q1_joint = add_gated(l, "q_z1_layers_joint.0", 2 * F, H);
    m->q1_mean = add_linear(l, "q_z1_mean.linear", H, Z1, 1);
    m->q1_logvar = add_linear(l, "q_z1_logvar.linear", H, Z1, 1);
    m->pz1_l1 = add_gated(l, "p_z1_layers.0", Zt, H);
    m->pz1_l2 = add_gated(l, "p_z1_layers.1", H, H);
    m->pz1_mean = add_linear(l, "p_z1_mean.linear", H, Z1, 1);
    m->pz1_logvar = add_linear(l, "p_z1_logvar.linear", H, Z1, 1);
}

/* The convHVAE's p(x|z1,z2): GatedDense branches, joint_pre to D pixels, the decoder stack, the 1x1 heads. */
static void layout_convhvae(vamp_model *m)
{
    static const int DEC[4][3] = {{64, 3, 1}, {64, 3, 1}, {64, 3, 1}, {64, 3, 1}};
    vamp_layout *l = &m->layout;
    const int d = (int)m->D, H = m->H, Zt = m->Ztop, Z1 = m->Z1, h = m->height, w = m->width;
    layout_conv_encoders(m);
    m->px_z1 = add_gated(l, "p_x_layers_z1.0", Z1, H);
    m->px_z2 = add_gated(l, "p_x_layers_z2.0", Zt, H);
    m->px_pre = add_gated(l, "p_x_layers_joint_pre.0", 2 * H, d);
    add_stack(l, &m->px_conv, "p_x_layers_joint", 1, h, w, DEC, 4);
    m->px_head = conv_geom(64, h, w, 1, 1, 1, 0);
    m->px_mean = add_conv(l, "p_x_mean.conv", m->px_head);
    if (m->logistic) m->px_logvar = add_conv(l, "p_x_logvar.conv", m->px_head);
}

/* The PixelHVAE's p(x|z1,z2): GatedDense maps of z1 and z2 to D pixels each, the PixelCNN (pixelcnn.<3l> the masked
 * conv, pixelcnn.<3l+1> the BatchNorm2d with its running statistics as layout buffers; torch's num_batches_tracked
 * and the masks are not kept: neither changes a result), and the 1x1 heads, biased for the Bernoulli mean only. */
static void layout_pixelhvae(vamp_model *m)
{
    vamp_layout *l = &m->layout;
    const int d = (int)m->D, Zt = m->Ztop, Z1 = m->Z1, h = m->height, w = m->width;
    char buf[VAMP_NAME_LEN];
    layout_conv_encoders(m);
    m->px_z1 = add_gated(l, "p_x_layers_z1.0", Z1, d);
    m->px_z2 = add_gated(l, "p_x_layers_z2.0", Zt, d);
    for (int i = 0; i < VAMP_PIXEL_LAYERS; i++) {
        vamp_pixel_layer *L = &m->pcnn[i];
        L->mask = i ? 'B' : 'A';
        L->geo = conv_geom(i ? VAMP_PIXEL_CH : 3, h, w, VAMP_PIXEL_CH, 3, 1, 1);
        snprintf(buf, sizeof buf, "pixelcnn.%d", 3 * i);
        L->W = add_conv_bias(l, buf, L->geo, 0).W;
        snprintf(buf, sizeof buf, "pixelcnn.%d.weight", 3 * i + 1);
        L->gamma = layout_add(l, buf, VAMP_PIXEL_CH, 0);
        snprintf(buf, sizeof buf, "pixelcnn.%d.bias", 3 * i + 1);
        L->beta = layout_add(l, buf, VAMP_PIXEL_CH, 0);
        snprintf(buf, sizeof buf, "pixelcnn.%d.running_mean", 3 * i + 1);
        L->rmean = layout_add_buffer(l, buf, VAMP_PIXEL_CH);
        snprintf(buf, sizeof buf, "pixelcnn.%d.running_var", 3 * i + 1);
        L->rvar = layout_add_buffer(l, buf, VAMP_PIXEL_CH);
    }
    m->px_head = conv_geom(VAMP_PIXEL_CH, h, w, 1, 1, 1, 0);
    m->px_mean = add_conv_bias(l, "p_x_mean.conv", m->px_head, !m->logistic);
    if (m->logistic) m->px_logvar = add_conv_bias(l, "p_x_logvar.conv", m->px_head, 0);
}

void model_init(vamp_model *m, const vamp_config *c, int height, int width)
{
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->height = height;
    m->width = width;
    m->D = (size_t)height * (size_t)width;
    m->H = c->hidden;
    m->pixel = c->model_type == MODEL_PIXELHVAE;
    m->conv = c->model_type == MODEL_CONVHVAE || m->pixel;
    m->hvae = c->model_type != MODEL_VAE;
    m->logistic = c->likelihood == LIK_LOGISTIC256;
    m->prior = c->prior;
    m->Ztop = m->hvae ? c->z2 : c->z1;
    m->Z1 = m->hvae ? c->z1 : 0;
    m->K = c->prior == PRIOR_STANDARD ? 0 : c->components;
    m->pseudo = m->mog_means = m->mog_logvars = -1;
    m->px_logvar.W = m->px_logvar.b = -1;

    vamp_layout *l = &m->layout;
    layout_init(l);
    if (m->pixel) layout_pixelhvae(m);
    else if (m->conv) layout_convhvae(m);
    else layout_mlp(m);
    if (config_prior_is_vamp(m->prior))
        m->pseudo = layout_add(l, "means.linear.weight", m->D, (size_t)m->K); /* (D,K), before the hardtanh */
    if (m->prior == PRIOR_MOG) {
        m->mog_means = layout_add(l, "mog.means", (size_t)m->K, (size_t)m->Ztop);
        m->mog_logvars = layout_add(l, "mog.logvars", (size_t)m->K, (size_t)m->Ztop);
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
        } else { /* a Conv2d weight (torch's default), or a bias right after its weight (torch's default):
                  * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
            rng_uniform_fill(p, T->size, seed, RNG_INIT, 0, (uint64_t)t, 0);
            float bound = 1.0f / sqrtf((float)layout_fan_in(T->ndim == 4 ? T : &l->t[t - 1]));
            for (size_t i = 0; i < T->size; i++) p[i] = bound * (2.0f * p[i] - 1.0f);
        }
    }
    for (int i = 0; m->pixel && i < VAMP_PIXEL_LAYERS; i++) { /* BatchNorm2d as torch initialises it */
        const vamp_pixel_layer *L = &m->pcnn[i];
        float *gamma = params + l->t[L->gamma].offset, *beta = params + l->t[L->beta].offset;
        float *rmean = params + l->t[L->rmean].offset, *rvar = params + l->t[L->rvar].offset;
        for (int c = 0; c < VAMP_PIXEL_CH; c++) {
            gamma[c] = rvar[c] = 1.0f;
            beta[c] = rmean[c] = 0.0f;
        }
    }
    model_apply_masks(m, params);
}

void model_apply_masks(const vamp_model *m, float *params)
{
    if (!m->pixel) return;
    for (int l = 0; l < VAMP_PIXEL_LAYERS; l++) {
        const vamp_pixel_layer *L = &m->pcnn[l];
        float *W = params + m->layout.t[L->W].offset; /* (64, cin, 3, 3) */
        for (int oc = 0; oc < L->geo.cout * L->geo.cin; oc++)
            for (int ky = 0; ky < 3; ky++)
                for (int kx = 0; kx < 3; kx++)
                    if (!conv_mask_keeps(ky, kx, 3, L->mask)) W[(size_t)oc * 9 + ky * 3 + kx] = 0.0f;
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

static size_t maxz(size_t a, size_t b) { return a > b ? a : b; }

/* Widths of the hvae's layers that the convhvae widens (H for the MLP HVAE): the branches of q(z1|x,z2) (F) and
 * the output of p(x|.)'s joint layer (D, the decoder stack's input image). */
static int q1_width(const vamp_model *m) { return m->conv ? m->F : m->H; }
static size_t pxj_width(const vamp_model *m) { return m->conv ? m->D : (size_t)m->H; }
/* The width of p(x|.)'s first layers (px_h1..px_o2): H, or D for the pixelhvae's maps of z1 and z2. */
static size_t pxb_width(const vamp_model *m) { return m->pixel ? m->D : (size_t)m->H; }
static const size_t PIXEL_IMG = VAMP_PIXEL_CH; /* floats per pixel of a PixelCNN layer */

/* A stack's activations for R images. */
static void carve_stack(carver *c, vamp_stack_acts *s, const vamp_conv_stack *S, int R)
{
    for (int i = 0; i < S->n; i++) {
        size_t n = (size_t)R * layer_out(S, i);
        s->h[i] = carve(c, n); s->g[i] = carve(c, n); s->o[i] = carve(c, n);
    }
}

/* Per image: the widest layer output of a stack; its largest kernel scratch (independent of the images). */
static size_t stack_widest(const vamp_conv_stack *S)
{
    size_t w = 0;
    for (int i = 0; i < S->n; i++) w = maxz(w, layer_out(S, i));
    return w;
}
static size_t stack_scratch(const vamp_conv_stack *S)
{
    size_t w = 0;
    for (int i = 0; i < S->n; i++) w = maxz(w, gated_conv2d_scratch_floats(&S->l[i].geo));
    return w;
}

static void carve_enc(carver *c, vamp_enc_acts *a, const vamp_model *m, int R, int with_pseudo)
{
    size_t RH = (size_t)R * m->H, RZ = (size_t)R * m->Ztop;
    memset(a, 0, sizeof *a);
    a->rows = R;
    if (m->conv) {
        carve_stack(c, &a->cs, &m->enc_conv, R);
    } else {
        a->h1 = carve(c, RH); a->g1 = carve(c, RH); a->o1 = carve(c, RH);
        a->h2 = carve(c, RH); a->g2 = carve(c, RH); a->o2 = carve(c, RH);
    }
    a->mean = carve(c, RZ); a->lv_pre = carve(c, RZ); a->logvar = carve(c, RZ);
    a->u = with_pseudo ? carve(c, (size_t)R * m->D) : NULL;
    a->du = with_pseudo ? carve(c, (size_t)R * m->D) : NULL;
    if (m->conv) {
        a->d_lv = carve(c, RZ);
        a->cd[0] = carve(c, (size_t)R * stack_widest(&m->enc_conv));
        a->cd[1] = carve(c, (size_t)R * stack_widest(&m->enc_conv));
        a->cscratch = carve(c, stack_scratch(&m->enc_conv));
        return;
    }
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

/* hvae: q(z1|x,z2) and p(z1|z2), and the convhvae's conv stacks of q(z1|x,.) and p(x|.) with their scratch. */
static void carve_hvae(carver *c, vamp_acts *a, const vamp_model *m, int R)
{
    size_t RH = (size_t)R * m->H, RZ1 = (size_t)R * m->Z1, RW = (size_t)R * q1_width(m);
    if (m->conv) {
        carve_stack(c, &a->q1c, &m->q1_conv, R);
        a->q1x_o = a->q1c.o[m->q1_conv.n - 1];
    } else {
        a->q1x_h = carve(c, RH); a->q1x_g = carve(c, RH); a->q1x_o = carve(c, RH);
    }
    a->q1z_h = carve(c, RW); a->q1z_g = carve(c, RW); a->q1z_o = carve(c, RW);
    a->q1_cat = carve(c, 2 * RW);
    a->q1j_h = carve(c, RH); a->q1j_g = carve(c, RH); a->q1j_o = carve(c, RH);
    a->q1_mean = carve(c, RZ1); a->q1_lv_pre = carve(c, RZ1); a->q1_logvar = carve(c, RZ1);
    a->z1 = carve(c, RZ1); a->eps1 = carve(c, RZ1);
    a->pz1_h1 = carve(c, RH); a->pz1_g1 = carve(c, RH); a->pz1_o1 = carve(c, RH);
    a->pz1_h2 = carve(c, RH); a->pz1_g2 = carve(c, RH); a->pz1_o2 = carve(c, RH);
    a->pz1_mean = carve(c, RZ1); a->pz1_lv_pre = carve(c, RZ1); a->pz1_logvar = carve(c, RZ1);
    size_t RJ = (size_t)R * pxj_width(m);
    if (!m->pixel) {
        a->px_cat = carve(c, 2 * RH);
        a->pxj_h = carve(c, RJ); a->pxj_g = carve(c, RJ); a->pxj_o = carve(c, RJ);
    }
    a->d_z1 = carve(c, RZ1);
    a->d_q1_mean = carve(c, RZ1); a->d_q1_lv_pre = carve(c, RZ1); a->d_q1_logvar = carve(c, RZ1);
    a->d_pz1_mean = carve(c, RZ1); a->d_pz1_lv_pre = carve(c, RZ1); a->d_pz1_logvar = carve(c, RZ1);
    a->log_q1 = carve(c, (size_t)R); a->log_p1 = carve(c, (size_t)R);
    if (m->pixel) {
        const size_t img = (size_t)R * PIXEL_IMG * m->D, len = batchnorm2d_partial_len(VAMP_PIXEL_CH);
        const size_t L = VAMP_PIXEL_LAYERS, stats = L * VAMP_PIXEL_CH;
        a->pin = carve(c, (size_t)R * 3 * m->D);
        a->d_pin = carve(c, (size_t)R * 3 * m->D);
        for (size_t l = 0; l < L; l++) { a->pc[l] = carve(c, img); a->po[l] = carve(c, img); }
        for (int i = 0; i < 3; i++) a->pd[i] = carve(c, img);
        a->bn_mean = carve(c, stats); a->bn_var = carve(c, stats); a->bn_invstd = carve(c, stats);
        a->bn_part = (double *)carve(c, 2 * L * len);
        a->mask_a = carve(c, (size_t)VAMP_PIXEL_CH * 3 * 9);
        a->mask_b = carve(c, (size_t)VAMP_PIXEL_CH * VAMP_PIXEL_CH * 9);
        a->cd[0] = carve(c, (size_t)R * stack_widest(&m->q1_conv));
        a->cd[1] = carve(c, (size_t)R * stack_widest(&m->q1_conv));
        size_t scratch = maxz(maxz(stack_scratch(&m->q1_conv), masked_conv2d_scratch_floats(&m->pcnn[1].geo)),
                              conv2d_scratch_floats(&m->px_head));
        a->cscratch = carve(c, scratch);
    } else if (m->conv) {
        carve_stack(c, &a->pxc, &m->px_conv, R);
        a->d_pxj = carve(c, RJ);
        size_t widest = maxz(stack_widest(&m->q1_conv), stack_widest(&m->px_conv));
        a->cd[0] = carve(c, (size_t)R * widest);
        a->cd[1] = carve(c, (size_t)R * widest);
        size_t scratch = maxz(maxz(stack_scratch(&m->q1_conv), stack_scratch(&m->px_conv)),
                              conv2d_scratch_floats(&m->px_head));
        a->cscratch = carve(c, scratch);
    }
}

static void carve_acts(carver *c, vamp_acts *a, const vamp_model *m, int R)
{
    size_t RH = (size_t)R * m->H, RZ = (size_t)R * m->Ztop, RD = (size_t)R * m->D;
    size_t RX = (size_t)R * pxb_width(m);
    size_t RB = maxz((size_t)R * maxz((size_t)m->H, (size_t)q1_width(m)), RX); /* branches of a joint layer */
    size_t RG = maxz(RB, (size_t)R * pxj_width(m));                  /* outputs of a gated dense layer */
    a->rows = R;
    carve_enc(c, &a->enc, m, R, 0);
    a->z_top = carve(c, RZ); a->eps_top = carve(c, RZ);
    if (m->hvae) carve_hvae(c, a, m, R);
    a->px_h1 = carve(c, RX); a->px_g1 = carve(c, RX); a->px_o1 = carve(c, RX);
    a->px_h2 = carve(c, RX); a->px_g2 = carve(c, RX); a->px_o2 = carve(c, RX);
    a->x_pre = carve(c, RD); a->x_mean = carve(c, RD);
    if (m->logistic) { a->xlv_pre = carve(c, RD); a->x_logvar = carve(c, RD); }
    a->re = carve(c, (size_t)R); a->kl = carve(c, (size_t)R);
    a->log_q_top = carve(c, (size_t)R); a->log_p_top = carve(c, (size_t)R);
    a->resp = m->K ? carve(c, (size_t)R * m->K) : NULL;
    a->w_log_q = carve(c, (size_t)R); a->w_log_p = carve(c, (size_t)R);
    a->d_x_pre = carve(c, RD);
    if (m->logistic) a->d_xlv_pre = carve(c, RD);
    a->d_head_in = carve(c, RH); a->d_layer1 = carve(c, RH);
    if (m->hvae) { a->d_branch1 = carve(c, RB); a->d_branch2 = carve(c, RB); a->d_cat = carve(c, 2 * RB); }
    a->gscratch = carve(c, 2 * RG);
    a->d_z_top = carve(c, RZ); a->d_top_mean = carve(c, RZ); a->d_top_logvar = carve(c, RZ);
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
    if (m->pixel) {
        conv_mask_build(a->mask_a, VAMP_PIXEL_CH, 3, 3, 'A');
        conv_mask_build(a->mask_b, VAMP_PIXEL_CH, VAMP_PIXEL_CH, 3, 'B');
    }
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

/* ---- layers: nn.h's kernels with their weights looked up in the layout ----------------------------------- */

/* Tensor t of a layout-shaped buffer (params, grads); NULL for an absent tensor (t = -1: a Linear without bias). */
static inline const float *tensor_of(const vamp_model *m, const float *buf, int t)
{
    return t >= 0 ? buf + m->layout.t[t].offset : NULL;
}
static inline float *grad_of(const vamp_model *m, float *grads, int t)
{
    return t >= 0 ? grads + m->layout.t[t].offset : NULL;
}

static void zero(float *p, size_t n) { memset(p, 0, n * sizeof(float)); }

/* A GatedDense layer of `out` units (the _n forms); most have H. */
static void gated_layer_forward_n(const vamp_model *m, const float *P, const vamp_gated *L, float *o, float *h,
                                  float *g, const float *x, int R, int in, int out)
{
    gated_forward(o, h, g, x, tensor_of(m, P, L->h.W), tensor_of(m, P, L->h.b), tensor_of(m, P, L->g.W),
                  tensor_of(m, P, L->g.b), R, in, out);
}
static void gated_layer_forward(const vamp_model *m, const float *P, const vamp_gated *L, float *o, float *h,
                                float *g, const float *x, int R, int in)
{
    gated_layer_forward_n(m, P, L, o, h, g, x, R, in, m->H);
}

static void gated_layer_backward_n(const vamp_model *m, const float *P, float *G, const vamp_gated *L, float *dx,
                                   const float *dy, const float *x, const float *h, const float *g, int R, int in,
                                   int out, float *scratch)
{
    gated_backward(dx, grad_of(m, G, L->h.W), grad_of(m, G, L->h.b), grad_of(m, G, L->g.W),
                   grad_of(m, G, L->g.b), dy, x, h, g, tensor_of(m, P, L->h.W), tensor_of(m, P, L->g.W), R, in,
                   out, scratch);
}
static void gated_layer_backward(const vamp_model *m, const float *P, float *G, const vamp_gated *L, float *dx,
                                 const float *dy, const float *x, const float *h, const float *g, int R, int in,
                                 float *scratch)
{
    gated_layer_backward_n(m, P, G, L, dx, dy, x, h, g, R, in, m->H, scratch);
}

static void linear_layer_forward(const vamp_model *m, const float *P, const vamp_linear *L, float *y,
                                 const float *x, int R, int in, int out)
{
    linear_forward(y, x, tensor_of(m, P, L->W), tensor_of(m, P, L->b), R, in, out);
}

static void linear_layer_backward(const vamp_model *m, const float *P, float *G, const vamp_linear *L, float *dx,
                                  const float *dy, const float *x, int R, int in, int out)
{
    linear_backward(dx, grad_of(m, G, L->W), grad_of(m, G, L->b), dy, x, tensor_of(m, P, L->W), R, in, out);
}

/* Gaussian heads on a hidden layer hin (R,in): mean and hardtanh(-6,2) log-variance. */
static void heads_forward(const vamp_model *m, const float *P, const vamp_linear *Lm, const vamp_linear *Llv,
                          float *mean, float *lv_pre, float *logvar, const float *hin, int R, int in, int Z)
{
    linear_layer_forward(m, P, Lm, mean, hin, R, in, Z);
    linear_layer_forward(m, P, Llv, lv_pre, hin, R, in, Z);
    hardtanh_forward(logvar, lv_pre, (size_t)R * Z, LOGVAR_LO, LOGVAR_HI);
}

/* d_hin (R,in) is zeroed here; d_lvpre is scratch (R,Z). */
static void heads_backward(const vamp_model *m, const float *P, float *G, const vamp_linear *Lm,
                           const vamp_linear *Llv, float *d_hin, float *d_lvpre, const float *dmean,
                           const float *dlogvar, const float *lv_pre, const float *hin, int R, int in, int Z)
{
    zero(d_lvpre, (size_t)R * Z);
    hardtanh_backward(d_lvpre, dlogvar, lv_pre, (size_t)R * Z, LOGVAR_LO, LOGVAR_HI);
    zero(d_hin, (size_t)R * in);
    linear_layer_backward(m, P, G, Lm, d_hin, dmean, hin, R, in, Z);
    linear_layer_backward(m, P, G, Llv, d_hin, d_lvpre, hin, R, in, Z);
}

/* The input of a joint layer: cat (R,2H) = [first | second] row by row, and the split of its gradient. */
static void concat_rows(float *cat, const float *first, const float *second, int R, int H)
{
    for (int r = 0; r < R; r++) {
        memcpy(cat + (size_t)r * 2 * H, first + (size_t)r * H, H * sizeof(float));
        memcpy(cat + (size_t)r * 2 * H + H, second + (size_t)r * H, H * sizeof(float));
    }
}
static void split_rows(float *first, float *second, const float *cat, int R, int H)
{
    for (int r = 0; r < R; r++) {
        memcpy(first + (size_t)r * H, cat + (size_t)r * 2 * H, H * sizeof(float));
        memcpy(second + (size_t)r * H, cat + (size_t)r * 2 * H + H, H * sizeof(float));
    }
}

/* ---- convhvae: stacks of GatedConv2d, conv.h's kernels with their weights looked up in the layout ----------- */

/* The stack S on images x (R, cin, h, w) of its first layer; kernel scratch: stack_scratch(S) floats. */
static void stack_forward(const vamp_model *m, const float *P, const vamp_conv_stack *S, vamp_stack_acts *s,
                          const float *x, int R, float *scratch)
{
    for (int i = 0; i < S->n; i++) {
        const vamp_gconv *L = &S->l[i];
        gated_conv2d_forward(s->o[i], s->h[i], s->g[i], i ? s->o[i - 1] : x, tensor_of(m, P, L->h.W),
                             tensor_of(m, P, L->h.b), tensor_of(m, P, L->g.W), tensor_of(m, P, L->g.b), &L->geo, R,
                             scratch);
    }
}

/* dy (the gradient of the stack's output) -> grads; dx (R, cin, h, w) += d x (NULL: none needed). The gradients
 * between layers go to pp[0] / pp[1] (each R x stack_widest), never to the one being read (dy may be one). */
static void stack_backward(const vamp_model *m, const float *P, float *G, const vamp_conv_stack *S,
                           const vamp_stack_acts *s, float *dx, const float *dy, const float *x, int R,
                           float *const pp[2], float *scratch)
{
    const float *d = dy;
    for (int i = S->n - 1; i >= 0; i--) {
        const vamp_gconv *L = &S->l[i];
        float *din = dx;
        if (i > 0) {
            din = d == pp[0] ? pp[1] : pp[0];
            zero(din, (size_t)R * layer_out(S, i - 1));
        }
        gated_conv2d_backward(din, grad_of(m, G, L->h.W), grad_of(m, G, L->h.b), grad_of(m, G, L->g.W),
                              grad_of(m, G, L->g.b), d, i ? s->o[i - 1] : x, s->h[i], s->g[i],
                              tensor_of(m, P, L->h.W), tensor_of(m, P, L->g.W), &L->geo, R, scratch);
        d = din;
    }
}

/* ---- the top encoder q(z_top | x) and the pseudo-inputs ---------------------------------------------------- */

/* The top encoder on x (R,D): two GatedDense layers, or (convhvae) its conv stack flattened to F features; then
 * the Gaussian heads. */
static void top_encoder_forward(const vamp_model *m, vamp_enc_acts *e, const float *P, const float *x, int R)
{
    const vamp_top_encoder *E = &m->enc;
    if (m->conv) {
        const float *flat = e->cs.o[m->enc_conv.n - 1]; /* (R,F): NCHW flattened as torch's flatten(1) */
        stack_forward(m, P, &m->enc_conv, &e->cs, x, R, e->cscratch);
        heads_forward(m, P, &E->mean, &E->logvar, e->mean, e->lv_pre, e->logvar, flat, R, m->F, m->Ztop);
        return;
    }
    gated_layer_forward(m, P, &E->l1, e->o1, e->h1, e->g1, x, R, (int)m->D);
    gated_layer_forward(m, P, &E->l2, e->o2, e->h2, e->g2, e->o1, R, m->H);
    heads_forward(m, P, &E->mean, &E->logvar, e->mean, e->lv_pre, e->logvar, e->o2, R, m->H, m->Ztop);
}

/* dmean, dlogvar (R,Ztop) -> grads; dx (R,D) += d x (NULL: the input needs no gradient). */
static void top_encoder_backward(const vamp_model *m, vamp_enc_acts *e, const float *P, float *G, const float *x,
                                 const float *dmean, const float *dlogvar, float *dx, int R)
{
    const vamp_top_encoder *E = &m->enc;
    if (m->conv) {
        const float *flat = e->cs.o[m->enc_conv.n - 1];
        heads_backward(m, P, G, &E->mean, &E->logvar, e->cd[0], e->d_lv, dmean, dlogvar, e->lv_pre, flat, R, m->F,
                       m->Ztop);
        stack_backward(m, P, G, &m->enc_conv, &e->cs, dx, e->cd[0], x, R, e->cd, e->cscratch);
        return;
    }
    heads_backward(m, P, G, &E->mean, &E->logvar, e->d_o2, e->d_lv, dmean, dlogvar, e->lv_pre, e->o2, R, m->H,
                   m->Ztop);
    zero(e->d_o1, (size_t)R * m->H);
    gated_layer_backward(m, P, G, &E->l2, e->d_o1, e->d_o2, e->o1, e->h2, e->g2, R, m->H, e->gscratch);
    gated_layer_backward(m, P, G, &E->l1, dx, e->d_o1, x, e->h1, e->g1, R, (int)m->D, e->gscratch);
}

void model_pseudo_forward(const vamp_model *m, vamp_enc_acts *a, const float *params, int k0, int k1,
                          float *pm_rows, float *plv_rows)
{
    const int R = k1 - k0, K = m->K;
    const size_t D = m->D;
    const float *W = tensor_of(m, params, m->pseudo); /* (D,K): pseudo-input k is column k */
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
    const float *W = tensor_of(m, params, m->pseudo);
    float *dW = grad_of(m, grads, m->pseudo);
    for (int r = 0; r < R; r++)
        for (size_t d = 0; d < D; d++) {
            size_t i = d * K + (k0 + r);
            if (W[i] > 0.0f && W[i] < 1.0f) dW[i] += a->du[r * D + d]; /* hardtanh(0,1) */
        }
}

/* ---- hvae q(z1 | x, z2) and p(z1 | z2) ---------------------------------------------------------------------- */

/* q(z1 | x, z2) on a->z_top after its x-branch q1x_o (computed by model_encode): fills q1_* and z1 = q1_mean +
 * sigma * eps1 (a->eps1). */
static void q1_forward(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    const int H = m->H, Z1 = m->Z1, W = q1_width(m);
    gated_layer_forward_n(m, P, &m->q1_z2, a->q1z_o, a->q1z_h, a->q1z_g, a->z_top, R, m->Ztop, W);
    concat_rows(a->q1_cat, a->q1x_o, a->q1z_o, R, W);
    gated_layer_forward(m, P, &m->q1_joint, a->q1j_o, a->q1j_h, a->q1j_g, a->q1_cat, R, 2 * W);
    heads_forward(m, P, &m->q1_mean, &m->q1_logvar, a->q1_mean, a->q1_lv_pre, a->q1_logvar, a->q1j_o, R, H, Z1);
    reparam_forward(a->z1, a->q1_mean, a->q1_logvar, a->eps1, (size_t)R * Z1);
}

/* d_z1 -> grads of q(z1|x,z2) but its x-branch, whose output gradient is left in d_branch1 for
 * encode_backward; d_z_top += the z2-branch's input gradient. */
static void q1_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int R)
{
    const int H = m->H, Z1 = m->Z1, W = q1_width(m);
    reparam_backward(a->d_q1_mean, a->d_q1_logvar, a->d_z1, a->q1_logvar, a->eps1, (size_t)R * Z1);
    heads_backward(m, P, G, &m->q1_mean, &m->q1_logvar, a->d_head_in, a->d_q1_lv_pre, a->d_q1_mean,
                   a->d_q1_logvar, a->q1_lv_pre, a->q1j_o, R, H, Z1);
    zero(a->d_cat, (size_t)R * 2 * W);
    gated_layer_backward(m, P, G, &m->q1_joint, a->d_cat, a->d_head_in, a->q1_cat, a->q1j_h, a->q1j_g, R, 2 * W,
                         a->gscratch);
    split_rows(a->d_branch1, a->d_branch2, a->d_cat, R, W);
    gated_layer_backward_n(m, P, G, &m->q1_z2, a->d_z_top, a->d_branch2, a->z_top, a->q1z_h, a->q1z_g, R, m->Ztop,
                           W, a->gscratch);
}

/* hvae p(z1 | z2) on a->z_top: fills pz1_* of R rows. */
static void pz1_forward(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    gated_layer_forward(m, P, &m->pz1_l1, a->pz1_o1, a->pz1_h1, a->pz1_g1, a->z_top, R, m->Ztop);
    gated_layer_forward(m, P, &m->pz1_l2, a->pz1_o2, a->pz1_h2, a->pz1_g2, a->pz1_o1, R, m->H);
    heads_forward(m, P, &m->pz1_mean, &m->pz1_logvar, a->pz1_mean, a->pz1_lv_pre, a->pz1_logvar, a->pz1_o2, R,
                  m->H, m->Z1);
}

/* d_pz1_mean, d_pz1_logvar -> grads of p(z1|z2); d_z_top += its input gradient. */
static void pz1_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int R)
{
    const int H = m->H;
    heads_backward(m, P, G, &m->pz1_mean, &m->pz1_logvar, a->d_head_in, a->d_pz1_lv_pre, a->d_pz1_mean,
                   a->d_pz1_logvar, a->pz1_lv_pre, a->pz1_o2, R, H, m->Z1);
    zero(a->d_layer1, (size_t)R * H);
    gated_layer_backward(m, P, G, &m->pz1_l2, a->d_layer1, a->d_head_in, a->pz1_o1, a->pz1_h2, a->pz1_g2, R, H,
                         a->gscratch);
    gated_layer_backward(m, P, G, &m->pz1_l1, a->d_z_top, a->d_layer1, a->z_top, a->pz1_h1, a->pz1_g1, R,
                         m->Ztop, a->gscratch);
}

/* ---- p(x | .) up to its logits, and the likelihoods --------------------------------------------------------- */

/* The hidden layer under the p(x|.) heads. */
static const float *px_hidden(const vamp_model *m, const vamp_acts *a) { return m->hvae ? a->pxj_o : a->px_o2; }

/* hvae: the two branches of p(x|z1,z2), GatedDense on a->z1 and on a->z_top, joined into px_cat (R,2H). */
static void px_branches_forward(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    gated_layer_forward(m, P, &m->px_z1, a->px_o1, a->px_h1, a->px_g1, a->z1, R, m->Z1);
    gated_layer_forward(m, P, &m->px_z2, a->px_o2, a->px_h2, a->px_g2, a->z_top, R, m->Ztop);
    concat_rows(a->px_cat, a->px_o1, a->px_o2, R, m->H);
}

/* d_cat (the gradient of px_cat) -> grads of the branches; d_z1, d_z_top += their input gradients. */
static void px_branches_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int R)
{
    split_rows(a->d_branch1, a->d_branch2, a->d_cat, R, m->H);
    gated_layer_backward(m, P, G, &m->px_z1, a->d_z1, a->d_branch1, a->z1, a->px_h1, a->px_g1, R, m->Z1,
                         a->gscratch);
    gated_layer_backward(m, P, G, &m->px_z2, a->d_z_top, a->d_branch2, a->z_top, a->px_h2, a->px_g2, R, m->Ztop,
                         a->gscratch);
}

/* convhvae p(x|z1,z2) above the branches: joint_pre GatedDense(2H, D) viewed as images (R,1,h,w), the decoder
 * stack, and the 1x1 convolutions to the logits x_pre (and the logistic log-scale pre-activation xlv_pre). */
static void px_conv_forward(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    const float *top = a->pxc.o[m->px_conv.n - 1]; /* (R,64,h,w) */
    gated_layer_forward_n(m, P, &m->px_pre, a->pxj_o, a->pxj_h, a->pxj_g, a->px_cat, R, 2 * m->H, (int)m->D);
    stack_forward(m, P, &m->px_conv, &a->pxc, a->pxj_o, R, a->cscratch);
    conv2d_forward(a->x_pre, top, tensor_of(m, P, m->px_mean.W), tensor_of(m, P, m->px_mean.b), &m->px_head, R,
                   a->cscratch);
    if (m->logistic)
        conv2d_forward(a->xlv_pre, top, tensor_of(m, P, m->px_logvar.W), tensor_of(m, P, m->px_logvar.b),
                       &m->px_head, R, a->cscratch);
}

/* d_x_pre (and d_xlv_pre) -> grads of the 1x1 heads, the decoder stack and joint_pre; d_cat = the gradient of
 * px_cat. */
static void px_conv_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int R)
{
    const int n = m->px_conv.n;
    const float *top = a->pxc.o[n - 1];
    float *d_top = a->cd[0];
    zero(d_top, (size_t)R * layer_out(&m->px_conv, n - 1));
    conv2d_backward(d_top, grad_of(m, G, m->px_mean.W), grad_of(m, G, m->px_mean.b), a->d_x_pre, top,
                    tensor_of(m, P, m->px_mean.W), &m->px_head, R, a->cscratch);
    if (m->logistic)
        conv2d_backward(d_top, grad_of(m, G, m->px_logvar.W), grad_of(m, G, m->px_logvar.b), a->d_xlv_pre, top,
                        tensor_of(m, P, m->px_logvar.W), &m->px_head, R, a->cscratch);
    zero(a->d_pxj, (size_t)R * m->D);
    stack_backward(m, P, G, &m->px_conv, &a->pxc, a->d_pxj, d_top, a->pxj_o, R, a->cd, a->cscratch);
    zero(a->d_cat, (size_t)R * 2 * m->H);
    gated_layer_backward_n(m, P, G, &m->px_pre, a->d_cat, a->d_pxj, a->px_cat, a->pxj_h, a->pxj_g, R, 2 * m->H,
                           (int)m->D, a->gscratch);
}

/* p(x | z) (vae, a->z_top) or p(x | z1, z2) (hvae, a->z1 and a->z_top) up to the logits x_pre (and the
 * logistic log-scale pre-activation xlv_pre). */
static void pixel_forward_eval(const vamp_model *m, vamp_acts *a, const float *P, int R);
static void px_forward(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    const int H = m->H, Zt = m->Ztop;
    if (m->pixel) {
        pixel_forward_eval(m, a, P, R);
        return;
    }
    if (m->hvae) px_branches_forward(m, a, P, R);
    if (m->conv) {
        px_conv_forward(m, a, P, R);
        return;
    }
    if (m->hvae) {
        gated_layer_forward(m, P, &m->px_joint, a->pxj_o, a->pxj_h, a->pxj_g, a->px_cat, R, 2 * H);
    } else {
        gated_layer_forward(m, P, &m->px_l1, a->px_o1, a->px_h1, a->px_g1, a->z_top, R, Zt);
        gated_layer_forward(m, P, &m->px_l2, a->px_o2, a->px_h2, a->px_g2, a->px_o1, R, H);
    }
    linear_layer_forward(m, P, &m->px_mean, a->x_pre, px_hidden(m, a), R, H, (int)m->D);
    if (m->logistic) linear_layer_forward(m, P, &m->px_logvar, a->xlv_pre, px_hidden(m, a), R, H, (int)m->D);
}

/* d_x_pre (and d_xlv_pre) -> grads of p(x|.); d_z_top (and hvae d_z1) += its input gradients. */
static void px_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int R)
{
    const int H = m->H, Zt = m->Ztop, d = (int)m->D;
    if (m->conv) {
        px_conv_backward(m, a, P, G, R);
        px_branches_backward(m, a, P, G, R);
        return;
    }
    zero(a->d_head_in, (size_t)R * H);
    linear_layer_backward(m, P, G, &m->px_mean, a->d_head_in, a->d_x_pre, px_hidden(m, a), R, H, d);
    if (m->logistic)
        linear_layer_backward(m, P, G, &m->px_logvar, a->d_head_in, a->d_xlv_pre, px_hidden(m, a), R, H, d);
    if (m->hvae) {
        zero(a->d_cat, (size_t)R * 2 * H);
        gated_layer_backward(m, P, G, &m->px_joint, a->d_cat, a->d_head_in, a->px_cat, a->pxj_h, a->pxj_g, R,
                             2 * H, a->gscratch);
        px_branches_backward(m, a, P, G, R);
    } else {
        zero(a->d_layer1, (size_t)R * H);
        gated_layer_backward(m, P, G, &m->px_l2, a->d_layer1, a->d_head_in, a->px_o1, a->px_h2, a->px_g2, R, H,
                             a->gscratch);
        gated_layer_backward(m, P, G, &m->px_l1, a->d_z_top, a->d_layer1, a->z_top, a->px_h1, a->px_g1, R, Zt,
                             a->gscratch);
    }
}

static inline float clamp(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* ---- pixelhvae: the PixelCNN decoder p(x | z1, z2) ------------------------------------------------------------
 * Its input is the image itself (teacher forcing: x is scored in one pass) beside maps of z1 and z2; layer l is a
 * masked conv (pc[l]), BatchNorm and ReLU (po[l]); 1x1 heads give the logits. Training-mode BatchNorm needs the
 * whole batch's statistics: see model_forward_stage. Buffers: pd[0] the gradient of a layer's output po, pd[1] of
 * its BatchNorm's output, pd[2] of its conv output pc. */

#define BN_EPS 1e-5f      /* torch's BatchNorm2d defaults, which the reference keeps */
#define BN_MOMENTUM 0.1f

static size_t bn_len(void) { return batchnorm2d_partial_len(VAMP_PIXEL_CH); }

/* pin (R,3,h,w) = [x | map(z1) | map(z2)] per image, the maps GatedDense(Z1, D) on a->z1 and (Z2, D) on a->z_top. */
static void pixel_input_forward(const vamp_model *m, vamp_acts *a, const float *P, const float *x, int R)
{
    const size_t D = m->D;
    gated_layer_forward_n(m, P, &m->px_z1, a->px_o1, a->px_h1, a->px_g1, a->z1, R, m->Z1, (int)D);
    gated_layer_forward_n(m, P, &m->px_z2, a->px_o2, a->px_h2, a->px_g2, a->z_top, R, m->Ztop, (int)D);
    for (int r = 0; r < R; r++) {
        float *p = a->pin + (size_t)r * 3 * D;
        memcpy(p, x + (size_t)r * D, D * sizeof(float));
        memcpy(p + D, a->px_o1 + (size_t)r * D, D * sizeof(float));
        memcpy(p + 2 * D, a->px_o2 + (size_t)r * D, D * sizeof(float));
    }
}

/* d_pin's map channels -> grads of the two maps; d_z1, d_z_top += their input gradients (x needs none). */
static void pixel_input_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int R)
{
    const size_t D = m->D;
    for (int r = 0; r < R; r++) {
        memcpy(a->d_branch1 + (size_t)r * D, a->d_pin + (size_t)r * 3 * D + D, D * sizeof(float));
        memcpy(a->d_branch2 + (size_t)r * D, a->d_pin + (size_t)r * 3 * D + 2 * D, D * sizeof(float));
    }
    gated_layer_backward_n(m, P, G, &m->px_z1, a->d_z1, a->d_branch1, a->z1, a->px_h1, a->px_g1, R, m->Z1, (int)D,
                           a->gscratch);
    gated_layer_backward_n(m, P, G, &m->px_z2, a->d_z_top, a->d_branch2, a->z_top, a->px_h2, a->px_g2, R, m->Ztop,
                           (int)D, a->gscratch);
}

/* Layer l's masked conv on images of geometry geo (the full image, or a band of rows when sampling). */
static void pixel_conv_forward(const vamp_model *m, vamp_acts *a, const float *P, int l, const float *in,
                               const vamp_conv *geo, int R)
{
    masked_conv2d_forward(a->pc[l], in, tensor_of(m, P, m->pcnn[l].W), l ? a->mask_b : a->mask_a, NULL, geo, R,
                          a->cscratch);
}

/* Training mode: BatchNorm l with the batch statistics of bn_total (kept for the backward pass), then ReLU. */
static void pixel_bn_train_forward(const vamp_model *m, vamp_acts *a, const float *P, int l, const double *bn_total,
                                   int R)
{
    const int C = VAMP_PIXEL_CH, HW = (int)m->D;
    float *mean = a->bn_mean + l * C, *var = a->bn_var + l * C, *invstd = a->bn_invstd + l * C;
    const vamp_pixel_layer *L = &m->pcnn[l];
    batchnorm2d_stats(mean, var, invstd, bn_total, C, BN_EPS);
    batchnorm2d_forward_apply(a->po[l], a->pc[l], mean, invstd, tensor_of(m, P, L->gamma), tensor_of(m, P, L->beta),
                              R, C, HW);
    relu_forward(a->po[l], a->po[l], (size_t)R * C * HW);
}

/* Evaluation mode: BatchNorm l with its running statistics, then ReLU, on R images of HW pixels. */
static void pixel_bn_eval_forward(const vamp_model *m, vamp_acts *a, const float *P, int l, int R, int HW)
{
    const vamp_pixel_layer *L = &m->pcnn[l];
    batchnorm2d_eval_forward(a->po[l], a->pc[l], tensor_of(m, P, L->rmean), tensor_of(m, P, L->rvar),
                             tensor_of(m, P, L->gamma), tensor_of(m, P, L->beta), R, VAMP_PIXEL_CH, HW, BN_EPS);
    relu_forward(a->po[l], a->po[l], (size_t)R * VAMP_PIXEL_CH * HW);
}

/* The 1x1 heads on the last layer: logits x_pre (and the logistic log-scale pre-activation xlv_pre). */
static void pixel_heads_forward(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    const float *top = a->po[VAMP_PIXEL_LAYERS - 1];
    conv2d_forward(a->x_pre, top, tensor_of(m, P, m->px_mean.W), tensor_of(m, P, m->px_mean.b), &m->px_head, R,
                   a->cscratch);
    if (m->logistic)
        conv2d_forward(a->xlv_pre, top, tensor_of(m, P, m->px_logvar.W), NULL, &m->px_head, R, a->cscratch);
}

/* d_x_pre (and d_xlv_pre) -> grads of the heads; pd[0] = the gradient of the last layer's output. */
static void pixel_heads_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int R)
{
    const float *top = a->po[VAMP_PIXEL_LAYERS - 1];
    zero(a->pd[0], (size_t)R * VAMP_PIXEL_CH * m->D);
    conv2d_backward(a->pd[0], grad_of(m, G, m->px_mean.W), grad_of(m, G, m->px_mean.b), a->d_x_pre, top,
                    tensor_of(m, P, m->px_mean.W), &m->px_head, R, a->cscratch);
    if (m->logistic)
        conv2d_backward(a->pd[0], grad_of(m, G, m->px_logvar.W), NULL, a->d_xlv_pre, top,
                        tensor_of(m, P, m->px_logvar.W), &m->px_head, R, a->cscratch);
}

/* pd[0] (the gradient of po[l]) through the ReLU into pd[1], and this chunk's partial of BatchNorm l's backward. */
static void pixel_relu_backward_partial(const vamp_model *m, vamp_acts *a, int l, int R)
{
    const int C = VAMP_PIXEL_CH, HW = (int)m->D;
    const size_t n = (size_t)R * C * HW;
    zero(a->pd[1], n);
    relu_backward(a->pd[1], a->pd[0], a->po[l], n); /* po > 0 exactly where BatchNorm's output is */
    batchnorm2d_backward_partial(a->bn_part + (size_t)l * bn_len(), a->pd[1], a->pc[l], a->bn_mean + l * C,
                                 a->bn_invstd + l * C, R, C, HW);
}

/* BatchNorm l's backward with the whole batch's sums bn_total (pd[1] -> pd[2], gamma and beta), then its masked
 * conv's (pd[2] -> the gradient of its input: pd[0], or d_pin for layer 0). */
static void pixel_bn_conv_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int l,
                                   const double *bn_total, int R)
{
    const int C = VAMP_PIXEL_CH, HW = (int)m->D;
    const vamp_pixel_layer *L = &m->pcnn[l];
    zero(a->pd[2], (size_t)R * C * HW);
    batchnorm2d_backward_apply(a->pd[2], grad_of(m, G, L->gamma), grad_of(m, G, L->beta),
                               a->bn_part + (size_t)l * bn_len(), bn_total, a->pd[1], a->pc[l], a->bn_mean + l * C,
                               a->bn_invstd + l * C, tensor_of(m, P, L->gamma), R, C, HW);
    float *din = l ? a->pd[0] : a->d_pin;
    zero(din, (size_t)R * L->geo.cin * HW);
    masked_conv2d_backward(din, grad_of(m, G, L->W), NULL, a->pd[2], l ? a->po[l - 1] : a->pin,
                           tensor_of(m, P, L->W), l ? a->mask_b : a->mask_a, &L->geo, R, a->cscratch);
}

/* The whole decoder in evaluation mode (running statistics) up to the logits, on a->z1, a->z_top and a->x. */
static void pixel_forward_eval(const vamp_model *m, vamp_acts *a, const float *P, int R)
{
    pixel_input_forward(m, a, P, a->x, R);
    for (int l = 0; l < VAMP_PIXEL_LAYERS; l++) {
        pixel_conv_forward(m, a, P, l, l ? a->po[l - 1] : a->pin, &m->pcnn[l].geo, R);
        pixel_bn_eval_forward(m, a, P, l, R, (int)m->D);
    }
    pixel_heads_forward(m, a, P, R);
}

/* Draws R images pixel by pixel (model_decode) from a->z1, a->z_top. The image being drawn is pin's channel 0.
 * The output at row i of the masked stack depends on input rows i - L .. i only (each layer looks one row up), so
 * each pass runs on that band of rows (zero-padded above it as the full image is; the band's first L rows are then
 * wrong, its last row exact): (L + 1) / h of a full pass. */
static void pixel_generate(const vamp_model *m, vamp_acts *a, const float *P, int R, float *x_mean, uint64_t seed,
                           uint64_t first)
{
    const int h = m->height, w = m->width, C = VAMP_PIXEL_CH, L = VAMP_PIXEL_LAYERS;
    const size_t D = m->D;
    float *zeros = a->x_pre; /* free in this pass: the initial image */
    zero(zeros, (size_t)R * D);
    pixel_input_forward(m, a, P, zeros, R);
    const float *Wm = tensor_of(m, P, m->px_mean.W), *bm = tensor_of(m, P, m->px_mean.b);
    const float *Wl = m->logistic ? tensor_of(m, P, m->px_logvar.W) : NULL;
    for (int i = 0; i < h; i++) {
        const int r0 = i > L ? i - L : 0, hb = i - r0 + 1, bhw = hb * w;
        for (int j = 0; j < w; j++) {
            float *band = a->d_pin; /* (R,3,hb,w): rows r0..i of pin */
            for (int r = 0; r < R; r++)
                for (int ch = 0; ch < 3; ch++)
                    memcpy(band + ((size_t)r * 3 + ch) * bhw, a->pin + ((size_t)r * 3 + ch) * D + (size_t)r0 * w,
                           (size_t)bhw * sizeof(float));
            for (int l = 0; l < L; l++) {
                const vamp_conv geo = conv_geom(l ? C : 3, hb, w, C, 3, 1, 1);
                pixel_conv_forward(m, a, P, l, l ? a->po[l - 1] : band, &geo, R);
                pixel_bn_eval_forward(m, a, P, l, R, bhw);
            }
            const size_t at = (size_t)(i - r0) * w + j, pix = (size_t)i * w + j;
            for (int r = 0; r < R; r++) {
                const float *top = a->po[L - 1] + (size_t)r * C * bhw + at;
                float pre = bm ? bm[0] : 0.0f, lpre = 0.0f;
                for (int c = 0; c < C; c++) {
                    pre += Wm[c] * top[(size_t)c * bhw];
                    if (Wl) lpre += Wl[c] * top[(size_t)c * bhw];
                }
                float u = rng_uniform(seed, RNG_SAMPLE, 2, first + (uint64_t)r, (uint32_t)pix), p = vamp_sigmoid(pre), v;
                if (!m->logistic) {
                    v = u < p ? 1.0f : 0.0f;
                } else { /* the reference: mean + exp(log-scale) logit(u), floored to its bin; kept in [0, 1) */
                    p = clamp(p, LOGI_CLAMP, 1.0f - LOGI_CLAMP);
                    u = clamp(u, 1e-7f, 1.0f - 1e-7f);
                    float y = p + expf(clamp(lpre, XLOGVAR_LO, XLOGVAR_HI)) * (logf(u) - logf(1.0f - u));
                    v = clamp(floorf(y / LOGI_BIN) * LOGI_BIN, 0.0f, 1.0f - LOGI_BIN);
                }
                x_mean[(size_t)r * D + pix] = p;
                a->pin[(size_t)r * 3 * D + pix] = v;
            }
        }
    }
}

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
    if (m->logistic) hardtanh_forward(a->x_logvar, a->xlv_pre, (size_t)R * D, XLOGVAR_LO, XLOGVAR_HI);
    for (int r = 0; r < R; r++) {
        double s = 0.0; /* a sum of D terms: double keeps it independent of D's size */
        for (size_t d = 0; d < D; d++) {
            size_t i = r * D + d;
            float p = vamp_sigmoid(a->x_pre[i]);
            if (!m->logistic) {
                a->x_mean[i] = p;
                float pc = clamp(p, BERN_EPS, 1.0f - BERN_EPS);
                /* binary pixels need one logarithm: the other term is exactly +-0, so the same bits */
                if (x[i] == 1.0f) s += logf(pc);
                else if (x[i] == 0.0f) s += logf(1.0f - pc);
                else s += x[i] * logf(pc) + (1.0f - x[i]) * logf(1.0f - pc);
            } else {
                float mu = clamp(p, LOGI_CLAMP, 1.0f - LOGI_CLAMP);
                a->x_mean[i] = mu;
                s += logistic256_logp(x[i], mu, a->x_logvar[i], NULL, NULL);
            }
        }
        a->re[r] = (float)-s;
    }
}

/* d_x_pre (R,D) = d(scale * sum re)/d x_pre ; d_xlv_pre = d/d xlv_pre (logistic). */
static void likelihood_backward(const vamp_model *m, vamp_acts *a, const float *x, int R, float scale)
{
    const size_t n = (size_t)R * m->D;
    for (size_t i = 0; i < n; i++) {
        float p = vamp_sigmoid(a->x_pre[i]);
        if (!m->logistic) { /* d(-log p(x))/d logit = p - x where the clamp is inactive (torch: inclusive bounds) */
            a->d_x_pre[i] = (p >= BERN_EPS && p <= 1.0f - BERN_EPS) ? scale * (p - x[i]) : 0.0f;
        } else {
            double dlogp_dmu, dlogp_dlv;
            logistic256_logp(x[i], a->x_mean[i], a->x_logvar[i], &dlogp_dmu, &dlogp_dlv);
            int inside = p >= LOGI_CLAMP && p <= 1.0f - LOGI_CLAMP;
            a->d_x_pre[i] = inside ? (float)(-scale * dlogp_dmu * p * (1.0f - p)) : 0.0f;
            float lv = a->xlv_pre[i];
            a->d_xlv_pre[i] = (lv > XLOGVAR_LO && lv < XLOGVAR_HI) ? (float)(-scale * dlogp_dlv) : 0.0f;
        }
    }
}

/* ---- the KL terms ------------------------------------------------------------------------------------------- */

/* kl (R) = log q(z..|x) - log p(z..) (both levels for hvae); returns sum over rows of (re + beta*kl). */
static double kl_forward(const vamp_model *m, vamp_acts *a, const float *pm, const float *plv, int R, float beta)
{
    const int Zt = m->Ztop, Z1 = m->Z1;
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

/* Adds d(scale * beta * sum kl) into the latents' gradients and into dpm/dplv (prior components). */
static void kl_backward(const vamp_model *m, vamp_acts *a, float *dpm, float *dplv, const float *pm,
                        const float *plv, int R, float beta, float scale)
{
    const int Zt = m->Ztop, Z1 = m->Z1;
    for (int r = 0; r < R; r++) {
        a->w_log_q[r] = scale * beta;
        a->w_log_p[r] = -scale * beta;
    }
    if (m->hvae) {
        log_normal_backward(a->d_z1, a->d_pz1_mean, a->d_pz1_logvar, a->w_log_p, a->z1, a->pz1_mean, a->pz1_logvar,
                            R, Z1);
        log_normal_backward(a->d_z1, a->d_q1_mean, a->d_q1_logvar, a->w_log_q, a->z1, a->q1_mean, a->q1_logvar, R,
                            Z1);
    }
    if (m->K)
        mixture_log_prob_backward(a->d_z_top, dpm, dplv, a->w_log_p, a->z_top, pm, plv, a->resp, R, m->K, Zt);
    else log_normal_backward(a->d_z_top, NULL, NULL, a->w_log_p, a->z_top, NULL, NULL, R, Zt);
    log_normal_backward(a->d_z_top, a->d_top_mean, a->d_top_logvar, a->w_log_q, a->z_top, a->enc.mean,
                        a->enc.logvar, R, Zt);
}

/* ---- the chunk forward / backward ------------------------------------------------------------------------ */

void model_decode(const vamp_model *m, vamp_acts *a, const float *params, const float *z_top, const float *eps1,
                  int R, float *x_mean, uint64_t seed, uint64_t first)
{
    const size_t n = (size_t)R * m->D;
    if (z_top != a->z_top) memcpy(a->z_top, z_top, (size_t)R * m->Ztop * sizeof(float));
    if (m->hvae && eps1) {
        pz1_forward(m, a, params, R);
        reparam_forward(a->z1, a->pz1_mean, a->pz1_logvar, eps1, (size_t)R * m->Z1);
    }
    if (m->pixel) {
        pixel_generate(m, a, params, R, x_mean, seed, first);
        return;
    }
    px_forward(m, a, params, R);
    for (size_t i = 0; i < n; i++) {
        float p = vamp_sigmoid(a->x_pre[i]);
        x_mean[i] = m->logistic ? clamp(p, LOGI_CLAMP, 1.0f - LOGI_CLAMP) : p;
    }
}

void model_encode(const vamp_model *m, vamp_acts *a, const float *params, const float *x, int R)
{
    top_encoder_forward(m, &a->enc, params, x, R);
    if (m->conv) stack_forward(m, params, &m->q1_conv, &a->q1c, x, R, a->cscratch); /* q1x_o = its output */
    else if (m->hvae) gated_layer_forward(m, params, &m->q1_x, a->q1x_o, a->q1x_h, a->q1x_g, x, R, (int)m->D);
}

/* The twin of model_encode: d_top_mean, d_top_logvar (and hvae d_branch1, the gradient of q1x_o) -> grads. */
static void encode_backward(const vamp_model *m, vamp_acts *a, const float *P, float *G, int R)
{
    if (m->conv)
        stack_backward(m, P, G, &m->q1_conv, &a->q1c, NULL, a->d_branch1, a->x, R, a->cd, a->cscratch);
    else if (m->hvae)
        gated_layer_backward(m, P, G, &m->q1_x, NULL, a->d_branch1, a->x, a->q1x_h, a->q1x_g, R, (int)m->D,
                             a->gscratch);
    top_encoder_backward(m, &a->enc, P, G, a->x, a->d_top_mean, a->d_top_logvar, NULL, R);
}

void model_encode_broadcast(const vamp_model *m, vamp_acts *a, int R)
{
    const size_t Zt = (size_t)m->Ztop, H = (size_t)q1_width(m); /* the width of q1x_o */
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

/* The latents after model_encode: z_top ~ q(z_top | x) (its encoding is in a->enc), hvae z1 ~ q(z1 | x, z2) and
 * p(z1 | z2). */
static void latents_forward(const vamp_model *m, vamp_acts *a, const float *params, const float *x,
                            const float *eps_top, const float *eps1, int R)
{
    a->x = x;
    memcpy(a->eps_top, eps_top, (size_t)R * m->Ztop * sizeof(float));
    reparam_forward(a->z_top, a->enc.mean, a->enc.logvar, a->eps_top, (size_t)R * m->Ztop);
    if (m->hvae) {
        memcpy(a->eps1, eps1, (size_t)R * m->Z1 * sizeof(float));
        q1_forward(m, a, params, R);
        pz1_forward(m, a, params, R);
    }
}

double model_forward_encoded(const vamp_model *m, vamp_acts *a, const float *params, const float *x,
                             const float *eps_top, const float *eps1, int R, const float *pm, const float *plv,
                             float beta)
{
    latents_forward(m, a, params, x, eps_top, eps1, R);
    px_forward(m, a, params, R);
    likelihood_forward(m, a, x, R);
    return kl_forward(m, a, pm, plv, R, beta);
}

/* The backward pass down to p(x|.)'s logits: every latent's gradient starts at zero and collects from each block
 * that reads it; the KL terms' and the likelihood's gradients. */
static void backward_begin(const vamp_model *m, vamp_acts *a, float *dpm, float *dplv, const float *pm,
                           const float *plv, int R, float beta, float scale)
{
    const size_t RZ = (size_t)R * m->Ztop, RZ1 = (size_t)R * m->Z1;
    zero(a->d_z_top, RZ);
    zero(a->d_top_mean, RZ);
    zero(a->d_top_logvar, RZ);
    if (m->hvae) {
        zero(a->d_z1, RZ1);
        zero(a->d_q1_mean, RZ1);
        zero(a->d_q1_logvar, RZ1);
        zero(a->d_pz1_mean, RZ1);
        zero(a->d_pz1_logvar, RZ1);
    }
    kl_backward(m, a, dpm, dplv, pm, plv, R, beta, scale);
    likelihood_backward(m, a, a->x, R, scale);
}

/* The backward pass below p(x|.): p(z1|z2), q(z1|x,z2), the reparameterisation and the encoders. */
static void backward_end(const vamp_model *m, vamp_acts *a, const float *params, float *grads, int R)
{
    if (m->hvae) {
        pz1_backward(m, a, params, grads, R);
        q1_backward(m, a, params, grads, R);
    }
    reparam_backward(a->d_top_mean, a->d_top_logvar, a->d_z_top, a->enc.logvar, a->eps_top, (size_t)R * m->Ztop);
    encode_backward(m, a, params, grads, R);
}

/* The forward pass in reverse. */
void model_backward(const vamp_model *m, vamp_acts *a, const float *params, float *grads, float *dpm,
                    float *dplv, const float *pm, const float *plv, int R, float beta, float scale)
{
    if (m->pixel) /* its model_forward is the evaluation mode: a caller's mistake, not input */
        vamp_fatal(__FILE__, __LINE__, "model_backward", "the pixelhvae trains through model_backward_stage");
    backward_begin(m, a, dpm, dplv, pm, plv, R, beta, scale);
    px_backward(m, a, params, grads, R);
    backward_end(m, a, params, grads, R);
}

/* ---- training mode in stages (see model.h) ------------------------------------------------------------------ */

int model_sync_layers(const vamp_model *m) { return m->pixel ? VAMP_PIXEL_LAYERS : 0; }
size_t model_sync_len(const vamp_model *m) { return m->pixel ? bn_len() : 0; }

double model_forward_stage(const vamp_model *m, vamp_acts *a, const float *params, const float *x,
                           const float *eps_top, const float *eps1, int R, const float *pm, const float *plv,
                           float beta, int s, const double *bn_total)
{
    const int L = model_sync_layers(m);
    if (L == 0) return model_forward(m, a, params, x, eps_top, eps1, R, pm, plv, beta);
    if (s == 0) {
        model_encode(m, a, params, x, R);
        latents_forward(m, a, params, x, eps_top, eps1, R);
        pixel_input_forward(m, a, params, x, R);
    } else {
        pixel_bn_train_forward(m, a, params, s - 1, bn_total, R);
    }
    if (s < L) {
        pixel_conv_forward(m, a, params, s, s ? a->po[s - 1] : a->pin, &m->pcnn[s].geo, R);
        batchnorm2d_forward_partial(a->bn_part + (size_t)s * bn_len(), a->pc[s], R, VAMP_PIXEL_CH, (int)m->D);
        return 0.0;
    }
    pixel_heads_forward(m, a, params, R);
    likelihood_forward(m, a, a->x, R);
    return kl_forward(m, a, pm, plv, R, beta);
}

void model_backward_stage(const vamp_model *m, vamp_acts *a, const float *params, float *grads, float *dpm,
                          float *dplv, const float *pm, const float *plv, int R, float beta, float scale, int s,
                          const double *bn_total)
{
    const int L = model_sync_layers(m);
    if (L == 0) {
        model_backward(m, a, params, grads, dpm, dplv, pm, plv, R, beta, scale);
        return;
    }
    if (s == L) {
        backward_begin(m, a, dpm, dplv, pm, plv, R, beta, scale);
        pixel_heads_backward(m, a, params, grads, R);
    } else {
        pixel_bn_conv_backward(m, a, params, grads, s, bn_total, R);
    }
    if (s > 0) {
        pixel_relu_backward_partial(m, a, s - 1, R);
        return;
    }
    pixel_input_backward(m, a, params, grads, R);
    backward_end(m, a, params, grads, R);
}

void model_bn_running_update(const vamp_model *m, float *params, int s, const double *bn_total)
{
    const vamp_pixel_layer *L = &m->pcnn[s];
    batchnorm2d_running_update(params + m->layout.t[L->rmean].offset, params + m->layout.t[L->rvar].offset,
                               bn_total, VAMP_PIXEL_CH, BN_MOMENTUM);
}

/* One chunk's combine is its own partial: each stage reads the row the previous stage wrote. */
double model_forward_train(const vamp_model *m, vamp_acts *a, const float *params, const float *x,
                           const float *eps_top, const float *eps1, int R, const float *pm, const float *plv,
                           float beta)
{
    const int L = model_sync_layers(m);
    double loss = 0.0;
    for (int s = 0; s <= L; s++)
        loss = model_forward_stage(m, a, params, x, eps_top, eps1, R, pm, plv, beta, s,
                                   s ? a->bn_part + (size_t)(s - 1) * bn_len() : NULL);
    return loss;
}

void model_backward_train(const vamp_model *m, vamp_acts *a, const float *params, float *grads, float *dpm,
                          float *dplv, const float *pm, const float *plv, int R, float beta, float scale)
{
    const int L = model_sync_layers(m);
    for (int s = L; s >= 0; s--)
        model_backward_stage(m, a, params, grads, dpm, dplv, pm, plv, R, beta, scale, s,
                             s < L ? a->bn_part + (size_t)s * bn_len() : NULL);
}
