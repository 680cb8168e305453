/* SPDX-License-Identifier: MIT */
/* json.h - a small JSON writer for the nvpflow commands' --json output.
 *
 * Always valid JSON, whatever the data: strings are escaped (quotes,
 * backslashes, control characters) and bytes that are not UTF-8 become
 * U+FFFD, so that any JSON parser takes the output, even for a file name
 * in another encoding; numbers that are not finite become null.  Objects
 * are written one member a line, indented by two spaces; arrays of
 * numbers on one line.  A key is given for a member of an object and is
 * NULL for an element of an array. */
#ifndef NVPFLOW_CLI_JSON_H
#define NVPFLOW_CLI_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Containers nest at most this deep, the top-level object included; the
 * commands need three. */
#define JSON_MAX_DEPTH 8

typedef struct json_out {
    FILE *fp;
    int depth;                     /* open containers, the top one first */
    size_t count[JSON_MAX_DEPTH];  /* values written into each */
    char close[JSON_MAX_DEPTH];    /* '}' or ']' */
    int one_line[JSON_MAX_DEPTH];  /* 1: written on one line */
} json_out;

/* Starts the top-level object on fp. */
void json_begin(json_out *j, FILE *fp);
/* Closes every open container, ends the line and flushes; returns 0, or
 * -1 when anything could not be written (the stream's error flag). */
int json_end(json_out *j);

void json_object(json_out *j, const char *key);      /* opens {...} */
void json_array(json_out *j, const char *key);       /* opens [...] */
void json_array_line(json_out *j, const char *key);  /* [...] on one line */
void json_close(json_out *j);                        /* the last opened */

void json_string(json_out *j, const char *key, const char *s);
void json_uint(json_out *j, const char *key, unsigned long long v);
/* A float with the 9 significant digits that read back to it. */
void json_float(json_out *j, const char *key, float v);
/* A double with the 17 significant digits that read back to it. */
void json_double(json_out *j, const char *key, double v);
void json_bool(json_out *j, const char *key, int v);
void json_null(json_out *j, const char *key);

#endif
