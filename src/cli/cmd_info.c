/* SPDX-License-Identifier: MIT */
/* cmd_info.c - nvpflow info: describe a saved model, all of it through the
 * public API of the loaded model, as text or as JSON. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "json.h"
#include "model.h"
#include "numparse.h"
#include "nvpflow.h"

static const char CMD[] = "info";

/* Columns of the mask shown before "..." in the text. */
#define MASK_SHOWN 48

void cmd_info_help(FILE *fp)
{
    fprintf(fp,
        "Usage: nvpflow info MODEL.nvp [--json]\n"
        "\n"
        "Describes a model saved by 'nvpflow fit' (or by a program using\n"
        "libnvpflow): file size and format version, dimension, the layers\n"
        "(kind and parameter count; for an affine coupling also its mask,\n"
        "hidden widths and log-scale clamp) and\n"
        "the standardisation (mean and standard deviation of each column).\n"
        "A conditional model (fit --given) also lists its given columns,\n"
        "with their standardisation.\n"
        "In a mask, 1 marks a column the layer conditions on and 0 a column\n"
        "it transforms.\n"
        "\n"
        "Options:\n"
        "  --json             one JSON object instead of text: file, size,\n"
        "                     format_version, dimension, base,\n"
        "                     coupling_layers, parameters, layers (each:\n"
        "                     kind, parameters; couplings also clamp,\n"
        "                     hidden, mask) and\n"
        "                     standardisation (log_det, mean, sd; or null);\n"
        "                     context_dimension and given_columns (names or\n"
        "                     null), with given_mean and given_sd in\n"
        "                     standardisation for a conditional model\n"
        "  -h, --help         this text\n");
}

/* What info reports, read once for either form. */
typedef struct model_info {
    const char *path;
    long long size; /* -1 when the file cannot be stat'ed any more */
    const nvp_chain *chain;
    const nvp_scaler *scaler;
    size_t dim, layers;
    size_t cdim;         /* given columns (0: not conditional) */
    size_t sdim;         /* the scaler's axes: dim, or dim + cdim */
    unsigned char *mask; /* dim bytes of scratch */
    float *mean, *sd;    /* sdim floats each, with a scaler */
} model_info;

/* Layer k's hidden widths into w (*nh of them); 0 or -1. */
static int layer_hidden(const nvp_coupling *l, size_t *w, size_t *nh)
{
    return nvp_coupling_get_hidden(l, NVP_MAX_HIDDEN_LAYERS, w, nh) == NVP_OK
               ? 0
               : -1;
}

/* The format version the library wrote the model in: 1 for affine
 * couplings alone without column names, 2 otherwise. */
static unsigned file_version(const model_info *m)
{
    /* The writer's rule (docs/file-format.md): version 2 for column names
     * or a layer other than a coupling, version 1 otherwise. */
    if (nvp_chain_column_name(m->chain, 0))
        return 2;
    for (size_t k = 0; k < m->layers; k++)
        if (!nvp_layer_as_coupling(nvp_chain_layer(m->chain, k, NULL)))
            return 2;
    return 1;
}

static size_t count_couplings(const model_info *m)
{
    size_t n = 0;
    for (size_t k = 0; k < m->layers; k++)
        n += nvp_layer_as_coupling(nvp_chain_layer(m->chain, k, NULL)) != NULL;
    return n;
}

/* ----------------------------------------------------------------- text */
static void print_layers(const model_info *m)
{
    printf("\n%-6s %-7s %-7s %-14s %s\n", "layer", "params", "clamp",
           "hidden", "mask (1 = conditions on, 0 = transforms)");
    for (size_t k = 0; k < m->layers; k++) {
        const nvp_layer *any = nvp_chain_layer(m->chain, k, NULL);
        const nvp_coupling *l = nvp_layer_as_coupling(any);
        if (!l) {
            printf("%-6zu %-7zu %-7s %-14s (%s)\n", k + 1,
                   nvp_layer_num_params(any), "-", "-", nvp_layer_kind(any));
            continue;
        }
        char hidden[64] = "?";
        size_t w[NVP_MAX_HIDDEN_LAYERS];
        size_t nh;
        if (layer_hidden(l, w, &nh) == 0) {
            num_format_list(hidden, sizeof hidden, w, nh);
            if (nh == 0)
                snprintf(hidden, sizeof hidden, "(affine)");
        }
        printf("%-6zu %-7zu %-7g %-14s ", k + 1, nvp_coupling_num_params(l),
               (double)nvp_coupling_log_scale_clamp(l), hidden);
        if (nvp_coupling_get_mask(l, m->dim, m->mask) == NVP_OK) {
            for (size_t j = 0; j < m->dim && j < MASK_SHOWN; j++)
                putchar(m->mask[j] ? '1' : '0');
            if (m->dim > MASK_SHOWN)
                fputs("...", stdout);
        }
        putchar('\n');
    }
}

/* sum of log sd over the modelled columns: a conditional model's scaler
 * also holds the given columns', which do not change the density's units
 * (the order of nvp_scaler_log_det, so the same bits without them). */
static double log_det(const model_info *m)
{
    double sum = 0.0;
    for (size_t j = 0; j < m->dim; j++)
        sum += log((double)m->sd[j]);
    return sum;
}

static void print_scaler(const model_info *m)
{
    if (!m->scaler) {
        printf("\nstandardisation: none (the model works in the data's own "
               "units)\n");
        return;
    }
    printf("\nstandardisation (sum of log sd %.9g):\n", log_det(m));
    printf("%-7s %-16s %-16s %s\n", "column", "mean", "sd", "name");
    for (size_t j = 0; j < m->sdim; j++) {
        const char *name = model_column_name(m->chain, m->scaler, j);
        printf("%-7zu %-16.9g %-16.9g %s%s\n", j + 1, (double)m->mean[j],
               (double)m->sd[j], name ? name : "-",
               j >= m->dim ? " (given)" : "");
    }
}

static void print_text(const model_info *m)
{
    printf("file:            %s\n", m->path);
    if (m->size >= 0)
        printf("size:            %lld bytes\n", m->size);
    printf("format version:  %u\n", file_version(m));
    printf("dimension:       %zu\n", m->dim);
    if (m->cdim) {
        printf("given columns:   %zu", m->cdim);
        for (size_t j = 0; j < m->cdim; j++) {
            const char *name =
                model_column_name(m->chain, m->scaler, m->dim + j);
            printf("%s%s", j ? ", " : " (", name ? name : "-");
        }
        printf("): the model is p(y | given)\n");
    }
    const size_t n_comp = nvp_base_components(nvp_chain_base(m->chain));
    if (nvp_base_kind(nvp_chain_base(m->chain)) == NVP_BASE_MIXTURE)
        printf("base:            mixture of %zu Gaussian%s\n", n_comp,
               n_comp == 1 ? "" : "s");
    else
        printf("base:            standard normal\n");
    printf("layers:          %zu (%zu affine couplings)\n", m->layers,
           count_couplings(m));
    printf("parameters:      %zu\n", nvp_chain_num_params(m->chain));
    print_layers(m);
    print_scaler(m);
}

/* ----------------------------------------------------------------- JSON */
static void json_floats(json_out *j, const char *key, const float *x,
                        size_t n)
{
    json_array_line(j, key);
    for (size_t i = 0; i < n; i++)
        json_float(j, NULL, x[i]);
    json_close(j);
}

/* The keys are documented in --help and the man page; they stay. */
static void print_json(const model_info *m)
{
    json_out j;
    json_begin(&j, stdout);
    json_string(&j, "file", m->path);
    if (m->size >= 0)
        json_uint(&j, "size", (unsigned long long)m->size);
    else
        json_null(&j, "size");
    json_uint(&j, "format_version", file_version(m));
    json_uint(&j, "dimension", m->dim);
    if (nvp_chain_column_name(m->chain, 0)) {
        json_array_line(&j, "columns");
        for (size_t c = 0; c < m->dim; c++)
            json_string(&j, NULL, nvp_chain_column_name(m->chain, c));
        json_close(&j);
    } else {
        json_null(&j, "columns");
    }
    json_uint(&j, "context_dimension", m->cdim);
    int given_named = m->cdim > 0;
    for (size_t c = 0; c < m->cdim && given_named; c++)
        given_named = model_column_name(m->chain, m->scaler, m->dim + c) != NULL;
    if (given_named) {
        json_array_line(&j, "given_columns");
        for (size_t c = 0; c < m->cdim; c++)
            json_string(&j, NULL,
                        model_column_name(m->chain, m->scaler, m->dim + c));
        json_close(&j);
    } else {
        json_null(&j, "given_columns");
    }
    json_string(&j, "base",
                nvp_base_kind(nvp_chain_base(m->chain)) == NVP_BASE_MIXTURE
                    ? "mixture"
                    : "standard_normal");
    json_uint(&j, "base_components",
              nvp_base_components(nvp_chain_base(m->chain)));
    json_uint(&j, "coupling_layers", count_couplings(m));
    json_uint(&j, "parameters", nvp_chain_num_params(m->chain));
    json_array(&j, "layers");
    for (size_t k = 0; k < m->layers; k++) {
        const nvp_layer *any = nvp_chain_layer(m->chain, k, NULL);
        const nvp_coupling *l = nvp_layer_as_coupling(any);
        size_t w[NVP_MAX_HIDDEN_LAYERS], nh = 0;
        json_object(&j, NULL);
        json_string(&j, "kind", nvp_layer_kind(any));
        json_uint(&j, "parameters", nvp_layer_num_params(any));
        if (!l) {
            json_close(&j);
            continue;
        }
        json_float(&j, "clamp", nvp_coupling_log_scale_clamp(l));
        json_array_line(&j, "hidden");
        if (layer_hidden(l, w, &nh) == 0)
            for (size_t h = 0; h < nh; h++)
                json_uint(&j, NULL, w[h]);
        json_close(&j);
        /* The mask as text, one '1' or '0' per column: compact for a
         * thousand columns, and what the text form shows. */
        if (nvp_coupling_get_mask(l, m->dim, m->mask) == NVP_OK) {
            for (size_t c = 0; c < m->dim; c++)
                m->mask[c] = m->mask[c] ? '1' : '0';
            m->mask[m->dim] = '\0';
            json_string(&j, "mask", (const char *)m->mask);
        } else {
            json_null(&j, "mask");
        }
        json_close(&j);
    }
    json_close(&j);
    if (m->scaler) {
        json_object(&j, "standardisation");
        json_double(&j, "log_det", log_det(m));
        json_floats(&j, "mean", m->mean, m->dim);
        json_floats(&j, "sd", m->sd, m->dim);
        if (m->sdim > m->dim) {
            json_floats(&j, "given_mean", m->mean + m->dim, m->cdim);
            json_floats(&j, "given_sd", m->sd + m->dim, m->cdim);
        }
        json_close(&j);
    } else {
        json_null(&j, "standardisation");
    }
    json_end(&j);
}

enum { O_HELP = 'h', O_JSON = ARG_LONG_ONLY };

static const struct option LONG_OPTS[] = {
    {"json", no_argument, NULL, O_JSON},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
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
        if (id == O_JSON) {
            json = 1;
            continue;
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
    model_info m = {.path = path, .size = -1, .chain = chain,
                    .scaler = scaler};
    struct stat st;
    if (stat(path, &st) == 0)
        m.size = (long long)st.st_size;
    m.dim = nvp_chain_dim(chain);
    m.layers = nvp_chain_num_layers(chain);
    m.mask = malloc(m.dim + 1);
    m.cdim = nvp_chain_context_dim(chain);
    m.sdim = scaler ? nvp_scaler_dim(scaler) : m.dim;
    m.mean = malloc(m.sdim * sizeof *m.mean);
    m.sd = malloc(m.sdim * sizeof *m.sd);
    int status = CLI_ERR;
    if (!m.mask || !m.mean || !m.sd) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    /* Read before anything is printed: a failure prints no half report. */
    if (scaler && nvp_scaler_get(scaler, m.sdim, m.mean, m.sd) != NVP_OK) {
        cli_error(CMD, "cannot read the standardisation");
        goto done;
    }
    if (json)
        print_json(&m);
    else
        print_text(&m);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error(CMD, "error writing to standard output: %s",
                  strerror(errno));
        goto done;
    }
    status = CLI_OK;
done:
    free(m.mask);
    free(m.mean);
    free(m.sd);
    nvp_scaler_free(scaler);
    nvp_chain_free(chain);
    return status;
}
