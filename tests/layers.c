/* SPDX-License-Identifier: MIT */
/* Layer configurations shared by the coupling and gradient suites. */
#include <stdlib.h>
#include <string.h>

#include "layers.h"

const t_layer_cfg t_layer_cfgs[] = {
    {2, MASK_HALF, {0}, 2, {8, 6}},
    {2, MASK_FLIP, {0}, 2, {8, 6}},
    {2, MASK_ARBITRARY, {0, 1}, 2, {8, 6}},
    {3, MASK_HALF, {0}, 2, {8, 6}},
    {3, MASK_FLIP, {0}, 2, {8, 6}},
    {3, MASK_ARBITRARY, {1, 0, 1}, 2, {8, 6}},
    {5, MASK_HALF, {0}, 2, {8, 6}},
    {5, MASK_FLIP, {0}, 2, {8, 6}},
    {5, MASK_ARBITRARY, {0, 1, 1, 0, 1}, 2, {8, 6}},
    {8, MASK_HALF, {0}, 2, {8, 6}},
    {8, MASK_FLIP, {0}, 2, {8, 6}},
    {8, MASK_ARBITRARY, {1, 0, 0, 1, 1, 0, 1, 0}, 2, {8, 6}},
    /* Affine conditioner (hidden != NULL, n_hidden == 0). */
    {3, MASK_ARBITRARY, {0, 1, 0}, 0, {0}},
    /* Deeper and wider than a micro-tile, odd widths. */
    {5, MASK_HALF, {0}, 3, {13, 9, 5}},
    /* One hidden layer in 2-D: the sweep's second layer is the output
     * layer, so the sweep sums the output bias's gradient. */
    {2, MASK_HALF, {0}, 1, {7}},
};
const size_t t_n_layer_cfgs = sizeof t_layer_cfgs / sizeof t_layer_cfgs[0];

void t_layer_cfg_name(const t_layer_cfg *cfg, char *buf, size_t cap)
{
    static const char *const kinds[] = {"half", "flip", "arbitrary"};
    int len = snprintf(buf, cap, "dim %zu, %s mask, hidden", cfg->dim,
                       kinds[cfg->kind]);
    for (size_t l = 0; l < cfg->n_hidden && len > 0 && (size_t)len < cap; l++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%zu", l ? "," : " ",
                        cfg->hidden[l]);
    if (cfg->n_hidden == 0 && len > 0 && (size_t)len < cap)
        snprintf(buf + len, cap - (size_t)len, " none (affine)");
}

void t_layer_cfg_mask(const t_layer_cfg *cfg, unsigned char *mask)
{
    if (cfg->kind == MASK_ARBITRARY)
        memcpy(mask, cfg->mask, cfg->dim);
    else
        ref_half_mask(cfg->dim, cfg->kind == MASK_FLIP, mask);
}

nvp_coupling *t_layer_make(const t_layer_cfg *cfg, uint64_t seed,
                           unsigned flags, ref_coupling *ref)
{
    unsigned char mask[REF_MAX_DIM], got[REF_MAX_DIM];
    t_layer_cfg_mask(cfg, mask);
    nvp_rng *rng = t_rng(seed);
    nvp_coupling *layer = NULL;
    if (cfg->kind == MASK_ARBITRARY)
        T_OK(nvp_coupling_create(&layer, cfg->dim, mask, cfg->n_hidden,
                                 cfg->hidden, flags, rng, NULL));
    else
        T_OK(nvp_coupling_create_half(&layer, cfg->dim, cfg->kind == MASK_FLIP,
                                      cfg->n_hidden, cfg->hidden, flags, rng,
                                      NULL));
    nvp_rng_free(rng);
    ck_assert_int_eq(ref_coupling_init(ref, cfg->dim, mask, cfg->n_hidden,
                                       cfg->hidden), 0);
    char name[96];
    t_layer_cfg_name(cfg, name, sizeof name);
    ck_assert_uint_eq(nvp_coupling_dim(layer), cfg->dim);
    T_OK(nvp_coupling_get_mask(layer, cfg->dim, got));
    T_CHECK(memcmp(got, mask, cfg->dim) == 0, "%s: the layer's mask differs from the documented one", name);
    T_CHECK(nvp_coupling_num_params(layer) == ref->n_params,
            "%s: %zu parameters, the documented layout has %zu", name,
            nvp_coupling_num_params(layer), ref->n_params);
    return layer;
}

double *t_layer_params(const nvp_coupling *layer)
{
    const size_t n = nvp_coupling_num_params(layer);
    float *f = t_xmalloc(n * sizeof *f);
    double *d = t_xmalloc(n * sizeof *d);
    T_OK(nvp_coupling_get_params(layer, n, f));
    ref_params_from_float(n, f, d);
    free(f);
    return d;
}
