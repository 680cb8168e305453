/* SPDX-License-Identifier: MIT */
/* What every layer kind shares. */
#include "model/layer.h"

#include <string.h>

#include "core/alloc.h"
#include "model/coupling.h"
#include "model/layer_kinds.h"

/* Every kind a model file may name.  A new kind adds its entry here. */
static const nvp_layer_ops *const all_kinds[] = {
    &nvp__coupling_kind,
    &nvp__permute_kind,
    &nvp__actnorm_kind,
    &nvp__linear_kind,
};

const nvp_layer_ops *nvp__layer_kind_by_id(uint32_t id)
{
    for (size_t i = 0; i < sizeof all_kinds / sizeof all_kinds[0]; i++)
        if (all_kinds[i]->id == id)
            return all_kinds[i];
    return NULL;
}

int nvp__layer_alloc_params(nvp_layer *l, size_t n_params, const char *fn)
{
    l->n_params = n_params;
    if (n_params > 0) {
        l->own_params = nvp__alloc_floats(&l->alloc, n_params);
        if (!l->own_params)
            return nvp__fail(NULL, NVP_ENOMEM,
                             "%s: out of memory for %zu parameters", fn,
                             n_params);
        memset(l->own_params, 0, n_params * sizeof(float));
    }
    l->params = l->own_params;
    return NVP_OK;
}

int nvp__layer_new(nvp_layer **out, size_t size, const nvp_layer_ops *kind,
                   size_t dim, size_t n_params, const nvp_allocator *alloc,
                   const char *fn)
{
    *out = NULL;
    nvp_allocator a;
    if (nvp__allocator_init(&a, alloc) != NVP_OK)
        return nvp__fail(NULL, NVP_EINVAL, "%s: invalid allocator", fn);
    nvp_layer *l = nvp__malloc(&a, size);
    if (!l)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory", fn);
    memset(l, 0, size);
    l->kind = kind;
    l->alloc = a;
    l->dim = dim;
    nvp__errbox_init(&l->err);
    nvp__context_init(&l->ctx, &l->alloc, 1);
    const int rc = nvp__layer_alloc_params(l, n_params, fn);
    if (rc) {
        nvp__layer_free(l);
        return rc;
    }
    *out = l;
    return NVP_OK;
}

size_t nvp__layer_no_floats(const nvp_layer *l, size_t rows)
{
    (void)l;
    (void)rows;
    return 0;
}

void nvp__layer_no_fresh_range(const nvp_layer *l, size_t *off, size_t *len)
{
    (void)l;
    *off = *len = 0;
}

size_t nvp__layer_no_hyper_count(const nvp_layer *l)
{
    (void)l;
    return 0;
}

uint32_t nvp__layer_no_hyper_value(const nvp_layer *l, size_t i)
{
    (void)l;
    (void)i;
    return 0;
}

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
