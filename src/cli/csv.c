/* SPDX-License-Identifier: MIT */
/* csv.c - the numeric CSV reader and writer of the nvpflow tool. */
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "cli.h"

/* Results of parse_field. */
enum { FIELD_OK, FIELD_EMPTY, FIELD_NAN, FIELD_NONFINITE, FIELD_RANGE };

static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* Strips spaces and tabs on both sides of s (in place). */
static char *trim(char *s)
{
    while (is_blank(*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && is_blank(s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* One field: a finite number that a float holds (tiny values round to
 * zero or a subnormal, as strtof does). */
static int parse_field(const char *s, float *out)
{
    if (*s == '\0')
        return FIELD_EMPTY;
    char *end = NULL;
    errno = 0;
    const float v = strtof(s, &end);
    if (end == s || *end != '\0')
        return FIELD_NAN;
    if (isinf(v) && errno == ERANGE)
        return FIELD_RANGE;
    if (!isfinite(v))
        return FIELD_NONFINITE;
    *out = v;
    return FIELD_OK;
}

/* Splits line at the commas (in place) into fields[0 .. n); fields grows
 * as needed.  Returns the count, or 0 when out of memory. */
static size_t split(char *line, char ***fields, size_t *cap)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        if (n == *cap) {
            const size_t nc = *cap ? *cap * 2 : 16;
            char **f = nc > SIZE_MAX / sizeof *f
                           ? NULL
                           : realloc(*fields, nc * sizeof *f);
            if (!f)
                return 0;
            *fields = f;
            *cap = nc;
        }
        char *comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        (*fields)[n++] = trim(p);
        if (!comma)
            return n;
        p = comma + 1;
    }
}

typedef struct reader {
    const char *cmd;
    const char *name;  /* the file as shown in messages */
    size_t line;       /* current line number (1-based) */
    csv_header header; /* what the first line is */
} reader;

static int line_error(const reader *r, const char *fmt, ...)
    CLI_PRINTF(2, 3);
static int line_error(const reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "nvpflow %s: %s:%zu: ", r->cmd, r->name, r->line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return -1;
}

/* Reports a bad field (1-based index k, text s, parse result res). */
static int field_error(const reader *r, int res, size_t k, const char *s)
{
    switch (res) {
    case FIELD_EMPTY:
        return line_error(r, "field %zu is empty", k);
    case FIELD_RANGE:
        return line_error(r, "field %zu ('%s') is too large for a float", k,
                          s);
    case FIELD_NONFINITE:
        return line_error(r, "field %zu ('%s') is not a finite number", k, s);
    default:
        return line_error(r, "field %zu ('%s') is not a number", k, s);
    }
}

/* What the first line is, by its fields: 1 a header, 0 data.  Left to
 * the reader, a header has no field that reads as a number (finite or
 * not) and at least one of text; an empty field alone makes neither (it
 * is a data row with a missing value, or the unnamed index column of a
 * pandas header). */
static int is_header(const reader *r, char **fields, size_t n)
{
    if (r->header != CSV_HEADER_AUTO)
        return r->header == CSV_HEADER_YES;
    size_t text = 0;
    for (size_t k = 0; k < n; k++) {
        float v;
        const int res = parse_field(fields[k], &v);
        if (res != FIELD_NAN && res != FIELD_EMPTY)
            return 0;
        text += res == FIELD_NAN;
    }
    return text > 0;
}

/* Appends one row of cols floats to t, growing it geometrically. */
static int append_row(csv_table *t, size_t *cap_rows, const float *row)
{
    if (t->rows == *cap_rows) {
        size_t nc = *cap_rows ? *cap_rows * 2 : 256;
        if (nc < *cap_rows || nc > SIZE_MAX / sizeof(float) / t->cols)
            return -1;
        float *d = realloc(t->data, nc * t->cols * sizeof(float));
        if (!d)
            return -1;
        t->data = d;
        *cap_rows = nc;
    }
    memcpy(t->data + t->rows * t->cols, row, t->cols * sizeof(float));
    t->rows++;
    return 0;
}

/* The reading loop proper; fp is open, t zeroed.  Returns 0 or -1. */
static int read_lines(reader *r, FILE *fp, size_t expect_cols, csv_table *t)
{
    char *buf = NULL;
    size_t buf_cap = 0, fields_cap = 0, cap_rows = 0;
    char **fields = NULL;
    float *row = NULL;
    int rc = -1, first = 1;
    size_t cols_line = 0; /* the line that fixed the column count */
    ssize_t len;
    while (errno = 0, (len = getline(&buf, &buf_cap, fp)) >= 0) {
        r->line++;
        if ((size_t)len != strlen(buf)) {
            line_error(r, "contains a NUL byte (not a text file?)");
            goto out;
        }
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
            buf[--len] = '\0';
        /* An editor's byte-order mark is not part of the first field. */
        char *s = buf;
        if (r->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
            s += 3;
        s = trim(s);
        if (*s == '\0' || *s == '#')
            continue;
        const size_t n = split(s, &fields, &fields_cap);
        if (n == 0) {
            line_error(r, "out of memory");
            goto out;
        }
        if (first) {
            first = 0;
            if (expect_cols > 0 && n != expect_cols) {
                line_error(r, "%zu fields, but the model has %zu dimensions",
                           n, expect_cols);
                goto out;
            }
            t->cols = n;
            cols_line = r->line;
            row = malloc(n * sizeof *row);
            if (!row) {
                line_error(r, "out of memory");
                goto out;
            }
            if (is_header(r, fields, n)) {
                t->has_header = 1;
                t->names = calloc(n, sizeof *t->names);
                for (size_t k = 0; t->names && k < n; k++)
                    if (!(t->names[k] = strdup(fields[k]))) {
                        line_error(r, "out of memory");
                        goto out;
                    }
                if (!t->names) {
                    line_error(r, "out of memory");
                    goto out;
                }
                continue;
            }
        }
        if (n != t->cols) {
            if (expect_cols > 0)
                line_error(r, "%zu fields, but the model has %zu dimensions",
                           n, t->cols);
            else
                line_error(r, "%zu fields, but line %zu has %zu", n,
                           cols_line, t->cols);
            goto out;
        }
        for (size_t k = 0; k < n; k++) {
            const int res = parse_field(fields[k], &row[k]);
            if (res != FIELD_OK) {
                field_error(r, res, k + 1, fields[k]);
                /* A first line of numbers and text: a typo, or a header
                 * with a numeric name?  Only the user knows. */
                if (res == FIELD_NAN && t->rows == 0 && !t->has_header &&
                    r->header == CSV_HEADER_AUTO)
                    fprintf(stderr, "nvpflow %s: (a header line has no "
                            "numeric field; --header takes the first line "
                            "as one)\n", r->cmd);
                goto out;
            }
        }
        if (append_row(t, &cap_rows, row) != 0) {
            line_error(r, "out of memory");
            goto out;
        }
    }
    if (ferror(fp)) {
        fprintf(stderr, "nvpflow %s: %s: read error: %s\n", r->cmd, r->name,
                strerror(errno ? errno : EIO));
        goto out;
    }
    if (t->rows == 0) {
        fprintf(stderr, "nvpflow %s: %s: no data rows\n", r->cmd, r->name);
        goto out;
    }
    rc = 0;
out:
    free(row);
    free(fields);
    free(buf);
    return rc;
}

int csv_read(const char *cmd, const char *path, size_t expect_cols,
             csv_header header, csv_table *t)
{
    memset(t, 0, sizeof *t);
    const int use_stdin = strcmp(path, "-") == 0;
    reader r = {cmd, use_stdin ? "<stdin>" : path, 0, header};
    FILE *fp = use_stdin ? stdin : fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "nvpflow %s: cannot open '%s': %s\n", cmd, path,
                strerror(errno));
        return -1;
    }
    const int rc = read_lines(&r, fp, expect_cols, t);
    if (!use_stdin)
        fclose(fp);
    if (rc != 0)
        csv_free(t);
    return rc;
}

void csv_free(csv_table *t)
{
    for (size_t j = 0; t->names && j < t->cols; j++)
        free(t->names[j]);
    free(t->names);
    free(t->data);
    memset(t, 0, sizeof *t);
}

int csv_write_rows(FILE *fp, const float *x, size_t n, size_t dim)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++)
            if (fprintf(fp, "%.9g%c", (double)x[i * dim + j],
                        j + 1 < dim ? ',' : '\n') < 0)
                return -1;
    return 0;
}
