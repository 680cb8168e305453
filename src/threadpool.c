/* Worker threads for the matrix multiplies and batched evaluation. */
#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

/* Workers spin this many rounds on the job counter before they sleep: a
 * training step issues a few dozen short parallel products back to back,
 * and a condition-variable wake-up costs more than one of them takes. */
#define SPIN_ROUNDS 20000

typedef struct worker {
    struct nvp_pool *pool;
    size_t index;
    float *pack;
} worker;

struct nvp_pool {
    nvp_allocator alloc;
    size_t n;            /* participants, the caller included */
    pthread_t *threads;  /* n - 1 workers */
    worker *workers;     /* n; workers[0] is the caller's */
    pthread_mutex_t lock;
    pthread_cond_t wake, done;
    pthread_mutex_t busy; /* held by the one caller using the pool */
    atomic_uint_fast64_t generation; /* bumped for every job */
    atomic_size_t next_task;
    atomic_size_t running; /* workers not yet finished with this job */
    atomic_int stop;
    nvp_task_fn fn;
    void *arg;
    size_t n_tasks;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_tasks(nvp_pool *p, const worker *w)
{
    for (;;) {
        size_t t = atomic_fetch_add_explicit(&p->next_task, 1,
                                             memory_order_relaxed);
        if (t >= p->n_tasks)
            break;
        p->fn(p->arg, t, w->index, w->pack);
    }
}

/* Waits for a generation other than seen (or stop); returns it. */
static uint_fast64_t wait_for_job(nvp_pool *p, uint_fast64_t seen)
{
    uint_fast64_t gen;
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        gen = atomic_load_explicit(&p->generation, memory_order_acquire);
        if (gen != seen || atomic_load(&p->stop))
            return gen;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    while ((gen = atomic_load(&p->generation)) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return gen;
}

static void *worker_main(void *varg)
{
    worker *w = varg;
    nvp_pool *p = w->pool;
    uint_fast64_t seen = 0;
    for (;;) {
        seen = wait_for_job(p, seen);
        if (atomic_load(&p->stop))
            break;
        run_tasks(p, w);
        if (atomic_fetch_sub_explicit(&p->running, 1, memory_order_acq_rel) ==
            1) {
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->lock);
        }
    }
    return NULL;
}

size_t nvp__online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 ? (size_t)n : 1;
}

/* Stops the first `started` workers and frees everything. */
static void pool_destroy(nvp_pool *p, size_t started)
{
    if (started) {
        pthread_mutex_lock(&p->lock);
        atomic_store(&p->stop, 1);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < started; i++)
            pthread_join(p->threads[i], NULL);
    }
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->busy);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done);
    if (p->workers)
        for (size_t i = 0; i < p->n; i++)
            nvp__free_aligned(&p->alloc, p->workers[i].pack);
    nvp__free(&p->alloc, p->workers);
    nvp__free(&p->alloc, p->threads);
    nvp_allocator a = p->alloc;
    nvp__free(&a, p);
}

int nvp__pool_create(nvp_pool **out, size_t n_threads, size_t pack_floats,
                     const nvp_allocator *alloc)
{
    *out = NULL;
    nvp_pool *p = nvp__malloc(alloc, sizeof *p);
    if (!p)
        return NVP_ENOMEM;
    memset(p, 0, sizeof *p);
    p->alloc = *alloc;
    p->n = n_threads;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->busy, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->next_task, 0);
    atomic_init(&p->running, 0);
    atomic_init(&p->stop, 0);
    p->threads = nvp__malloc(&p->alloc, (n_threads - 1) * sizeof *p->threads);
    p->workers = nvp__malloc(&p->alloc, n_threads * sizeof *p->workers);
    if (p->workers) /* pool_destroy frees every non-NULL pack */
        memset(p->workers, 0, n_threads * sizeof *p->workers);
    if (!p->threads || !p->workers) {
        pool_destroy(p, 0);
        return NVP_ENOMEM;
    }
    for (size_t i = 0; i < n_threads; i++) {
        p->workers[i].pool = p;
        p->workers[i].index = i;
        p->workers[i].pack =
            nvp__alloc_aligned(&p->alloc, pack_floats * sizeof(float));
        if (!p->workers[i].pack) {
            pool_destroy(p, 0);
            return NVP_ENOMEM;
        }
    }
    for (size_t i = 0; i + 1 < n_threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker_main,
                           &p->workers[i + 1]) != 0) {
            pool_destroy(p, i);
            return NVP_ETHREAD;
        }
    }
    *out = p;
    return NVP_OK;
}

void nvp__pool_free(nvp_pool *p)
{
    if (p)
        pool_destroy(p, p->n - 1);
}

size_t nvp__pool_threads(const nvp_pool *p) { return p ? p->n : 1; }

int nvp__pool_try_acquire(nvp_pool *p)
{
    return p && pthread_mutex_trylock(&p->busy) == 0;
}

void nvp__pool_release(nvp_pool *p) { pthread_mutex_unlock(&p->busy); }

void nvp__pool_run(nvp_pool *p, size_t n_tasks, nvp_task_fn fn, void *arg)
{
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next_task, 0, memory_order_relaxed);
    atomic_store_explicit(&p->running, p->n - 1, memory_order_relaxed);
    /* Publish the job: the release pairs with the workers' acquire. */
    pthread_mutex_lock(&p->lock);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    run_tasks(p, &p->workers[0]);

    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(&p->running, memory_order_acquire) == 0)
            return;
        cpu_relax();
    }
    pthread_mutex_lock(&p->lock);
    while (atomic_load_explicit(&p->running, memory_order_acquire) != 0)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
