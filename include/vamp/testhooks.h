/* Test hooks: every switch by which a test steers the production code, in one place. Each is off unless a test
 * turns it on, and none changes a result when off. Environment hooks are read when asked for (they are set by a
 * test script for the whole run); function hooks are process-wide state set by a unit test. Not collective. */
#ifndef VAMP_TESTHOOKS_H
#define VAMP_TESTHOOKS_H

#include <stddef.h>

/* VAMP_INJECT_CKPT_FAILURE (any value; tests/test_checkpoint.sh): rank 0's checkpoint write fails as on a full
 * disk (ENOSPC). Returns 1 if set. */
int testhook_ckpt_write_fails(void);

/* VAMP_INJECT_CKPT_FAILURE_RANK=r (tests/test_faults.sh): rank r's part of every checkpoint write fails, to show
 * that a failure on any rank is agreed on by all. Returns r, or -1 if unset. */
int testhook_ckpt_failure_rank(void);

/* VAMP_INJECT_CKPT_DELAY=s (tests/test_checkpoint.sh, test_faults.sh, test_slurm.sh, cluster/run_tests.sh): rank 0
 * pauses s seconds half-way through writing a checkpoint file, a window to kill or signal the job mid-write.
 * Returns s, or 0 if unset. */
unsigned testhook_ckpt_delay_seconds(void);

/* VAMP_INJECT_NAN_STEP=n (tests/test_checkpoint.sh): the gradient of training step n is made non-finite (see
 * train.c). Returns n, or 0 (never) if unset. */
long testhook_nan_step(void);

/* tests/test_mpi_reduce.c: split reduce.c's MPI calls at n elements instead of INT_MAX / 2, to exercise the split
 * path without 8 GB buffers. 0 restores the default; testhook_reduce_max_count returns the override or 0. */
void testhook_set_reduce_max_count(size_t n);
size_t testhook_reduce_max_count(void);

/* tests/test_mpi_reduce.c: reducer_sum_owned takes the owner path when no rank holds more than n chunks (instead of
 * reduce.c's default), to exercise both paths on any rank count. n < 0 restores the default;
 * testhook_reduce_owner_max_chunks returns the override or -1. */
void testhook_set_reduce_owner_max_chunks(int n);
int testhook_reduce_owner_max_chunks(void);

/* tests/test_mpi_reduce.c: the reducer's shared-memory window treats every n consecutive ranks of a node as one
 * node (emulated nodes, to exercise the path across nodes on one machine). 0 restores the default (the real
 * nodes); testhook_reduce_ranks_per_node returns the override or 0. */
void testhook_set_reduce_ranks_per_node(int n);
int testhook_reduce_ranks_per_node(void);

#endif
