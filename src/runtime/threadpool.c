/* SPDX-License-Identifier: MIT */
/* Worker threads for the matrix multiplies and batched evaluation. */
#include "runtime/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"

/* Workers spin this many rounds (about half a millisecond) on the claim
 * word before they sleep: a training step issues a few dozen short
 * parallel products back to back, and a condition-variable wake-up costs
 * more than one of them takes. */
#define SPIN_ROUNDS 20000

typedef struct worker {
    struct nvp_pool *pool;
    size_t index;
    float *pack;
} worker;

/* A job's tasks are claimed through one 64-bit word: a job number in the
 * high half, the next unclaimed task in the low half (for a pinned job, a
 * bit per claimed task: run_tasks).  A worker claims a
 * task by compare-and-swap on the whole word, so a worker that is late,
 * still holding the word of a job that is over, can never claim a task by
 * mistake: the word has moved on and its swap fails.
 *
 * The caller starts a job in two moves.  It first closes the word (a new
 * job number, task index TASK_MASK: nothing to claim), then writes the
 * job's function, argument and size, then opens the word (the next job
 * number, index 0).  Closing first is what keeps a late worker from
 * pairing an old word, whose swap would still succeed, with the new
 * job's fields: every field is stored with release after the close and
 * loaded with acquire, so a worker that sees any new field also sees the
 * word closed, and its swap fails.
 *
 * The caller waits only for tasks that were claimed, never for a worker
 * to show up, so a worker the scheduler has put on the caller's own CPU
 * (or not run at all) costs nothing: the caller runs the tasks itself. */
#define TASK_BITS 32
#define TASK_MASK ((((uint_fast64_t)1) << TASK_BITS) - 1)
/* Tasks per job, below the closed index.  The library's jobs stay far
 * below it (rows / 256 or parameters / 16384 at most); nvp__pool_run runs
 * a longer one on the calling thread. */
#define MAX_JOB_TASKS ((size_t)TASK_MASK - 1)

struct nvp_pool {
    nvp_allocator alloc;
    size_t n;            /* participants, the caller included */
    pthread_t *threads;  /* n - 1 workers */
    worker *workers;     /* n; workers[0] is the caller's */
    pthread_mutex_t lock;
    pthread_cond_t wake, finished;
    pthread_mutex_t busy; /* held by the one caller using the pool */
    atomic_uint_fast64_t claim; /* job << TASK_BITS | next task (or
                                 * the claimed tasks' bits) */
    atomic_size_t done;         /* tasks of the current job finished */
    atomic_int stop;
    /* The current job, written before its claim word is published.  A
     * late worker may read them while the next job is being set up; it
     * then fails its claim and drops what it read, hence atomics. */
    _Atomic(nvp_task_fn) fn;
    _Atomic(void *) arg;
    atomic_size_t n_tasks;
    atomic_int pinned; /* the job's claim word holds a bit per task */
};

/* One round of a spin wait.  Every YIELD_EVERY rounds it gives the CPU
 * away: the scheduler can put a woken worker on the CPU its caller runs
 * on, and a pure spin there would hold the CPU the awaited thread needs
 * for a whole time slice.  On a CPU with nothing else to run the yield
 * returns at once.  (A defence, not a measured gain: the stretches in
 * which two-thread steps ran three times slower than one-thread ones on
 * the development VM persisted with it.) */
#define YIELD_EVERY 64
static inline void spin_round(int i)
{
    if (i % YIELD_EVERY == YIELD_EVERY - 1) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline uint_fast64_t job_of(uint_fast64_t claim)
{
    return claim >> TASK_BITS;
}

/* Claims and runs tasks of job `job` until none is left (or the job is
 * over); returns when there is nothing more to claim.
 *
 * A job of at most one task per participant (and at most
 * PINNED_MAX_TASKS) is pinned: participant i claims task i first, so
 * that the same share of every such job (the same output columns of the
 * sweep's blocks and of a product split like them) runs on the same
 * thread and finds its data in that core's cache.  The claim word's low
 * half then holds a bit per claimed task instead of the next task, and a
 * participant done with its own task takes any task still unclaimed (the
 * highest, so that a participant without a task of its own does not take
 * the caller's), so a late worker still costs nothing.  Claimed in order
 * instead, the sweep's two halves went to either thread by the race
 * between caller and worker; making every block a task of its own (so
 * that they hop between threads) made the tutorial's two-thread step 30%
 * slower. */
#define PINNED_MAX_TASKS ((size_t)TASK_BITS - 1)

static void run_tasks(nvp_pool *p, const worker *w, uint_fast64_t job)
{
    uint_fast64_t c = atomic_load_explicit(&p->claim, memory_order_acquire);
    while (job_of(c) == job) {
        const uint_fast64_t low = c & TASK_MASK;
        if (low == TASK_MASK) /* closed: a job is being set up */
            return;
        const size_t n = atomic_load_explicit(&p->n_tasks, memory_order_acquire);
        size_t task;
        uint_fast64_t next;
        if (atomic_load_explicit(&p->pinned, memory_order_acquire)) {
            /* n and the flag come from this job unless the job is over,
             * and then the swap below fails; bounding every shift by
             * PINNED_MAX_TASKS keeps them defined whatever was read. */
            const size_t bits = n < PINNED_MAX_TASKS ? n : PINNED_MAX_TASKS;
            const uint_fast64_t open = ~low & (((uint_fast64_t)1 << bits) - 1);
            if (!open)
                return;
            task = w->index < bits && (open >> w->index & 1)
                       ? w->index
                       : 63 - (size_t)__builtin_clzll((unsigned long long)open);
            next = c | (uint_fast64_t)1 << task;
        } else {
            task = (size_t)low;
            if (task >= n)
                return;
            next = c + 1;
        }
        const nvp_task_fn fn = atomic_load_explicit(&p->fn, memory_order_acquire);
        void *arg = atomic_load_explicit(&p->arg, memory_order_acquire);
        /* On failure c is reloaded: another participant took the task, or
         * the job is over. */
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &c, next,
                                                   memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        fn(arg, task, w->index);
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 ==
            n) {
            /* The job's last task: wake the caller if it sleeps. */
            pthread_mutex_lock(&p->lock);
            pthread_cond_signal(&p->finished);
            pthread_mutex_unlock(&p->lock);
        }
        c = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

/* Waits for a job other than `seen` (or stop); returns its number. */
static uint_fast64_t wait_for_job(nvp_pool *p, uint_fast64_t seen)
{
    uint_fast64_t job;
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        job = job_of(atomic_load_explicit(&p->claim, memory_order_acquire));
        if (job != seen || atomic_load(&p->stop))
            return job;
        spin_round(i);
    }
    pthread_mutex_lock(&p->lock);
    while ((job = job_of(atomic_load(&p->claim))) == seen &&
           !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return job;
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
        run_tasks(p, w, seen);
    }
    return NULL;
}

size_t nvp__online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    /* Per-thread arrays are sized for NVP_MAX_THREADS. */
    return n < 1 ? 1 : n > NVP_MAX_THREADS ? NVP_MAX_THREADS : (size_t)n;
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
    pthread_cond_destroy(&p->finished);
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
    pthread_cond_init(&p->finished, NULL);
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->stop, 0);
    atomic_init(&p->fn, NULL);
    atomic_init(&p->arg, NULL);
    atomic_init(&p->n_tasks, 0);
    atomic_init(&p->pinned, 0);
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

float *nvp__pool_pack(const nvp_pool *p, size_t index)
{
    return p->workers[index].pack;
}

size_t nvp__pool_threads(const nvp_pool *p) { return p ? p->n : 1; }

int nvp__pool_try_acquire(nvp_pool *p)
{
    return p && pthread_mutex_trylock(&p->busy) == 0;
}

void nvp__pool_release(nvp_pool *p) { pthread_mutex_unlock(&p->busy); }

void nvp__pool_run(nvp_pool *p, size_t n_tasks, nvp_task_fn fn, void *arg)
{
    if (n_tasks > MAX_JOB_TASKS) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(arg, t, 0);
        return;
    }
    /* Job numbers wrap within their half of the word. */
    const uint_fast64_t closed =
        (job_of(atomic_load_explicit(&p->claim, memory_order_relaxed)) + 1) &
        TASK_MASK;
    const uint_fast64_t job = (closed + 1) & TASK_MASK;
    atomic_store_explicit(&p->claim, closed << TASK_BITS | TASK_MASK,
                          memory_order_seq_cst);
    atomic_store_explicit(&p->fn, fn, memory_order_release);
    atomic_store_explicit(&p->arg, arg, memory_order_release);
    atomic_store_explicit(&p->n_tasks, n_tasks, memory_order_release);
    atomic_store_explicit(&p->pinned,
                          n_tasks <= p->n && n_tasks <= PINNED_MAX_TASKS,
                          memory_order_release);
    atomic_store_explicit(&p->done, 0, memory_order_release);
    /* Open the job: the release pairs with the workers' acquire. */
    pthread_mutex_lock(&p->lock);
    atomic_store_explicit(&p->claim, job << TASK_BITS, memory_order_release);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    run_tasks(p, &p->workers[0], job);

    /* Every task is claimed; wait for the ones still running elsewhere. */
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (atomic_load_explicit(&p->done, memory_order_acquire) == n_tasks)
            return;
        spin_round(i);
    }
    pthread_mutex_lock(&p->lock);
    while (atomic_load_explicit(&p->done, memory_order_acquire) != n_tasks)
        pthread_cond_wait(&p->finished, &p->lock);
    pthread_mutex_unlock(&p->lock);
}
