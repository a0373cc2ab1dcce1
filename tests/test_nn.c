/* Every layer kernel with a backward pass (nn.h) and the mixture log-density (prior.h) against central finite
 * differences of f = sum(c .* output), c random, on tiny shapes. Also the backward contract: it adds into its
 * d-outputs (two calls give twice the gradient) and skips a NULL d-output (run in a child process, so a crash
 * is a failure of that check and not of the whole suite). The kernels are float-only: the objective is
 * accumulated in double and the step is 1e-2 on inputs of order 1, so float noise stays below the tolerance. */
#include "fd_check.h"

#include "vamp/nn.h"
#include "vamp/prior.h"

enum { B = 3, IN = 4, OUT = 5, Z = 3, K = 4 };

/* ---- linear ---------------------------------------------------------------------------------------------- */

typedef struct {
    kcase k;
    float x[B * IN], W[OUT * IN], b[OUT]; /* (B,IN), (OUT,IN), (OUT) */
    float y[B * OUT], c[B * OUT];         /* (B,OUT) */
    int bias;
} linear_case;

static double linear_obj(kcase *k)
{
    linear_case *L = (linear_case *)k;
    linear_forward(L->y, L->x, L->W, L->bias ? L->b : NULL, B, IN, OUT);
    return dot_c(L->c, L->y, B * OUT);
}
static void linear_bwd(kcase *k, float **d)
{
    linear_case *L = (linear_case *)k;
    linear_backward(d[0], d[1], L->bias ? d[2] : NULL, L->c, L->x, L->W, B, IN, OUT);
}

static void linear_setup(linear_case *L, int bias, uint64_t seed)
{
    memset(L, 0, sizeof *L);
    lcg r = {seed};
    fill(&r, L->x, B * IN, -1, 1);
    fill(&r, L->W, OUT * IN, -1, 1);
    fill(&r, L->b, OUT, -1, 1);
    fill(&r, L->c, B * OUT, -1, 1);
    L->bias = bias;
    L->k = (kcase){.name = bias ? "linear" : "linear (no bias)", .nin = bias ? 3 : 2,
                   .in_name = {"x", "W", "b"}, .in = {L->x, L->W, L->b}, .n_in = {B * IN, OUT * IN, OUT},
                   .objective = linear_obj, .backward = linear_bwd};
}

static void test_linear(void **s)
{
    (void)s;
    linear_case L;
    linear_setup(&L, 1, 11);
    check_kernel(&L.k);
    linear_setup(&L, 0, 12);
    check_kernel(&L.k);
    /* the forward itself: y = x W^T + b in double */
    linear_setup(&L, 1, 13);
    linear_obj(&L.k);
    for (int r = 0; r < B; r++)
        for (int o = 0; o < OUT; o++) {
            double v = L.b[o];
            for (int i = 0; i < IN; i++) v += (double)L.x[r * IN + i] * L.W[o * IN + i];
            assert_true(fabs(L.y[r * OUT + o] - v) < 1e-5);
        }
}

/* ---- gated ----------------------------------------------------------------------------------------------- */

typedef struct {
    kcase k;
    float x[B * IN], Wh[OUT * IN], bh[OUT], Wg[OUT * IN], bg[OUT];
    float y[B * OUT], h[B * OUT], g[B * OUT], c[B * OUT], scratch[2 * B * OUT];
} gated_case;

static double gated_obj(kcase *k)
{
    gated_case *G = (gated_case *)k;
    gated_forward(G->y, G->h, G->g, G->x, G->Wh, G->bh, G->Wg, G->bg, B, IN, OUT);
    return dot_c(G->c, G->y, B * OUT);
}
static void gated_bwd(kcase *k, float **d)
{
    gated_case *G = (gated_case *)k;
    gated_obj(k);
    gated_backward(d[0], d[1], d[2], d[3], d[4], G->c, G->x, G->h, G->g, G->Wh, G->Wg, B, IN, OUT, G->scratch);
}

static void test_gated(void **s)
{
    (void)s;
    gated_case G;
    memset(&G, 0, sizeof G);
    G.k = (kcase){.name = "gated", .nin = 5, .in_name = {"x", "Wh", "bh", "Wg", "bg"},
                  .in = {G.x, G.Wh, G.bh, G.Wg, G.bg}, .n_in = {B * IN, OUT * IN, OUT, OUT * IN, OUT},
                  .objective = gated_obj, .backward = gated_bwd};
    lcg r = {21};
    fill_inputs(&r, &G.k, -1, 1);
    fill(&r, G.c, B * OUT, -1, 1);
    check_kernel(&G.k);
    /* the forward itself: (x Wh^T + bh) * sigmoid(x Wg^T + bg) */
    gated_obj(&G.k);
    for (int rr = 0; rr < B; rr++)
        for (int o = 0; o < OUT; o++) {
            double hv = G.bh[o], gv = G.bg[o];
            for (int i = 0; i < IN; i++) {
                hv += (double)G.x[rr * IN + i] * G.Wh[o * IN + i];
                gv += (double)G.x[rr * IN + i] * G.Wg[o * IN + i];
            }
            assert_true(fabs(G.y[rr * OUT + o] - hv / (1.0 + exp(-gv))) < 1e-5);
        }
}

/* ---- hardtanh -------------------------------------------------------------------------------------------- */

enum { NH = B * OUT };
static const float HT_LO = -0.7f, HT_HI = 0.9f;

typedef struct {
    kcase k;
    float x[NH], y[NH], c[NH];
} hardtanh_case;

static double hardtanh_obj(kcase *k)
{
    hardtanh_case *T = (hardtanh_case *)k;
    hardtanh_forward(T->y, T->x, NH, HT_LO, HT_HI);
    return dot_c(T->c, T->y, NH);
}
static void hardtanh_bwd(kcase *k, float **d)
{
    hardtanh_case *T = (hardtanh_case *)k;
    hardtanh_backward(d[0], T->c, T->x, NH, HT_LO, HT_HI);
}

static void test_hardtanh(void **s)
{
    (void)s;
    hardtanh_case T;
    memset(&T, 0, sizeof T);
    lcg r = {31};
    int below = 0, inside = 0, above = 0;
    for (int i = 0; i < NH; i++) { /* on all three pieces, at least 0.05 from either kink */
        float v;
        do v = lcg_range(&r, -2, 2);
        while (fabsf(v - HT_LO) <= 0.05f || fabsf(v - HT_HI) <= 0.05f);
        T.x[i] = v;
        below += v < HT_LO;
        above += v > HT_HI;
        inside += v > HT_LO && v < HT_HI;
    }
    assert_true(below > 0 && inside > 0 && above > 0);
    fill(&r, T.c, NH, -1, 1);
    T.k = (kcase){.name = "hardtanh", .nin = 1, .in_name = {"x"}, .in = {T.x}, .n_in = {NH},
                  .objective = hardtanh_obj, .backward = hardtanh_bwd};
    check_kernel(&T.k);
}

/* ---- reparam --------------------------------------------------------------------------------------------- */

enum { NZ = B * Z };

typedef struct {
    kcase k;
    float mean[NZ], logvar[NZ], eps[NZ], z[NZ], c[NZ];
} reparam_case;

static double reparam_obj(kcase *k)
{
    reparam_case *P = (reparam_case *)k;
    reparam_forward(P->z, P->mean, P->logvar, P->eps, NZ);
    return dot_c(P->c, P->z, NZ);
}
static void reparam_bwd(kcase *k, float **d)
{
    reparam_case *P = (reparam_case *)k;
    reparam_backward(d[0], d[1], P->c, P->logvar, P->eps, NZ);
}

static void test_reparam(void **s)
{
    (void)s;
    reparam_case P;
    memset(&P, 0, sizeof P);
    lcg r = {41};
    fill(&r, P.mean, NZ, -1, 1);
    fill(&r, P.logvar, NZ, -1.5, 1.5);
    fill(&r, P.eps, NZ, -2, 2);
    fill(&r, P.c, NZ, -1, 1);
    P.k = (kcase){.name = "reparam", .nin = 2, .in_name = {"mean", "logvar"}, .in = {P.mean, P.logvar},
                  .n_in = {NZ, NZ}, .objective = reparam_obj, .backward = reparam_bwd};
    check_kernel(&P.k);
}

/* ---- log_normal ------------------------------------------------------------------------------------------- */

typedef struct {
    kcase k;
    float z[NZ], mean[NZ], logvar[NZ]; /* (B,Z) */
    float out[B], w[B];
    int standard; /* mean = logvar = NULL */
} lognormal_case;

static double lognormal_obj(kcase *k)
{
    lognormal_case *L = (lognormal_case *)k;
    log_normal_forward(L->out, L->z, L->standard ? NULL : L->mean, L->standard ? NULL : L->logvar, B, Z);
    return dot_c(L->w, L->out, B);
}
static void lognormal_bwd(kcase *k, float **d)
{
    lognormal_case *L = (lognormal_case *)k;
    if (L->standard) log_normal_backward(d[0], NULL, NULL, L->w, L->z, NULL, NULL, B, Z);
    else log_normal_backward(d[0], d[1], d[2], L->w, L->z, L->mean, L->logvar, B, Z);
}

static void lognormal_setup(lognormal_case *L, int standard, uint64_t seed)
{
    memset(L, 0, sizeof *L);
    lcg r = {seed};
    fill(&r, L->z, NZ, -1.5, 1.5);
    fill(&r, L->mean, NZ, -1, 1);
    fill(&r, L->logvar, NZ, -1, 1);
    fill(&r, L->w, B, -1, 1);
    L->standard = standard;
    L->k = (kcase){.name = standard ? "log_normal (standard)" : "log_normal", .nin = standard ? 1 : 3,
                   .in_name = {"z", "mean", "logvar"}, .in = {L->z, L->mean, L->logvar}, .n_in = {NZ, NZ, NZ},
                   .objective = lognormal_obj, .backward = lognormal_bwd};
}

static void test_log_normal(void **s)
{
    (void)s;
    lognormal_case L;
    for (int standard = 0; standard < 2; standard++) {
        lognormal_setup(&L, standard, 51 + standard);
        check_kernel(&L.k);
        /* the forward itself, with the full normalisation */
        lognormal_obj(&L.k);
        for (int r = 0; r < B; r++) {
            double v = 0.0;
            for (int j = 0; j < Z; j++) {
                int i = r * Z + j;
                double m = standard ? 0.0 : L.mean[i], lv = standard ? 0.0 : L.logvar[i], d = L.z[i] - m;
                v += -0.5 * (log(2.0 * M_PI) + lv + d * d * exp(-lv));
            }
            assert_true(fabs(L.out[r] - v) < 1e-5 * fmax(1.0, fabs(v)));
        }
    }
}

/* ---- mixture_log_prob ------------------------------------------------------------------------------------- */

typedef struct {
    kcase k;
    float z[B * Z], pm[K * Z], plv[K * Z];
    float logp[B], resp[B * K], w[B];
} mixture_case;

static double mixture_obj(kcase *k)
{
    mixture_case *M = (mixture_case *)k;
    mixture_log_prob_forward(M->logp, M->resp, M->z, M->pm, M->plv, B, K, Z);
    return dot_c(M->w, M->logp, B);
}
static void mixture_bwd(kcase *k, float **d)
{
    mixture_case *M = (mixture_case *)k;
    mixture_obj(k);
    mixture_log_prob_backward(d[0], d[1], d[2], M->w, M->z, M->pm, M->plv, M->resp, B, K, Z);
}

/* log 1/K sum_k N(z_b; pm_k, exp(plv_k)) and the responsibilities in double, straight from the definition
 * (max-shifted so that the far-away case below stays finite). */
static double mixture_ref(const mixture_case *M, int b, double *resp)
{
    double lk[K], amax = -INFINITY, sum = 0.0;
    for (int k = 0; k < K; k++) {
        lk[k] = 0.0;
        for (int j = 0; j < Z; j++) {
            double d = (double)M->z[b * Z + j] - M->pm[k * Z + j], lv = M->plv[k * Z + j];
            lk[k] += -0.5 * (log(2.0 * M_PI) + lv + d * d * exp(-lv));
        }
        amax = fmax(amax, lk[k]);
    }
    for (int k = 0; k < K; k++) sum += exp(lk[k] - amax);
    for (int k = 0; k < K; k++) resp[k] = exp(lk[k] - amax) / sum;
    return amax + log(sum) - log((double)K);
}

static void test_mixture(void **s)
{
    (void)s;
    mixture_case M;
    memset(&M, 0, sizeof M);
    lcg r = {61};
    fill(&r, M.z, B * Z, -1.5, 1.5);
    fill(&r, M.pm, K * Z, -1, 1);
    fill(&r, M.plv, K * Z, -1, 1);
    fill(&r, M.w, B, -1, 1);
    M.k = (kcase){.name = "mixture_log_prob", .nin = 3, .in_name = {"z", "pm", "plv"},
                  .in = {M.z, M.pm, M.plv}, .n_in = {B * Z, K * Z, K * Z}, .objective = mixture_obj,
                  .backward = mixture_bwd};
    check_kernel(&M.k);

    /* forward value and responsibilities against the definition */
    mixture_obj(&M.k);
    for (int b = 0; b < B; b++) {
        double resp[K], v = mixture_ref(&M, b, resp);
        assert_true(fabs(M.logp[b] - v) < 1e-5 * fmax(1.0, fabs(v)));
        for (int k = 0; k < K; k++) assert_true(fabs(M.resp[b * K + k] - resp[k]) < 1e-5);
    }

    /* z far from every component (log-densities around -1e4): the max shift keeps value and gradient finite */
    for (int i = 0; i < B * Z; i++) M.z[i] += 60.0f;
    float **g = alloc_grads(&M.k);
    mixture_bwd(&M.k, g);
    for (int b = 0; b < B; b++) {
        double resp[K], v = mixture_ref(&M, b, resp);
        assert_true(v < -1e3);
        assert_true(isfinite(M.logp[b]) && fabs(M.logp[b] - v) < 1e-5 * fabs(v));
    }
    for (int j = 0; j < M.k.nin; j++)
        for (size_t i = 0; i < M.k.n_in[j]; i++) assert_true(isfinite(g[j][i]));
    free_grads(&M.k, g);
}

/* ---- the shortcuts past libm's slow paths (nn.h): the same bits as the plain formulas ---------------------- */

/* Every float within 2^16 steps of t on both sides. */
static void check_floats_near(float t, int *checked, int (*same)(float))
{
    float up = t, down = t;
    for (int i = 0; i < 65536; i++, up = nextafterf(up, INFINITY), down = nextafterf(down, -INFINITY)) {
        assert_true(same(up));
        assert_true(same(down));
        *checked += 2;
    }
}

static int same_bits(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }
static int sigmoid_same(float a) { return same_bits(vamp_sigmoid(a), 1.0f / (1.0f + expf(-a))); }
static int expf_same(float x) { return same_bits(vamp_expf_or_zero(x), expf(x)); }

static void test_libm_shortcuts(void **s)
{
    (void)s;
    int checked = 0;
    check_floats_near(-0x1.62e42ep6f, &checked, sigmoid_same); /* e^-a overflows */
    check_floats_near(0x1.9fe368p6f, &checked, sigmoid_same);  /* e^-a underflows to +0 */
    check_floats_near(-0x1.9fe368p6f, &checked, expf_same);    /* expf underflows to +0 */
    check_floats_near(-0x1.9d1d9ep6f, &checked, expf_same);    /* and to the smallest subnormal just above */
    for (float v = -200.0f; v <= 200.0f; v += 0x1p-10f, checked++) {
        assert_true(sigmoid_same(v));
        assert_true(expf_same(v));
    }
    assert_true(sigmoid_same(-INFINITY) && sigmoid_same(INFINITY) && expf_same(-INFINITY));
    printf("  vamp_sigmoid, vamp_expf_or_zero: %d floats, every one the same bits as 1/(1+expf(-a)), expf(x)\n",
           checked);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear),     cmocka_unit_test(test_gated),      cmocka_unit_test(test_hardtanh),
        cmocka_unit_test(test_reparam),    cmocka_unit_test(test_log_normal), cmocka_unit_test(test_mixture),
        cmocka_unit_test(test_libm_shortcuts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
