/* gemm_rows: does the BLAS give each row of a product the same bits whether the rows are computed in one sgemm
 * call or in chunks? Merging a rank's 25-row chunks into one call (faster: one packing of the weights) keeps
 * vamp_mpi's bits only if so. Tries the layer shapes of the MLP models through nn.c's linear layer, forward
 * (y = b + x W^T) and backward to the input (dx += dy W); prints one line per case and a count. A measurement,
 * not a test.
 * usage: OPENBLAS_NUM_THREADS=1 build/tests/gemm_rows */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vamp/nn.h"
#include "vamp/rng.h"

/* The model's own linear layer (nn.c): forward y = b + x W^T, or backward to the input dx += dy W. */
static void product(int forward, int rows, int in, int out, const float *x, const float *W, const float *b, float *y)
{
    if (forward) linear_forward(y, x, W, b, rows, in, out);
    else linear_backward(y, NULL, NULL, x, NULL, W, rows, in, out);
}

/* 1 if rows computed in calls of `chunk` rows differ from one call of B rows. */
static int differs(int B, int chunk, int in, int out, int forward)
{
    const int xw = forward ? in : out, yw = forward ? out : in; /* input and output row widths */
    float *x = malloc(sizeof(float) * B * xw), *W = malloc(sizeof(float) * in * out), *b = malloc(sizeof(float) * out);
    float *one = malloc(sizeof(float) * B * yw), *parts = malloc(sizeof(float) * B * yw);
    rng_normal_fill(x, (size_t)B * xw, 12345, 0, 0, 0, 0); /* one counter index per array */
    rng_normal_fill(W, (size_t)in * out, 12345, 0, 0, 1, 0);
    rng_normal_fill(b, (size_t)out, 12345, 0, 0, 2, 0);
    rng_normal_fill(one, (size_t)B * yw, 12345, 0, 0, 3, 0);
    memcpy(parts, one, sizeof(float) * B * yw);
    product(forward, B, in, out, x, W, b, one);
    for (int r0 = 0; r0 < B; r0 += chunk)
        product(forward, chunk, in, out, x + (size_t)r0 * xw, W, b, parts + (size_t)r0 * yw);
    const int d = memcmp(one, parts, sizeof(float) * B * yw) != 0;
    free(x);
    free(W);
    free(b);
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
