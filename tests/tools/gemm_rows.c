/* gemm_rows: does the BLAS give each row of a product the same bits whether the rows are computed in one sgemm
 * call or in chunks? Merging a rank's 25-row chunks into one call (faster: one packing of the weights) keeps
 * vamp_mpi's bits only if so. Tries the layer shapes of the MLP models, forward (y += x W^T) and backward to the
 * input (dx += dy W), as nn.c calls them; prints one line per case and a count. A measurement, not a test.
 * usage: OPENBLAS_NUM_THREADS=1 build/tests/gemm_rows */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float uniform(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return (float)(*state >> 8) / (float)(1u << 24) - 0.5f;
}

/* y (rows, yw) += x W^T (forward) or x W (backward), as nn.c's linear layer calls sgemm. */
static void product(int forward, int rows, int in, int out, const float *x, const float *W, float *y)
{
    if (forward)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, x, in, W, in, 1.0f, y, out);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, in, out, 1.0f, x, out, W, in, 1.0f, y, in);
}

/* 1 if rows computed in calls of `chunk` rows differ from one call of B rows. */
static int differs(int B, int chunk, int in, int out, int forward)
{
    const int xw = forward ? in : out, yw = forward ? out : in; /* input and output row widths */
    float *x = malloc(sizeof(float) * B * xw), *W = malloc(sizeof(float) * in * out);
    float *one = malloc(sizeof(float) * B * yw), *parts = malloc(sizeof(float) * B * yw);
    unsigned s = 12345;
    for (int i = 0; i < B * xw; i++) x[i] = uniform(&s);
    for (int i = 0; i < in * out; i++) W[i] = uniform(&s);
    for (int i = 0; i < B * yw; i++) one[i] = parts[i] = uniform(&s);
    product(forward, B, in, out, x, W, one);
    for (int r0 = 0; r0 < B; r0 += chunk)
        product(forward, chunk, in, out, x + (size_t)r0 * xw, W, parts + (size_t)r0 * yw);
    const int d = memcmp(one, parts, sizeof(float) * B * yw) != 0;
    free(x);
    free(W);
    free(one);
    free(parts);
    return d;
}

int main(void)
{
    static const int shapes[][2] = {{784, 300}, {300, 300}, {300, 40}, {40, 300}, {300, 784}, {80, 300}, {600, 300}};
    static const int splits[][2] = {{100, 25}, {100, 50}, {500, 125}};
    int n = 0, bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t c = 0; c < sizeof splits / sizeof splits[0]; c++)
            for (int fw = 1; fw >= 0; fw--) {
                const int d = differs(splits[c][0], splits[c][1], shapes[s][0], shapes[s][1], fw);
                printf("%-8s in %3d out %3d: %3d rows in calls of %3d: %s\n", fw ? "forward" : "backward", shapes[s][0],
                       shapes[s][1], splits[c][0], splits[c][1], d ? "different bits" : "same bits");
                n++;
                bad += d;
            }
    printf("%d of %d cases give different bits (%s)\n", bad, n, openblas_get_config());
    return 0;
}
