/* SPDX-License-Identifier: MIT */
/* What every layer kind shares. */
#include "model/layer.h"

#include "core/alloc.h"

void nvp__layer_free(nvp_layer *l)
{
    if (!l)
        return;
    nvp_allocator a = l->alloc;
    nvp__context_destroy(&l->ctx);
    nvp__errbox_destroy(&l->err);
    if (l->kind->release)
        l->kind->release(l);
    nvp__free_aligned(&a, l->own_params);
    nvp__free(&a, l);
}
