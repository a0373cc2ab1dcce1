/* Exact (64-bit fixed point) and fast (float) sums of per-chunk buffers over ranks; see reduce.h.
 * A tensor holding a NaN or Inf in any chunk comes out as NaN everywhere (its scale would be meaningless). */
#include "vamp/reduce.h"
#include "vamp/check.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t max_count = INT_MAX / 2; /* elements per MPI call */

void reducer_set_max_count(size_t n) { max_count = n ? n : INT_MAX / 2; }

void reducer_init(vamp_reducer *r, const vamp_layout *layout, vamp_reduce mode, MPI_Comm comm)
{
    r->comm = comm;
    r->mode = mode;
    r->layout = layout;
    r->acc = mode == REDUCE_EXACT ? xmalloc(layout->total * sizeof(int64_t)) : NULL;
    r->maxabs = xmalloc((size_t)layout->n * sizeof(float));
    r->exps = xmalloc((size_t)layout->n * sizeof(int));
}

void reducer_free(vamp_reducer *r)
{
    free(r->acc);
    free(r->maxabs);
    free(r->exps);
    memset(r, 0, sizeof *r);
}

static void allreduce_split(void *buf, size_t n, MPI_Datatype type, size_t elem, MPI_Comm comm)
{
    char *p = buf;
    for (size_t done = 0; done < n;) {
        size_t c = n - done < max_count ? n - done : max_count;
        CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p + done * elem, (int)c, type, MPI_SUM, comm));
        done += c;
    }
}

void reducer_sum(vamp_reducer *r, float *out, float *const *chunks, int nlocal, int nglobal)
{
    const vamp_layout *l = r->layout;
    const size_t N = l->total;
    if (r->mode == REDUCE_FAST) {
        if (nlocal == 0) memset(out, 0, N * sizeof(float));
        else memcpy(out, chunks[0], N * sizeof(float));
        for (int c = 1; c < nlocal; c++)
            for (size_t i = 0; i < N; i++) out[i] += chunks[c][i];
        allreduce_split(out, N, MPI_FLOAT, sizeof(float), r->comm);
        return;
    }
    /* 1. per-tensor max |x| over the local chunks, then over all ranks (MPI_MAX is exact) */
    for (int t = 0; t < l->n; t++) {
        float mx = 0.0f;
        for (int c = 0; c < nlocal; c++) {
            const float *x = chunks[c] + l->t[t].offset;
            for (size_t i = 0; i < l->t[t].size; i++) {
                float a = fabsf(x[i]);
                if (!(a <= mx)) mx = isnan(a) ? INFINITY : a; /* NaN and Inf poison the tensor */
            }
        }
        r->maxabs[t] = mx;
    }
    CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, r->maxabs, l->n, MPI_FLOAT, MPI_MAX, r->comm));
    /* 2. scale 2^k with |x| 2^k < 2^(62 - h): the sum of nglobal chunks cannot overflow int64 */
    int h = 1;
    while ((1L << h) < nglobal) h++;
    h += 1;
    for (int t = 0; t < l->n; t++) {
        int e = 0;
        if (r->maxabs[t] > 0.0f && isfinite(r->maxabs[t])) frexpf(r->maxabs[t], &e);
        r->exps[t] = 62 - h - e;
    }
    /* 3. fixed-point sum of the local chunks */
    memset(r->acc, 0, N * sizeof(int64_t));
    for (int t = 0; t < l->n; t++) {
        if (!isfinite(r->maxabs[t])) continue;
        const double scale = ldexp(1.0, r->exps[t]);
        int64_t *a = r->acc + l->t[t].offset;
        for (int c = 0; c < nlocal; c++) {
            const float *x = chunks[c] + l->t[t].offset;
            for (size_t i = 0; i < l->t[t].size; i++) { /* round half away from zero: one cast, no libm call */
                double v = (double)x[i] * scale;
                a[i] += (int64_t)(v + (v >= 0.0 ? 0.5 : -0.5));
            }
        }
    }
    /* 4. integer allreduce: associative, so the same bits for any rank count */
    allreduce_split(r->acc, N, MPI_INT64_T, sizeof(int64_t), r->comm);
    for (int t = 0; t < l->n; t++) {
        float *o = out + l->t[t].offset;
        const int64_t *a = r->acc + l->t[t].offset;
        if (!isfinite(r->maxabs[t])) {
            for (size_t i = 0; i < l->t[t].size; i++) o[i] = NAN;
            continue;
        }
        const double inv = ldexp(1.0, -r->exps[t]);
        for (size_t i = 0; i < l->t[t].size; i++) o[i] = (float)((double)a[i] * inv);
    }
}

void reduce_chunk_scalars(double *out, const double *local, int nlocal, int nvals, MPI_Comm comm)
{
    int size;
    CHECK_MPI(MPI_Comm_size(comm, &size));
    size_t n = (size_t)nlocal * nvals;
    double *all = xmalloc((size_t)size * n * sizeof(double));
    CHECK_MPI(MPI_Allgather(local, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, comm));
    for (int v = 0; v < nvals; v++) out[v] = 0.0;
    for (size_t c = 0; c < (size_t)size * nlocal; c++) /* global chunk order */
        for (int v = 0; v < nvals; v++) out[v] += all[c * nvals + v];
    free(all);
}
