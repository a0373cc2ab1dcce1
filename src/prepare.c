/* vamp_prepare: converts image datasets into the vamp_mpi HDF5 dataset format (see include/vamp/data.h).
 * Reads IDX files (MNIST, Fashion-MNIST; gzip or plain, through zlib). Writes to a temporary name and renames,
 * so a failed conversion leaves nothing behind. It does not binarise: vamp_mpi does that when it trains. */
#include "vamp/data.h"

#include <errno.h>
#include <hdf5.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

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
            "       vamp_prepare --help\n"
            "\n"
            "Converts IDX image files (MNIST, Fashion-MNIST; .gz or plain) into one HDF5 file with /train, /valid and\n"
            "/test (N x D uint8) and the attributes format, version, height, width, kind = gray, source. The last\n"
            "N training images (default 10000) become /valid, as the paper splits dynamic MNIST. Exit status 2 on a\n"
            "missing or malformed input; nothing is written then.\n");
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

static void write_split(hid_t f, const char *name, const unsigned char *pix, long n, size_t D, const char *out)
{
    hsize_t dims[2] = {(hsize_t)n, D}, chunk[2] = {(hsize_t)(n < 1024 ? n : 1024), D};
    hid_t space = H5Screate_simple(2, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 2, chunk) < 0 || H5Pset_deflate(dcpl, 4) < 0)
        fail(out, "cannot set up dataset /%s", name);
    hid_t ds = H5Dcreate2(f, name, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT, pix) < 0)
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

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    MPI_Init(&argc, &argv); /* the parallel HDF5 library needs MPI, even for this serial writer */
    const char *mode = argv[1], *train = NULL, *test = NULL, *out = NULL, *source = NULL;
    long n_valid = 10000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) fail("arguments", "option %s needs a value (see --help)", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--train-images")) train = v;
        else if (!strcmp(a, "--test-images")) test = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--source")) source = v;
        else if (!strcmp(a, "--n-valid")) {
            char *end;
            n_valid = strtol(v, &end, 10);
            if (*end || n_valid < 1) fail("arguments", "--n-valid %s: expected a positive integer", v);
        } else fail("arguments", "unknown option %s (see --help)", a);
    }
    if (!strcmp(mode, "fashion-mnist")) {
        train = FMNIST_DIR "/train-images-idx3-ubyte.gz";
        test = FMNIST_DIR "/t10k-images-idx3-ubyte.gz";
        if (!source) source = "fashion-mnist";
    } else if (strcmp(mode, "idx") != 0) {
        fail("arguments", "unknown format \"%s\": expected idx or fashion-mnist (see --help)", mode);
    }
    if (!train || !test || !out) fail("arguments", "--train-images, --test-images and --out are required");
    char src_buf[512];
    if (!source) {
        const char *b = strrchr(train, '/');
        snprintf(src_buf, sizeof src_buf, "idx:%s", b ? b + 1 : train);
        source = src_buf;
    }

    idx_images tr = read_idx(train), te = read_idx(test);
    if (tr.rows != te.rows || tr.cols != te.cols)
        fail(test, "images are %dx%d, but the training images are %dx%d", te.rows, te.cols, tr.rows, tr.cols);
    if (n_valid >= tr.n) fail(train, "has %ld images: too few for --n-valid %ld", tr.n, n_valid);
    size_t D = (size_t)tr.rows * tr.cols;

    char tmp[2048];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) fail(out, "cannot create (is the directory there and writable?)");
    tmp_to_remove = tmp;
    long n_train = tr.n - n_valid;
    write_split(f, "train", tr.pix, n_train, D, out);
    write_split(f, "valid", tr.pix + (size_t)n_train * D, n_valid, D, out);
    write_split(f, "test", te.pix, te.n, D, out);
    write_str_attr(f, "format", VAMP_DATASET_FORMAT, out);
    write_int_attr(f, "version", VAMP_DATASET_VERSION, out);
    write_int_attr(f, "height", tr.rows, out);
    write_int_attr(f, "width", tr.cols, out);
    write_str_attr(f, "kind", "gray", out);
    write_str_attr(f, "source", source, out);
    if (H5Fclose(f) < 0) fail(out, "cannot close (disk full?)");
    if (rename(tmp, out) != 0) fail(out, "cannot rename %s into place: %s", tmp, strerror(errno));
    tmp_to_remove = NULL;
    printf("vamp_prepare: wrote %s: train %ld, valid %ld, test %ld images of %dx%d (%s)\n", out, n_train, n_valid,
           te.n, tr.rows, tr.cols, source);
    free(tr.pix);
    free(te.pix);
    MPI_Finalize();
    return 0;
}
