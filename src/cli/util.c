/* SPDX-License-Identifier: MIT */
/* util.c - error and warning messages of the nvpflow tool. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "nvpflow.h"

static void vreport(const char *cmd, const char *kind, const char *fmt,
                    va_list ap)
{
    fprintf(stderr, "nvpflow%s%s: %s", cmd ? " " : "", cmd ? cmd : "", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, "", fmt, ap);
    va_end(ap);
    return CLI_ERR;
}

void cli_warn(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, "warning: ", fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport(cmd, "", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try 'nvpflow%s%s --help'.\n", cmd ? " " : "",
            cmd ? cmd : "");
    return CLI_USAGE;
}

int cli_lib_error(const char *cmd, const char *what, int rc,
                  const char *detail)
{
    /* The library's message lives until its next call: copy it first. */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", detail ? detail : "");
    const char *desc = nvp_strerror(rc);
    if (msg[0])
        return cli_error(cmd, "%s: %s (%s)", what, desc, msg);
    return cli_error(cmd, "%s: %s", what, desc);
}
