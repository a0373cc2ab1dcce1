/* The named-tensor table behind every buffer role (params, grads, Adam moments). */
#include "vamp/layout.h"
#include "vamp/check.h"

#include <string.h>

void layout_init(vamp_layout *l) { memset(l, 0, sizeof *l); }

int layout_add_dims(vamp_layout *l, const char *name, int ndim, const size_t *shape)
{
    if (l->n >= VAMP_MAX_TENSORS) vamp_fatal(__FILE__, __LINE__, "layout_add", "too many tensors");
    if (strlen(name) >= VAMP_NAME_LEN) vamp_fatal(__FILE__, __LINE__, "layout_add", "tensor name too long");
    if (ndim < 1 || ndim > VAMP_MAX_DIMS) vamp_fatal(__FILE__, __LINE__, "layout_add", "bad number of dimensions");
    vamp_tensor *t = &l->t[l->n];
    strcpy(t->name, name);
    t->buffer = 0;
    t->ndim = ndim;
    t->size = 1;
    for (int i = 0; i < VAMP_MAX_DIMS; i++) {
        t->shape[i] = i < ndim ? shape[i] : 1;
        t->size *= t->shape[i];
    }
    t->offset = l->total;
    l->total += t->size;
    return l->n++;
}

int layout_add(vamp_layout *l, const char *name, size_t rows, size_t cols)
{
    const size_t shape[2] = {rows, cols};
    return layout_add_dims(l, name, cols ? 2 : 1, shape);
}

int layout_add_buffer(vamp_layout *l, const char *name, size_t n)
{
    int t = layout_add(l, name, n, 0);
    l->t[t].buffer = 1;
    return t;
}

size_t layout_fan_in(const vamp_tensor *t) { return t->size / t->shape[0]; }
