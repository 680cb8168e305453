/* SPDX-License-Identifier: MIT */
/* fit_arch.c - the model nvpflow fit trains: its defaults, chosen from the
 * data's rows and columns, and the chain built from them. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fit.h"

const char *fit_mask_name(fit_mask m)
{
    return m == FIT_MASK_RANDOM   ? "random"
           : m == FIT_MASK_PARITY ? "parity"
                                  : "half";
}

const char *fit_norm_name(fit_norm n)
{
    return n == FIT_NORM_LINEAR    ? "linear"
           : n == FIT_NORM_ACTNORM ? "actnorm"
                                   : "none";
}

/* Below this many training rows the defaults regularise more. */
#define SMALL_ROWS FIT_SMALL_ROWS
/* From this many training rows per column, no weight decay. */
#define MANY_ROWS_PER_COLUMN FIT_MANY_ROWS_PER_COLUMN

void fit_choose_defaults(fit_config *c, size_t n, size_t dim)
{
    if (!c->norm_set)
        c->norm = FIT_NORM_LINEAR;
    if (!c->mask_set)
        c->mask = FIT_MASK_RANDOM;
    /* Tables of fewer than SMALL_ROWS training rows get a smaller and
     * smoother model: fewer layers, narrower networks, noise. */
    const int small = n < SMALL_ROWS;
    /* A small table of at most FIT_FEW_COLUMNS columns: each coupling
     * moves one or two columns, so such a table keeps 8 couplings, and
     * trains them faster (lr 0.003) with weight decay 0.1.  Measured on
     * iris (-2.92 -> -2.78) and on small two- and three-column tables
     * (docs/quality.md); on wine (13 columns) they lose. */
    const int small_narrow = small && dim <= FIT_FEW_COLUMNS;
    if (c->layers == 0)
        c->layers = small && !small_narrow ? 4 : 8;
    if (c->n_hidden == 0) {
        c->n_hidden = 2;
        c->hidden[0] = c->hidden[1] = dim == 2 ? 128 : small ? 32 : 64;
    }
    if (c->batch == 0) {
        const size_t b = dim == 2 ? 256 : 128;
        c->batch = n < b ? n : b;
    }
    if (c->lr < 0)
        c->lr = small_narrow ? 3e-3 : 1e-3;
    if (c->clamp < 0)
        c->clamp = 2;
    /* Weight decay pulls the model towards the Gaussian fit; with many
     * rows per column the data hold it where it should be, and the decay
     * only holds it back (two moons, 600 rows per column: -1.26 with
     * decay 1, -1.22 without, docs/quality.md). */
    if (c->weight_decay < 0)
        c->weight_decay = n >= MANY_ROWS_PER_COLUMN * dim ? 0
                          : small_narrow                  ? 0.1
                                                          : 1;
    if (c->noise < 0)
        c->noise = small ? 0.1 : 0;
    if (c->average < 0)
        c->average = 0.995;
    if (c->eval_every == 0) {
        const size_t epoch = (n + c->batch - 1) / c->batch;
        c->eval_every = epoch >= 10 ? 100 : 10 * epoch;
    }
    if (c->patience == (size_t)-1)
        c->patience = 15;
    if (c->lr_drops == (size_t)-1)
        c->lr_drops = 2;
    if (c->steps == (size_t)-1)
        c->steps = 20000;
}

/* Layer k's mask (1: conditions on the column, 0: transforms it) into m.
 * A random mask takes a fresh half of the columns on even k, and the
 * complement of the previous layer's on odd k, so that every column is
 * transformed at least once in every pair of layers. */
static int layer_mask(fit_mask kind, size_t k, size_t dim, nvp_rng *rng,
                      unsigned char *m, size_t *order)
{
    const size_t half = dim / 2;
    switch (kind) {
    case FIT_MASK_HALF:
        for (size_t i = 0; i < dim; i++)
            m[i] = (unsigned char)((i < half) != (k % 2 == 1));
        return NVP_OK;
    case FIT_MASK_PARITY:
        for (size_t i = 0; i < dim; i++)
            m[i] = (unsigned char)((i % 2 == 0) != (k % 2 == 1));
        return NVP_OK;
    case FIT_MASK_RANDOM:
    default:
        if (k % 2 == 1) {
            for (size_t i = 0; i < dim; i++)
                m[i] = (unsigned char)!m[i];
            return NVP_OK;
        }
        for (size_t i = 0; i < dim; i++)
            order[i] = i;
        for (size_t i = dim; i > 1; i--) {
            uint64_t j;
            int rc = nvp_rng_index(rng, 1, i, &j);
            if (rc != NVP_OK)
                return rc;
            const size_t t = order[i - 1];
            order[i - 1] = order[j];
            order[j] = t;
        }
        /* m still holds the previous layer's mask: a new half that
         * repeats it is flipped, so that consecutive layers never
         * transform the same columns (with 2 columns the masks
         * alternate). */
        int same = k > 0;
        for (size_t i = 0; i < dim && same; i++)
            same = m[order[i]] == (unsigned char)(i < half);
        for (size_t i = 0; i < dim; i++)
            m[order[i]] = (unsigned char)((i < half) != same);
        return NVP_OK;
    }
}

int fit_build_chain(const char *cmd, const fit_config *c, size_t dim,
                    nvp_rng *rng, nvp_chain **out)
{
    const size_t n_layers = c->layers + (c->norm != FIT_NORM_NONE);
    nvp_layer **layers = calloc(n_layers, sizeof *layers);
    unsigned char *mask = malloc(dim);
    size_t *order = malloc(dim * sizeof *order);
    nvp_base *base = NULL;
    nvp_chain *chain = NULL;
    int status = CLI_ERR;
    if (!layers || !mask || !order) {
        cli_error(cmd, "out of memory for the model");
        goto done;
    }
    int rc = NVP_OK;
    size_t k = 0;
    for (; k < c->layers && rc == NVP_OK; k++) {
        nvp_coupling *cp = NULL;
        rc = layer_mask(c->mask, k, dim, rng, mask, order);
        if (rc == NVP_OK)
            /* context_dim 0 (no --given) is nvp_coupling_create's layer,
             * drawing the same numbers. */
            rc = nvp_coupling_create_conditional(
                &cp, dim, c->context_dim, mask, c->n_hidden, c->hidden,
                NVP_INIT_ZERO_OUTPUT, rng, NULL);
        if (rc == NVP_OK)
            layers[k] = nvp_coupling_as_layer(cp);
    }
    if (rc == NVP_OK && c->norm == FIT_NORM_LINEAR)
        rc = nvp_layer_create_linear(&layers[k], dim, NULL);
    else if (rc == NVP_OK && c->norm == FIT_NORM_ACTNORM)
        rc = nvp_layer_create_actnorm(&layers[k], dim, NULL);
    if (rc == NVP_OK)
        rc = nvp_base_create_normal(&base, dim, NULL);
    if (rc == NVP_OK)
        rc = nvp_chain_create_from_layers(&chain, base, n_layers, layers,
                                          NULL);
    if (rc != NVP_OK) {
        cli_lib_error(cmd, "cannot create the model", rc, nvp_errmsg());
        goto done;
    }
    /* The chain owns the base and the layers now. */
    base = NULL;
    memset(layers, 0, n_layers * sizeof *layers);
    if (c->clamp > 0 &&
        (rc = nvp_chain_set_log_scale_clamp(chain, (float)c->clamp)) !=
            NVP_OK) {
        cli_lib_error(cmd, "cannot set --clamp", rc, nvp_chain_errmsg(chain));
        goto done;
    }
    *out = chain;
    chain = NULL;
    status = CLI_OK;
done:
    if (layers)
        for (size_t i = 0; i < n_layers; i++)
            nvp_layer_free(layers[i]);
    nvp_chain_free(chain);
    nvp_base_free(base);
    free(order);
    free(mask);
    free(layers);
    return status;
}

size_t fit_count_couplings(const nvp_chain *chain)
{
    size_t n = 0;
    const size_t k = nvp_chain_num_layers(chain);
    for (size_t i = 0; i < k; i++)
        n += nvp_layer_as_coupling(nvp_chain_layer(chain, i, NULL)) != NULL;
    return n;
}
