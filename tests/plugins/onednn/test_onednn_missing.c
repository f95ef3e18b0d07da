/*
 * test_onednn_missing.c — the oneDNN backend on a machine without its
 * library: the plugin is refused with the missing library named, and every
 * op runs on cpu_blas.
 *
 * To make oneDNN "missing" without touching the system, the test copies the
 * built plugin into a private directory and changes the library it needs
 * from libdnnl.so.2 to libdnnl.so.9 (same length, in the dynamic string
 * table): what a user sees who runs a plugin built for one oneDNN soname on
 * a machine that has another one, or none.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../test_util.h"

#define ONEDNN_FILE PLX_TEST_PLUGIN_DIR "/libplexus-onednn.so"
#define CPU_BLAS_FILE PLX_TEST_PLUGIN_DIR "/libplexus-cpu_blas.so"

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void test_missing_library_refused_and_cpu_blas_runs(void **state)
{
    (void)state;
    size_t len = 0;
    unsigned char *elf = read_all(ONEDNN_FILE, &len);
    if (elf == NULL) {
        printf("skipped: %s is not built (make builds it where libdnnl-dev is installed)\n",
               ONEDNN_FILE);
        skip();
    }
    static const char want[] = "libdnnl.so.2";
    size_t hits = 0;
    for (size_t i = 0; i + sizeof want <= len; i++)
        if (memcmp(elf + i, want, sizeof want) == 0) { /* with its terminator */
            elf[i + sizeof want - 2] = '9';
            hits++;
        }
    assert_int_equal(hits, 1);

    char dir[256], path[512];
    assert_int_equal(tu_make_temp_dir(dir, sizeof dir, "/tmp/plexus-nodnnl-"), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    snprintf(path, sizeof path, "%s/libplexus-onednn.so", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, elf, len), (ssize_t)len);
    close(fd);
    free(elf);

    const char *const paths[] = {dir, CPU_BLAS_FILE};
    plx_context_options o;
    tu_options_init(&o, paths, 2);
    plx_context *ctx = tu_open_options(&o);
    bool seen = false;
    for (size_t i = 0; i < plx_plugin_count(ctx); i++) {
        plx_plugin_info info = {.struct_size = sizeof info};
        assert_int_equal(plx_plugin_get(ctx, i, &info), PLX_OK);
        if (strstr(info.path, "libplexus-onednn.so") == NULL)
            continue;
        seen = true;
        assert_int_equal(info.status, PLX_PLUGIN_REFUSED);
        if (strstr(info.reason, "libdnnl.so.9") == NULL ||
            strstr(info.reason, "cannot open shared object file") == NULL)
            fail_msg("the refusal does not name the missing library: %s", info.reason);
    }
    assert_true(seen);
    assert_int_equal(plx_backend_count(ctx), 1);

    /* a convolution, oneDNN's op, runs on cpu_blas */
    uint64_t rng = 3;
    const int64_t xs[4] = {2, 3, 9, 9}, ws[4] = {4, 3, 3, 3};
    plx_tensor *x = tu_uniform(ctx, &rng, 4, xs, -1, 1), *w = tu_uniform(ctx, &rng, 4, ws, -1, 1);
    plx_tensor *in[2] = {x, w}, *out[1] = {NULL};
    tu_run(ctx, "core.conv2d", NULL, in, 2, out, 1);
    assert_string_equal(plx_last_backend(ctx), "cpu_blas");
    plx_tensor_free(out[0]);
    plx_tensor_free(x);
    plx_tensor_free(w);
    plx_context_close(ctx);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_library_refused_and_cpu_blas_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
