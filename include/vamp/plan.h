/* The data-parallel plan: who holds which rows and which pseudo-inputs. Every module asks here instead of
 * re-deriving it (as PETSc's MatGetOwnershipRange). Nothing here communicates, allocates or reads files.
 *   1. A split of n rows is cut into S contiguous stripes: stripe s = rows [s*n/S, (s+1)*n/S) (integer division).
 *   2. Rank r of P (P <= S) holds stripes [r*S/P, (r+1)*S/P) (integer division): as evenly as they go, S mod P
 *      ranks hold one stripe more than the others. P need not divide S.
 *   3. Pseudo-input chunk s = pseudo-inputs [s*K/S, (s+1)*K/S); it lives on the rank of stripe s.
 * None of these boundaries depends on P, which is why the results do not either. */
#ifndef VAMP_PLAN_H
#define VAMP_PLAN_H

/* First global row of stripe s of a split of n rows cut into S stripes (s = S gives n). */
long stripe_start(long n, int S, int s);
/* Rows of stripe s. */
long stripe_len(long n, int S, int s);
/* The stripes [*lo, *hi) that rank r of P holds (P <= S: every rank holds at least one). */
void plan_rank_stripes(int S, int P, int r, int *lo, int *hi);
/* The most stripes any rank of P holds (ceil(S / P)); the step waits for those ranks. */
int plan_max_stripes(int S, int P);
/* First pseudo-input of pseudo-input chunk s of K pseudo-inputs cut into S chunks (s = S gives K). */
int pseudo_start(int K, int S, int s);

#endif
