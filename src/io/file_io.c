/* SPDX-License-Identifier: MIT */
/* Reading saved files (a small read at a time until their header and
 * section table justify reading them whole) and atomic whole-file
 * writes. */
/* realpath() is declared for X/Open in glibc's headers. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "io/format.h"

int nvp__src_read(const char *fn, const nvp_src *src, uint64_t off,
                  void *dst, size_t n)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(off <= src->size && n <= src->size - off, NVP_EFORMAT,
                "%s: a read of %zu bytes at %llu passes the end of the "
                "file", fn, n, (unsigned long long)off);
    if (src->mem) {
        memcpy(dst, src->mem + off, n);
        return NVP_OK;
    }
    unsigned char *d = dst;
    size_t got = 0;
    while (got < n) {
        const ssize_t r = pread(src->fd, d + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        NVP_REQUIRE(r > 0, NVP_EIO, "%s: reading '%s' failed: %s", fn,
                    src->path, r < 0 ? strerror(errno) : "short read");
        got += (size_t)r;
    }
    return NVP_OK;
}

int nvp__src_view(const char *fn, const nvp_src *src,
                  const nvp_allocator *a, uint64_t off, size_t n,
                  const unsigned char **p, void **block)
{
    const nvp_errbox *eb = NULL;
    *p = NULL;
    *block = NULL;
    NVP_REQUIRE(off <= src->size && n <= src->size - off, NVP_EFORMAT,
                "%s: a read of %zu bytes at %llu passes the end of the "
                "file", fn, n, (unsigned long long)off);
    if (src->mem) {
        *p = src->mem + off;
        return NVP_OK;
    }
    unsigned char *b = nvp__malloc(a, n ? n : 1);
    if (!b)
        return nvp__fail(NULL, NVP_ENOMEM, "%s: out of memory for %zu bytes",
                         fn, n);
    const int rc = nvp__src_read(fn, src, off, b, n);
    if (rc) {
        nvp__free(a, b);
        return rc;
    }
    *p = b;
    *block = b;
    return NVP_OK;
}

int nvp__load_file(const char *fn, const nvp_file_kind *k, const char *path,
                   const nvp_allocator *alloc, void *out, void *companion_out)
{
    const nvp_errbox *eb = NULL;
    NVP_REQUIRE(path != NULL, NVP_EINVAL, "%s: path is NULL", fn);
    nvp_allocator a;
    NVP_REQUIRE(nvp__allocator_init(&a, alloc) == NVP_OK, NVP_EINVAL,
                "%s: invalid allocator", fn);
    /* O_NONBLOCK: opening a FIFO must not wait for a writer before the
     * check below refuses it.  (It changes nothing for a regular file.) */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    NVP_REQUIRE(fd >= 0, NVP_EIO, "%s: cannot open '%s': %s", fn, path,
                strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return nvp__fail(eb, NVP_EIO, "%s: '%s' is not a regular file", fn,
                         path);
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)NVP_MAX_FILE_BYTES) {
        close(fd);
        return nvp__fail(eb, NVP_EFORMAT,
                         "%s: '%s' is %lld bytes, more than any saved file "
                         "can be", fn, path, (long long)st.st_size);
    }
    /* The header, the section table and the kind's own small fields
     * first: a file is read whole only once they account for every byte
     * of it, so a large file of something else (or a header on a sparse
     * file of zeros) costs neither memory nor reading. */
    const nvp_src src = {NULL, fd, (uint64_t)st.st_size, path};
    nvp_span spans[NVP_MAX_SECTIONS];
    size_t count;
    uint32_t version;
    int rc = nvp__fmt_table(fn, &src, k->kind, &version, spans, &count);
    if (rc == NVP_OK)
        rc = k->plan(fn, version, spans, count, &src, &a, NULL);
    if (rc) {
        close(fd);
        return rc;
    }
    const size_t n = (size_t)st.st_size;
    unsigned char *buf = nvp__malloc(&a, n);
    if (!buf) {
        close(fd);
        return nvp__fail(eb, NVP_ENOMEM, "%s: out of memory for %zu bytes",
                         fn, n);
    }
    rc = nvp__src_read(fn, &src, 0, buf, n);
    close(fd);
    /* The loader checks everything again, checksums included, on the
     * bytes actually read (the file may have changed in between). */
    if (rc == NVP_OK)
        rc = k->load(fn, buf, n, alloc, out, companion_out);
    nvp__free(&a, buf);
    return rc;
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

/* Removes what saves to path by processes that no longer exist left
 * behind (killed between creating their temporary and renaming it): the
 * files of path's directory named exactly "<name>.tmp-<pid>-<n>" whose pid
 * is not a running process.  Another process's temporary of a save in
 * progress is left alone.  Best effort: errors are ignored. */
static void remove_stale_temps(const char *path)
{
    char dir[4096];
    const size_t plen = strlen(path);
    if (plen >= sizeof dir)
        return;
    memcpy(dir, path, plen + 1);
    char *slash = strrchr(dir, '/');
    const char *name = path;
    if (slash) {
        name = path + (slash - dir) + 1;
        if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
    } else {
        dir[0] = '.';
        dir[1] = '\0';
    }
    const size_t nlen = strlen(name);
    DIR *d = opendir(dir);
    if (!d)
        return;
    const pid_t self = getpid();
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *f = e->d_name;
        if (strncmp(f, name, nlen) != 0 || strncmp(f + nlen, ".tmp-", 5) != 0)
            continue;
        /* <pid>-<n>, both decimal, nothing after */
        const char *p = f + nlen + 5;
        char *end;
        errno = 0;
        const long pid = strtol(p, &end, 10);
        if (end == p || *end != '-' || errno || pid <= 0 || pid == self)
            continue;
        const char *q = end + 1;
        (void)strtoul(q, &end, 10);
        if (end == q || *end != '\0' || *q == '-' || *q == '+')
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue; /* alive, or not ours to judge */
        unlinkat(dirfd(d), f, 0);
    }
    closedir(d);
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
    remove_stale_temps(path);
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
