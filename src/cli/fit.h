/* SPDX-License-Identifier: MIT */
/* fit.h - the pieces of nvpflow fit: its settings, the defaults it
 * chooses from the data's rows and columns, and the model it builds
 * (fit_arch.c). */
#ifndef NVPFLOW_CLI_FIT_H
#define NVPFLOW_CLI_FIT_H

#include <stddef.h>
#include <stdint.h>

#include "csv.h"
#include "nvpflow.h"

/* How the couplings split the columns (--mask). */
typedef enum fit_mask {
    FIT_MASK_RANDOM, /* a seeded random half per pair of layers, then its
                        complement */
    FIT_MASK_PARITY, /* even columns, then odd ones */
    FIT_MASK_HALF    /* first half, then second half (the tutorial's) */
} fit_mask;

/* The layer next to the data (--norm), set from the training rows. */
typedef enum fit_norm {
    FIT_NORM_LINEAR,  /* whitening: the untrained model is the
                         full-covariance Gaussian fit */
    FIT_NORM_ACTNORM, /* per-column scale and shift */
    FIT_NORM_NONE
} fit_norm;

/* Settings of a run.  A size of 0 (a clamp, lr or decay below 0) means
 * "not given": fit_choose_defaults fills it in from the data. */
typedef struct fit_config {
    const char *data_path;
    const char *out_path;
    const char *val_path; /* --val FILE, or NULL */
    size_t layers;        /* coupling layers */
    size_t hidden[NVP_MAX_HIDDEN_LAYERS];
    size_t n_hidden;
    size_t steps, batch, eval_every, patience, lr_drops, threads;
    double lr, val_frac, clamp, average, clip_norm, weight_decay, noise;
    int val_frac_set;
    fit_mask mask;
    int mask_set;
    fit_norm norm;
    int norm_set;
    uint64_t seed, init_seed;
    int init_seed_set;
    int dequantize;
    int strict;
    int quiet;
    int json;
    csv_header header;
} fit_config;

/* The names of the choices, as --mask and --norm take them. */
const char *fit_mask_name(fit_mask m);
const char *fit_norm_name(fit_norm n);

/* Fills in every setting the command line left open, from the number of
 * training rows and columns. */
void fit_choose_defaults(fit_config *c, size_t n_train, size_t dim);

/* Builds the chain c describes over dim columns: couplings created with
 * NVP_INIT_ZERO_OUTPUT (each the identity until trained), their masks
 * and weights drawn from rng, then the --norm layer on the data side.
 * On failure prints a message and returns CLI_ERR, else CLI_OK. */
int fit_build_chain(const char *cmd, const fit_config *c, size_t dim,
                    nvp_rng *rng, nvp_chain **out);

/* The number of coupling layers of a chain. */
size_t fit_count_couplings(const nvp_chain *chain);

#endif
