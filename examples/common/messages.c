/* SPDX-License-Identifier: MIT */
/* messages.c - the example programs' messages; see messages.h. */
#include "messages.h"

#include <stdarg.h>
#include <stdio.h>

#include "nvpflow.h"

static const char *program = "example";
static int usage_shown = 1;

void ex_init(const char *name, int usage_errors)
{
    program = name;
    usage_shown = usage_errors;
}

const char *ex_program(void) { return program; }

static void say(const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: %s", program, kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

int ex_usage_error(const char *fmt, ...)
{
    if (!usage_shown)
        return EX_USAGE;
    va_list ap;
    va_start(ap, fmt);
    say("", fmt, ap);
    va_end(ap);
    fprintf(stderr, "Try '%s --help'.\n", program);
    return EX_USAGE;
}

int ex_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("", fmt, ap);
    va_end(ap);
    return EX_FAILED;
}

void ex_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    say("warning: ", fmt, ap);
    va_end(ap);
}

int ex_lib_error(const char *what, int rc, const char *detail)
{
    return ex_error("%s failed: %s%s%s", what, nvp_strerror(rc),
                    detail && *detail ? ": " : "", detail ? detail : "");
}

void ex_check_version(void)
{
    if (nvp_version_number() != NVP_VERSION_NUMBER)
        ex_warn("built against nvpflow %s, running %s", NVP_VERSION_STRING,
                nvp_version_string());
}

int ex_finish(int status)
{
    if ((fflush(stdout) != 0 || ferror(stdout)) && status == EX_OK)
        return ex_error("error writing to stdout");
    return status;
}
