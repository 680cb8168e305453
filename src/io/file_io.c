/* SPDX-License-Identifier: MIT */
/* Whole-file reads and atomic whole-file writes for saved models. */
/* realpath() is declared for X/Open in glibc's headers. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/format.h"

int nvp__read_file(const nvp_errbox *eb, const char *fn, const char *path,
                   const nvp_allocator *a, size_t limit, unsigned char **data,
                   size_t *size)
{
    *data = NULL;
    *size = 0;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer before the
     * check below refuses it.  (It changes nothing for a regular file.) */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    NVP_REQUIRE(fd >= 0, NVP_EIO, "%s: cannot open '%s': %s", fn, path,
                strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return nvp__fail(eb, NVP_EIO, "%s: '%s' is not a regular file", fn,
                         path);
    }
    if ((uint64_t)st.st_size > (uint64_t)limit) {
        close(fd);
        return nvp__fail(eb, NVP_EFORMAT,
                         "%s: '%s' is %lld bytes, more than any saved file "
                         "can be", fn, path, (long long)st.st_size);
    }
    const size_t n = (size_t)st.st_size;
    /* Nothing is allocated for a file that does not even start as one of
     * ours: a large file of something else costs no memory. */
    unsigned char magic[8];
    if (n >= sizeof magic) {
        ssize_t r;
        do
            r = pread(fd, magic, sizeof magic, 0);
        while (r < 0 && errno == EINTR);
        if (r != (ssize_t)sizeof magic ||
            memcmp(magic, "NVPFLOW", sizeof magic) != 0) {
            close(fd);
            return nvp__fail(eb, NVP_EFORMAT,
                             "%s: '%s' is not a libnvpflow file (no "
                             "\"NVPFLOW\" magic)", fn, path);
        }
    }
    unsigned char *buf = nvp__malloc(a, n ? n : 1);
    if (!buf) {
        close(fd);
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for %zu bytes",
                         fn, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != n) {
        nvp__free(a, buf);
        return nvp__fail(eb, NVP_EIO, "%s: short read on '%s'", fn, path);
    }
    *data = buf;
    *size = n;
    return NVP_OK;
}

/* Writes all of data to fd; 0 or an errno value. */
static int write_all(int fd, const void *data, size_t size)
{
    const unsigned char *p = data;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, p + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno : ENOSPC;
        done += (size_t)w;
    }
    return 0;
}

/* A path naming an existing file that is not a regular file (/dev/null,
 * a FIFO, a terminal) has nothing that could be replaced atomically, and
 * renaming a temporary file over it would put a regular file in place of
 * the device or pipe: such a path, and one standing for an open file
 * (see follow_links), is written straight through, opened as fopen(path,
 * "w") would open it. */
static int write_through(const nvp_errbox *eb, const char *fn,
                         const char *path, const void *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    NVP_REQUIRE(fd >= 0, NVP_EIO, "%s: cannot open '%s': %s", fn, path,
                strerror(errno));
    int err = write_all(fd, data, size);
    if (close(fd) != 0 && !err)
        err = errno;
    NVP_REQUIRE(!err, NVP_EIO, "%s: writing '%s' failed: %s", fn, path,
                strerror(err));
    return NVP_OK;
}

/* Whether the directory holding the name path lies in /proc, once
 * resolved.  Links there, such as /proc/self/fd/N (where /dev/stdout and
 * /dev/fd/N lead, however spelt), stand for a file the process has open:
 * replacing the file such a link names would leave the open descriptor
 * on the old one, and the link may name no file at all ("pipe:[...]", a
 * deleted file). */
static int dir_in_proc(const char *path)
{
    char dir[4096], real[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        memcpy(dir, ".", 2);
    else if (slash == path)
        memcpy(dir, "/", 2);
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return 0;
    return realpath(dir, real) &&
           (strcmp(real, "/proc") == 0 || strncmp(real, "/proc/", 6) == 0);
}

/* Copies path into out[cap], following symbolic links (at most 40, as
 * the kernel does) to the name a plain open() would write to; that name
 * may not exist yet.  Stops with *open_file set at a link standing for an
 * open file (see dir_in_proc), which must be written through instead.
 * Returns 0 or an errno value. */
static int follow_links(const char *path, char *out, size_t cap,
                        int *open_file)
{
    *open_file = 0;
    const size_t len = strlen(path);
    if (len >= cap)
        return ENAMETOOLONG;
    memcpy(out, path, len + 1);
    for (int hops = 0;; hops++) {
        struct stat st;
        if (lstat(out, &st) != 0 || !S_ISLNK(st.st_mode))
            return 0;
        if (hops == 40)
            return ELOOP;
        if (dir_in_proc(out)) {
            *open_file = 1;
            return 0;
        }
        char link[4096];
        const ssize_t n = readlink(out, link, sizeof link);
        if (n < 0)
            return errno;
        if ((size_t)n >= sizeof link)
            return ENAMETOOLONG;
        link[n] = '\0';
        /* A relative link is relative to the directory holding it. */
        const char *slash = strrchr(out, '/');
        const size_t keep =
            link[0] == '/' || !slash ? 0 : (size_t)(slash - out) + 1;
        if (keep + (size_t)n >= cap)
            return ENAMETOOLONG;
        memcpy(out + keep, link, (size_t)n + 1);
    }
}

/* Creates a new file "<path>.tmp-<pid>-<n>" for writing, its name in
 * tmp[cap] (cap > strlen(path) + 40).  Unlike mkstemp's 0600, the mode is
 * 0666 less the umask, as fopen would give, without reading the umask
 * (which only a racy umask() call can).  Returns the descriptor, or -1
 * with errno set. */
static int create_temp(const char *path, char *tmp, size_t cap)
{
    static atomic_uint serial;
    for (int tries = 0; tries < 100; tries++) {
        snprintf(tmp, cap, "%s.tmp-%ld-%u", path, (long)getpid(),
                 atomic_fetch_add(&serial, 1u));
        const int fd =
            open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1; /* errno is EEXIST */
}

int nvp__write_file_atomic(const nvp_errbox *eb, const char *fn,
                           const char *path, const void *data, size_t size)
{
    NVP_REQUIRE(*path, NVP_EINVAL, "%s: path is empty", fn);
    struct stat st;
    if (stat(path, &st) == 0) {
        NVP_REQUIRE(!S_ISDIR(st.st_mode), NVP_EIO, "%s: '%s' is a directory",
                    fn, path);
        if (!S_ISREG(st.st_mode))
            return write_through(eb, fn, path, data, size);
    }
    /* A symbolic link is followed: the file it names (which may not exist
     * yet) is replaced and the link stays a link. */
    char target[4096];
    int open_file;
    const int lerr = follow_links(path, target, sizeof target, &open_file);
    NVP_REQUIRE(lerr != ENAMETOOLONG, NVP_EINVAL, "%s: path is too long",
                fn);
    NVP_REQUIRE(!lerr, NVP_EIO, "%s: cannot follow the link '%s': %s", fn,
                path, strerror(lerr));
    if (open_file)
        return write_through(eb, fn, path, data, size);
    path = target;
    const int existed = stat(path, &st) == 0;
    const size_t plen = strlen(path);
    char tmp[4096];
    NVP_REQUIRE(plen + 40 < sizeof tmp, NVP_EINVAL, "%s: path is too long",
                fn);
    const int fd = create_temp(path, tmp, sizeof tmp);
    NVP_REQUIRE(fd >= 0, NVP_EIO, "%s: cannot create a file next to '%s': %s",
                fn, path, strerror(errno));
    int err = write_all(fd, data, size);
    /* Replacing a file keeps its permissions (a private model stays
     * private); a new file gets the umask's, as with fopen. */
    if (!err && existed && fchmod(fd, st.st_mode & 07777) != 0)
        err = errno;
    /* The data must be on disk before the rename makes it the file. */
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return nvp__fail(eb, NVP_EIO, "%s: writing '%s' failed: %s (the "
                                      "previous file, if any, is intact)",
                         fn, path, strerror(err));
    }
    /* Make the rename itself durable: best effort. */
    char dir[4096];
    memcpy(dir, path, plen + 1);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        memcpy(dir, ".", 2);
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return NVP_OK;
}
