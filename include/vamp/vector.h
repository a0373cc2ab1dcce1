/* Element kernels built for AVX2 and the baseline, one picked per machine at load time (GCC function
 * multi-versioning). The same IEEE operations in the same order in both (no FMA: -ffp-contract=off, no
 * reassociation), so the same bits whichever runs. (An AVX-512 clone was measured: the reduction 8 % faster,
 * Adam 12 % slower, no gain per step.) */
#ifndef VAMP_VECTOR_H
#define VAMP_VECTOR_H

#define VECTOR_KERNEL __attribute__((target_clones("avx2", "default")))

#endif
