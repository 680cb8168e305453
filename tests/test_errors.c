/* SPDX-License-Identifier: MIT */
/* Every error path of the public API: NULL for every pointer argument,
 * wrong dimensions and lengths, n == 0, n * dim overflowing, bad masks,
 * flags and allocators, malformed chains, non-finite values.  Each case
 * checks the status code, that nvp_errmsg() names the function, and (for
 * a call on a live handle) that the handle's own message does too.  Then
 * the status strings, version macros, thread-local messages, and that
 * refused calls leave models and optimizers bitwise unchanged. */
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tests.h"

#define HUGE_N (SIZE_MAX / 2) /* n * dim * sizeof(float) overflows for dim 2 */

/* ---------------------------------------------------------- fixture */
static struct {
    nvp_rng *rng;
    nvp_base *base, *base3;
    nvp_coupling *layer;          /* standalone, dim 2 */
    nvp_coupling *free_layers[2]; /* dim 2, for nvp_chain_create */
    nvp_coupling *layer3;         /* dim 3 */
    nvp_coupling *dup[2], *mixed[2], *with_null[2], *owned[2];
    nvp_chain *chain;             /* dim 2, 2 layers, hidden 4 */
    nvp_adam *adam, *adam3;
    nvp_scaler *scaler, *scaler3;
    size_t lnp, cnp;
    size_t sz[8], szn;
    unsigned char bytes[4096]; /* zeros: not an nvpflow file */
    unsigned char *model;      /* F.chain saved */
    size_t model_size;
    float f[4096], g[4096], nanbuf[4096], infbuf[4096];
    uint64_t u[64];
    int labels[64];
    unsigned char m[8];
    /* Outputs of constructor calls that must fail. */
    nvp_rng *tmp_rng;
    nvp_base *tmp_base;
    nvp_coupling *tmp_layer;
    nvp_chain *tmp_chain;
    nvp_adam *tmp_adam;
    nvp_scaler *tmp_scaler;
} F;

static const unsigned char mask10[2] = {1, 0}, mask11[2] = {1, 1}, mask00[2] = {0, 0},
                           mask12[2] = {1, 2}, mask1[1] = {1}, mask_ff[2] = {0, 255};
static unsigned char big_mask[NVP_MAX_DIM + 1];
static const size_t hid4[1] = {4}, hid0[1] = {0}, hid_wide[1] = {NVP_MAX_WIDTH + 1},
                    hid_huge[2] = {NVP_MAX_WIDTH, NVP_MAX_WIDTH}, hid_4_0[2] = {4, 0};
static size_t hid_many[NVP_MAX_HIDDEN_LAYERS + 1];
static nvp_allocator bad_version, bad_alloc_fn, bad_realloc_fn, bad_free_fn;

static void *ok_alloc(void *u, size_t n) { (void)u; return malloc(n); }
static void *ok_realloc(void *u, void *p, size_t n) { (void)u; return realloc(p, n); }
static void ok_free(void *u, void *p) { (void)u; free(p); }

static void errors_setup(void)
{
    memset(&F, 0, sizeof F);
    F.rng = t_rng(9);
    T_OK(nvp_base_create_normal(&F.base, 2, NULL));
    T_OK(nvp_base_create_normal(&F.base3, 3, NULL));
    T_OK(nvp_coupling_create(&F.layer, 2, mask10, 1, hid4, 0, F.rng, NULL));
    T_OK(nvp_coupling_create_half(&F.free_layers[0], 2, 0, 1, hid4, 0, F.rng, NULL));
    T_OK(nvp_coupling_create_half(&F.free_layers[1], 2, 1, 1, hid4, 0, F.rng, NULL));
    T_OK(nvp_coupling_create_half(&F.layer3, 3, 0, 1, hid4, 0, F.rng, NULL));
    T_OK(nvp_chain_create_alternating(&F.chain, 2, 2, 1, hid4, 0, F.rng, NULL));
    F.lnp = nvp_coupling_num_params(F.layer);
    F.cnp = nvp_chain_num_params(F.chain);
    T_OK(nvp_adam_create(&F.adam, F.cnp, NULL));
    T_OK(nvp_adam_create(&F.adam3, 3, NULL));
    T_OK(nvp_scaler_create(&F.scaler, 2, NULL));
    T_OK(nvp_scaler_create(&F.scaler3, 3, NULL));
    T_OK(nvp_chain_save_buffer(F.chain, NULL, 0, NULL, &F.model_size));
    F.model = t_xmalloc(F.model_size);
    T_OK(nvp_chain_save_buffer(F.chain, NULL, F.model_size, F.model, &F.model_size));
    F.dup[0] = F.dup[1] = F.free_layers[0];
    F.mixed[0] = F.free_layers[0];
    F.mixed[1] = F.layer3;
    F.with_null[0] = F.free_layers[0];
    F.owned[0] = (nvp_coupling *)nvp_layer_as_coupling(nvp_chain_layer(F.chain, 0, NULL)); /* already in a chain */
    F.owned[1] = F.free_layers[1];
    for (size_t i = 0; i < 4096; i++) {
        F.f[i] = 0.25f * (float)(i % 9) - 1.0f;
        F.g[i] = 0.5f;
        F.nanbuf[i] = NAN;
        F.infbuf[i] = INFINITY;
    }
    for (size_t i = 0; i < sizeof big_mask; i++)
        big_mask[i] = (unsigned char)(i & 1);
    for (size_t i = 0; i < NVP_MAX_HIDDEN_LAYERS + 1; i++)
        hid_many[i] = 2;
    const nvp_allocator good = {NVP_ALLOCATOR_VERSION, NULL, ok_alloc, ok_realloc, ok_free};
    bad_version = bad_alloc_fn = bad_realloc_fn = bad_free_fn = good;
    bad_version.version = NVP_ALLOCATOR_VERSION + 1;
    bad_alloc_fn.alloc_fn = NULL;
    bad_realloc_fn.realloc_fn = NULL;
    bad_free_fn.free_fn = NULL;
}

static void errors_teardown(void)
{
    nvp_chain_free(F.chain);
    if (F.tmp_chain) {
        /* A chain_create case wrongly succeeded and owns some of the
         * fixture's handles now: leak them rather than free twice. */
        nvp_chain_free(F.tmp_chain);
    } else {
        nvp_coupling_free(F.free_layers[0]);
        nvp_coupling_free(F.free_layers[1]);
        nvp_coupling_free(F.layer3);
        nvp_base_free(F.base);
        nvp_base_free(F.base3);
    }
    nvp_coupling_free(F.layer);
    nvp_adam_free(F.adam);
    nvp_adam_free(F.adam3);
    nvp_scaler_free(F.scaler);
    nvp_scaler_free(F.scaler3);
    free(F.model);
    nvp_rng_free(F.rng);
    nvp_rng_free(F.tmp_rng);
    nvp_base_free(F.tmp_base);
    nvp_coupling_free(F.tmp_layer);
    nvp_adam_free(F.tmp_adam);
    nvp_scaler_free(F.tmp_scaler);
}

/* ------------------------------------------------------------ cases */
/* Which handle's own message must name the function too. */
enum { H_NONE, H_RNG, H_BASE, H_LAYER, H_CHAIN, H_ADAM, H_SCALER };

#define CL F.layer
#define CC F.chain
#define CR F.rng

/* A log density the reverse-KL cases never reach (they fail first). */
static int never_called(void *user, size_t n, size_t dim, const float *y,
                        float *log_p, float *dlogp_dy)
{
    (void)user, (void)n, (void)dim, (void)y, (void)log_p, (void)dlogp_dy;
    ck_abort_msg("the log density was called");
    return 0;
}

/* X(id, function, expected code, acceptable alternative (0: none), handle,
 *   call) */
#define ERROR_CASES(X)                                                                      \
    /* rng */                                                                               \
    X(rng_create_out, "nvp_rng_create", NVP_EINVAL, 0, H_NONE, nvp_rng_create(NULL, 1, NULL)) \
    X(rng_create_alloc_version, "nvp_rng_create", NVP_EINVAL, 0, H_NONE, nvp_rng_create(&F.tmp_rng, 1, &bad_version)) \
    X(rng_create_alloc_fn, "nvp_rng_create", NVP_EINVAL, 0, H_NONE, nvp_rng_create(&F.tmp_rng, 1, &bad_alloc_fn)) \
    X(rng_create_realloc_fn, "nvp_rng_create", NVP_EINVAL, 0, H_NONE, nvp_rng_create(&F.tmp_rng, 1, &bad_realloc_fn)) \
    X(rng_create_free_fn, "nvp_rng_create", NVP_EINVAL, 0, H_NONE, nvp_rng_create(&F.tmp_rng, 1, &bad_free_fn)) \
    X(rng_seed_null, "nvp_rng_seed", NVP_EINVAL, 0, H_NONE, nvp_rng_seed(NULL, 1))          \
    X(rng_uniform_rng, "nvp_rng_uniform", NVP_EINVAL, 0, H_NONE, nvp_rng_uniform(NULL, 4, F.f)) \
    X(rng_uniform_out, "nvp_rng_uniform", NVP_EINVAL, 0, H_RNG, nvp_rng_uniform(CR, 4, NULL)) \
    X(rng_uniform_n0, "nvp_rng_uniform", NVP_EINVAL, 0, H_RNG, nvp_rng_uniform(CR, 0, F.f))   \
    X(rng_normal_rng, "nvp_rng_normal", NVP_EINVAL, 0, H_NONE, nvp_rng_normal(NULL, 4, F.f))  \
    X(rng_normal_out, "nvp_rng_normal", NVP_EINVAL, 0, H_RNG, nvp_rng_normal(CR, 4, NULL))    \
    X(rng_normal_n0, "nvp_rng_normal", NVP_EINVAL, 0, H_RNG, nvp_rng_normal(CR, 0, F.f))      \
    X(rng_index_rng, "nvp_rng_index", NVP_EINVAL, 0, H_NONE, nvp_rng_index(NULL, 4, 10, F.u)) \
    X(rng_index_out, "nvp_rng_index", NVP_EINVAL, 0, H_RNG, nvp_rng_index(CR, 4, 10, NULL))   \
    X(rng_index_n0, "nvp_rng_index", NVP_EINVAL, 0, H_RNG, nvp_rng_index(CR, 0, 10, F.u))     \
    X(rng_index_bound0, "nvp_rng_index", NVP_EINVAL, 0, H_RNG, nvp_rng_index(CR, 4, 0, F.u))  \
    /* base */                                                                              \
    X(base_create_out, "nvp_base_create_normal", NVP_EINVAL, 0, H_NONE, nvp_base_create_normal(NULL, 2, NULL)) \
    X(base_create_dim0, "nvp_base_create_normal", NVP_EINVAL, 0, H_NONE, nvp_base_create_normal(&F.tmp_base, 0, NULL)) \
    X(base_create_dim_big, "nvp_base_create_normal", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_base_create_normal(&F.tmp_base, NVP_MAX_DIM + 1, NULL)) \
    X(base_create_dim_max, "nvp_base_create_normal", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_base_create_normal(&F.tmp_base, SIZE_MAX, NULL)) \
    X(base_create_alloc, "nvp_base_create_normal", NVP_EINVAL, 0, H_NONE, nvp_base_create_normal(&F.tmp_base, 2, &bad_version)) \
    X(base_create_alloc_fn, "nvp_base_create_normal", NVP_EINVAL, 0, H_NONE, nvp_base_create_normal(&F.tmp_base, 2, &bad_free_fn)) \
    X(base_sample_base, "nvp_base_sample", NVP_EINVAL, 0, H_NONE, nvp_base_sample(NULL, CR, 2, F.f)) \
    X(base_sample_rng, "nvp_base_sample", NVP_EINVAL, 0, H_BASE, nvp_base_sample(F.base, NULL, 2, F.f)) \
    X(base_sample_x, "nvp_base_sample", NVP_EINVAL, 0, H_BASE, nvp_base_sample(F.base, CR, 2, NULL)) \
    X(base_sample_n0, "nvp_base_sample", NVP_EINVAL, 0, H_BASE, nvp_base_sample(F.base, CR, 0, F.f)) \
    X(base_sample_huge, "nvp_base_sample", NVP_EOVERFLOW, 0, H_BASE, nvp_base_sample(F.base, CR, HUGE_N, F.f)) \
    X(base_lp_base, "nvp_base_log_prob", NVP_EINVAL, 0, H_NONE, nvp_base_log_prob(NULL, 2, F.f, F.g)) \
    X(base_lp_x, "nvp_base_log_prob", NVP_EINVAL, 0, H_BASE, nvp_base_log_prob(F.base, 2, NULL, F.g)) \
    X(base_lp_lp, "nvp_base_log_prob", NVP_EINVAL, 0, H_BASE, nvp_base_log_prob(F.base, 2, F.f, NULL)) \
    X(base_lp_n0, "nvp_base_log_prob", NVP_EINVAL, 0, H_BASE, nvp_base_log_prob(F.base, 0, F.f, F.g)) \
    X(base_lp_huge, "nvp_base_log_prob", NVP_EOVERFLOW, 0, H_BASE, nvp_base_log_prob(F.base, HUGE_N, F.f, F.g)) \
    X(base_grad_base, "nvp_base_log_prob_grad", NVP_EINVAL, 0, H_NONE, nvp_base_log_prob_grad(NULL, 2, F.f, F.g)) \
    X(base_grad_x, "nvp_base_log_prob_grad", NVP_EINVAL, 0, H_BASE, nvp_base_log_prob_grad(F.base, 2, NULL, F.g)) \
    X(base_grad_g, "nvp_base_log_prob_grad", NVP_EINVAL, 0, H_BASE, nvp_base_log_prob_grad(F.base, 2, F.f, NULL)) \
    X(base_grad_n0, "nvp_base_log_prob_grad", NVP_EINVAL, 0, H_BASE, nvp_base_log_prob_grad(F.base, 0, F.f, F.g)) \
    X(base_grad_huge, "nvp_base_log_prob_grad", NVP_EOVERFLOW, 0, H_BASE, nvp_base_log_prob_grad(F.base, HUGE_N, F.f, F.g)) \
    /* coupling constructors */                                                             \
    X(cpl_create_out, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(NULL, 2, mask10, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_mask, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, NULL, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_rng, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 1, hid4, 0, NULL, NULL)) \
    X(cpl_create_dim0, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 0, mask10, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_dim1, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 1, mask1, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_dim_big, "nvp_coupling_create", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_coupling_create(&F.tmp_layer, NVP_MAX_DIM + 1, big_mask, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_mask_ones, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask11, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_mask_zeros, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask00, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_mask_two, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask12, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_mask_255, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask_ff, 1, hid4, 0, CR, NULL)) \
    X(cpl_create_flags, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 1, hid4, 2u, CR, NULL)) \
    X(cpl_create_flags_high, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 1, hid4, 0x80000001u, CR, NULL)) \
    X(cpl_create_hidden_null, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 2, NULL, 0, CR, NULL)) \
    X(cpl_create_width0, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 1, hid0, 0, CR, NULL)) \
    X(cpl_create_width0_second, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 2, hid_4_0, 0, CR, NULL)) \
    X(cpl_create_width_big, "nvp_coupling_create", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 1, hid_wide, 0, CR, NULL)) \
    X(cpl_create_too_deep, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, NVP_MAX_HIDDEN_LAYERS + 1, hid_many, 0, CR, NULL)) \
    X(cpl_create_too_many_params, "nvp_coupling_create", NVP_EOVERFLOW, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 2, hid_huge, 0, CR, NULL)) \
    X(cpl_create_alloc_version, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 1, hid4, 0, CR, &bad_version)) \
    X(cpl_create_alloc_fn, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 1, hid4, 0, CR, &bad_alloc_fn)) \
    X(cpl_create_realloc_fn, "nvp_coupling_create", NVP_EINVAL, 0, H_NONE, nvp_coupling_create(&F.tmp_layer, 2, mask10, 1, hid4, 0, CR, &bad_realloc_fn)) \
    X(cpl_half_out, "nvp_coupling_create_half", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_half(NULL, 2, 0, 1, hid4, 0, CR, NULL)) \
    X(cpl_half_rng, "nvp_coupling_create_half", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_half(&F.tmp_layer, 2, 0, 1, hid4, 0, NULL, NULL)) \
    X(cpl_half_dim0, "nvp_coupling_create_half", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_half(&F.tmp_layer, 0, 0, 1, hid4, 0, CR, NULL)) \
    X(cpl_half_dim1, "nvp_coupling_create_half", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_half(&F.tmp_layer, 1, 1, 1, hid4, 0, CR, NULL)) \
    X(cpl_half_flags, "nvp_coupling_create_half", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_half(&F.tmp_layer, 2, 0, 1, hid4, 4u, CR, NULL)) \
    X(cpl_half_hidden_null, "nvp_coupling_create_half", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_half(&F.tmp_layer, 2, 0, 1, NULL, 0, CR, NULL)) \
    X(cpl_half_width0, "nvp_coupling_create_half", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_half(&F.tmp_layer, 2, 0, 1, hid0, 0, CR, NULL)) \
    X(cpl_half_alloc, "nvp_coupling_create_half", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_half(&F.tmp_layer, 2, 0, 1, hid4, 0, CR, &bad_version)) \
    /* coupling calls */                                                                    \
    X(cpl_mask_layer, "nvp_coupling_get_mask", NVP_EINVAL, 0, H_NONE, nvp_coupling_get_mask(NULL, 2, F.m)) \
    X(cpl_mask_mask, "nvp_coupling_get_mask", NVP_EINVAL, 0, H_LAYER, nvp_coupling_get_mask(CL, 2, NULL)) \
    X(cpl_mask_dim, "nvp_coupling_get_mask", NVP_EDIM, 0, H_LAYER, nvp_coupling_get_mask(CL, 3, F.m)) \
    X(cpl_getp_layer, "nvp_coupling_get_params", NVP_EINVAL, 0, H_NONE, nvp_coupling_get_params(NULL, F.lnp, F.f)) \
    X(cpl_getp_dst, "nvp_coupling_get_params", NVP_EINVAL, 0, H_LAYER, nvp_coupling_get_params(CL, F.lnp, NULL)) \
    X(cpl_getp_short, "nvp_coupling_get_params", NVP_EDIM, 0, H_LAYER, nvp_coupling_get_params(CL, F.lnp - 1, F.f)) \
    X(cpl_getp_long, "nvp_coupling_get_params", NVP_EDIM, 0, H_LAYER, nvp_coupling_get_params(CL, F.lnp + 1, F.f)) \
    X(cpl_setp_layer, "nvp_coupling_set_params", NVP_EINVAL, 0, H_NONE, nvp_coupling_set_params(NULL, F.lnp, F.f)) \
    X(cpl_setp_src, "nvp_coupling_set_params", NVP_EINVAL, 0, H_LAYER, nvp_coupling_set_params(CL, F.lnp, NULL)) \
    X(cpl_setp_count, "nvp_coupling_set_params", NVP_EDIM, 0, H_LAYER, nvp_coupling_set_params(CL, F.lnp + 1, F.f)) \
    X(cpl_setp_nan, "nvp_coupling_set_params", NVP_ENONFINITE, 0, H_LAYER, nvp_coupling_set_params(CL, F.lnp, F.nanbuf)) \
    X(cpl_setp_inf, "nvp_coupling_set_params", NVP_ENONFINITE, 0, H_LAYER, nvp_coupling_set_params(CL, F.lnp, F.infbuf)) \
    X(cpl_fwd_layer, "nvp_coupling_forward", NVP_EINVAL, 0, H_NONE, nvp_coupling_forward(NULL, 2, F.f, F.g, NULL)) \
    X(cpl_fwd_x, "nvp_coupling_forward", NVP_EINVAL, 0, H_LAYER, nvp_coupling_forward(CL, 2, NULL, F.g, NULL)) \
    X(cpl_fwd_y, "nvp_coupling_forward", NVP_EINVAL, 0, H_LAYER, nvp_coupling_forward(CL, 2, F.f, NULL, NULL)) \
    X(cpl_fwd_n0, "nvp_coupling_forward", NVP_EINVAL, 0, H_LAYER, nvp_coupling_forward(CL, 0, F.f, F.g, NULL)) \
    X(cpl_fwd_huge, "nvp_coupling_forward", NVP_EOVERFLOW, 0, H_LAYER, nvp_coupling_forward(CL, HUGE_N, F.f, F.g, NULL)) \
    X(cpl_inv_layer, "nvp_coupling_inverse", NVP_EINVAL, 0, H_NONE, nvp_coupling_inverse(NULL, 2, F.f, F.g, NULL)) \
    X(cpl_inv_y, "nvp_coupling_inverse", NVP_EINVAL, 0, H_LAYER, nvp_coupling_inverse(CL, 2, NULL, F.g, NULL)) \
    X(cpl_inv_x, "nvp_coupling_inverse", NVP_EINVAL, 0, H_LAYER, nvp_coupling_inverse(CL, 2, F.f, NULL, NULL)) \
    X(cpl_inv_n0, "nvp_coupling_inverse", NVP_EINVAL, 0, H_LAYER, nvp_coupling_inverse(CL, 0, F.f, F.g, NULL)) \
    X(cpl_inv_huge, "nvp_coupling_inverse", NVP_EOVERFLOW, 0, H_LAYER, nvp_coupling_inverse(CL, HUGE_N, F.f, F.g, NULL)) \
    X(cpl_bwd_layer, "nvp_coupling_inverse_backward", NVP_EINVAL, 0, H_NONE, nvp_coupling_inverse_backward(NULL, 2, F.f, F.f, NULL, F.g, NULL)) \
    X(cpl_bwd_y, "nvp_coupling_inverse_backward", NVP_EINVAL, 0, H_LAYER, nvp_coupling_inverse_backward(CL, 2, NULL, F.f, NULL, F.g, NULL)) \
    X(cpl_bwd_dx, "nvp_coupling_inverse_backward", NVP_EINVAL, 0, H_LAYER, nvp_coupling_inverse_backward(CL, 2, F.f, NULL, NULL, F.g, NULL)) \
    X(cpl_bwd_n0, "nvp_coupling_inverse_backward", NVP_EINVAL, 0, H_LAYER, nvp_coupling_inverse_backward(CL, 0, F.f, F.f, NULL, F.g, NULL)) \
    X(cpl_bwd_huge, "nvp_coupling_inverse_backward", NVP_EOVERFLOW, 0, H_LAYER, nvp_coupling_inverse_backward(CL, HUGE_N, F.f, F.f, NULL, F.g, NULL)) \
    X(cpl_bwd_nan_y, "nvp_coupling_inverse_backward", NVP_ENONFINITE, 0, H_LAYER, nvp_coupling_inverse_backward(CL, 2, F.nanbuf, F.f, NULL, F.g, F.g)) \
    X(cpl_bwd_inf_dx, "nvp_coupling_inverse_backward", NVP_ENONFINITE, 0, H_LAYER, nvp_coupling_inverse_backward(CL, 2, F.f, F.infbuf, NULL, F.g, F.g)) \
    X(cpl_bwd_nan_dildj, "nvp_coupling_inverse_backward", NVP_ENONFINITE, 0, H_LAYER, nvp_coupling_inverse_backward(CL, 2, F.f, F.f, F.nanbuf, F.g, F.g)) \
    /* chain constructors */                                                                \
    X(chain_create_out, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(NULL, F.base, 2, F.free_layers, NULL)) \
    X(chain_create_base, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(&F.tmp_chain, NULL, 2, F.free_layers, NULL)) \
    X(chain_create_layers, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, 2, NULL, NULL)) \
    X(chain_create_n0, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, 0, F.free_layers, NULL)) \
    X(chain_create_n_big, "nvp_chain_create", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, NVP_MAX_LAYERS + 1, F.free_layers, NULL)) \
    X(chain_create_null_layer, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, 2, F.with_null, NULL)) \
    X(chain_create_dim_mismatch, "nvp_chain_create", NVP_EDIM, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, 2, F.mixed, NULL)) \
    X(chain_create_base_mismatch, "nvp_chain_create", NVP_EDIM, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base3, 2, F.free_layers, NULL)) \
    X(chain_create_duplicate, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, 2, F.dup, NULL)) \
    X(chain_create_owned, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, 2, F.owned, NULL)) \
    X(chain_create_alloc, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, 2, F.free_layers, &bad_version)) \
    X(chain_create_alloc_fn, "nvp_chain_create", NVP_EINVAL, 0, H_NONE, nvp_chain_create(&F.tmp_chain, F.base, 2, F.free_layers, &bad_alloc_fn)) \
    X(chain_alt_out, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(NULL, 2, 2, 1, hid4, 0, CR, NULL)) \
    X(chain_alt_rng, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 2, 2, 1, hid4, 0, NULL, NULL)) \
    X(chain_alt_dim0, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 0, 2, 1, hid4, 0, CR, NULL)) \
    X(chain_alt_dim1, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 1, 2, 1, hid4, 0, CR, NULL)) \
    X(chain_alt_layers0, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 2, 0, 1, hid4, 0, CR, NULL)) \
    X(chain_alt_layers_big, "nvp_chain_create_alternating", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 2, NVP_MAX_LAYERS + 1, 1, hid4, 0, CR, NULL)) \
    X(chain_alt_hidden_null, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 2, 2, 2, NULL, 0, CR, NULL)) \
    X(chain_alt_width0, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 2, 2, 1, hid0, 0, CR, NULL)) \
    X(chain_alt_flags, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 2, 2, 1, hid4, 8u, CR, NULL)) \
    X(chain_alt_alloc, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 2, 2, 1, hid4, 0, CR, &bad_version)) \
    X(chain_alt_alloc_fn, "nvp_chain_create_alternating", NVP_EINVAL, 0, H_NONE, nvp_chain_create_alternating(&F.tmp_chain, 2, 2, 1, hid4, 0, CR, &bad_free_fn)) \
    /* chain calls */                                                                       \
    X(chain_getp_chain, "nvp_chain_get_params", NVP_EINVAL, 0, H_NONE, nvp_chain_get_params(NULL, F.cnp, F.f)) \
    X(chain_getp_dst, "nvp_chain_get_params", NVP_EINVAL, 0, H_CHAIN, nvp_chain_get_params(CC, F.cnp, NULL)) \
    X(chain_getp_count, "nvp_chain_get_params", NVP_EDIM, 0, H_CHAIN, nvp_chain_get_params(CC, F.cnp - 1, F.f)) \
    X(chain_setp_chain, "nvp_chain_set_params", NVP_EINVAL, 0, H_NONE, nvp_chain_set_params(NULL, F.cnp, F.f)) \
    X(chain_setp_src, "nvp_chain_set_params", NVP_EINVAL, 0, H_CHAIN, nvp_chain_set_params(CC, F.cnp, NULL)) \
    X(chain_setp_count, "nvp_chain_set_params", NVP_EDIM, 0, H_CHAIN, nvp_chain_set_params(CC, F.cnp + 1, F.f)) \
    X(chain_setp_nan, "nvp_chain_set_params", NVP_ENONFINITE, 0, H_CHAIN, nvp_chain_set_params(CC, F.cnp, F.nanbuf)) \
    X(chain_setp_inf, "nvp_chain_set_params", NVP_ENONFINITE, 0, H_CHAIN, nvp_chain_set_params(CC, F.cnp, F.infbuf)) \
    X(chain_sample_chain, "nvp_chain_sample", NVP_EINVAL, 0, H_NONE, nvp_chain_sample(NULL, CR, 2, F.f, NULL)) \
    X(chain_sample_rng, "nvp_chain_sample", NVP_EINVAL, 0, H_CHAIN, nvp_chain_sample(CC, NULL, 2, F.f, NULL)) \
    X(chain_sample_y, "nvp_chain_sample", NVP_EINVAL, 0, H_CHAIN, nvp_chain_sample(CC, CR, 2, NULL, F.g)) \
    X(chain_sample_n0, "nvp_chain_sample", NVP_EINVAL, 0, H_CHAIN, nvp_chain_sample(CC, CR, 0, F.f, NULL)) \
    X(chain_sample_huge, "nvp_chain_sample", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_sample(CC, CR, HUGE_N, F.f, NULL)) \
    X(chain_lp_chain, "nvp_chain_log_prob", NVP_EINVAL, 0, H_NONE, nvp_chain_log_prob(NULL, 2, F.f, F.g)) \
    X(chain_lp_y, "nvp_chain_log_prob", NVP_EINVAL, 0, H_CHAIN, nvp_chain_log_prob(CC, 2, NULL, F.g)) \
    X(chain_lp_lp, "nvp_chain_log_prob", NVP_EINVAL, 0, H_CHAIN, nvp_chain_log_prob(CC, 2, F.f, NULL)) \
    X(chain_lp_n0, "nvp_chain_log_prob", NVP_EINVAL, 0, H_CHAIN, nvp_chain_log_prob(CC, 0, F.f, F.g)) \
    X(chain_lp_huge, "nvp_chain_log_prob", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_log_prob(CC, HUGE_N, F.f, F.g)) \
    X(chain_fwd_chain, "nvp_chain_forward", NVP_EINVAL, 0, H_NONE, nvp_chain_forward(NULL, 2, F.f, F.g, NULL)) \
    X(chain_fwd_x, "nvp_chain_forward", NVP_EINVAL, 0, H_CHAIN, nvp_chain_forward(CC, 2, NULL, F.g, NULL)) \
    X(chain_fwd_y, "nvp_chain_forward", NVP_EINVAL, 0, H_CHAIN, nvp_chain_forward(CC, 2, F.f, NULL, NULL)) \
    X(chain_fwd_n0, "nvp_chain_forward", NVP_EINVAL, 0, H_CHAIN, nvp_chain_forward(CC, 0, F.f, F.g, NULL)) \
    X(chain_fwd_huge, "nvp_chain_forward", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_forward(CC, HUGE_N, F.f, F.g, NULL)) \
    X(chain_inv_chain, "nvp_chain_inverse", NVP_EINVAL, 0, H_NONE, nvp_chain_inverse(NULL, 2, F.f, F.g, NULL)) \
    X(chain_inv_y, "nvp_chain_inverse", NVP_EINVAL, 0, H_CHAIN, nvp_chain_inverse(CC, 2, NULL, F.g, NULL)) \
    X(chain_inv_x, "nvp_chain_inverse", NVP_EINVAL, 0, H_CHAIN, nvp_chain_inverse(CC, 2, F.f, NULL, NULL)) \
    X(chain_inv_n0, "nvp_chain_inverse", NVP_EINVAL, 0, H_CHAIN, nvp_chain_inverse(CC, 0, F.f, F.g, NULL)) \
    X(chain_inv_huge, "nvp_chain_inverse", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_inverse(CC, HUGE_N, F.f, F.g, NULL)) \
    X(chain_trace_chain, "nvp_chain_forward_trace", NVP_EINVAL, 0, H_NONE, nvp_chain_forward_trace(NULL, 2, F.f, F.g)) \
    X(chain_trace_x, "nvp_chain_forward_trace", NVP_EINVAL, 0, H_CHAIN, nvp_chain_forward_trace(CC, 2, NULL, F.g)) \
    X(chain_trace_stages, "nvp_chain_forward_trace", NVP_EINVAL, 0, H_CHAIN, nvp_chain_forward_trace(CC, 2, F.f, NULL)) \
    X(chain_trace_n0, "nvp_chain_forward_trace", NVP_EINVAL, 0, H_CHAIN, nvp_chain_forward_trace(CC, 0, F.f, F.g)) \
    X(chain_trace_huge, "nvp_chain_forward_trace", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_forward_trace(CC, HUGE_N, F.f, F.g)) \
    X(chain_trace_stages_overflow, "nvp_chain_forward_trace", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_forward_trace(CC, SIZE_MAX / 16, F.f, F.g)) \
    X(chain_nll_chain, "nvp_chain_nll_grad", NVP_EINVAL, 0, H_NONE, nvp_chain_nll_grad(NULL, 2, F.f, F.g, NULL)) \
    X(chain_nll_y, "nvp_chain_nll_grad", NVP_EINVAL, 0, H_CHAIN, nvp_chain_nll_grad(CC, 2, NULL, F.g, NULL)) \
    X(chain_nll_grad, "nvp_chain_nll_grad", NVP_EINVAL, 0, H_CHAIN, nvp_chain_nll_grad(CC, 2, F.f, NULL, NULL)) \
    X(chain_nll_n0, "nvp_chain_nll_grad", NVP_EINVAL, 0, H_CHAIN, nvp_chain_nll_grad(CC, 0, F.f, F.g, NULL)) \
    X(chain_nll_huge, "nvp_chain_nll_grad", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_nll_grad(CC, HUGE_N, F.f, F.g, NULL)) \
    X(chain_nll_nan, "nvp_chain_nll_grad", NVP_ENONFINITE, 0, H_CHAIN, nvp_chain_nll_grad(CC, 2, F.nanbuf, F.g, NULL)) \
    X(chain_nll_inf, "nvp_chain_nll_grad", NVP_ENONFINITE, 0, H_CHAIN, nvp_chain_nll_grad(CC, 2, F.infbuf, F.g, NULL)) \
    X(chain_rkl_rng, "nvp_chain_reverse_kl_grad", NVP_EINVAL, 0, H_CHAIN, nvp_chain_reverse_kl_grad(CC, NULL, 2, never_called, NULL, F.g, NULL)) \
    X(chain_rkl_fn, "nvp_chain_reverse_kl_grad", NVP_EINVAL, 0, H_CHAIN, nvp_chain_reverse_kl_grad(CC, CR, 2, NULL, NULL, F.g, NULL)) \
    X(chain_rkl_n0, "nvp_chain_reverse_kl_grad", NVP_EINVAL, 0, H_CHAIN, nvp_chain_reverse_kl_grad(CC, CR, 0, never_called, NULL, F.g, NULL)) \
    X(chain_rkl_arena, "nvp_chain_reverse_kl_grad", NVP_EOVERFLOW, NVP_ENOMEM, H_CHAIN, nvp_chain_reverse_kl_grad(CC, CR, SIZE_MAX / 16 - 1, never_called, NULL, F.g, NULL)) \
    X(chain_lpg_chain, "nvp_chain_log_prob_given", NVP_EINVAL, 0, H_NONE, nvp_chain_log_prob_given(NULL, 2, F.f, NULL, F.g)) \
    X(chain_lpg_y, "nvp_chain_log_prob_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_log_prob_given(CC, 2, NULL, NULL, F.g)) \
    X(chain_lpg_n0, "nvp_chain_log_prob_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_log_prob_given(CC, 0, F.f, NULL, F.g)) \
    X(chain_lpg_huge, "nvp_chain_log_prob_given", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_log_prob_given(CC, HUGE_N, F.f, NULL, F.g)) \
    X(chain_sg_rng, "nvp_chain_sample_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_sample_given(CC, NULL, 2, NULL, F.f, NULL)) \
    X(chain_sg_y, "nvp_chain_sample_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_sample_given(CC, CR, 2, NULL, NULL, NULL)) \
    X(chain_sg1_n0, "nvp_chain_sample_given_one", NVP_EINVAL, 0, H_CHAIN, nvp_chain_sample_given_one(CC, CR, 0, NULL, F.f, NULL)) \
    X(chain_fwdg_x, "nvp_chain_forward_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_forward_given(CC, 2, NULL, NULL, F.g, NULL)) \
    X(chain_invg_x, "nvp_chain_inverse_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_inverse_given(CC, 2, F.f, NULL, NULL, NULL)) \
    X(chain_trg_huge, "nvp_chain_forward_trace_given", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_forward_trace_given(CC, HUGE_N, F.f, NULL, F.g)) \
    X(chain_nllg_grad, "nvp_chain_nll_grad_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_nll_grad_given(CC, 2, F.f, NULL, NULL, NULL)) \
    X(chain_nllg_nan, "nvp_chain_nll_grad_given", NVP_ENONFINITE, 0, H_CHAIN, nvp_chain_nll_grad_given(CC, 2, F.nanbuf, NULL, F.g, NULL)) \
    X(chain_score_chain, "nvp_chain_score", NVP_EINVAL, 0, H_NONE, nvp_chain_score(NULL, 2, F.f, F.g, NULL)) \
    X(chain_score_y, "nvp_chain_score", NVP_EINVAL, 0, H_CHAIN, nvp_chain_score(CC, 2, NULL, F.g, NULL)) \
    X(chain_score_out, "nvp_chain_score", NVP_EINVAL, 0, H_CHAIN, nvp_chain_score(CC, 2, F.f, NULL, NULL)) \
    X(chain_score_n0, "nvp_chain_score", NVP_EINVAL, 0, H_CHAIN, nvp_chain_score(CC, 0, F.f, F.g, NULL)) \
    X(chain_score_huge, "nvp_chain_score", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_score(CC, HUGE_N, F.f, F.g, NULL)) \
    X(chain_score_inf, "nvp_chain_score", NVP_ENONFINITE, 0, H_CHAIN, nvp_chain_score(CC, 2, F.infbuf, F.g, NULL)) \
    X(chain_scoreg_out, "nvp_chain_score_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_score_given(CC, 2, F.f, NULL, NULL, NULL, NULL)) \
    X(chain_tsg_opt, "nvp_chain_train_step_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_train_step_given(CC, NULL, CR, 2, F.f, NULL, 2, NULL)) \
    X(chain_initg_data, "nvp_chain_init_from_data_given", NVP_EINVAL, 0, H_CHAIN, nvp_chain_init_from_data_given(CC, 2, NULL, NULL)) \
    X(chain_cond_dim, "nvp_coupling_create_conditional", NVP_EINVAL, 0, H_NONE, nvp_coupling_create_conditional(NULL, 2, 1, F.m, 0, NULL, 0, CR, NULL)) \
    X(chain_condchain_out, "nvp_chain_create_conditional", NVP_EINVAL, 0, H_NONE, nvp_chain_create_conditional(NULL, 2, 1, 2, 0, NULL, 0, CR, NULL)) \
    /* hidden widths, log-scale clamp, threads */                                           \
    X(cpl_hidden_layer, "nvp_coupling_get_hidden", NVP_EINVAL, 0, H_NONE, nvp_coupling_get_hidden(NULL, 4, F.sz, &F.szn)) \
    X(cpl_hidden_n, "nvp_coupling_get_hidden", NVP_EINVAL, 0, H_LAYER, nvp_coupling_get_hidden(CL, 4, F.sz, NULL)) \
    X(cpl_hidden_cap, "nvp_coupling_get_hidden", NVP_EBUFSIZE, 0, H_LAYER, nvp_coupling_get_hidden(CL, 0, F.sz, &F.szn)) \
    X(cpl_clamp_layer, "nvp_coupling_set_log_scale_clamp", NVP_EINVAL, 0, H_NONE, nvp_coupling_set_log_scale_clamp(NULL, 1.0f)) \
    X(cpl_clamp_neg, "nvp_coupling_set_log_scale_clamp", NVP_EINVAL, 0, H_LAYER, nvp_coupling_set_log_scale_clamp(CL, -0.5f)) \
    X(cpl_clamp_nan, "nvp_coupling_set_log_scale_clamp", NVP_EINVAL, 0, H_LAYER, nvp_coupling_set_log_scale_clamp(CL, NAN)) \
    X(cpl_clamp_inf, "nvp_coupling_set_log_scale_clamp", NVP_EINVAL, 0, H_LAYER, nvp_coupling_set_log_scale_clamp(CL, INFINITY)) \
    X(chain_clamp_chain, "nvp_chain_set_log_scale_clamp", NVP_EINVAL, 0, H_NONE, nvp_chain_set_log_scale_clamp(NULL, 1.0f)) \
    X(chain_clamp_neg, "nvp_chain_set_log_scale_clamp", NVP_EINVAL, 0, H_CHAIN, nvp_chain_set_log_scale_clamp(CC, -1.0f)) \
    X(chain_clamp_nan, "nvp_chain_set_log_scale_clamp", NVP_EINVAL, 0, H_CHAIN, nvp_chain_set_log_scale_clamp(CC, NAN)) \
    X(chain_threads_chain, "nvp_chain_set_threads", NVP_EINVAL, 0, H_NONE, nvp_chain_set_threads(NULL, 1)) \
    X(chain_threads_many, "nvp_chain_set_threads", NVP_EINVAL, 0, H_CHAIN, nvp_chain_set_threads(CC, NVP_MAX_THREADS + 1)) \
    /* saving and loading */                                                                \
    X(save_buf_chain, "nvp_chain_save_buffer", NVP_EINVAL, 0, H_NONE, nvp_chain_save_buffer(NULL, NULL, sizeof F.bytes, F.bytes, &F.szn)) \
    X(save_buf_size, "nvp_chain_save_buffer", NVP_EINVAL, 0, H_CHAIN, nvp_chain_save_buffer(CC, NULL, sizeof F.bytes, F.bytes, NULL)) \
    X(save_buf_scaler_dim, "nvp_chain_save_buffer", NVP_EDIM, 0, H_CHAIN, nvp_chain_save_buffer(CC, F.scaler3, sizeof F.bytes, F.bytes, &F.szn)) \
    X(save_buf_small, "nvp_chain_save_buffer", NVP_EBUFSIZE, 0, H_CHAIN, nvp_chain_save_buffer(CC, NULL, 10, F.bytes, &F.szn)) \
    X(save_file_chain, "nvp_chain_save_file", NVP_EINVAL, 0, H_NONE, nvp_chain_save_file(NULL, NULL, "/nonexistent-nvp-dir/m.nvp")) \
    X(save_file_path, "nvp_chain_save_file", NVP_EINVAL, 0, H_CHAIN, nvp_chain_save_file(CC, NULL, NULL)) \
    X(save_file_scaler_dim, "nvp_chain_save_file", NVP_EDIM, 0, H_CHAIN, nvp_chain_save_file(CC, F.scaler3, "/nonexistent-nvp-dir/m.nvp")) \
    X(save_file_io, "nvp_chain_save_file", NVP_EIO, 0, H_CHAIN, nvp_chain_save_file(CC, NULL, "/nonexistent-nvp-dir/m.nvp")) \
    X(load_buf_out, "nvp_chain_load_buffer", NVP_EINVAL, 0, H_NONE, nvp_chain_load_buffer(NULL, NULL, F.model_size, F.model, NULL)) \
    X(load_buf_data, "nvp_chain_load_buffer", NVP_EINVAL, 0, H_NONE, nvp_chain_load_buffer(&F.tmp_chain, NULL, F.model_size, NULL, NULL)) \
    X(load_buf_empty, "nvp_chain_load_buffer", NVP_EFORMAT, 0, H_NONE, nvp_chain_load_buffer(&F.tmp_chain, NULL, 0, F.model, NULL)) \
    X(load_buf_garbage, "nvp_chain_load_buffer", NVP_EFORMAT, 0, H_NONE, nvp_chain_load_buffer(&F.tmp_chain, NULL, sizeof F.bytes, F.bytes, NULL)) \
    X(load_buf_alloc, "nvp_chain_load_buffer", NVP_EINVAL, 0, H_NONE, nvp_chain_load_buffer(&F.tmp_chain, NULL, F.model_size, F.model, &bad_version)) \
    X(load_file_out, "nvp_chain_load_file", NVP_EINVAL, 0, H_NONE, nvp_chain_load_file(NULL, NULL, "/nonexistent-nvp-dir/m.nvp", NULL)) \
    X(load_file_path, "nvp_chain_load_file", NVP_EINVAL, 0, H_NONE, nvp_chain_load_file(&F.tmp_chain, NULL, NULL, NULL)) \
    X(load_file_missing, "nvp_chain_load_file", NVP_EIO, 0, H_NONE, nvp_chain_load_file(&F.tmp_chain, NULL, "/nonexistent-nvp-dir/m.nvp", NULL)) \
    X(load_file_alloc, "nvp_chain_load_file", NVP_EINVAL, 0, H_NONE, nvp_chain_load_file(&F.tmp_chain, NULL, "/nonexistent-nvp-dir/m.nvp", &bad_free_fn)) \
    X(adam_save_buf_opt, "nvp_adam_save_buffer", NVP_EINVAL, 0, H_NONE, nvp_adam_save_buffer(NULL, CR, sizeof F.bytes, F.bytes, &F.szn)) \
    X(adam_save_buf_size, "nvp_adam_save_buffer", NVP_EINVAL, 0, H_ADAM, nvp_adam_save_buffer(F.adam, CR, sizeof F.bytes, F.bytes, NULL)) \
    X(adam_save_buf_small, "nvp_adam_save_buffer", NVP_EBUFSIZE, 0, H_ADAM, nvp_adam_save_buffer(F.adam, CR, 10, F.bytes, &F.szn)) \
    X(adam_save_file_opt, "nvp_adam_save_file", NVP_EINVAL, 0, H_NONE, nvp_adam_save_file(NULL, CR, "/nonexistent-nvp-dir/a.nvp")) \
    X(adam_save_file_path, "nvp_adam_save_file", NVP_EINVAL, 0, H_ADAM, nvp_adam_save_file(F.adam, CR, NULL)) \
    X(adam_save_file_io, "nvp_adam_save_file", NVP_EIO, 0, H_ADAM, nvp_adam_save_file(F.adam, CR, "/nonexistent-nvp-dir/a.nvp")) \
    X(adam_load_buf_out, "nvp_adam_load_buffer", NVP_EINVAL, 0, H_NONE, nvp_adam_load_buffer(NULL, NULL, sizeof F.bytes, F.bytes, NULL)) \
    X(adam_load_buf_data, "nvp_adam_load_buffer", NVP_EINVAL, 0, H_NONE, nvp_adam_load_buffer(&F.tmp_adam, NULL, 100, NULL, NULL)) \
    X(adam_load_buf_garbage, "nvp_adam_load_buffer", NVP_EFORMAT, 0, H_NONE, nvp_adam_load_buffer(&F.tmp_adam, NULL, sizeof F.bytes, F.bytes, NULL)) \
    X(adam_load_buf_model, "nvp_adam_load_buffer", NVP_EFORMAT, 0, H_NONE, nvp_adam_load_buffer(&F.tmp_adam, &F.tmp_rng, F.model_size, F.model, NULL)) \
    X(adam_load_file_out, "nvp_adam_load_file", NVP_EINVAL, 0, H_NONE, nvp_adam_load_file(NULL, NULL, "/nonexistent-nvp-dir/a.nvp", NULL)) \
    X(adam_load_file_path, "nvp_adam_load_file", NVP_EINVAL, 0, H_NONE, nvp_adam_load_file(&F.tmp_adam, NULL, NULL, NULL)) \
    X(adam_load_file_missing, "nvp_adam_load_file", NVP_EIO, 0, H_NONE, nvp_adam_load_file(&F.tmp_adam, &F.tmp_rng, "/nonexistent-nvp-dir/a.nvp", NULL)) \
    /* adam */                                                                              \
    X(adam_create_out, "nvp_adam_create", NVP_EINVAL, 0, H_NONE, nvp_adam_create(NULL, 3, NULL)) \
    X(adam_create_n0, "nvp_adam_create", NVP_EINVAL, 0, H_NONE, nvp_adam_create(&F.tmp_adam, 0, NULL)) \
    X(adam_create_n_big, "nvp_adam_create", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_adam_create(&F.tmp_adam, NVP_MAX_PARAMS + 1, NULL)) \
    X(adam_create_n_max, "nvp_adam_create", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_adam_create(&F.tmp_adam, SIZE_MAX, NULL)) \
    X(adam_create_alloc, "nvp_adam_create", NVP_EINVAL, 0, H_NONE, nvp_adam_create(&F.tmp_adam, 3, &bad_version)) \
    X(adam_create_alloc_fn, "nvp_adam_create", NVP_EINVAL, 0, H_NONE, nvp_adam_create(&F.tmp_adam, 3, &bad_realloc_fn)) \
    X(adam_lr_null, "nvp_adam_set_lr", NVP_EINVAL, 0, H_NONE, nvp_adam_set_lr(NULL, 0.1f))    \
    X(adam_lr_zero, "nvp_adam_set_lr", NVP_EINVAL, 0, H_ADAM, nvp_adam_set_lr(F.adam, 0.0f))  \
    X(adam_lr_nan, "nvp_adam_set_lr", NVP_EINVAL, 0, H_ADAM, nvp_adam_set_lr(F.adam, NAN))    \
    X(adam_betas_null, "nvp_adam_set_betas", NVP_EINVAL, 0, H_NONE, nvp_adam_set_betas(NULL, 0.9f, 0.99f)) \
    X(adam_betas_one, "nvp_adam_set_betas", NVP_EINVAL, 0, H_ADAM, nvp_adam_set_betas(F.adam, 1.0f, 0.99f)) \
    X(adam_betas_neg, "nvp_adam_set_betas", NVP_EINVAL, 0, H_ADAM, nvp_adam_set_betas(F.adam, 0.9f, -0.5f)) \
    X(adam_eps_null, "nvp_adam_set_eps", NVP_EINVAL, 0, H_NONE, nvp_adam_set_eps(NULL, 1e-8f)) \
    X(adam_eps_zero, "nvp_adam_set_eps", NVP_EINVAL, 0, H_ADAM, nvp_adam_set_eps(F.adam, 0.0f)) \
    X(adam_eps_inf, "nvp_adam_set_eps", NVP_EINVAL, 0, H_ADAM, nvp_adam_set_eps(F.adam, INFINITY)) \
    X(adam_reset_null, "nvp_adam_reset", NVP_EINVAL, 0, H_NONE, nvp_adam_reset(NULL))         \
    X(adam_step_opt, "nvp_adam_step", NVP_EINVAL, 0, H_NONE, nvp_adam_step(NULL, 3, F.f, F.g)) \
    X(adam_step_params, "nvp_adam_step", NVP_EINVAL, 0, H_ADAM, nvp_adam_step(F.adam3, 3, NULL, F.g)) \
    X(adam_step_grad, "nvp_adam_step", NVP_EINVAL, 0, H_ADAM, nvp_adam_step(F.adam3, 3, F.f, NULL)) \
    X(adam_step_n, "nvp_adam_step", NVP_EDIM, 0, H_ADAM, nvp_adam_step(F.adam3, 4, F.f, F.g)) \
    X(adam_step_nan, "nvp_adam_step", NVP_ENONFINITE, 0, H_ADAM, nvp_adam_step(F.adam3, 3, F.f, F.nanbuf)) \
    /* train step */                                                                        \
    X(train_chain, "nvp_chain_train_step", NVP_EINVAL, 0, H_NONE, nvp_chain_train_step(NULL, F.adam, CR, 8, F.f, 4, NULL)) \
    X(train_opt, "nvp_chain_train_step", NVP_EINVAL, 0, H_CHAIN, nvp_chain_train_step(CC, NULL, CR, 8, F.f, 4, NULL)) \
    X(train_rng, "nvp_chain_train_step", NVP_EINVAL, 0, H_CHAIN, nvp_chain_train_step(CC, F.adam, NULL, 8, F.f, 4, NULL)) \
    X(train_data, "nvp_chain_train_step", NVP_EINVAL, 0, H_CHAIN, nvp_chain_train_step(CC, F.adam, CR, 8, NULL, 4, NULL)) \
    X(train_opt_size, "nvp_chain_train_step", NVP_EDIM, 0, H_CHAIN, nvp_chain_train_step(CC, F.adam3, CR, 8, F.f, 4, NULL)) \
    X(train_ndata0, "nvp_chain_train_step", NVP_EINVAL, 0, H_CHAIN, nvp_chain_train_step(CC, F.adam, CR, 0, F.f, 4, NULL)) \
    X(train_batch0, "nvp_chain_train_step", NVP_EINVAL, 0, H_CHAIN, nvp_chain_train_step(CC, F.adam, CR, 8, F.f, 0, NULL)) \
    X(train_ndata_huge, "nvp_chain_train_step", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_train_step(CC, F.adam, CR, HUGE_N, F.f, 4, NULL)) \
    X(train_batch_huge, "nvp_chain_train_step", NVP_EOVERFLOW, 0, H_CHAIN, nvp_chain_train_step(CC, F.adam, CR, 8, F.f, HUGE_N, NULL)) \
    X(train_nan, "nvp_chain_train_step", NVP_ENONFINITE, 0, H_CHAIN, nvp_chain_train_step(CC, F.adam, CR, 8, F.nanbuf, 4, NULL)) \
    /* two moons */                                                                         \
    X(moons_rng, "nvp_two_moons", NVP_EINVAL, 0, H_NONE, nvp_two_moons(NULL, 4, 0.1f, F.f, NULL)) \
    X(moons_xy, "nvp_two_moons", NVP_EINVAL, 0, H_RNG, nvp_two_moons(CR, 4, 0.1f, NULL, F.labels)) \
    X(moons_n0, "nvp_two_moons", NVP_EINVAL, 0, H_RNG, nvp_two_moons(CR, 0, 0.1f, F.f, NULL)) \
    X(moons_noise_neg, "nvp_two_moons", NVP_EINVAL, 0, H_RNG, nvp_two_moons(CR, 4, -0.1f, F.f, NULL)) \
    X(moons_noise_nan, "nvp_two_moons", NVP_EINVAL, 0, H_RNG, nvp_two_moons(CR, 4, NAN, F.f, NULL)) \
    X(moons_noise_inf, "nvp_two_moons", NVP_EINVAL, 0, H_RNG, nvp_two_moons(CR, 4, INFINITY, F.f, NULL)) \
    X(moons_huge, "nvp_two_moons", NVP_EOVERFLOW, 0, H_RNG, nvp_two_moons(CR, HUGE_N, 0.1f, F.f, NULL)) \
    /* scaler */                                                                            \
    X(scaler_create_out, "nvp_scaler_create", NVP_EINVAL, 0, H_NONE, nvp_scaler_create(NULL, 2, NULL)) \
    X(scaler_create_dim0, "nvp_scaler_create", NVP_EINVAL, 0, H_NONE, nvp_scaler_create(&F.tmp_scaler, 0, NULL)) \
    X(scaler_create_dim_big, "nvp_scaler_create", NVP_EINVAL, NVP_EOVERFLOW, H_NONE, nvp_scaler_create(&F.tmp_scaler, SIZE_MAX, NULL)) \
    X(scaler_create_alloc, "nvp_scaler_create", NVP_EINVAL, 0, H_NONE, nvp_scaler_create(&F.tmp_scaler, 2, &bad_version)) \
    X(scaler_create_alloc_fn, "nvp_scaler_create", NVP_EINVAL, 0, H_NONE, nvp_scaler_create(&F.tmp_scaler, 2, &bad_alloc_fn)) \
    X(scaler_fit_scaler, "nvp_scaler_fit", NVP_EINVAL, 0, H_NONE, nvp_scaler_fit(NULL, 2, F.f)) \
    X(scaler_fit_x, "nvp_scaler_fit", NVP_EINVAL, 0, H_SCALER, nvp_scaler_fit(F.scaler, 2, NULL)) \
    X(scaler_fit_n0, "nvp_scaler_fit", NVP_EINVAL, 0, H_SCALER, nvp_scaler_fit(F.scaler, 0, F.f)) \
    X(scaler_fit_huge, "nvp_scaler_fit", NVP_EOVERFLOW, 0, H_SCALER, nvp_scaler_fit(F.scaler, HUGE_N, F.f)) \
    X(scaler_fit_nan, "nvp_scaler_fit", NVP_ENONFINITE, 0, H_SCALER, nvp_scaler_fit(F.scaler, 2, F.nanbuf)) \
    X(scaler_tr_scaler, "nvp_scaler_transform", NVP_EINVAL, 0, H_NONE, nvp_scaler_transform(NULL, 2, F.f, F.g)) \
    X(scaler_tr_x, "nvp_scaler_transform", NVP_EINVAL, 0, H_SCALER, nvp_scaler_transform(F.scaler, 2, NULL, F.g)) \
    X(scaler_tr_z, "nvp_scaler_transform", NVP_EINVAL, 0, H_SCALER, nvp_scaler_transform(F.scaler, 2, F.f, NULL)) \
    X(scaler_tr_n0, "nvp_scaler_transform", NVP_EINVAL, 0, H_SCALER, nvp_scaler_transform(F.scaler, 0, F.f, F.g)) \
    X(scaler_tr_huge, "nvp_scaler_transform", NVP_EOVERFLOW, 0, H_SCALER, nvp_scaler_transform(F.scaler, HUGE_N, F.f, F.g)) \
    X(scaler_inv_scaler, "nvp_scaler_inverse_transform", NVP_EINVAL, 0, H_NONE, nvp_scaler_inverse_transform(NULL, 2, F.f, F.g)) \
    X(scaler_inv_z, "nvp_scaler_inverse_transform", NVP_EINVAL, 0, H_SCALER, nvp_scaler_inverse_transform(F.scaler, 2, NULL, F.g)) \
    X(scaler_inv_x, "nvp_scaler_inverse_transform", NVP_EINVAL, 0, H_SCALER, nvp_scaler_inverse_transform(F.scaler, 2, F.f, NULL)) \
    X(scaler_inv_n0, "nvp_scaler_inverse_transform", NVP_EINVAL, 0, H_SCALER, nvp_scaler_inverse_transform(F.scaler, 0, F.f, F.g)) \
    X(scaler_inv_huge, "nvp_scaler_inverse_transform", NVP_EOVERFLOW, 0, H_SCALER, nvp_scaler_inverse_transform(F.scaler, HUGE_N, F.f, F.g)) \
    X(scaler_get_scaler, "nvp_scaler_get", NVP_EINVAL, 0, H_NONE, nvp_scaler_get(NULL, 2, F.f, F.g)) \
    X(scaler_get_dim, "nvp_scaler_get", NVP_EDIM, 0, H_SCALER, nvp_scaler_get(F.scaler, 3, F.f, F.g)) \
    X(scaler_set_scaler, "nvp_scaler_set", NVP_EINVAL, 0, H_NONE, nvp_scaler_set(NULL, 2, F.f, F.g)) \
    X(scaler_set_mean, "nvp_scaler_set", NVP_EINVAL, 0, H_SCALER, nvp_scaler_set(F.scaler, 2, NULL, F.g)) \
    X(scaler_set_sd, "nvp_scaler_set", NVP_EINVAL, 0, H_SCALER, nvp_scaler_set(F.scaler, 2, F.f, NULL)) \
    X(scaler_set_dim, "nvp_scaler_set", NVP_EDIM, 0, H_SCALER, nvp_scaler_set(F.scaler, 1, F.f, F.g)) \
    X(scaler_set_sd_bad, "nvp_scaler_set", NVP_EINVAL, 0, H_SCALER, nvp_scaler_set(F.scaler, 2, F.g, F.f))

#define DEFINE_CASE(id, fn, want, alt, h, expr) \
    static int case_##id(void) { return (expr); }
ERROR_CASES(DEFINE_CASE)

typedef struct {
    const char *id, *fn;
    int want, alt, handle;
    int (*call)(void);
} err_case;

#define TABLE_ROW(id, fn, want, alt, h, expr) {#id, fn, want, alt, h, case_##id},
static const err_case cases[] = {ERROR_CASES(TABLE_ROW)};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

static const char *handle_msg(int h)
{
    switch (h) {
    case H_RNG: return nvp_rng_errmsg(F.rng);
    case H_BASE: return nvp_base_errmsg(F.base);
    case H_LAYER: return nvp_coupling_errmsg(F.layer);
    case H_CHAIN: return nvp_chain_errmsg(F.chain);
    case H_ADAM: return nvp_adam_errmsg(F.adam);
    case H_SCALER: return nvp_scaler_errmsg(F.scaler);
    default: return "";
    }
}

START_TEST(test_error_case)
{
    const err_case *c = &cases[_i];
    /* Leave a message from another function behind first, so that the
     * message checked below is the one this call wrote. */
    if (strcmp(c->fn, "nvp_scaler_get") != 0)
        ck_assert_int_ne(nvp_scaler_get(NULL, 0, NULL, NULL), NVP_OK);
    else
        ck_assert_int_ne(nvp_adam_reset(NULL), NVP_OK);
    const int rc = c->call();
    T_CHECK(rc == c->want || (c->alt != 0 && rc == c->alt),
            "%s: %s returned %d (%s), want %d (%s); message '%s'", c->id, c->fn, rc,
            nvp_strerror(rc), c->want, nvp_strerror(c->want), nvp_errmsg());
    const char *msg = nvp_errmsg();
    T_CHECK(msg != NULL && msg[0] != '\0', "%s: nvp_errmsg() is empty after %s failed", c->id, c->fn);
    T_CHECK(strstr(msg, c->fn) != NULL, "%s: nvp_errmsg() '%s' does not name %s", c->id, msg, c->fn);
    if (c->handle != H_NONE) {
        /* The adam setters fail on F.adam, the step on F.adam3. */
        const char *hm = strcmp(c->fn, "nvp_adam_step") == 0 ? nvp_adam_errmsg(F.adam3)
                                                              : handle_msg(c->handle);
        T_CHECK(strstr(hm, c->fn) != NULL, "%s: the handle's errmsg '%s' does not name %s", c->id, hm, c->fn);
    }
    /* A failed constructor hands out no handle. */
    T_CHECK(!F.tmp_rng && !F.tmp_base && !F.tmp_layer && !F.tmp_chain && !F.tmp_adam && !F.tmp_scaler,
            "%s: a failed constructor set its out-parameter", c->id);
}
END_TEST

/* ----------------------------------------------------- other checks */

START_TEST(test_strerror_every_code)
{
    /* The values are pinned forever. */
    ck_assert_int_eq(NVP_OK, 0);
    ck_assert_int_eq(NVP_EINVAL, -1);
    ck_assert_int_eq(NVP_EDIM, -2);
    ck_assert_int_eq(NVP_ENOMEM, -3);
    ck_assert_int_eq(NVP_EOVERFLOW, -4);
    ck_assert_int_eq(NVP_ENONFINITE, -5);
    ck_assert_int_eq(NVP_EIO, -6);
    ck_assert_int_eq(NVP_EFORMAT, -7);
    ck_assert_int_eq(NVP_EVERSION, -8);
    ck_assert_int_eq(NVP_ETHREAD, -9);
    ck_assert_int_eq(NVP_EBUFSIZE, -10);
    ck_assert_int_eq(NVP_EUNSUPPORTED, -11);
    ck_assert_int_eq(NVP_EBUSY, -12);
    const char *unknown = nvp_strerror(12345);
    ck_assert_ptr_nonnull(unknown);
    ck_assert(unknown[0] != '\0');
    const char *seen[13];
    for (int code = 0; code >= -12; code--) {
        const char *s = nvp_strerror(code);
        T_CHECK(s != NULL && s[0] != '\0', "nvp_strerror(%d) is empty", code);
        T_CHECK(strcmp(s, unknown) != 0, "nvp_strerror(%d) = '%s', the unknown-code text", code, s);
        for (int k = 0; k < -code; k++)
            T_CHECK(strcmp(seen[k], s) != 0, "codes %d and %d share the text '%s'", -k, code, s);
        seen[-code] = s;
        T_CHECK(nvp_strerror(code) == s, "nvp_strerror(%d) is not a static string", code);
    }
    const int others[] = {1, 2, -13, -100, INT_MIN, INT_MAX};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        T_CHECK(strcmp(nvp_strerror(others[i]), unknown) == 0, "nvp_strerror(%d) = '%s', not '%s'",
                others[i], nvp_strerror(others[i]), unknown);
    T_CHECK(strstr(unknown, "unknown") != NULL, "unknown-code text '%s'", unknown);
}
END_TEST

START_TEST(test_version)
{
    ck_assert_uint_eq(nvp_version_number(), NVP_VERSION_NUMBER);
    ck_assert_int_eq(NVP_VERSION_NUMBER,
                     NVP_VERSION_MAJOR * 10000 + NVP_VERSION_MINOR * 100 + NVP_VERSION_PATCH);
    ck_assert_str_eq(nvp_version_string(), NVP_VERSION_STRING);
    char buf[64];
    snprintf(buf, sizeof buf, "%d.%d.%d", NVP_VERSION_MAJOR, NVP_VERSION_MINOR, NVP_VERSION_PATCH);
    ck_assert_str_eq(nvp_version_string(), buf);
    ck_assert(nvp_version_string() == nvp_version_string());
}
END_TEST

/* NULL handles: free accepts them, queries return 0/NULL/"". */
START_TEST(test_null_handles)
{
    nvp_rng_free(NULL);
    nvp_base_free(NULL);
    nvp_coupling_free(NULL);
    nvp_chain_free(NULL);
    nvp_adam_free(NULL);
    nvp_scaler_free(NULL);
    ck_assert_uint_eq(nvp_base_dim(NULL), 0);
    ck_assert_uint_eq(nvp_coupling_dim(NULL), 0);
    ck_assert_uint_eq(nvp_coupling_num_params(NULL), 0);
    ck_assert_uint_eq(nvp_chain_dim(NULL), 0);
    ck_assert_uint_eq(nvp_chain_num_layers(NULL), 0);
    ck_assert_uint_eq(nvp_chain_num_params(NULL), 0);
    ck_assert_ptr_null(nvp_chain_params(NULL));
    ck_assert_ptr_null(nvp_layer_as_coupling(nvp_chain_layer(NULL, 0, NULL)));
    ck_assert_ptr_null(nvp_chain_base(NULL));
    ck_assert_uint_eq(nvp_adam_num_params(NULL), 0);
    ck_assert_uint_eq(nvp_adam_num_steps(NULL), 0);
    T_CHECK(nvp_adam_lr(NULL) == 0.0f, "lr of NULL");
    ck_assert_uint_eq(nvp_scaler_dim(NULL), 0);
    ck_assert_str_eq(nvp_rng_errmsg(NULL), "");
    ck_assert_str_eq(nvp_base_errmsg(NULL), "");
    ck_assert_str_eq(nvp_coupling_errmsg(NULL), "");
    ck_assert_str_eq(nvp_chain_errmsg(NULL), "");
    ck_assert_str_eq(nvp_adam_errmsg(NULL), "");
    ck_assert_str_eq(nvp_scaler_errmsg(NULL), "");
    /* Fresh handles have no message. */
    ck_assert_str_eq(nvp_chain_errmsg(F.chain), "");
    ck_assert_str_eq(nvp_rng_errmsg(F.rng), "");
    ck_assert_str_eq(nvp_coupling_errmsg(F.layer), "");
    ck_assert_str_eq(nvp_adam_errmsg(F.adam), "");
    ck_assert_str_eq(nvp_scaler_errmsg(F.scaler), "");
    ck_assert_str_eq(nvp_base_errmsg(F.base), "");
}
END_TEST

/* The handle's message is its own: a failure on another handle of the same
 * type leaves it alone. */
START_TEST(test_errmsg_per_handle)
{
    nvp_chain *other = t_chain(2, 2, 1, hid4, 3);
    ck_assert_int_eq(nvp_chain_log_prob(F.chain, 0, F.f, F.g), NVP_EINVAL);
    const char *m = nvp_chain_errmsg(F.chain);
    T_CHECK(strstr(m, "nvp_chain_log_prob") != NULL, "chain errmsg '%s'", m);
    ck_assert_str_eq(nvp_chain_errmsg(other), "");
    ck_assert_int_eq(nvp_chain_get_params(other, 1, F.f), NVP_EDIM);
    T_CHECK(strstr(nvp_chain_errmsg(other), "nvp_chain_get_params") != NULL, "other's errmsg '%s'",
            nvp_chain_errmsg(other));
    T_CHECK(strstr(nvp_chain_errmsg(F.chain), "nvp_chain_log_prob") != NULL,
            "a failure on another chain overwrote this chain's message: '%s'", nvp_chain_errmsg(F.chain));
    /* A later success does not invent a message; the last failure stays. */
    T_OK(nvp_chain_log_prob(F.chain, 1, F.f, F.g));
    T_CHECK(strstr(nvp_chain_errmsg(F.chain), "nvp_chain_log_prob") != NULL, "message lost after a success");
    nvp_chain_free(other);
}
END_TEST

/* nvp_errmsg() is per thread. */
static void *fail_in_thread(void *arg)
{
    char *out = arg;
    nvp_adam_set_lr(NULL, 1.0f);
    snprintf(out, 256, "%s", nvp_errmsg());
    return NULL;
}

START_TEST(test_errmsg_thread_local)
{
    ck_assert_int_eq(nvp_rng_index(F.rng, 1, 0, F.u), NVP_EINVAL);
    char before[256], theirs[256];
    snprintf(before, sizeof before, "%s", nvp_errmsg());
    T_CHECK(strstr(before, "nvp_rng_index") != NULL, "message '%s'", before);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, fail_in_thread, theirs), 0);
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    T_CHECK(strstr(theirs, "nvp_adam_set_lr") != NULL, "the thread's own message '%s'", theirs);
    ck_assert_str_eq(nvp_errmsg(), before);
}
END_TEST

/* Refused calls change nothing: nll_grad, set_params with NaN/Inf, and
 * train_step with non-finite data or a non-finite loss leave the chain's
 * parameters bitwise unchanged and the optimizer untouched. */
START_TEST(test_refused_calls_leave_state)
{
    const size_t np = F.cnp;
    float *before = t_xmalloc(np * sizeof *before), *after = t_xmalloc(np * sizeof *after);
    T_OK(nvp_chain_get_params(F.chain, np, before));
    float y[8] = {0.1f, 0.2f, NAN, 0.4f, 0.5f, -0.6f, 0.7f, 0.8f};
    ck_assert_int_eq(nvp_chain_nll_grad(F.chain, 4, y, F.g, NULL), NVP_ENONFINITE);
    float bad[64];
    memcpy(bad, before, np * sizeof *bad);
    bad[np / 3] = NAN;
    ck_assert_int_eq(nvp_chain_set_params(F.chain, np, bad), NVP_ENONFINITE);
    bad[np / 3] = -INFINITY;
    ck_assert_int_eq(nvp_chain_set_params(F.chain, np, bad), NVP_ENONFINITE);
    /* Every row non-finite, so whatever rows the step draws are bad. */
    float data[16];
    for (int i = 0; i < 16; i++)
        data[i] = i % 2 ? INFINITY : 0.5f;
    float loss = 0.0f;
    ck_assert_int_eq(nvp_chain_train_step(F.chain, F.adam, F.rng, 8, data, 4, &loss), NVP_ENONFINITE);
    T_OK(nvp_chain_get_params(F.chain, np, after));
    T_CHECK(t_first_diff(before, after, np) == (size_t)-1, "a refused call changed parameter %zu",
            t_first_diff(before, after, np));
    ck_assert_uint_eq(nvp_adam_num_steps(F.adam), 0);

    /* Finite data, non-finite loss: a log-scale bias of -100 makes the
     * inverse overflow.  The last parameter of layer 0 is the bias of its
     * last output, a log-scale. */
    size_t off1;
    nvp_layer_as_coupling(nvp_chain_layer(F.chain, 1, &off1));
    memcpy(bad, before, np * sizeof *bad);
    bad[off1 - 1] = -100.0f;
    T_OK(nvp_chain_set_params(F.chain, np, bad));
    for (int i = 0; i < 16; i++)
        data[i] = 3.0f + 0.1f * (float)i;
    ck_assert_int_eq(nvp_chain_train_step(F.chain, F.adam, F.rng, 8, data, 4, &loss), NVP_ENONFINITE);
    T_CHECK(!isfinite(loss), "loss %g reported for a refused step", (double)loss);
    T_OK(nvp_chain_get_params(F.chain, np, after));
    T_CHECK(t_first_diff(bad, after, np) == (size_t)-1, "a step with a non-finite loss changed the chain");
    ck_assert_uint_eq(nvp_adam_num_steps(F.adam), 0);

    /* The optimizer's moments are untouched too: with the parameters
     * restored, a step from a given rng state equals that of a fresh
     * chain and optimizer. */
    T_OK(nvp_chain_set_params(F.chain, np, before));
    nvp_chain *ctl = NULL;
    nvp_adam *ctl_opt = NULL;
    nvp_rng *r1 = t_rng(77), *r2 = t_rng(77);
    ctl = t_chain(2, 2, 1, hid4, 1);
    T_OK(nvp_chain_set_params(ctl, np, before));
    T_OK(nvp_adam_create(&ctl_opt, np, NULL));
    T_OK(nvp_chain_train_step(F.chain, F.adam, r1, 16, F.f, 4, NULL));
    T_OK(nvp_chain_train_step(ctl, ctl_opt, r2, 16, F.f, 4, NULL));
    T_OK(nvp_chain_get_params(F.chain, np, after));
    T_OK(nvp_chain_get_params(ctl, np, before));
    T_CHECK(t_first_diff(before, after, np) == (size_t)-1, "after refused steps, the optimizer state differs");
    nvp_chain_free(ctl);
    nvp_adam_free(ctl_opt);
    nvp_rng_free(r1);
    nvp_rng_free(r2);
    free(before);
    free(after);
}
END_TEST

Suite *errors_suite(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("cases");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, errors_setup, errors_teardown);
    tcase_add_loop_test(tc, test_error_case, 0, N_CASES);
    suite_add_tcase(s, tc);
    tc = tcase_create("messages");
    tcase_set_timeout(tc, T_TIMEOUT);
    tcase_add_checked_fixture(tc, errors_setup, errors_teardown);
    tcase_add_test(tc, test_strerror_every_code);
    tcase_add_test(tc, test_version);
    tcase_add_test(tc, test_null_handles);
    tcase_add_test(tc, test_errmsg_per_handle);
    tcase_add_test(tc, test_errmsg_thread_local);
    tcase_add_test(tc, test_refused_calls_leave_state);
    suite_add_tcase(s, tc);
    return s;
}
