/* SPDX-License-Identifier: MIT */
/* columns.h - choosing a table's columns for the nvpflow tool: by the
 * user (--columns, --drop), by a model's stored names (score), and
 * leaving out the row index that pandas' to_csv() writes first.
 *
 * Every function rewrites the table in place (its data and names) so that
 * it holds only the chosen columns, in the chosen order.  On failure each
 * prints "nvpflow CMD: ..." and returns -1 with the table unchanged. */
#ifndef NVPFLOW_CLI_COLUMNS_H
#define NVPFLOW_CLI_COLUMNS_H

#include <stddef.h>

#include "csv.h"

/* The help lines of --columns and --drop. */
#define COLUMNS_HELP                                                        \
    "  --columns LIST     model only these columns, in this order: header\n" \
    "                     names or 1-based positions, comma-separated\n"     \
    "  --drop LIST        model every column but these\n"

/* Keeps the columns that keep lists, or all but those that drop lists
 * (at most one of them non-NULL; both NULL changes nothing).  A list item
 * is a header name or, when no header name is spelt so, a 1-based
 * position.  Unknown, repeated or out-of-range items are errors, and so is
 * dropping every column. */
int columns_choose(const char *cmd, csv_table *t, const char *keep,
                   const char *drop);

/* Leaves out a first column that is a row index as pandas writes it: its
 * header field empty (or "Unnamed: 0", pandas' name for an index read
 * back) and every value a whole number >= 0.  Prints a notice when it
 * does.  Returns 1 when it left the column out, 0 when not, -1 on
 * failure (out of memory). */
int columns_drop_index(const char *cmd, csv_table *t);

/* The column t's header names so: its 0-based index, t->cols when the
 * header has no such name (or t has no header), t->cols + 1 when the
 * header repeats it. */
size_t columns_find(const csv_table *t, const char *name);

/* Keeps the columns named names[0..n-1], in that order (score: a model's
 * stored names against a data file's header).  A name missing from the
 * header is an error that names it. */
int columns_by_names(const char *cmd, csv_table *t, size_t n,
                     const char *const *names);

/* --given: moves the columns list names (the rules of --columns) out of
 * t into given, in the list's order; t keeps the others, in their order.
 * Listing every column is an error: nothing would be left to model.  On
 * failure given is empty and t unchanged. */
int columns_split(const char *cmd, csv_table *t, const char *list,
                  csv_table *given);

/* Copies the columns named names[0..n-1] of t into given, in that order
 * (t is unchanged); a missing name is an error that names it. */
int columns_copy_by_names(const char *cmd, const csv_table *t, size_t n,
                          const char *const *names, csv_table *given);

#endif
