/* SPDX-License-Identifier: MIT */
/* The libnvpflow test suite: one Check suite per module, plus the helpers
 * the suites share (a test-local random generator for inputs, tolerance
 * checks that print the seed and the compared values, a counting allocator
 * that can fail on demand). */
#ifndef NVP_TESTS_H
#define NVP_TESTS_H

#include <check.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "nvpflow.h"

/* ------------------------------------------------------------ suites */
Suite *rng_suite(void);
Suite *base_suite(void);
Suite *gemm_suite(void);
Suite *coupling_suite(void);
Suite *chain_suite(void);
Suite *grad_suite(void);
Suite *adam_suite(void);
/* The parameter average's test case, added to the adam suite. */
void adam_average_tests(Suite *s);
void adam_clip_tests(Suite *s);
Suite *data_suite(void);
Suite *errors_suite(void);
Suite *alloc_suite(void);
Suite *train_suite(void);
Suite *io_suite(void);
Suite *pool_suite(void);
Suite *sweep_suite(void);
Suite *kernels_suite(void);
Suite *layer_kinds_suite(void);
Suite *memory_suite(void);
Suite *conditional_suite(void);
Suite *affine_form_suite(void);
Suite *vjp_suite(void);
Suite *precision_suite(void);
Suite *base_mixture_suite(void);
Suite *grad_check_suite(void);
Suite *exp_array_suite(void);

/* Per-test-case timeout in seconds (Check's default of 4 s is too short on
 * a loaded machine; a test that hangs still gets killed). */
#define T_TIMEOUT 120

/* ---------------------------------------------- test-local randomness */
/* splitmix64, independent of the library's generator: inputs of the tests
 * do not depend on the code under test. */
typedef struct t_prng {
    uint64_t s;
} t_prng;

void t_prng_seed(t_prng *p, uint64_t seed);
uint64_t t_prng_u64(t_prng *p);
/* Uniform double in [0, 1). */
double t_prng_unif(t_prng *p);
/* Uniform double in [lo, hi). */
double t_prng_range(t_prng *p, double lo, double hi);
/* Standard normal double (Box-Muller). */
double t_prng_normal(t_prng *p);
/* n floats N(0, scale^2). */
void t_fill_normal(t_prng *p, size_t n, float *x, double scale);
/* n floats U(lo, hi). */
void t_fill_unif(t_prng *p, size_t n, float *x, double lo, double hi);

/* -------------------------------------------------- library shortcuts */
/* A generator from the library, asserting success. */
nvp_rng *t_rng(uint64_t seed);
/* A chain with alternating half masks, asserting success. */
nvp_chain *t_chain(size_t dim, size_t n_layers, size_t n_hidden,
                   const size_t *hidden, uint64_t seed);
/* A 2-D chain of 4 layers of 128-128 conditioners (67,592 parameters:
 * enough for a training step's update to be shared out over a pool) on
 * `threads` threads, and an Adam with step size 1e-3 over it, asserting
 * success; *np receives the parameter count. */
void t_pool_training(size_t threads, uint64_t seed, nvp_chain **c,
                     nvp_adam **o, size_t *np);

/* ------------------------------------------------------- comparisons */
/* Asserts |got - want| <= atol + rtol * |want| (false for NaN) and
 * otherwise fails with the seed, the values and a
 * description (printf-style, at least a format string).  The message is
 * only formatted on failure, so this is cheap inside loops. */
#define T_CLOSE(got, want, rtol, atol, seed, ...)                            \
    do {                                                                     \
        const double t_g_ = (double)(got), t_w_ = (double)(want);            \
        const double t_tol_ = (double)(atol) + (double)(rtol) * fabs(t_w_);  \
        if (!(fabs(t_g_ - t_w_) <= t_tol_)) {                                \
            char t_what_[256];                                               \
            snprintf(t_what_, sizeof t_what_, __VA_ARGS__);                  \
            ck_abort_msg("%s (seed %llu): got %.9g, want %.9g, |diff| %.3g " \
                         "> tol %.3g",                                       \
                         t_what_, (unsigned long long)(seed), t_g_, t_w_,    \
                         fabs(t_g_ - t_w_), t_tol_);                         \
        }                                                                    \
    } while (0)

/* Asserts a condition; the message (printf-style) is formatted only on
 * failure. */
#define T_CHECK(cond, ...)                                                   \
    do {                                                                     \
        if (!(cond))                                                         \
            ck_abort_msg(__VA_ARGS__);                                       \
    } while (0)

/* Asserts rc == NVP_OK, printing the code, its text and nvp_errmsg(). */
#define T_OK(call)                                                           \
    do {                                                                     \
        const int t_rc_ = (call);                                            \
        if (t_rc_ != NVP_OK)                                                 \
            ck_abort_msg("%s returned %d (%s): %s", #call, t_rc_,            \
                         nvp_strerror(t_rc_), nvp_errmsg());                 \
    } while (0)

/* Bitwise equality of two float arrays; returns the first differing index
 * or (size_t)-1. */
size_t t_first_diff(const float *a, const float *b, size_t n);

/* ---------------------------------------------- counting allocator */
/* Counts live blocks and allocation calls; the call with index fail_at
 * (0-based, counting alloc_fn and realloc_fn calls) returns NULL.
 * fail_at = T_NEVER never fails. */
#define T_NEVER ((size_t)-1)
typedef struct t_alloc_state {
    size_t live;    /* blocks allocated and not yet freed */
    size_t calls;   /* allocation calls so far */
    size_t fail_at; /* index of the call that fails */
    size_t failed;  /* calls that returned NULL on purpose */
} t_alloc_state;

/* An nvp_allocator whose user pointer is st (st is reset: no failure). */
nvp_allocator t_counting_allocator(t_alloc_state *st);

/* Helpers for checks on whole arrays. */
void *t_xmalloc(size_t bytes);

#endif
