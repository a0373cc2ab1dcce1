/* Layer kernels, forward next to backward, on cblas_sgemm.
 * Convention: all matrices row-major. Activations are (B, features): B rows, one per sample.
 * A Linear weight W is (out, in) like torch.nn.Linear, so y = x W^T + b.
 * Argument order: outputs, inputs, weights, sizes. Backward functions ADD into their d* outputs
 * (callers zero gradients once per step); a NULL d-output is skipped. */
#ifndef VAMP_NN_H
#define VAMP_NN_H

#include <math.h>
#include <stddef.h>

/* y (B,out) = x (B,in) W^T (out,in) + b (out) */
void linear_forward(float *y, const float *x, const float *W, const float *b, int B, int in, int out);
/* dx (B,in) += dy W ; dW (out,in) += dy^T x ; db (out) += column sums of dy */
void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int B,
                     int in, int out);

/* GatedDense: out = (x Wh^T + bh) * sigmoid(x Wg^T + bg). Keeps h (pre-activation) and g (the sigmoid) for
 * the backward pass. All of out, h, g are (B, out). */
void gated_forward(float *y, float *h, float *g, const float *x, const float *Wh, const float *bh,
                   const float *Wg, const float *bg, int B, int in, int out);
/* scratch: 2 * B * out floats. */
void gated_backward(float *dx, float *dWh, float *dbh, float *dWg, float *dbg, const float *dy, const float *x,
                    const float *h, const float *g, const float *Wh, const float *Wg, int B, int in, int out,
                    float *scratch);

/* y = min(max(x, lo), hi), elementwise over n. torch's hardtanh: the gradient passes only where lo < x < hi. */
void hardtanh_forward(float *y, const float *x, size_t n, float lo, float hi);
/* dx += dy where lo < x < hi (x is the input of the forward pass). */
void hardtanh_backward(float *dx, const float *dy, const float *x, size_t n, float lo, float hi);

/* z (B,Z) = mean + exp(0.5 logvar) * eps */
void reparam_forward(float *z, const float *mean, const float *logvar, const float *eps, size_t n);
/* dmean += dz ; dlogvar += dz * eps * 0.5 * exp(0.5 logvar) */
void reparam_backward(float *dmean, float *dlogvar, const float *dz, const float *logvar, const float *eps,
                      size_t n);

/* log N(z; mean, exp(logvar)) summed over the Z units of each row, full normalisation (with -1/2 log 2pi).
 * out (B). mean/logvar may be NULL for the standard normal. */
void log_normal_forward(float *out, const float *z, const float *mean, const float *logvar, int B, int Z);
/* With upstream weight w (B) per row: dz += w d/dz, dmean += w d/dmean, dlogvar += w d/dlogvar.
 * Any d-output may be NULL; mean/logvar NULL means standard normal. */
void log_normal_backward(float *dz, float *dmean, float *dlogvar, const float *w, const float *z,
                         const float *mean, const float *logvar, int B, int Z);

#define VAMP_LOG_2PI 1.8378770664093453f

/* expf(x) where it is not +0; below -103.97 (log of half the smallest subnormal) it is +0, which glibc returns
 * through a slow underflow path (errno): returned directly, the same bits. */
static inline float vamp_expf_or_zero(float x) { return x < -0x1.9fe368p6f ? 0.0f : expf(x); }

/* 1 / (1 + e^-a), the same bits as written so, without glibc's slow paths: below -88.72 e^-a overflows to +inf
 * (the result is +0), above 103.97 it underflows to +0 (the result is 1). */
static inline float vamp_sigmoid(float a)
{
    if (a < -0x1.62e42ep6f) return 0.0f;
    if (a > 0x1.9fe368p6f) return 1.0f;
    return 1.0f / (1.0f + expf(-a));
}

#endif
