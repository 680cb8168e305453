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
/* nvp_chain_set_threads with a message on failure; returns 0 or -1. */
int model_set_threads(const char *cmd, nvp_chain *chain, size_t threads);
/* The --threads line of the help texts. */
#define MODEL_THREADS_HELP \
    "  --threads T        worker threads, 0 = one per CPU (default 0)\n"

#endif
