/* Exact (fixed point in doubles) and fast (float) sums of per-chunk buffers over ranks; see reduce.h.
 * The element loops are small kernels that the compiler vectorises (this file is built with -O3). */
#include "vamp/reduce.h"
#include "vamp/plan.h"
#include "vamp/vector.h"
#include "vamp/check.h"
#include "vamp/testhooks.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

/* Elements per MPI call: below INT_MAX with room to spare (a test may lower it: testhooks.h). */
static size_t max_count(void)
{
    size_t n = testhook_reduce_max_count();
    return n ? n : INT_MAX / 2;
}

/* reducer_sum_owned moves chunk slices to their owners when no rank holds more than this many chunks (a test may
 * change it: testhooks.h). */
static int owner_max_chunks(void)
{
    int n = testhook_reduce_owner_max_chunks();
    return n >= 0 ? n : 2;
}

enum {
    BLOCK = 2048,                /* accumulator elements kept in L1 while every local chunk is added into them */
    INF_BITS = 0x7f800000,       /* |x| bits at or above this: Inf or NaN */
};

/* Free space the shared window leaves in its backing directory: Open MPI's own shared-memory transport, and any
 * other job on the node, use the same tmpfs. */
#define SHM_MARGIN_BYTES (64.0 * 1024 * 1024)

void reducer_init(vamp_reducer *r, const vamp_layout *layout, vamp_reduce mode, MPI_Comm comm)
{
    memset(r, 0, sizeof *r);
    r->comm = comm;
    r->mode = mode;
    r->layout = layout;
    CHECK_MPI(MPI_Comm_rank(comm, &r->rank));
    CHECK_MPI(MPI_Comm_size(comm, &r->size));
    if (layout->total > INT_MAX)
        vamp_fatal(__FILE__, __LINE__, "reducer_init", "more than INT_MAX parameters: not supported");
    /* ownership: rank q owns the tensors whose middle element lies in [q N / size, (q + 1) N / size) */
    r->counts = xmalloc((size_t)r->size * sizeof(int));
    r->displs = xmalloc((size_t)r->size * sizeof(int));
    r->t_owner = xmalloc((size_t)(layout->n > 0 ? layout->n : 1) * sizeof(int));
    int t = 0;
    for (int q = 0; q < r->size; q++) {
        const size_t end = layout->total * (size_t)(q + 1) / (size_t)r->size;
        const int first = t;
        while (t < layout->n && layout->t[t].offset + layout->t[t].size / 2 < end) t++;
        if (q == r->size - 1) t = layout->n;
        for (int u = first; u < t; u++) r->t_owner[u] = q;
        r->displs[q] = first < layout->n ? (int)layout->t[first].offset : (int)layout->total;
        r->counts[q] = (t < layout->n ? (int)layout->t[t].offset : (int)layout->total) - r->displs[q];
        if (q == r->rank) {
            r->t_lo = first;
            r->t_hi = t;
        }
    }
    int widest = 0;
    for (int q = 0; q < r->size; q++) widest = r->counts[q] > widest ? r->counts[q] : widest;
    r->owner_fits = (size_t)r->size * (size_t)widest <= INT_MAX / 2; /* receive displacements are ints */
    /* the buffers of one path or the other are allocated at its first use */
    r->nlocal_of = xmalloc((size_t)r->size * sizeof(int));
    r->sendcounts = xmalloc((size_t)r->size * sizeof(int));
    r->recvcounts = xmalloc((size_t)r->size * sizeof(int));
    r->recvdispls = xmalloc((size_t)r->size * sizeof(int));
    r->maxbits = xmalloc((size_t)layout->n * sizeof(int32_t));
    r->exps = xmalloc((size_t)layout->n * sizeof(int));
    const char *shm = getenv("VAMP_REDUCE_SHM");
    r->shm_state = shm && !strcmp(shm, "0") ? -1 : 0;
    r->node = MPI_COMM_NULL;
    r->win = MPI_WIN_NULL;
}

static void shm_window_free(vamp_reducer *r);

void reducer_free(vamp_reducer *r)
{
    if (r->col_bounds)
        for (int t = 0; t < r->layout->n; t++) free(r->col_bounds[t]);
    free(r->slice_clear);
    shm_window_free(r);
    if (r->node != MPI_COMM_NULL) CHECK_MPI(MPI_Comm_free(&r->node));
    void *owned[] = {r->acc,        r->acc_own,    r->fsum,       r->slices_in,   (void *)r->slices,
                     r->nlocal_of,  r->sendcounts, r->recvcounts, r->recvdispls,  r->maxbits,
                     r->exps,       r->counts,     r->displs,     r->slice_chunk, r->col_bounds,
                     r->t_owner,    r->node_of};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) free(owned[i]);
    memset(r, 0, sizeof *r);
}

/* Collective. In-place MPI_SUM of n elements of `type` (elem bytes each), at most max_count() per call. */
static void allreduce_sum_split(void *buf, size_t n, MPI_Datatype type, size_t elem, MPI_Comm comm)
{
    char *p = buf;
    const size_t most = max_count();
    for (size_t done = 0; done < n;) {
        size_t c = n - done < most ? n - done : most;
        CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p + done * elem, (int)c, type, MPI_SUM, comm));
        done += c;
    }
}

/* max |x| as IEEE bits: for non-negative floats the bit patterns order like the values, Inf above every finite
 * value and NaN above Inf, and an integer max vectorises where a float max with NaN rules does not. */
VECTOR_KERNEL static int32_t max_abs_bits(const float *x, size_t n, int32_t mx)
{
    for (size_t i = 0; i < n; i++) {
        int32_t b;
        memcpy(&b, x + i, sizeof b);
        b &= 0x7fffffff;
        mx = b > mx ? b : mx;
    }
    return mx;
}

/* acc += round(x * scale), half to even. |x * scale| < 2^51 (the caller's scale), so x * scale is exact in
 * double and adding 1.5 * 2^52 lands in [2^52, 2^53), where doubles are exactly the integers: the add rounds,
 * the subtraction is exact. Every partial sum stays below 2^51, so the accumulation is exact too. */
VECTOR_KERNEL static void add_rounded(double *restrict acc, const float *restrict x, size_t n, double scale)
{
    const double magic = 0x1.8p52;
    for (size_t i = 0; i < n; i++) acc[i] += ((double)x[i] * scale + magic) - magic;
}

/* add_rounded, and x = 0 once read (reducer_consume_chunks): the line is in L1 now, where a separate zeroing pass
 * before the next step would find it evicted. */
VECTOR_KERNEL static void add_rounded_clear(double *restrict acc, float *restrict x, size_t n, double scale)
{
    const double magic = 0x1.8p52;
    for (size_t i = 0; i < n; i++) {
        acc[i] += ((double)x[i] * scale + magic) - magic;
        x[i] = 0.0f;
    }
}

VECTOR_KERNEL static void add_floats(float *restrict out, const float *restrict x, size_t n)
{
    for (size_t i = 0; i < n; i++) out[i] += x[i];
}

VECTOR_KERNEL static void scale_to_float(float *restrict out, const double *restrict acc, size_t n, double inv)
{
    for (size_t i = 0; i < n; i++) out[i] = (float)(acc[i] * inv);
}

/* Index of the first tensor in [t0, t1) holding a NaN or Inf, or -1; element i of the layout is out[i - base]. */
static int first_nonfinite(const vamp_layout *l, const float *out, size_t base, int t0, int t1)
{
    for (int t = t0; t < t1; t++)
        if (max_abs_bits(out + (l->t[t].offset - base), l->t[t].size, 0) >= INF_BITS) return t;
    return -1;
}

/* Collective. The first non-finite tensor over all ranks, each rank giving its own first (or -1). */
static int agree_first_bad(const vamp_reducer *r, int mine)
{
    int first = mine < 0 ? INT_MAX : mine;
    if (r->size > 1) CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, r->comm));
    return first == INT_MAX ? -1 : first;
}

/* Fast mode: the float sum of the local chunks into out (every tensor), before any communication. */
static void local_float_sum(const vamp_layout *l, float *out, float *const *chunks, int nlocal)
{
    memset(out, 0, l->total * sizeof(float));
    for (int c = 0; c < nlocal; c++) add_floats(out, chunks[c], l->total);
}

static void check_counts(const char *who, int nlocal, int nglobal)
{
    if (nlocal < 0 || nglobal < nlocal || nglobal < 1)
        vamp_fatal(__FILE__, __LINE__, who, "need 0 <= nlocal <= nglobal, nglobal >= 1 (a caller bug)");
}

/* Exact mode: bits kept free above the largest rounded value so that nterms of them sum without overflow. */
static int headroom_bits(int nterms)
{
    int h = 1;
    while (h < 31 && (1L << h) < nterms) h++;
    return h + 1;
}

/* Exact mode: the grid scale 2^k of a tensor whose max |x| has IEEE bits maxbits: max < 2^e and |x| 2^k <
 * 2^(51 - h), so 2^(h-1) terms sum below 2^50 (every value and partial sum an integer held exactly in a double). */
static int grid_exponent(int32_t maxbits, int h)
{
    int biased = maxbits >> 23; /* exponent field: max < 2^(biased - 126); subnormals: < 2^-125 too */
    return 51 - h - ((biased ? biased : 1) - 126);
}

void reducer_set_column_chunks(vamp_reducer *r, int t, const int *bounds, int nglobal)
{
    const vamp_tensor *T = &r->layout->t[t];
    int ok = T->ndim == 2 && nglobal >= 1 && (r->col_nglobal == 0 || r->col_nglobal == nglobal) && bounds[0] == 0 &&
             (size_t)bounds[nglobal] == T->shape[1];
    for (int g = 0; ok && g < nglobal; g++) ok = bounds[g] <= bounds[g + 1];
    if (!ok) vamp_fatal(__FILE__, __LINE__, "reducer_set_column_chunks", "bounds must run from 0 to the columns of a "
                        "2-D tensor, non-decreasing, for one chunk count (a caller bug)");
    if (!r->col_bounds) r->col_bounds = xcalloc((size_t)r->layout->n * sizeof(int *));
    free(r->col_bounds[t]);
    r->col_bounds[t] = xmalloc(((size_t)nglobal + 1) * sizeof(int));
    memcpy(r->col_bounds[t], bounds, ((size_t)nglobal + 1) * sizeof(int));
    r->col_nglobal = nglobal;
}

/* What chunk g (global index) may hold of tensor t: columns [lo, hi) of each of `rows` rows of `cols` elements; a
 * tensor without column bounds is one row, all of it. */
typedef struct { size_t rows, cols, lo, hi; } span;

static span chunk_span(const vamp_reducer *r, int t, int g)
{
    const vamp_tensor *T = &r->layout->t[t];
    const int *b = r->col_bounds ? r->col_bounds[t] : NULL;
    if (!b) return (span){1, T->size, 0, T->size};
    return (span){T->shape[0], T->shape[1], (size_t)b[g], (size_t)b[g + 1]};
}

/* Tensor t of chunk g (x: its first element) zeroed where a sum reads it. */
static void span_zero(const vamp_reducer *r, float *x, int t, int g)
{
    const span s = chunk_span(r, t, g);
    for (size_t i = 0; i < s.rows; i++) memset(x + i * s.cols + s.lo, 0, (s.hi - s.lo) * sizeof(float));
}

void reducer_consume_chunks(vamp_reducer *r) { r->consume = r->mode == REDUCE_EXACT; }

void reducer_prepare_chunk(const vamp_reducer *r, float *chunk, int g)
{
    const vamp_layout *l = r->layout;
    if (r->consume) return; /* the last sum left it zero */
    if (!r->col_bounds || r->mode == REDUCE_FAST) {
        memset(chunk, 0, l->total * sizeof(float));
        return;
    }
    for (int t = 0; t < l->n; t++) span_zero(r, chunk + l->t[t].offset, t, g);
}

/* Exact mode, column bounds set: the sums must see the plan's chunks, or a chunk's columns would be wrong. */
static void check_plan_chunks(const vamp_reducer *r, int nlocal, int nglobal, int lo, int hi)
{
    if (r->col_bounds && (nglobal != r->col_nglobal || nlocal != hi - lo))
        vamp_fatal(__FILE__, __LINE__, "reducer_sum", "with column bounds the chunks must be the plan's "
                   "(a caller bug)");
}

/* r->slice_chunk and r->slice_clear hold at least n entries (grown at a first call). */
static void slice_chunks_fit(vamp_reducer *r, int n)
{
    if (r->slice_chunk_cap >= n) return;
    free(r->slice_chunk);
    free(r->slice_clear);
    r->slice_chunk = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    r->slice_clear = xmalloc((size_t)(n > 0 ? n : 1));
    r->slice_chunk_cap = n;
}

/* max |x| bits of tensor t over the slices (slices[k] + off: tensor t of global chunk g[k]), only what each holds. */
static int32_t slices_max(const vamp_reducer *r, const float *const *slices, const int *g, int ns, int t, size_t off)
{
    int32_t mx = 0;
    for (int k = 0; k < ns; k++) {
        const span s = chunk_span(r, t, g[k]);
        for (size_t i = 0; i < s.rows; i++) mx = max_abs_bits(slices[k] + off + i * s.cols + s.lo, s.hi - s.lo, mx);
    }
    return mx;
}

/* acc (len) += the grid values of columns [j0, j0 + len) of row `row` of tensor t in every slice that holds them,
 * in slice order (slices[k] + off: tensor t of global chunk g[k]). Skipped columns would add +0: no change. The
 * slices that r->slice_clear marks (this rank's own chunks, when it consumes them) are zeroed as they are read. */
static void slices_add_block(const vamp_reducer *r, double *acc, const float *const *slices, const int *g, int ns,
                             int t, size_t off, size_t row, size_t j0, size_t len, double scale)
{
    for (int k = 0; k < ns; k++) {
        const span s = chunk_span(r, t, g[k]);
        const size_t a = j0 > s.lo ? j0 : s.lo, b = j0 + len < s.hi ? j0 + len : s.hi;
        if (a >= b) continue;
        const float *x = slices[k] + off + row * s.cols + a;
        if (r->slice_clear[k]) /* the caller's own chunk: writable (only the const of the shared array is cast) */
            add_rounded_clear(acc + (a - j0), (float *)x, b - a, scale);
        else
            add_rounded(acc + (a - j0), x, b - a, scale);
    }
}

/* Tensor t of every slice that r->slice_clear marks, zeroed where a sum reads it: the consumed chunks of a tensor
 * that was not added (all zero, or not finite). */
static void slices_clear(const vamp_reducer *r, const float *const *slices, const int *g, int ns, int t, size_t off)
{
    for (int k = 0; k < ns; k++)
        if (r->slice_clear[k]) span_zero(r, (float *)slices[k] + off, t, g[k]);
}

/* Exact mode, steps 1-3: the global per-tensor maxima and scales, and the local chunks rounded to the grid and
 * summed into r->acc (every tensor). Returns the first tensor holding a NaN or Inf anywhere, or -1. */
static int round_local_chunks(vamp_reducer *r, float *const *chunks, int nlocal, int nglobal)
{
    const vamp_layout *l = r->layout;
    int lo, hi;
    plan_rank_stripes(nglobal, r->size, r->rank, &lo, &hi);
    check_plan_chunks(r, nlocal, nglobal, lo, hi);
    slice_chunks_fit(r, nlocal);
    for (int c = 0; c < nlocal; c++) {
        r->slice_chunk[c] = lo + c;
        r->slice_clear[c] = (unsigned char)r->consume;
    }
    const float *const *sl = (const float *const *)chunks;
    /* 1. per-tensor max |x| over the local chunks, then over all ranks (MPI_MAX on the bits is exact) */
    for (int t = 0; t < l->n; t++) r->maxbits[t] = slices_max(r, sl, r->slice_chunk, nlocal, t, l->t[t].offset);
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, r->maxbits, l->n, MPI_INT32_T, MPI_MAX, r->comm));
    /* 2. scale 2^k per tensor */
    const int h = headroom_bits(nglobal);
    if (!r->acc) r->acc = xmalloc(l->total * sizeof(double));
    int bad = -1;
    for (int t = 0; t < l->n; t++) {
        r->exps[t] = grid_exponent(r->maxbits[t], h);
        if (bad < 0 && r->maxbits[t] >= INF_BITS) bad = t;
    }
    /* 3. fixed-point sum of the local chunks, one L1-sized block of the accumulator at a time */
    for (int t = 0; t < l->n; t++) {
        const size_t off = l->t[t].offset, n = l->t[t].size;
        double *a = r->acc + off;
        memset(a, 0, n * sizeof(double));
        if (r->maxbits[t] == 0 || r->maxbits[t] >= INF_BITS) { /* all zero, or poisoned */
            slices_clear(r, sl, r->slice_chunk, nlocal, t, off);
            continue;
        }
        const double scale = ldexp(1.0, r->exps[t]);
        const span s = chunk_span(r, t, 0);
        for (size_t row = 0; row < s.rows; row++)
            for (size_t j0 = 0; j0 < s.cols; j0 += BLOCK) {
                const size_t len = s.cols - j0 < BLOCK ? s.cols - j0 : BLOCK;
                slices_add_block(r, a + row * s.cols + j0, sl, r->slice_chunk, nlocal, t, off, row, j0, len, scale);
            }
    }
    return bad;
}

/* Exact mode, step 5: tensor t as floats at o from its summed grid values acc (both at the tensor's first
 * element). */
static void grid_to_float(const vamp_reducer *r, float *o, const double *acc, int t)
{
    const vamp_tensor *T = &r->layout->t[t];
    if (r->maxbits[t] >= INF_BITS)
        for (size_t i = 0; i < T->size; i++) o[i] = NAN;
    else
        scale_to_float(o, acc, T->size, ldexp(1.0, -r->exps[t]));
}

int reducer_sum(vamp_reducer *r, float *out, float *const *chunks, int nlocal, int nglobal)
{
    const vamp_layout *l = r->layout;
    check_counts("reducer_sum", nlocal, nglobal);
    if (r->mode == REDUCE_FAST) {
        local_float_sum(l, out, chunks, nlocal);
        allreduce_sum_split(out, l->total, MPI_FLOAT, sizeof(float), r->comm);
        return first_nonfinite(l, out, 0, 0, l->n);
    }
    int bad = round_local_chunks(r, chunks, nlocal, nglobal);
    /* 4. allreduce of integers held in doubles: every partial sum is exact, so any order gives the same bits */
    allreduce_sum_split(r->acc, l->total, MPI_DOUBLE, sizeof(double), r->comm);
    for (int t = 0; t < l->n; t++) grid_to_float(r, out + l->t[t].offset, r->acc + l->t[t].offset, t);
    return bad;
}

/* A consumed chunk g's tensors owned by other ranks, once sent to them by MPI_Alltoallv: zeroed where a sum reads
 * them. (shm: those of this node's ranks, moved into the window, are zero already.) */
static void zero_sent(const vamp_reducer *r, float *chunk, int g, int shm)
{
    for (int t = 0; t < r->layout->n; t++) {
        const int q = r->t_owner[t];
        if (q != r->rank && !(shm && r->node_of[q] >= 0)) span_zero(r, chunk + r->layout->t[t].offset, t, g);
    }
}

/* Exact mode, the owner's rounding of its tensor t from the ns slices of r->slices (r->slice_chunk: their global
 * chunks) into o (the tensor's place in out), in L1-sized blocks of one row: no full-size accumulator. Returns 1
 * if the tensor holds a NaN or Inf (then all NaN). */
static int owner_round_tensor(const vamp_reducer *r, float *o, int t, size_t off, int ns, int h)
{
    const int32_t mx = slices_max(r, r->slices, r->slice_chunk, ns, t, off);
    const span s = chunk_span(r, t, 0);
    if (mx >= INF_BITS || mx == 0) /* not added: consumed chunks are zeroed here */
        slices_clear(r, r->slices, r->slice_chunk, ns, t, off);
    if (mx >= INF_BITS) {
        for (size_t i = 0; i < s.rows * s.cols; i++) o[i] = NAN;
        return 1;
    }
    const int e = grid_exponent(mx, h);
    const double scale = ldexp(1.0, e), inv = ldexp(1.0, -e);
    double block[BLOCK];
    for (size_t row = 0; row < s.rows; row++)
        for (size_t j0 = 0; j0 < s.cols; j0 += BLOCK) {
            const size_t len = s.cols - j0 < BLOCK ? s.cols - j0 : BLOCK;
            memset(block, 0, len * sizeof(double));
            if (mx != 0) slices_add_block(r, block, r->slices, r->slice_chunk, ns, t, off, row, j0, len, scale);
            scale_to_float(o + row * s.cols + j0, block, len, inv);
        }
    return 0;
}

/* ---- The owner path's node-local shared-memory window ----
 * Rank p's segment holds, for each of its chunks, one record: its node peers' owned elements of that chunk, peer by
 * peer in rank order (p's own left out: its owner reads them in place). Each rank fills its own segment, then every
 * owner reads its elements of every peer's records where they lie: one copy instead of MPI_Alltoallv's two (in and
 * out of Open MPI's shared-memory queues) and no receive buffer. Ranks on other nodes still get their slices by
 * MPI_Alltoallv. */

/* Where Open MPI 4.1's osc/sm component puts a window's backing file: its MCA parameter osc_sm_backing_directory,
 * /dev/shm by default on Linux (ompi_info --param osc sm --level 9). */
static const char *shm_backing_dir(void)
{
    const char *d = getenv("OMPI_MCA_osc_sm_backing_directory");
    return d && *d ? d : "/dev/shm";
}

/* Collective. r->node: the ranks of comm that share this node's memory (or an emulated node: testhooks.h), and
 * r->node_of, every rank's place in it. */
static void shm_split_node(vamp_reducer *r)
{
    MPI_Comm shared;
    CHECK_MPI(MPI_Comm_split_type(r->comm, MPI_COMM_TYPE_SHARED, r->rank, MPI_INFO_NULL, &shared));
    const int k = testhook_reduce_ranks_per_node();
    if (k > 0) {
        int srank;
        CHECK_MPI(MPI_Comm_rank(shared, &srank));
        CHECK_MPI(MPI_Comm_split(shared, srank / k, srank, &r->node));
        CHECK_MPI(MPI_Comm_free(&shared));
    } else
        r->node = shared;
    CHECK_MPI(MPI_Comm_size(r->node, &r->node_size));
    int *ranks = xmalloc((size_t)r->node_size * sizeof(int)); /* comm rank of each node rank */
    CHECK_MPI(MPI_Allgather(&r->rank, 1, MPI_INT, ranks, 1, MPI_INT, r->node));
    r->node_of = xmalloc((size_t)r->size * sizeof(int));
    for (int q = 0; q < r->size; q++) r->node_of[q] = -1;
    for (int j = 0; j < r->node_size; j++) r->node_of[ranks[j]] = j;
    free(ranks);
}

/* Where rank q's owned elements start in a record of node rank p's segment (p, q on this node, q != p); with
 * q = size, the record's length. */
static size_t record_offset(const vamp_reducer *r, int p, int q)
{
    size_t o = 0;
    for (int x = 0; x < q; x++)
        if (x != p && r->node_of[x] >= 0) o += (size_t)r->counts[x];
    return o;
}

/* Not collective. 1 if the backing directory has room for this node's segments (bytes) and the margin; else 0,
 * with the reason in why. */
static int shm_room(double bytes, char *why, size_t whylen)
{
    const char *dir = shm_backing_dir();
    struct statvfs st;
    if (statvfs(dir, &st) != 0) {
        snprintf(why, whylen, "cannot stat %s, Open MPI's backing directory for shared windows (%s)", dir,
                 strerror(errno));
        return 0;
    }
    const double avail = (double)st.f_bavail * (double)st.f_frsize, MiB = 1024.0 * 1024.0;
    if (avail >= bytes + SHM_MARGIN_BYTES) return 1;
    snprintf(why, whylen, "%s has %.0f MiB free, the window needs %.0f MiB and %.0f MiB to spare", dir, avail / MiB,
             bytes / MiB, SHM_MARGIN_BYTES / MiB);
    return 0;
}

static void shm_window_free(vamp_reducer *r)
{
    if (r->win != MPI_WIN_NULL) {
        CHECK_MPI(MPI_Win_unlock_all(r->win));
        CHECK_MPI(MPI_Win_free(&r->win));
    }
    free(r->seg);
    r->seg = NULL;
    r->seg_chunks = 0;
}

/* Collective. The window with room for `chunks` chunks per rank: made at the first call (again if a later call has
 * more chunks) where every node's backing directory has room for its segments and some node holds two ranks or
 * more, else never (rank 0 says why, once, if for lack of room). Returns 1 if the window is in use. */
static int shm_ready(vamp_reducer *r, int chunks)
{
    if (r->shm_state < 0) return 0;
    if (r->shm_state > 0 && r->seg_chunks >= chunks) return 1;
    if (r->node == MPI_COMM_NULL) shm_split_node(r);
    shm_window_free(r);
    double node_bytes = 0; /* this node's segments: every rank knows every node peer's record length */
    for (int p = 0; p < r->size; p++)
        if (r->node_of[p] >= 0) node_bytes += (double)chunks * (double)record_offset(r, p, r->size) * sizeof(float);
    char why[384] = "";
    int verdict[2] = {shm_room(node_bytes, why, sizeof why), -(r->node_size > 1)}; /* MIN: all have room, any peer */
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, verdict, 2, MPI_INT, MPI_MIN, r->comm));
    if (!verdict[0] || !verdict[1]) {
        if (!verdict[0])
            log0(r->comm, "reduce: no shared-memory window, chunks go by MPI_Alltoallv: %s\n",
                 why[0] ? why : "another node's backing directory lacks the room");
        r->shm_state = -1;
        return 0;
    }
    MPI_Info info;
    CHECK_MPI(MPI_Info_create(&info));
    CHECK_MPI(MPI_Info_set(info, "alloc_shared_noncontig", "true")); /* each segment on its owner's pages */
    const size_t mine = (size_t)chunks * record_offset(r, r->rank, r->size);
    float *base;
    CHECK_MPI(MPI_Win_allocate_shared((MPI_Aint)(mine * sizeof(float)), (int)sizeof(float), info, r->node, &base,
                                      &r->win));
    CHECK_MPI(MPI_Info_free(&info));
    /* one passive epoch for the window's life: ranks then order their loads and stores by MPI_Win_sync and
     * the node's barrier (the unified memory model of shared windows) */
    CHECK_MPI(MPI_Win_lock_all(MPI_MODE_NOCHECK, r->win));
    r->seg = xmalloc((size_t)r->node_size * sizeof(float *));
    for (int j = 0; j < r->node_size; j++) {
        MPI_Aint bytes;
        int unit;
        CHECK_MPI(MPI_Win_shared_query(r->win, j, &bytes, &unit, &r->seg[j]));
    }
    r->seg_chunks = chunks;
    r->shm_state = 1;
    return 1;
}

/* x = y, and y = 0 once read (a consumed chunk). */
VECTOR_KERNEL static void move_floats(float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        x[i] = y[i];
        y[i] = 0.0f;
    }
}

/* Not collective. This rank's chunk (global index g) into record c of its segment: its node peers' tensors, only
 * what the chunk holds (chunk_span), moved (zeroed behind) when the sums consume their chunks. */
static void shm_put_chunk(const vamp_reducer *r, float *chunk, int c, int g)
{
    const vamp_layout *l = r->layout;
    float *rec = r->seg[r->node_of[r->rank]] + (size_t)c * record_offset(r, r->rank, r->size);
    for (int t = 0; t < l->n; t++) {
        const int q = r->t_owner[t];
        if (q == r->rank || r->node_of[q] < 0) continue;
        float *dst = rec + record_offset(r, r->rank, q) + (l->t[t].offset - (size_t)r->displs[q]);
        float *src = chunk + l->t[t].offset;
        const span s = chunk_span(r, t, g);
        for (size_t i = 0; i < s.rows; i++) {
            const size_t at = i * s.cols + s.lo, len = s.hi - s.lo;
            if (r->consume)
                move_floats(dst + at, src + at, len);
            else
                memcpy(dst + at, src + at, len * sizeof(float));
        }
    }
}

/* The slice of this rank's tensors in record c of node peer q's segment (q's chunk c): its element `base` (this
 * rank's first owned element), as sum_by_owner indexes slices. */
static const float *shm_slice(const vamp_reducer *r, int q, int c)
{
    return r->seg[r->node_of[q]] + (size_t)c * record_offset(r, q, r->size) + record_offset(r, q, r->rank);
}

/* Exact mode, the owner's way: every local chunk's slice of another rank's tensors goes to that rank, and each rank
 * rounds all chunks of its own tensors to the grid in L1-sized blocks and straight back to floats. With at most two
 * chunks per rank this moves no more bytes than a reduce-scatter of the double sums and never writes a full-size
 * accumulator, so it is the cheaper path where memory bandwidth is what limits (ranks sharing a node). The slices
 * move through the shared-memory window to ranks of this node (shm_ready) and by one MPI_Alltoallv of floats per
 * local chunk index to the others. The owner sees every chunk of its tensors, so its maxima, scales and integer
 * sums, and so the bits, are those of the other path whichever way they came. nlocal_max: the most chunks any rank
 * holds (r->nlocal_of: every rank's count). */
static int sum_by_owner(vamp_reducer *r, float *out, float *const *chunks, int nlocal, int nlocal_max, int nglobal)
{
    const vamp_layout *l = r->layout;
    const int P = r->size, me = r->rank;
    const size_t own = (size_t)r->counts[me], base = (size_t)r->displs[me];
    int lo, hi;
    plan_rank_stripes(nglobal, P, me, &lo, &hi);
    check_plan_chunks(r, nlocal, nglobal, lo, hi);
    const int shm = P > 1 && shm_ready(r, nlocal_max);
    const int a2a = P > 1 && (!shm || r->node_size < P); /* some rank has a peer on another node: the same on all */
    int nremote = 0; /* the ranks whose slices come by MPI_Alltoallv, received at their index among them x own */
    for (int q = 0; q < P; q++) {
        const int remote = q != me && !(shm && r->node_of[q] >= 0);
        r->recvdispls[q] = remote ? nremote++ * (int)own : 0;
    }
    if (r->slices_cap < nlocal_max) { /* grown at the first call (and if a later one has more chunks) */
        free(r->slices);
        r->slices = xmalloc((size_t)nlocal_max * (size_t)P * sizeof(float *));
        r->slices_cap = nlocal_max;
    }
    const size_t in_len = a2a ? (size_t)nlocal_max * (size_t)nremote * own : 0;
    if (!r->slices_in || r->slices_in_len < in_len) {
        free(r->slices_in);
        r->slices_in = xmalloc((in_len + 1) * sizeof(float));
        r->slices_in_len = in_len;
    }
    slice_chunks_fit(r, nlocal_max * P);
    if (shm) {
        /* the previous sum ended in agree_first_bad, an allreduce over comm that every rank enters only after its
         * last read of the window: nobody reads a record that is overwritten here */
        CHECK_MPI(MPI_Win_sync(r->win));
        for (int c = 0; c < nlocal; c++) shm_put_chunk(r, chunks[c], c, lo + c);
    }
    /* the slices of this rank's tensors: its own chunks in place, its node peers' in the window, the others'
     * received; and their global chunks (the plan's numbering: only column bounds need it) */
    int ns = 0;
    for (int c = 0; c < nlocal_max; c++) {
        if (c < nlocal) {
            r->slice_chunk[ns] = lo + c;
            r->slice_clear[ns] = (unsigned char)r->consume;
            r->slices[ns++] = chunks[c] + base;
        }
        float *in = r->slices_in + (size_t)c * (size_t)nremote * own;
        for (int q = 0; q < P; q++) {
            const int local = shm && r->node_of[q] >= 0;
            r->sendcounts[q] = c < nlocal && q != me && !local ? r->counts[q] : 0;
            r->recvcounts[q] = c < r->nlocal_of[q] && q != me && !local ? (int)own : 0;
            if (q == me || c >= r->nlocal_of[q] || own == 0) continue;
            int qlo, qhi;
            plan_rank_stripes(nglobal, P, q, &qlo, &qhi);
            r->slice_chunk[ns] = qlo + c;
            r->slice_clear[ns] = 0; /* another rank's chunk */
            r->slices[ns++] = local ? shm_slice(r, q, c) : in + r->recvdispls[q];
        }
        if (!a2a) continue;
        const float *send = c < nlocal ? chunks[c] : out; /* out: any distinct buffer, nothing is sent */
        CHECK_MPI(MPI_Alltoallv(send, r->sendcounts, r->displs, MPI_FLOAT, in, r->recvcounts, r->recvdispls,
                                MPI_FLOAT, r->comm));
        if (c < nlocal && r->consume) zero_sent(r, chunks[c], lo + c, shm);
    }
    if (shm) { /* every record written before anyone reads */
        CHECK_MPI(MPI_Win_sync(r->win));
        CHECK_MPI(MPI_Barrier(r->node));
        CHECK_MPI(MPI_Win_sync(r->win));
    }
    const int h = headroom_bits(nglobal);
    int bad = -1;
    for (int t = r->t_lo; t < r->t_hi; t++) {
        const size_t off = l->t[t].offset - base;
        if (owner_round_tensor(r, out + off, t, off, ns, h) && bad < 0) bad = t;
    }
    return agree_first_bad(r, bad);
}

int reducer_sum_owned(vamp_reducer *r, float *out, float *const *chunks, int nlocal, int nglobal)
{
    const vamp_layout *l = r->layout;
    check_counts("reducer_sum_owned", nlocal, nglobal);
    const size_t base = (size_t)r->displs[r->rank];
    if (r->mode == REDUCE_FAST) {
        if (r->size == 1)
            local_float_sum(l, out, chunks, nlocal);
        else {
            if (!r->fsum) r->fsum = xmalloc(l->total * sizeof(float));
            local_float_sum(l, r->fsum, chunks, nlocal);
            CHECK_MPI(MPI_Reduce_scatter(r->fsum, out, r->counts, MPI_FLOAT, MPI_SUM, r->comm));
        }
        return agree_first_bad(r, first_nonfinite(l, out, base, r->t_lo, r->t_hi));
    }
    int nlocal_max = nlocal;
    if (r->size > 1) {
        CHECK_MPI(MPI_Allgather(&nlocal, 1, MPI_INT, r->nlocal_of, 1, MPI_INT, r->comm));
        for (int q = 0; q < r->size; q++) nlocal_max = r->nlocal_of[q] > nlocal_max ? r->nlocal_of[q] : nlocal_max;
    }
    if (r->size == 1 || (nlocal_max <= owner_max_chunks() && r->owner_fits))
        return sum_by_owner(r, out, chunks, nlocal, nlocal_max, nglobal);
    int bad = round_local_chunks(r, chunks, nlocal, nglobal);
    /* 4. reduce-scatter of the grid integers: exact in any order, as the allreduce */
    if (!r->acc_own) r->acc_own = xmalloc(((size_t)r->counts[r->rank] + 1) * sizeof(double));
    CHECK_MPI(MPI_Reduce_scatter(r->acc, r->acc_own, r->counts, MPI_DOUBLE, MPI_SUM, r->comm));
    for (int t = r->t_lo; t < r->t_hi; t++)
        grid_to_float(r, out + (l->t[t].offset - base), r->acc_own + (l->t[t].offset - base), t);
    return bad;
}

void reducer_allgather_owned(vamp_reducer *r, float *buf)
{
    CHECK_MPI(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, r->counts, r->displs, MPI_FLOAT, r->comm));
}

/* Gathered values up to this many doubles, and the counts of up to this many ranks, stay on the stack: the
 * training step allocates nothing (beyond them, a one-off allocation per call is the lesser evil). */
enum { SCALARS_ON_STACK = 1024, RANKS_ON_STACK = 256 };

void reduce_chunk_scalars(double *out, const double *local, int nlocal, int nglobal, int nvals, MPI_Comm comm)
{
    int size, rank;
    CHECK_MPI(MPI_Comm_size(comm, &size));
    CHECK_MPI(MPI_Comm_rank(comm, &rank));
    int lo, hi;
    plan_rank_stripes(nglobal, size, rank, &lo, &hi);
    const size_t total = (size_t)nglobal * (size_t)(nvals > 0 ? nvals : 0);
    if (nglobal < size || nvals < 0 || nlocal != hi - lo || total > INT_MAX)
        vamp_fatal(__FILE__, __LINE__, "reduce_chunk_scalars", "need the plan's nlocal of nglobal >= size chunks "
                   "and nglobal * nvals <= INT_MAX (a caller bug)");
    int cstack[2 * RANKS_ON_STACK];
    int *counts = size <= RANKS_ON_STACK ? cstack : xmalloc(2 * (size_t)size * sizeof(int)), *displs = counts + size;
    for (int q = 0; q < size; q++) { /* rank q's chunks, in global chunk order: rank 0's first */
        int qlo, qhi;
        plan_rank_stripes(nglobal, size, q, &qlo, &qhi);
        counts[q] = (qhi - qlo) * nvals;
        displs[q] = qlo * nvals;
    }
    double stack[SCALARS_ON_STACK];
    double *all = total <= SCALARS_ON_STACK ? stack : xmalloc((total ? total : 1) * sizeof(double)); /* (nglobal, nvals) */
    CHECK_MPI(MPI_Allgatherv(local, counts[rank], MPI_DOUBLE, all, counts, displs, MPI_DOUBLE, comm));
    for (int v = 0; v < nvals; v++) out[v] = 0.0;
    for (size_t c = 0; c < (size_t)nglobal; c++)
        for (int v = 0; v < nvals; v++) out[v] += all[c * (size_t)nvals + v];
    if (all != stack) free(all);
    if (counts != cstack) free(counts);
}
