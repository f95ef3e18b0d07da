/*
 * test_custom_backend.c — the third-party path end to end: install Plexus
 * into a temporary prefix (`make install PREFIX=...`, from the artifacts
 * already built), build examples/custom_backend against the INSTALLED
 * headers through pkg-config, load the result next to cpu_blas and check
 * that the router uses it where it is cheaper or ranked first, that its
 * results match cpu_blas, and that everything it does not take still runs.
 *
 * Skipped (with the reason) when make or pkg-config is not available.
 */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../test_util.h"

static char tmp_dir[PATH_MAX];
static char prefix[PATH_MAX + 32];
static char plugin_dir[PATH_MAX + 32];
static char plugin_file[PATH_MAX + 64];

static int have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static void print_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL)
        print_message("  | %s", line);
    fclose(f);
}

static int file_contains(const char *path, const char *needle)
{
    static char buf[1 << 16];
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, needle) != NULL;
}

static void run_or_fail(const char *cmd, const char *log)
{
    int rc = system(cmd);
    if (rc != 0) {
        print_message("command failed (status %d): %s\n", rc, cmd);
        print_file(log);
        fail_msg("command failed: %s", cmd);
    }
}

/* Installs Plexus into <tmp>/prefix and builds the example into
 * <tmp>/plugins. Returns 0 when the test must be skipped. */
static int build_example(void)
{
    if (!have_tool("make") || !have_tool("pkg-config")) {
        print_message("skipping: %s is not installed\n", have_tool("make") ? "pkg-config" : "make");
        return 0;
    }
    /* Not /tmp: it may be mounted noexec, and dlopen would fail there. */
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_custom_backend_XXXXXX", PLX_TEST_BUILD_DIR);
    assert_non_null(mkdtemp(tmp_dir));
    assert_int_equal(chmod(tmp_dir, 0755), 0);
    snprintf(prefix, sizeof prefix, "%s/prefix", tmp_dir);
    snprintf(plugin_dir, sizeof plugin_dir, "%s/plugins", tmp_dir);
    snprintf(plugin_file, sizeof plugin_file, "%s/libplexus-acme_vec.so", plugin_dir);

    /* A make running this test (make test) must not leak its jobserver or
     * command-line variables into ours. */
    unsetenv("MAKEFLAGS");
    unsetenv("MFLAGS");
    unsetenv("MAKELEVEL");
    unsetenv("PKG_CONFIG_PATH");

    /* Install from the build this test belongs to: same BUILD directory
     * (relative to the source tree when it is inside it) and SANITIZE
     * setting. `-o all` installs the artifacts as they are: rebuilding here
     * would race other makes and bake the temporary PREFIX into objects. */
    const char *src = PLX_TEST_SOURCE_DIR, *build = PLX_TEST_BUILD_DIR;
    size_t src_len = strlen(src);
    const char *build_arg = strncmp(build, src, src_len) == 0 && build[src_len] == '/' ? build + src_len + 1 : build;
    const char *base = strrchr(build, '/');
    int sanitize = base != NULL && strcmp(base + 1, "build-san") == 0;
    char log[PATH_MAX + 32], cmd[8 * PATH_MAX];
    snprintf(log, sizeof log, "%s/install.log", tmp_dir);
    snprintf(cmd, sizeof cmd, "make -C '%s' -o all install PREFIX='%s' DESTDIR= BUILD='%s' SANITIZE=%d >'%s' 2>&1",
             src, prefix, build_arg, sanitize, log);
    run_or_fail(cmd, log);

    char path[PATH_MAX + 64];
    struct stat st;
    snprintf(path, sizeof path, "%s/include/plexus/plexus_plugin.h", prefix);
    assert_int_equal(stat(path, &st), 0);
    char pc[PATH_MAX + 64], want_prefix[PATH_MAX + 64];
    snprintf(pc, sizeof pc, "%s/lib/pkgconfig/plexus.pc", prefix);
    assert_int_equal(stat(pc, &st), 0);

    /* The installed plexus.pc should name the prefix it was installed to. If
     * it does not (a plexus.pc generated earlier for another PREFIX), say so
     * and point pkg-config at the right prefix, so the rest still tests the
     * example against the installed headers. */
    snprintf(want_prefix, sizeof want_prefix, "prefix=%s\n", prefix);
    char pkg_config[PATH_MAX + 96] = "pkg-config";
    if (!file_contains(pc, want_prefix)) {
        print_message("note: installed %s does not say '%.*s' (it was generated for another PREFIX; "
                      "the Makefile does not regenerate plexus.pc when PREFIX changes). Using "
                      "pkg-config --define-variable=prefix=... for the rest of this test.\n",
                      pc, (int)strlen(want_prefix) - 1, want_prefix);
        snprintf(pkg_config, sizeof pkg_config, "pkg-config --define-variable=prefix=%s", prefix);
    }

    snprintf(log, sizeof log, "%s/example.log", tmp_dir);
    snprintf(cmd, sizeof cmd,
             "PKG_CONFIG_PATH='%s/lib/pkgconfig' make -C '%s/examples/custom_backend' OUT='%s' "
             "PKG_CONFIG='%s' EXTRA_CFLAGS=-Werror >'%s' 2>&1",
             prefix, src, plugin_dir, pkg_config, log);
    run_or_fail(cmd, log);
    /* Built against the installed headers, not the source tree's abi/. */
    char include_flag[PATH_MAX + 64];
    snprintf(include_flag, sizeof include_flag, "-I%s/include/plexus", prefix);
    if (!file_contains(log, include_flag)) {
        print_file(log);
        fail_msg("the example was not compiled with %s", include_flag);
    }
    assert_int_equal(stat(plugin_file, &st), 0);
    return 1;
}

static void remove_tmp(void)
{
    if (tmp_dir[0] == '\0')
        return;
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        print_message("could not remove %s\n", tmp_dir);
    tmp_dir[0] = '\0';
}

static plx_context *open_with_example(const char *backends)
{
    const char *const paths[] = {plugin_dir, PLX_TEST_PLUGIN_DIR "/libplexus-cpu_blas.so"};
    return tu_open_paths(paths, 2, backends);
}

/* Runs op on (a[, b]) in ctx, checks the backend, returns the result. */
static plx_tensor *run_on(plx_context *ctx, const char *op, plx_tensor *a, plx_tensor *b, const char *backend)
{
    plx_tensor *in[2] = {a, b}, *out = NULL;
    tu_run(ctx, op, NULL, in, b ? 2 : 1, &out, 1);
    if (strcmp(plx_last_backend(ctx), backend) != 0)
        fail_msg("%s ran on '%s', expected '%s'", op, plx_last_backend(ctx), backend);
    return out;
}

/* The same op in the example's context and a cpu_blas-only one: results
 * must be identical (these ops are exact in f32). */
static void compare_with_cpu_blas(plx_context *ctx, plx_context *ref, const char *op, int binary, int64_t n,
                                  const char *backend)
{
    uint64_t rng = 1234u + (uint64_t)n;
    int64_t shape[2] = {n / 64, 64};
    plx_tensor *a = tu_uniform(ctx, &rng, 2, shape, -1.0f, 1.0f);
    plx_tensor *b = binary ? tu_uniform(ctx, &rng, 2, shape, -2.0f, 2.0f) : NULL;
    plx_tensor *ra = tu_from_f32(ref, 2, shape, tu_f32(a));
    plx_tensor *rb = binary ? tu_from_f32(ref, 2, shape, tu_f32(b)) : NULL;
    plx_tensor *got = run_on(ctx, op, a, b, backend);
    plx_tensor *want = run_on(ref, op, ra, rb, "cpu_blas");
    tu_assert_close(tu_f32(got), tu_f32(want), n, 0.0f, 0.0f, op);
    plx_tensor_free(got);
    plx_tensor_free(want);
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_tensor_free(ra);
    plx_tensor_free(rb);
}

static void test_custom_backend_out_of_tree(void **state)
{
    if (!build_example()) {
        skip();
        return;
    }

    /* The plugin exports its entry and nothing else. */
    void *h = dlopen(plugin_file, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL)
        fail_msg("dlopen %s: %s", plugin_file, dlerror());
    assert_non_null(dlsym(h, "plx_plugin_entry"));
    assert_null(dlsym(h, "acme_run"));
    assert_null(dlsym(h, "acme_backend"));
    dlclose(h);

    plx_context *ctx = open_with_example(NULL);
    plx_context *ref = open_with_example("cpu_blas");
    assert_int_equal(plx_plugin_count(ctx), 2);
    plx_plugin_info info = {.struct_size = sizeof info};
    assert_int_equal(plx_plugin_get(ctx, 0, &info), PLX_OK);
    if (info.status != PLX_PLUGIN_LOADED)
        fail_msg("acme_vec refused: %s", info.reason);
    assert_string_equal(info.name, "acme_vec");
    assert_string_equal(info.version, "1.0.0");
    assert_int_equal(info.abi_major, PLX_ABI_MAJOR);
    assert_int_equal(info.abi_minor, PLX_ABI_MINOR);
    assert_int_equal(plx_backend_count(ctx), 2);
    assert_int_equal(plx_backend_count(ref), 1);

    /* Cheaper by its estimate: it runs what it implements, with the same
     * results as cpu_blas, small and large (several parallel chunks). */
    compare_with_cpu_blas(ctx, ref, "core.relu", 0, 4096, "acme_vec");
    compare_with_cpu_blas(ctx, ref, "core.relu", 0, 64 * 2000, "acme_vec");
    compare_with_cpu_blas(ctx, ref, "core.add", 1, 64 * 1500, "acme_vec");
    compare_with_cpu_blas(ctx, ref, "core.mul", 1, 640, "acme_vec");
    /* What it does not implement or declines runs on cpu_blas. */
    compare_with_cpu_blas(ctx, ref, "core.sigmoid", 0, 640, "cpu_blas");
    compare_with_cpu_blas(ctx, ref, "core.sub", 1, 640, "cpu_blas");
    uint64_t rng = 7;
    int64_t s23[2] = {2, 3}, s3[1] = {3};
    plx_tensor *a = tu_uniform(ctx, &rng, 2, s23, -1.0f, 1.0f), *c = tu_uniform(ctx, &rng, 1, s3, -1.0f, 1.0f);
    plx_tensor *y = run_on(ctx, "core.add", a, c, "cpu_blas");
    for (int i = 0; i < 6; i++)
        assert_true(tu_f32(y)[i] == tu_f32(a)[i] + tu_f32(c)[i % 3]);
    plx_tensor_free(y);
    char buf[2048];
    plx_tensor *bc[2] = {a, c};
    assert_int_equal(plx_op_explain(ctx, "core.add", NULL, bc, 2, buf, sizeof buf), PLX_OK);
    if (strstr(buf, "acme_vec: no broadcasting") == NULL || strstr(buf, "-> cpu_blas") == NULL)
        fail_msg("explain does not show acme_vec declining and cpu_blas winning:\n%s", buf);
    assert_int_equal(plx_op_explain(ctx, "core.relu", NULL, &a, 1, buf, sizeof buf), PLX_OK);
    if (strstr(buf, "-> acme_vec acme0 (lowest estimated cost)") == NULL)
        fail_msg("explain does not pick acme_vec for core.relu:\n%s", buf);
    plx_tensor_free(a);
    plx_tensor_free(c);
    plx_context_close(ctx);

    /* Rankings override cost. */
    ctx = open_with_example("cpu_blas,acme_vec");
    compare_with_cpu_blas(ctx, ref, "core.relu", 0, 640, "cpu_blas");
    plx_context_close(ctx);
    ctx = open_with_example("acme_vec,cpu_blas");
    compare_with_cpu_blas(ctx, ref, "core.mul", 1, 640, "acme_vec");
    compare_with_cpu_blas(ctx, ref, "core.sigmoid", 0, 640, "cpu_blas");
    plx_context_close(ctx);
    plx_context_close(ref);
    remove_tmp();
}

static int teardown(void **state)
{
    (void)state;
    remove_tmp(); /* also after a failure */
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_custom_backend_out_of_tree, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
