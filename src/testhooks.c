/* The test hooks of testhooks.h: the environment variables and the process-wide overrides, read and kept here only,
 * so that production code asks one function and a reader finds every hook in one file. */
#include "vamp/testhooks.h"

#include <stdlib.h>

static long env_long(const char *name, long unset)
{
    const char *v = getenv(name);
    return v ? atol(v) : unset;
}

int testhook_ckpt_write_fails(void) { return getenv("VAMP_INJECT_CKPT_FAILURE") != NULL; }
int testhook_ckpt_failure_rank(void) { return (int)env_long("VAMP_INJECT_CKPT_FAILURE_RANK", -1); }
unsigned testhook_ckpt_delay_seconds(void) { return (unsigned)env_long("VAMP_INJECT_CKPT_DELAY", 0); }
long testhook_nan_step(void) { return env_long("VAMP_INJECT_NAN_STEP", 0); }

static size_t reduce_max_count; /* 0: reduce.c's default */
static int reduce_owner_max_chunks = -1; /* < 0: reduce.c's default */

void testhook_set_reduce_max_count(size_t n) { reduce_max_count = n; }
size_t testhook_reduce_max_count(void) { return reduce_max_count; }
void testhook_set_reduce_owner_max_chunks(int n) { reduce_owner_max_chunks = n < 0 ? -1 : n; }
int testhook_reduce_owner_max_chunks(void) { return reduce_owner_max_chunks; }

static int reduce_ranks_per_node; /* 0: the real nodes */

void testhook_set_reduce_ranks_per_node(int n) { reduce_ranks_per_node = n > 0 ? n : 0; }
int testhook_reduce_ranks_per_node(void) { return reduce_ranks_per_node; }
