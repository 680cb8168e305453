/* SPDX-License-Identifier: MIT */
/* Failed allocations: a custom allocator fails its i-th allocation, for
 * i = 0, 1, 2, ... until the call succeeds.  Every failure must be reported
 * as NVP_ENOMEM with an intact message, hand out no handle, change no
 * model, and leak nothing: the allocator's count of live blocks is back to
 * 0 once everything is freed.  Covered: the constructors; the calls that
 * allocate workspaces lazily (log_prob, forward, inverse, sample, trace,
 * nll_grad, train_step, the layer's own calls), single-threaded and with
 * the chain's thread pool (which may fall back to the calling thread, with
 * the same results); loading, saving to a file, set_threads.  Also:
 * steady-state calls allocate nothing, and the handle keeps its own copy
 * of the allocator struct. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests.h"

static const size_t H43[2] = {4, 3};
static const unsigned char MASK3[3] = {0, 1, 1};

/* An attempt runs the operation with allocation number `fail` (counted
 * from the start of the operation under test) failing, frees everything,
 * and returns the operation's status.  *handed_out is set when a failing
 * constructor nevertheless set its out-parameter, *changed when a failed
 * call changed a model. */
typedef int (*attempt_fn)(const nvp_allocator *a, t_alloc_state *st, size_t fail,
                          int *handed_out, int *changed);

static int try_rng(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    st->fail_at = fail;
    nvp_rng *r = (nvp_rng *)&ho; /* garbage: must become NULL on failure */
    const int rc = nvp_rng_create(&r, 5, a);
    if (rc == NVP_OK)
        nvp_rng_free(r);
    else
        *ho = r != NULL;
    return rc;
}

static int try_base(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    st->fail_at = fail;
    nvp_base *b = (nvp_base *)&ho;
    const int rc = nvp_base_create_normal(&b, 3, a);
    if (rc == NVP_OK)
        nvp_base_free(b);
    else
        *ho = b != NULL;
    return rc;
}

static int try_coupling(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    nvp_rng *r = t_rng(1);
    st->fail_at = fail;
    nvp_coupling *l = (nvp_coupling *)&ho;
    const int rc = nvp_coupling_create(&l, 3, MASK3, 2, H43, 0, r, a);
    if (rc == NVP_OK)
        nvp_coupling_free(l);
    else
        *ho = l != NULL;
    nvp_rng_free(r);
    return rc;
}

static int try_coupling_half(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    nvp_rng *r = t_rng(1);
    st->fail_at = fail;
    nvp_coupling *l = (nvp_coupling *)&ho;
    const int rc = nvp_coupling_create_half(&l, 4, 1, 2, H43, NVP_INIT_ZERO_OUTPUT, r, a);
    if (rc == NVP_OK)
        nvp_coupling_free(l);
    else
        *ho = l != NULL;
    nvp_rng_free(r);
    return rc;
}

static int try_chain_alternating(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    nvp_rng *r = t_rng(1);
    st->fail_at = fail;
    nvp_chain *c = (nvp_chain *)&ho;
    const int rc = nvp_chain_create_alternating(&c, 3, 3, 2, H43, 0, r, a);
    if (rc == NVP_OK)
        nvp_chain_free(c);
    else
        *ho = c != NULL;
    nvp_rng_free(r);
    return rc;
}

/* nvp_chain_create itself: on failure the caller still owns the base and
 * the layers, and frees them. */
static int try_chain_create(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    nvp_rng *r = t_rng(1);
    nvp_base *b = NULL;
    nvp_coupling *layers[2] = {NULL, NULL};
    T_OK(nvp_base_create_normal(&b, 3, a));
    T_OK(nvp_coupling_create_half(&layers[0], 3, 0, 2, H43, 0, r, a));
    T_OK(nvp_coupling_create(&layers[1], 3, MASK3, 1, H43, 0, r, a));
    st->fail_at = st->calls + fail;
    nvp_chain *c = (nvp_chain *)&ho;
    const int rc = nvp_chain_create(&c, b, 2, layers, a);
    if (rc == NVP_OK) {
        nvp_chain_free(c);
    } else {
        *ho = c != NULL;
        nvp_coupling_free(layers[0]);
        nvp_coupling_free(layers[1]);
        nvp_base_free(b);
    }
    nvp_rng_free(r);
    return rc;
}

static int try_adam(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    st->fail_at = fail;
    nvp_adam *o = (nvp_adam *)&ho;
    const int rc = nvp_adam_create(&o, 100, a);
    if (rc == NVP_OK)
        nvp_adam_free(o);
    else
        *ho = o != NULL;
    return rc;
}

static int try_scaler(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    st->fail_at = fail;
    nvp_scaler *s = (nvp_scaler *)&ho;
    const int rc = nvp_scaler_create(&s, 3, a);
    if (rc == NVP_OK)
        nvp_scaler_free(s);
    else
        *ho = s != NULL;
    return rc;
}

/* ---- calls on a fresh chain (workspaces are allocated lazily) ---- */
enum { OP_LOG_PROB, OP_FORWARD, OP_INVERSE, OP_SAMPLE, OP_TRACE, OP_NLL_GRAD, OP_TRAIN };

static float in_buf[300 * 3], out_buf[5 * 300 * 3], lp_buf[300];
static float out_ctl[5 * 300 * 3], lp_ctl[300];

/* Runs op on chain c (4 layers, dim 3, 300 rows); outputs go to out, lp,
 * grad, and for training into the chain itself. */
static int run_chain_op(nvp_chain *c, nvp_rng *r, nvp_adam *opt, int op, float *out, float *lp,
                        float *grad)
{
    const size_t n = 300; /* two chunks */
    switch (op) {
    case OP_LOG_PROB: return nvp_chain_log_prob(c, n, in_buf, lp);
    case OP_FORWARD: return nvp_chain_forward(c, n, in_buf, out, lp);
    case OP_INVERSE: return nvp_chain_inverse(c, n, in_buf, out, lp);
    case OP_SAMPLE: return nvp_chain_sample(c, r, n, out, lp);
    case OP_TRACE: return nvp_chain_forward_trace(c, n, in_buf, out);
    case OP_NLL_GRAD: return nvp_chain_nll_grad(c, n, in_buf, grad, lp);
    case OP_TRAIN: return nvp_chain_train_step(c, opt, r, n, in_buf, 50, lp);
    }
    return NVP_EINVAL;
}

/* threads == 1: the chain never starts a pool, and every failed
 * allocation must fail the call.  threads == 0 (the default, one thread
 * per CPU): the pool starts on first use, and a pool that cannot start
 * leaves the chain on the calling thread, so a failed allocation may also
 * end in success; the results must then be bitwise those of a clean
 * single-threaded run (the header promises the same bits for any thread
 * count). */
static int chain_op(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *changed, int op,
                    size_t threads)
{
    nvp_rng *r = t_rng(2);
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_alternating(&c, 3, 4, 2, H43, 0, r, a));
    T_OK(nvp_chain_set_threads(c, threads));
    nvp_adam *opt = NULL;
    const size_t np = nvp_chain_num_params(c);
    if (op == OP_TRAIN)
        T_OK(nvp_adam_create(&opt, np, a));
    float *before = t_xmalloc(np * sizeof *before);
    T_OK(nvp_chain_get_params(c, np, before));
    t_prng p;
    t_prng_seed(&p, 3);
    t_fill_normal(&p, 300 * 3, in_buf, 1.0);
    float *grad = t_xmalloc(np * sizeof *grad), *grad_ctl = t_xmalloc(np * sizeof *grad_ctl);
    memset(out_buf, 0, sizeof out_buf);
    memset(lp_buf, 0, sizeof lp_buf);
    memset(grad, 0, np * sizeof *grad);
    st->fail_at = st->calls + fail;
    const int rc = run_chain_op(c, r, opt, op, out_buf, lp_buf, grad);
    st->fail_at = T_NEVER;
    if (rc != NVP_OK) {
        float *after = t_xmalloc(np * sizeof *after);
        T_OK(nvp_chain_get_params(c, np, after));
        *changed = t_first_diff(before, after, np) != (size_t)-1 ||
                   (opt && nvp_adam_num_steps(opt) != 0);
        free(after);
        /* The chain still works once memory is back. */
        T_OK(nvp_chain_log_prob(c, 4, in_buf, lp_buf));
    } else if (st->failed) {
        /* Succeeded although an allocation failed: compare with a clean,
         * single-threaded twin. */
        nvp_rng *r2 = t_rng(2);
        nvp_chain *c2 = NULL;
        nvp_adam *o2 = NULL;
        T_OK(nvp_chain_create_alternating(&c2, 3, 4, 2, H43, 0, r2, NULL));
        T_OK(nvp_chain_set_threads(c2, 1));
        if (op == OP_TRAIN)
            T_OK(nvp_adam_create(&o2, np, NULL));
        memset(out_ctl, 0, sizeof out_ctl);
        memset(lp_ctl, 0, sizeof lp_ctl);
        memset(grad_ctl, 0, np * sizeof *grad_ctl);
        T_OK(run_chain_op(c2, r2, o2, op, out_ctl, lp_ctl, grad_ctl));
        *changed = t_first_diff(out_buf, out_ctl, 5 * 300 * 3) != (size_t)-1 ||
                   t_first_diff(lp_buf, lp_ctl, 300) != (size_t)-1 ||
                   t_first_diff(grad, grad_ctl, np) != (size_t)-1 ||
                   t_first_diff(nvp_chain_params(c), nvp_chain_params(c2), np) != (size_t)-1;
        nvp_adam_free(o2);
        nvp_chain_free(c2);
        nvp_rng_free(r2);
    }
    free(before);
    free(grad);
    free(grad_ctl);
    nvp_adam_free(opt);
    nvp_chain_free(c);
    nvp_rng_free(r);
    return rc;
}

#define CHAIN_ATTEMPT(name, op, threads)                                                     \
    static int name(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch) \
    {                                                                                        \
        (void)ho;                                                                            \
        return chain_op(a, st, fail, ch, op, threads);                                       \
    }
CHAIN_ATTEMPT(try_log_prob, OP_LOG_PROB, 1)
CHAIN_ATTEMPT(try_forward, OP_FORWARD, 1)
CHAIN_ATTEMPT(try_inverse, OP_INVERSE, 1)
CHAIN_ATTEMPT(try_sample, OP_SAMPLE, 1)
CHAIN_ATTEMPT(try_trace, OP_TRACE, 1)
CHAIN_ATTEMPT(try_nll_grad, OP_NLL_GRAD, 1)
CHAIN_ATTEMPT(try_train_step, OP_TRAIN, 1)
CHAIN_ATTEMPT(try_log_prob_mt, OP_LOG_PROB, 0)
CHAIN_ATTEMPT(try_sample_mt, OP_SAMPLE, 0)
CHAIN_ATTEMPT(try_nll_grad_mt, OP_NLL_GRAD, 0)
CHAIN_ATTEMPT(try_train_step_mt, OP_TRAIN, 0)

/* ---- a standalone layer's calls ---- */
static int layer_op(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *changed, int op)
{
    nvp_rng *r = t_rng(4);
    nvp_coupling *l = NULL;
    T_OK(nvp_coupling_create(&l, 3, MASK3, 2, H43, 0, r, a));
    const size_t np = nvp_coupling_num_params(l);
    float *grad = t_xmalloc(np * sizeof *grad), *before = t_xmalloc(np * sizeof *before);
    T_OK(nvp_coupling_get_params(l, np, before));
    memset(grad, 0, np * sizeof *grad);
    t_prng p;
    t_prng_seed(&p, 5);
    t_fill_normal(&p, 300 * 3, in_buf, 1.0);
    st->fail_at = st->calls + fail;
    int rc = NVP_EINVAL;
    if (op == 0)
        rc = nvp_coupling_forward(l, 300, in_buf, out_buf, lp_buf);
    else if (op == 1)
        rc = nvp_coupling_inverse(l, 300, in_buf, out_buf, lp_buf);
    else
        rc = nvp_coupling_inverse_backward(l, 300, in_buf, in_buf, NULL, out_buf, grad);
    st->fail_at = T_NEVER;
    if (rc != NVP_OK) {
        float *after = t_xmalloc(np * sizeof *after);
        T_OK(nvp_coupling_get_params(l, np, after));
        *changed = t_first_diff(before, after, np) != (size_t)-1;
        for (size_t i = 0; i < np; i++)
            *changed |= grad[i] != 0.0f; /* nothing accumulated by a failed call */
        free(after);
    }
    free(grad);
    free(before);
    nvp_coupling_free(l);
    nvp_rng_free(r);
    return rc;
}

#define LAYER_ATTEMPT(name, op)                                                              \
    static int name(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch) \
    {                                                                                        \
        (void)ho;                                                                            \
        return layer_op(a, st, fail, ch, op);                                                \
    }
LAYER_ATTEMPT(try_layer_forward, 0)
LAYER_ATTEMPT(try_layer_inverse, 1)
LAYER_ATTEMPT(try_layer_backward, 2)

/* ---- saving, loading, threads ---- */
static unsigned char *model_bytes(size_t *size, int with_scaler)
{
    nvp_rng *r = t_rng(8);
    nvp_chain *c = NULL;
    nvp_scaler *s = NULL;
    T_OK(nvp_chain_create_alternating(&c, 3, 3, 2, H43, 0, r, NULL));
    T_OK(nvp_scaler_create(&s, 3, NULL));
    T_OK(nvp_chain_save_buffer(c, with_scaler ? s : NULL, 0, NULL, size));
    unsigned char *buf = t_xmalloc(*size);
    T_OK(nvp_chain_save_buffer(c, with_scaler ? s : NULL, *size, buf, size));
    nvp_scaler_free(s);
    nvp_chain_free(c);
    nvp_rng_free(r);
    return buf;
}

static int try_load_buffer(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    size_t size;
    unsigned char *buf = model_bytes(&size, 1);
    nvp_chain *c = (nvp_chain *)buf;
    nvp_scaler *s = (nvp_scaler *)buf;
    st->fail_at = fail;
    const int rc = nvp_chain_load_buffer(&c, &s, size, buf, a);
    if (rc == NVP_OK) {
        nvp_chain_free(c);
        nvp_scaler_free(s);
    } else {
        *ho = c != NULL || s != NULL;
    }
    free(buf);
    return rc;
}

static int try_load_file(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    size_t size;
    unsigned char *buf = model_bytes(&size, 0);
    char path[] = "/tmp/nvp_test_alloc_XXXXXX";
    const int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(buf, 1, size, f), size);
    fclose(f);
    nvp_chain *c = (nvp_chain *)buf;
    st->fail_at = fail;
    const int rc = nvp_chain_load_file(&c, NULL, path, a);
    if (rc == NVP_OK)
        nvp_chain_free(c);
    else
        *ho = c != NULL;
    unlink(path);
    free(buf);
    return rc;
}

static int try_adam_load_buffer(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ch;
    nvp_adam *o = NULL;
    nvp_rng *r = t_rng(9);
    T_OK(nvp_adam_create(&o, 50, NULL));
    /* With a parameter average: one more buffer for the loader to
     * allocate (and free when a later allocation fails). */
    float start[50] = {0};
    T_OK(nvp_adam_set_average(o, 0.5f, 50, start));
    size_t size;
    T_OK(nvp_adam_save_buffer(o, r, 0, NULL, &size));
    unsigned char *buf = t_xmalloc(size);
    T_OK(nvp_adam_save_buffer(o, r, size, buf, &size));
    nvp_adam *o2 = (nvp_adam *)buf;
    nvp_rng *r2 = (nvp_rng *)buf;
    st->fail_at = fail;
    const int rc = nvp_adam_load_buffer(&o2, &r2, size, buf, a);
    if (rc == NVP_OK) {
        nvp_adam_free(o2);
        nvp_rng_free(r2);
    } else {
        *ho = o2 != NULL || r2 != NULL;
    }
    free(buf);
    nvp_adam_free(o);
    nvp_rng_free(r);
    return rc;
}

/* A pool that cannot start: NVP_ENOMEM and the previous setting stays. */
static int try_set_threads(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ho;
    nvp_rng *r = t_rng(10);
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_alternating(&c, 3, 2, 2, H43, 0, r, a));
    T_OK(nvp_chain_set_threads(c, 1));
    st->fail_at = st->calls + fail;
    const int rc = nvp_chain_set_threads(c, 3);
    st->fail_at = T_NEVER;
    if (rc != NVP_OK)
        *ch = nvp_chain_threads(c) != 1;
    else
        *ch = nvp_chain_threads(c) != 3;
    /* Whatever happened, the chain still evaluates. */
    T_OK(nvp_chain_log_prob(c, 100, in_buf, lp_buf));
    nvp_chain_free(c);
    nvp_rng_free(r);
    return rc;
}

static int try_save_file(const nvp_allocator *a, t_alloc_state *st, size_t fail, int *ho, int *ch)
{
    (void)ho;
    (void)ch;
    nvp_rng *r = t_rng(11);
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_alternating(&c, 3, 2, 2, H43, 0, r, a));
    char dir[] = "/tmp/nvp_test_alloc_XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/m.nvp", dir);
    st->fail_at = st->calls + fail;
    const int rc = nvp_chain_save_file(c, NULL, path);
    st->fail_at = T_NEVER;
    unlink(path);
    ck_assert_int_eq(rmdir(dir), 0); /* nothing else left behind */
    nvp_chain_free(c);
    nvp_rng_free(r);
    return rc;
}

static const struct {
    const char *name;
    attempt_fn fn;
    int may_degrade; /* may succeed despite a failed allocation */
} attempts[] = {
    {"nvp_rng_create", try_rng, 0},
    {"nvp_base_create_normal", try_base, 0},
    {"nvp_coupling_create", try_coupling, 0},
    {"nvp_coupling_create_half", try_coupling_half, 0},
    {"nvp_chain_create_alternating", try_chain_alternating, 0},
    {"nvp_chain_create", try_chain_create, 0},
    {"nvp_adam_create", try_adam, 0},
    {"nvp_scaler_create", try_scaler, 0},
    {"nvp_chain_log_prob", try_log_prob, 0},
    {"nvp_chain_forward", try_forward, 0},
    {"nvp_chain_inverse", try_inverse, 0},
    {"nvp_chain_sample", try_sample, 0},
    {"nvp_chain_forward_trace", try_trace, 0},
    {"nvp_chain_nll_grad", try_nll_grad, 0},
    {"nvp_chain_train_step", try_train_step, 0},
    {"nvp_chain_log_prob (thread pool)", try_log_prob_mt, 1},
    {"nvp_chain_sample (thread pool)", try_sample_mt, 1},
    {"nvp_chain_nll_grad (thread pool)", try_nll_grad_mt, 1},
    {"nvp_chain_train_step (thread pool)", try_train_step_mt, 1},
    {"nvp_coupling_forward", try_layer_forward, 0},
    {"nvp_coupling_inverse", try_layer_inverse, 0},
    {"nvp_coupling_inverse_backward", try_layer_backward, 0},
    {"nvp_chain_load_buffer", try_load_buffer, 0},
    {"nvp_chain_load_file", try_load_file, 0},
    {"nvp_adam_load_buffer", try_adam_load_buffer, 0},
    {"nvp_chain_set_threads", try_set_threads, 0},
    {"nvp_chain_save_file", try_save_file, 0},
};
#define N_ATTEMPTS ((int)(sizeof attempts / sizeof attempts[0]))

START_TEST(test_alloc_failures)
{
    const char *name = attempts[_i].name;
    size_t i;
    for (i = 0; i < 1000; i++) {
        t_alloc_state st;
        const nvp_allocator a = t_counting_allocator(&st);
        int handed_out = 0, changed = 0;
        const int rc = attempts[_i].fn(&a, &st, i, &handed_out, &changed);
        T_CHECK(st.live == 0, "%s, allocation %zu failing: %zu blocks leaked (rc %d)", name, i, st.live, rc);
        if (st.failed == 0) {
            /* Allocation i was never requested: the call ran to the end. */
            T_CHECK(rc == NVP_OK, "%s with no failed allocation returned %d (%s): %s", name, rc,
                    nvp_strerror(rc), nvp_errmsg());
            break;
        }
        if (rc == NVP_OK && attempts[_i].may_degrade) {
            T_CHECK(!changed, "%s, allocation %zu failing: succeeded with results that differ from a "
                    "clean run", name, i);
            continue;
        }
        T_CHECK(rc == NVP_ENOMEM, "%s, allocation %zu failing: returned %d (%s), want NVP_ENOMEM", name, i,
                rc, nvp_strerror(rc));
        /* The library's out-of-memory messages say so ("could not start
         * N threads" for a pool); which function they name is the errors
         * suite's job.  A garbled message fails here. */
        T_CHECK(strstr(nvp_errmsg(), "out of memory") != NULL ||
                    strstr(nvp_errmsg(), "could not start") != NULL,
                "%s, allocation %zu failing: message '%s'", name, i, nvp_errmsg());
        T_CHECK(!handed_out, "%s, allocation %zu failing: the out-parameter is not NULL", name, i);
        T_CHECK(!changed, "%s, allocation %zu failing: the model or optimizer changed", name, i);
    }
    T_CHECK(i < 1000, "%s: still failing after 1000 allocations", name);
    T_CHECK(i >= 1, "%s: allocated nothing through the custom allocator", name);
}
END_TEST

/* Once warm (every call made once), evaluation and training allocate
 * nothing.  Single-threaded: with a pool, how many per-thread workspaces
 * the first calls create depends on which thread claims which chunk. */
START_TEST(test_alloc_steady_state)
{
    t_alloc_state st;
    const nvp_allocator a = t_counting_allocator(&st);
    nvp_rng *r = t_rng(6);
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_alternating(&c, 3, 4, 2, H43, 0, r, &a));
    T_OK(nvp_chain_set_threads(c, 1));
    nvp_adam *opt = NULL;
    T_OK(nvp_adam_create(&opt, nvp_chain_num_params(c), &a));
    /* With the parameter average on: it is allocated here, not per step. */
    T_OK(nvp_adam_set_average(opt, 0.99f, nvp_chain_num_params(c), nvp_chain_params(c)));
    t_prng p;
    t_prng_seed(&p, 6);
    t_fill_normal(&p, 300 * 3, in_buf, 1.0);
    float *grad = t_xmalloc(nvp_chain_num_params(c) * sizeof *grad);
    /* One thread, then a pool of two: 300 rows make two chunks, which the
     * pool's threads evaluate in parallel, each in its own workspace. */
    for (size_t threads = 1; threads <= 2; threads++) {
        T_OK(nvp_chain_set_threads(c, threads));
        size_t warm = 0;
        for (int k = 0; k < 5; k++) {
            if (k == 1)
                warm = st.calls;
            T_OK(nvp_chain_log_prob(c, 300, in_buf, lp_buf));
            T_OK(nvp_chain_forward(c, 300, in_buf, out_buf, NULL));
            T_OK(nvp_chain_inverse(c, 300, in_buf, out_buf, NULL));
            T_OK(nvp_chain_sample(c, r, 300, out_buf, lp_buf));
            T_OK(nvp_chain_train_step(c, opt, r, 300, in_buf, 100, NULL));
            T_OK(nvp_chain_train_step(c, opt, r, 300, in_buf, 60, NULL));
            T_OK(nvp_chain_nll_grad(c, 300, in_buf, grad, NULL));
        }
        T_CHECK(st.calls == warm, "%zu allocations in steady state with %zu thread(s)",
                st.calls - warm, threads);
    }
    free(grad);
    nvp_adam_free(opt);
    nvp_chain_free(c);
    ck_assert_uint_eq(st.live, 0);
    nvp_rng_free(r);
}
END_TEST

/* The handle copies the allocator struct: the caller's copy may change or
 * die right after the constructor returns. */
START_TEST(test_alloc_struct_copied)
{
    t_alloc_state st;
    nvp_allocator *a = t_xmalloc(sizeof *a);
    *a = t_counting_allocator(&st);
    nvp_rng *r = t_rng(7);
    nvp_chain *c = NULL;
    nvp_scaler *s = NULL;
    nvp_adam *o = NULL;
    nvp_rng *r2 = NULL;
    T_OK(nvp_chain_create_alternating(&c, 2, 2, 2, H43, 0, r, a));
    T_OK(nvp_scaler_create(&s, 2, a));
    T_OK(nvp_adam_create(&o, nvp_chain_num_params(c), a));
    T_OK(nvp_rng_create(&r2, 1, a));
    memset(a, 0, sizeof *a);
    free(a);
    T_OK(nvp_chain_log_prob(c, 10, in_buf, lp_buf));
    T_OK(nvp_chain_train_step(c, o, r2, 10, in_buf, 5, NULL));
    T_CHECK(st.live > 0, "the handles allocated nothing through the custom allocator");
    nvp_chain_free(c);
    nvp_scaler_free(s);
    nvp_adam_free(o);
    nvp_rng_free(r2);
    ck_assert_uint_eq(st.live, 0);
    nvp_rng_free(r);
}
END_TEST

Suite *alloc_suite(void)
{
    Suite *s = suite_create("alloc");
    TCase *tc = tcase_create("failures");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_loop_test(tc, test_alloc_failures, 0, N_ATTEMPTS);
    tcase_add_test(tc, test_alloc_steady_state);
    tcase_add_test(tc, test_alloc_struct_copied);
    suite_add_tcase(s, tc);
    return s;
}
