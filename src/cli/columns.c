/* SPDX-License-Identifier: MIT */
/* columns.c - choosing a table's columns (see columns.h). */
#include "columns.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Rewrites t to hold columns idx[0..k-1] of the old table, in that order.
 * Returns 0, or -1 (out of memory, t unchanged). */
static int keep_columns(const char *cmd, csv_table *t, const size_t *idx,
                        size_t k)
{
    float *data = malloc(t->rows * k * sizeof *data);
    char **names = t->names ? calloc(k, sizeof *names) : NULL;
    if (!data || (t->names && !names)) {
        free(data);
        free(names);
        cli_error(cmd, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < t->rows; i++)
        for (size_t j = 0; j < k; j++)
            data[i * k + j] = t->data[i * t->cols + idx[j]];
    if (t->names) {
        /* The kept names move; the others are freed. */
        for (size_t j = 0; j < k; j++) {
            names[j] = t->names[idx[j]];
            t->names[idx[j]] = NULL;
        }
        for (size_t j = 0; j < t->cols; j++)
            free(t->names[j]);
        free(t->names);
    }
    free(t->data);
    t->data = data;
    t->names = names;
    t->cols = k;
    return 0;
}

size_t columns_find(const csv_table *t, const char *name)
{
    size_t found = t->cols;
    for (size_t j = 0; t->names && j < t->cols; j++)
        if (strcmp(t->names[j], name) == 0) {
            if (found != t->cols)
                return t->cols + 1;
            found = j;
        }
    return found;
}

/* The column an item of a list means: a header name, else a 1-based
 * position.  Returns the 0-based index, t->cols when it means none, or
 * t->cols + 1 for a name the header repeats. */
static size_t find_column(const csv_table *t, const char *item)
{
    const size_t found = columns_find(t, item);
    if (found != t->cols)
        return found;
    char *end;
    errno = 0;
    if (item[0] >= '0' && item[0] <= '9') {
        unsigned long long v = strtoull(item, &end, 10);
        if (*end == '\0' && errno == 0 && v >= 1 && v <= t->cols)
            return (size_t)v - 1;
    }
    return t->cols;
}

/* Parses a comma-separated list into 0-based indices (marking each in
 * chosen[]).  Returns the count, or (size_t)-1 after an error message. */
static size_t parse_list(const char *cmd, const char *opt, const char *list,
                         const csv_table *t, size_t *idx,
                         unsigned char *chosen)
{
    char *copy = strdup(list);
    if (!copy) {
        cli_error(cmd, "out of memory");
        return (size_t)-1;
    }
    size_t k = 0;
    for (char *item = copy, *next; item; item = next) {
        next = strchr(item, ',');
        if (next)
            *next++ = '\0';
        while (*item == ' ' || *item == '\t')
            item++;
        char *e = item + strlen(item);
        while (e > item && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (*item == '\0') {
            cli_error(cmd, "%s: an empty item in '%s'", opt, list);
            free(copy);
            return (size_t)-1;
        }
        const size_t j = find_column(t, item);
        if (j == t->cols + 1) {
            cli_error(cmd, "%s: the header names two columns '%s'; give "
                      "a 1-based position instead", opt, item);
            free(copy);
            return (size_t)-1;
        }
        if (j == t->cols) {
            cli_error(cmd,
                      "%s: no column '%s' (the data has %zu columns%s)", opt,
                      item, t->cols,
                      t->names ? "; give a header name or a 1-based position"
                               : " and no header; give 1-based positions");
            free(copy);
            return (size_t)-1;
        }
        if (chosen[j]) {
            cli_error(cmd, "%s: column '%s' is listed twice", opt, item);
            free(copy);
            return (size_t)-1;
        }
        chosen[j] = 1;
        idx[k++] = j;
    }
    free(copy);
    if (k == 0) {
        cli_error(cmd, "%s: the list names no column", opt);
        return (size_t)-1;
    }
    return k;
}

int columns_choose(const char *cmd, csv_table *t, const char *keep,
                   const char *drop)
{
    if (!keep && !drop)
        return 0;
    if (keep && drop) {
        cli_error(cmd, "--columns and --drop cannot be used together");
        return -1;
    }
    size_t *idx = malloc(t->cols * sizeof *idx);
    unsigned char *chosen = calloc(t->cols, 1);
    int rc = -1;
    if (!idx || !chosen) {
        cli_error(cmd, "out of memory");
        goto out;
    }
    size_t k = parse_list(cmd, keep ? "--columns" : "--drop",
                          keep ? keep : drop, t, idx, chosen);
    if (k == (size_t)-1)
        goto out;
    if (drop) {
        k = 0;
        for (size_t j = 0; j < t->cols; j++)
            if (!chosen[j])
                idx[k++] = j;
        if (k == 0) {
            cli_error(cmd, "--drop leaves no column");
            goto out;
        }
    }
    rc = keep_columns(cmd, t, idx, k);
out:
    free(idx);
    free(chosen);
    return rc;
}

int columns_drop_index(const char *cmd, csv_table *t)
{
    if (!t->names || t->cols < 2 ||
        (t->names[0][0] != '\0' && strcmp(t->names[0], "Unnamed: 0") != 0))
        return 0;
    for (size_t i = 0; i < t->rows; i++) {
        const float v = t->data[i * t->cols];
        if (!(v >= 0) || floorf(v) != v)
            return 0;
    }
    size_t *idx = malloc((t->cols - 1) * sizeof *idx);
    if (!idx) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    for (size_t j = 1; j < t->cols; j++)
        idx[j - 1] = j;
    const int rc = keep_columns(cmd, t, idx, t->cols - 1);
    free(idx);
    if (rc != 0)
        return -1;
    fprintf(stderr,
            "nvpflow %s: the first column (no header name, whole numbers) is "
            "taken as a row index, as pandas writes one, and left out; "
            "--columns or --drop choose the columns explicitly\n",
            cmd);
    return 1;
}

int columns_by_names(const char *cmd, csv_table *t, size_t n,
                     const char *const *names)
{
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    int rc = -1;
    for (size_t k = 0; k < n; k++) {
        const size_t j = columns_find(t, names[k]);
        if (j == t->cols + 1) {
            cli_error(cmd, "the data's header names two columns '%s'",
                      names[k]);
            goto out;
        }
        if (j == t->cols) {
            cli_error(cmd,
                      "the model's column '%s' is not in the data's header",
                      names[k]);
            goto out;
        }
        idx[k] = j;
    }
    rc = keep_columns(cmd, t, idx, n);
out:
    free(idx);
    return rc;
}

/* A deep copy of t into out (empty on failure).  Returns 0 or -1. */
static int copy_table(const char *cmd, const csv_table *t, csv_table *out)
{
    memset(out, 0, sizeof *out);
    out->rows = t->rows;
    out->cols = t->cols;
    out->has_header = t->has_header;
    const size_t cells = t->rows * t->cols;
    out->data = malloc((cells ? cells : 1) * sizeof *out->data);
    int bad = out->data == NULL;
    if (!bad)
        memcpy(out->data, t->data, t->rows * t->cols * sizeof *out->data);
    if (!bad && t->names) {
        out->names = calloc(t->cols, sizeof *out->names);
        bad = out->names == NULL;
        for (size_t j = 0; !bad && j < t->cols; j++)
            bad = (out->names[j] = strdup(t->names[j])) == NULL;
    }
    if (bad) {
        csv_free(out);
        memset(out, 0, sizeof *out);
        cli_error(cmd, "out of memory");
        return -1;
    }
    return 0;
}

int columns_split(const char *cmd, csv_table *t, const char *list,
                  csv_table *given)
{
    memset(given, 0, sizeof *given);
    size_t *idx = malloc(t->cols * sizeof *idx);
    unsigned char *chosen = calloc(t->cols, 1);
    int rc = -1;
    if (!idx || !chosen) {
        cli_error(cmd, "out of memory");
        goto out;
    }
    const size_t k = parse_list(cmd, "--given", list, t, idx, chosen);
    if (k == (size_t)-1)
        goto out;
    if (k == t->cols) {
        cli_error(cmd, "--given lists every column (%zu): no column is left "
                  "to model", t->cols);
        goto out;
    }
    /* The given part first (from a copy), then the rest in place. */
    if (copy_table(cmd, t, given) != 0)
        goto out;
    if (keep_columns(cmd, given, idx, k) != 0) {
        csv_free(given);
        memset(given, 0, sizeof *given);
        goto out;
    }
    size_t m = 0;
    for (size_t j = 0; j < t->cols; j++)
        if (!chosen[j])
            idx[m++] = j;
    if (keep_columns(cmd, t, idx, m) != 0) {
        csv_free(given);
        memset(given, 0, sizeof *given);
        goto out;
    }
    rc = 0;
out:
    free(idx);
    free(chosen);
    return rc;
}

int columns_copy_by_names(const char *cmd, const csv_table *t, size_t n,
                          const char *const *names, csv_table *given)
{
    if (copy_table(cmd, t, given) != 0)
        return -1;
    if (columns_by_names(cmd, given, n, names) != 0) {
        csv_free(given);
        memset(given, 0, sizeof *given);
        return -1;
    }
    return 0;
}
