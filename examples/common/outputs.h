/* SPDX-License-Identifier: MIT */
/* outputs.h - checks on the example programs' output files, made before a
 * long run rather than after it.  The files themselves are written with
 * the nvpflow tool's writer, outfile.h: whole or not at all. */
#ifndef EXAMPLES_COMMON_OUTPUTS_H
#define EXAMPLES_COMMON_OUTPUTS_H

#include <stddef.h>

/* No two of the n paths name one file, also when spelt differently
 * ("out.svg", "./out.svg", a link); a character device such as /dev/null
 * may take several.  opt[i] names the option that gave path[i] in the
 * usage error printed otherwise; returns 0, or -1 after that message. */
int ex_distinct_outputs(const char *const opt[], const char *const path[],
                        size_t n);
/* Each of the n paths can be written (out_check_writable, outfile.h):
 * EX_OK, or EX_FAILED after saying which cannot and why. */
int ex_writable_outputs(const char *const path[], size_t n);

#endif
