/* SPDX-License-Identifier: MIT */
/* model.h - loading a model file for the nvpflow commands. */
#ifndef NVPFLOW_CLI_MODEL_H
#define NVPFLOW_CLI_MODEL_H

#include <stddef.h>

#include "nvpflow.h"

/* Loads the chain and its scaler (*scaler may come back NULL when the file
 * holds none).  On failure prints "nvpflow CMD: ..." and returns -1. */
int model_load(const char *cmd, const char *path, nvp_chain **chain,
               nvp_scaler **scaler);
/* A conditional model (fit --given) stores one scaler over its dim
 * modelled columns and then its C given columns (docs/file-format.md):
 * this splits it into the modelled columns' *ys and the given columns'
 * *cs.  Either comes back NULL when the file holds no standardisation for
 * it (identity).  Returns 0, or -1 after a message. */
int model_split_scaler(const char *cmd, const nvp_chain *chain,
                       const nvp_scaler *scaler, nvp_scaler **ys,
                       nvp_scaler **cs);
/* The name of the model's column j: j < dim a modelled column (the
 * chain's name), dim <= j < dim + C a given one (the scaler's); NULL when
 * the file names none. */
const char *model_column_name(const nvp_chain *chain,
                              const nvp_scaler *scaler, size_t j);
/* nvp_chain_set_threads with a message on failure; returns 0 or -1. */
int model_set_threads(const char *cmd, nvp_chain *chain, size_t threads);
/* The --threads line of the help texts. */
#define MODEL_THREADS_HELP \
    "  --threads T        worker threads, 0 = one per CPU (default 0)\n"
/* --precision's value, "fp32" or "bf16", as NVP_PRECISION_*: 0, or -1
 * after a message. */
int model_parse_precision(const char *cmd, const char *arg, int *precision);
/* nvp_chain_set_precision; where the CPU lacks AVX512-BF16, bf16 falls
 * back to fp32 with a warning (printed once per process).  Returns 0, or
 * -1 after a message. */
int model_set_precision(const char *cmd, nvp_chain *chain, int precision);
/* The --precision lines of the help texts. */
#define MODEL_PRECISION_HELP \
    "  --precision P      fp32 (default) or bf16: the networks' large matrix\n" \
    "                     products in bfloat16 on CPUs with AVX512-BF16\n" \
    "                     (faster, slightly less exact; fp32 elsewhere)\n"

#endif
