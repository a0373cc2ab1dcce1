/* Reading the vamp_mpi dataset format with parallel HDF5: every rank reads its own stripes of each split
 * (one hyperslab, collective transfer), converts to floats in [0,1] and checks them. Every problem with the
 * file is reported as an input error naming the file and dataset (see data.h). */
#include "vamp/data.h"
#include "vamp/h5io.h"
#include "vamp/check.h"
#include "vamp/memory.h"
#include "vamp/rng.h"

#include <errno.h>
#include <hdf5.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <unistd.h>

/* Moves b to its first row that lies inside a stripe this rank holds, or ends the loop. */
static void block_settle(const vamp_split *sp, vamp_block *b)
{
    const int nloc = sp->stripe_hi - sp->stripe_lo;
    long end = b->i < nloc ? stripe_start(sp->n, sp->stripes, sp->stripe_lo + b->i + 1) : 0;
    while (b->i < nloc && b->row >= end) {
        b->i++;
        b->row = end;
        end = b->i < nloc ? stripe_start(sp->n, sp->stripes, sp->stripe_lo + b->i + 1) : 0;
    }
    b->rows = b->i < nloc ? (int)(end - b->row < b->B ? end - b->row : b->B) : 0;
}

vamp_block block_first(const vamp_split *sp, int B)
{
    vamp_block b = {0, stripe_start(sp->n, sp->stripes, sp->stripe_lo), 0, B};
    block_settle(sp, &b);
    return b;
}

void block_next(const vamp_split *sp, vamp_block *b)
{
    b->row += b->rows;
    block_settle(sp, b);
}

void binarize_row(float *x_out, const float *x, size_t D, uint64_t seed, uint32_t purpose, uint32_t epoch,
                  long global_row)
{
    float u[64]; /* draws in small blocks, so x_out may alias x */
    for (size_t d0 = 0; d0 < D; d0 += 64) {
        size_t n = D - d0 < 64 ? D - d0 : 64;
        rng_uniform_fill(u, n, seed, purpose, epoch, (uint64_t)global_row, (uint32_t)d0);
        for (size_t i = 0; i < n; i++) x_out[d0 + i] = u[i] < x[d0 + i] ? 1.0f : 0.0f;
    }
}

/* Reads a string attribute (fixed or variable length) into buf; returns -1 if absent or not a string. */
static int read_string_attr(hid_t loc, const char *name, char *buf, size_t len)
{
    char *s = h5_attr_read_string(loc, name);
    if (!s) return -1;
    snprintf(buf, len, "%s", s);
    free(s);
    return 0;
}

/* Reads an integer attribute; -1 if absent or not numeric. */
static int read_int_attr(hid_t loc, const char *name, long *out)
{
    if (H5Aexists(loc, name) <= 0) return -1;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t t = H5Aget_type(a);
    H5T_class_t cls = H5Tget_class(t);
    hid_t sp = H5Aget_space(a);
    int rc = -1;
    if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && H5Sget_simple_extent_npoints(sp) == 1) {
        double v;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0 && v == floor(v) && fabs(v) < 1e15) {
            *out = (long)v;
            rc = 0;
        }
    }
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

/* Why a root attribute was rejected, for the message: missing, of the wrong type, or its value. */
static const char *attr_why(char *buf, size_t len, hid_t loc, const char *name, int read_ok, const char *type,
                            const char *value)
{
    if (H5Aexists(loc, name) <= 0) snprintf(buf, len, "it is missing");
    else if (!read_ok) snprintf(buf, len, "it is not %s", type);
    else snprintf(buf, len, "found %s", value);
    return buf;
}

static const char *quoted(char buf[80], const char *s)
{
    snprintf(buf, 80, "\"%.70s\"", s);
    return buf;
}

/* Collective: read rows [lo, hi) of dataset ds (N x D, uint8 or float32) into out as floats in [0,1]. A read
 * that fails on any rank (damaged chunks: the metadata and filters were checked before) is an input error. */
static void read_rows(hid_t ds, int is_u8, long lo, long hi, size_t D, float *out, const char *path,
                      const char *name, MPI_Comm comm)
{
    hsize_t start[2] = {(hsize_t)lo, 0}, count[2] = {(hsize_t)(hi - lo), D};
    hid_t fspace = H5Dget_space(ds);
    CHECK_H5(fspace);
    CHECK_H5(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL));
    hid_t mspace = H5Screate_simple(2, count, NULL);
    CHECK_H5(mspace);
    hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
    CHECK_H5(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
    size_t n = (size_t)(hi - lo) * D;
    herr_t rc;
    if (is_u8) {
        unsigned char *u = xmalloc(n ? n : 1);
        rc = H5Dread(ds, H5T_NATIVE_UCHAR, mspace, fspace, dxpl, u);
        for (size_t i = 0; i < n; i++) out[i] = (float)u[i] / 255.0f;
        free(u);
    } else {
        rc = H5Dread(ds, H5T_NATIVE_FLOAT, mspace, fspace, dxpl, out);
    }
    H5Pclose(dxpl);
    H5Sclose(mspace);
    H5Sclose(fspace);
    if (vamp_any(comm, rc < 0))
        vamp_input_error(comm, "%s: dataset /%s: its rows cannot be read (H5Dread failed: a damaged file?): make "
                         "it again with vamp_prepare", path, name);
}

typedef struct {
    hid_t ds;
    int is_u8;
    long rows; /* in the file */
} split_info;

/* Every filter a dataset's chunks went through must be one this HDF5 library can undo, or the first read fails
 * deep inside HDF5 (h5py's LZF, id 32000, is the usual one: it lives in h5py, not in libhdf5). */
static void check_filters(hid_t ds, const char *path, const char *name, MPI_Comm comm)
{
    hid_t dcpl = H5Dget_create_plist(ds);
    CHECK_H5(dcpl);
    int nf = H5Pget_nfilters(dcpl);
    for (int i = 0; i < nf; i++) {
        unsigned flags = 0, config = 0;
        size_t ncd = 0;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &ncd, NULL, sizeof fname, fname, &config);
        unsigned info = 0;
        int usable = id >= 0 && H5Zfilter_avail(id) > 0 && H5Zget_filter_info(id, &info) >= 0 &&
                     (info & H5Z_FILTER_CONFIG_DECODE_ENABLED);
        if (!usable) {
            H5Pclose(dcpl);
            vamp_input_error(comm, "%s: dataset /%s is stored through HDF5 filter %d (\"%s\"), which this HDF5 "
                             "library cannot decode: write it with gzip or no compression (vamp_prepare does), e.g. "
                             "h5py's compression=\"gzip\" instead of \"lzf\"", path, name, (int)id,
                             fname[0] ? fname : "unnamed");
        }
    }
    H5Pclose(dcpl);
}

/* Opens and checks /name; every rank sees the same metadata, so errors are reported by all alike. */
static split_info open_split(hid_t f, const char *path, const char *name, size_t D, int h, int w, MPI_Comm comm)
{
    split_info s;
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        vamp_input_error(comm, "%s: dataset /%s is missing (a vamp_mpi dataset has /train, /valid and /test; make "
                         "one with vamp_prepare)", path, name);
    s.ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (s.ds < 0) vamp_input_error(comm, "%s: /%s is not a dataset", path, name);
    hid_t sp = H5Dget_space(s.ds);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[8] = {0};
    if (nd > 0 && nd <= 8) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    if (nd != 2)
        vamp_input_error(comm, "%s: dataset /%s: expected 2-D (N x %zu), found rank %d", path, name, D, nd);
    if (dims[1] != D)
        vamp_input_error(comm, "%s: dataset /%s: rows have %llu values, but the attributes height x width say "
                         "%d x %d = %zu", path, name, (unsigned long long)dims[1], h, w, D);
    hid_t t = H5Dget_type(s.ds);
    H5T_class_t cls = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    int uns = cls == H5T_INTEGER ? H5Tget_sign(t) == H5T_SGN_NONE : 0;
    H5Tclose(t);
    if (cls == H5T_INTEGER && sz == 1 && uns) s.is_u8 = 1;
    else if (cls == H5T_FLOAT && sz == 4) s.is_u8 = 0;
    else
        vamp_input_error(comm, "%s: dataset /%s: element type must be uint8 (0..255) or float32 (0..1)", path, name);
    check_filters(s.ds, path, name, comm);
    if (dims[0] > VAMP_MAX_ROWS)
        vamp_input_error(comm, "%s: dataset /%s declares %llu rows; at most %llu rows of a split are used: set "
                         "data.%s_limit", path, name, (unsigned long long)dims[0], (unsigned long long)VAMP_MAX_ROWS,
                         name);
    s.rows = (long)dims[0];
    return s;
}

/* Finds the first bad value among this rank's rows; all ranks agree on the lowest bad global row and report it. */
static void check_values(const vamp_split *sp, size_t D, int need_binary, const char *path, const char *name,
                         MPI_Comm comm)
{
    long nloc = sp->row_hi - sp->row_lo;
    struct { double row; int rank; } mine = {INFINITY, 0}, first;
    MPI_Comm_rank(comm, &mine.rank);
    float bad = 0.0f;
    for (size_t i = 0; i < (size_t)nloc * D; i++) {
        float v = sp->x[i];
        if (!(v >= 0.0f && v <= 1.0f) || (need_binary && v != 0.0f && v != 1.0f)) {
            mine.row = (double)(sp->row_lo + (long)(i / D));
            bad = v;
            break;
        }
    }
    CHECK_MPI(MPI_Allreduce(&mine, &first, 1, MPI_DOUBLE_INT, MPI_MINLOC, comm));
    if (isinf(first.row)) return;
    CHECK_MPI(MPI_Bcast(&bad, 1, MPI_FLOAT, first.rank, comm));
    if (need_binary && bad >= 0.0f && bad <= 1.0f)
        vamp_input_error(comm, "%s: dataset /%s: row %.0f has the value %g, but likelihood bernoulli with "
                         "data.binarize = none needs 0/1 data (use data.binarize = dynamic or static)",
                         path, name, first.row, bad);
    vamp_input_error(comm, "%s: dataset /%s: row %.0f has the value %g; values must lie in [0, 1] (uint8 data is "
                     "scaled by 1/255)", path, name, first.row, bad);
}

/* Collective: opens /name, checks it, and decides which rows this rank holds (nothing is allocated yet). */
static split_info plan_split(vamp_split *sp, hid_t f, const vamp_config *c, const char *name, long limit, size_t D,
                             int h, int w, MPI_Comm comm)
{
    int rank, size;
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    CHECK_MPI(MPI_Comm_size(comm, &size));
    split_info si = open_split(f, c->data_path, name, D, h, w, comm);
    if (limit > si.rows)
        vamp_input_error(comm, "%s: dataset /%s has %ld rows, fewer than data.%s_limit = %ld", c->data_path, name,
                         si.rows, name, limit);
    sp->n = limit > 0 ? limit : si.rows;
    sp->stripes = c->stripes;
    if (sp->n < c->stripes)
        vamp_input_error(comm, "%s: dataset /%s has %ld rows, fewer than data.stripes = %d", c->data_path, name,
                         sp->n, c->stripes);
    plan_rank_stripes(c->stripes, size, rank, &sp->stripe_lo, &sp->stripe_hi);
    sp->row_lo = stripe_start(sp->n, sp->stripes, sp->stripe_lo);
    sp->row_hi = stripe_start(sp->n, sp->stripes, sp->stripe_hi);
    return si;
}

/* Collective: reads this rank's rows of a planned split, checks their values and binarises them if asked. */
static void read_split(vamp_split *sp, split_info si, const vamp_config *c, const char *name, size_t D,
                       int binarize, int need_binary, MPI_Comm comm)
{
    size_t nloc = (size_t)(sp->row_hi - sp->row_lo);
    sp->x = xmalloc((nloc ? nloc : 1) * D * sizeof(float));
    read_rows(si.ds, si.is_u8, sp->row_lo, sp->row_hi, D, sp->x, c->data_path, name, comm);
    H5Dclose(si.ds);
    check_values(sp, D, need_binary, c->data_path, name, comm);
    uLong crc = crc32(0L, Z_NULL, 0); /* of the rows as read, before any binarisation; crc32 takes a uInt length */
    for (size_t b = 0, nb = nloc * D * sizeof(float), piece = (size_t)1 << 30; b < nb; b += piece)
        crc = crc32(crc, (const unsigned char *)sp->x + b, (uInt)(nb - b < piece ? nb - b : piece));
    sp->crc = (uint32_t)crc;
    if (binarize)
        for (size_t r = 0; r < nloc; r++) {
            float *row = sp->x + r * D;
            binarize_row(row, row, D, VAMP_STATIC_BINARIZE_SEED, RNG_STATIC, 0, sp->row_lo + (long)r);
        }
}

/* Collective (every rank reads the same): the root attributes format, version, height, width, kind, source. */
static void read_root_attrs(vamp_data *d, hid_t f, const char *path, MPI_Comm comm)
{
    char fmt[64] = "", kind[64] = "", val[80], why[96];
    long version = 0, hw[2] = {0, 0};
    int ok = read_string_attr(f, "format", fmt, sizeof fmt) == 0;
    if (!ok || strcmp(fmt, VAMP_DATASET_FORMAT) != 0)
        vamp_input_error(comm, "%s: attribute format must be \"%s\" (%s): convert the data with vamp_prepare", path,
                         VAMP_DATASET_FORMAT, attr_why(why, sizeof why, f, "format", ok, "a string", quoted(val, fmt)));
    ok = read_int_attr(f, "version", &version) == 0;
    if (!ok || version != VAMP_DATASET_VERSION) {
        snprintf(val, sizeof val, "%ld", version);
        vamp_input_error(comm, "%s: attribute version must be %d (%s)", path, VAMP_DATASET_VERSION,
                         attr_why(why, sizeof why, f, "version", ok, "an integer", val));
    }
    const char *hw_name[2] = {"height", "width"};
    for (int i = 0; i < 2; i++) {
        ok = read_int_attr(f, hw_name[i], &hw[i]) == 0;
        if (!ok || hw[i] < 1 || hw[i] > 65536) {
            snprintf(val, sizeof val, "%ld", hw[i]);
            vamp_input_error(comm, "%s: attribute %s must be an integer from 1 to 65536 (%s)", path, hw_name[i],
                             attr_why(why, sizeof why, f, hw_name[i], ok, "an integer", val));
        }
    }
    ok = read_string_attr(f, "kind", kind, sizeof kind) == 0;
    if (!ok || (strcmp(kind, "binary") && strcmp(kind, "gray")))
        vamp_input_error(comm, "%s: attribute kind must be \"binary\" or \"gray\" (%s)", path,
                         attr_why(why, sizeof why, f, "kind", ok, "a string", quoted(val, kind)));
    if (read_string_attr(f, "source", d->source, sizeof d->source) != 0) snprintf(d->source, sizeof d->source, "?");
    d->height = (int)hw[0];
    d->width = (int)hw[1];
    d->D = (size_t)(hw[0] * hw[1]);
    d->binary = !strcmp(kind, "binary");

    if ((double)hw[0] * (double)hw[1] > VAMP_MAX_PIXELS)
        vamp_input_error(comm, "%s: attributes height x width = %ld x %ld: images of more than %d pixels are not "
                         "supported", path, hw[0], hw[1], VAMP_MAX_PIXELS);
}

void data_load(vamp_data *d, const vamp_config *c, MPI_Comm comm)
{
    memset(d, 0, sizeof *d);
    vamp_h5_quiet();
    int size;
    CHECK_MPI(MPI_Comm_size(comm, &size));
    if (c->stripes < 1 || c->stripes < size) /* config_validate says so first; this keeps a rank from holding none */
        vamp_input_error(comm, "[data] stripes = %d is fewer than the %d ranks", c->stripes, size);
    const char *path = c->data_path;
    if (access(path, R_OK) != 0)
        vamp_input_error(comm, "cannot open data file \"%s\": %s (make it with vamp_prepare)", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        vamp_input_error(comm, "data file \"%s\" is not an HDF5 file", path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    CHECK_H5(fapl);
    CHECK_H5(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (f < 0) vamp_input_error(comm, "cannot open data file \"%s\" with parallel HDF5", path);

    read_root_attrs(d, f, path, comm);

    const char *names[3] = {"train", "valid", "test"};
    vamp_split *sp[3] = {&d->train, &d->valid, &d->test};
    const long limit[3] = {c->train_limit, c->valid_limit, c->test_limit};
    split_info si[3];
    for (int i = 0; i < 3; i++) si[i] = plan_split(sp[i], f, c, names[i], limit[i], d->D, d->height, d->width, comm);
    /* what this rank will hold, as floats, plus the uint8 staging buffer of the largest split */
    double need = 0, stage = 0;
    for (int i = 0; i < 3; i++) {
        double cells = (double)(sp[i]->row_hi - sp[i]->row_lo) * (double)d->D;
        need += 4.0 * cells;
        if (si[i].is_u8 && cells > stage) stage = cells;
    }
    char what[1400];
    snprintf(what, sizeof what, "%s: the images this rank holds (train %ld, valid %ld and test %ld rows of %zu "
             "pixels, as floats)", path, sp[0]->row_hi - sp[0]->row_lo, sp[1]->row_hi - sp[1]->row_lo,
             sp[2]->row_hi - sp[2]->row_lo, d->D);
    mem_require(comm, need + stage, 0, what, "lower data.train_limit (or data.valid_limit, data.test_limit), or "
                "run on more nodes");
    int bern_raw = c->likelihood == LIK_BERNOULLI && c->binarize == BIN_NONE;
    int bin_eval = c->binarize != BIN_NONE;
    read_split(&d->train, si[0], c, "train", d->D, c->binarize == BIN_STATIC, bern_raw, comm);
    read_split(&d->valid, si[1], c, "valid", d->D, bin_eval, bern_raw, comm);
    read_split(&d->test, si[2], c, "test", d->D, bin_eval, bern_raw, comm);
    CHECK_H5(H5Fclose(f));
}

void data_free(vamp_data *d)
{
    free(d->train.x);
    free(d->valid.x);
    free(d->test.x);
    memset(d, 0, sizeof *d);
}

void data_read_train_rows(const vamp_config *c, const vamp_data *d, const long *rows, int n, float *out,
                          MPI_Comm comm)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    CHECK_H5(fapl);
    CHECK_H5(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    hid_t f = H5Fopen(c->data_path, H5F_ACC_RDONLY, fapl);
    CHECK_H5(f);
    H5Pclose(fapl);
    split_info si = open_split(f, c->data_path, "train", d->D, d->height, d->width, comm);
    hid_t fspace = H5Dget_space(si.ds);
    hsize_t one[2] = {1, d->D};
    hid_t mspace = H5Screate_simple(2, one, NULL);
    unsigned char *u = xmalloc(d->D);
    for (int i = 0; i < n; i++) { /* independent reads: a one-off of K rows at start-up */
        hsize_t start[2] = {(hsize_t)rows[i], 0};
        CHECK_H5(H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, one, NULL));
        float *o = out + (size_t)i * d->D;
        if (si.is_u8) {
            CHECK_H5(H5Dread(si.ds, H5T_NATIVE_UCHAR, mspace, fspace, H5P_DEFAULT, u));
            for (size_t j = 0; j < d->D; j++) o[j] = (float)u[j] / 255.0f;
        } else {
            CHECK_H5(H5Dread(si.ds, H5T_NATIVE_FLOAT, mspace, fspace, H5P_DEFAULT, o));
        }
    }
    free(u);
    H5Sclose(mspace);
    H5Sclose(fspace);
    H5Dclose(si.ds);
    CHECK_H5(H5Fclose(f));
}
