/* Finite-difference check of the whole model's gradient: for vae/hvae x bernoulli/logistic256 x every prior,
 * the hand-written backward pass (including pseudo-inputs through the encoder and the hardtanh, and the MoG
 * parameters) against central differences of the training loss, tensor by tensor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vamp/config.h"
#include "vamp/model.h"
#include "vamp/rng.h"

enum { B = 4, D = 5 };

typedef struct {
    vamp_model m;
    vamp_acts a;
    vamp_enc_acts pa;
    float *params, *x, *eps_top, *eps1, *pm, *plv;
} fixture;

static const float BETA = 0.6f;

/* The training loss (sum over rows) as the trainer computes it on one rank. */
static double loss(fixture *f)
{
    vamp_model *m = &f->m;
    if (m->pseudo >= 0) model_pseudo_forward(m, &f->pa, f->params, 0, m->K, f->pm, f->plv);
    const float *pm = f->pm, *plv = f->plv;
    if (m->mog_means >= 0) {
        pm = f->params + m->layout.t[m->mog_means].offset;
        plv = f->params + m->layout.t[m->mog_logvars].offset;
    }
    return model_forward(m, &f->a, f->params, f->x, f->eps_top, f->eps1, B, pm, plv, BETA);
}

static void analytic(fixture *f, float *grads)
{
    vamp_model *m = &f->m;
    memset(grads, 0, m->layout.total * sizeof(float));
    loss(f);
    float *dpm = NULL, *dplv = NULL;
    const float *pm = f->pm, *plv = f->plv;
    float *aux = NULL;
    if (m->pseudo >= 0) {
        aux = calloc((size_t)2 * m->K * m->Ztop, sizeof(float));
        dpm = aux;
        dplv = aux + (size_t)m->K * m->Ztop;
    } else if (m->mog_means >= 0) {
        pm = f->params + m->layout.t[m->mog_means].offset;
        plv = f->params + m->layout.t[m->mog_logvars].offset;
        dpm = grads + m->layout.t[m->mog_means].offset;
        dplv = grads + m->layout.t[m->mog_logvars].offset;
    }
    model_backward(m, &f->a, f->params, grads, dpm, dplv, pm, plv, B, BETA, 1.0f);
    if (m->pseudo >= 0) model_pseudo_backward(m, &f->pa, f->params, grads, 0, m->K, dpm, dplv);
    free(aux);
}

static void check_config(vamp_model_type type, vamp_likelihood lik, vamp_prior_type prior)
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
    fixture f;
    model_init(&f.m, &c, D);
    vamp_model *m = &f.m;
    const size_t N = m->layout.total;
    f.params = malloc(N * sizeof(float));
    model_init_params(m, f.params, 5);
    for (size_t i = 0; i < N; i++) f.params[i] += 0.1f * rng_normal(5, RNG_INIT, 3, 0, (uint32_t)i);
    if (m->pseudo >= 0) /* pseudo-inputs well inside (0,1), away from the hardtanh's kinks */
        for (size_t i = 0; i < m->layout.t[m->pseudo].size; i++)
            f.params[m->layout.t[m->pseudo].offset + i] = 0.2f + 0.6f * rng_uniform(5, RNG_PSEUDO, 0, 0, (uint32_t)i);
    if (m->px_logvar.b >= 0) /* logistic log-scales around -2, away from the hardtanh(-4.5, 0) kinks */
        for (size_t i = 0; i < m->layout.t[m->px_logvar.b].size; i++) f.params[m->layout.t[m->px_logvar.b].offset + i] = -2.0f;
    f.x = malloc(B * D * sizeof(float));
    for (int i = 0; i < B * D; i++) {
        float u = rng_uniform(5, RNG_BINARIZE, 0, 0, (uint32_t)i);
        f.x[i] = lik == LIK_BERNOULLI ? (u < 0.5f) : (float)(int)(u * 255.0f) / 255.0f + 0.5f / 256.0f;
    }
    f.eps_top = malloc(B * m->Ztop * sizeof(float));
    f.eps1 = malloc(B * (m->Z1 ? m->Z1 : 1) * sizeof(float));
    rng_normal_fill(f.eps_top, (size_t)B * m->Ztop, 5, RNG_EPS_TRAIN, 0, 0, 0);
    rng_normal_fill(f.eps1, (size_t)B * (m->Z1 ? m->Z1 : 1), 5, RNG_EPS_TRAIN, 0, 1, 0);
    f.pm = calloc((size_t)(m->K ? m->K : 1) * m->Ztop, sizeof(float));
    f.plv = calloc((size_t)(m->K ? m->K : 1) * m->Ztop, sizeof(float));
    acts_init(&f.a, m, B);
    if (m->pseudo >= 0) enc_acts_init(&f.pa, m, m->K, 1);

    float *g = malloc(N * sizeof(float));
    analytic(&f, g);
    const float h = 3e-3f;
    double worst = 0.0;
    const char *worst_name = "";
    int failures = 0;
    for (int t = 0; t < m->layout.n; t++) {
        const vamp_tensor *T = &m->layout.t[t];
        double dd = 0.0, nn = 0.0;
        for (size_t i = 0; i < T->size; i++) {
            float *p = &f.params[T->offset + i], keep = *p;
            *p = keep + h;
            double lp = loss(&f);
            *p = keep - h;
            double lm = loss(&f);
            *p = keep;
            double num = (lp - lm) / (2.0 * h), an = g[T->offset + i];
            dd += (an - num) * (an - num);
            nn += num * num;
        }
        double rel = sqrt(dd) / (sqrt(nn) + 1e-3);
        if (rel > worst) {
            worst = rel;
            worst_name = T->name;
        }
        if (sqrt(dd) > 1e-2 * sqrt(nn) + 2e-3) {
            failures++;
            printf("  FAIL %s: ||analytic - numeric|| = %.3g, ||numeric|| = %.3g\n", T->name, sqrt(dd), sqrt(nn));
        }
    }
    printf("  %s/%s/%s: %d tensors, worst relative error %.2e (%s)\n", config_model_name(type),
           config_likelihood_name(lik), config_prior_name(prior), m->layout.n, worst, worst_name);
    assert_int_equal(failures, 0);
    if (m->pseudo >= 0) enc_acts_free(&f.pa);
    acts_free(&f.a);
    free(g);
    free(f.params);
    free(f.x);
    free(f.eps_top);
    free(f.eps1);
    free(f.pm);
    free(f.plv);
}

static void test_all(vamp_model_type type, vamp_likelihood lik)
{
    for (int p = 0; p < 4; p++) check_config(type, lik, (vamp_prior_type)p);
}
static void vae_bernoulli(void **s) { (void)s; test_all(MODEL_VAE, LIK_BERNOULLI); }
static void vae_logistic(void **s) { (void)s; test_all(MODEL_VAE, LIK_LOGISTIC256); }
static void hvae_bernoulli(void **s) { (void)s; test_all(MODEL_HVAE, LIK_BERNOULLI); }
static void hvae_logistic(void **s) { (void)s; test_all(MODEL_HVAE, LIK_LOGISTIC256); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vae_bernoulli),
        cmocka_unit_test(vae_logistic),
        cmocka_unit_test(hvae_bernoulli),
        cmocka_unit_test(hvae_logistic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
