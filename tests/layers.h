/* SPDX-License-Identifier: MIT */
/* Layer configurations shared by the coupling and gradient suites: every
 * dimension the issue asks for (2, 3, 5, 8) with the half mask, its flip
 * and an arbitrary mask, plus an affine (no hidden layer) and a deeper
 * conditioner. */
#ifndef NVP_TEST_LAYERS_H
#define NVP_TEST_LAYERS_H

#include "reference.h"
#include "tests.h"

enum { MASK_HALF = 0, MASK_FLIP = 1, MASK_ARBITRARY = 2 };

typedef struct t_layer_cfg {
    size_t dim;
    int kind;                 /* MASK_* */
    unsigned char mask[REF_MAX_DIM]; /* for MASK_ARBITRARY */
    size_t n_hidden;
    size_t hidden[4];
} t_layer_cfg;

extern const t_layer_cfg t_layer_cfgs[];
extern const size_t t_n_layer_cfgs;

/* "dim 5, flip mask, hidden 8,6" */
void t_layer_cfg_name(const t_layer_cfg *cfg, char *buf, size_t cap);
/* The mask the configuration means (for half and flip: from the
 * documentation, not from the library). */
void t_layer_cfg_mask(const t_layer_cfg *cfg, unsigned char *mask);
/* Creates the library layer (rng seeded with seed), asserting success,
 * and fills the reference description; checks that the library's mask
 * and parameter count agree with it. */
nvp_coupling *t_layer_make(const t_layer_cfg *cfg, uint64_t seed,
                           unsigned flags, ref_coupling *ref);
/* The layer's parameters as doubles (malloc'ed). */
double *t_layer_params(const nvp_coupling *layer);

#endif
