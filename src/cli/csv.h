/* SPDX-License-Identifier: MIT */
/* csv.h - reading and writing numeric CSV for the nvpflow tool.
 *
 * Input rules: fields separated by commas, spaces and tabs around a field
 * ignored, no quoting; blank lines and lines starting with '#' skipped;
 * CRLF or LF line ends; no limit on line length.  The first remaining line
 * is a header when any of its fields is not a number.  Every other line
 * must hold the same number of fields, each a finite number that fits a
 * float.  A bad line is reported as "file:line: message". */
#ifndef NVPFLOW_CLI_CSV_H
#define NVPFLOW_CLI_CSV_H

#include <stddef.h>
#include <stdio.h>

typedef struct csv_table {
    float *data;    /* rows * cols floats, row-major */
    size_t rows;
    size_t cols;
    int has_header; /* the input started with a header line */
} csv_table;

/* Reads path ("-" means standard input) into t.  expect_cols > 0 demands
 * that many fields per line (the model's dimension); 0 takes the count of
 * the first line.  On failure prints "nvpflow CMD: ..." and returns -1
 * with t empty. */
int csv_read(const char *cmd, const char *path, size_t expect_cols,
             csv_table *t);
void csv_free(csv_table *t);

/* Writes n rows of dim floats as CSV with full precision (%.9g, which
 * reads back to the same float).  Returns 0, or -1 on a write error. */
int csv_write_rows(FILE *fp, const float *x, size_t n, size_t dim);

#endif
