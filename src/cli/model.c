/* SPDX-License-Identifier: MIT */
/* model.c - loading a model file for the nvpflow commands. */
#include "model.h"

#include <stdio.h>

#include "cli.h"

int model_load(const char *cmd, const char *path, nvp_chain **chain,
               nvp_scaler **scaler)
{
    int rc = nvp_chain_load_file(chain, scaler, path, NULL);
    if (rc != NVP_OK) {
        char what[320];
        snprintf(what, sizeof what, "cannot load model '%s'", path);
        cli_lib_error(cmd, what, rc, nvp_errmsg());
        return -1;
    }
    return 0;
}

int model_set_threads(const char *cmd, nvp_chain *chain, size_t threads)
{
    int rc = nvp_chain_set_threads(chain, threads);
    if (rc != NVP_OK) {
        cli_lib_error(cmd, "cannot set the thread count", rc,
                      nvp_chain_errmsg(chain));
        return -1;
    }
    return 0;
}
