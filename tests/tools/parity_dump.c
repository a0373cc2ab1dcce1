/* parity_dump: one training-step gradient of a tiny model, dumped to HDF5 for tests/reference/compare.py.
 * usage: parity_dump OUT.h5 MODEL LIKELIHOOD PRIOR B SEED
 * It computes exactly what a one-rank training step computes (pseudo-input encodings, chunk forward/backward,
 * pseudo-input backward) and writes /params, /grads, /x, /eps_top, /eps1, /re, /kl and the loss. */
#include "vamp/check.h"
#include "vamp/config.h"
#include "vamp/model.h"
#include "vamp/rng.h"

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_ds(hid_t g, const char *name, const float *x, size_t r, size_t c)
{
    hsize_t dims[2] = {r, c};
    hid_t sp = H5Screate_simple(c ? 2 : 1, dims, NULL);
    hid_t ds = H5Dcreate2(g, name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(ds);
    CHECK_H5(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x));
    H5Dclose(ds);
    H5Sclose(sp);
}

static void attr_d(hid_t f, const char *name, double v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_NATIVE_DOUBLE, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(H5Awrite(a, H5T_NATIVE_DOUBLE, &v));
    H5Aclose(a);
    H5Sclose(sp);
}

static void attr_s(hid_t f, const char *name, const char *v)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(H5Awrite(a, t, v));
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: parity_dump OUT.h5 vae|hvae bernoulli|logistic256 PRIOR B SEED\n");
        return 2;
    }
    MPI_Init(&argc, &argv);
    vamp_config c;
    config_defaults(&c);
    c.model_type = strcmp(argv[2], "hvae") ? MODEL_VAE : MODEL_HVAE;
    c.likelihood = strcmp(argv[3], "logistic256") ? LIK_BERNOULLI : LIK_LOGISTIC256;
    const char *priors[] = {"standard", "mog", "vampprior", "vampprior_data"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(argv[4], priors[i])) c.prior = (vamp_prior_type)i;
    c.hidden = 16;
    c.z1 = 5;
    c.z2 = 4;
    c.components = 6;
    const int B = atoi(argv[5]);
    const uint64_t seed = strtoull(argv[6], NULL, 10);
    const size_t D = 12;
    const float beta = 0.7f;

    vamp_model m;
    model_init(&m, &c, D);
    const size_t N = m.layout.total;
    float *params = xmalloc(N * sizeof(float)), *grads = xcalloc(N * sizeof(float));
    model_init_params(&m, params, seed);
    if (m.pseudo >= 0) { /* spread the pseudo-inputs over (0,1) so the encoder sees varied inputs */
        float *W = params + m.layout.t[m.pseudo].offset;
        for (size_t i = 0; i < m.layout.t[m.pseudo].size; i++)
            W[i] = 0.05f + 0.9f * rng_uniform(seed, RNG_PSEUDO, 7, 0, (uint32_t)i);
    }
    if (m.mog_logvars >= 0) { /* non-trivial component variances */
        float *lv = params + m.layout.t[m.mog_logvars].offset;
        for (size_t i = 0; i < m.layout.t[m.mog_logvars].size; i++) lv[i] = 0.5f * rng_normal(seed, RNG_INIT, 9, 0, (uint32_t)i);
    }
    const int Zt = m.Ztop, Z1 = m.Z1, K = m.K;
    float *x = xmalloc((size_t)B * D * sizeof(float));
    for (size_t i = 0; i < (size_t)B * D; i++) {
        float u = rng_uniform(seed, RNG_BINARIZE, 1, 0, (uint32_t)i);
        x[i] = m.gray ? (float)(int)(u * 256.0f) / 255.0f : (u < 0.4f ? 1.0f : 0.0f);
        if (x[i] > 1.0f) x[i] = 1.0f;
    }
    float *eps_top = xmalloc((size_t)B * Zt * sizeof(float));
    float *eps1 = xmalloc((size_t)B * (Z1 ? Z1 : 1) * sizeof(float));
    rng_normal_fill(eps_top, (size_t)B * Zt, seed, RNG_EPS_TRAIN, 0, 0, 0);
    if (Z1) rng_normal_fill(eps1, (size_t)B * Z1, seed, RNG_EPS_TRAIN, 0, 1, 0);

    float *pm = NULL, *plv = NULL, *dpm = NULL, *dplv = NULL;
    vamp_enc_acts pa;
    if (m.pseudo >= 0) {
        pm = xmalloc((size_t)K * Zt * sizeof(float));
        plv = xmalloc((size_t)K * Zt * sizeof(float));
        dpm = xcalloc((size_t)K * Zt * sizeof(float));
        dplv = xcalloc((size_t)K * Zt * sizeof(float));
        enc_acts_init(&pa, &m, K, 1);
        model_pseudo_forward(&m, &pa, params, 0, K, pm, plv);
    } else if (m.mog_means >= 0) {
        pm = params + m.layout.t[m.mog_means].offset;
        plv = params + m.layout.t[m.mog_logvars].offset;
        dpm = grads + m.layout.t[m.mog_means].offset;
        dplv = grads + m.layout.t[m.mog_logvars].offset;
    }
    vamp_acts a;
    acts_init(&a, &m, B);
    double sum = model_forward(&m, &a, params, x, eps_top, eps1, B, pm, plv, beta);
    model_backward(&m, &a, params, grads, dpm, dplv, pm, plv, B, beta, 1.0f / B);
    if (m.pseudo >= 0) model_pseudo_backward(&m, &pa, params, grads, 0, K, dpm, dplv);

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(argv[1], H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(f);
    hid_t gp = H5Gcreate2(f, "params", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t gg = H5Gcreate2(f, "grads", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    for (int i = 0; i < m.layout.n; i++) {
        const vamp_tensor *t = &m.layout.t[i];
        size_t cols = t->ndim == 2 ? t->shape[1] : 0;
        write_ds(gp, t->name, params + t->offset, t->shape[0], cols);
        write_ds(gg, t->name, grads + t->offset, t->shape[0], cols);
    }
    H5Gclose(gp);
    H5Gclose(gg);
    write_ds(f, "x", x, (size_t)B, D);
    write_ds(f, "eps_top", eps_top, (size_t)B, (size_t)Zt);
    if (Z1) write_ds(f, "eps1", eps1, (size_t)B, (size_t)Z1);
    write_ds(f, "re", a.re, (size_t)B, 0);
    write_ds(f, "kl", a.kl, (size_t)B, 0);
    attr_d(f, "loss", sum / B);
    attr_d(f, "beta", beta);
    attr_s(f, "model", argv[2]);
    attr_s(f, "likelihood", argv[3]);
    attr_s(f, "prior", argv[4]);
    attr_d(f, "D", (double)D);
    attr_d(f, "H", c.hidden);
    attr_d(f, "Z1", c.z1);
    attr_d(f, "Z2", c.z2);
    attr_d(f, "K", c.components);
    attr_d(f, "B", B);
    CHECK_H5(H5Fclose(f));
    MPI_Finalize();
    return 0;
}
