/* SPDX-License-Identifier: MIT */
/* model.c - loading a model file for the nvpflow commands. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int model_parse_precision(const char *cmd, const char *arg, int *precision)
{
    if (strcmp(arg, "fp32") == 0) {
        *precision = NVP_PRECISION_FP32;
        return 0;
    }
    if (strcmp(arg, "bf16") == 0) {
        *precision = NVP_PRECISION_BF16;
        return 0;
    }
    cli_error(cmd, "--precision: '%s' is not fp32 or bf16", arg);
    return -1;
}

int model_set_precision(const char *cmd, nvp_chain *chain, int precision)
{
    static int warned;
    if (precision == NVP_PRECISION_BF16 &&
        !nvp_precision_supported(NVP_PRECISION_BF16)) {
        if (!warned)
            cli_warn(cmd, "--precision bf16: this CPU has no AVX512-BF16; "
                          "running in fp32");
        warned = 1;
        precision = NVP_PRECISION_FP32;
    }
    const int rc = nvp_chain_set_precision(chain, precision);
    if (rc != NVP_OK) {
        cli_lib_error(cmd, "cannot set the precision", rc,
                      nvp_chain_errmsg(chain));
        return -1;
    }
    return 0;
}

/* A scaler of axes [from, from + n) of s, in *out.  Returns an NVP status
 * with the message in *msg. */
static int sub_scaler(const nvp_scaler *s, size_t from, size_t n,
                      nvp_scaler **out, const char **msg)
{
    const size_t all = nvp_scaler_dim(s);
    float *mean = malloc(2 * all * sizeof *mean);
    *msg = "out of memory";
    if (!mean)
        return NVP_ENOMEM;
    float *sd = mean + all;
    int rc = nvp_scaler_get(s, all, mean, sd);
    if (rc != NVP_OK)
        *msg = nvp_scaler_errmsg(s);
    else if ((rc = nvp_scaler_create(out, n, NULL)) != NVP_OK)
        *msg = nvp_errmsg();
    else if ((rc = nvp_scaler_set(*out, n, mean + from, sd + from)) !=
             NVP_OK)
        *msg = nvp_scaler_errmsg(*out);
    free(mean);
    return rc;
}

int model_split_scaler(const char *cmd, const nvp_chain *chain,
                       const nvp_scaler *scaler, nvp_scaler **ys,
                       nvp_scaler **cs)
{
    const size_t dim = nvp_chain_dim(chain);
    const size_t cdim = nvp_chain_context_dim(chain);
    *ys = *cs = NULL;
    if (!scaler)
        return 0;
    const char *msg = "";
    int rc = sub_scaler(scaler, 0, dim, ys, &msg);
    if (rc == NVP_OK && cdim > 0 && nvp_scaler_dim(scaler) == dim + cdim)
        rc = sub_scaler(scaler, dim, cdim, cs, &msg);
    if (rc != NVP_OK) {
        cli_lib_error(cmd, "reading the model's standardisation", rc, msg);
        nvp_scaler_free(*ys);
        nvp_scaler_free(*cs);
        *ys = *cs = NULL;
        return -1;
    }
    return 0;
}

const char *model_column_name(const nvp_chain *chain,
                              const nvp_scaler *scaler, size_t j)
{
    const size_t dim = nvp_chain_dim(chain);
    if (j < dim)
        return nvp_chain_column_name(chain, j);
    /* The scaler holds the given columns' names only when it covers them
     * (dim + C axes). */
    return j < dim + nvp_chain_context_dim(chain)
               ? nvp_scaler_column_name(scaler, j)
               : NULL;
}
