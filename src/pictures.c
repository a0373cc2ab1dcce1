/* PNG grids and pictures.h5 (see pictures.h). Sampling noise is keyed (RNG_SAMPLE), so pictures of the same
 * parameters are the same whatever the rank count. */
#include "vamp/pictures.h"
#include "vamp/provenance.h"
#include "vamp/check.h"
#include "vamp/h5io.h"
#include "vamp/rng.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NPICS 100
#define NRECON 50

/* libpng's default handlers print to stderr; our caller names the file and the error instead. */
static void png_quiet_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

int png_write_grid(const char *path, const float *images, int n, int h, int w, int cols)
{
    int rows = (n + cols - 1) / cols;
    int W = cols * (w + 1) + 1, H = rows * (h + 1) + 1;
    unsigned char *pix = calloc((size_t)W * H, 1);
    png_bytep *rowp = malloc((size_t)H * sizeof(png_bytep));
    if (!pix || !rowp) {
        free(pix);
        free(rowp);
        errno = ENOMEM;
        return -1;
    }
    memset(pix, 128, (size_t)W * H); /* grey gaps between images */
    for (int i = 0; i < n; i++) {
        int gy = (i / cols) * (h + 1) + 1, gx = (i % cols) * (w + 1) + 1;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float v = images[(size_t)i * h * w + (size_t)y * w + x];
                v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
                pix[(size_t)(gy + y) * W + gx + x] = (unsigned char)lrintf(255.0f * v);
            }
    }
    for (int y = 0; y < H; y++) rowp[y] = pix + (size_t)y * W;
    char *image = NULL; /* the PNG is made in memory, then put in place (h5io.h) */
    size_t len = 0;
    FILE *f = open_memstream(&image, &len);
    int ok = f != NULL;
    png_structp png = ok ? png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_quiet_error, png_quiet_warning) : NULL;
    png_infop info = png ? png_create_info_struct(png) : NULL;
    ok = ok && png && info;
    if (ok && setjmp(png_jmpbuf(png)) == 0) {
        png_init_io(png, f);
        png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        png_write_image(png, rowp);
        png_write_end(png, NULL);
    } else {
        ok = 0;
    }
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    if (f && fclose(f) != 0) ok = 0;
    free(rowp);
    free(pix);
    if (ok) ok = io_put(path, NULL, image, len) == 0;
    else errno = errno ? errno : EIO;
    free(image);
    return ok ? 0 : -1;
}

static int write_h5_array(hid_t f, const char *name, const float *x, int n, int h, int w)
{
    hsize_t dims[3] = {(hsize_t)n, (hsize_t)h, (hsize_t)w};
    return h5_dataset_f32(f, name, 3, dims, x);
}

void pictures_write(vamp_trainer *t, const vamp_data *data, const char *dir, const char *prefix)
{
    vamp_model *m = &t->model;
    trainer_prior_components(t);
    vamp_provenance prov;
    provenance_collect(&prov, t->comm);
    char msg[VAMP_MSG_LEN] = "";
    if (t->rank == 0) {
        const size_t D = m->D;
        const int Zt = m->Ztop, Z1 = m->Z1, h = data->height, w = data->width;
        int rows = t->acts.rows;
        float *samples = xmalloc((size_t)NPICS * D * sizeof(float));
        float *z = xmalloc((size_t)rows * Zt * sizeof(float));
        float *e1 = xcalloc((size_t)rows * (Z1 ? Z1 : 1) * sizeof(float));
        for (int s0 = 0; s0 < NPICS; s0 += rows) {
            int R = NPICS - s0 < rows ? NPICS - s0 : rows;
            for (int r = 0; r < R; r++) {
                float *zr = z + (size_t)r * Zt;
                int s = s0 + r;
                rng_normal_fill(zr, (size_t)Zt, t->cfg.seed, RNG_SAMPLE, 0, (uint64_t)s, 0);
                if (Z1) rng_normal_fill(e1 + (size_t)r * Z1, (size_t)Z1, t->cfg.seed, RNG_SAMPLE, 0, (uint64_t)s, (uint32_t)Zt);
                if (m->K) { /* a mixture component, then its Gaussian */
                    float u = rng_uniform(t->cfg.seed, RNG_SAMPLE, 1, (uint64_t)s, 0);
                    int k = (int)(u * m->K);
                    if (k >= m->K) k = m->K - 1;
                    for (int j = 0; j < Zt; j++)
                        zr[j] = t->pm[(size_t)k * Zt + j] + expf(0.5f * t->plv[(size_t)k * Zt + j]) * zr[j];
                }
            }
            model_decode(m, &t->acts, t->params, z, e1, R, samples + (size_t)s0 * D);
        }
        /* reconstructions of the first test images this rank holds, from the posterior means (eps = 0) */
        long avail = data->test.row_hi - data->test.row_lo;
        int nrec = (int)(avail < NRECON ? avail : NRECON);
        if (nrec > rows) nrec = rows;
        float *pairs = xmalloc((size_t)2 * NRECON * D * sizeof(float));
        float *recon = xmalloc((size_t)NRECON * D * sizeof(float));
        memset(t->eps_top, 0, (size_t)rows * Zt * sizeof(float));
        if (Z1) memset(t->eps1, 0, (size_t)rows * Z1 * sizeof(float));
        model_forward(m, &t->acts, t->params, data->test.x, t->eps_top, t->eps1, nrec, t->pm, t->plv, 1.0f);
        memcpy(recon, t->acts.x_mean, (size_t)nrec * D * sizeof(float));
        /* rows of `cols` originals, each followed by the row of their reconstructions */
        int cols = nrec < 10 ? (nrec > 0 ? nrec : 1) : 10;
        nrec = nrec / cols * cols;
        int npairs = 0;
        for (int r0 = 0; r0 < nrec; r0 += cols) {
            memcpy(pairs + (size_t)npairs * D, data->test.x + (size_t)r0 * D, (size_t)cols * D * sizeof(float));
            memcpy(pairs + (size_t)(npairs + cols) * D, recon + (size_t)r0 * D, (size_t)cols * D * sizeof(float));
            npairs += 2 * cols;
        }
        float *pseudo = NULL;
        int npseudo = 0;
        if (m->pseudo >= 0) {
            npseudo = m->K < NPICS ? m->K : NPICS;
            pseudo = xmalloc((size_t)npseudo * D * sizeof(float));
            const float *W = t->params + m->layout.t[m->pseudo].offset;
            for (int k = 0; k < npseudo; k++)
                for (size_t d = 0; d < D; d++) {
                    float v = W[d * m->K + k];
                    pseudo[(size_t)k * D + d] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
                }
        }
        char path[VAMP_FILE_PATH_LEN];
        snprintf(path, sizeof path, "%s/%ssamples.png", dir, prefix);
        int ok = png_write_grid(path, samples, NPICS, h, w, 10) == 0;
        if (ok) {
            snprintf(path, sizeof path, "%s/%sreconstructions.png", dir, prefix);
            ok = png_write_grid(path, pairs, npairs, h, w, cols) == 0;
        }
        if (ok && pseudo) {
            snprintf(path, sizeof path, "%s/%spseudo_inputs.png", dir, prefix);
            ok = png_write_grid(path, pseudo, npseudo, h, w, 10) == 0;
        }
        if (ok) { /* built in memory, then written: a full disk is a failed write(), not a failed H5Fclose */
            snprintf(path, sizeof path, "%s/%spictures.h5", dir, prefix);
            errno = 0;
            hid_t f = h5file_create();
            ok = f >= 0 && provenance_write_attrs(f, &prov) == 0 &&
                 write_h5_array(f, "samples", samples, NPICS, h, w) == 0 &&
                 write_h5_array(f, "originals", data->test.x, nrec, h, w) == 0 &&
                 write_h5_array(f, "reconstructions", recon, nrec, h, w) == 0 &&
                 (!pseudo || write_h5_array(f, "pseudo_inputs", pseudo, npseudo, h, w) == 0);
            if (!ok && f >= 0) H5Fclose(f);
            if (ok) ok = h5file_put(f, path, NULL) == 0;
        }
        if (!ok) snprintf(msg, sizeof msg, "cannot write \"%s\": %s", path, strerror(errno ? errno : EIO));
        free(pseudo);
        free(recon);
        free(pairs);
        free(e1);
        free(z);
        free(samples);
    }
    io_agree_or_exit(t->comm, msg, 1);
}
