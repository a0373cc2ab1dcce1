/* Keyed randomness: Philox4x32-10 (Random123) keyed by (seed, purpose) with counter (epoch, index, j).
 * A draw depends only on its key and counter, never on which rank or in which order it is made, so every
 * sample gets the same noise whatever the rank count. There is no stream state to save in checkpoints. */
#ifndef VAMP_RNG_H
#define VAMP_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RNG_INIT = 1,      /* parameter initialisation: index = tensor number, j = element */
    RNG_PERMUTE = 2,   /* per-epoch stripe permutations: index = stripe */
    RNG_BINARIZE = 3,  /* dynamic binarisation: index = global sample index, j = pixel */
    RNG_EPS_TRAIN = 4, /* reparameterisation noise in training: index = global sample, j = latent unit */
    RNG_EPS_EVAL = 5,  /* noise for validation/test ELBO */
    RNG_STATIC = 6,    /* fixed binarisation of valid/test (and data=static): epoch ignored */
    RNG_PSEUDO = 7,    /* vampprior_data: choice of images and noise for the pseudo-inputs */
    RNG_IS = 8,        /* importance sampling in evaluation */
    RNG_SAMPLE = 9,    /* samples for pictures */
    RNG_SPLIT = 10,    /* vamp_prepare: the shuffled train/valid/test split (epoch, index 0) */
} vamp_rng_purpose;

/* Uniform in (0,1), never 0 or 1. */
float rng_uniform(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index, uint32_t j);
/* Standard normal (Box-Muller on one Philox block). */
float rng_normal(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index, uint32_t j);
/* Fill out[0..n) with standard normals for counter (epoch, index, j0 .. j0+n). Faster than n calls. */
void rng_normal_fill(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index,
                     uint32_t j0);
/* Fill out[0..n) with uniforms in (0,1) for counter (epoch, index, j0 .. j0+n). */
void rng_uniform_fill(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index,
                      uint32_t j0);
/* out[0..n) = a permutation of 0..n-1 (Fisher-Yates with keyed draws). */
void rng_permutation(uint32_t *out, uint32_t n, uint64_t seed, uint32_t purpose, uint32_t epoch,
                     uint64_t index);

#endif
