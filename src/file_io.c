/* Whole-file reads and atomic whole-file writes for saved models. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "format.h"

int nvp__read_file(const nvp_errbox *eb, const char *fn, const char *path,
                   const nvp_allocator *a, size_t limit, unsigned char **data,
                   size_t *size)
{
    *data = NULL;
    *size = 0;
    int fd = open(path, O_RDONLY);
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
        return nvp__fail(eb, NVP_EOVERFLOW,
                         "%s: '%s' is %lld bytes, more than a model can be",
                         fn, path, (long long)st.st_size);
    }
    const size_t n = (size_t)st.st_size;
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

int nvp__write_file_atomic(const nvp_errbox *eb, const char *fn,
                           const char *path, const void *data, size_t size)
{
    const size_t plen = strlen(path);
    char tmp[4096];
    NVP_REQUIRE(plen > 0 && plen + 16 < sizeof tmp, NVP_EINVAL,
                "%s: path is empty or too long", fn);
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp-XXXXXX", 12);
    int fd = mkstemp(tmp);
    NVP_REQUIRE(fd >= 0, NVP_EIO, "%s: cannot create a file next to '%s': %s",
                fn, path, strerror(errno));
    const unsigned char *p = data;
    size_t done = 0;
    int err = 0;
    while (done < size) {
        ssize_t w = write(fd, p + done, size - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)w;
    }
    /* The data must be on disk before the rename makes it the file. */
    if (!err && fchmod(fd, 0644) != 0)
        err = errno;
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
