/* Keyed Philox4x32-10 draws (Random123). Key = (seed, purpose); counter = (epoch, index low, index high,
 * j / 4): one Philox call yields the four draws j = 4q .. 4q+3, so single draws and fills agree exactly. */
#include "vamp/rng.h"

#include <Random123/philox.h>
#include <Random123/u01fixedpt.h>
#include <math.h>

static philox4x32_ctr_t block(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index, uint32_t q)
{
    philox4x32_key_t k = {{(uint32_t)seed, (uint32_t)(seed >> 32) ^ (purpose * 0x9E3779B9u)}};
    philox4x32_ctr_t c = {{epoch, (uint32_t)index, (uint32_t)(index >> 32), q}};
    return philox4x32(c, k);
}

/* Uniform in (0,1) from 32 random bits: open at both ends, so log() and Box-Muller are safe. */
static inline float u01(uint32_t x) { return u01fixedpt_open_open_32_float(x); }

/* Box-Muller on the pairs (0,1) and (2,3) of one block: 4 normals. */
static void normals4(float out[4], philox4x32_ctr_t r)
{
    for (int p = 0; p < 2; p++) {
        double u1 = u01(r.v[2 * p]), u2 = u01(r.v[2 * p + 1]);
        double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        out[2 * p] = (float)(rad * cos(th));
        out[2 * p + 1] = (float)(rad * sin(th));
    }
}

float rng_uniform(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index, uint32_t j)
{
    return u01(block(seed, purpose, epoch, index, j / 4).v[j % 4]);
}

float rng_normal(uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index, uint32_t j)
{
    float n[4];
    normals4(n, block(seed, purpose, epoch, index, j / 4));
    return n[j % 4];
}

void rng_uniform_fill(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index,
                      uint32_t j0)
{
    size_t i = 0;
    while (i < n) {
        uint32_t j = j0 + (uint32_t)i;
        philox4x32_ctr_t r = block(seed, purpose, epoch, index, j / 4);
        for (uint32_t l = j % 4; l < 4 && i < n; l++, i++) out[i] = u01(r.v[l]);
    }
}

void rng_normal_fill(float *out, size_t n, uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index,
                     uint32_t j0)
{
    size_t i = 0;
    while (i < n) {
        uint32_t j = j0 + (uint32_t)i;
        float v[4];
        normals4(v, block(seed, purpose, epoch, index, j / 4));
        for (uint32_t l = j % 4; l < 4 && i < n; l++, i++) out[i] = v[l];
    }
}

void rng_permutation(uint32_t *out, uint32_t n, uint64_t seed, uint32_t purpose, uint32_t epoch, uint64_t index)
{
    for (uint32_t i = 0; i < n; i++) out[i] = i;
    /* Fisher-Yates from the back; draw i uses counter word i (index keeps permutations of stripes apart) */
    for (uint32_t i = n; i > 1; i--) {
        uint32_t bits = block(seed, purpose, epoch, index, (i - 1) / 4).v[(i - 1) % 4];
        uint32_t k = (uint32_t)(((uint64_t)bits * i) >> 32); /* uniform in [0, i) up to 2^-32 bias */
        uint32_t tmp = out[i - 1];
        out[i - 1] = out[k];
        out[k] = tmp;
    }
}
