/* SPDX-License-Identifier: MIT */
/* A handle's execution context: level, pool and work spaces. */
#include "runtime/context.h"

void nvp__context_init(nvp_context *x, const nvp_allocator *alloc,
                       size_t threads)
{
    x->alloc = alloc;
    pthread_mutex_init(&x->lock, NULL);
    x->free_list[0] = x->free_list[1] = NULL;
    x->threads = threads ? threads : 1;
    x->pool = NULL;
    x->pool_failed = 0;
    x->bf16 = 0;
    nvp__context_set_isa(x, nvp__cpu_isa());
}

static void ws_free(const nvp_allocator *a, nvp_ws *ws)
{
    nvp__free_aligned(a, ws->pack);
    nvp__free_aligned(a, ws->arena);
    nvp__free(a, ws);
}

void nvp__context_destroy(nvp_context *x)
{
    nvp__pool_free(x->pool);
    x->pool = NULL;
    for (int k = 0; k < 2; k++) {
        nvp_ws *ws = x->free_list[k];
        while (ws) {
            nvp_ws *next = ws->next;
            ws_free(x->alloc, ws);
            ws = next;
        }
        x->free_list[k] = NULL;
    }
    pthread_mutex_destroy(&x->lock);
}

void nvp__context_set_isa(nvp_context *x, nvp_isa isa)
{
    x->isa = isa;
    x->kernel = nvp__gemm_for_isa(isa);
}

/* Every work space and pool worker gets room for the largest packing
 * buffer of any kernel, the bfloat16 one included, so that changing the
 * level or the precision needs no new ones. */
static size_t max_pack_floats(void)
{
    size_t count, m = nvp__gemm_bf16_pack_floats();
    const nvp_gemm_kernel *const *ks = nvp__gemm_kernels(&count);
    for (size_t i = 0; i < count; i++) {
        const size_t f = nvp__gemm_pack_floats(ks[i]);
        if (f > m)
            m = f;
    }
    return m;
}

int nvp__context_set_threads(nvp_context *x, size_t n)
{
    pthread_mutex_lock(&x->lock);
    if (n == x->threads && !x->pool_failed) {
        pthread_mutex_unlock(&x->lock);
        return NVP_OK;
    }
    /* A call that holds the pool is using it: replacing it now would pull
     * it from under that call.  Calls take the pool under this lock, so
     * none can take it between this check and the swap. */
    if (x->pool && !nvp__pool_try_acquire(x->pool)) {
        pthread_mutex_unlock(&x->lock);
        return NVP_EBUSY;
    }
    if (x->pool)
        nvp__pool_release(x->pool);
    /* Start the new pool before retiring the old one, so that a failure
     * leaves the context as it was. */
    nvp_pool *fresh = NULL;
    int rc = NVP_OK;
    if (n > 1)
        rc = nvp__pool_create(&fresh, n, max_pack_floats(), x->alloc);
    if (rc == NVP_OK) {
        nvp__pool_free(x->pool);
        x->pool = fresh;
        x->pool_failed = 0;
        x->threads = n;
    }
    pthread_mutex_unlock(&x->lock);
    return rc;
}

nvp_pool *nvp__context_pool_take(const nvp_context *cx)
{
    /* Starting the pool is the one change a const call makes here besides
     * the free lists; the lock serialises it, and taking the pool under it
     * lets nvp__context_set_threads see a pool in use. */
    nvp_context *x = (nvp_context *)cx;
    pthread_mutex_lock(&x->lock);
    nvp_pool *p = NULL;
    if (x->threads > 1) {
        if (!x->pool && !x->pool_failed &&
            nvp__pool_create(&x->pool, x->threads, max_pack_floats(),
                             x->alloc) != NVP_OK)
            x->pool_failed = 1;
        if (x->pool && nvp__pool_try_acquire(x->pool))
            p = x->pool;
    }
    pthread_mutex_unlock(&x->lock);
    return p;
}

void nvp__context_pool_give(nvp_pool *pool)
{
    if (pool)
        nvp__pool_release(pool);
}

nvp_ws *nvp__ws_acquire(const nvp_context *cx, nvp_ws_kind kind,
                        size_t arena_floats)
{
    nvp_context *x = (nvp_context *)cx;
    pthread_mutex_lock(&x->lock);
    nvp_ws *ws = x->free_list[kind];
    if (ws)
        x->free_list[kind] = ws->next;
    pthread_mutex_unlock(&x->lock);
    if (ws && ws->arena_floats >= arena_floats)
        return ws;
    if (ws)
        ws_free(x->alloc, ws);

    size_t pack_bytes, arena_bytes;
    if (nvp__mul(max_pack_floats(), sizeof(float), &pack_bytes) ||
        nvp__mul(arena_floats, sizeof(float), &arena_bytes))
        return NULL;
    ws = nvp__malloc(x->alloc, sizeof *ws);
    if (!ws)
        return NULL;
    ws->next = NULL;
    ws->arena_floats = arena_floats;
    ws->pack = nvp__alloc_aligned(x->alloc, pack_bytes);
    ws->arena = nvp__alloc_aligned(x->alloc, arena_bytes);
    if (!ws->pack || !ws->arena) {
        ws_free(x->alloc, ws);
        return NULL;
    }
    return ws;
}

void nvp__ws_release(const nvp_context *cx, nvp_ws_kind kind, nvp_ws *ws)
{
    if (!ws)
        return;
    nvp_context *x = (nvp_context *)cx;
    pthread_mutex_lock(&x->lock);
    ws->next = x->free_list[kind];
    x->free_list[kind] = ws;
    pthread_mutex_unlock(&x->lock);
}
