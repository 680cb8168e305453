/* SPDX-License-Identifier: MIT */
/* Memory a call takes (issue 16, item 6): work space is sized by the rows a
 * call processes, not by a full chunk, so a model with very wide layers can
 * score one row, or take the gradient of one, without asking for
 * gigabytes. */
#include <stdlib.h>
#include <string.h>

#include "tests.h"

typedef struct biggest {
    size_t largest;
} biggest;

static void *big_alloc(void *user, size_t size)
{
    biggest *b = user;
    if (size > b->largest)
        b->largest = size;
    return malloc(size);
}

static void *big_realloc(void *user, void *p, size_t size)
{
    biggest *b = user;
    if (size > b->largest)
        b->largest = size;
    return realloc(p, size);
}

static void big_free(void *user, void *p)
{
    (void)user;
    free(p);
}

/* D = 2, one coupling whose hidden widths alternate 65536 and 1: about 2 MB
 * of parameters, and 64 MB of activations for a full chunk of 256 rows per
 * wide layer.  One row's log density and gradient must stay within a few
 * times the model's own size. */
START_TEST(test_memory_follows_rows)
{
    biggest b = {0};
    const nvp_allocator a = {NVP_ALLOCATOR_VERSION, &b, big_alloc, big_realloc, big_free};
    const size_t hidden[3] = {65536, 1, 65536};
    nvp_rng *r = t_rng(9500);
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_alternating(&c, 2, 1, 3, hidden, 0, r, &a));
    T_OK(nvp_chain_set_threads(c, 1));
    const size_t model_bytes = nvp_chain_num_params(c) * sizeof(float);
    b.largest = 0;
    float y[2] = {0.3f, -0.2f}, lp;
    T_OK(nvp_chain_log_prob(c, 1, y, &lp));
    T_CHECK(b.largest <= 4 * model_bytes, "log_prob of one row asked for %zu bytes at once (model: %zu)",
            b.largest, model_bytes);
    float *g = t_xmalloc(model_bytes);
    b.largest = 0;
    T_OK(nvp_chain_nll_grad(c, 1, y, g, NULL));
    T_CHECK(b.largest <= 4 * model_bytes, "nll_grad of one row asked for %zu bytes at once (model: %zu)",
            b.largest, model_bytes);
    /* and a full chunk still works, with a work space of its own size */
    float *many = t_xmalloc(2 * 300 * sizeof *many), *lps = t_xmalloc(300 * sizeof *lps);
    t_prng p;
    t_prng_seed(&p, 9501);
    t_fill_normal(&p, 600, many, 1.0);
    T_OK(nvp_chain_log_prob(c, 300, many, lps));
    T_CLOSE(lps[0], lp, 0, 1e30, 9500, "finite"); /* both computed */
    T_OK(nvp_chain_log_prob(c, 1, y, lps));
    ck_assert(memcmp(&lps[0], &lp, sizeof lp) == 0);
    free(many);
    free(lps);
    free(g);
    nvp_chain_free(c);
    nvp_rng_free(r);
}
END_TEST

/* Evaluation chunks hold up to 1024 rows, but half as many where a
 * chunk's work space would pass 32 MiB: D = 2, one coupling of hidden
 * widths 8192, 1, 8192 (few parameters, 66 KB of work space per row)
 * scores 2048 rows in chunks of 512 rows (about 34 MB), not 1024 (about
 * 68 MB), and every row as it scores alone. */
START_TEST(test_memory_wide_eval_chunks)
{
    biggest b = {0};
    const nvp_allocator a = {NVP_ALLOCATOR_VERSION, &b, big_alloc, big_realloc, big_free};
    const size_t hidden[3] = {8192, 1, 8192}, n = 2048;
    nvp_rng *r = t_rng(9510);
    nvp_chain *c = NULL;
    T_OK(nvp_chain_create_alternating(&c, 2, 1, 3, hidden, 0, r, &a));
    T_OK(nvp_chain_set_threads(c, 1));
    float *y = t_xmalloc(2 * n * sizeof *y), *lp = t_xmalloc(n * sizeof *lp);
    t_prng p;
    t_prng_seed(&p, 9511);
    t_fill_normal(&p, 2 * n, y, 1.0);
    b.largest = 0;
    T_OK(nvp_chain_log_prob(c, n, y, lp));
    T_CHECK(b.largest > ((size_t)30 << 20) && b.largest <= ((size_t)40 << 20),
            "log_prob of %zu rows asked for %zu bytes at once", n, b.largest);
    for (size_t i = 0; i < n; i += 137) {
        float one;
        T_OK(nvp_chain_log_prob(c, 1, y + 2 * i, &one));
        ck_assert(memcmp(&one, &lp[i], sizeof one) == 0);
    }
    free(y);
    free(lp);
    nvp_chain_free(c);
    nvp_rng_free(r);
}
END_TEST

Suite *memory_suite(void)
{
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_test(tc, test_memory_follows_rows);
    tcase_add_test(tc, test_memory_wide_eval_chunks);
    suite_add_tcase(s, tc);
    return s;
}
