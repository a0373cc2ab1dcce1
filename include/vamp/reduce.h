/* Summing per-chunk contributions over ranks.
 * exact: every chunk (a fixed unit of work whose result does not depend on the rank count) is rounded to a
 * fixed-point grid with a per-tensor power-of-two scale agreed by MPI_MAX over all chunk maxima, summed locally
 * and allreduced. The grid values are integers held in doubles, kept below 2^51 in magnitude including every
 * partial sum, so each addition is exact and the order of additions (local or inside MPI_Allreduce) cannot
 * change the result: the same bits for any number of ranks. (Integers in doubles rather than int64: the float
 * -> integer rounding and the adds vectorise, and a double MPI_SUM of such integers is exact.) The grid step
 * is max|x| * 2^-(51 - h) (h = ceil(log2 nglobal) + 1 headroom bits), far below float precision.
 * reducer_sum_owned gives each rank only the tensors it owns; with few chunks per rank it moves the float chunks
 * to the owners, who round and sum them (the same integers, so the same bits). Between ranks of one node the chunks
 * move through an MPI-3 shared-memory window (each rank copies its chunks' slices of its node peers' tensors into
 * its own segment once; the owners read them there), and only slices for ranks on other nodes go through
 * MPI_Alltoallv. VAMP_REDUCE_SHM=0 in the environment turns the window off; it is also left off where the backing
 * directory (Open MPI's osc_sm_backing_directory, /dev/shm on Linux) lacks the room, as a too-full tmpfs would
 * SIGBUS on first touch rather than fail the allocation (rank 0 says so once).
 * fast: local float sum, then one float MPI_Allreduce or reduce-scatter (order depends on the rank count).
 * It does not know what the buffers mean beyond their layout. */
#ifndef VAMP_REDUCE_H
#define VAMP_REDUCE_H

#include <mpi.h>
#include <stdint.h>
#include "vamp/config.h"
#include "vamp/layout.h"

typedef struct {
    MPI_Comm comm;
    int rank, size;
    vamp_reduce mode;
    const vamp_layout *layout;
    int t_lo, t_hi;   /* the tensors this rank owns: [t_lo, t_hi), whole tensors, about layout->total / size
                         elements (some ranks own none when there are more ranks than tensors) */
    int *counts, *displs; /* (size) every rank's owned elements and their first element, for the MPI calls */
    int *t_owner;     /* (layout->n) the rank that owns each tensor */
    double *acc;      /* (layout->total) fixed-point accumulator, exact mode (allocated at first use) */
    double *acc_own;  /* (owned elements) its reduce-scattered sums, exact mode (allocated at first use) */
    float *fsum;      /* (layout->total) local float sum, fast mode with several ranks (allocated at first use) */
    float *slices_in; /* (slices_cap x size x owned elements) other ranks' chunks of the owned tensors */
    const float **slices; /* (slices_cap x size) every chunk's slice of the owned tensors */
    int slices_cap;   /* the most chunks per rank that slices_in and slices hold */
    int *slice_chunk; /* (slice_chunk_cap) the global chunk index of each slice being summed */
    unsigned char *slice_clear; /* (slice_chunk_cap) 1: that slice is this rank's own chunk, zeroed as it is read */
    int consume;      /* reducer_consume_chunks was called (exact mode) */
    int slice_chunk_cap;
    int **col_bounds; /* (layout->n) NULL, or per tensor NULL or (col_nglobal + 1) column bounds of each chunk:
                         reducer_set_column_chunks */
    int col_nglobal;
    int owner_fits;   /* the owner path's displacements fit an int */
    int *nlocal_of, *sendcounts, *recvcounts, *recvdispls; /* (size) each, for the owner path's MPI calls */
    int32_t *maxbits; /* (layout->n) per-tensor max |x| as IEEE bits (ordered like the values; >= Inf bits:
                         a NaN or Inf somewhere) */
    int *exps;        /* (layout->n) per-tensor scale exponent */
    size_t slices_in_len; /* floats in slices_in */
    /* the owner path's shared-memory window (decided at its first use): */
    int shm_state;    /* 0 not decided yet, 1 in use, -1 off (VAMP_REDUCE_SHM=0, no peer on this node, or no room) */
    MPI_Comm node;    /* the ranks of comm on this node (MPI_COMM_NULL until decided) */
    int node_size;
    int *node_of;     /* (size) node rank of every rank of comm on this node, -1 for ranks on other nodes */
    MPI_Win win;      /* MPI_WIN_NULL unless in use */
    float **seg;      /* (node_size) each node rank's segment: for each of its chunks, a record of its node peers'
                         owned elements (rank q's at record_offset(p, q)) */
    int seg_chunks;   /* chunks per segment the window holds */
} vamp_reducer;

/* Not collective. reducer_free is collective over comm once a sum has used the shared-memory window (it frees
 * the window): call it on every rank alike. */
void reducer_init(vamp_reducer *r, const vamp_layout *layout, vamp_reduce mode, MPI_Comm comm);
void reducer_free(vamp_reducer *r);

/* Not collective (but call it on every rank alike). Declares that chunk g (of nglobal, numbered as the plan numbers
 * stripes: rank q holds chunks plan_rank_stripes(nglobal, size, q)) holds non-zero values of the 2-D tensor t only
 * in columns [bounds[g], bounds[g + 1]) of every row (bounds: nglobal + 1 non-decreasing values from 0 to the
 * column count, copied). The exact sums then neither read nor round the rest of that tensor in a chunk, which the
 * caller need not zero (reducer_zero_chunk): the same bits as summing the whole chunks with zeros there, since a
 * zero of either sign rounds to the grid's +0, which adds nothing. Sums must then pass the plan's chunks and
 * nglobal. (The VampPrior: pseudo-input chunk s back-propagates into its own pseudo-inputs' columns only.) */
void reducer_set_column_chunks(vamp_reducer *r, int t, const int *bounds, int nglobal);

/* Not collective. From now on the exact sums leave every chunk zero wherever a sum reads it: each value is zeroed
 * as it is read (in L1 then: a separate zeroing pass before the next accumulation finds the chunks evicted and
 * costs about half as much as the sum). For a caller that accumulates into the same chunks again, from zero. No effect
 * in fast mode. */
void reducer_consume_chunks(vamp_reducer *r);

/* Not collective. Makes chunk g (global index) ready to accumulate into: zero wherever a sum reads it (all of it,
 * except the columns of other chunks in a tensor given to reducer_set_column_chunks, exact mode). Nothing to do
 * after reducer_consume_chunks: the last sum left the chunk so (a chunk that was never summed must then start
 * zeroed, e.g. from calloc). */
void reducer_prepare_chunk(const vamp_reducer *r, float *chunk, int g);

/* Collective. out (layout->total) = sum of all chunks on all ranks. This rank holds chunks[0..nlocal);
 * nglobal is the total number of chunks over all ranks (for headroom). Chunks are not modified (unless
 * reducer_consume_chunks: then zeroed where read).
 * exact: a tensor holding a NaN or Inf in any chunk comes out as NaN everywhere (its scale would be meaningless).
 * Returns the index of the first tensor of out that is not finite, or -1: the same on every rank.
 * Each MPI call carries at most INT_MAX / 2 elements (a larger sum is split into several calls; the layout itself
 * is limited to INT_MAX elements by reducer_init). */
int reducer_sum(vamp_reducer *r, float *out, float *const *chunks, int nlocal, int nglobal);

/* Collective. As reducer_sum, but only the tensors this rank owns ([t_lo, t_hi)) are summed, into out, which
 * holds just those: element i of the layout at out[i - displs[rank]] (counts[rank] floats). For an optimiser
 * that updates only what this rank owns (then reducer_allgather_owned shares the result). The same
 * bits as reducer_sum in those tensors, and the same return value (the first non-finite tensor of the whole sum)
 * on every rank. Exact mode with at most two chunks on every rank (or one rank): the chunks' float slices go to
 * the rank that owns them, which rounds and sums them; otherwise the grid sums are reduce-scattered. Fast mode:
 * a float reduce-scatter. */
int reducer_sum_owned(vamp_reducer *r, float *out, float *const *chunks, int nlocal, int nglobal);

/* Collective. Every rank's owned tensors of buf (layout->total) are copied to every other rank. */
void reducer_allgather_owned(vamp_reducer *r, float *buf);

/* Collective. Sums per-chunk double values in global chunk order: of nglobal chunks this rank holds the ones the
 * plan gives it (plan_rank_stripes(nglobal, size, rank): nlocal of them, not necessarily as many as another
 * rank), local[c*nvals + v]. out (nvals) on every rank. The same bits for any rank count. */
void reduce_chunk_scalars(double *out, const double *local, int nlocal, int nglobal, int nvals, MPI_Comm comm);

#endif
