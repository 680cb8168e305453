/* SPDX-License-Identifier: MIT */
/* cmd_info.c - nvpflow info: describe a saved model, all of it through the
 * public API of the loaded model. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "model.h"
#include "numparse.h"
#include "nvpflow.h"

static const char CMD[] = "info";

/* Columns of the mask shown before "...". */
#define MASK_SHOWN 48

void cmd_info_help(FILE *fp)
{
    fprintf(fp,
        "Usage: nvpflow info MODEL.nvp\n"
        "\n"
        "Describes a model saved by 'nvpflow fit' (or by a program using\n"
        "libnvpflow): file size and format version, dimension, the coupling\n"
        "layers (mask, hidden widths, log-scale clamp, parameter count) and\n"
        "the standardisation (mean and standard deviation of each column).\n"
        "In a mask, 1 marks a column the layer conditions on and 0 a column\n"
        "it transforms.\n"
        "\n"
        "Options:\n"
        "  -h, --help         this text\n");
}

/* ------------------------------------------------------------- printing */
static void print_layers(const nvp_chain *chain, unsigned char *mask)
{
    const size_t dim = nvp_chain_dim(chain), K = nvp_chain_num_layers(chain);
    printf("\n%-6s %-7s %-7s %-14s %s\n", "layer", "params", "clamp",
           "hidden", "mask (1 = conditions on, 0 = transforms)");
    for (size_t k = 0; k < K; k++) {
        const nvp_coupling *l = nvp_chain_layer(chain, k, NULL);
        char hidden[64] = "?";
        size_t w[NVP_MAX_HIDDEN_LAYERS];
        size_t nh;
        if (nvp_coupling_hidden(l, w, NVP_MAX_HIDDEN_LAYERS, &nh) == NVP_OK) {
            num_format_list(hidden, sizeof hidden, w, nh);
            if (nh == 0)
                snprintf(hidden, sizeof hidden, "(affine)");
        }
        printf("%-6zu %-7zu %-7g %-14s ", k + 1, nvp_coupling_num_params(l),
               (double)nvp_coupling_log_scale_clamp(l), hidden);
        if (nvp_coupling_get_mask(l, mask, dim) == NVP_OK) {
            for (size_t j = 0; j < dim && j < MASK_SHOWN; j++)
                putchar(mask[j] ? '1' : '0');
            if (dim > MASK_SHOWN)
                fputs("...", stdout);
        }
        putchar('\n');
    }
}

static int print_scaler(const nvp_scaler *scaler, size_t dim)
{
    if (!scaler) {
        printf("\nstandardisation: none (the model works in the data's own "
               "units)\n");
        return 0;
    }
    float *mean = malloc(dim * sizeof *mean), *sd = malloc(dim * sizeof *sd);
    int rc = -1;
    if (mean && sd && nvp_scaler_get(scaler, mean, sd, dim) == NVP_OK) {
        printf("\nstandardisation (sum of log sd %.9g):\n",
               nvp_scaler_log_det(scaler));
        printf("%-7s %-16s %s\n", "column", "mean", "sd");
        for (size_t j = 0; j < dim; j++)
            printf("%-7zu %-16.9g %.9g\n", j + 1, (double)mean[j],
                   (double)sd[j]);
        rc = 0;
    }
    free(mean);
    free(sd);
    return rc;
}

enum { O_HELP = 'h' };

static const struct option LONG_OPTS[] = {
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    arg_parser p;
    args_init(&p, CMD, argc, argv, "h", LONG_OPTS);
    const char *v;
    int id;
    while ((id = args_next(&p, &v)) != ARG_END) {
        if (id == ARG_ERROR)
            return CLI_USAGE;
        if (id == O_HELP) {
            cmd_info_help(stdout);
            return CLI_OK;
        }
        if (path)
            return cli_usage_error(CMD, "unexpected argument '%s'", v);
        path = v;
    }
    if (!path)
        return cli_usage_error(CMD, "missing the model file");

    nvp_chain *chain = NULL;
    nvp_scaler *scaler = NULL;
    if (model_load(CMD, path, &chain, &scaler) != 0)
        return CLI_ERR;
    struct stat st;
    const size_t dim = nvp_chain_dim(chain);
    unsigned char *mask = malloc(dim);
    int status = CLI_ERR;
    if (!mask) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    printf("file:            %s\n", path);
    if (stat(path, &st) == 0)
        printf("size:            %lld bytes\n", (long long)st.st_size);
    /* The library reads only its own format version. */
    printf("format version:  %d\n", NVP_FILE_FORMAT_VERSION);
    printf("dimension:       %zu\n", dim);
    printf("base:            standard normal\n");
    printf("coupling layers: %zu\n", nvp_chain_num_layers(chain));
    printf("parameters:      %zu\n", nvp_chain_num_params(chain));
    print_layers(chain, mask);
    if (print_scaler(scaler, dim) != 0) {
        cli_error(CMD, "cannot read the standardisation");
        goto done;
    }
    if (fflush(stdout) != 0) {
        cli_error(CMD, "error writing to standard output: %s",
                  strerror(errno));
        goto done;
    }
    status = CLI_OK;
done:
    free(mask);
    nvp_scaler_free(scaler);
    nvp_chain_free(chain);
    return status;
}
