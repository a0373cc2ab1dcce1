/* Up-front memory checks: before its large allocations a run compares what each rank is about to allocate with
 * what that rank can still get, and refuses with a message that says how much and which key to lower, instead
 * of failing inside malloc, spinning in OpenBLAS under `ulimit -v`, or meeting the kernel's OOM killer.
 * It estimates; it does not track allocations. */
#ifndef VAMP_MEMORY_H
#define VAMP_MEMORY_H

#include <mpi.h>

/* Collective. The room of a rank: the address-space and data-segment limits (ulimit -v / -d) less what is mapped
 * now, and the node's MemAvailable + SwapFree and its cgroup's room (a Slurm job's memory), both shared equally by
 * the ranks on the node. If `need` bytes (this rank's; `blas`: plus OpenBLAS's work buffers, allocated at the first
 * BLAS call, which count against ulimit -v) exceed the room of some rank, every rank exits with status 2 and rank 0
 * prints "<what>: about N MiB per rank needed, but rank r has only M MiB (<the binding limit>): <advice>". */
void mem_require(MPI_Comm comm, double need, int blas, const char *what, const char *advice);

/* Bytes as text for messages ("12.3 MiB", "4.0 GiB", "2.2 TiB"). */
const char *mem_text(double bytes, char *buf, int len);

#endif
