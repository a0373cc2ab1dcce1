/* Keyed randomness: draws depend only on their key and counter; fills agree with single draws; moments;
 * permutations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_keyed),          cmocka_unit_test(rng_moments),
        cmocka_unit_test(permutation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
