/* The data-parallel plan (see plan.h): pure arithmetic on stripe and chunk boundaries. */
#include "vamp/plan.h"

long stripe_start(long n, int S, int s) { return (long)((long long)s * n / S); }

long stripe_len(long n, int S, int s) { return stripe_start(n, S, s + 1) - stripe_start(n, S, s); }

void plan_rank_stripes(int S, int P, int r, int *lo, int *hi)
{
    /* with P | S this is [r*(S/P), (r+1)*(S/P)), the split every earlier result was computed with */
    *lo = (int)((long long)r * S / P);
    *hi = (int)((long long)(r + 1) * S / P);
}

int plan_max_stripes(int S, int P) { return (S + P - 1) / P; }

int pseudo_start(int K, int S, int s) { return (int)((long)s * K / S); }
