/* SPDX-License-Identifier: MIT */
/* main.c - nvpflow: the command-line front end of libnvpflow.
 * Dispatches to a command and handles the global --help and --version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "nvpflow.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    void (*help)(FILE *fp);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"fit", cmd_fit, cmd_fit_help,
     "learn the density of a CSV file, save a model"},
    {"sample", cmd_sample, cmd_sample_help,
     "draw new rows from a model as CSV"},
    {"score", cmd_score, cmd_score_help,
     "log density of each row of a CSV file"},
    {"info", cmd_info, cmd_info_help, "describe a model file"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void usage(FILE *fp)
{
    fprintf(fp,
            "Usage: nvpflow COMMAND [arguments]\n"
            "\n"
            "Density estimation with Real-NVP normalizing flows: learn the\n"
            "distribution of the rows of a numeric CSV file, then draw new\n"
            "rows from it or score rows by how likely they are.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(fp, "  %-8s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(fp,
            "\n"
            "  nvpflow COMMAND --help   (or nvpflow help COMMAND) for details\n"
            "  nvpflow --version        the version\n"
            "\n"
            "Example:\n"
            "  nvpflow fit data.csv -o model.nvp\n"
            "  nvpflow score model.nvp data.csv > scores.csv\n"
            "  nvpflow sample model.nvp -n 1000 > synthetic.csv\n"
            "\n"
            "Exit status: 0 success, 1 error, 2 bad command line.\n");
}

static const command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(COMMANDS[i].name, name) == 0)
            return &COMMANDS[i];
    return NULL;
}

/* Help and version text, like every output, must have reached standard
 * output: a full disk or a closed pipe is an error, not a success.
 * (Commands report their own write errors and return non-zero.) */
static int finish(int status)
{
    if ((fflush(stdout) != 0 || ferror(stdout)) && status == CLI_OK) {
        fprintf(stderr, "nvpflow: error writing to standard output\n");
        return CLI_ERR;
    }
    return status;
}

static int dispatch(int argc, char **argv);

int main(int argc, char **argv)
{
    return finish(dispatch(argc, argv));
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *a = argv[1];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
        printf("nvpflow %s (libnvpflow %s)\n", NVP_VERSION_STRING,
               nvp_version_string());
        return CLI_OK;
    }
    if (strcmp(a, "help") == 0) {
        if (argc < 3) {
            usage(stdout);
            return CLI_OK;
        }
        const command *c = find(argv[2]);
        if (!c)
            return cli_usage_error(NULL, "unknown command '%s'", argv[2]);
        c->help(stdout);
        return CLI_OK;
    }
    const command *c = find(a);
    if (!c)
        return cli_usage_error(NULL, "unknown command '%s'", a);
    return c->run(argc - 1, argv + 1);
}
