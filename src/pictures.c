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

/* NPICS samples from the prior into out (NPICS, D): for mixture priors a component k ~ U{1..K} first, then
 * z ~ its Gaussian; x = the mean of p(x|z). The noise goes through the trainer's eps buffers. */
static void draw_samples(vamp_trainer *t, float *out)
{
    const vamp_model *m = &t->model;
    const int Zt = m->Ztop, rows = t->acts.rows;
    for (int s0 = 0; s0 < NPICS; s0 += rows) {
        int R = NPICS - s0 < rows ? NPICS - s0 : rows;
        for (int r = 0; r < R; r++) {
            float *zr = t->eps_top + (size_t)r * Zt;
            int s = s0 + r;
            trainer_noise(t, r, RNG_SAMPLE, 0, (uint64_t)s);
            if (m->K) { /* a mixture component, then its Gaussian */
                float u = rng_uniform(t->cfg.seed, RNG_SAMPLE, 1, (uint64_t)s, 0);
                int k = (int)(u * m->K);
                if (k >= m->K) k = m->K - 1;
                for (int j = 0; j < Zt; j++)
                    zr[j] = t->pm[(size_t)k * Zt + j] + expf(0.5f * t->plv[(size_t)k * Zt + j]) * zr[j];
            }
        }
        model_decode(m, &t->acts, t->params, t->eps_top, t->eps1, R, out + (size_t)s0 * m->D, t->cfg.seed,
                     (uint64_t)s0);
    }
}

/* Reconstructions of the first test images this rank holds, from the posterior means (eps = 0), into recon;
 * pairs receives rows of `*cols` originals, each followed by the row of their reconstructions. Returns the
 * number of images reconstructed (a multiple of *cols). */
static int reconstruct(vamp_trainer *t, const vamp_split *test, float *recon, float *pairs, int *cols)
{
    const vamp_model *m = &t->model;
    const size_t D = m->D;
    const int rows = t->acts.rows;
    long avail = test->row_hi - test->row_lo;
    int nrec = (int)(avail < NRECON ? avail : NRECON);
    if (nrec > rows) nrec = rows;
    memset(t->eps_top, 0, (size_t)rows * m->Ztop * sizeof(float));
    if (m->Z1) memset(t->eps1, 0, (size_t)rows * m->Z1 * sizeof(float));
    model_forward(m, &t->acts, t->params, test->x, t->eps_top, t->eps1, nrec, t->pm, t->plv, 1.0f);
    if (m->pixel) /* its forward pass saw the image (teacher forcing): draw it from the latents instead */
        model_decode(m, &t->acts, t->params, t->acts.z_top, NULL, nrec, recon, t->cfg.seed, NPICS);
    else
        memcpy(recon, t->acts.x_mean, (size_t)nrec * D * sizeof(float));
    *cols = nrec < 10 ? (nrec > 0 ? nrec : 1) : 10;
    nrec = nrec / *cols * *cols;
    for (int r0 = 0, npairs = 0; r0 < nrec; r0 += *cols, npairs += 2 * *cols) {
        memcpy(pairs + (size_t)npairs * D, test->x + (size_t)r0 * D, (size_t)*cols * D * sizeof(float));
        memcpy(pairs + (size_t)(npairs + *cols) * D, recon + (size_t)r0 * D, (size_t)*cols * D * sizeof(float));
    }
    return nrec;
}

/* The first NPICS pseudo-inputs as images clipped to [0,1] (as the hardtanh does), or NULL without them. */
static float *pseudo_images(const vamp_trainer *t, int *n)
{
    const vamp_model *m = &t->model;
    const size_t D = m->D;
    *n = 0;
    if (m->pseudo < 0) return NULL;
    *n = m->K < NPICS ? m->K : NPICS;
    float *pseudo = xmalloc((size_t)*n * D * sizeof(float));
    const float *W = t->params + m->layout.t[m->pseudo].offset;
    for (int k = 0; k < *n; k++)
        for (size_t d = 0; d < D; d++) {
            float v = W[d * m->K + k];
            pseudo[(size_t)k * D + d] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        }
    return pseudo;
}

/* What one call of pictures_write draws, on rank 0. */
typedef struct {
    float *samples;        /* (NPICS, D) */
    float *pairs, *recon;  /* (npairs, D) originals and reconstructions by rows; (nrec, D) */
    float *pseudo;         /* (npseudo, D) or NULL */
    int npairs, nrec, cols, npseudo;
} picture_set;

/* Rank 0: the PNG grids and pictures.h5; msg receives the error (empty on success). */
static void write_pictures(const picture_set *p, const vamp_data *data, const vamp_provenance *prov,
                           const char *dir, const char *prefix, char *msg, size_t msglen)
{
    const int h = data->height, w = data->width;
    float *samples = p->samples, *pairs = p->pairs, *recon = p->recon, *pseudo = p->pseudo;
    const int npairs = p->npairs, nrec = p->nrec, cols = p->cols, npseudo = p->npseudo;
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
        ok = f >= 0 && provenance_write_attrs(f, prov) == 0 &&
             write_h5_array(f, "samples", samples, NPICS, h, w) == 0 &&
             write_h5_array(f, "originals", data->test.x, nrec, h, w) == 0 &&
             write_h5_array(f, "reconstructions", recon, nrec, h, w) == 0 &&
             (!pseudo || write_h5_array(f, "pseudo_inputs", pseudo, npseudo, h, w) == 0);
        if (!ok && f >= 0) H5Fclose(f);
        if (ok) ok = h5file_put(f, path, NULL) == 0;
    }
    if (!ok) snprintf(msg, msglen, "cannot write \"%s\": %s", path, strerror(errno ? errno : EIO));
}

void pictures_write(vamp_trainer *t, const vamp_data *data, const char *dir, const char *prefix)
{
    vamp_model *m = &t->model;
    trainer_prior_components(t);
    vamp_provenance prov;
    provenance_collect(&prov, t->comm);
    if (m->pixel) /* minutes at 28x28: say so before the wait */
        log0(t->comm, "pictures: %d samples and %d reconstructions drawn pixel by pixel (%zu passes of the PixelCNN)\n",
             NPICS, NRECON, 2 * m->D);
    char msg[VAMP_MSG_LEN] = "";
    if (t->rank == 0) {
        const size_t D = m->D;
        picture_set p;
        p.samples = xmalloc((size_t)NPICS * D * sizeof(float));
        draw_samples(t, p.samples);
        p.pairs = xmalloc((size_t)2 * NRECON * D * sizeof(float));
        p.recon = xmalloc((size_t)NRECON * D * sizeof(float));
        p.nrec = reconstruct(t, &data->test, p.recon, p.pairs, &p.cols);
        p.npairs = 2 * p.nrec;
        p.pseudo = pseudo_images(t, &p.npseudo);
        write_pictures(&p, data, &prov, dir, prefix, msg, sizeof msg);
        free(p.pseudo);
        free(p.recon);
        free(p.pairs);
        free(p.samples);
    }
    io_agree_or_exit(t->comm, msg, 1);
}
