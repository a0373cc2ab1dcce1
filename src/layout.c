/* The named-tensor table behind every buffer role (params, grads, Adam moments). */
#include "vamp/layout.h"
#include "vamp/check.h"

#include <string.h>

void layout_init(vamp_layout *l) { memset(l, 0, sizeof *l); }

int layout_add(vamp_layout *l, const char *name, size_t rows, size_t cols)
{
    if (l->n >= VAMP_MAX_TENSORS) vamp_fatal(__FILE__, __LINE__, "layout_add", "too many tensors");
    if (strlen(name) >= VAMP_NAME_LEN) vamp_fatal(__FILE__, __LINE__, "layout_add", "tensor name too long");
    vamp_tensor *t = &l->t[l->n];
    strcpy(t->name, name);
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols ? cols : 1;
    t->size = t->shape[0] * t->shape[1];
    t->offset = l->total;
    l->total += t->size;
    return l->n++;
}
