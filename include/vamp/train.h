/* The data-parallel trainer: owns the model replica, the buffers of every role and the per-step work plan.
 * One step = pseudo-input encodings (sharded over ranks, allgathered) -> per-stripe chunk forward/backward (in
 * stages with a combine of every chunk's BatchNorm sums between them, for a model with BatchNorm) ->
 * exact reduction of the prior-component gradient -> pseudo-input backward of this rank's pseudo chunks ->
 * exact (or fast) sum of all chunk gradients into the tensors each rank owns -> Adam on them -> allgather of the
 * parameters. Chunk s is a fixed unit of work: stripe s's share of the batch and pseudo-input chunk s (always
 * on the same rank), so the same bits come out for any rank count. */
#ifndef VAMP_TRAIN_H
#define VAMP_TRAIN_H

#include <mpi.h>
#include "vamp/config.h"
#include "vamp/data.h"
#include "vamp/model.h"
#include "vamp/optim.h"
#include "vamp/reduce.h"

typedef struct {
    double loss, re, kl; /* means per image */
    long n;              /* images */
    int bad_tensor;      /* trainer_step: index of a tensor whose reduced gradient is not finite (the step was
                            not applied), or -1 */
} vamp_elbo;

typedef struct {
    MPI_Comm comm;
    int rank, size;
    vamp_config cfg;
    vamp_model model;
    vamp_data *data;       /* not owned */

    float *params;         /* (layout.total) the same on every rank after each step */
    float *grads, *adam_m, *adam_v; /* (red.counts[rank]) the optimiser is sharded: the summed gradient and Adam
                              moments of the tensors this rank owns (red.t_lo..t_hi), element i of the layout at
                              [i - red.displs[rank]] */
    float *best;           /* (layout.total) parameters with the best validation loss so far */
    vamp_adam opt;

    int S;                 /* stripes = data chunks per step = pseudo chunks per step */
    int stripe_lo, nloc;   /* this rank's stripes [stripe_lo, stripe_lo + nloc) */
    int rows_per_chunk;    /* batch_size / S */
    long steps_per_epoch;
    int npseudo_loc;       /* local pseudo chunks: nloc for vampprior*, else 0 */
    float **chunk_grads;   /* nloc x (layout.total): local chunk i's gradient (stripe i's rows, then pseudo
                              chunk i's back-propagation added in float: a fixed order on one rank); the exact
                              reduction zeroes what it reads (reducer_consume_chunks), and pseudo chunk i's
                              columns are the only part of the pseudo-inputs it reads */
    vamp_reducer red;

    /* prior components (K, Ztop): vampprior: encodings of the pseudo-inputs; mog: the parameters */
    float *pm, *plv;
    /* vampprior only (prior_hooks.c): */
    vamp_layout aux_layout;  /* "prior.dmeans", "prior.dlogvars" (K, Ztop) */
    float **chunk_aux;       /* nloc x aux total */
    float *aux_sum;          /* aux total */
    vamp_reducer red_aux;
    vamp_enc_acts *pseudo_acts; /* npseudo_loc */
    int *pk_counts, *pk_displs; /* allgatherv of pseudo rows, in floats */

    vamp_acts acts;          /* rows = max(rows_per_chunk, eval.batch) */
    /* models with BatchNorm (model_sync_layers L > 0): a step runs every local chunk stage by stage, so each keeps
     * its own activations, input and noise until its backward pass */
    int sync_layers;         /* L */
    vamp_acts *chunk_acts;   /* nloc, rows_per_chunk rows each; NULL when L = 0 */
    float *chunk_x, *chunk_eps_top, *chunk_eps1; /* nloc x (rows_per_chunk, D / Ztop / Z1) */
    double *sync_part, *sync_total; /* (nloc, model_sync_len), (model_sync_len): the partials of one stage */
    float **chunk_dpm, **chunk_dplv; /* nloc: each chunk's prior-component gradient targets (or NULL) */
    float *xbuf, *eps_top, *eps1; /* (rows, D), (rows, Ztop), (rows, Z1) */
    long *grow;              /* (rows) global row numbers of the current block */
    uint32_t **perm;         /* nloc permutations of the local stripes' rows */
    double *chunk_stats;     /* nloc x 2 (sum re, sum kl) */
    int perm_epoch;          /* epoch the permutations were drawn for */

    long step;               /* steps completed */
    double progress_every;   /* seconds between progress lines of rank 0 (ticker.h); 0 (trainer_init): none */
    long inject_nan_step;    /* tests: poison the gradient of this step (env VAMP_INJECT_NAN_STEP), 0 = never */
    /* seconds spent per phase of trainer_step, summed over steps (for vamp_bench) */
    double t_prior, t_forward, t_backward, t_reduce, t_optim;
} vamp_trainer;

/* Where training stands: everything besides the buffers that a checkpoint must hold to continue exactly. */
typedef struct {
    int epoch;               /* epoch in progress, 1-based */
    long it;                 /* next batch of that epoch */
    double sum_loss, sum_re, sum_kl; /* this epoch's batch means summed so far */
    long nsteps;             /* batches of this epoch done */
    long skipped;            /* batches skipped for a non-finite gradient (train.on_nan = skip), all epochs */
    double epoch_seconds;    /* training time spent in this epoch so far */
    double best_val;         /* best validation loss (INFINITY: none yet) */
    int best_epoch, since_best;
    double train_seconds;    /* total training time so far */
} vamp_progress;

/* Collective. Builds the model, buffers and initial parameters (identical on every rank). */
void trainer_init(vamp_trainer *t, const vamp_config *c, vamp_data *d, MPI_Comm comm);
void trainer_free(vamp_trainer *t);

/* Not collective (arithmetic only). KL weight for an epoch (1-based), as the reference: min(1, epoch / warmup). */
float trainer_beta(const vamp_config *c, int epoch);

/* Not collective. Standard normal noise of one sample into row r of t->eps_top (Ztop) and, for the hvae, of
 * t->eps1 (Z1, drawn after the Ztop values of the same key). Keyed by (run.seed, purpose, counter, index), so
 * every rank draws the same for a sample: the one noise fill of training, evaluation and pictures. */
void trainer_noise(vamp_trainer *t, int r, uint32_t purpose, uint32_t counter, uint64_t index);

/* Collective. Computes t->pm, t->plv for the current parameters (no-op for the standard prior). */
void trainer_prior_components(vamp_trainer *t);

/* Collective. One optimiser step on batch `it` of epoch `epoch` (1-based); returns the batch's mean loss
 * terms (exactly reduced). If a reduced gradient tensor is not finite, nothing is updated and bad_tensor
 * names it (every rank sees the same). */
vamp_elbo trainer_step(vamp_trainer *t, int epoch, long it);

/* Collective. ELBO (beta = 1) of a split (valid or test) for the current parameters, exactly reduced. */
vamp_elbo trainer_eval_elbo(vamp_trainer *t, const vamp_split *split);

#endif
