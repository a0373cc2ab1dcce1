/* Convolution kernels (conv.h): Conv2d by im2col of one image at a time and cblas_sgemm, GatedConv2d, the PixelCNN's
 * masked Conv2d, BatchNorm2d in partial sums / ordered combine / apply, ReLU. Row-major NCHW throughout.
 * No allocation and no communication: callers pass every buffer, including scratch, and gather BatchNorm's
 * partials themselves. Each image is its own GEMMs, so a chunk's results depend on its images alone. */
#include "vamp/conv.h"
#include "vamp/nn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

vamp_conv conv_geom(int cin, int h, int w, int cout, int k, int stride, int pad)
{
    vamp_conv g = {.cin = cin, .h = h, .w = w, .cout = cout, .k = k, .stride = stride, .pad = pad};
    g.oh = (h + 2 * pad - k) / stride + 1;
    g.ow = (w + 2 * pad - k) / stride + 1;
    return g;
}

/* ---- im2col / col2im ---------------------------------------------------------------------------------------- */

static size_t col_rows(const vamp_conv *g) { return (size_t)g->cin * g->k * g->k; }
static size_t out_pix(const vamp_conv *g) { return (size_t)g->oh * g->ow; }
static size_t in_pix(const vamp_conv *g) { return (size_t)g->h * g->w; }

/* A 1x1 convolution with stride 1 and no padding: the image itself is its column matrix. */
static int pointwise(const vamp_conv *g) { return g->k == 1 && g->stride == 1 && g->pad == 0; }

/* The outputs o in [*lo, *hi) whose input index o s - p + kk lies inside [0, n). */
static void valid_range(int n, int on, int s, int p, int kk, int *lo, int *hi)
{
    int a = p - kk, t = n - 1 + p - kk;
    *lo = a <= 0 ? 0 : (a + s - 1) / s;
    *hi = t < 0 ? 0 : t / s + 1;
    if (*hi > on) *hi = on;
    if (*lo > *hi) *lo = *hi;
}

/* col (cin k k, oh ow): row (c, ki, kj) holds x[c, oy s - p + ki, ox s - p + kj], 0 in the padding. */
static void im2col(float *col, const float *x, const vamp_conv *g)
{
    const int s = g->stride, p = g->pad;
    for (int c = 0; c < g->cin; c++)
        for (int ki = 0; ki < g->k; ki++)
            for (int kj = 0; kj < g->k; kj++) {
                float *row = col + ((size_t)(c * g->k + ki) * g->k + kj) * out_pix(g);
                const float *xc = x + (size_t)c * in_pix(g);
                int ylo, yhi, xlo, xhi;
                valid_range(g->h, g->oh, s, p, ki, &ylo, &yhi);
                valid_range(g->w, g->ow, s, p, kj, &xlo, &xhi);
                memset(row, 0, out_pix(g) * sizeof(float));
                for (int oy = ylo; oy < yhi; oy++) {
                    const float *xr = xc + (size_t)(oy * s - p + ki) * g->w;
                    float *r = row + (size_t)oy * g->ow;
                    for (int ox = xlo; ox < xhi; ox++) r[ox] = xr[ox * s - p + kj];
                }
            }
}

/* dx (cin, h, w) += the column matrix dcol scattered back (the transpose of im2col). */
static void col2im_add(float *dx, const float *dcol, const vamp_conv *g)
{
    const int s = g->stride, p = g->pad;
    for (int c = 0; c < g->cin; c++)
        for (int ki = 0; ki < g->k; ki++)
            for (int kj = 0; kj < g->k; kj++) {
                const float *row = dcol + ((size_t)(c * g->k + ki) * g->k + kj) * out_pix(g);
                float *dxc = dx + (size_t)c * in_pix(g);
                int ylo, yhi, xlo, xhi;
                valid_range(g->h, g->oh, s, p, ki, &ylo, &yhi);
                valid_range(g->w, g->ow, s, p, kj, &xlo, &xhi);
                for (int oy = ylo; oy < yhi; oy++) {
                    float *dr = dxc + (size_t)(oy * s - p + ki) * g->w;
                    const float *r = row + (size_t)oy * g->ow;
                    for (int ox = xlo; ox < xhi; ox++) dr[ox * s - p + kj] += r[ox];
                }
            }
}

/* The column matrix of image x: x itself for a pointwise convolution, else im2col into col. */
static const float *columns(const float *x, const vamp_conv *g, float *col)
{
    if (pointwise(g)) return x;
    im2col(col, x, g);
    return col;
}

/* ---- Conv2d ------------------------------------------------------------------------------------------------- */

size_t conv2d_scratch_floats(const vamp_conv *g) { return 2 * col_rows(g) * out_pix(g); }

/* One image: y (cout, oh ow) = W (cout, cin k k) . col (cin k k, oh ow) [+ b]. */
static void conv_forward_image(float *y, const float *x, const float *W, const float *b, const vamp_conv *g,
                               float *col)
{
    const int K = (int)col_rows(g), N = (int)out_pix(g);
    if (b)
        for (int o = 0; o < g->cout; o++)
            for (int i = 0; i < N; i++) y[(size_t)o * N + i] = b[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->cout, N, K, 1.0f, W, K, columns(x, g, col), N,
                b ? 1.0f : 0.0f, y, N);
}

void conv2d_forward(float *y, const float *x, const float *W, const float *b, const vamp_conv *g, int B,
                    float *scratch)
{
    for (int n = 0; n < B; n++)
        conv_forward_image(y + (size_t)n * g->cout * out_pix(g), x + (size_t)n * g->cin * in_pix(g), W, b, g,
                           scratch);
}

/* dW (cout, K) += dy (cout, N) . c^T (N, K), c the image's column matrix */
static void gemm_dW(float *dW, const float *dy, const float *c, const vamp_conv *g)
{
    const int K = (int)col_rows(g), N = (int)out_pix(g);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->cout, K, N, 1.0f, dy, N, c, N, 1.0f, dW, K);
}

/* db (cout) += the sums of dy (cout, N) over positions, each taken in double */
static void add_db(float *db, const float *dy, const vamp_conv *g)
{
    const size_t N = out_pix(g);
    for (int o = 0; o < g->cout; o++) {
        double s = 0.0;
        for (size_t i = 0; i < N; i++) s += dy[(size_t)o * N + i];
        db[o] += (float)s;
    }
}

/* d (K, N) = W^T (K, cout) . dy (cout, N) + beta d: the column gradient, or a pointwise layer's dx itself */
static void gemm_dcol(float *d, const float *W, const float *dy, const vamp_conv *g, float beta)
{
    const int K = (int)col_rows(g), N = (int)out_pix(g);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, g->cout, 1.0f, W, K, dy, N, beta, d, N);
}

/* One image's gradients; col and dcol are (cin k k, oh ow) each. */
static void conv_backward_image(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                                const vamp_conv *g, float *col, float *dcol)
{
    if (dW) gemm_dW(dW, dy, columns(x, g, col), g);
    if (db) add_db(db, dy, g);
    if (!dx) return;
    if (pointwise(g)) {
        gemm_dcol(dx, W, dy, g, 1.0f);
        return;
    }
    gemm_dcol(dcol, W, dy, g, 0.0f);
    col2im_add(dx, dcol, g);
}

void conv2d_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                     const vamp_conv *g, int B, float *scratch)
{
    float *col = scratch, *dcol = scratch + col_rows(g) * out_pix(g);
    for (int n = 0; n < B; n++)
        conv_backward_image(dx ? dx + (size_t)n * g->cin * in_pix(g) : NULL, dW, db,
                            dy + (size_t)n * g->cout * out_pix(g), x + (size_t)n * g->cin * in_pix(g), W, g, col,
                            dcol);
}

/* ---- GatedConv2d -------------------------------------------------------------------------------------------- */

/* Both convolutions of one image from one column matrix, then the gate. */
static void gated_forward_image(float *y, float *h, float *g, const float *x, const float *Wh, const float *bh,
                                const float *Wg, const float *bg, const vamp_conv *geo, float *col)
{
    const int K = (int)col_rows(geo), N = (int)out_pix(geo), M = geo->cout;
    const float *c = columns(x, geo, col);
    for (int o = 0; o < M; o++)
        for (int i = 0; i < N; i++) {
            h[(size_t)o * N + i] = bh[o];
            g[(size_t)o * N + i] = bg[o];
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, Wh, K, c, N, 1.0f, h, N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, Wg, K, c, N, 1.0f, g, N);
    for (size_t i = 0; i < (size_t)M * N; i++) {
        g[i] = vamp_sigmoid(g[i]);
        y[i] = h[i] * g[i];
    }
}

void gated_conv2d_forward(float *y, float *h, float *g, const float *x, const float *Wh, const float *bh,
                          const float *Wg, const float *bg, const vamp_conv *geo, int B, float *scratch)
{
    const size_t no = (size_t)geo->cout * out_pix(geo), ni = (size_t)geo->cin * in_pix(geo);
    for (int n = 0; n < B; n++)
        gated_forward_image(y + n * no, h + n * no, g + n * no, x + n * ni, Wh, bh, Wg, bg, geo, scratch);
}

size_t gated_conv2d_scratch_floats(const vamp_conv *g)
{
    return conv2d_scratch_floats(g) + 2 * (size_t)g->cout * out_pix(g);
}

/* One image, given the d pre-activations dh and dga of h and of the gate: one column matrix for both weight
 * gradients, and one column gradient (from both convolutions) scattered back once. */
static void gated_backward_image(float *dx, float *dWh, float *dbh, float *dWg, float *dbg, const float *dh,
                                 const float *dga, const float *x, const float *Wh, const float *Wg,
                                 const vamp_conv *geo, float *col, float *dcol)
{
    if (dWh || dWg) {
        const float *c = columns(x, geo, col);
        if (dWh) gemm_dW(dWh, dh, c, geo);
        if (dWg) gemm_dW(dWg, dga, c, geo);
    }
    if (dbh) add_db(dbh, dh, geo);
    if (dbg) add_db(dbg, dga, geo);
    if (!dx) return;
    float *d = pointwise(geo) ? dx : dcol;
    gemm_dcol(d, Wh, dh, geo, pointwise(geo) ? 1.0f : 0.0f);
    gemm_dcol(d, Wg, dga, geo, 1.0f);
    if (!pointwise(geo)) col2im_add(dx, dcol, geo);
}

/* Image by image, as gated_backward in nn.c does for the whole batch: the d pre-activations of h and of the
 * gate, then both convolutions' gradients. */
void gated_conv2d_backward(float *dx, float *dWh, float *dbh, float *dWg, float *dbg, const float *dy,
                           const float *x, const float *h, const float *g, const float *Wh, const float *Wg,
                           const vamp_conv *geo, int B, float *scratch)
{
    const size_t no = (size_t)geo->cout * out_pix(geo), ni = (size_t)geo->cin * in_pix(geo);
    float *col = scratch, *dcol = col + col_rows(geo) * out_pix(geo);
    float *dh = scratch + conv2d_scratch_floats(geo), *dga = dh + no; /* (cout, oh ow) each */
    for (int n = 0; n < B; n++) {
        const size_t o0 = (size_t)n * no;
        for (size_t i = 0; i < no; i++) {
            float gi = g[o0 + i];
            dh[i] = dy[o0 + i] * gi;
            dga[i] = dy[o0 + i] * h[o0 + i] * gi * (1.0f - gi);
        }
        gated_backward_image(dx ? dx + (size_t)n * ni : NULL, dWh, dbh, dWg, dbg, dh, dga, x + (size_t)n * ni, Wh,
                             Wg, geo, col, dcol);
    }
}

/* ---- MaskedConv2d ------------------------------------------------------------------------------------------- */

int conv_mask_keeps(int ki, int kj, int k, char type)
{
    const int c = k / 2, centre = type == 'B'; /* the centre pixel itself: seen by 'B' only */
    return ki < c || (ki == c && (kj < c || (kj == c && centre)));
}

void conv_mask_build(float *mask, int cout, int cin, int k, char type)
{
    for (int ki = 0; ki < k; ki++)
        for (int kj = 0; kj < k; kj++) {
            float v = conv_mask_keeps(ki, kj, k, type) ? 1.0f : 0.0f;
            for (size_t oc = 0; oc < (size_t)cout * cin; oc++) mask[(oc * k + ki) * k + kj] = v;
        }
}

size_t masked_conv2d_scratch_floats(const vamp_conv *g)
{
    return conv2d_scratch_floats(g) + (size_t)g->cout * col_rows(g);
}

static void masked_weight(float *Wm, const float *W, const float *mask, const vamp_conv *g)
{
    const size_t n = (size_t)g->cout * col_rows(g);
    for (size_t i = 0; i < n; i++) Wm[i] = W[i] * mask[i];
}

void masked_conv2d_forward(float *y, const float *x, const float *W, const float *mask, const float *b,
                           const vamp_conv *g, int B, float *scratch)
{
    float *Wm = scratch + conv2d_scratch_floats(g);
    masked_weight(Wm, W, mask, g);
    conv2d_forward(y, x, Wm, b, g, B, scratch);
}

/* dx through W * mask, as the reference's forward used it; dW unmasked (see conv.h): the weight gradient of a
 * convolution does not depend on the weight, so conv2d_backward with the masked weight gives the full one. */
void masked_conv2d_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                            const float *mask, const vamp_conv *g, int B, float *scratch)
{
    float *Wm = scratch + conv2d_scratch_floats(g);
    if (dx) masked_weight(Wm, W, mask, g);
    conv2d_backward(dx, dW, db, dy, x, Wm, g, B, scratch);
}

/* ---- BatchNorm2d -------------------------------------------------------------------------------------------- */

size_t batchnorm2d_partial_len(int C) { return 2 * (size_t)C + 1; }

void batchnorm2d_forward_partial(double *part, const float *x, int B, int C, int HW)
{
    memset(part, 0, batchnorm2d_partial_len(C) * sizeof(double));
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            const float *xc = x + ((size_t)n * C + c) * HW;
            double s = 0.0, s2 = 0.0;
            for (int i = 0; i < HW; i++) {
                s += xc[i];
                s2 += (double)xc[i] * xc[i];
            }
            part[c] += s;
            part[C + c] += s2;
        }
    part[2 * C] = (double)B * HW;
}

void batchnorm2d_combine(double *total, const double *parts, int nchunks, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        double s = 0.0;
        for (int j = 0; j < nchunks; j++) s += parts[(size_t)j * len + i];
        total[i] = s;
    }
}

/* var = E[x^2] - mean^2 from the double sums: one gathering round instead of torch's two passes; in double the
 * cancellation costs nothing visible in float unless |mean| / std exceeds about 1e4. */
void batchnorm2d_stats(float *mean, float *var, float *invstd, const double *total, int C, float eps)
{
    const double n = total[2 * C];
    for (int c = 0; c < C; c++) {
        double m = total[c] / n, v = total[C + c] / n - m * m;
        if (v < 0.0) v = 0.0;
        mean[c] = (float)m;
        var[c] = (float)v;
        invstd[c] = (float)(1.0 / sqrt(v + (double)eps));
    }
}

void batchnorm2d_forward_apply(float *y, const float *x, const float *mean, const float *invstd, const float *gamma,
                               const float *beta, int B, int C, int HW)
{
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            const size_t o = ((size_t)n * C + c) * HW;
            const float m = mean[c], s = invstd[c] * gamma[c], b = beta[c];
            for (int i = 0; i < HW; i++) y[o + i] = (x[o + i] - m) * s + b;
        }
}

void batchnorm2d_running_update(float *running_mean, float *running_var, const double *total, int C, float momentum)
{
    const double n = total[2 * C], mo = momentum;
    for (int c = 0; c < C; c++) {
        double m = total[c] / n, v = total[C + c] / n - m * m;
        if (v < 0.0) v = 0.0;
        running_mean[c] = (float)(mo * m + (1.0 - mo) * running_mean[c]);
        running_var[c] = (float)(mo * v * n / (n - 1.0) + (1.0 - mo) * running_var[c]);
    }
}

void batchnorm2d_eval_forward(float *y, const float *x, const float *running_mean, const float *running_var,
                              const float *gamma, const float *beta, int B, int C, int HW, float eps)
{
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            const size_t o = ((size_t)n * C + c) * HW;
            const float m = running_mean[c], b = beta[c];
            const float s = (float)(1.0 / sqrt((double)running_var[c] + (double)eps)) * gamma[c];
            for (int i = 0; i < HW; i++) y[o + i] = (x[o + i] - m) * s + b;
        }
}

void batchnorm2d_backward_partial(double *part, const float *dy, const float *x, const float *mean,
                                  const float *invstd, int B, int C, int HW)
{
    memset(part, 0, batchnorm2d_partial_len(C) * sizeof(double));
    for (int n = 0; n < B; n++)
        for (int c = 0; c < C; c++) {
            const size_t o = ((size_t)n * C + c) * HW;
            const float m = mean[c], is = invstd[c];
            double s = 0.0, sx = 0.0;
            for (int i = 0; i < HW; i++) {
                s += dy[o + i];
                sx += (double)dy[o + i] * ((x[o + i] - m) * is);
            }
            part[c] += s;
            part[C + c] += sx;
        }
    part[2 * C] = (double)B * HW;
}

void batchnorm2d_backward_apply(float *dx, float *dgamma, float *dbeta, const double *chunk_part,
                                const double *total, const float *dy, const float *x, const float *mean,
                                const float *invstd, const float *gamma, int B, int C, int HW)
{
    const double n = total[2 * C];
    for (int c = 0; c < C; c++) {
        if (dgamma) dgamma[c] += (float)chunk_part[C + c];
        if (dbeta) dbeta[c] += (float)chunk_part[c];
    }
    if (!dx) return;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const size_t o = ((size_t)b * C + c) * HW;
            const float m = mean[c], is = invstd[c], k = gamma[c] * is;
            const float mdy = (float)(total[c] / n), mdyx = (float)(total[C + c] / n);
            for (int i = 0; i < HW; i++) {
                float xhat = (x[o + i] - m) * is;
                dx[o + i] += k * (dy[o + i] - mdy - xhat * mdyx);
            }
        }
}

/* ---- ReLU --------------------------------------------------------------------------------------------------- */

void relu_forward(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] <= 0.0f ? 0.0f : x[i]; /* a NaN passes, as in torch */
}

void relu_backward(float *dx, const float *dy, const float *x, size_t n)
{
    if (!dx) return;
    for (size_t i = 0; i < n; i++)
        if (x[i] > 0.0f) dx[i] += dy[i];
}
