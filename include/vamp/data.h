/* Datasets: the HDF5 file written by vamp_prepare, read with parallel HDF5 (MPI-IO driver, one hyperslab per
 * stripe, collective transfers). Each rank holds only its own stripes of every split, as floats in [0,1].
 * It does not binarise training batches (that is keyed noise, done per step by the trainer).
 *
 * File format ("vamp_mpi-dataset", version 1):
 *   /train, /valid, /test : N x D, uint8 (0..255, scaled by 1/255) or float32 in [0,1]
 *   root attributes: format = "vamp_mpi-dataset" (string), version = 1 (int), height, width (int, 1..65536,
 *                    height * width <= VAMP_MAX_PIXELS), kind = "binary" | "gray" (string), source (string)
 *   chunk filters: only those this HDF5 library can decode (gzip/deflate, shuffle, ...; not h5py's LZF)
 * Which rank holds which stripes: plan.h. */
#ifndef VAMP_DATA_H
#define VAMP_DATA_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>
#include "vamp/config.h"
#include "vamp/plan.h"

#define VAMP_DATASET_FORMAT "vamp_mpi-dataset"
#define VAMP_DATASET_VERSION 1
#define VAMP_MAX_ROWS 4294967295ull /* rows of a split that are used: permutations are drawn over uint32 */
#define VAMP_MAX_PIXELS 16777216      /* height * width: images up to 4096 x 4096 (layer sizes are int) */
#define VAMP_STATIC_BINARIZE_SEED 777u /* fixed seed for valid/test (and data.binarize=static) */

typedef struct {
    long n;                 /* rows in the whole split (after data.*_limit) */
    int stripes;            /* S */
    int stripe_lo, stripe_hi; /* stripes held here: [lo, hi) */
    long row_lo, row_hi;    /* global rows held here: [row_lo, row_hi) = [start(lo), start(hi)) */
    float *x;               /* (row_hi - row_lo, D), values in [0,1] (binarised once if the config says so) */
    uint32_t crc;           /* CRC-32 of this rank's rows as read, before any binarisation (a checkpoint records the
                               combination over ranks, to recognise the data on resume) */
} vamp_split;

typedef struct {
    size_t D;               /* pixels per image = height * width */
    int height, width;
    int binary;             /* 1 if the file's kind is "binary" */
    char source[256];       /* the file's "source" attribute */
    vamp_split train, valid, test;
} vamp_data;

/* The one loop over the rows a rank holds of a split, in blocks of at most B rows cut from each stripe's start
 * (so the blocks, and any sums over them, are the same whatever the rank count):
 *     for (vamp_block b = block_first(sp, B); b.rows > 0; block_next(sp, &b)) ...
 * b.i is the local stripe (0 .. stripe_hi - stripe_lo), b.row the block's first global row. */
typedef struct {
    int i;        /* local stripe of the block */
    long row;     /* first global row of the block */
    int rows;     /* rows in the block; 0: the loop is over */
    int B;        /* the largest block */
} vamp_block;
vamp_block block_first(const vamp_split *sp, int B);
void block_next(const vamp_split *sp, vamp_block *b);

/* Collective. Opens c->data_path, checks format, attributes, shapes, filters, D against the model, that this rank's
 * rows fit its memory (memory.h), and values (no NaN, in range; for bernoulli with binarize=none, values must be 0
 * or 1), reads this rank's stripes.
 * valid/test are binarised once with VAMP_STATIC_BINARIZE_SEED when data.binarize != none; train too when
 * data.binarize = static. Any problem: vamp_input_error naming the file and dataset (exit 2). */
void data_load(vamp_data *d, const vamp_config *c, MPI_Comm comm);
void data_free(vamp_data *d);

/* Collective. Reads global training rows rows[0..n) (same list on every rank) into out (n, D) on every rank,
 * unbinarised. Used to initialise vampprior_data pseudo-inputs independently of the rank count. */
void data_read_train_rows(const vamp_config *c, const vamp_data *d, const long *rows, int n, float *out,
                          MPI_Comm comm);

/* x_out[i] = (u < x[i]) ? 1 : 0 with u keyed by (seed, purpose, epoch, global_row, pixel). x_out may be x. */
void binarize_row(float *x_out, const float *x, size_t D, uint64_t seed, uint32_t purpose, uint32_t epoch,
                  long global_row);

#endif
