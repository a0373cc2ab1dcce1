/* Adam and AdamNormGrad (optim.h) against an independent double-precision implementation of the reference's
 * formula, the per-tensor normalisation, the zero-gradient guard and the step counter. Single process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "vamp/optim.h"

enum { NT = 3, N = 12 + 5 + 40, STEPS = 5 };
static const double LR = 5e-4;

/* three tensors: a (3, 4), b (5), c (40) */
static void make_layout(vamp_layout *l)
{
    layout_init(l);
    layout_add(l, "a", 3, 4);
    layout_add(l, "b", 5, 0);
    layout_add(l, "c", 40, 0);
}

/* Gradient of element i at step s: tensors on very different scales, mixed signs, one element always 0. */
static float grad(size_t i, int s)
{
    if (i == 3) return 0.0f;
    const float scale = i < 12 ? 30.0f : i < 17 ? 1e-3f : 1.0f;
    return scale * sinf(0.7f * (float)i + 1.3f * (float)s) * (float)(1 + s % 3);
}

/* The reference's AdamNormGrad / Adam step in double, written from its PyTorch source:
 * g = g / (||g|| + 1e-7) per tensor; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr sqrt(1-b2^t) / (1-b1^t) * m / (sqrt(v) + eps). */
static void ref_step(const vamp_layout *l, int normgrad, int t, double *p, const double *g0, double *m, double *v)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const double ss = LR * sqrt(1 - pow(b2, t)) / (1 - pow(b1, t));
    for (int k = 0; k < l->n; k++) {
        const size_t o = l->t[k].offset, n = l->t[k].size;
        double norm = 0;
        for (size_t i = o; i < o + n; i++) norm += g0[i] * g0[i];
        norm = sqrt(norm);
        for (size_t i = o; i < o + n; i++) {
            double g = normgrad ? g0[i] / (norm + 1e-7) : g0[i];
            m[i] = b1 * m[i] + (1 - b1) * g;
            v[i] = b2 * v[i] + (1 - b2) * g * g;
            p[i] -= ss * m[i] / (sqrt(v[i]) + eps);
        }
    }
}

/* One step on the whole layout: what one rank does when it owns every tensor. */
static void step_all(vamp_adam *o, const vamp_layout *l, float *p, float *g, float *m, float *v)
{
    adam_step_tensors(o, l, 0, l->n, p, g, m, v, 0);
}

static double rel(double got, double want) { return fabs(got - want) / fmax(fabs(want), 1e-30); }

/* Worst over tensors of max |got - want| / max |want|: elementwise relative error is meaningless where a
 * moment or a parameter passes through zero (m mixes gradients of both signs). */
static double tensor_rel(const vamp_layout *l, const float *got, const double *want)
{
    double worst = 0;
    for (int k = 0; k < l->n; k++) {
        double err = 0, scale = 0;
        for (size_t i = l->t[k].offset; i < l->t[k].offset + l->t[k].size; i++) {
            err = fmax(err, fabs(got[i] - want[i]));
            scale = fmax(scale, fabs(want[i]));
        }
        worst = fmax(worst, err / fmax(scale, 1e-30));
    }
    return worst;
}

static double tensor_rel_f(const vamp_layout *l, const float *got, const float *want)
{
    double w[N];
    for (size_t i = 0; i < N; i++) w[i] = want[i];
    return tensor_rel(l, got, w);
}

static void adam_init_defaults(void **state)
{
    (void)state;
    vamp_adam o;
    adam_init(&o, OPT_ADAM, 2e-3f);
    assert_true(o.kind == OPT_ADAM && o.lr == 2e-3f && o.step == 0);
    assert_true(o.beta1 == 0.9 && o.beta2 == 0.999 && o.eps == 1e-8f);
}

/* Parameters start at 0, so float rounding is relative to the distance moved and 1e-6 can be asked of it. */
static void matches_double_reference(void **state)
{
    (void)state;
    vamp_layout l;
    make_layout(&l);
    assert_int_equal(l.total, N);
    for (int kind = 0; kind < 2; kind++) {
        float p[N] = {0}, g[N], m[N] = {0}, v[N] = {0};
        double pd[N] = {0}, gd[N], md[N] = {0}, vd[N] = {0};
        vamp_adam o;
        adam_init(&o, kind == 0 ? OPT_ADAMNORMGRAD : OPT_ADAM, (float)LR);
        double worst_p = 0, worst_m = 0, worst_v = 0;
        for (int s = 1; s <= STEPS; s++) {
            for (size_t i = 0; i < N; i++) gd[i] = g[i] = grad(i, s);
            step_all(&o, &l, p, g, m, v);
            ref_step(&l, kind == 0, s, pd, gd, md, vd);
            worst_p = fmax(worst_p, tensor_rel(&l, p, pd));
            worst_m = fmax(worst_m, tensor_rel(&l, m, md));
            for (size_t i = 0; i < N; i++)
                if (i != 3) worst_v = fmax(worst_v, rel(v[i], vd[i])); /* v > 0: elementwise */
        }
        printf("%s vs double over %d steps: params %.2e, m %.2e (of the tensor's max), v %.2e (elementwise)\n",
               kind == 0 ? "adamnormgrad" : "adam", STEPS, worst_p, worst_m, worst_v);
        assert_true(worst_p < 1e-6);
        assert_true(worst_m < 1e-6);
        assert_true(worst_v < 1e-6);
        assert_true(p[3] == 0.0f && m[3] == 0.0f && v[3] == 0.0f); /* a zero gradient never moves */
        assert_int_equal(o.step, STEPS);
    }
}

/* The first step of bias-corrected Adam moves every parameter by lr * |g| / (|g| + eps / sqrt(1 - b2)). */
static void first_step_is_lr(void **state)
{
    (void)state;
    vamp_layout l;
    make_layout(&l);
    float p[N] = {0}, g[N], m[N] = {0}, v[N] = {0};
    for (size_t i = 0; i < N; i++) g[i] = grad(i, 1);
    vamp_adam o;
    adam_init(&o, OPT_ADAM, (float)LR);
    step_all(&o, &l, p, g, m, v);
    for (size_t i = 0; i < N; i++) {
        if (g[i] == 0.0f) continue;
        double a = fabs((double)g[i]), want = -copysign((double)(float)LR * a / (a + 1e-8 / sqrt(1e-3)), g[i]);
        assert_true(rel(p[i], want) < 1e-6);
    }
}

static void run(vamp_optimizer kind, const float *gscale, float *p)
{
    vamp_layout l;
    make_layout(&l);
    float g[N], m[N] = {0}, v[N] = {0};
    memset(p, 0, N * sizeof(float));
    vamp_adam o;
    adam_init(&o, kind, (float)LR);
    for (int s = 1; s <= STEPS; s++) {
        for (size_t i = 0; i < N; i++) g[i] = grad(i, s) * gscale[(s - 1) * NT + (i < 12 ? 0 : i < 17 ? 1 : 2)];
        step_all(&o, &l, p, g, m, v);
    }
}

/* Scaling one tensor's gradient by 1000 at every step: its normgrad update is unchanged up to the 1e-7 guard
 * and the other tensors' updates are unchanged to the bit, because the norm is taken per tensor. */
static void normgrad_is_per_tensor(void **state)
{
    (void)state;
    float one[STEPS * NT], big_a[STEPS * NT], p1[N], p2[N];
    for (int k = 0; k < STEPS * NT; k++) {
        one[k] = 1.0f;
        big_a[k] = k % NT == 0 ? 1000.0f : 1.0f;
    }
    run(OPT_ADAMNORMGRAD, one, p1);
    run(OPT_ADAMNORMGRAD, big_a, p2);
    vamp_layout l;
    make_layout(&l);
    assert_true(tensor_rel_f(&l, p2, p1) < 1e-6);
    assert_memory_equal(p1 + 12, p2 + 12, (N - 12) * sizeof(float));
}

/* The normalisation is what makes the update blind to a gradient scale that changes from step to step; plain
 * Adam is not (which shows this test can fail). */
static void normgrad_ignores_changing_scale(void **state)
{
    (void)state;
    float one[STEPS * NT], varying[STEPS * NT], p1[N], p2[N];
    const float sc[STEPS] = {1.0f, 1000.0f, 0.5f, 50.0f, 1.0f};
    for (int k = 0; k < STEPS * NT; k++) {
        one[k] = 1.0f;
        varying[k] = sc[k / NT];
    }
    vamp_layout l;
    make_layout(&l);
    run(OPT_ADAMNORMGRAD, one, p1);
    run(OPT_ADAMNORMGRAD, varying, p2);
    const double ng = tensor_rel_f(&l, p2, p1);
    run(OPT_ADAM, one, p1);
    run(OPT_ADAM, varying, p2);
    const double plain = tensor_rel_f(&l, p2, p1);
    printf("gradient scale 1, 1000, 0.5, 50, 1 vs 1: adamnormgrad moves %.2e, adam %.2e\n", ng, plain);
    /* only the 1e-7 guard differs: relative to ||g|| >= ~1e-3 (tensor b at scale 0.5) that is <= 1e-4 */
    assert_true(ng < 1e-4);
    assert_true(plain > 0.1);
}

/* A tensor whose gradient is all zero stays finite and still under normgrad (the 1e-7 guard). */
static void normgrad_zero_tensor(void **state)
{
    (void)state;
    vamp_layout l;
    make_layout(&l);
    float p[N], g[N] = {0}, m[N] = {0}, v[N] = {0};
    for (size_t i = 0; i < N; i++) p[i] = 0.25f * (float)i;
    for (size_t i = 12; i < N; i++) g[i] = grad(i, 1); /* tensor a: all zero */
    vamp_adam o;
    adam_init(&o, OPT_ADAMNORMGRAD, (float)LR);
    step_all(&o, &l, p, g, m, v);
    for (size_t i = 0; i < 12; i++) assert_true(p[i] == 0.25f * (float)i && m[i] == 0.0f && v[i] == 0.0f);
    for (size_t i = 12; i < N; i++) assert_true(isfinite(p[i]));
}

/* Sharded as on two ranks (tensor a; tensors b, c with their gradient and moments from element 12 on): each
 * tensor gets exactly the update of the whole-layout step. */
static void sharded_step_is_the_whole_step(void **state)
{
    (void)state;
    vamp_layout l;
    make_layout(&l);
    float p1[N] = {0}, g1[N], m1[N] = {0}, v1[N] = {0};
    float p2[N] = {0}, g2[N], m2[N] = {0}, v2[N] = {0};
    vamp_adam whole, rank0, rank1;
    adam_init(&whole, OPT_ADAMNORMGRAD, (float)LR);
    rank0 = rank1 = whole;
    for (int s = 1; s <= STEPS; s++) {
        for (size_t i = 0; i < N; i++) g1[i] = g2[i] = grad(i, s);
        step_all(&whole, &l, p1, g1, m1, v1);
        adam_step_tensors(&rank0, &l, 0, 1, p2, g2, m2, v2, 0);
        adam_step_tensors(&rank1, &l, 1, 3, p2, g2 + 12, m2 + 12, v2 + 12, 12);
    }
    assert_true(rank0.step == STEPS && rank1.step == STEPS);
    assert_memory_equal(p1, p2, sizeof p1);
    assert_memory_equal(m1, m2, sizeof m1);
    assert_memory_equal(v1, v2, sizeof v1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adam_init_defaults),
        cmocka_unit_test(matches_double_reference),
        cmocka_unit_test(first_step_is_lr),
        cmocka_unit_test(normgrad_is_per_tensor),
        cmocka_unit_test(normgrad_ignores_changing_scale),
        cmocka_unit_test(normgrad_zero_tensor),
        cmocka_unit_test(sharded_step_is_the_whole_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
