/* SPDX-License-Identifier: MIT */
/* json.c - the --json writer; see json.h. */
#include "json.h"

#include <math.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 when the bytes
 * there are not one (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF). */
static size_t utf8_len(const unsigned char *s)
{
    const unsigned c = s[0];
    size_t n;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    unsigned cp = c & (0x7fu >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static void put_string(FILE *fp, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', fp);
    while (*s) {
        const unsigned c = *s;
        size_t n = 1;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", (int)c);
        else if (c == '\n')
            fputs("\\n", fp);
        else if (c == '\t')
            fputs("\\t", fp);
        else if (c == '\r')
            fputs("\\r", fp);
        else if (c < 0x20 || c == 0x7f)
            fprintf(fp, "\\u%04x", c);
        else if ((n = utf8_len(s)) == 0) {
            fputs("\\ufffd", fp);
            n = 1;
        } else
            fwrite(s, 1, n, fp);
        s += n;
    }
    fputc('"', fp);
}

/* The separator, the indentation and the key before a value. */
static void prefix(json_out *j, const char *key)
{
    const int d = j->depth - 1;
    if (j->count[d] > 0)
        fputs(j->one_line[d] ? ", " : ",", j->fp);
    if (!j->one_line[d])
        fprintf(j->fp, "\n%*s", 2 * j->depth, "");
    j->count[d]++;
    if (key) {
        put_string(j->fp, key);
        fputs(": ", j->fp);
    }
}

static void open_container(json_out *j, const char *key, char open,
                           char close, int one_line)
{
    if (j->depth >= JSON_MAX_DEPTH)
        return;
    if (j->depth > 0)
        prefix(j, key);
    fputc(open, j->fp);
    j->count[j->depth] = 0;
    j->close[j->depth] = close;
    j->one_line[j->depth] = one_line;
    j->depth++;
}

void json_begin(json_out *j, FILE *fp)
{
    memset(j, 0, sizeof *j);
    j->fp = fp;
    open_container(j, NULL, '{', '}', 0);
}

void json_object(json_out *j, const char *key)
{
    open_container(j, key, '{', '}', 0);
}

void json_array(json_out *j, const char *key)
{
    open_container(j, key, '[', ']', 0);
}

void json_array_line(json_out *j, const char *key)
{
    open_container(j, key, '[', ']', 1);
}

void json_close(json_out *j)
{
    if (j->depth <= 0)
        return;
    const int d = --j->depth;
    if (!j->one_line[d] && j->count[d] > 0)
        fprintf(j->fp, "\n%*s", 2 * d, "");
    fputc(j->close[d], j->fp);
}

int json_end(json_out *j)
{
    while (j->depth > 0)
        json_close(j);
    fputc('\n', j->fp);
    return fflush(j->fp) != 0 || ferror(j->fp) ? -1 : 0;
}

void json_string(json_out *j, const char *key, const char *s)
{
    prefix(j, key);
    put_string(j->fp, s);
}

void json_uint(json_out *j, const char *key, unsigned long long v)
{
    prefix(j, key);
    fprintf(j->fp, "%llu", v);
}

void json_float(json_out *j, const char *key, float v)
{
    prefix(j, key);
    if (isfinite(v))
        fprintf(j->fp, "%.9g", (double)v);
    else
        fputs("null", j->fp);
}

void json_double(json_out *j, const char *key, double v)
{
    prefix(j, key);
    if (isfinite(v))
        fprintf(j->fp, "%.17g", v);
    else
        fputs("null", j->fp);
}

void json_bool(json_out *j, const char *key, int v)
{
    prefix(j, key);
    fputs(v ? "true" : "false", j->fp);
}

void json_null(json_out *j, const char *key)
{
    prefix(j, key);
    fputs("null", j->fp);
}
