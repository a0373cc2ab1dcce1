/* Layer kernels on cblas_sgemm: Linear, GatedDense, hardtanh, reparameterisation, diagonal-Gaussian log-density.
 * Row-major throughout (see nn.h). No allocation: callers pass every buffer, including scratch. */
#include "vamp/nn.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void linear_forward(float *y, const float *x, const float *W, const float *b, int B, int in, int out)
{
    if (b) {
        for (int r = 0; r < B; r++) memcpy(y + (size_t)r * out, b, (size_t)out * sizeof(float));
    }
    /* y (B,out) = x (B,in) . W^T (in,out) [+ y] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1.0f, x, in, W, in, b ? 1.0f : 0.0f, y, out);
}

void linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W, int B,
                     int in, int out)
{
    if (dx) /* dx (B,in) += dy (B,out) . W (out,in) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1.0f, dy, out, W, in, 1.0f, dx, in);
    if (dW) /* dW (out,in) += dy^T (out,B) . x (B,in) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db)
        for (int r = 0; r < B; r++) {
            const float *row = dy + (size_t)r * out;
            for (int j = 0; j < out; j++) db[j] += row[j];
        }
}

void gated_forward(float *y, float *h, float *g, const float *x, const float *Wh, const float *bh,
                   const float *Wg, const float *bg, int B, int in, int out)
{
    linear_forward(h, x, Wh, bh, B, in, out);
    linear_forward(g, x, Wg, bg, B, in, out);
    size_t n = (size_t)B * out;
    for (size_t i = 0; i < n; i++) {
        g[i] = vamp_sigmoid(g[i]);
        y[i] = h[i] * g[i];
    }
}

void gated_backward(float *dx, float *dWh, float *dbh, float *dWg, float *dbg, const float *dy, const float *x,
                    const float *h, const float *g, const float *Wh, const float *Wg, int B, int in, int out,
                    float *scratch)
{
    size_t n = (size_t)B * out;
    float *dh = scratch, *dga = scratch + n; /* (B,out) each: d pre-activation of h and of the gate */
    for (size_t i = 0; i < n; i++) {
        dh[i] = dy[i] * g[i];
        dga[i] = dy[i] * h[i] * g[i] * (1.0f - g[i]);
    }
    linear_backward(dx, dWh, dbh, dh, x, Wh, B, in, out);
    linear_backward(dx, dWg, dbg, dga, x, Wg, B, in, out);
}

void hardtanh_forward(float *y, const float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
}

void hardtanh_backward(float *dx, const float *dy, const float *x, size_t n, float lo, float hi)
{
    if (!dx) return;
    for (size_t i = 0; i < n; i++)
        if (x[i] > lo && x[i] < hi) dx[i] += dy[i];
}

void reparam_forward(float *z, const float *mean, const float *logvar, const float *eps, size_t n)
{
    for (size_t i = 0; i < n; i++) z[i] = mean[i] + expf(0.5f * logvar[i]) * eps[i];
}

void reparam_backward(float *dmean, float *dlogvar, const float *dz, const float *logvar, const float *eps,
                      size_t n)
{
    if (dmean)
        for (size_t i = 0; i < n; i++) dmean[i] += dz[i];
    if (dlogvar)
        for (size_t i = 0; i < n; i++) dlogvar[i] += dz[i] * eps[i] * 0.5f * expf(0.5f * logvar[i]);
}

void log_normal_forward(float *out, const float *z, const float *mean, const float *logvar, int B, int Z)
{
    for (int r = 0; r < B; r++) {
        float s = 0.0f;
        for (int j = 0; j < Z; j++) {
            size_t i = (size_t)r * Z + j;
            float d = mean ? z[i] - mean[i] : z[i];
            float lv = logvar ? logvar[i] : 0.0f;
            s += -0.5f * (VAMP_LOG_2PI + lv + d * d * expf(-lv));
        }
        out[r] = s;
    }
}

void log_normal_backward(float *dz, float *dmean, float *dlogvar, const float *w, const float *z,
                         const float *mean, const float *logvar, int B, int Z)
{
    for (int r = 0; r < B; r++) {
        float wr = w[r];
        for (int j = 0; j < Z; j++) {
            size_t i = (size_t)r * Z + j;
            float d = mean ? z[i] - mean[i] : z[i];
            float iv = logvar ? expf(-logvar[i]) : 1.0f;
            if (dz) dz[i] -= wr * d * iv;
            if (dmean) dmean[i] += wr * d * iv;
            if (dlogvar) dlogvar[i] += wr * (-0.5f + 0.5f * d * d * iv);
        }
    }
}
