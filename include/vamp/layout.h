/* A table of named tensors carved out of one contiguous float buffer.
 * params, gradients and Adam moments share one layout (a rank's share of the sharded optimiser state is a
 * contiguous range of it), so the reduction, the optimiser and checkpoint I/O are one loop each. Shapes are
 * row-major; a Linear weight is [out][in] like torch.nn.Linear. */
#ifndef VAMP_LAYOUT_H
#define VAMP_LAYOUT_H

#include <stddef.h>

#define VAMP_MAX_TENSORS 160 /* the convHVAE has 102, the PixelHVAE up to 125 */
#define VAMP_NAME_LEN 48
#define VAMP_MAX_DIMS 4 /* a Conv2d weight (cout, cin, k, k) */

typedef struct {
    char name[VAMP_NAME_LEN];    /* torch state_dict key, e.g. "q_z_layers.0.h.weight" */
    int ndim;                    /* 1 .. VAMP_MAX_DIMS */
    size_t shape[VAMP_MAX_DIMS]; /* shape[i] == 1 for i >= ndim */
    size_t offset;               /* first element in the buffer */
    size_t size;                 /* product of the shape */
    int buffer;                  /* 1: a torch buffer (BatchNorm's running statistics): saved and restored with the
                                    parameters but never trained (its gradient stays zero, the optimiser skips it) */
} vamp_tensor;

typedef struct {
    vamp_tensor t[VAMP_MAX_TENSORS];
    int n;
    size_t total; /* floats in the whole buffer */
} vamp_layout;

void layout_init(vamp_layout *l);
/* Append a tensor; returns its index. rows x cols (cols = 0 means a 1-D tensor of `rows`). */
int layout_add(vamp_layout *l, const char *name, size_t rows, size_t cols);
/* Append a tensor of ndim (1 .. VAMP_MAX_DIMS) dimensions shape[0..ndim-1]; returns its index. */
int layout_add_dims(vamp_layout *l, const char *name, int ndim, const size_t *shape);
/* Append a 1-D buffer tensor of n elements (see vamp_tensor.buffer); returns its index. */
int layout_add_buffer(vamp_layout *l, const char *name, size_t n);
/* The fan-in of a weight: its size over its first dimension (in for a Linear, cin k k for a Conv2d). */
size_t layout_fan_in(const vamp_tensor *t);

#endif
