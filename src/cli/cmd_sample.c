/* SPDX-License-Identifier: MIT */
/* cmd_sample.c - nvpflow sample: draw points from a saved model and write
 * them as CSV in the original units of the training data. */
#include <math.h>
#include <stdint.h>
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

static const char CMD[] = "sample";

/* Rows drawn per library call: bounds the memory for large -n. */
#define CHUNK_ROWS 65536

void cmd_sample_help(FILE *fp)
{
    fprintf(fp,
        "Usage: nvpflow sample MODEL.nvp -n N [options]\n"
        "       nvpflow sample MODEL.nvp --given FILE [-n N] [options]\n"
        "\n"
        "Draws N new rows from the density learned by 'nvpflow fit' and\n"
        "writes them as CSV (one row per line, full float precision) in\n"
        "the units of the original data, after a header line of the\n"
        "column names when the model holds them (fit stores a header's).\n"
        "\n"
        "A conditional model (fit --given) needs the given columns' values:\n"
        "--given FILE, a CSV of them (found by name when FILE has a header\n"
        "and the model holds names, else by position, in the order 'nvpflow\n"
        "info' lists them).  N rows are drawn for each row of FILE, in\n"
        "FILE's order: its first row's N draws, then its second's, and so\n"
        "on.  They hold the modelled columns only, unless --with-given\n"
        "appends the given values too.\n"
        "\n"
        "Options:\n"
        "  -n, --count N      number of rows to draw (required without\n"
        "                     --given; with it, per given row, default 1)\n"
        "  --given FILE       the given columns' values, one row per draw\n"
        "                     set ('-' reads standard input)\n"
        "  --with-given       append the given columns to each drawn row\n"
        "  -o, --output FILE  write to FILE instead of standard output; the\n"
        "                     file appears only when complete\n"
        "  --seed S           random seed (default 0); same seed, same rows\n"
        "  --no-header        no header line, even when the model has names\n"
        "%s"
        "  -h, --help         this text\n"
        "\n"
        "Example:\n"
        "  nvpflow sample model.nvp -n 1000 -o synthetic.csv\n",
        MODEL_THREADS_HELP MODEL_PRECISION_HELP);
}

enum {
    O_COUNT = 'n', O_OUTPUT = 'o', O_HELP = 'h',
    O_SEED = ARG_LONG_ONLY, O_THREADS, O_NO_HEADER, O_GIVEN, O_WITH_GIVEN,
    O_PRECISION
};

static const char SHORT_OPTS[] = "n:o:h";
static const struct option LONG_OPTS[] = {
    {"count", required_argument, NULL, O_COUNT},
    {"output", required_argument, NULL, O_OUTPUT},
    {"seed", required_argument, NULL, O_SEED},
    {"threads", required_argument, NULL, O_THREADS},
    {"precision", required_argument, NULL, O_PRECISION},
    {"no-header", no_argument, NULL, O_NO_HEADER},
    {"given", required_argument, NULL, O_GIVEN},
    {"with-given", no_argument, NULL, O_WITH_GIVEN},
    {"help", no_argument, NULL, O_HELP},
    {NULL, 0, NULL, 0},
};

typedef struct sample_config {
    const char *model_path;
    const char *out_path;
    size_t count;
    int have_count;
    uint64_t seed;
    size_t threads;
    int precision;
    int no_header;
    const char *given_path; /* --given FILE, or NULL */
    int with_given;
} sample_config;

/* The model's column names as a CSV header line: the first dim of the
 * model's columns (with --with-given, also the given ones after them).
 * A name that this tool's reader would split or trim differently (a
 * comma, spaces at an end) cannot come from a header it read, only from
 * the library: it is written as it is, as the library holds it. */
static int write_header(FILE *fp, const nvp_chain *chain,
                        const nvp_scaler *scaler, size_t dim)
{
    for (size_t j = 0; j < dim; j++)
        if (fputs(model_column_name(chain, scaler, j), fp) < 0 ||
            fputc(j + 1 < dim ? ',' : '\n', fp) == EOF)
            return -1;
    return 0;
}

/* Returns -1 to go on, else the exit status. */
static int parse(int argc, char **argv, sample_config *c)
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
            if (c->model_path)
                return cli_usage_error(CMD, "unexpected argument '%s'", v);
            c->model_path = v;
            break;
        case O_HELP: cmd_sample_help(stdout); return CLI_OK;
        case O_COUNT:
            bad = args_size(CMD, p.opt, v, 1, (size_t)1 << 40, &c->count);
            c->have_count = 1;
            break;
        case O_OUTPUT:
            /* "-o -" is standard output, as no -o is. */
            c->out_path = strcmp(v, "-") == 0 ? NULL : v;
            break;
        case O_SEED: bad = args_u64(CMD, p.opt, v, &c->seed); break;
        case O_NO_HEADER: c->no_header = 1; break;
        case O_GIVEN: c->given_path = v; break;
        case O_WITH_GIVEN: c->with_given = 1; break;
        case O_THREADS:
            bad = args_size(CMD, p.opt, v, 0, NVP_MAX_THREADS, &c->threads);
            break;
        case O_PRECISION:
            bad = model_parse_precision(CMD, v, &c->precision) != 0;
            break;
        default: break;
        }
    }
    if (bad)
        return CLI_USAGE;
    if (!c->model_path)
        return cli_usage_error(CMD, "missing the model file");
    if (c->given_path && !*c->given_path)
        return cli_usage_error(CMD, "--given: the path is empty");
    if (c->with_given && !c->given_path)
        return cli_usage_error(CMD, "--with-given needs --given FILE");
    if (!c->have_count && !c->given_path)
        return cli_usage_error(CMD, "missing -n N (how many rows to draw)");
    if (!c->have_count)
        c->count = 1;
    return -1;
}

/* Reads --given FILE into g: the model's given columns, by name when
 * the model holds their names and FILE has a header, else by position.
 * Returns 0 or -1 (message printed). */
static int read_given(const sample_config *c, const nvp_chain *chain,
                      const nvp_scaler *scaler, csv_table *g)
{
    const size_t dim = nvp_chain_dim(chain);
    const size_t cdim = nvp_chain_context_dim(chain);
    int named = 1;
    for (size_t j = 0; j < cdim && named; j++)
        named = model_column_name(chain, scaler, dim + j) != NULL;
    if (csv_read(CMD, c->given_path, named ? 0 : cdim, CSV_HEADER_AUTO, g) !=
        0)
        return -1;
    if (named && g->names) {
        const char **names = malloc(cdim * sizeof *names);
        if (!names) {
            cli_error(CMD, "out of memory");
            return -1;
        }
        for (size_t j = 0; j < cdim; j++)
            names[j] = model_column_name(chain, scaler, dim + j);
        const int rc = columns_by_names(CMD, g, cdim, names);
        free(names);
        return rc;
    }
    if (g->cols != cdim) {
        cli_error(CMD, "%s has %zu columns, but the model is conditional on "
                  "%zu", c->given_path, g->cols, cdim);
        return -1;
    }
    return 0;
}

int cmd_sample(int argc, char **argv)
{
    sample_config c;
    int status = parse(argc, argv, &c);
    if (status >= 0)
        return status;
    nvp_chain *chain = NULL;
    nvp_scaler *scaler = NULL, *ys = NULL, *cs = NULL;
    nvp_rng *rng = NULL;
    float *y = NULL, *row = NULL, *gz = NULL;
    csv_table g;
    memset(&g, 0, sizeof g);
    out_file out;
    char err[OUT_ERR_MAX];
    memset(&out, 0, sizeof out);
    status = CLI_ERR;
    if (model_load(CMD, c.model_path, &chain, &scaler) != 0 ||
        model_set_threads(CMD, chain, c.threads) != 0 ||
        model_set_precision(CMD, chain, c.precision) != 0 ||
        model_split_scaler(CMD, chain, scaler, &ys, &cs) != 0)
        goto done;
    const size_t dim = nvp_chain_dim(chain);
    const size_t cdim = nvp_chain_context_dim(chain);
    if (cdim && !c.given_path) {
        cli_error(CMD, "the model is conditional on %zu given column%s: "
                  "give their values with --given FILE", cdim,
                  cdim == 1 ? "" : "s");
        goto done;
    }
    if (!cdim && c.given_path) {
        cli_error(CMD, "--given: the model is not conditional (fit it with "
                  "--given)");
        goto done;
    }
    /* Each given row, standardised as the model's given columns were. */
    if (cdim) {
        if (read_given(&c, chain, scaler, &g) != 0)
            goto done;
        gz = malloc(g.rows * cdim * sizeof *gz);
        if (!gz) {
            cli_error(CMD, "out of memory");
            goto done;
        }
        memcpy(gz, g.data, g.rows * cdim * sizeof *gz);
        int rc = cs ? nvp_scaler_transform(cs, g.rows, gz, gz) : NVP_OK;
        if (rc != NVP_OK) {
            cli_lib_error(CMD, "standardising the given rows", rc,
                          nvp_scaler_errmsg(cs));
            goto done;
        }
        for (size_t i = 0; i < g.rows * cdim; i++)
            if (!isfinite(gz[i])) {
                cli_error(CMD, "given row %zu is so far from the training "
                          "rows that standardising it overflows",
                          i / cdim + 1);
                goto done;
            }
    }
    int rc = nvp_rng_create(&rng, c.seed, NULL);
    if (rc != NVP_OK) {
        cli_lib_error(CMD, "cannot create the random generator", rc,
                      nvp_errmsg());
        goto done;
    }
    /* Output rows: the drawn columns, then with --with-given the given
     * values as read. */
    const size_t width = dim + (c.with_given ? cdim : 0);
    const size_t chunk = c.count < CHUNK_ROWS ? c.count : CHUNK_ROWS;
    y = malloc(chunk * dim * sizeof *y);
    row = c.with_given ? malloc(chunk * width * sizeof *row) : NULL;
    if (!y || (c.with_given && !row)) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    if (out_open(&out, c.out_path, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    int named = !c.no_header;
    for (size_t j = 0; j < width && named; j++)
        named = model_column_name(chain, scaler, j) != NULL;
    if (named && write_header(out.fp, chain, scaler, width) != 0) {
        cli_error(CMD, "write error: %s", out_name(&out));
        goto done;
    }
    const size_t groups = cdim ? g.rows : 1;
    size_t written = 0;
    for (size_t gi = 0; gi < groups; gi++)
        for (size_t done_rows = 0; done_rows < c.count;) {
            const size_t n =
                c.count - done_rows < chunk ? c.count - done_rows : chunk;
            rc = cdim ? nvp_chain_sample_given_one(chain, rng, n,
                                                   gz + gi * cdim, y, NULL)
                      : nvp_chain_sample(chain, rng, n, y, NULL);
            if (rc != NVP_OK) {
                cli_lib_error(CMD, "sampling failed", rc,
                              nvp_chain_errmsg(chain));
                goto done;
            }
            if (ys &&
                (rc = nvp_scaler_inverse_transform(ys, n, y, y)) != NVP_OK) {
                cli_lib_error(CMD, "mapping back to the original units", rc,
                              nvp_scaler_errmsg(ys));
                goto done;
            }
            /* inf would make a file no CSV reader takes back, this tool's
             * included: refuse it rather than write it. */
            for (size_t i = 0; i < n * dim; i++)
                if (!isfinite(y[i])) {
                    cli_error(CMD,
                              "sample %zu has a value beyond the float range "
                              "in column %zu (the model puts mass that far "
                              "out); sampling stopped (a file named by -o is "
                              "left as it was)",
                              written + i / dim + 1, i % dim + 1);
                    goto done;
                }
            const float *w = y;
            if (row) {
                for (size_t i = 0; i < n; i++) {
                    memcpy(row + i * width, y + i * dim, dim * sizeof *row);
                    memcpy(row + i * width + dim, g.data + gi * cdim,
                           cdim * sizeof *row);
                }
                w = row;
            }
            if (csv_write_rows(out.fp, w, n, width) != 0) {
                cli_error(CMD, "write error: %s", out_name(&out));
                goto done;
            }
            done_rows += n;
            written += n;
        }
    if (out_commit(&out, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    status = CLI_OK;
done:
    out_abort(&out);
    free(row);
    free(gz);
    free(y);
    csv_free(&g);
    nvp_rng_free(rng);
    nvp_scaler_free(ys);
    nvp_scaler_free(cs);
    nvp_scaler_free(scaler);
    nvp_chain_free(chain);
    return status;
}
