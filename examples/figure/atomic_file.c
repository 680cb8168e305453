/* SPDX-License-Identifier: MIT */
/* atomic_file.c - temporary file + rename; see atomic_file.h for why. */
/* realpath() is declared for X/Open in glibc's headers. */
#define _XOPEN_SOURCE 700
#include "atomic_file.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void release(atomic_file *af)
{
    free(af->tmp);
    free(af->path);
    af->fp = NULL;
    af->tmp = NULL;
    af->path = NULL;
}

/* Whether st is the file one of the standard streams is open on. */
static int is_std_stream_file(const struct stat *st)
{
    for (int fd = 0; fd <= 2; fd++) {
        struct stat fs;
        if (fstat(fd, &fs) == 0 && fs.st_dev == st->st_dev &&
            fs.st_ino == st->st_ino)
            return 1;
    }
    return 0;
}

/* Whether path is written in place; if not, dest[PATH_MAX] receives the
 * name to replace: path, or the file a symbolic link at path names (so the
 * link stays a link).  In place: an existing file that is not a regular
 * file (/dev/null, a FIFO, a pipe behind /dev/stdout), the file a standard
 * stream is open on (/dev/stdout redirected to a file: replacing it would
 * leave the stream on the old file), and a link to nothing yet. */
static int in_place(const char *path, char *dest)
{
    struct stat st;
    if (stat(path, &st) == 0 &&
        ((!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) ||
         is_std_stream_file(&st)))
        return 1;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return !realpath(path, dest);
    if (strlen(path) >= PATH_MAX)
        return 1; /* the open will say what is wrong */
    strcpy(dest, path);
    return 0;
}

int afile_open(atomic_file *af, const char *path, char *err, size_t errlen)
{
    af->fp = NULL;
    af->tmp = NULL;
    af->path = NULL;
    if (!path || !*path) {
        snprintf(err, errlen, "empty output path");
        return -1;
    }
    size_t len = strlen(path);
    af->path = malloc(len + 1);
    af->tmp = malloc(len + 32);
    if (!af->path || !af->tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        release(af);
        return -1;
    }
    memcpy(af->path, path, len + 1);
    char dest[PATH_MAX];
    struct stat st;
    if (in_place(path, dest)) {
        free(af->tmp);
        af->tmp = NULL;
        af->fp = fopen(path, "wb");
        if (!af->fp) {
            snprintf(err, errlen, "cannot open %s: %s", path,
                     strerror(errno));
            release(af);
            return -1;
        }
        return 0;
    }
    /* From here on af->path is the name the temporary file replaces. */
    len = strlen(dest);
    char *p = realloc(af->path, len + 1), *t = realloc(af->tmp, len + 32);
    if (p)
        af->path = p;
    if (t)
        af->tmp = t;
    if (!p || !t) {
        snprintf(err, errlen, "%s: out of memory", path);
        release(af);
        return -1;
    }
    memcpy(af->path, dest, len + 1);
    const int exists = stat(dest, &st) == 0;
    snprintf(af->tmp, len + 32, "%s.tmp.%ld", dest, (long)getpid());
    af->fp = fopen(af->tmp, "wb");
    /* A file being replaced keeps its mode (a new one has the umask's). */
    if (!af->fp ||
        (exists && fchmod(fileno(af->fp), st.st_mode & 07777) != 0)) {
        snprintf(err, errlen, "cannot create %s: %s", af->tmp,
                 strerror(errno));
        if (af->fp) {
            fclose(af->fp);
            af->fp = NULL;
            remove(af->tmp);
        }
        release(af);
        return -1;
    }
    return 0;
}

int afile_commit(atomic_file *af, char *err, size_t errlen)
{
    if (!af->fp) {
        snprintf(err, errlen, "internal error: file not open");
        release(af);
        return -1;
    }
    int failed = 0;
    int saved = 0;
    if (fflush(af->fp) != 0 || ferror(af->fp)) {
        saved = errno;
        failed = 1;
    }
    if (fclose(af->fp) != 0 && !failed) {
        saved = errno;
        failed = 1;
    }
    af->fp = NULL;
    if (failed) {
        snprintf(err, errlen, "error writing %s: %s",
                 af->tmp ? af->tmp : af->path,
                 saved ? strerror(saved) : "write error");
        if (af->tmp)
            remove(af->tmp);
        release(af);
        return -1;
    }
    if (!af->tmp) { /* written straight through: nothing to rename */
        release(af);
        return 0;
    }
    if (rename(af->tmp, af->path) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", af->tmp,
                 af->path, strerror(errno));
        remove(af->tmp);
        release(af);
        return -1;
    }
    release(af);
    return 0;
}

void afile_abort(atomic_file *af)
{
    if (af->fp) {
        fclose(af->fp);
        af->fp = NULL;
        if (af->tmp)
            remove(af->tmp);
    }
    release(af);
}
