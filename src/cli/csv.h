/* SPDX-License-Identifier: MIT */
/* csv.h - reading and writing numeric CSV for the nvpflow tool.
 *
 * Input rules: fields separated by commas, spaces and tabs around a field
 * ignored, no quoting; blank lines and lines starting with '#' skipped;
 * CRLF or LF line ends; no limit on line length; a UTF-8 byte-order mark
 * at the start of the file is skipped.  The first remaining line is a
 * header when the caller says so, or, left to the reader, when none of
 * its fields is a number and at least one is text: a rule a mistyped
 * number ("2.O,3") cannot meet, so such a line is an error, not a header
 * taken in silence.  Every other line must hold the same number of
 * fields, each a finite number that fits a float.  A bad line is reported
 * as "file:line: message". */
#ifndef NVPFLOW_CLI_CSV_H
#define NVPFLOW_CLI_CSV_H

#include <stddef.h>
#include <stdio.h>

typedef struct csv_table {
    float *data;    /* rows * cols floats, row-major */
    size_t rows;
    size_t cols;
    int has_header; /* the input started with a header line */
    char **names;   /* with a header, its cols fields (trimmed), else NULL */
} csv_table;

/* Whether the first line is a header (--header, --no-header). */
typedef enum csv_header {
    CSV_HEADER_AUTO, /* when no field is a number and one is text */
    CSV_HEADER_YES,  /* always, whatever it holds */
    CSV_HEADER_NO    /* never: it is data like any other line */
} csv_header;

/* Reads path ("-" means standard input) into t.  expect_cols > 0 demands
 * that many fields per line (the model's dimension); 0 takes the count of
 * the first line.  On failure prints "nvpflow CMD: ..." and returns -1
 * with t empty. */
int csv_read(const char *cmd, const char *path, size_t expect_cols,
             csv_header header, csv_table *t);
/* The --header/--no-header lines of the help texts. */
#define CSV_HEADER_HELP                                                      \
    "  --header           the first line is a header, whatever it holds\n" \
    "  --no-header        the first line is data (default: a header when\n" \
    "                     none of its fields is a number)\n"
void csv_free(csv_table *t);

/* Writes n rows of dim floats as CSV with full precision (%.9g, which
 * reads back to the same float).  Returns 0, or -1 on a write error. */
int csv_write_rows(FILE *fp, const float *x, size_t n, size_t dim);

#endif
