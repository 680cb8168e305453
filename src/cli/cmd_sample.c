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
        "\n"
        "Draws N new rows from the density learned by 'nvpflow fit' and\n"
        "writes them as CSV (one row per line, full float precision) in\n"
        "the units of the original data, after a header line of the\n"
        "column names when the model holds them (fit stores a header's).\n"
        "\n"
        "Options:\n"
        "  -n, --count N      number of rows to draw (required)\n"
        "  -o, --output FILE  write to FILE instead of standard output; the\n"
        "                     file appears only when complete\n"
        "  --seed S           random seed (default 0); same seed, same rows\n"
        "  --no-header        no header line, even when the model has names\n"
        "%s"
        "  -h, --help         this text\n"
        "\n"
        "Example:\n"
        "  nvpflow sample model.nvp -n 1000 -o synthetic.csv\n",
        MODEL_THREADS_HELP);
}

enum {
    O_COUNT = 'n', O_OUTPUT = 'o', O_HELP = 'h',
    O_SEED = ARG_LONG_ONLY, O_THREADS, O_NO_HEADER
};

static const char SHORT_OPTS[] = "n:o:h";
static const struct option LONG_OPTS[] = {
    {"count", required_argument, NULL, O_COUNT},
    {"output", required_argument, NULL, O_OUTPUT},
    {"seed", required_argument, NULL, O_SEED},
    {"threads", required_argument, NULL, O_THREADS},
    {"no-header", no_argument, NULL, O_NO_HEADER},
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
    int no_header;
} sample_config;

/* The model's column names as a CSV header line.  A name that this
 * tool's reader would split or trim differently (a comma, spaces at an
 * end) cannot come from a header it read, only from the library: it is
 * written as it is, as the library holds it. */
static int write_header(FILE *fp, const nvp_chain *chain, size_t dim)
{
    for (size_t j = 0; j < dim; j++)
        if (fputs(nvp_chain_column_name(chain, j), fp) < 0 ||
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
        case O_THREADS:
            bad = args_size(CMD, p.opt, v, 0, NVP_MAX_THREADS, &c->threads);
            break;
        default: break;
        }
    }
    if (bad)
        return CLI_USAGE;
    if (!c->model_path)
        return cli_usage_error(CMD, "missing the model file");
    if (!c->have_count)
        return cli_usage_error(CMD, "missing -n N (how many rows to draw)");
    return -1;
}

int cmd_sample(int argc, char **argv)
{
    sample_config c;
    int status = parse(argc, argv, &c);
    if (status >= 0)
        return status;
    nvp_chain *chain = NULL;
    nvp_scaler *scaler = NULL;
    nvp_rng *rng = NULL;
    float *y = NULL;
    out_file out;
    char err[OUT_ERR_MAX];
    memset(&out, 0, sizeof out);
    status = CLI_ERR;
    if (model_load(CMD, c.model_path, &chain, &scaler) != 0 ||
        model_set_threads(CMD, chain, c.threads) != 0)
        goto done;
    const size_t dim = nvp_chain_dim(chain);
    int rc = nvp_rng_create(&rng, c.seed, NULL);
    if (rc != NVP_OK) {
        cli_lib_error(CMD, "cannot create the random generator", rc,
                      nvp_errmsg());
        goto done;
    }
    const size_t chunk = c.count < CHUNK_ROWS ? c.count : CHUNK_ROWS;
    y = malloc(chunk * dim * sizeof *y);
    if (!y) {
        cli_error(CMD, "out of memory");
        goto done;
    }
    if (out_open(&out, c.out_path, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    if (!c.no_header && nvp_chain_column_name(chain, 0) &&
        write_header(out.fp, chain, dim) != 0) {
        cli_error(CMD, "write error: %s", out_name(&out));
        goto done;
    }
    for (size_t done_rows = 0; done_rows < c.count;) {
        const size_t n =
            c.count - done_rows < chunk ? c.count - done_rows : chunk;
        rc = nvp_chain_sample(chain, rng, n, y, NULL);
        if (rc != NVP_OK) {
            cli_lib_error(CMD, "sampling failed", rc,
                          nvp_chain_errmsg(chain));
            goto done;
        }
        if (scaler &&
            (rc = nvp_scaler_inverse_transform(scaler, n, y, y)) != NVP_OK) {
            cli_lib_error(CMD, "mapping back to the original units", rc,
                          nvp_scaler_errmsg(scaler));
            goto done;
        }
        /* inf would make a file no CSV reader takes back, this tool's
         * included: refuse it rather than write it. */
        for (size_t i = 0; i < n * dim; i++)
            if (!isfinite(y[i])) {
                cli_error(CMD,
                          "sample %zu has a value beyond the float range in "
                          "column %zu (the model puts mass that far out); "
                          "sampling stopped (a file named by -o is left "
                          "as it was)",
                          done_rows + i / dim + 1, i % dim + 1);
                goto done;
            }
        if (csv_write_rows(out.fp, y, n, dim) != 0) {
            cli_error(CMD, "write error: %s", out_name(&out));
            goto done;
        }
        done_rows += n;
    }
    if (out_commit(&out, err, sizeof err) != 0) {
        cli_error(CMD, "%s", err);
        goto done;
    }
    status = CLI_OK;
done:
    out_abort(&out);
    free(y);
    nvp_rng_free(rng);
    nvp_scaler_free(scaler);
    nvp_chain_free(chain);
    return status;
}
