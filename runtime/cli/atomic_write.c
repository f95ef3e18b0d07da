/*
 * atomic_write.c — files the CLI writes (bench charts) are replaced the way
 * checkpoints are: temp file, fsync, rename. The CLI links only the public
 * API of libplexus.so, where the runtime's atomic_file is hidden, so its
 * source is compiled into the CLI once more here rather than copied.
 */
#include <errno.h>
#include <stdio.h>

#include "../io/atomic_file.c"
#include "cli.h"

int cli_write_file_atomic(const char *cmd, const char *path, const void *data, size_t size)
{
    char err[1024] = "";
    if (atomic_file_write_all(path, data, size, NULL, err, sizeof err) != PLX_OK) {
        fprintf(stderr, "plexus %s: %s\n", cmd, err[0] ? err : path);
        return -1;
    }
    return 0;
}
