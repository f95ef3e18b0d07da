/*
 * atomic_file.c — temp file, fsync, rename, fsync of the directory. See
 * atomic_file.h for the guarantees.
 */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct atomic_file {
    char *path;      /* the target, as given */
    char *dir;       /* its directory ("." when path has no slash) */
    char *temp;      /* the temp file's path */
    int fd;          /* open temp file, or -1 once closed */
    plx_status failed; /* sticky status of the first failed write */
    atomic_file_hooks hooks;
};

static void set_error(char *errbuf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_error(char *errbuf, size_t cap, const char *fmt, ...)
{
    if (errbuf == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, cap, fmt, ap);
    va_end(ap);
}

static ssize_t call_write(const atomic_file *f, const void *buf, size_t n)
{
    if (f->hooks.write != NULL)
        return f->hooks.write(f->hooks.arg, f->fd, buf, n);
    return write(f->fd, buf, n);
}

static int call_fsync(const atomic_file *f, int fd)
{
    if (f->hooks.fsync != NULL)
        return f->hooks.fsync(f->hooks.arg, fd);
    return fsync(fd);
}

static int call_rename(const atomic_file *f, const char *from, const char *to)
{
    if (f->hooks.rename != NULL)
        return f->hooks.rename(f->hooks.arg, from, to);
    return rename(from, to);
}

/* The process umask, read without changing it (umask(2) would, racing with
 * other threads). Linux reports it in /proc/self/status since 4.7; older
 * kernels get the common default. */
static mode_t current_umask(void)
{
    mode_t mask = 022;
    FILE *fp = fopen("/proc/self/status", "re");
    if (fp == NULL)
        return mask;
    char line[256];
    while (fgets(line, sizeof line, fp) != NULL) {
        unsigned int value;
        if (sscanf(line, "Umask: %o", &value) == 1) {
            mask = (mode_t)(value & 0777u);
            break;
        }
    }
    fclose(fp);
    return mask;
}

static void file_free(atomic_file *f)
{
    if (f == NULL)
        return;
    free(f->path);
    free(f->dir);
    free(f->temp);
    free(f);
}

/* Closes (if open) and removes the temp file, then frees f. */
static void discard(atomic_file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    if (f->temp != NULL)
        unlink(f->temp);
    file_free(f);
}

plx_status atomic_file_begin(const char *path, const atomic_file_hooks *hooks, atomic_file **out, char *errbuf,
                             size_t cap)
{
    if (out != NULL)
        *out = NULL;
    if (path == NULL || path[0] == '\0' || out == NULL) {
        set_error(errbuf, cap, "atomic write: empty path");
        return PLX_INVALID_ARGUMENT;
    }
    size_t len = strlen(path);
    if (path[len - 1] == '/') {
        set_error(errbuf, cap, "%s: names a directory, not a file", path);
        return PLX_INVALID_ARGUMENT;
    }
    struct stat st;
    bool exists = stat(path, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        set_error(errbuf, cap, "%s: is a directory", path);
        return PLX_INVALID_ARGUMENT;
    }
    mode_t mode = exists ? (st.st_mode & 07777) : (0666 & ~current_umask());

    atomic_file *f = calloc(1, sizeof *f);
    if (f == NULL) {
        set_error(errbuf, cap, "%s: out of memory", path);
        return PLX_OUT_OF_MEMORY;
    }
    f->fd = -1;
    if (hooks != NULL)
        f->hooks = *hooks;
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    size_t dir_len = slash == NULL ? 0 : (slash == path ? 1 : (size_t)(slash - path));
    f->path = strdup(path);
    f->dir = slash == NULL ? strdup(".") : strndup(path, dir_len);
    /* dir + "/." + base + ".tmp.XXXXXX" + NUL */
    size_t temp_cap = strlen(f->dir != NULL ? f->dir : "") + 2 + strlen(base) + 12 + 1;
    f->temp = malloc(temp_cap);
    if (f->path == NULL || f->dir == NULL || f->temp == NULL) {
        file_free(f);
        set_error(errbuf, cap, "%s: out of memory", path);
        return PLX_OUT_OF_MEMORY;
    }
    snprintf(f->temp, temp_cap, "%s%s.%s.tmp.XXXXXX", f->dir, strcmp(f->dir, "/") == 0 ? "" : "/", base);

    f->fd = mkostemp(f->temp, O_CLOEXEC);
    if (f->fd < 0) {
        int err = errno;
        set_error(errbuf, cap, "%s: cannot create a temp file in '%s': %s", path, f->dir, strerror(err));
        free(f->temp);
        f->temp = NULL; /* nothing to remove */
        file_free(f);
        return err == ENOENT || err == ENOTDIR ? PLX_NOT_FOUND : PLX_IO_ERROR;
    }
    if (fchmod(f->fd, mode) != 0) {
        set_error(errbuf, cap, "%s: cannot set the mode of '%s': %s", path, f->temp, strerror(errno));
        discard(f);
        return PLX_IO_ERROR;
    }
    *out = f;
    return PLX_OK;
}

plx_status atomic_file_write(atomic_file *f, const void *data, size_t n, char *errbuf, size_t cap)
{
    if (f == NULL) {
        set_error(errbuf, cap, "atomic write: no file");
        return PLX_INVALID_ARGUMENT;
    }
    if (f->failed != PLX_OK) {
        set_error(errbuf, cap, "%s: an earlier write failed", f->path);
        return f->failed;
    }
    const unsigned char *p = data;
    while (n > 0) {
        ssize_t done = call_write(f, p, n);
        if (done < 0 && errno == EINTR)
            continue;
        if (done <= 0) {
            /* write() returning 0 for n > 0 should not happen on a regular
             * file; treat it as "no space" rather than loop forever. */
            const char *why = done == 0 ? strerror(ENOSPC) : strerror(errno);
            set_error(errbuf, cap, "%s: cannot write '%s': %s", f->path, f->temp, why);
            f->failed = PLX_IO_ERROR;
            return f->failed;
        }
        p += done;
        n -= (size_t)done;
    }
    return PLX_OK;
}

plx_status atomic_file_commit(atomic_file *f, char *errbuf, size_t cap)
{
    if (f == NULL) {
        set_error(errbuf, cap, "atomic write: no file");
        return PLX_INVALID_ARGUMENT;
    }
    if (f->failed != PLX_OK) {
        set_error(errbuf, cap, "%s: not replaced: an earlier write to '%s' failed", f->path, f->temp);
        plx_status status = f->failed;
        discard(f);
        return status;
    }
    if (call_fsync(f, f->fd) != 0) {
        set_error(errbuf, cap, "%s: cannot flush '%s' to disk: %s", f->path, f->temp, strerror(errno));
        discard(f);
        return PLX_IO_ERROR;
    }
    int fd = f->fd;
    f->fd = -1;
    if (close(fd) != 0) {
        set_error(errbuf, cap, "%s: cannot close '%s': %s", f->path, f->temp, strerror(errno));
        discard(f);
        return PLX_IO_ERROR;
    }
    if (call_rename(f, f->temp, f->path) != 0) {
        set_error(errbuf, cap, "%s: cannot rename '%s' over it: %s", f->path, f->temp, strerror(errno));
        discard(f);
        return PLX_IO_ERROR;
    }
    /* The rename is durable only once the directory entry is on disk. */
    plx_status status = PLX_OK;
    int dir_fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) {
        set_error(errbuf, cap, "%s: written, but its directory '%s' cannot be opened to sync it: %s", f->path,
                  f->dir, strerror(errno));
        status = PLX_IO_ERROR;
    } else {
        /* Some file systems cannot sync directories (EINVAL); nothing more
         * can be done there. */
        if (call_fsync(f, dir_fd) != 0 && errno != EINVAL) {
            set_error(errbuf, cap, "%s: written, but its directory '%s' cannot be synced: %s", f->path, f->dir,
                      strerror(errno));
            status = PLX_IO_ERROR;
        }
        close(dir_fd);
    }
    file_free(f);
    return status;
}

void atomic_file_abort(atomic_file *f)
{
    if (f != NULL)
        discard(f);
}

const char *atomic_file_temp_path(const atomic_file *f)
{
    return f != NULL ? f->temp : NULL;
}

plx_status atomic_file_write_all(const char *path, const void *data, size_t size, const atomic_file_hooks *hooks,
                                 char *errbuf, size_t cap)
{
    atomic_file *f = NULL;
    plx_status status = atomic_file_begin(path, hooks, &f, errbuf, cap);
    if (status != PLX_OK)
        return status;
    status = atomic_file_write(f, data, size, errbuf, cap);
    if (status != PLX_OK) {
        atomic_file_abort(f);
        return status;
    }
    return atomic_file_commit(f, errbuf, cap);
}
