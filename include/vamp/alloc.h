/* Checked allocation: xmalloc / xcalloc never return NULL. On failure they print rank, file, line and the size,
 * then abort the job (check.c). Kept apart from check.h so that the math modules (model, nn, prior, optim) need
 * neither mpi.h nor hdf5.h. */
#ifndef VAMP_ALLOC_H
#define VAMP_ALLOC_H

#include <stddef.h>

void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t n, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n) xcalloc_at((n), __FILE__, __LINE__)

#endif
