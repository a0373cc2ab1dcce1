/* Convolution kernels for the convolutional models (issue 16): Conv2d, GatedConv2d, the PixelCNN's masked Conv2d,
 * BatchNorm2d split into per-chunk partial sums / an ordered combine / apply, and ReLU. Kernels only: no model,
 * no layout, no MPI (the caller gathers BatchNorm's per-chunk partial sums).
 * Conventions as nn.h: row-major; activations NCHW per image exactly as torch lays them out, x (B, C, H, W);
 * a conv weight is (Cout, Cin, k, k) as torch.nn.Conv2d, its bias (Cout). Argument order: outputs, inputs,
 * weights, sizes, scratch. Backward functions ADD into their d* outputs; a NULL d-output is skipped.
 * A call works on one chunk of B images (the fixed unit of work of the data-parallel design): its results depend
 * only on the chunk's contents. Scratch is caller-provided; its size depends on the layer, never on B, and
 * nothing is allocated here. */
#ifndef VAMP_CONV_H
#define VAMP_CONV_H

#include <stddef.h>

/* The geometry of one square-kernel convolution layer (dilation 1). Filled by conv_geom. */
typedef struct {
    int cin, h, w;           /* input image (cin, h, w) */
    int cout, k, stride, pad; /* weight (cout, cin, k, k) */
    int oh, ow;              /* output image (cout, oh, ow): (h + 2 pad - k) / stride + 1, likewise ow */
} vamp_conv;

vamp_conv conv_geom(int cin, int h, int w, int cout, int k, int stride, int pad);

/* ---- Conv2d: im2col of one image at a time + cblas_sgemm (docs/performance.md, "Convolution kernels") ---- */

/* Scratch floats of conv2d_forward and conv2d_backward (the larger, the backward's): two column matrices
 * (cin k k, oh ow) of one image. Independent of B. */
size_t conv2d_scratch_floats(const vamp_conv *g);
/* y (B,cout,oh,ow) = conv(x (B,cin,h,w), W (cout,cin,k,k)) + b (cout); b may be NULL. */
void conv2d_forward(float *y, const float *x, const float *W, const float *b, const vamp_conv *g, int B,
                    float *scratch);
/* dx (B,cin,h,w) += conv^T(dy, W) (col2im); dW (cout,cin,k,k) += sum over images and positions of dy x;
 * db (cout) += sum of dy over images and positions. */
void conv2d_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                     const vamp_conv *g, int B, float *scratch);

/* ---- GatedConv2d: y = (conv_h(x) + bh) * sigmoid(conv_g(x) + bg), the reference's GatedConv2d ------------ */

/* Keeps h (the pre-activation) and g (the sigmoid) for the backward pass; y, h, g are (B,cout,oh,ow).
 * Both convolutions share one column matrix per image (and, backward, one col2im). Scratch: conv2d_scratch_floats. */
void gated_conv2d_forward(float *y, float *h, float *g, const float *x, const float *Wh, const float *bh,
                          const float *Wg, const float *bg, const vamp_conv *geo, int B, float *scratch);
size_t gated_conv2d_scratch_floats(const vamp_conv *g); /* the backward's: conv2d's + 2 cout oh ow */
void gated_conv2d_backward(float *dx, float *dWh, float *dbh, float *dWg, float *dbg, const float *dy,
                           const float *x, const float *h, const float *g, const float *Wh, const float *Wg,
                           const vamp_conv *geo, int B, float *scratch);

/* ---- MaskedConv2d (PixelCNN), the reference's semantics ----------------------------------------------------
 * The reference does `self.weight.data *= self.mask` before every forward: the convolution uses W * mask, and so
 * does the backward's dx. Its weight gradient is autograd's gradient of the convolution's weight, which is the
 * FULL gradient, non-zero at the masked positions (AdamNormGrad's per-tensor norm includes them). This module
 * keeps exactly that: dW is NOT masked. The model zeroes the masked weights at initialisation and after every
 * update, as the reference effectively does at its next forward. */

/* mask (cout,cin,k,k), the reference's buffer: 1 above the centre row, and left of the centre on the centre row;
 * the centre itself is 1 for type 'B' and 0 for type 'A' (the first layer must not see its own pixel). */
void conv_mask_build(float *mask, int cout, int cin, int k, char type);
/* Whether the mask keeps tap (ki, kj) of a k x k kernel (1) or zeroes it (0). */
int conv_mask_keeps(int ki, int kj, int k, char type);
/* conv2d's scratch + cout cin k k floats (the masked weight). */
size_t masked_conv2d_scratch_floats(const vamp_conv *g);
/* y = conv(x, W * mask) + b; W itself is not modified. b may be NULL (the reference's PixelCNN has none). */
void masked_conv2d_forward(float *y, const float *x, const float *W, const float *mask, const float *b,
                           const vamp_conv *g, int B, float *scratch);
/* dx += conv^T(dy, W * mask); dW += the full (unmasked) weight gradient; db += sums of dy. */
void masked_conv2d_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                            const float *mask, const vamp_conv *g, int B, float *scratch);

/* ---- BatchNorm2d, torch's semantics, over a global batch cut into chunks -------------------------------------
 * Training mode normalises with the statistics of ALL images of the global batch and all positions. The work is
 * split so that the result does not depend on which rank holds which chunk:
 *   forward:  batchnorm2d_forward_partial per chunk -> (all chunks' partials, in chunk order) ->
 *             batchnorm2d_combine -> batchnorm2d_stats -> batchnorm2d_forward_apply per chunk
 *             (and batchnorm2d_running_update once per step);
 *   backward: batchnorm2d_backward_partial per chunk -> batchnorm2d_combine (chunk order) ->
 *             batchnorm2d_backward_apply per chunk.
 * A partial is batchnorm2d_partial_len(C) doubles: per-channel sums (C) and (C), then the element count. The
 * caller allgathers the small partials; combine sums them in chunk (stripe) order, never in rank order.
 * Biased variance normalises; the running variance takes the unbiased one (n / (n - 1)). */

size_t batchnorm2d_partial_len(int C); /* 2 C + 1 */
/* part: sum x (C), sum x^2 (C), count (= B HW) of one chunk x (B,C,HW), in double. */
void batchnorm2d_forward_partial(double *part, const float *x, int B, int C, int HW);
/* total (len) = sum over nchunks of parts (nchunks, len), taken in that order starting from 0. */
void batchnorm2d_combine(double *total, const double *parts, int nchunks, size_t len);
/* From the combined forward total: the batch mean (C), the biased variance var (C) and invstd = 1/sqrt(var+eps). */
void batchnorm2d_stats(float *mean, float *var, float *invstd, const double *total, int C, float eps);
/* y (B,C,HW) = (x - mean) invstd gamma + beta, per channel. */
void batchnorm2d_forward_apply(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                               const float *beta, int B, int C, int HW);
/* running = (1 - momentum) running + momentum batch, with the unbiased variance for running_var. total is the
 * combined forward total (its count n must be > 1). torch's default momentum, which the reference keeps: 0.1. */
void batchnorm2d_running_update(float *running_mean, float *running_var, const double *total, int C, float momentum);
/* Evaluation mode: y = (x - running_mean) / sqrt(running_var + eps) gamma + beta. */
void batchnorm2d_eval_forward(float *y, const float *x, const float *running_mean, const float *running_var,
                              const float *gamma, const float *beta, int B, int C, int HW, float eps);

/* part: sum dy (C), sum dy xhat (C), count of one chunk, xhat = (x - mean) invstd. */
void batchnorm2d_backward_partial(double *part, const float *dy, const float *x, const float *mean,
                                  const float *invstd, int B, int C, int HW);
/* With the combined backward total (sums over the whole batch, n elements per channel):
 *   dx += gamma invstd (dy - sum dy / n - xhat sum(dy xhat) / n)
 * and this chunk's share of the parameter gradients, from its own partial chunk_part:
 *   dgamma += chunk sum(dy xhat), dbeta += chunk sum(dy)
 * (summed over chunks by the gradient reduction like any other per-chunk gradient). */
void batchnorm2d_backward_apply(float *dx, float *dgamma, float *dbeta, const double *chunk_part,
                                const double *total, const float *dy, const float *x, const float *mean,
                                const float *invstd, const float *gamma, int B, int C, int HW);

/* ---- ReLU ---------------------------------------------------------------------------------------------------- */

/* y = max(x, 0) elementwise over n. */
void relu_forward(float *y, const float *x, size_t n);
/* dx += dy where x > 0 (torch's: the gradient is 0 at x <= 0). */
void relu_backward(float *dx, const float *dy, const float *x, size_t n);

#endif
