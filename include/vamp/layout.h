/* A table of named tensors carved out of one contiguous float buffer.
 * params, gradients and Adam moments share one layout (a rank's share of the sharded optimiser state is a
 * contiguous range of it), so the reduction, the optimiser and checkpoint I/O are one loop each. Shapes are
 * row-major; a Linear weight is [out][in] like torch.nn.Linear. */
#ifndef VAMP_LAYOUT_H
#define VAMP_LAYOUT_H

#include <stddef.h>

#define VAMP_MAX_TENSORS 64
#define VAMP_NAME_LEN 48

typedef struct {
    char name[VAMP_NAME_LEN]; /* torch state_dict key, e.g. "q_z_layers.0.h.weight" */
    int ndim;                 /* 1 or 2 */
    size_t shape[2];          /* shape[1] == 1 when ndim == 1 */
    size_t offset;            /* first element in the buffer */
    size_t size;              /* shape[0] * shape[1] */
} vamp_tensor;

typedef struct {
    vamp_tensor t[VAMP_MAX_TENSORS];
    int n;
    size_t total; /* floats in the whole buffer */
} vamp_layout;

void layout_init(vamp_layout *l);
/* Append a tensor; returns its index. rows x cols (cols = 0 means a 1-D tensor of `rows`). */
int layout_add(vamp_layout *l, const char *name, size_t rows, size_t cols);

#endif
