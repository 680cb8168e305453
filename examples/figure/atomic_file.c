/* atomic_file.c - temporary file + rename; see atomic_file.h for why. */
#include "atomic_file.h"

#include <errno.h>
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
    /* A symbolic link (/dev/stdout is one) and an existing file that is
     * not a regular file (/dev/null, a FIFO) are written straight
     * through: renaming the temporary file over the name would replace the
     * link, the device or the pipe with a regular file. */
    struct stat st;
    const int is_link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
    const int exists = stat(path, &st) == 0;
    if (is_link || (exists && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))) {
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
    snprintf(af->tmp, len + 32, "%s.tmp.%ld", path, (long)getpid());
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
