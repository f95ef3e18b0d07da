/*
 * atomic_file.h — replace a file so that a crash never leaves it broken or
 * missing (internal to the runtime; checkpoints are written through it).
 *
 * The content goes to a temp file created with mkstemp in the target's own
 * directory (".<name>.tmp.XXXXXX", so the rename stays inside one file
 * system), which is written in full, fsync'd, renamed over the target and
 * followed by an fsync of the directory. Readers therefore see either the
 * old file or the whole new one. On any failure before the rename the
 * existing file is left untouched and the temp file is removed.
 *
 * The new file gets the old file's permission bits when the target exists,
 * and 0666 minus the process umask otherwise (mkstemp alone would leave
 * 0600). A symbolic link at the target is replaced by the file itself, not
 * followed.
 *
 * Error messages name the path and, for failed system calls, the errno
 * text: "out/model.ckpt: cannot create a temp file in 'out': Permission
 * denied". They are written to a caller's buffer (errbuf, cap), which may be
 * NULL when cap is 0; messages longer than the buffer are truncated.
 *
 * Thread safety: one atomic_file is used by one thread at a time; different
 * atomic_files (even for the same target: the last rename wins) may be
 * used concurrently.
 */
#ifndef PLX_IO_ATOMIC_FILE_H
#define PLX_IO_ATOMIC_FILE_H

#include <stddef.h>
#include <sys/types.h>

#include "../../abi/plexus_types.h"

/* System calls an atomic_file makes, replaceable for tests (fault
 * injection). Each member behaves as the POSIX call it names (return value
 * and errno); a NULL member means the real call. `arg` is passed first. The
 * table is copied by atomic_file_begin. */
typedef struct atomic_file_hooks {
    ssize_t (*write)(void *arg, int fd, const void *buf, size_t n);
    int (*fsync)(void *arg, int fd);
    int (*rename)(void *arg, const char *from, const char *to);
    void *arg;
} atomic_file_hooks;

typedef struct atomic_file atomic_file;

/* Starts replacing `path`: creates the temp file. hooks may be NULL (real
 * system calls). On success *out is a new atomic_file that the caller must
 * end with atomic_file_commit or atomic_file_abort.
 * Fails with PLX_INVALID_ARGUMENT (empty path, path naming a directory),
 * PLX_NOT_FOUND (directory missing), PLX_IO_ERROR (mkstemp failed, e.g. not
 * writable), PLX_OUT_OF_MEMORY. Nothing is created on failure. */
plx_status atomic_file_begin(const char *path, const atomic_file_hooks *hooks, atomic_file **out, char *errbuf,
                             size_t cap);

/* Appends n bytes (retrying short writes and EINTR). Failure is sticky: once
 * a write failed, later writes do nothing and return the same status, and
 * atomic_file_commit fails; so callers may write several pieces and check
 * only the commit. Fails with PLX_IO_ERROR (e.g. disk full). */
plx_status atomic_file_write(atomic_file *f, const void *data, size_t n, char *errbuf, size_t cap);

/* Finishes: fsync, close, rename over the target, fsync the directory; then
 * frees f (always, also on failure). If an earlier write failed, or any step
 * up to the rename fails, the temp file is removed, the target is left as it
 * was and the status is PLX_IO_ERROR. If only the final directory fsync
 * fails, the new file is already in place (but its durability is unknown)
 * and the status is PLX_IO_ERROR too. */
plx_status atomic_file_commit(atomic_file *f, char *errbuf, size_t cap);

/* Gives up: removes the temp file and frees f; the target is untouched.
 * atomic_file_abort(NULL) is a no-op. */
void atomic_file_abort(atomic_file *f);

/* The temp file's path (for tests and messages); valid until commit/abort. */
const char *atomic_file_temp_path(const atomic_file *f);

/* Convenience: replaces `path` with `size` bytes of `data` (begin, write,
 * commit). hooks may be NULL. Same failures as above. */
plx_status atomic_file_write_all(const char *path, const void *data, size_t size, const atomic_file_hooks *hooks,
                                 char *errbuf, size_t cap);

#endif
