/*
 * test_calibration.c — routing by measured cost (runtime/cost_cache.c).
 *
 * The test plugin "slow" claims (estimate_ns) that its core.add is almost
 * free, but every run sleeps 3 ms. By estimate the router picks it; once
 * calibration has timed both candidates, cpu_blas wins. The measurements
 * go to a cache file that a later context reads without timing anything,
 * and a corrupt cache, one from another plugin version or another CPU, or
 * one with bad values, is ignored with a warning and rebuilt.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../test_util.h"

#define SLOW_DIR PLX_TEST_BAD_PLUGIN_DIR "/slow"
#define CPU_BLAS_FILE PLX_TEST_PLUGIN_DIR "/libplexus-cpu_blas.so"

static char dir[512], cache[600];
static char log_text[16384];

static void capture_log(void *user, int level, const char *message)
{
    (void)user;
    (void)level;
    size_t used = strlen(log_text);
    snprintf(log_text + used, sizeof log_text - used, "%s\n", message);
}

static int setup(void **state)
{
    (void)state;
    if (tu_make_temp_dir(dir, sizeof dir, "/tmp/plexus-calib-") != 0)
        return -1;
    snprintf(cache, sizeof cache, "%s/costs.json", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(cache);
    tu_remove_dir(dir);
    return 0;
}

static plx_context *open_with(const char *cache_path, int calibrate, const char *backends, int strict)
{
    const char *const paths[] = {CPU_BLAS_FILE, SLOW_DIR};
    plx_context_options o;
    tu_options_init(&o, paths, 2);
    o.cost_cache = cache_path;
    o.calibrate = calibrate;
    o.backends = backends;
    o.strict = strict;
    o.log_fn = capture_log;
    o.log_level = PLX_LOG_DEBUG;
    log_text[0] = '\0';
    return tu_open_options(&o);
}

static const int64_t shape[2] = {64, 33};

/* Runs core.add and returns the backend that ran it. */
static const char *add_on(plx_context *ctx)
{
    uint64_t rng = 7;
    plx_tensor *a = tu_uniform(ctx, &rng, 2, shape, -1, 1), *b = tu_uniform(ctx, &rng, 2, shape, -1, 1);
    plx_tensor *in[2] = {a, b}, *out[1] = {NULL};
    tu_run(ctx, "core.add", NULL, in, 2, out, 1);
    const float *x = tu_f32(a), *y = tu_f32(b), *z = tu_f32(out[0]);
    for (int64_t i = 0; i < shape[0] * shape[1]; i++)
        assert_true(z[i] == x[i] + y[i]);
    static char name[64];
    snprintf(name, sizeof name, "%s", plx_last_backend(ctx));
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_tensor_free(out[0]);
    return name;
}

static void explain_add(plx_context *ctx, char *buf, size_t cap)
{
    plx_tensor *a = tu_tensor(ctx, PLX_F32, 2, shape), *b = tu_tensor(ctx, PLX_F32, 2, shape);
    plx_tensor *in[2] = {a, b};
    assert_int_equal(plx_op_explain(ctx, "core.add", NULL, in, 2, buf, cap), PLX_OK);
    plx_tensor_free(a);
    plx_tensor_free(b);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Replaces the first `from` in the file with `to`. */
static void edit_file(const char *path, const char *from, const char *to)
{
    char *text = slurp(path);
    char *at = strstr(text, from);
    assert_non_null(at);
    static char out[1 << 16];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    write_text(path, out);
}

static void calibrate_into_cache(void)
{
    unlink(cache);
    plx_context *ctx = open_with(cache, 1, NULL, 0);
    assert_string_equal(add_on(ctx), "cpu_blas");
    plx_cost_cache_info info = {.struct_size = sizeof info};
    assert_int_equal(plx_cost_cache_info_get(ctx, &info), PLX_OK);
    assert_int_equal(info.measured, 2); /* both candidates timed */
    assert_int_equal(plx_cost_cache_save(ctx), PLX_OK);
    plx_context_close(ctx);
}

/* By estimate the planted slow backend wins; by measurement it loses. */
static void test_slow_backend_loses_by_measurement(void **state)
{
    (void)state;
    plx_context *ctx = open_with("none", 0, NULL, 0);
    assert_string_equal(add_on(ctx), "slow");
    char buf[4096];
    explain_add(ctx, buf, sizeof buf);
    assert_non_null(strstr(buf, "estimated"));
    assert_non_null(strstr(buf, "-> slow"));
    plx_context_close(ctx);

    ctx = open_with("none", 1, NULL, 0);
    assert_string_equal(add_on(ctx), "cpu_blas");
    explain_add(ctx, buf, sizeof buf);
    assert_non_null(strstr(buf, "measured"));
    assert_non_null(strstr(buf, "-> cpu_blas"));
    assert_non_null(strstr(buf, "lowest cost, measured"));
    /* the slow backend's measured cost is at least its 3 ms sleep */
    const char *line = strstr(buf, "slow ");
    assert_non_null(line);
    double us = 0;
    assert_int_equal(sscanf(strstr(line, "cost ") + 5, "%lf", &us), 1);
    assert_true(us >= 3000.0);
    /* no cache file was asked for */
    plx_cost_cache_info info = {.struct_size = sizeof info};
    assert_int_equal(plx_cost_cache_info_get(ctx, &info), PLX_OK);
    assert_null(info.path);
    assert_int_equal(plx_cost_cache_save(ctx), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), "no calibration cache"));
    plx_context_close(ctx);
}

/* A ranking still overrides measurements. */
static void test_ranking_overrides_measurement(void **state)
{
    (void)state;
    plx_context *ctx = open_with("none", 1, "slow,cpu_blas", 0);
    assert_string_equal(add_on(ctx), "slow");
    plx_context_close(ctx);
}

/* The cache file carries measurements to a context that times nothing. */
static void test_cache_round_trip(void **state)
{
    (void)state;
    calibrate_into_cache();
    char *text = slurp(cache);
    assert_non_null(strstr(text, "\"format\":"));
    assert_non_null(strstr(text, "plexus-costs"));
    assert_non_null(strstr(text, "\"backend\":\t\"slow\""));
    assert_non_null(strstr(text, "core.add(f32[64,33],f32[64,33])->(f32[64,33])"));

    plx_context *ctx = open_with(cache, 0, NULL, 0);
    plx_cost_cache_info info = {.struct_size = sizeof info};
    assert_int_equal(plx_cost_cache_info_get(ctx, &info), PLX_OK);
    assert_string_equal(info.path, cache);
    assert_int_equal(info.loaded, 2);
    assert_int_equal(info.dropped, 0);
    assert_int_equal(info.measured, 0);
    assert_string_equal(add_on(ctx), "cpu_blas");
    assert_null(strstr(log_text, "warn"));
    /* a shape that was never timed goes by estimate again */
    plx_tensor *a = tu_tensor(ctx, PLX_F32, 1, (int64_t[]){5}), *b = tu_tensor(ctx, PLX_F32, 1, (int64_t[]){5});
    plx_tensor *in[2] = {a, b}, *out[1] = {NULL};
    tu_run(ctx, "core.add", NULL, in, 2, out, 1);
    assert_string_equal(plx_last_backend(ctx), "slow");
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_tensor_free(out[0]);
    plx_context_close(ctx);
}

static void expect_ignored(const char *needle)
{
    plx_context *ctx = open_with(cache, 0, NULL, 0);
    if (strstr(log_text, needle) == NULL || strstr(log_text, cache) == NULL)
        fail_msg("expected a warning naming %s and '%s', log:\n%s", cache, needle, log_text);
    plx_cost_cache_info info = {.struct_size = sizeof info};
    assert_int_equal(plx_cost_cache_info_get(ctx, &info), PLX_OK);
    assert_int_equal(info.loaded, 0);
    assert_string_equal(add_on(ctx), "slow"); /* back to estimates */
    plx_context_close(ctx);
}

/* Corrupt caches are ignored with a warning; calibration rebuilds them. */
static void test_corrupt_cache_ignored_and_rebuilt(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        {"{\"format\": \"plexus-costs\", \"version\": 1, \"cpu\": \"x\", \"entr", "not valid JSON"},
        {"\x7f" "ELF\x02\x01\x01", "not valid JSON"},
        {"", "not valid JSON"},
        {"[1, 2, 3]", "not a Plexus calibration cache"},
        {"{\"format\": \"plexus-costs\", \"version\": 99, \"cpu\": \"x\", \"entries\": []}", "another format version"},
        {"{\"format\": \"plexus-costs\", \"version\": 1, \"entries\": []}", "which CPU"},
        {"{\"format\": \"plexus-costs\", \"version\": 1, \"cpu\": \"Z80 (cpuid 0)\", \"entries\": []}",
         "another CPU"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(cache, bad[i][0]);
        expect_ignored(bad[i][1]);
    }
    /* a good file with the wrong CPU text inserted */
    calibrate_into_cache();
    char *text = slurp(cache);
    char *cpu = strstr(text, "\"cpu\":\t\"");
    assert_non_null(cpu);
    char *end = strchr(cpu + 8, '"');
    char cpu_value[300];
    snprintf(cpu_value, sizeof cpu_value, "%.*s", (int)(end - (cpu + 8)), cpu + 8);
    edit_file(cache, cpu_value, "Another CPU");
    expect_ignored("another CPU");

    /* rebuilt by the next calibration, the old file replaced atomically */
    plx_context *ctx = open_with(cache, 1, NULL, 0);
    assert_string_equal(add_on(ctx), "cpu_blas");
    assert_int_equal(plx_cost_cache_save(ctx), PLX_OK);
    plx_context_close(ctx);
    ctx = open_with(cache, 0, NULL, 0);
    assert_null(strstr(log_text, "ignored"));
    assert_string_equal(add_on(ctx), "cpu_blas");
    plx_context_close(ctx);
}

/* Entries from another version of a loaded plugin are dropped; entries with
 * bad values too; entries for backends not loaded are kept. */
static void test_stale_and_bad_entries(void **state)
{
    (void)state;
    calibrate_into_cache();
    /* the slow plugin is 1.0.0: pretend the measurement is from 0.9.0 */
    edit_file(cache, "\"plugin_version\":\t\"1.0.0\"", "\"plugin_version\":\t\"0.9.0\"");
    plx_context *ctx = open_with(cache, 0, NULL, 0);
    assert_non_null(strstr(log_text, "another plugin version"));
    assert_non_null(strstr(log_text, "slow was measured with plugin version 0.9.0, the loaded one is 1.0.0"));
    plx_cost_cache_info info = {.struct_size = sizeof info};
    assert_int_equal(plx_cost_cache_info_get(ctx, &info), PLX_OK);
    assert_int_equal(info.loaded, 1);
    assert_int_equal(info.dropped, 1);
    /* only cpu_blas is measured: slow goes by its (tiny) estimate again */
    assert_string_equal(add_on(ctx), "slow");
    plx_context_close(ctx);

    calibrate_into_cache();
    char *text = slurp(cache);
    char *ns = strstr(text, "\"ns\":\t");
    assert_non_null(ns);
    char *stop = strpbrk(ns + 6, "\n}");
    char value[64];
    snprintf(value, sizeof value, "%.*s", (int)(stop - ns), ns);
    edit_file(cache, value, "\"ns\":\t-5");
    ctx = open_with(cache, 0, NULL, 0);
    assert_non_null(strstr(log_text, "bad values ignored"));
    assert_non_null(strstr(log_text, "has no valid ns"));
    plx_context_close(ctx);

    /* an entry of a backend that is not loaded survives a save */
    calibrate_into_cache();
    edit_file(cache, "\"entries\":\t[", "\"entries\":\t[{\"backend\": \"gpu9\", \"plugin_version\": \"3\", "
                                        "\"device\": \"g0\", \"threads\": 1, \"op\": \"core.x()->()\", \"ns\": 5},");
    ctx = open_with(cache, 0, NULL, 0);
    assert_null(strstr(log_text, "ignored"));
    assert_int_equal(plx_cost_cache_save(ctx), PLX_OK);
    plx_context_close(ctx);
    assert_non_null(strstr(slurp(cache), "gpu9"));
}

/* A cache in a directory that does not exist yet: save creates it; an
 * unwritable target fails with the path named and the old file kept. */
static void test_save_paths(void **state)
{
    (void)state;
    char nested[700];
    snprintf(nested, sizeof nested, "%s/a/b/costs.json", dir);
    plx_context *ctx = open_with(nested, 1, NULL, 0);
    assert_string_equal(add_on(ctx), "cpu_blas");
    assert_int_equal(plx_cost_cache_save(ctx), PLX_OK);
    plx_context_close(ctx);
    struct stat sb;
    assert_int_equal(stat(nested, &sb), 0);
    unlink(nested);
    char sub[700];
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    rmdir(sub);
    snprintf(sub, sizeof sub, "%s/a", dir);
    rmdir(sub);

    /* the target is a directory: refused, nothing lost */
    ctx = open_with(dir, 1, NULL, 0);
    assert_non_null(strstr(log_text, dir));
    assert_int_equal(plx_cost_cache_save(ctx), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), dir));
    plx_context_close(ctx);
}

/* PLEXUS_CALIBRATE and PLEXUS_COST_CACHE from the environment. */
static void test_environment(void **state)
{
    (void)state;
    const char *paths[] = {CPU_BLAS_FILE, SLOW_DIR};
    plx_context_options o;
    plx_context_options_init(&o);
    o.plugin_paths = paths;
    o.n_plugin_paths = 2;
    o.no_default_dirs = 1;
    setenv("PLEXUS_CALIBRATE", "yes", 1);
    plx_context *ctx = NULL;
    assert_int_equal(plx_context_open(&o, &ctx), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(NULL), "PLEXUS_CALIBRATE='yes'"));
    setenv("PLEXUS_CALIBRATE", "1", 1);
    setenv("PLEXUS_COST_CACHE", cache, 1);
    unlink(cache);
    assert_int_equal(plx_context_open(&o, &ctx), PLX_OK);
    assert_string_equal(add_on(ctx), "cpu_blas");
    plx_cost_cache_info info = {.struct_size = sizeof info};
    assert_int_equal(plx_cost_cache_info_get(ctx, &info), PLX_OK);
    assert_int_equal(info.calibrate, 1);
    assert_string_equal(info.path, cache);
    assert_int_equal(plx_cost_cache_save(ctx), PLX_OK);
    plx_context_close(ctx);
    unsetenv("PLEXUS_CALIBRATE");
    unsetenv("PLEXUS_COST_CACHE");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_backend_loses_by_measurement),
        cmocka_unit_test(test_ranking_overrides_measurement),
        cmocka_unit_test(test_cache_round_trip),
        cmocka_unit_test(test_corrupt_cache_ignored_and_rebuilt),
        cmocka_unit_test(test_stale_and_bad_entries),
        cmocka_unit_test(test_save_paths),
        cmocka_unit_test(test_environment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
