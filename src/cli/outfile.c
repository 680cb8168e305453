/* outfile.c - atomic output files for the nvpflow tool. */
#include "outfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static int is_stdout(const char *path)
{
    return !path || strcmp(path, "-") == 0;
}

/* Whether path is written in place rather than replaced (see out_open). */
static int write_through(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return 1;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode) &&
           !S_ISDIR(st.st_mode);
}

int out_open(const char *cmd, out_file *o, const char *path)
{
    memset(o, 0, sizeof *o);
    o->path = path;
    if (is_stdout(path)) {
        o->fp = stdout;
        return 0;
    }
    /* A symbolic link (/dev/stdout is one) and an existing file that is
     * not a regular file (/dev/null, a FIFO) are written straight through:
     * renaming a temporary file over the name would replace the link, the
     * device or the pipe with a regular file. */
    struct stat st;
    if (write_through(path)) {
        if (!(o->fp = fopen(path, "w"))) {
            cli_error(cmd, "cannot open '%s': %s", path, strerror(errno));
            return -1;
        }
        o->direct = 1;
        return 0;
    }
    const size_t len = strlen(path);
    o->tmp = malloc(len + 8);
    if (!o->tmp) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    memcpy(o->tmp, path, len);
    memcpy(o->tmp + len, ".XXXXXX", 8);
    const int fd = mkstemp(o->tmp);
    if (fd < 0) {
        cli_error(cmd, "cannot create '%s': %s", path, strerror(errno));
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    /* mkstemp makes the file private (0600).  A file being replaced keeps
     * its mode; a new one gets what a plain fopen would give: 0666 less
     * the umask (read and put back: this tool runs one thread). */
    mode_t mode;
    if (stat(path, &st) == 0) {
        mode = st.st_mode & 07777;
    } else {
        const mode_t mask = umask(0);
        umask(mask);
        mode = 0666 & ~mask;
    }
    if (fchmod(fd, mode) != 0 || !(o->fp = fdopen(fd, "w"))) {
        cli_error(cmd, "cannot create '%s': %s", path, strerror(errno));
        close(fd);
        unlink(o->tmp);
        free(o->tmp);
        o->tmp = NULL;
        return -1;
    }
    return 0;
}

int out_commit(const char *cmd, out_file *o)
{
    if (!o->fp)
        return -1;
    if (!o->tmp) {
        int bad = fflush(o->fp) != 0 || ferror(o->fp);
        if (o->direct && fclose(o->fp) != 0)
            bad = 1;
        o->fp = NULL;
        o->direct = 0;
        if (bad) {
            cli_error(cmd, "error writing to %s: %s",
                      is_stdout(o->path) ? "standard output" : o->path,
                      strerror(errno));
            return -1;
        }
        return 0;
    }
    int err = 0;
    if (fflush(o->fp) != 0 || ferror(o->fp) || fsync(fileno(o->fp)) != 0)
        err = errno ? errno : EIO;
    if (fclose(o->fp) != 0 && !err)
        err = errno ? errno : EIO;
    o->fp = NULL;
    if (!err && rename(o->tmp, o->path) != 0)
        err = errno;
    if (err) {
        cli_error(cmd, "cannot write '%s': %s", o->path, strerror(err));
        unlink(o->tmp);
    }
    free(o->tmp);
    o->tmp = NULL;
    return err ? -1 : 0;
}

void out_abort(out_file *o)
{
    if (o->tmp) {
        if (o->fp)
            fclose(o->fp);
        unlink(o->tmp);
        free(o->tmp);
    } else if (o->direct) {
        fclose(o->fp);
    } else if (o->fp) {
        fflush(o->fp);
    }
    o->fp = NULL;
    o->tmp = NULL;
    o->direct = 0;
}

int out_check_writable(const char *cmd, const char *path)
{
    if (!*path) {
        cli_error(cmd, "the output path is empty");
        return -1;
    }
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_error(cmd, "'%s' is a directory", path);
        return -1;
    }
    /* A link, a device or a FIFO: the file it names must be writable, not
     * the directory holding the name.  (A link to nothing yet is left for
     * the write itself to judge.) */
    if (write_through(path)) {
        if (stat(path, &st) == 0 && access(path, W_OK) != 0) {
            cli_error(cmd, "cannot write '%s': %s", path, strerror(errno));
            return -1;
        }
        return 0;
    }
    const char *slash = strrchr(path, '/');
    char *dir;
    if (!slash) {
        dir = malloc(2);
        if (dir)
            strcpy(dir, ".");
    } else {
        const size_t len = slash == path ? 1 : (size_t)(slash - path);
        dir = malloc(len + 1);
        if (dir) {
            memcpy(dir, path, len);
            dir[len] = '\0';
        }
    }
    if (!dir) {
        cli_error(cmd, "out of memory");
        return -1;
    }
    int rc = 0;
    if (access(dir, W_OK | X_OK) != 0) {
        cli_error(cmd, "cannot write '%s': directory '%s': %s", path, dir,
                  strerror(errno));
        rc = -1;
    }
    free(dir);
    return rc;
}
