/* SPDX-License-Identifier: MIT */
/* numparse.h - the number rules of the nvpflow commands and of the
 * example programs (they compile this file too), with no
 * messages of their own: each program words its errors.
 *
 * Whole numbers are digits only: no sign, no leading space, no "0x"; a
 * value out of range is refused, never wrapped or clamped.  A real number
 * is a whole string that strtod reads without an overflow or underflow
 * (leading white space allowed, as strtod does; NaN and infinities read
 * fine: callers refuse them where they must).  Lists of widths are
 * formatted back the same way. */
#ifndef NVPFLOW_CLI_NUMPARSE_H
#define NVPFLOW_CLI_NUMPARSE_H

#include <stddef.h>
#include <stdint.h>

/* A whole number in [lo, hi] into *out: 0, else -1 (*out untouched). */
int num_parse_uint(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* A real number into *out: 0, else -1 (*out untouched). */
int num_parse_double(const char *s, double *out);
/* A comma-separated list of 1 to cap whole numbers in [1, max] ("512,512")
 * into w[0 .. *n): 0, else -1 (w and *n may have changed). */
int num_parse_list(const char *s, uint64_t max, size_t *w, size_t cap,
                   size_t *n);
/* The other way: w[0 .. n) as "512,512" into buf[cap] (cut short when it
 * does not fit; "" for n = 0). */
void num_format_list(char *buf, size_t cap, const size_t *w, size_t n);

#endif
