/* Keyed randomness (draws depend only on their key and counter; fills agree with single draws; moments) and
 * the optimiser (Adam / AdamNormGrad against an independent double-precision implementation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vamp/optim.h"
#include "vamp/rng.h"

static void rng_keyed(void **s)
{
    (void)s;
    float a[37], b[37];
    rng_normal_fill(a, 37, 42, RNG_EPS_TRAIN, 3, 123456789012ull, 5);
    for (int j = 0; j < 37; j++) assert_true(a[j] == rng_normal(42, RNG_EPS_TRAIN, 3, 123456789012ull, 5 + j));
    rng_uniform_fill(b, 37, 42, RNG_BINARIZE, 3, 7, 2);
    for (int j = 0; j < 37; j++) assert_true(b[j] == rng_uniform(42, RNG_BINARIZE, 3, 7, 2 + j));
    /* every key component matters */
    float base = rng_uniform(1, 2, 3, 4, 5);
    assert_true(base != rng_uniform(2, 2, 3, 4, 5));
    assert_true(base != rng_uniform(1, 3, 3, 4, 5));
    assert_true(base != rng_uniform(1, 2, 4, 4, 5));
    assert_true(base != rng_uniform(1, 2, 3, 5, 5));
    assert_true(base != rng_uniform(1, 2, 3, 4, 6));
    assert_true(base != rng_uniform(1ull << 40, 2, 3, 4, 5) || base != rng_uniform(1, 2, 3, 4ull << 40, 5));
}

static void rng_moments(void **s)
{
    (void)s;
    enum { N = 200000 };
    float *x = malloc(N * sizeof(float));
    rng_uniform_fill(x, N, 9, RNG_SAMPLE, 0, 0, 0);
    double m = 0, v = 0, lo = 1, hi = 0;
    for (int i = 0; i < N; i++) {
        m += x[i];
        lo = fmin(lo, x[i]);
        hi = fmax(hi, x[i]);
    }
    m /= N;
    for (int i = 0; i < N; i++) v += (x[i] - m) * (x[i] - m);
    v /= N;
    assert_true(lo > 0.0 && hi < 1.0);
    assert_true(fabs(m - 0.5) < 5 * sqrt(1.0 / 12 / N));
    assert_true(fabs(v - 1.0 / 12) < 0.002);
    rng_normal_fill(x, N, 9, RNG_SAMPLE, 1, 0, 0);
    m = v = 0;
    for (int i = 0; i < N; i++) m += x[i];
    m /= N;
    for (int i = 0; i < N; i++) v += (x[i] - m) * (x[i] - m);
    v /= N;
    assert_true(fabs(m) < 5 / sqrt((double)N));
    assert_true(fabs(v - 1.0) < 0.02);
    free(x);
}

static void permutation(void **s)
{
    (void)s;
    enum { N = 1000 };
    uint32_t p[N], q[N];
    int seen[N] = {0};
    rng_permutation(p, N, 5, RNG_PERMUTE, 1, 0);
    for (int i = 0; i < N; i++) seen[p[i]]++;
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    rng_permutation(q, N, 5, RNG_PERMUTE, 2, 0);
    assert_true(memcmp(p, q, sizeof p) != 0); /* a new order every epoch */
    rng_permutation(q, N, 5, RNG_PERMUTE, 1, 0);
    assert_memory_equal(p, q, sizeof p); /* and the same order for the same key */
}

/* Independent Adam in double, the reference's formula. */
static void adam_ref(double *p, const double *g0, double *m, double *v, int n, int step, int normgrad, int t0, int t1)
{
    double g[16];
    double norm = 0;
    for (int i = t0; i < t1; i++) norm += g0[i] * g0[i];
    for (int i = t0; i < t1; i++) g[i - t0] = normgrad ? g0[i] / (sqrt(norm) + 1e-7) : g0[i];
    double ss = 5e-4 * sqrt(1 - pow(0.999, step)) / (1 - pow(0.9, step));
    for (int i = t0; i < t1; i++) {
        m[i] = 0.9 * m[i] + 0.1 * g[i - t0];
        v[i] = 0.999 * v[i] + 0.001 * g[i - t0] * g[i - t0];
        p[i] -= ss * m[i] / (sqrt(v[i]) + 1e-8);
    }
    (void)n;
}

static void adam_matches_reference(void **s)
{
    (void)s;
    for (int kind = 0; kind < 2; kind++) {
        vamp_layout l;
        layout_init(&l);
        layout_add(&l, "a", 3, 2);
        layout_add(&l, "b", 4, 0);
        float p[10], g[10], m[10] = {0}, v[10] = {0};
        double pd[10], md[10] = {0}, vd[10] = {0};
        for (int i = 0; i < 10; i++) pd[i] = p[i] = 0.1f * (float)(i - 4);
        vamp_adam o;
        adam_init(&o, kind == 0 ? OPT_ADAMNORMGRAD : OPT_ADAM, 5e-4f);
        for (int step = 1; step <= 5; step++) {
            double gd[10];
            for (int i = 0; i < 10; i++) gd[i] = g[i] = (float)((i % 3) - 1) * (float)step * (i < 6 ? 10.0f : 0.01f);
            adam_step(&o, &l, p, g, m, v);
            adam_ref(pd, gd, md, vd, 10, step, kind == 0, 0, 6);
            adam_ref(pd, gd, md, vd, 10, step, kind == 0, 6, 10);
        }
        for (int i = 0; i < 10; i++) assert_true(fabs(p[i] - pd[i]) <= 1e-6 * fmax(1.0, fabs(pd[i])));
        assert_int_equal(o.step, 5);
    }
}

static void normgrad_is_per_tensor(void **s)
{
    (void)s;
    vamp_layout l;
    layout_init(&l);
    layout_add(&l, "a", 2, 0);
    layout_add(&l, "b", 2, 0);
    float p1[4] = {0}, p2[4] = {0}, m1[4] = {0}, v1[4] = {0}, m2[4] = {0}, v2[4] = {0};
    float g1[4] = {1, -2, 3, 4}, g2[4] = {1000, -2000, 3, 4}; /* tensor a scaled by 1000 */
    vamp_adam o1, o2;
    adam_init(&o1, OPT_ADAMNORMGRAD, 1e-3f);
    adam_init(&o2, OPT_ADAMNORMGRAD, 1e-3f);
    adam_step(&o1, &l, p1, g1, m1, v1);
    adam_step(&o2, &l, p2, g2, m2, v2);
    for (int i = 0; i < 4; i++) assert_true(fabsf(p1[i] - p2[i]) < 1e-9f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_keyed),          cmocka_unit_test(rng_moments),
        cmocka_unit_test(permutation),        cmocka_unit_test(adam_matches_reference),
        cmocka_unit_test(normgrad_is_per_tensor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
