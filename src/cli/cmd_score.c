/* SPDX-License-Identifier: MIT */
/* cmd_score.c - nvpflow score: the log density of every row of a CSV file
 * under a saved model, in the original units (for anomaly detection: the
 * lower, the more unusual). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "columns.h"
#include "csv.h"
#include "model.h"
#include "nvpflow.h"
#include "outfile.h"

static const char CMD[] = "score";

void cmd_score_help(FILE *fp)
{
    fprintf(fp,
        "Usage: nvpflow score MODEL.nvp DATA.csv [options]\n"
        "\n"
        "Writes the log density of each row of DATA.csv ('-' reads standard\n"
        "input) under the model, one number per line in the order of the\n"
        "rows, preceded by the header 'log_density' when DATA.csv has a\n"
        "header.  The densities are in the units of the original data (the\n"
        "model's standardisation is accounted for), so they compare across\n"
        "rows: low values mark unusual rows.  Every row must have as many\n"
        "columns as the model's training data, in the same order; when the\n"
        "model holds column names (fit stores a header's) and DATA.csv has\n"
        "a header, the columns are found by name instead.\n"
        "\n"
        "A conditional model (fit --given) gives log p(y | c): each row then\n"
        "holds the modelled columns y and the given columns c, found by name\n"
        "as above, or by position: the modelled columns first, then the\n"
        "given ones, in the order 'nvpflow info' lists them.\n"
        "\n"
        "Options:\n"
        "  -o, --output FILE  write to FILE instead of standard output; the\n"
        "                     file appears only when complete\n"
        "%s"
        CSV_HEADER_HELP
        "  -h, --help         this text\n"
        "\n"
        "Example (the 10 most unusual rows):\n"
        "  nvpflow score model.nvp data.csv | grep -vx log_density | nl |\n"
        "      sort -g -k2 | head\n",
        MODEL_THREADS_HELP MODEL_PRECISION_HELP);
}

enum {
    O_OUTPUT = 'o', O_HELP = 'h',
    O_THREADS = ARG_LONG_ONLY, O_HEADER, O_NO_HEADER, O_PRECISION
};

static const char SHORT_OPTS[] = "o:h";
static const struct option LONG_OPTS[] = {
    {"output", required_argument, NULL, O_OUTPUT},
    {"threads", required_argument, NULL, O_THREADS},
    {"precision", required_argument, NULL, O_PRECISION},
    {"header", no_argument, NULL, O_HEADER},
    {"no-header", no_argument, NULL, O_NO_HEADER},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct score_config {
    const char *model_path;
    const char *data_path;
    const char *out_path;
    size_t threads;
    int precision;
    csv_header header;
} score_config;

/* Returns -1 to go on, else the exit status. */
static int parse(int argc, char **argv, score_config *c)
{
    memset(c, 0, sizeof *c);
    arg_parser p;
    args_init(&p, CMD, argc, argv, SHORT_OPTS, LONG_OPTS);
    const char *v;
    int id, bad = 0;
    while (!bad && (id = args_next(&p, &v)) != ARG_END) {
        switch (id) {
        case ARG_ERROR: return CLI_USAGE;
        case ARG_POSITIONAL:
            if (!c->model_path)
                c->model_path = v;
            else if (!c->data_path)
                c->data_path = v;
            else
                return cli_usage_error(CMD, "unexpected argument '%s'", v);
            break;
        case O_HELP: cmd_score_help(stdout); return CLI_OK;
        case O_OUTPUT:
            /* "-o -" is standard output, as no -o is. */
            c->out_path = strcmp(v, "-") == 0 ? NULL : v;
            break;
        case O_THREADS:
            bad = args_size(CMD, p.opt, v, 0, NVP_MAX_THREADS, &c->threads);
            break;
        case O_PRECISION:
            bad = model_parse_precision(CMD, v, &c->precision) != 0;
            break;
        case O_HEADER: c->header = CSV_HEADER_YES; break;
        case O_NO_HEADER: c->header = CSV_HEADER_NO; break;
        default: break;
        }
    }
    if (bad)
        return CLI_USAGE;
    if (!c->model_path)
        return cli_usage_error(CMD, "missing the model file");
    if (!c->data_path)
        return cli_usage_error(CMD, "missing the data file (a CSV)");
    return -1;
}

/* Reads the rows to score into t.  A model that holds column names and a
 * file with a header are matched by name (extra columns, such as the
 * index pandas writes, are left out, and the order may differ); otherwise,
 * or with a warning when the header lacks a model name but the counts
 * agree (a renamed header), by position, with exactly the model's number
 * of columns.  Returns 0 or
 * -1 (message printed). */
static int read_rows(const score_config *c, const nvp_chain *chain,
                     const nvp_scaler *scaler, size_t dim, csv_table *t)
{
    /* dim counts the modelled and the given columns together here. */
    int named = 1;
    for (size_t j = 0; j < dim && named; j++)
        named = model_column_name(chain, scaler, j) != NULL;
    if (csv_read(CMD, c->data_path, named ? 0 : dim, c->header, t) != 0)
        return -1;
    size_t missing = dim;
    for (size_t j = 0; named && t->names && j < dim && missing == dim; j++) {
        if (columns_find(t, model_column_name(chain, scaler, j)) == t->cols)
            missing = j;
    }
    if (named && t->names && missing < dim && t->cols == dim)
        cli_warn(CMD, "the header does not name the model's column '%s': "
                 "the columns are taken by position",
                 model_column_name(chain, scaler, missing));
    else if (named && t->names) {
        const char **names = malloc(dim * sizeof *names);
        if (!names) {
            cli_error(CMD, "out of memory");
            return -1;
        }
        for (size_t j = 0; j < dim; j++)
            names[j] = model_column_name(chain, scaler, j);
        const int rc = columns_by_names(CMD, t, dim, names);
        free(names);
        return rc;
    }
    if (t->cols != dim) {
        const size_t cdim = nvp_chain_context_dim(chain);
        if (cdim)
            cli_error(CMD, "%s has %zu columns, but the model reads %zu (%zu "
                      "modelled, then %zu given)",
                      c->data_path, t->cols, dim, dim - cdim, cdim);
        else
            cli_error(CMD, "%s has %zu columns, but the model has %zu "
                      "dimensions",
                      c->data_path, t->cols, dim);
        return -1;
    }
    return 0;
}

int cmd_score(int argc, char **argv)
{
    score_config c;
    int status = parse(argc, argv, &c);
    if (status >= 0)
        return status;
    nvp_chain *chain = NULL;
    nvp_scaler *scaler = NULL, *ys = NULL, *cs = NULL;
    csv_table t;
    memset(&t, 0, sizeof t);
    float *lp = NULL, *y = NULL, *ctx = NULL;
    out_file out;
    char err[OUT_ERR_MAX];
    memset(&out, 0, sizeof out);
    status = CLI_ERR;
    if (model_load(CMD, c.model_path, &chain, &scaler) != 0 ||
        model_set_threads(CMD, chain, c.threads) != 0 ||
        model_set_precision(CMD, chain, c.precision) != 0)
        goto done;
    const size_t dim = nvp_chain_dim(chain);
    const size_t cdim = nvp_chain_context_dim(chain);
    if (model_split_scaler(CMD, chain, scaler, &ys, &cs) != 0 ||
        read_rows(&c, chain, scaler, dim + cdim, &t) != 0)
        goto done;
    lp = malloc(t.rows * sizeof *lp);
    /* The rows' modelled part y and given part ctx (a conditional model),
     * each standardised by its own axes of the model's scaler. */
    y = cdim ? malloc((t.rows + 1) * dim * sizeof *y) : t.data;
    ctx = cdim ? malloc((t.rows + 1) * cdim * sizeof *ctx) : NULL;
    if (!lp || !y || (cdim && !ctx)) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    for (size_t i = 0; cdim && i < t.rows; i++) {
        memcpy(y + i * dim, t.data + i * (dim + cdim), dim * sizeof *y);
        memcpy(ctx + i * cdim, t.data + i * (dim + cdim) + dim,
               cdim * sizeof *ctx);
    }
    int rc = NVP_OK;
    if (ys && (rc = nvp_scaler_transform(ys, t.rows, y, y)) != NVP_OK) {
        cli_lib_error(CMD, "standardising", rc, nvp_scaler_errmsg(ys));
        goto done;
    }
    if (cs && (rc = nvp_scaler_transform(cs, t.rows, ctx, ctx)) != NVP_OK) {
        cli_lib_error(CMD, "standardising", rc, nvp_scaler_errmsg(cs));
        goto done;
    }
    if ((rc = nvp_chain_log_prob_given(chain, t.rows, y, ctx, lp)) !=
        NVP_OK) {
        cli_lib_error(CMD, "computing the densities", rc,
                      nvp_chain_errmsg(chain));
        goto done;
    }
    /* The rows are finite (csv_read checks), but standardising a row far
     * out can overflow to an infinity, for which the library gives NaN:
     * such a row's density underflows, so its log density is -inf, the
     * lowest there is, as "lowest is most unusual" wants. */
    for (size_t i = 0; i < t.rows; i++)
        for (size_t j = 0; j < dim; j++)
            if (!isfinite(y[i * dim + j])) {
                lp[i] = -INFINITY;
                break;
            }
    /* A given row that standardising sends to an infinity is outside
     * anything the model has seen: no density for it (NaN, not a number
     * that would rank it). */
    for (size_t i = 0; i < t.rows; i++)
        for (size_t j = 0; j < cdim; j++)
            if (!isfinite(ctx[i * cdim + j])) {
                lp[i] = NAN;
                break;
            }
    /* log p_x(x) = log p_z(z) - sum_i log sd_i for z = (x - mean) / sd;
     * the given columns' standardisation changes the condition, not the
     * density's units. */
    const double log_det = ys ? nvp_scaler_log_det(ys) : 0.0;
    if (out_open(&out, c.out_path, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    int werr = t.has_header && fputs("log_density\n", out.fp) < 0;
    for (size_t i = 0; i < t.rows && !werr; i++)
        werr = fprintf(out.fp, "%.9g\n", (double)lp[i] - log_det) < 0;
    if (werr) {
        cli_error(CMD, "write error: %s",
                  out_name(&out));
        goto done;
    }
    if (out_commit(&out, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    status = CLI_OK;
done:
    out_abort(&out);
    free(lp);
    if (y != t.data)
        free(y);
    free(ctx);
    csv_free(&t);
    nvp_scaler_free(ys);
    nvp_scaler_free(cs);
    nvp_scaler_free(scaler);
    nvp_chain_free(chain);
    return status;
}
