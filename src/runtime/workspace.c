/* SPDX-License-Identifier: MIT */
#include "runtime/workspace.h"

#include "core/alloc.h"

void nvp__engine_init(nvp_engine *e, const nvp_allocator *alloc,
                      size_t eval_floats, size_t train_floats)
{
    e->alloc = alloc;
    pthread_mutex_init(&e->lock, NULL);
    e->free_list[0] = e->free_list[1] = NULL;
    e->arena_floats[NVP_WS_EVAL] = eval_floats;
    e->arena_floats[NVP_WS_TRAIN] = train_floats;
    e->kernel = nvp__gemm_best();
}

static void ws_free(const nvp_allocator *a, nvp_ws *ws)
{
    nvp__free_aligned(a, ws->pack);
    nvp__free_aligned(a, ws->arena);
    nvp__free(a, ws);
}

void nvp__engine_destroy(nvp_engine *e)
{
    for (int k = 0; k < 2; k++) {
        nvp_ws *ws = e->free_list[k];
        while (ws) {
            nvp_ws *next = ws->next;
            ws_free(e->alloc, ws);
            ws = next;
        }
        e->free_list[k] = NULL;
    }
    pthread_mutex_destroy(&e->lock);
}

nvp_ws *nvp__ws_acquire(const nvp_engine *ce, nvp_ws_kind kind)
{
    /* The free list is the one piece of a const handle that changes in a
     * const call; it is guarded by the engine's lock. */
    nvp_engine *e = (nvp_engine *)ce;
    pthread_mutex_lock(&e->lock);
    nvp_ws *ws = e->free_list[kind];
    if (ws)
        e->free_list[kind] = ws->next;
    pthread_mutex_unlock(&e->lock);
    if (ws)
        return ws;

    size_t pack_bytes, arena_bytes;
    size_t pack_floats = 0, count;
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&count);
    for (size_t i = 0; i < count; i++) {
        size_t f = nvp__gemm_pack_floats(ks[i]);
        if (f > pack_floats)
            pack_floats = f;
    }
    if (nvp__mul(pack_floats, sizeof(float), &pack_bytes) ||
        nvp__mul(e->arena_floats[kind], sizeof(float), &arena_bytes))
        return NULL;
    ws = nvp__malloc(e->alloc, sizeof *ws);
    if (!ws)
        return NULL;
    ws->next = NULL;
    ws->pack = nvp__alloc_aligned(e->alloc, pack_bytes);
    ws->arena = nvp__alloc_aligned(e->alloc, arena_bytes);
    if (!ws->pack || !ws->arena) {
        ws_free(e->alloc, ws);
        return NULL;
    }
    return ws;
}

void nvp__ws_release(const nvp_engine *ce, nvp_ws_kind kind, nvp_ws *ws)
{
    if (!ws)
        return;
    nvp_engine *e = (nvp_engine *)ce;
    pthread_mutex_lock(&e->lock);
    ws->next = e->free_list[kind];
    e->free_list[kind] = ws;
    pthread_mutex_unlock(&e->lock);
}
