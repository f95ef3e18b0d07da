/*
 * test_atomic_file.c — runtime/io/atomic_file: replacing files, and every
 * failure (injected through the hooks) leaving the old file byte-identical
 * with no temp file behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../test_util.h"
#include "../../../runtime/io/atomic_file.h"

typedef struct fixture {
    char dir[64];
    char path[128];
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    if (tu_make_temp_dir(fx->dir, sizeof fx->dir, "/tmp/plx-atomic-")) {
        free(fx);
        return -1;
    }
    snprintf(fx->path, sizeof fx->path, "%s/model.ckpt", fx->dir);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    tu_remove_dir(fx->dir);
    free(fx);
    return 0;
}

static void write_plain(const char *path, const char *text)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
    assert_int_equal(fclose(fp), 0);
}

static void assert_file_is(const char *path, const void *want, size_t size)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = malloc(size + 16);
    assert_non_null(buf);
    size_t got = fread(buf, 1, size + 16, fp);
    fclose(fp);
    assert_int_equal(got, size);
    assert_memory_equal(buf, want, size);
    free(buf);
}

/* ---- hooks: fail the Nth call of a kind, or write in small pieces ------- */

typedef struct faults {
    int write_calls, fsync_calls, rename_calls;
    int fail_write_at, fail_fsync_at, fail_rename_at; /* 1-based; 0 = never */
    int fail_errno;
    size_t max_chunk; /* 0 = no limit */
    int eintr_every;  /* return EINTR on every Nth write; 0 = never */
} faults;

static ssize_t hook_write(void *arg, int fd, const void *buf, size_t n)
{
    faults *f = arg;
    f->write_calls++;
    if (f->fail_write_at != 0 && f->write_calls >= f->fail_write_at) {
        errno = f->fail_errno;
        return -1;
    }
    if (f->eintr_every != 0 && f->write_calls % f->eintr_every == 0) {
        errno = EINTR;
        return -1;
    }
    if (f->max_chunk != 0 && n > f->max_chunk)
        n = f->max_chunk;
    return write(fd, buf, n);
}

static int hook_fsync(void *arg, int fd)
{
    faults *f = arg;
    f->fsync_calls++;
    if (f->fail_fsync_at != 0 && f->fsync_calls == f->fail_fsync_at) {
        errno = f->fail_errno;
        return -1;
    }
    return fsync(fd);
}

static int hook_rename(void *arg, const char *from, const char *to)
{
    faults *f = arg;
    f->rename_calls++;
    if (f->fail_rename_at != 0 && f->rename_calls == f->fail_rename_at) {
        errno = f->fail_errno;
        return -1;
    }
    return rename(from, to);
}

static atomic_file_hooks hooks_for(faults *f)
{
    atomic_file_hooks h = {hook_write, hook_fsync, hook_rename, f};
    return h;
}

/* ---- tests -------------------------------------------------------------- */

static void test_creates_new_file(void **state)
{
    fixture *fx = *state;
    mode_t old_mask = umask(027);
    char err[256] = "";
    static const char text[] = "hello, checkpoint";
    assert_int_equal(atomic_file_write_all(fx->path, text, sizeof text, NULL, err, sizeof err), PLX_OK);
    umask(old_mask);
    assert_file_is(fx->path, text, sizeof text);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640); /* 0666 minus the umask, not mkstemp's 0600 */
    assert_int_equal(tu_count_entries(fx->dir), 1);
}

static void test_replaces_and_keeps_mode(void **state)
{
    fixture *fx = *state;
    write_plain(fx->path, "old contents, longer than the new ones");
    assert_int_equal(chmod(fx->path, 0604), 0);
    char err[256] = "";
    assert_int_equal(atomic_file_write_all(fx->path, "new", 3, NULL, err, sizeof err), PLX_OK);
    assert_file_is(fx->path, "new", 3);
    struct stat st;
    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0604);
    assert_int_equal(tu_count_entries(fx->dir), 1);
    /* An empty file is a file too. */
    assert_int_equal(atomic_file_write_all(fx->path, NULL, 0, NULL, err, sizeof err), PLX_OK);
    assert_file_is(fx->path, "", 0);
}

static void test_streamed_pieces_short_writes_and_eintr(void **state)
{
    fixture *fx = *state;
    faults f = {0};
    f.max_chunk = 3;
    f.eintr_every = 4;
    atomic_file_hooks h = hooks_for(&f);
    atomic_file *af = NULL;
    char err[256] = "";
    assert_int_equal(atomic_file_begin(fx->path, &h, &af, err, sizeof err), PLX_OK);
    const char *temp = atomic_file_temp_path(af);
    assert_non_null(temp);
    assert_non_null(strstr(temp, "/.model.ckpt.tmp."));
    assert_int_equal(access(fx->path, F_OK), -1); /* nothing at the target yet */
    char want[1000];
    for (size_t i = 0; i < sizeof want; i++)
        want[i] = (char)(i * 7 + 1);
    assert_int_equal(atomic_file_write(af, want, 400, err, sizeof err), PLX_OK);
    assert_int_equal(atomic_file_write(af, want + 400, 600, err, sizeof err), PLX_OK);
    assert_int_equal(atomic_file_commit(af, err, sizeof err), PLX_OK);
    assert_file_is(fx->path, want, sizeof want);
    assert_true(f.write_calls > 300);
    assert_int_equal(f.fsync_calls, 2); /* the file, then the directory */
    assert_int_equal(f.rename_calls, 1);
    assert_int_equal(tu_count_entries(fx->dir), 1);
}

/* Runs one failing replacement of an existing file and checks the old file
 * is byte-identical and no temp file is left. */
static void check_failure_leaves_old(fixture *fx, faults *f, const char *want_in_message)
{
    static const char old_text[] = "the previous checkpoint, which must survive";
    write_plain(fx->path, old_text);
    atomic_file_hooks h = hooks_for(f);
    char big[10000];
    memset(big, 'x', sizeof big);
    char err[512] = "";
    plx_status st = atomic_file_write_all(fx->path, big, sizeof big, &h, err, sizeof err);
    assert_int_equal(st, PLX_IO_ERROR);
    assert_file_is(fx->path, old_text, strlen(old_text));
    assert_int_equal(tu_count_entries(fx->dir), 1);
    if (strstr(err, fx->path) == NULL || strstr(err, want_in_message) == NULL)
        fail_msg("message \"%s\" lacks the path or \"%s\"", err, want_in_message);
}

static void test_write_failure_leaves_old_file(void **state)
{
    fixture *fx = *state;
    faults f = {0};
    f.fail_write_at = 1;
    f.fail_errno = ENOSPC;
    check_failure_leaves_old(fx, &f, strerror(ENOSPC));

    faults g = {0}; /* fails after some bytes made it to the temp file */
    g.max_chunk = 1000;
    g.fail_write_at = 4;
    g.fail_errno = EIO;
    check_failure_leaves_old(fx, &g, strerror(EIO));
}

static void test_fsync_failure_leaves_old_file(void **state)
{
    fixture *fx = *state;
    faults f = {0};
    f.fail_fsync_at = 1;
    f.fail_errno = EIO;
    check_failure_leaves_old(fx, &f, "cannot flush");
    assert_int_equal(f.rename_calls, 0);
}

static void test_rename_failure_leaves_old_file(void **state)
{
    fixture *fx = *state;
    faults f = {0};
    f.fail_rename_at = 1;
    f.fail_errno = EXDEV;
    check_failure_leaves_old(fx, &f, strerror(EXDEV));
}

static void test_write_failure_is_sticky(void **state)
{
    fixture *fx = *state;
    write_plain(fx->path, "old");
    faults f = {0};
    f.fail_write_at = 1;
    f.fail_errno = ENOSPC;
    atomic_file_hooks h = hooks_for(&f);
    atomic_file *af = NULL;
    char err[256] = "";
    assert_int_equal(atomic_file_begin(fx->path, &h, &af, err, sizeof err), PLX_OK);
    assert_int_equal(atomic_file_write(af, "abc", 3, err, sizeof err), PLX_IO_ERROR);
    f.fail_write_at = 0; /* even if the disk recovers, the file has a hole */
    assert_int_equal(atomic_file_write(af, "def", 3, err, sizeof err), PLX_IO_ERROR);
    assert_int_equal(atomic_file_commit(af, err, sizeof err), PLX_IO_ERROR);
    assert_non_null(strstr(err, "earlier write"));
    assert_file_is(fx->path, "old", 3);
    assert_int_equal(tu_count_entries(fx->dir), 1);
}

static void test_directory_sync_failure_is_reported(void **state)
{
    fixture *fx = *state;
    write_plain(fx->path, "old");
    faults f = {0};
    f.fail_fsync_at = 2; /* the directory */
    f.fail_errno = EIO;
    atomic_file_hooks h = hooks_for(&f);
    char err[256] = "";
    assert_int_equal(atomic_file_write_all(fx->path, "new", 3, &h, err, sizeof err), PLX_IO_ERROR);
    assert_non_null(strstr(err, "directory"));
    assert_file_is(fx->path, "new", 3); /* already renamed: the new file is in place */
    assert_int_equal(tu_count_entries(fx->dir), 1);
}

static void test_abort_removes_temp(void **state)
{
    fixture *fx = *state;
    write_plain(fx->path, "old");
    atomic_file *af = NULL;
    char err[256] = "";
    assert_int_equal(atomic_file_begin(fx->path, NULL, &af, err, sizeof err), PLX_OK);
    assert_int_equal(atomic_file_write(af, "partial", 7, err, sizeof err), PLX_OK);
    assert_int_equal(tu_count_entries(fx->dir), 2);
    atomic_file_abort(af);
    atomic_file_abort(NULL);
    assert_file_is(fx->path, "old", 3);
    assert_int_equal(tu_count_entries(fx->dir), 1);
}

static void test_bad_targets(void **state)
{
    fixture *fx = *state;
    char err[512] = "";
    char path[256];
    snprintf(path, sizeof path, "%s/no/such/dir/model.ckpt", fx->dir);
    assert_int_equal(atomic_file_write_all(path, "x", 1, NULL, err, sizeof err), PLX_NOT_FOUND);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, strerror(ENOENT)));

    assert_int_equal(atomic_file_write_all(fx->dir, "x", 1, NULL, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(err, "directory"));
    snprintf(path, sizeof path, "%s/", fx->dir);
    assert_int_equal(atomic_file_write_all(path, "x", 1, NULL, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(atomic_file_write_all("", "x", 1, NULL, err, sizeof err), PLX_INVALID_ARGUMENT);
    assert_int_equal(atomic_file_write_all(NULL, "x", 1, NULL, NULL, 0), PLX_INVALID_ARGUMENT);
    assert_int_equal(tu_count_entries(fx->dir), 0);
}

static void test_unwritable_directory(void **state)
{
    fixture *fx = *state;
    if (geteuid() == 0)
        skip(); /* root writes anywhere; the hooks tests cover the failure paths */
    char sub[256];
    snprintf(sub, sizeof sub, "%s/ro", fx->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/model.ckpt", sub);
    write_plain(path, "old");
    assert_int_equal(chmod(sub, 0555), 0);
    char err[512] = "";
    plx_status st = atomic_file_write_all(path, "new", 3, NULL, err, sizeof err);
    chmod(sub, 0755);
    assert_int_equal(st, PLX_IO_ERROR);
    assert_non_null(strstr(err, strerror(EACCES)));
    assert_file_is(path, "old", 3);
    assert_int_equal(tu_count_entries(sub), 1);
    unlink(path);
    rmdir(sub);
}

static void test_relative_path(void **state)
{
    fixture *fx = *state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(fx->dir), 0);
    char err[256] = "";
    plx_status st = atomic_file_write_all("plain.bin", "abc", 3, NULL, err, sizeof err);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(st, PLX_OK);
    char path[256];
    snprintf(path, sizeof path, "%s/plain.bin", fx->dir);
    assert_file_is(path, "abc", 3);
    assert_int_equal(tu_count_entries(fx->dir), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_creates_new_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaces_and_keeps_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_streamed_pieces_short_writes_and_eintr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_leaves_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fsync_failure_leaves_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rename_failure_leaves_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failure_is_sticky, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_sync_failure_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_removes_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_path, setup, teardown),
    };
    return cmocka_run_group_tests_name("runtime/io/atomic_file", tests, NULL, NULL);
}
