/* SPDX-License-Identifier: MIT */
/* outfile.c - output files that appear whole or not at all; see
 * outfile.h. */
/* realpath() is declared for X/Open in glibc's headers. */
#define _XOPEN_SOURCE 700
#include "outfile.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tmpfiles.h"

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

/* How path is written: 1 in place, or 0 replaced atomically, in which
 * case dest[PATH_MAX] receives the name to replace.  In place: an
 * existing file that is not a regular file (/dev/null, a FIFO, a pipe
 * behind /dev/stdout), the file a standard stream is open on (/dev/stdout
 * redirected to a file, or "-o out.csv > out.csv": replacing it would
 * leave the stream on the old file), and a symbolic link to nothing yet
 * (there is no old file to keep).  Any other symbolic link is followed,
 * so the file it names is replaced and the link stays a link. */
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

/* 0666 less the umask, the mode fopen gives a new file (the umask is read
 * and put back: this tool runs one thread). */
static mode_t new_file_mode(void)
{
    const mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

int out_open(out_file *o, const char *path, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    o->tmp_slot = -1;
    if (!path) {
        o->fp = stdout;
        return 0;
    }
    if (!*path) {
        snprintf(err, errlen, "the output path is empty");
        return -1;
    }
    char dest[PATH_MAX];
    if (in_place(path, dest)) {
        if (!(o->fp = fopen(path, "w"))) {
            snprintf(err, errlen, "cannot open '%s': %s", path,
                     strerror(errno));
            return -1;
        }
        o->direct = 1;
        return 0;
    }
    const size_t len = strlen(dest);
    o->dest = malloc(len + 1);
    o->tmp = malloc(len + 8);
    if (!o->dest || !o->tmp) {
        snprintf(err, errlen, "out of memory");
        out_abort(o);
        return -1;
    }
    memcpy(o->dest, dest, len + 1);
    memcpy(o->tmp, dest, len);
    memcpy(o->tmp + len, ".XXXXXX", 8);
    const int fd = tmp_create(o->tmp, &o->tmp_slot);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create '%s': %s", path,
                 strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        out_abort(o);
        return -1;
    }
    /* mkstemp makes the file private (0600): a file being replaced keeps
     * its mode, a new one gets fopen's. */
    struct stat st;
    const mode_t mode =
        stat(dest, &st) == 0 ? st.st_mode & 07777 : new_file_mode();
    if (fchmod(fd, mode) != 0 || !(o->fp = fdopen(fd, "w"))) {
        snprintf(err, errlen, "cannot create '%s': %s", path,
                 strerror(errno));
        close(fd);
        out_abort(o);
        return -1;
    }
    return 0;
}

const char *out_name(const out_file *o)
{
    return o->path ? o->path : "standard output";
}

int out_commit(out_file *o, char *err, size_t errlen)
{
    if (!o->fp) {
        snprintf(err, errlen, "%s: not open", out_name(o));
        return -1;
    }
    if (!o->tmp) {
        int bad = fflush(o->fp) != 0 || ferror(o->fp);
        if (o->direct && fclose(o->fp) != 0)
            bad = 1;
        o->fp = NULL;
        o->direct = 0;
        if (bad) {
            snprintf(err, errlen, "error writing to %s: %s", out_name(o),
                     strerror(errno));
            return -1;
        }
        return 0;
    }
    /* errno after a failed call; EIO where a stream only set its error
     * flag.  The data reach the disk before the name does, so a crash
     * cannot leave a named but empty file. */
    int e = 0;
    errno = 0;
    if (fflush(o->fp) != 0 || ferror(o->fp) || fsync(fileno(o->fp)) != 0)
        e = errno ? errno : EIO;
    if (fclose(o->fp) != 0 && !e)
        e = errno ? errno : EIO;
    o->fp = NULL;
    if (!e && rename(o->tmp, o->dest) != 0)
        e = errno;
    if (e) {
        snprintf(err, errlen, "cannot write '%s': %s", o->path, strerror(e));
        unlink(o->tmp);
    }
    tmp_release(o->tmp_slot);
    o->tmp_slot = -1;
    free(o->tmp);
    free(o->dest);
    o->tmp = NULL;
    o->dest = NULL;
    return e ? -1 : 0;
}

void out_abort(out_file *o)
{
    if (o->tmp) {
        if (o->fp)
            fclose(o->fp);
        unlink(o->tmp);
        tmp_release(o->tmp_slot);
        o->tmp_slot = -1;
        free(o->tmp);
    } else if (o->direct) {
        fclose(o->fp);
    } else if (o->fp) {
        fflush(o->fp);
    }
    free(o->dest);
    o->fp = NULL;
    o->tmp = NULL;
    o->dest = NULL;
    o->direct = 0;
}

int out_check_writable(const char *path, char *err, size_t errlen)
{
    if (!*path) {
        snprintf(err, errlen, "the output path is empty");
        return -1;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "'%s' is a directory", path);
        return -1;
    }
    char dest[PATH_MAX];
    if (in_place(path, dest)) {
        /* The file itself must be writable, not the directory holding
         * the name.  (A link to nothing yet: its target's directory.) */
        if (stat(path, &st) == 0) {
            if (access(path, W_OK) != 0) {
                snprintf(err, errlen, "cannot write '%s': %s", path,
                         strerror(errno));
                return -1;
            }
            return 0;
        }
        if (lstat(path, &st) != 0 || !S_ISLNK(st.st_mode))
            return 0; /* an over-long path: the write will say so */
        /* The file a dangling link names: readlink it, relative to the
         * link's directory, and check that directory below. */
        char link[PATH_MAX];
        const ssize_t n = readlink(path, link, sizeof link - 1);
        if (n < 0)
            return 0;
        link[n] = '\0';
        const char *slash = strrchr(path, '/');
        const size_t keep =
            link[0] == '/' || !slash ? 0 : (size_t)(slash - path) + 1;
        if (keep + (size_t)n >= sizeof dest)
            return 0; /* too long: the write will say so */
        memcpy(dest, path, keep);
        memcpy(dest + keep, link, (size_t)n + 1);
    }
    /* A file replaced atomically: its directory must take a new file. */
    const char *slash = strrchr(dest, '/');
    char dir[PATH_MAX];
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dest)
        strcpy(dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - dest), dest);
    if (access(dir, W_OK | X_OK) != 0) {
        snprintf(err, errlen, "cannot write '%s': directory '%s': %s", path,
                 dir, strerror(errno));
        return -1;
    }
    return 0;
}
