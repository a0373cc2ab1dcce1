/* vamp_prepare: converts the paper's datasets into the vamp_mpi HDF5 dataset format (see include/vamp/data.h):
 * IDX files (MNIST, Fashion-MNIST; gzip or plain, through zlib), the .amat text files of statically binarised
 * MNIST, and MATLAB .mat files (OMNIGLOT chardata.mat, Caltech 101 Silhouettes, Frey Faces; through libmatio).
 * Writes to a temporary name and renames, so a failed conversion leaves nothing behind. It does not binarise
 * grey data (vamp_mpi does that when it trains). Where the reference's loader shuffles before cutting the
 * validation (and test) split (Frey Faces, OMNIGLOT), the default split is shuffled too, by a keyed Philox
 * permutation with a fixed seed recorded in the file; --split ordered keeps the file's order. */
#include "vamp/check.h"
#include "vamp/config.h"
#include "vamp/data.h"
#include "vamp/rng.h"
#include "vamp/provenance.h"
#include "vamp/build_info.h"

#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <matio.h>
#include <zlib.h>

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"
/* The reference's default --seed (experiment.py); its own shuffle is numpy's, unseeded, so not reproducible. */
#define SPLIT_SEED_DEFAULT 14

/* The temporary file being written (write_dataset's own buffer), removed by fail(); NULL outside it. */
static const char *tmp_to_remove = NULL;

static void __attribute__((noreturn, format(printf, 2, 3))) fail(const char *file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "vamp_prepare: error: %s: ", file);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (tmp_to_remove) unlink(tmp_to_remove);
    MPI_Finalize();
    exit(2);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vamp_prepare idx --train-images FILE --test-images FILE --out OUT.h5 [--source NAME]\n"
            "                        [--n-valid N]\n"
            "       vamp_prepare fashion-mnist --out OUT.h5   (Debian's dataset-fashion-mnist, " FMNIST_DIR ")\n"
            "       vamp_prepare amat --train F --valid F --test F --out OUT.h5     (static MNIST, binary)\n"
            "       vamp_prepare omniglot --mat chardata.mat --out OUT.h5           (1345 train -> valid)\n"
            "       vamp_prepare caltech --mat caltech101_silhouettes_28_split1.mat --out OUT.h5\n"
            "       vamp_prepare frey --mat frey_rawface.mat --out OUT.h5           (1565 / 200 / 200)\n"
            "       vamp_prepare --help | --version\n"
            "\n"
            "options for omniglot and frey, whose reference loaders shuffle before they split:\n"
            "  --split shuffled|ordered  shuffled (default): the images are permuted first (frey: all 1965 frames,\n"
            "                            then 1565 / 200 / 200; omniglot: the training images, then the last 1345\n"
            "                            validate), by Philox4x32-10 Fisher-Yates keyed by --split-seed; ordered:\n"
            "                            the file's order (for Frey Faces: test = the last 200 video frames)\n"
            "  --split-seed N            seed of the shuffled split (default %d); split and split_seed are\n"
            "                            recorded as attributes of OUT.h5\n"
            "\n"
            "Converts IDX image files (MNIST, Fashion-MNIST; .gz or plain) into one HDF5 file with /train, /valid and\n"
            "/test (N x D uint8) and the attributes format, version, height, width, kind = gray, source. The last\n"
            "N training images (default 10000) become /valid, as the paper splits dynamic MNIST. The other formats\n"
            "use the splits of the paper's reference code (shuffled as above): .amat and Caltech are binary (kind\n"
            "binary: train with data.binarize = none), OMNIGLOT is grey in [0,1] (float32; dynamic binarisation),\n"
            "Frey Faces grey 28x20 (logistic256). Exit status 2 on a missing or malformed input; nothing is written.\n",
            SPLIT_SEED_DEFAULT);
}

typedef struct {
    unsigned char *pix; /* (n, rows*cols) */
    long n;
    int rows, cols;
} idx_images;

static uint32_t be32(const unsigned char *b) { return (uint32_t)b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3]; }

static idx_images read_idx(const char *path)
{
    idx_images im;
    gzFile g = gzopen(path, "rb");
    if (!g) fail(path, "cannot open: %s", strerror(errno ? errno : ENOENT));
    unsigned char hdr[16];
    if (gzread(g, hdr, 16) != 16) fail(path, "truncated IDX header (16 bytes expected)");
    if (be32(hdr) != 0x00000803)
        fail(path, "not an IDX image file: magic 0x%08x, expected 0x00000803 (unsigned bytes, 3 dimensions)",
             be32(hdr));
    uint32_t n = be32(hdr + 4), r = be32(hdr + 8), c = be32(hdr + 12);
    if (n == 0 || r == 0 || c == 0 || r > 65536 || c > 65536 || (uint64_t)n * r * c > (1ull << 34))
        fail(path, "implausible dimensions %u x %u x %u", n, r, c);
    size_t bytes = (size_t)n * r * c;
    im.pix = malloc(bytes);
    if (!im.pix) fail(path, "out of memory for %zu bytes", bytes);
    size_t got = 0;
    while (got < bytes) {
        unsigned chunk = bytes - got > (1u << 30) ? (1u << 30) : (unsigned)(bytes - got);
        int k = gzread(g, im.pix + got, chunk);
        if (k <= 0) break;
        got += (size_t)k;
    }
    if (got != bytes) fail(path, "truncated: the header promises %u images of %ux%u (%zu bytes), found %zu", n, r, c,
                           bytes, got);
    unsigned char extra;
    if (gzread(g, &extra, 1) == 1) fail(path, "has data after the %u images its header announces", n);
    gzclose(g);
    im.n = n;
    im.rows = (int)r;
    im.cols = (int)c;
    return im;
}

/* ---- .amat: one image per line, D integers 0/1 separated by blanks ------------------------------------------ */

static idx_images read_amat(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) fail(path, "cannot open: %s", strerror(errno));
    idx_images im = {NULL, 0, 0, 0};
    unsigned char *row = NULL;
    size_t cap = 0, rowcap = 0, D = 0, len = 0;
    char *line = NULL;
    long lineno = 0;
    while (getline(&line, &len, f) > 0) {
        lineno++;
        size_t k = 0;
        for (char *tok = strtok(line, " \t\r\n"); tok; tok = strtok(NULL, " \t\r\n")) {
            if (strcmp(tok, "0") && strcmp(tok, "1"))
                fail(path, "line %ld, value %zu: \"%s\" is not 0 or 1", lineno, k + 1, tok);
            if (k == rowcap && !(row = realloc(row, rowcap = rowcap ? 2 * rowcap : 1024))) fail(path, "out of memory");
            row[k++] = tok[0] == '1' ? 255 : 0;
        }
        if (k == 0) continue; /* a blank line */
        if (im.n == 0) D = k;
        else if (k != D) fail(path, "line %ld has %zu values, the first image has %zu", lineno, k, D);
        if ((size_t)(im.n + 1) * D > cap) {
            cap = cap ? 2 * cap : 1024 * D;
            if (!(im.pix = realloc(im.pix, cap))) fail(path, "out of memory");
        }
        memcpy(im.pix + (size_t)im.n * D, row, D);
        im.n++;
    }
    free(line);
    free(row);
    fclose(f);
    if (im.n == 0) fail(path, "no images");
    int side = 1;
    while ((size_t)(side + 1) * (side + 1) <= D) side++;
    if ((size_t)side * side != D) fail(path, "%zu values per line: not a square image", D);
    im.rows = im.cols = side;
    return im;
}

/* ---- MATLAB .mat through libmatio ------------------------------------------------------------------------------ */

/* Reads a real 2-D numeric variable as doubles (column-major, as stored). */
static double *read_mat_var(mat_t *mat, const char *file, const char *name, size_t *rows, size_t *cols)
{
    matvar_t *v = Mat_VarRead(mat, name);
    if (!v) fail(file, "no variable \"%s\" (is this the right .mat file?)", name);
    if (v->rank != 2 || v->isComplex || !v->data)
        fail(file, "variable \"%s\" must be a real 2-D matrix", name);
    *rows = v->dims[0];
    *cols = v->dims[1];
    size_t n = *rows * *cols;
    double *out = malloc(n * sizeof(double));
    if (!out) fail(file, "out of memory");
    for (size_t i = 0; i < n; i++) {
        switch (v->class_type) {
        case MAT_C_DOUBLE: out[i] = ((const double *)v->data)[i]; break;
        case MAT_C_SINGLE: out[i] = ((const float *)v->data)[i]; break;
        case MAT_C_UINT8: out[i] = ((const unsigned char *)v->data)[i]; break;
        default: fail(file, "variable \"%s\" has an unsupported element class %d (need double, single or uint8)", name,
                      (int)v->class_type);
        }
    }
    Mat_VarFree(v);
    return out;
}

/* Images as rows (n, D) from a matrix holding them as columns (images_are_columns) or rows. With `transpose`,
 * each h x h image is transposed (the reference's reshape(..., order='F') of these column-major files). */
static float *mat_images(const double *m, size_t rows, size_t cols, int images_are_columns, int transpose, int side,
                         long *n_out, size_t *D_out)
{
    size_t n = images_are_columns ? cols : rows, D = images_are_columns ? rows : cols;
    float *x = malloc(n * D * sizeof(float));
    if (!x) return NULL;
    for (size_t i = 0; i < n; i++)
        for (size_t p = 0; p < D; p++) {
            size_t src = transpose ? (p % side) * side + p / side : p;
            x[i * D + p] = (float)(images_are_columns ? m[i * rows + src] : m[src * rows + i]);
        }
    *n_out = (long)n;
    *D_out = D;
    return x;
}

static void check_range(const float *x, size_t n, const char *file, const char *name, double lo, double hi,
                        int binary)
{
    for (size_t i = 0; i < n; i++)
        if (!(x[i] >= lo && x[i] <= hi) || (binary && x[i] != lo && x[i] != hi))
            fail(file, "variable \"%s\": value %g at element %zu is not %s", name, (double)x[i], i,
                 binary ? "0 or 1" : "in range");
}

/* One split, chunked and deflated: uint8 rows (pix) or float32 rows (x). */
static void write_split(hid_t f, const char *name, const unsigned char *pix, const float *x, long n, size_t D,
                        const char *out)
{
    hsize_t dims[2] = {(hsize_t)n, D}, chunk[2] = {(hsize_t)(n < 1024 ? n : 1024), D};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 2, chunk) < 0 || H5Pset_deflate(dcpl, 4) < 0)
        fail(out, "cannot set up dataset /%s", name);
    hid_t ds = H5Dcreate2(f, name, pix ? H5T_STD_U8LE : H5T_IEEE_F32LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, pix ? H5T_NATIVE_UCHAR : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                           pix ? (const void *)pix : (const void *)x) < 0)
        fail(out, "cannot write dataset /%s", name);
    H5Dclose(ds);
    H5Pclose(dcpl);
    H5Sclose(space);
}

static void write_str_attr(hid_t f, const char *name, const char *v, const char *out)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) + 1);
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, t, v) < 0) fail(out, "cannot write attribute %s", name);
    H5Aclose(a);
    H5Sclose(s);
    H5Tclose(t);
}

static void write_int_attr(hid_t f, const char *name, int v, const char *out)
{
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(f, name, H5T_STD_I32LE, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, H5T_NATIVE_INT, &v) < 0) fail(out, "cannot write attribute %s", name);
    H5Aclose(a);
    H5Sclose(s);
}

/* The three splits to write: uint8 (u8 != NULL) or float32 rows. */
typedef struct {
    const unsigned char *u8[3];
    const float *f32[3];
    long n[3];
    int height, width;
    const char *kind, *source;
    const char *split; /* "shuffled" or "ordered" where the reference shuffles before splitting, else NULL */
    int split_seed;    /* the seed of a shuffled split */
} dataset_out;

static void write_dataset(const char *out, const dataset_out *d)
{
    char tmp[2048]; /* named in tmp_to_remove until renamed: fail() is only called below, while it lives */
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    vamp_h5_quiet(); /* our messages say what failed */
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) fail(out, "cannot create (is the directory there and writable?)");
    tmp_to_remove = tmp;
    const char *names[3] = {"train", "valid", "test"};
    size_t D = (size_t)d->height * d->width;
    for (int i = 0; i < 3; i++) {
        if (d->n[i] < 1) fail(out, "split /%s would be empty", names[i]);
        write_split(f, names[i], d->u8[i], d->f32[i], d->n[i], D, out);
    }
    write_str_attr(f, "format", VAMP_DATASET_FORMAT, out);
    write_int_attr(f, "version", VAMP_DATASET_VERSION, out);
    write_int_attr(f, "height", d->height, out);
    write_int_attr(f, "width", d->width, out);
    write_str_attr(f, "kind", d->kind, out);
    write_str_attr(f, "source", d->source, out);
    vamp_provenance prov;
    provenance_collect(&prov, MPI_COMM_NULL);
    if (provenance_write_attrs(f, &prov) != 0) fail(out, "cannot write the build attributes");
    if (d->split) {
        write_str_attr(f, "split", d->split, out);
        if (!strcmp(d->split, "shuffled")) write_int_attr(f, "split_seed", d->split_seed, out);
    }
    if (H5Fclose(f) < 0) fail(out, "cannot close (disk full?)");
    if (rename(tmp, out) != 0) fail(out, "cannot rename %s into place: %s", tmp, strerror(errno));
    tmp_to_remove = NULL;
    printf("vamp_prepare: wrote %s: train %ld, valid %ld, test %ld images of %dx%d, kind %s (%s)\n", out, d->n[0],
           d->n[1], d->n[2], d->height, d->width, d->kind, d->source);
}

/* Permutes the n rows (row_bytes each) of rows in place: row i becomes old row perm[i], perm a keyed Philox
 * Fisher-Yates permutation (the same for a seed on any machine). */
static void shuffle_rows(void *rows, size_t row_bytes, long n, int seed, const char *file)
{
    uint32_t *perm = malloc((size_t)n * sizeof *perm);
    unsigned char *copy = malloc((size_t)n * row_bytes);
    if (!perm || !copy) fail(file, "out of memory");
    rng_permutation(perm, (uint32_t)n, (uint64_t)seed, RNG_SPLIT, 0, 0);
    memcpy(copy, rows, (size_t)n * row_bytes);
    for (long i = 0; i < n; i++) memcpy((unsigned char *)rows + (size_t)i * row_bytes, copy + (size_t)perm[i] * row_bytes, row_bytes);
    free(copy);
    free(perm);
}

static const char *basename_of(const char *p)
{
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

/* The command line after the format name. */
typedef struct {
    const char *mode, *train, *test, *valid, *out, *source, *matfile;
    long n_valid;
    const char *split; /* --split, or NULL */
    int split_seed;
} prepare_args;

static const struct option PREPARE_OPTIONS[] = {
    {"train-images", required_argument, NULL, 't'}, {"train", required_argument, NULL, 't'},
    {"test-images", required_argument, NULL, 'T'},  {"test", required_argument, NULL, 'T'},
    {"valid", required_argument, NULL, 'v'},        {"mat", required_argument, NULL, 'm'},
    {"out", required_argument, NULL, 'o'},          {"source", required_argument, NULL, 's'},
    {"split", required_argument, NULL, 'p'},        {"split-seed", required_argument, NULL, 'S'},
    {"n-valid", required_argument, NULL, 'n'},      {NULL, 0, NULL, 0}};

/* An unknown option, with the nearest known one when it looks like a typo. */
static void unknown_option(const char *arg)
{
    char word[64];
    snprintf(word, sizeof word, "%.*s", (int)strcspn(arg, "="), arg);
    enum { N = sizeof PREPARE_OPTIONS / sizeof PREPARE_OPTIONS[0] - 1 };
    char dashed[N][24];
    const char *names[N];
    for (int k = 0; k < N; k++) {
        snprintf(dashed[k], sizeof dashed[k], "--%s", PREPARE_OPTIONS[k].name);
        names[k] = dashed[k];
    }
    const char *near = config_closest(word, names, N);
    if (near) fail("arguments", "unknown option %s (did you mean %s?; see --help)", arg, near);
    fail("arguments", "unknown option %s (see --help)", arg);
}

static long integer_option(const char *name, const char *v, long lo, long hi)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || end == v || x < lo || x > hi) fail("arguments", "--%s %s: expected an integer %ld..%ld", name, v, lo, hi);
    return x;
}

/* getopt_long: every option is "--opt value" or "--opt=value", after the format name. */
static void parse_options(prepare_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof *a);
    a->mode = argv[1];
    a->n_valid = 10000;
    a->split_seed = SPLIT_SEED_DEFAULT;
    opterr = 0; /* our own messages */
    optind = 2;
    for (;;) {
        int c = getopt_long(argc, argv, ":", PREPARE_OPTIONS, NULL);
        if (c == -1) break;
        const char *arg = argv[optind - 1 < argc ? optind - 1 : argc - 1];
        switch (c) {
        case 't': a->train = optarg; break;
        case 'T': a->test = optarg; break;
        case 'v': a->valid = optarg; break;
        case 'm': a->matfile = optarg; break;
        case 'o': a->out = optarg; break;
        case 's': a->source = optarg; break;
        case 'p':
            if (strcmp(optarg, "shuffled") && strcmp(optarg, "ordered"))
                fail("arguments", "--split %s: expected shuffled or ordered", optarg);
            a->split = optarg;
            break;
        case 'S': a->split_seed = (int)integer_option("split-seed", optarg, 0, 2147483647L); break;
        case 'n': a->n_valid = integer_option("n-valid", optarg, 1, 1000000000L); break;
        case ':': fail("arguments", "option %s needs a value (see --help)", arg);
        default: unknown_option(arg);
        }
    }
    if (optind < argc) fail("arguments", "unexpected argument %s (see --help)", argv[optind]);
    if (!a->out) fail("arguments", "--out is required");
}

/* The file's source attribute: --source, else "<format>:<file name>" in src_buf. */
static const char *source_name(const prepare_args *a, const char *format, const char *file, char *src_buf,
                               size_t len)
{
    snprintf(src_buf, len, "%s:%s", format, basename_of(file));
    return a->source ? a->source : src_buf;
}

/* idx / fashion-mnist: the last n_valid training images validate, as the paper splits dynamic MNIST. */
static void prepare_idx(prepare_args *a, dataset_out *d, char *src_buf, size_t len)
{
    if (!strcmp(a->mode, "fashion-mnist")) {
        a->train = FMNIST_DIR "/train-images-idx3-ubyte.gz";
        a->test = FMNIST_DIR "/t10k-images-idx3-ubyte.gz";
        if (!a->source) a->source = "fashion-mnist";
    }
    if (!a->train || !a->test) fail("arguments", "idx needs --train-images and --test-images");
    idx_images tr = read_idx(a->train), te = read_idx(a->test);
    if (tr.rows != te.rows || tr.cols != te.cols)
        fail(a->test, "images are %dx%d, but the training images are %dx%d", te.rows, te.cols, tr.rows, tr.cols);
    if (a->n_valid >= tr.n) fail(a->train, "has %ld images: too few for --n-valid %ld", tr.n, a->n_valid);
    size_t D = (size_t)tr.rows * tr.cols;
    d->u8[0] = tr.pix;
    d->n[0] = tr.n - a->n_valid;
    d->u8[1] = tr.pix + (size_t)d->n[0] * D;
    d->n[1] = a->n_valid;
    d->u8[2] = te.pix;
    d->n[2] = te.n;
    d->height = tr.rows;
    d->width = tr.cols;
    d->kind = "gray";
    d->source = source_name(a, "idx", a->train, src_buf, len);
}

/* amat: statically binarised MNIST, one file per split. */
static void prepare_amat(prepare_args *a, dataset_out *d, char *src_buf, size_t len)
{
    if (!a->train || !a->valid || !a->test) fail("arguments", "amat needs --train, --valid and --test");
    idx_images s[3] = {read_amat(a->train), read_amat(a->valid), read_amat(a->test)};
    const char *files[3] = {a->train, a->valid, a->test};
    for (int i = 0; i < 3; i++) {
        if (s[i].rows != s[0].rows) fail(files[i], "images have %d pixels per side, %s has %d", s[i].rows, a->train,
                                         s[0].rows);
        d->u8[i] = s[i].pix;
        d->n[i] = s[i].n;
    }
    d->height = d->width = s[0].rows;
    d->kind = "binary";
    d->source = source_name(a, "amat", a->train, src_buf, len);
}

/* omniglot: data (784 x N), testdata (784 x M), images as columns; the last 1345 training images validate. */
static void prepare_omniglot(mat_t *mat, const char *matfile, dataset_out *d)
{
    size_t r, c, D;
    long n = 0, nt = 0;
    double *tr = read_mat_var(mat, matfile, "data", &r, &c);
    if (r != 784) fail(matfile, "variable \"data\" has %zu rows, expected 784 (28x28 images as columns)", r);
    float *x = mat_images(tr, r, c, 1, 1, 28, &n, &D);
    double *te = read_mat_var(mat, matfile, "testdata", &r, &c);
    if (r != 784) fail(matfile, "variable \"testdata\" has %zu rows, expected 784", r);
    float *xt = mat_images(te, r, c, 1, 1, 28, &nt, &D);
    if (!x || !xt) fail(matfile, "out of memory");
    check_range(x, (size_t)n * D, matfile, "data", 0, 1, 0);
    check_range(xt, (size_t)nt * D, matfile, "testdata", 0, 1, 0);
    const long nv = 1345; /* the reference's validation size */
    if (n <= nv) fail(matfile, "variable \"data\" has %ld images, too few for 1345 validation images", n);
    if (!strcmp(d->split, "shuffled")) shuffle_rows(x, D * sizeof(float), n, d->split_seed, matfile);
    d->f32[0] = x;
    d->n[0] = n - nv;
    d->f32[1] = x + (size_t)(n - nv) * D;
    d->n[1] = nv;
    d->f32[2] = xt;
    d->n[2] = nt;
    d->height = d->width = 28;
    d->kind = "gray";
}

/* caltech: train_data / val_data / test_data (N x 784), images as rows, shapes made white (1 - x). */
static void prepare_caltech(mat_t *mat, const char *matfile, dataset_out *d)
{
    const char *vars[3] = {"train_data", "val_data", "test_data"};
    for (int i = 0; i < 3; i++) {
        size_t r, c, D;
        long n;
        double *m = read_mat_var(mat, matfile, vars[i], &r, &c);
        if (c != 784) fail(matfile, "variable \"%s\" has %zu columns, expected 784", vars[i], c);
        float *x = mat_images(m, r, c, 0, 1, 28, &n, &D);
        if (!x) fail(matfile, "out of memory");
        check_range(x, (size_t)n * D, matfile, vars[i], 0, 1, 1);
        unsigned char *u = malloc((size_t)n * D);
        if (!u) fail(matfile, "out of memory");
        for (size_t k = 0; k < (size_t)n * D; k++) u[k] = x[k] == 0.0f ? 255 : 0; /* 1 - x: shapes white */
        d->u8[i] = u;
        d->n[i] = n;
    }
    d->height = d->width = 28;
    d->kind = "binary";
}

/* frey: ff (560 x 1965) uint8, 28 x 20 images as columns; 1565 / 200 / 200. */
static void prepare_frey(mat_t *mat, const char *matfile, dataset_out *d)
{
    size_t r, c;
    double *m = read_mat_var(mat, matfile, "ff", &r, &c);
    if (r != 560) fail(matfile, "variable \"ff\" has %zu rows, expected 560 (28x20 images as columns)", r);
    if (c < 1965) fail(matfile, "variable \"ff\" has %zu images, the paper's split needs 1965", c);
    unsigned char *u = malloc(r * c);
    if (!u) fail(matfile, "out of memory");
    for (size_t i = 0; i < c; i++)
        for (size_t p = 0; p < r; p++) {
            double v = m[i * r + p];
            if (!(v >= 0 && v <= 255) || v != (double)(int)v)
                fail(matfile, "variable \"ff\": value %g is not an integer 0..255", v);
            u[i * r + p] = (unsigned char)v;
        }
    if (!strcmp(d->split, "shuffled")) shuffle_rows(u, r, 1965, d->split_seed, matfile);
    d->u8[0] = u;
    d->n[0] = 1565;
    d->u8[1] = u + 1565 * r;
    d->n[1] = 200;
    d->u8[2] = u + 1765 * r;
    d->n[2] = 200;
    d->height = 28;
    d->width = 20;
    d->kind = "gray";
}

/* The MATLAB formats: open --mat, then the format's own reader. */
static void prepare_mat(prepare_args *a, dataset_out *d, char *src_buf, size_t len)
{
    const char *matfile = a->matfile;
    if (!matfile) fail("arguments", "%s needs --mat FILE", a->mode);
    if (access(matfile, R_OK) != 0) fail(matfile, "cannot open: %s", strerror(errno));
    mat_t *mat = Mat_Open(matfile, MAT_ACC_RDONLY);
    if (!mat) fail(matfile, "not a MATLAB .mat file libmatio can read");
    d->source = source_name(a, a->mode, matfile, src_buf, len);
    if (!strcmp(a->mode, "omniglot")) prepare_omniglot(mat, matfile, d);
    else if (!strcmp(a->mode, "caltech")) prepare_caltech(mat, matfile, d);
    else prepare_frey(mat, matfile, d);
    Mat_Close(mat);
}

static const struct {
    const char *mode;
    void (*prepare)(prepare_args *a, dataset_out *d, char *src_buf, size_t len);
} FORMATS[] = {{"idx", prepare_idx},       {"fashion-mnist", prepare_idx}, {"amat", prepare_amat},
               {"omniglot", prepare_mat},  {"caltech", prepare_mat},       {"frey", prepare_mat}};

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        vamp_provenance prov;
        provenance_collect(&prov, MPI_COMM_NULL);
        printf("vamp_prepare %s\n", VAMP_VERSION);
        provenance_print(stdout, "  ", &prov);
        return 0;
    }
    MPI_Init(&argc, &argv); /* the parallel HDF5 library needs MPI, even for this serial writer */
    prepare_args a;
    parse_options(&a, argc, argv);
    char src_buf[600];
    dataset_out d;
    memset(&d, 0, sizeof d);
    const int shuffles = !strcmp(a.mode, "omniglot") || !strcmp(a.mode, "frey"); /* as the reference's loaders */
    if (!shuffles && a.split)
        fail("arguments", "--split is for omniglot and frey only (the reference's loader for %s does not shuffle "
             "before splitting)", a.mode);
    if (shuffles) {
        d.split = a.split ? a.split : "shuffled";
        d.split_seed = a.split_seed;
    }
    size_t f = 0;
    while (f < sizeof FORMATS / sizeof FORMATS[0] && strcmp(FORMATS[f].mode, a.mode)) f++;
    if (f == sizeof FORMATS / sizeof FORMATS[0])
        fail("arguments", "unknown format \"%s\": expected idx, fashion-mnist, amat, omniglot, caltech or frey "
             "(see --help)", a.mode);
    FORMATS[f].prepare(&a, &d, src_buf, sizeof src_buf);
    write_dataset(a.out, &d);
    MPI_Finalize();
    return 0;
}
