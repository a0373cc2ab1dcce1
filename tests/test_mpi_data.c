/* data_load under mpiexec -n 1, 2, 4: rank 0 writes small dataset files (uint8 and float32, uneven stripes), every
 * rank must hold exactly its stripes (also when the rank count does not divide the stripe count) with exact values, the ranks together must cover each split once, static
 * binarisation must be keyed by the global row (so the bits do not depend on the rank count), limits must cut
 * the splits, and data_read_train_rows must return the requested rows on every rank.
 * Prints "N passed, M failed" on rank 0 and exits non-zero on failure. */
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vamp/check.h"
#include "vamp/config.h"
#include "vamp/data.h"
#include "vamp/rng.h"

enum { H = 4, W = 5, D = H * W };
static const char *const SPLITS[3] = {"train", "valid", "test"};
static const long ROWS[3] = {42, 13, 12}; /* 42 and 13 do not divide into 4 or 8 stripes evenly */
static int passed, failed, rank, size;

static void check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int cond, const char *fmt, ...)
{
    if (cond) {
        passed++;
        return;
    }
    failed++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL (rank %d of %d) ", rank, size);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* The file's uint8 value for (split, global row, pixel); the three splits differ. */
static unsigned char pixel(int split, long row, int col) { return (unsigned char)((row * 7 + col + 101 * split) % 256); }

/* In [0,1] as data.h promises: uint8 / 255. */
static float value(int split, long row, int col) { return (float)pixel(split, row, col) / 255.0f; }

/* Writes a dataset file with serial HDF5. mode 0: uint8 gray; 1: float32 gray (same values); 2: float32 binary. */
static void write_file(const char *path, int mode)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    CHECK_H5(f);
    for (int s = 0; s < 3; s++) {
        hsize_t dims[2] = {(hsize_t)ROWS[s], D};
        hid_t sp = H5Screate_simple(2, dims, NULL);
        CHECK_H5(sp);
        size_t n = (size_t)ROWS[s] * D;
        unsigned char *u = xmalloc(n);
        float *x = xmalloc(n * sizeof(float));
        for (long r = 0; r < ROWS[s]; r++)
            for (int c = 0; c < D; c++) {
                u[r * D + c] = pixel(s, r, c);
                x[r * D + c] = mode == 2 ? (float)(pixel(s, r, c) % 3 == 0) : value(s, r, c);
            }
        hid_t ds = H5Dcreate2(f, SPLITS[s], mode ? H5T_IEEE_F32LE : H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT,
                              H5P_DEFAULT);
        CHECK_H5(ds);
        CHECK_H5(H5Dwrite(ds, mode ? H5T_NATIVE_FLOAT : H5T_NATIVE_UCHAR, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                          mode ? (void *)x : (void *)u));
        CHECK_H5(H5Dclose(ds));
        CHECK_H5(H5Sclose(sp));
        free(u);
        free(x);
    }
    const char *strs[3][2] = {{"format", VAMP_DATASET_FORMAT}, {"kind", mode == 2 ? "binary" : "gray"},
                              {"source", "test_mpi_data"}};
    for (int i = 0; i < 3; i++) {
        hid_t t = H5Tcopy(H5T_C_S1);
        CHECK_H5(H5Tset_size(t, strlen(strs[i][1])));
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, strs[i][0], t, sp, H5P_DEFAULT, H5P_DEFAULT);
        CHECK_H5(a);
        CHECK_H5(H5Awrite(a, t, strs[i][1]));
        H5Aclose(a);
        H5Sclose(sp);
        H5Tclose(t);
    }
    const char *ints[3] = {"version", "height", "width"};
    const int ival[3] = {VAMP_DATASET_VERSION, H, W};
    for (int i = 0; i < 3; i++) {
        hid_t sp = H5Screate(H5S_SCALAR);
        hid_t a = H5Acreate2(f, ints[i], H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
        CHECK_H5(a);
        CHECK_H5(H5Awrite(a, H5T_NATIVE_INT, &ival[i]));
        H5Aclose(a);
        H5Sclose(sp);
    }
    CHECK_H5(H5Fclose(f));
}

/* Every rank's [row_lo, row_hi) on every rank, to check that they tile [0, n) in rank order. */
static void check_tiling(const vamp_split *sp, const char *what)
{
    long mine[2] = {sp->row_lo, sp->row_hi};
    long *all = xmalloc(2 * (size_t)size * sizeof(long));
    CHECK_MPI(MPI_Allgather(mine, 2, MPI_LONG, all, 2, MPI_LONG, MPI_COMM_WORLD));
    int ok = all[0] == 0 && all[2 * size - 1] == sp->n;
    for (int r = 0; r + 1 < size; r++) ok = ok && all[2 * r + 1] == all[2 * (r + 1)];
    check(ok, "%s: the ranks' row ranges do not tile [0, %ld)", what, sp->n);
    free(all);
}

/* The split's rows of every rank, gathered on every rank: (n, D). */
static float *gather_split(const vamp_split *sp)
{
    int cnt = (int)((sp->row_hi - sp->row_lo) * D);
    int *cnts = xmalloc((size_t)size * sizeof(int)), *displs = xmalloc((size_t)size * sizeof(int));
    CHECK_MPI(MPI_Allgather(&cnt, 1, MPI_INT, cnts, 1, MPI_INT, MPI_COMM_WORLD));
    for (int r = 0, off = 0; r < size; off += cnts[r], r++) displs[r] = off;
    float *all = xmalloc((size_t)sp->n * D * sizeof(float));
    CHECK_MPI(MPI_Allgatherv(sp->x, cnt, MPI_FLOAT, all, cnts, displs, MPI_FLOAT, MPI_COMM_WORLD));
    free(cnts);
    free(displs);
    return all;
}

/* Rows [0, n) of split s as data_load should give them: raw, or binarised with the static key by global row. */
static void expected_rows(float *out, int s, long n, int mode, int binarised)
{
    for (long r = 0; r < n; r++) {
        float *o = out + r * D;
        for (int c = 0; c < D; c++) o[c] = mode == 2 ? (float)(pixel(s, r, c) % 3 == 0) : value(s, r, c);
        if (binarised) binarize_row(o, o, D, VAMP_STATIC_BINARIZE_SEED, RNG_STATIC, 0, r);
    }
}

static long count_mismatch(const float *a, const float *b, size_t n)
{
    long bad = 0;
    for (size_t i = 0; i < n; i++) bad += a[i] != b[i];
    return bad;
}

/* One data_load and every check on it. limits[s] = data.*_limit. */
static void run_case(const char *path, int mode, int stripes, vamp_binarize bin, vamp_likelihood lik,
                     const long limits[3])
{
    char what[160];
    vamp_config c;
    config_defaults(&c);
    snprintf(c.data_path, sizeof c.data_path, "%s", path);
    c.stripes = stripes;
    c.binarize = bin;
    c.likelihood = lik;
    c.train_limit = limits[0];
    c.valid_limit = limits[1];
    c.test_limit = limits[2];
    vamp_data d;
    data_load(&d, &c, MPI_COMM_WORLD);
    snprintf(what, sizeof what, "mode %d, stripes %d, binarize %d", mode, stripes, (int)bin);
    check(d.D == D && d.height == H && d.width == W, "%s: D %zu, %dx%d", what, d.D, d.height, d.width);
    check(d.binary == (mode == 2), "%s: binary flag %d", what, d.binary);
    check(!strcmp(d.source, "test_mpi_data"), "%s: source \"%s\"", what, d.source);
    const vamp_split *sps[3] = {&d.train, &d.valid, &d.test};
    for (int s = 0; s < 3; s++) {
        const vamp_split *sp = sps[s];
        long n = limits[s] ? limits[s] : ROWS[s];
        int binarised = s == 0 ? bin == BIN_STATIC : bin != BIN_NONE;
        char w2[200];
        snprintf(w2, sizeof w2, "%s, /%s", what, SPLITS[s]);
        check(sp->n == n && sp->stripes == stripes, "%s: n %ld (want %ld), stripes %d", w2, sp->n, n, sp->stripes);
        /* rank r holds stripes [r*S/P, (r+1)*S/P): P need not divide S (5 stripes on 2 or 4 ranks) */
        int s_lo = rank * stripes / size, s_hi = (rank + 1) * stripes / size;
        check(sp->stripe_lo == s_lo && sp->stripe_hi == s_hi, "%s: stripes [%d, %d), want [%d, %d)", w2,
              sp->stripe_lo, sp->stripe_hi, s_lo, s_hi);
        /* stripe s = rows [s*n/S, (s+1)*n/S), written out here rather than through stripe_start */
        long lo = (long)s_lo * n / stripes, hi = (long)s_hi * n / stripes;
        check(sp->row_lo == lo && sp->row_hi == hi, "%s: rows [%ld, %ld), want [%ld, %ld)", w2, sp->row_lo,
              sp->row_hi, lo, hi);
        check_tiling(sp, w2);
        /* this rank's rows, value by value */
        float *want = xmalloc((size_t)n * D * sizeof(float));
        expected_rows(want, s, n, mode, binarised);
        long bad = count_mismatch(sp->x, want + (size_t)lo * D, (size_t)(hi - lo) * D);
        check(bad == 0, "%s: %ld of %ld local values differ", w2, bad, (hi - lo) * D);
        /* and all ranks' rows together are the whole split */
        float *all = gather_split(sp);
        bad = count_mismatch(all, want, (size_t)n * D);
        check(bad == 0, "%s: %ld values of the gathered split differ", w2, bad);
        if (binarised) {
            long ones = 0, notbin = 0;
            for (size_t i = 0; i < (size_t)n * D; i++) {
                ones += all[i] == 1.0f;
                notbin += all[i] != 0.0f && all[i] != 1.0f;
            }
            /* gray values average about 0.5: a broken binarisation (all 0, all 1) shows here */
            check(notbin == 0 && ones > n * D / 4 && ones < 3 * n * D / 4, "%s: %ld ones, %ld non-binary of %ld",
                  w2, ones, notbin, n * D);
            /* keyed by the global row: the same pixels keyed by the local row (what a rank-dependent
             * implementation would use) must give other bits on some row of a rank > 0 */
            if (rank > 0 && mode != 2) {
                float *raw = xmalloc(D * sizeof(float)), *loc = xmalloc(D * sizeof(float));
                long differ = 0;
                for (long r = lo; r < hi; r++) {
                    for (int c2 = 0; c2 < D; c2++) raw[c2] = value(s, r, c2);
                    binarize_row(loc, raw, D, VAMP_STATIC_BINARIZE_SEED, RNG_STATIC, 0, r - lo);
                    differ += count_mismatch(loc, sp->x + (size_t)(r - lo) * D, D) > 0;
                }
                check(differ > 0, "%s: static binarisation does not depend on the row", w2);
                free(raw);
                free(loc);
            }
        }
        free(all);
        free(want);
    }
    /* data_read_train_rows: any global rows, repeated and out of order, unbinarised, identical on every rank */
    long n0 = d.train.n;
    const long rows[6] = {n0 - 1, 0, 17, 17, 5, n0 / 2};
    float *got = xmalloc(6 * D * sizeof(float)), *want = xmalloc((size_t)ROWS[0] * D * sizeof(float));
    data_read_train_rows(&c, &d, rows, 6, got, MPI_COMM_WORLD);
    expected_rows(want, 0, ROWS[0], mode, 0);
    long bad = 0;
    for (int i = 0; i < 6; i++) bad += count_mismatch(got + i * D, want + rows[i] * D, D);
    check(bad == 0, "%s: data_read_train_rows: %ld values differ", what, bad);
    free(got);
    free(want);
    data_free(&d);
    check(d.train.x == NULL && d.valid.x == NULL && d.test.x == NULL, "%s: data_free leaves pointers", what);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);

    /* stripe_start by the formula of data.h */
    check(stripe_start(42, 4, 0) == 0 && stripe_start(42, 4, 1) == 10 && stripe_start(42, 4, 2) == 21 &&
              stripe_start(42, 4, 3) == 31 && stripe_start(42, 4, 4) == 42,
          "stripe_start(42, 4, .) is not 0 10 21 31 42");
    check(stripe_start(3000000000L, 4096, 4095) == 2999267578L, "stripe_start overflows for large n");

    char dir[256] = "";
    if (rank == 0 && !mkdtemp(strcpy(dir, "/tmp/test_mpi_data.XXXXXX"))) {
        perror("mkdtemp");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    CHECK_MPI(MPI_Bcast(dir, sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD));
    char paths[3][300];
    for (int m = 0; m < 3; m++) {
        snprintf(paths[m], sizeof paths[m], "%s/mode%d.h5", dir, m);
        if (rank == 0) write_file(paths[m], m);
    }
    CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));

    const long none[3] = {0, 0, 0}, cut[3] = {30, 9, 0};
    const int stripe_counts[3] = {4, 8, 5}; /* 5: uneven on 2 and 4 ranks (3 + 2; 2 + 1 + 1 + 1) */
    for (int k = 0; k < 3; k++) {
        const int stripes = stripe_counts[k];
        /* grey data as it is (logistic256 needs binarize = none) */
        run_case(paths[0], 0, stripes, BIN_NONE, LIK_LOGISTIC256, none);
        /* dynamic: valid/test binarised once by the static key, train left grey */
        run_case(paths[0], 0, stripes, BIN_DYNAMIC, LIK_BERNOULLI, none);
        /* static: train too */
        run_case(paths[0], 0, stripes, BIN_STATIC, LIK_BERNOULLI, none);
    }
    /* float32 gives the same floats as uint8 / 255; limits keep the first rows */
    run_case(paths[1], 1, 4, BIN_DYNAMIC, LIK_BERNOULLI, none);
    run_case(paths[1], 1, 4, BIN_NONE, LIK_LOGISTIC256, cut);
    /* binary float32 data with bernoulli and binarize = none is accepted as it is */
    run_case(paths[2], 2, 4, BIN_NONE, LIK_BERNOULLI, cut);

    CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
    if (rank == 0) {
        for (int m = 0; m < 3; m++) unlink(paths[m]);
        rmdir(dir);
    }
    int tot[2] = {passed, failed}, sum[2];
    CHECK_MPI(MPI_Allreduce(tot, sum, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD));
    if (rank == 0) printf("%d passed, %d failed (summed over %d ranks)\n", sum[0], sum[1], size);
    MPI_Finalize();
    return sum[1] != 0;
}
