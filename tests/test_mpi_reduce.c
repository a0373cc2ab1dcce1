/* The exact reduction under mpiexec -n 1, 2, 4: 7 fixed chunks with a wide dynamic range, distributed over the
 * ranks as the plan distributes stripes (unevenly: 7 on 1 rank, 3 + 4 on 2, 1 + 2 + 2 + 2 on 4), must sum to the same bits as a serial fixed-point reference that does not know the rank count, within
 * 1e-6 of the double-precision sum; the sum to owned tensors (chunks moved to their owners, or a reduce-scatter)
 * gives the same bits and the allgather completes them; NaN poisons only its tensor and is reported to every rank;
 * the INT_MAX split path; column bounds (parts of a tensor that a chunk never writes, not read); ordered scalar sums;
 * the shared-memory window of the owner path against the path without it (VAMP_REDUCE_SHM=0), bit for bit, on real
 * and emulated nodes, and its fallback when the backing directory cannot hold it.
 * Prints "N passed, M failed" on rank 0 and exits non-zero on failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vamp/check.h"
#include "vamp/testhooks.h"
#include "vamp/plan.h"
#include "vamp/reduce.h"
#include "vamp/rng.h"

enum { NCHUNK = 7 }; /* no rank count of 2 or more divides it */
static int passed, failed, rank;

static void check(int cond, const char *what)
{
    if (cond) passed++;
    else {
        failed++;
        if (rank == 0) printf("FAIL %s\n", what);
    }
}

static float value(int chunk, size_t i)
{
    float n = rng_normal(3, RNG_SAMPLE, (uint32_t)chunk, i, 0);
    int e = (int)(rng_uniform(3, RNG_SAMPLE, (uint32_t)chunk, i, 1) * 30.0f) - 20; /* 2^-20 .. 2^10 */
    return ldexpf(n, e);
}

/* The rule of reduce.h, serially over all chunks. */
static void reference(const vamp_layout *l, float *const *chunks, float *out)
{
    for (int t = 0; t < l->n; t++) {
        float mx = 0;
        for (int c = 0; c < NCHUNK; c++)
            for (size_t i = 0; i < l->t[t].size; i++) mx = fmaxf(mx, fabsf(chunks[c][l->t[t].offset + i]));
        int e = 0;
        if (mx > 0) frexpf(mx, &e);
        if (mx > 0 && mx < 0x1p-126f) e = -125; /* subnormal maxima: the bound 2^-126 */
        int k = 51 - (3 + 1) - e; /* ceil(log2 8) + 1 headroom bits */
        for (size_t i = 0; i < l->t[t].size; i++) {
            int64_t s = 0; /* round half to even (rint in the default rounding mode) */
            for (int c = 0; c < NCHUNK; c++) s += (int64_t)rint(ldexp(chunks[c][l->t[t].offset + i], k));
            out[l->t[t].offset + i] = (float)ldexp((double)s, -k);
        }
    }
}

/* One consumed sum (path 0 by owner, 1 reduce-scatter, 2 allreduce) of copies of this rank's holey chunks: the bits
 * of ref (finite case), the first non-finite tensor reported (poisoned case), and the copies zero where a sum reads
 * them, untouched (NaN) in the columns it does not. */
static void consumed_sums(const vamp_layout *l, int p, const int *bounds, float *const *holey, const float *ref,
                          int path, int poison, int lo, int per)
{
    const size_t N = l->total;
    float *copy[NCHUNK], *out = malloc(N * sizeof(float));
    for (int c = 0; c < per; c++) {
        copy[c] = malloc(N * sizeof(float));
        memcpy(copy[c], holey[lo + c], N * sizeof(float));
        if (poison && lo + c == 0) copy[c][l->t[1].offset + 7] = NAN;
    }
    testhook_set_reduce_owner_max_chunks(path == 0 ? NCHUNK : 0);
    vamp_reducer r;
    reducer_init(&r, l, REDUCE_EXACT, MPI_COMM_WORLD);
    reducer_set_column_chunks(&r, p, bounds, NCHUNK);
    reducer_consume_chunks(&r);
    int bad = path == 2 ? reducer_sum(&r, out, copy, per, NCHUNK) : reducer_sum_owned(&r, out, copy, per, NCHUNK);
    const char *name = path == 2 ? "allreduce" : path == 0 ? "by owner" : "reduce-scatter";
    char what[160];
    snprintf(what, sizeof what, "consumed, %s%s: %s", name, poison ? ", a NaN" : "",
             poison ? "its tensor reported" : "all finite, the bits of the unconsumed sum");
    const size_t base = path == 2 ? 0 : (size_t)r.displs[rank], n = path == 2 ? N : (size_t)r.counts[rank];
    check(poison ? bad == 1 : bad == -1 && memcmp(out, ref + base, n * sizeof(float)) == 0, what);
    int ok = 1;
    for (int c = 0; c < per; c++)
        for (size_t i = 0; i < N; i++) ok &= isnan(holey[lo + c][i]) ? isnan(copy[c][i]) : copy[c][i] == 0.0f;
    snprintf(what, sizeof what, "consumed, %s%s: the chunks zero where read, untouched elsewhere", name,
             poison ? ", a NaN" : "");
    check(ok, what);
    reducer_free(&r);
    for (int c = 0; c < per; c++) free(copy[c]);
    free(out);
}

/* Column bounds (reducer_set_column_chunks): chunk g holds tensor "p" (40 x 30, as the VampPrior's pseudo-inputs)
 * only in columns [30 g / 7, 30 (g + 1) / 7) and zeros elsewhere (a -0.0 among them), tensor "q" everywhere. Summed
 * with the bounds, with NaN where a chunk holds nothing (not read, never zeroed), by every path: the bits of the
 * serial reference over the zero-filled chunks. reducer_prepare_chunk zeroes just what is read. Consumed
 * (reducer_consume_chunks): the same bits, and every chunk left zero where read, untouched elsewhere; a NaN in a
 * consumed chunk is reported and its tensor zeroed too. */
static void test_column_bounds(int size, int lo, int per)
{
    vamp_layout l;
    layout_init(&l);
    const int p = layout_add(&l, "p", 40, 30);
    layout_add(&l, "q", 50, 0);
    const size_t N = l.total;
    int bounds[NCHUNK + 1];
    for (int g = 0; g <= NCHUNK; g++) bounds[g] = pseudo_start(30, NCHUNK, g);
    float *zeroed[NCHUNK], *holey[NCHUNK];
    for (int c = 0; c < NCHUNK; c++) {
        zeroed[c] = calloc(N, sizeof(float));
        holey[c] = malloc(N * sizeof(float));
        for (size_t i = 0; i < N; i++) {
            const size_t col = (i - l.t[p].offset) % 30;
            const int held = i >= l.t[p].offset + l.t[p].size ||
                             (col >= (size_t)bounds[c] && col < (size_t)bounds[c + 1]);
            zeroed[c][i] = held ? value(c, i) : (i % 3 ? 0.0f : -0.0f);
            holey[c][i] = held ? zeroed[c][i] : NAN;
        }
    }
    float *ref = malloc(N * sizeof(float)), *out = malloc(N * sizeof(float));
    reference(&l, zeroed, ref);
    for (int mode = 0; mode < 3; mode++) {
        testhook_set_reduce_owner_max_chunks(mode == 0 ? NCHUNK : 0);
        vamp_reducer r;
        reducer_init(&r, &l, REDUCE_EXACT, MPI_COMM_WORLD);
        reducer_set_column_chunks(&r, p, bounds, NCHUNK);
        const char *path = mode == 2 ? "allreduce" : mode == 0 ? "by owner" : "reduce-scatter";
        char what[160];
        int bad = mode == 2 ? reducer_sum(&r, out, holey + lo, per, NCHUNK)
                            : reducer_sum_owned(&r, out, holey + lo, per, NCHUNK);
        snprintf(what, sizeof what, "column bounds, %s: all finite reported (the NaN columns are not read)", path);
        check(bad == -1, what);
        const size_t base = mode == 2 ? 0 : (size_t)r.displs[rank], n = mode == 2 ? N : (size_t)r.counts[rank];
        snprintf(what, sizeof what, "column bounds, %s: the bits of the zero-filled chunks' sum", path);
        check(memcmp(out, ref + base, n * sizeof(float)) == 0, what);
        if (mode == 0) {
            float *z = malloc(N * sizeof(float));
            for (size_t i = 0; i < N; i++) z[i] = NAN;
            reducer_prepare_chunk(&r, z, 2);
            int ok = 1;
            for (size_t i = 0; i < N; i++) ok &= isnan(holey[2][i]) ? isnan(z[i]) : z[i] == 0.0f;
            check(ok, "column bounds: reducer_prepare_chunk zeroes what a sum reads, nothing else");
            free(z);
        }
        reducer_free(&r);
    }
    for (int mode = 0; mode < 6; mode++) /* consumed: 3 paths, finite then with a NaN in tensor q of chunk 0 */
        consumed_sums(&l, p, bounds, holey, ref, mode % 3, mode >= 3, lo, per);
    testhook_set_reduce_owner_max_chunks(-1);
    for (int c = 0; c < NCHUNK; c++) {
        free(zeroed[c]);
        free(holey[c]);
    }
    free(ref);
    free(out);
}

/* The sum to owned tensors with the shared-memory window (or, off = 1, without: VAMP_REDUCE_SHM=0) of copies of this
 * rank's chunks src[lo .. lo + per) of nglobal; tensor p has column bounds. out: the owned tensors, copy: the copies
 * afterwards; *state: the reducer's shm_state after the sum. Returns the reported first non-finite tensor. */
static int owned_sum(const vamp_layout *l, float *const *src, int lo, int per, int nglobal, int p, const int *bounds,
                     int consume, int off, float *out, float **copy, int *state)
{
    const size_t N = l->total;
    for (int c = 0; c < per; c++) memcpy(copy[c], src[lo + c], N * sizeof(float));
    if (off) setenv("VAMP_REDUCE_SHM", "0", 1);
    else unsetenv("VAMP_REDUCE_SHM");
    vamp_reducer r;
    reducer_init(&r, l, REDUCE_EXACT, MPI_COMM_WORLD);
    reducer_set_column_chunks(&r, p, bounds, nglobal);
    if (consume) reducer_consume_chunks(&r);
    int bad = reducer_sum_owned(&r, out, copy, per, nglobal);
    if (!consume) bad = reducer_sum_owned(&r, out, copy, per, nglobal); /* again, through the same window */
    *state = r.shm_state;
    reducer_free(&r);
    unsetenv("VAMP_REDUCE_SHM");
    return bad;
}

/* The window against the path without it, bit for bit: the owned sums, the first non-finite tensor reported, and
 * the chunks afterwards (consumed: zero where read; else untouched), for chunks with column bounds and odd tensor
 * sizes, each tensor's maximum at an edge of what a chunk holds, finite or with a NaN or an Inf, 7 or 4 chunks, the
 * owner path forced or by default, on the real nodes and on emulated nodes of 1, 2 and 3 ranks (with 4 ranks: 2 + 2
 * and 3 + 1, the slices to the other node by MPI_Alltoallv). Then a backing directory that cannot be read: no
 * window, the same bits. */
static void test_shm_window(int size)
{
    vamp_layout l;
    layout_init(&l);
    layout_add(&l, "a", 1001, 0);
    const int p = layout_add(&l, "p", 13, 29);
    layout_add(&l, "b", 7, 0);
    layout_add(&l, "c", 33, 17);
    layout_add(&l, "d", 3, 0);
    const size_t N = l.total;
    float *src[NCHUNK], *copy_old[NCHUNK], *copy_new[NCHUNK];
    float *out_old = malloc(N * sizeof(float)), *out_new = malloc(N * sizeof(float));
    for (int c = 0; c < NCHUNK; c++) {
        src[c] = malloc(N * sizeof(float));
        copy_old[c] = malloc(N * sizeof(float));
        copy_new[c] = malloc(N * sizeof(float));
    }
    const int nglobals[2] = {NCHUNK, 4};
    int cases = 0, same = 1, used = 1;
    for (int ng = 0; ng < 2; ng++) {
        const int nglobal = nglobals[ng];
        int bounds[NCHUNK + 1], lo, hi, most = 0;
        for (int g = 0; g <= nglobal; g++) bounds[g] = pseudo_start(29, nglobal, g);
        plan_rank_stripes(nglobal, size, rank, &lo, &hi);
        for (int q = 0; q < size; q++) {
            int qlo, qhi;
            plan_rank_stripes(nglobal, size, q, &qlo, &qhi);
            most = qhi - qlo > most ? qhi - qlo : most;
        }
        for (int poison = 0; poison < 3; poison++) {
            for (int c = 0; c < nglobal; c++)
                for (size_t i = 0; i < N; i++) {
                    const size_t col = (i - l.t[p].offset) % 29;
                    const int in_p = i >= l.t[p].offset && i < l.t[p].offset + l.t[p].size;
                    src[c][i] = !in_p || (col >= (size_t)bounds[c] && col < (size_t)bounds[c + 1]) ? value(c, i) : NAN;
                }
            /* each tensor's largest value in the last chunk, alone in its binade, at the first or the last element
             * the chunk holds (7 or 4 chunks): a maximum that misses an edge changes the scale, so the bits */
            for (int c = 0; c < nglobal; c++)
                for (int t = 0; t < l.n; t++) {
                    const size_t cols = t == p ? 29 : l.t[t].size, rows = t == p ? 13 : 1;
                    const size_t first = t == p ? (size_t)bounds[c] : 0;
                    const size_t last = t == p ? (size_t)bounds[c + 1] - 1 : cols - 1;
                    const size_t at = c % 2 ? (rows - 1) * cols + last : first;
                    src[c][l.t[t].offset + at] = ldexpf(c % 2 ? -1.5f : 1.5f, 12 + c);
                }
            if (poison == 1) src[1][l.t[3].offset + 5] = NAN;
            if (poison == 2) src[nglobal - 1][l.t[4].offset + 2] = -INFINITY;
            for (int forced = 0; forced < 2; forced++)
                for (int rpn = 0; rpn < 4; rpn++)
                    for (int consume = 0; consume < 2; consume++) {
                        testhook_set_reduce_owner_max_chunks(forced ? NCHUNK : -1);
                        testhook_set_reduce_ranks_per_node(rpn);
                        int s_old, s_new;
                        int b_old = owned_sum(&l, src, lo, hi - lo, nglobal, p, bounds, consume, 1, out_old, copy_old,
                                              &s_old);
                        int b_new = owned_sum(&l, src, lo, hi - lo, nglobal, p, bounds, consume, 0, out_new, copy_new,
                                              &s_new);
                        vamp_reducer r; /* the owned range, for the comparison */
                        reducer_init(&r, &l, REDUCE_EXACT, MPI_COMM_WORLD);
                        int ok = b_old == b_new && b_old == (poison == 0 ? -1 : poison == 1 ? 3 : 4) &&
                                 memcmp(out_old, out_new, (size_t)r.counts[rank] * sizeof(float)) == 0;
                        for (int c = 0; c < hi - lo; c++) ok &= memcmp(copy_old[c], copy_new[c], N * sizeof(float)) == 0;
                        reducer_free(&r);
                        same &= ok;
                        /* the window is used wherever the owner path runs and some node holds two ranks */
                        const int owner = size > 1 && (forced || most <= 2), peers = rpn != 1;
                        used &= s_old == -1 && (owner && peers ? s_new == 1 : s_new <= 0);
                        cases++;
                    }
        }
    }
    testhook_set_reduce_ranks_per_node(0);
    MPI_Allreduce(MPI_IN_PLACE, &same, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &used, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    char what[200];
    snprintf(what, sizeof what, "shared window: the bits, the reported tensor and the chunks of the path without it "
             "(%d cases)", cases);
    check(same, what);
    check(used, "shared window: in use wherever the owner path runs with a peer on the node, never with "
                "VAMP_REDUCE_SHM=0");
    /* a backing directory that cannot hold the window: the path without it, the same bits */
    testhook_set_reduce_owner_max_chunks(NCHUNK);
    setenv("OMPI_MCA_osc_sm_backing_directory", "/nonexistent/vamp_mpi_test", 1);
    int lo, hi, bounds[NCHUNK + 1], s_old, s_new;
    for (int g = 0; g <= NCHUNK; g++) bounds[g] = pseudo_start(29, NCHUNK, g);
    plan_rank_stripes(NCHUNK, size, rank, &lo, &hi);
    int b_old = owned_sum(&l, src, lo, hi - lo, NCHUNK, p, bounds, 1, 1, out_old, copy_old, &s_old);
    int b_new = owned_sum(&l, src, lo, hi - lo, NCHUNK, p, bounds, 1, 0, out_new, copy_new, &s_new);
    unsetenv("OMPI_MCA_osc_sm_backing_directory");
    testhook_set_reduce_owner_max_chunks(-1);
    vamp_reducer r;
    reducer_init(&r, &l, REDUCE_EXACT, MPI_COMM_WORLD);
    int ok = b_old == b_new && memcmp(out_old, out_new, (size_t)r.counts[rank] * sizeof(float)) == 0 &&
             (size == 1 || s_new == -1);
    reducer_free(&r);
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    check(ok, "shared window: no room in the backing directory, no window, the same bits");
    for (int c = 0; c < NCHUNK; c++) {
        free(src[c]);
        free(copy_old[c]);
        free(copy_new[c]);
    }
    free(out_old);
    free(out_new);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    vamp_layout l;
    layout_init(&l);
    layout_add(&l, "a", 1000, 0);
    layout_add(&l, "b", 7, 0);
    layout_add(&l, "c", 300, 5);
    layout_add(&l, "zero", 10, 0);
    const size_t N = l.total;
    float *all[NCHUNK];
    for (int c = 0; c < NCHUNK; c++) {
        all[c] = calloc(N, sizeof(float));
        for (int t = 0; t < 3; t++)
            for (size_t i = 0; i < l.t[t].size; i++) all[c][l.t[t].offset + i] = value(c, l.t[t].offset + i);
    }
    float *ref = malloc(N * sizeof(float)), *out = malloc(N * sizeof(float));
    reference(&l, all, ref);
    int lo, hi;
    plan_rank_stripes(NCHUNK, size, rank, &lo, &hi);
    const int per = hi - lo; /* this rank's chunks: not as many as every other rank's */
    float *const *mine = all + lo;

    for (int split = 0; split < 2; split++) {
        testhook_set_reduce_max_count(split ? 100 : 0);
        vamp_reducer r;
        reducer_init(&r, &l, REDUCE_EXACT, MPI_COMM_WORLD);
        check(reducer_sum(&r, out, mine, per, NCHUNK) == -1, "exact: all finite reported");
        check(memcmp(out, ref, N * sizeof(float)) == 0,
              split ? "exact, split calls: bits equal the serial reference" : "exact: bits equal the serial reference");
        double worst = 0;
        for (size_t i = 0; i < N; i++) {
            double d = 0;
            for (int c = 0; c < NCHUNK; c++) d += all[c][i];
            worst = fmax(worst, fabs(out[i] - d) / fmax(fabs(d), 1e-30));
        }
        check(worst < 1e-6, "exact: within 1e-6 of the double sum");
        reducer_free(&r);
        reducer_init(&r, &l, REDUCE_FAST, MPI_COMM_WORLD);
        check(reducer_sum(&r, out, mine, per, NCHUNK) == -1, "fast: all finite reported");
        worst = 0;
        for (size_t i = 0; i < N; i++) {
            double d = 0, a = 0;
            for (int c = 0; c < NCHUNK; c++) {
                d += all[c][i];
                a += fabs(all[c][i]);
            }
            worst = fmax(worst, fabs(out[i] - d) / fmax(a, 1e-30));
        }
        check(worst < 1e-5, "fast: within 1e-5 of the double sum");
        reducer_free(&r);
    }
    testhook_set_reduce_max_count(0);
    for (size_t i = l.t[3].offset; i < l.t[3].offset + l.t[3].size; i++) check(ref[i] == 0.0f, "zero tensor stays zero");

    /* owned tensors: the partition covers every tensor once; both exact paths (chunks moved to their owners, or
     * grid sums reduce-scattered) give the allreduce's bits there, and the allgather puts every rank's tensors
     * together */
    for (int mode = 0; mode < 3; mode++) {
        const int fast = mode == 2;
        testhook_set_reduce_owner_max_chunks(mode == 0 ? NCHUNK : 0);
        const char *path = fast ? "fast" : mode == 0 ? "exact, by owner" : "exact, reduce-scatter";
        char what[160];
        vamp_reducer r;
        reducer_init(&r, &l, fast ? REDUCE_FAST : REDUCE_EXACT, MPI_COMM_WORLD);
        int *lo = malloc((size_t)size * sizeof(int)), *hi = malloc((size_t)size * sizeof(int));
        MPI_Allgather(&r.t_lo, 1, MPI_INT, lo, 1, MPI_INT, MPI_COMM_WORLD);
        MPI_Allgather(&r.t_hi, 1, MPI_INT, hi, 1, MPI_INT, MPI_COMM_WORLD);
        int cover = lo[0] == 0 && hi[size - 1] == l.n;
        for (int q = 0; q < size; q++) cover &= lo[q] <= hi[q] && (q == 0 || lo[q] == hi[q - 1]);
        snprintf(what, sizeof what, "%s: owned tensors contiguous, every tensor owned once", path);
        check(cover, what);
        float *full = malloc(N * sizeof(float)), *owned = malloc(N * sizeof(float));
        size_t o0 = 0, o1 = 0; /* the owned elements (none if no tensor is owned) */
        if (r.t_lo < r.t_hi) {
            o0 = l.t[r.t_lo].offset;
            o1 = r.t_hi < l.n ? l.t[r.t_hi].offset : N;
        }
        snprintf(what, sizeof what, "%s: the owned range is counts/displs", path);
        check((r.t_lo == r.t_hi || (size_t)r.displs[rank] == o0) && (size_t)r.counts[rank] == o1 - o0, what);
        float *sum = malloc((o1 - o0 + 1) * sizeof(float)); /* just the owned tensors */
        reducer_sum(&r, full, mine, per, NCHUNK);
        snprintf(what, sizeof what, "%s: all finite reported", path);
        check(reducer_sum_owned(&r, sum, mine, per, NCHUNK) == -1, what);
        /* a second call reuses the buffers of the first */
        snprintf(what, sizeof what, "%s: a second call, all finite reported", path);
        check(reducer_sum_owned(&r, sum, mine, per, NCHUNK) == -1, what);
        double worst = 0;
        for (size_t i = o0; i < o1; i++) worst = fmax(worst, fabs(sum[i - o0] - full[i]) / fmax(fabs(full[i]), 1e-30));
        snprintf(what, sizeof what, "%s: owned tensors %s the allreduce", path, fast ? "within 1e-5 of" : "have the bits of");
        if (!fast) check(memcmp(sum, full + o0, (o1 - o0) * sizeof(float)) == 0, what);
        else check(worst < 1e-5, what);
        for (size_t i = 0; i < N; i++) owned[i] = -1.0f;
        memcpy(owned + o0, sum, (o1 - o0) * sizeof(float));
        free(sum);
        reducer_allgather_owned(&r, owned);
        snprintf(what, sizeof what, "%s: allgather of the owned tensors = the allreduce", path);
        if (!fast) check(memcmp(owned, full, N * sizeof(float)) == 0, what);
        free(full);
        free(owned);
        free(lo);
        free(hi);
        reducer_free(&r);
    }

    all[NCHUNK - 1][l.t[1].offset + 3] = NAN; /* poison tensor b in the last chunk */
    vamp_reducer r;
    reducer_init(&r, &l, REDUCE_EXACT, MPI_COMM_WORLD);
    check(reducer_sum(&r, out, mine, per, NCHUNK) == 1, "a NaN's tensor is reported");
    int b_nan = 1, a_ok = 1;
    for (size_t i = 0; i < l.t[1].size; i++) b_nan &= isnan(out[l.t[1].offset + i]);
    for (size_t i = 0; i < l.t[0].size; i++) a_ok &= out[i] == ref[i];
    check(b_nan, "a NaN makes its tensor NaN");
    check(a_ok, "a NaN leaves the other tensors exact");
    for (int mode = 0; mode < 3; mode++) { /* every rank hears of it, whoever owns tensor b */
        const int fast = mode == 2;
        testhook_set_reduce_owner_max_chunks(mode == 0 ? NCHUNK : 0);
        vamp_reducer ro;
        reducer_init(&ro, &l, fast ? REDUCE_FAST : REDUCE_EXACT, MPI_COMM_WORLD);
        for (size_t i = 0; i < N; i++) out[i] = 0.0f;
        char what[160];
        snprintf(what, sizeof what, "%s, owned: a NaN's tensor is reported on every rank",
                 fast ? "fast" : mode == 0 ? "exact, by owner" : "exact, reduce-scatter");
        check(reducer_sum_owned(&ro, out, mine, per, NCHUNK) == 1, what);
        const size_t base = (size_t)ro.displs[rank]; /* out holds the owned tensors from here on */
        if (!fast && ro.t_lo <= 1 && 1 < ro.t_hi) { /* its owner (exact mode): all of tensor b is NaN */
            int nan_b = 1;
            for (size_t i = 0; i < l.t[1].size; i++) nan_b &= isnan(out[l.t[1].offset - base + i]);
            check(nan_b, "owned: a NaN makes its tensor NaN");
        }
        if (!fast && ro.t_lo <= 2 && 2 < ro.t_hi)
            check(memcmp(out + (l.t[2].offset - base), ref + l.t[2].offset, l.t[2].size * sizeof(float)) == 0,
                  "owned: a NaN leaves the other tensors exact");
        reducer_free(&ro);
    }
    testhook_set_reduce_owner_max_chunks(-1);
    reducer_free(&r);

    test_column_bounds(size, lo, per);
    test_shm_window(size);

    double local[NCHUNK * 2], sum[2], want[2] = {0, 0};
    for (int c = 0; c < per; c++)
        for (int v = 0; v < 2; v++) local[c * 2 + v] = 0.1 * (lo + c + 1) * (v ? 1e-9 : 1e9);
    for (int c = 0; c < NCHUNK; c++)
        for (int v = 0; v < 2; v++) want[v] += 0.1 * (c + 1) * (v ? 1e-9 : 1e9);
    reduce_chunk_scalars(sum, local, per, NCHUNK, 2, MPI_COMM_WORLD);
    check(sum[0] == want[0] && sum[1] == want[1], "ordered scalar sums: the same bits as the serial order");

    if (rank == 0) printf("%d passed, %d failed (%d ranks)\n", passed, failed, size);
    for (int c = 0; c < NCHUNK; c++) free(all[c]);
    free(ref);
    free(out);
    MPI_Finalize();
    return failed ? 1 : 0;
}
