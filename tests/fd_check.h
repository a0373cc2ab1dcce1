/* The finite-difference checker shared by the kernel tests (test_nn, test_conv): a kernel under test (kcase) is
 * its differentiable inputs, an objective f = sum(c .* output) with c random, and its backward pass; check_kernel
 * compares the backward pass with central differences input by input, then checks the backward contract: it adds
 * into its d-outputs (two calls give twice the gradient) and skips a NULL d-output (run in a child process, so a
 * crash is a failure of that check and not of the whole suite). The kernels are float-only: the objective is
 * accumulated in double and the step is 1e-2 on inputs of order 1, so float noise stays below the tolerance.
 * Static functions in a header: each test is one executable that includes it once. */
#ifndef VAMP_TESTS_FD_CHECK_H
#define VAMP_TESTS_FD_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAXIN = 6 };

static const double FD_H = 1e-2;       /* step on float inputs of order 1 */
static const double TOL_ELEM = 2e-2;   /* |a - n| <= TOL_ELEM * max(1, |n|) per partial derivative */
static const double TOL_VEC = 5e-3;    /* ||a - n|| / ||n|| per input tensor */

/* ---- a small deterministic generator (test-local; the kernels need no randomness) ---------------------- */

typedef struct { uint64_t s; } lcg;

static double lcg_unit(lcg *r) /* uniform in [0,1) */
{
    r->s = r->s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(r->s >> 11) * (1.0 / 9007199254740992.0);
}
static float lcg_range(lcg *r, double lo, double hi) { return (float)(lo + (hi - lo) * lcg_unit(r)); }
static void fill(lcg *r, float *p, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++) p[i] = lcg_range(r, lo, hi);
}

static double dot_c(const float *c, const float *y, size_t n) /* sum c .* y in double */
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)c[i] * (double)y[i];
    return s;
}

/* ---- the generic check -------------------------------------------------------------------------------------- */

/* One kernel under test: its differentiable inputs, the objective (forward at the current inputs) and the
 * backward pass (forward at the current inputs for its caches, then backward with upstream c into d[], whose
 * entries may be NULL). Kernel-specific state follows in the structs that embed this one first. */
typedef struct kcase kcase;
struct kcase {
    const char *name;
    int nin;
    const char *in_name[MAXIN];
    float *in[MAXIN];
    size_t n_in[MAXIN];
    double (*objective)(kcase *k);
    void (*backward)(kcase *k, float **d);
    /* Optional, per input: the objective whose differences input j's gradient is checked against, where the
     * kernel's promised gradient is not that of `objective` (the masked convolution's unmasked dW). */
    double (*objective_for[MAXIN])(kcase *k);
};

static float **alloc_grads(const kcase *k)
{
    float **d = calloc(MAXIN, sizeof(float *));
    for (int j = 0; j < k->nin; j++) d[j] = calloc(k->n_in[j], sizeof(float));
    return d;
}
static void free_grads(const kcase *k, float **d)
{
    for (int j = 0; j < k->nin; j++) free(d[j]);
    free(d);
}

/* |got - want| <= tol * max(1, |want|) for all n; returns the number of violations (and prints the first). */
static int count_mismatch(const char *what, const float *got, const float *want, double scale_want, size_t n,
                          double tol)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double w = scale_want * want[i];
        if (!(fabs(got[i] - w) <= tol * fmax(1.0, fabs(w)))) {
            if (!bad) printf("    %s[%zu]: got %.9g, want %.9g\n", what, i, got[i], w);
            bad++;
        }
    }
    return bad;
}

/* Every input of k, in order, uniform in [lo, hi). */
static void fill_inputs(lcg *r, kcase *k, double lo, double hi)
{
    for (int j = 0; j < k->nin; j++) fill(r, k->in[j], k->n_in[j], lo, hi);
}

/* 1. analytic g[j] against central differences of the objective for input j */
static void check_fd_input(kcase *k, float **g, int j)
{
    double (*obj)(kcase *) = k->objective_for[j] ? k->objective_for[j] : k->objective;
    double dd = 0.0, nn = 0.0, worst = 0.0;
    int bad = 0;
    for (size_t i = 0; i < k->n_in[j]; i++) {
        float *p = &k->in[j][i], keep = *p;
        float up = (float)(keep + FD_H), dn = (float)(keep - FD_H);
        *p = up;
        double fp = obj(k);
        *p = dn;
        double fm = obj(k);
        *p = keep;
        double num = (fp - fm) / ((double)up - (double)dn); /* the steps actually taken in float */
        double an = g[j][i], err = fabs(an - num);
        dd += err * err;
        nn += num * num;
        if (err / fmax(1.0, fabs(num)) > worst) worst = err / fmax(1.0, fabs(num));
        if (!(err <= TOL_ELEM * fmax(1.0, fabs(num)))) {
            printf("    %s d%s[%zu]: analytic %.7g, numeric %.7g\n", k->name, k->in_name[j], i, an, num);
            bad++;
        }
    }
    double rel = sqrt(dd) / sqrt(nn);
    printf("  %-22s d%-6s worst elem err %.2e, ||a-n||/||n|| = %.2e\n", k->name, k->in_name[j], worst, rel);
    assert_true(nn > 0.0); /* a gradient that is identically zero would check nothing */
    assert_int_equal(bad, 0);
    assert_true(rel < TOL_VEC);
}

/* 3. a NULL d-output j is skipped, the others are unchanged; in a child so that a crash is reported here */
static void check_null_output(kcase *k, float **g, int j)
{
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka catches these signals and would carry on running the suite inside the child */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        float **d = alloc_grads(k);
        d[j] = NULL; /* the child exits right after: nothing to free */
        k->backward(k, d);
        int nbad = 0;
        for (int i = 0; i < k->nin; i++)
            if (i != j) nbad += count_mismatch(k->in_name[i], d[i], g[i], 1.0, k->n_in[i], 1e-6);
        fflush(stdout);
        _exit(nbad ? 1 : 0);
    }
    int status = 0;
    assert_true(waitpid(pid, &status, 0) == pid);
    if (WIFSIGNALED(status))
        printf("  %s: backward with d%s = NULL crashed (signal %d); the header says a NULL d-output is skipped\n",
               k->name, k->in_name[j], WTERMSIG(status));
    else if (WEXITSTATUS(status) != 0)
        printf("  %s: backward with d%s = NULL changed the other gradients\n", k->name, k->in_name[j]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void check_kernel(kcase *k)
{
    float **g = alloc_grads(k);
    k->backward(k, g);
    for (int j = 0; j < k->nin; j++) check_fd_input(k, g, j);

    /* 2. backward adds: twice into zeroed buffers gives 2 g (up to float rounding of the sums) */
    float **g2 = alloc_grads(k);
    k->backward(k, g2);
    k->backward(k, g2);
    int bad = 0;
    for (int j = 0; j < k->nin; j++) bad += count_mismatch(k->in_name[j], g2[j], g[j], 2.0, k->n_in[j], 1e-5);
    free_grads(k, g2);
    if (bad) printf("  %s: backward does not add into its d-outputs\n", k->name);
    assert_int_equal(bad, 0);

    for (int j = 0; j < k->nin; j++) check_null_output(k, g, j);
    free_grads(k, g);
}

#endif
