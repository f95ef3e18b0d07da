/*
 * test_loader.c — the plugin loader and the router, against deliberately
 * broken and third-party-style plugins (tests/plugins/broken/, built into
 * PLX_TEST_BAD_PLUGIN_DIR/<name>/ by tests/plugins/plugins.mk).
 *
 * Each refusal is checked by its exact reason string, and each test also
 * checks that whatever did load still works. Routing tests use "planted"
 * (a cheap-claiming host backend) and "devmem" (a backend with its own
 * memory) next to cpu_blas.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../abi/plexus_plugin.h"
#include "../test_util.h"

#define TP_DIR(name) PLX_TEST_BAD_PLUGIN_DIR "/" name
#define TP_FILE(dir, name) PLX_TEST_BAD_PLUGIN_DIR "/" dir "/libplexus-" name ".so"
#define CPU_BLAS_FILE PLX_TEST_PLUGIN_DIR "/libplexus-cpu_blas.so"
#define SHUTDOWN_LOG PLX_TEST_BUILD_DIR "/test_loader_shutdown.log"

/* ---- helpers -------------------------------------------------------------- */

/* Everything the context logs, one "level: message" line each. */
typedef struct log_capture {
    pthread_mutex_t lock;
    char text[32768];
    size_t used;
} log_capture;

static log_capture logs = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void capture_log(void *user, int level, const char *message)
{
    log_capture *c = user;
    pthread_mutex_lock(&c->lock);
    if (c->used < sizeof c->text) {
        int n = snprintf(c->text + c->used, sizeof c->text - c->used, "%d: %s\n", level, message);
        if (n > 0)
            c->used += (size_t)n < sizeof c->text - c->used ? (size_t)n : sizeof c->text - c->used - 1;
    }
    pthread_mutex_unlock(&c->lock);
}

static void logs_reset(void)
{
    pthread_mutex_lock(&logs.lock);
    logs.text[0] = '\0';
    logs.used = 0;
    pthread_mutex_unlock(&logs.lock);
}

static void assert_logged(const char *needle)
{
    if (strstr(logs.text, needle) == NULL)
        fail_msg("log does not contain \"%s\"; log was:\n%s", needle, logs.text);
}

static void assert_not_logged(const char *needle)
{
    if (strstr(logs.text, needle) != NULL)
        fail_msg("log contains \"%s\"; log was:\n%s", needle, logs.text);
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (haystack == NULL || strstr(haystack, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", haystack ? haystack : "(null)", needle);
}

static void clear_env(void)
{
    unsetenv("PLEXUS_PLUGIN_PATH");
    unsetenv("PLEXUS_BACKENDS");
    unsetenv("PLEXUS_STRICT");
    unsetenv("PLEXUS_NUM_THREADS");
    unsetenv("PLEXUS_ALLOW_INSECURE_PLUGINS");
    unsetenv("PLEXUS_LOG_LEVEL");
    unsetenv("PLX_TEST_SHUTDOWN_LOG");
}

/* Options that see exactly `paths`: no environment, no default dirs; logs
 * (INFO and up) go to `logs`. */
static plx_context_options test_options(const char *const *paths, size_t n)
{
    plx_context_options o;
    plx_context_options_init(&o);
    o.plugin_paths = paths;
    o.n_plugin_paths = n;
    o.ignore_env = 1;
    o.no_default_dirs = 1;
    o.num_threads = 2;
    o.log_fn = capture_log;
    o.log_user = &logs;
    o.log_level = PLX_LOG_INFO;
    return o;
}

static plx_context *open_opts(const plx_context_options *o)
{
    logs_reset();
    plx_context *ctx = NULL;
    plx_status st = plx_context_open(o, &ctx);
    if (st != PLX_OK)
        fail_msg("plx_context_open: %s: %s", plx_status_name(st), plx_last_error(NULL));
    assert_non_null(ctx);
    return ctx;
}

static plx_context *open_paths(const char *const *paths, size_t n, const char *backends, int strict)
{
    plx_context_options o = test_options(paths, n);
    o.backends = backends;
    o.strict = strict;
    return open_opts(&o);
}

/* The record of the plugin file at `path` (compared after realpath). */
static plx_plugin_info plugin_at(const plx_context *ctx, const char *path)
{
    char want[PATH_MAX];
    if (realpath(path, want) == NULL)
        snprintf(want, sizeof want, "%s", path);
    for (size_t i = 0; i < plx_plugin_count(ctx); i++) {
        plx_plugin_info info = {.struct_size = sizeof info};
        assert_int_equal(plx_plugin_get(ctx, i, &info), PLX_OK);
        if (strcmp(info.path, want) == 0)
            return info;
    }
    fail_msg("no plugin record for %s (%zu records)", want, plx_plugin_count(ctx));
    plx_plugin_info none = {0};
    return none;
}

static void expect_refused(const plx_context *ctx, const char *path, const char *reason)
{
    plx_plugin_info info = plugin_at(ctx, path);
    if (info.status != PLX_PLUGIN_REFUSED)
        fail_msg("%s: expected refused (%s), but it loaded", path, reason);
    if (strcmp(info.reason, reason) != 0)
        fail_msg("%s: reason\n  got  \"%s\"\n  want \"%s\"", path, info.reason, reason);
    assert_int_equal(info.backend_index, -1);
}

static plx_plugin_info expect_loaded(const plx_context *ctx, const char *path, const char *name)
{
    plx_plugin_info info = plugin_at(ctx, path);
    if (info.status != PLX_PLUGIN_LOADED)
        fail_msg("%s: expected loaded, refused: %s", path, info.reason);
    assert_string_equal(info.reason, "");
    assert_string_equal(info.name, name);
    return info;
}

static int backend_index(const plx_context *ctx, const char *name)
{
    for (size_t i = 0; i < plx_backend_count(ctx); i++) {
        plx_backend_info b = {.struct_size = sizeof b};
        assert_int_equal(plx_backend_get(ctx, i, &b), PLX_OK);
        if (strcmp(b.name, name) == 0)
            return (int)i;
    }
    return -1;
}

static const int64_t shape23[2] = {2, 3};
static const int64_t shape3[1] = {3};
static const float va[6] = {1.5f, -2.0f, 3.25f, -4.0f, 0.0f, 6.5f};
static const float vb[6] = {-0.5f, 2.5f, 1.0f, 8.0f, -3.0f, 0.25f};
static const float vc[3] = {10.0f, 20.0f, 30.0f};

/* Runs a unary or binary op, checks it ran on `backend` and matches
 * `want` (6 values); frees the result. */
static void run_check(plx_context *ctx, const char *op, plx_tensor *a, plx_tensor *b, const char *backend,
                      const float *want)
{
    plx_tensor *in[2] = {a, b};
    plx_tensor *out = NULL;
    tu_run(ctx, op, NULL, in, b != NULL ? 2 : 1, &out, 1);
    assert_non_null(out);
    if (strcmp(plx_last_backend(ctx), backend) != 0)
        fail_msg("%s ran on '%s', expected '%s'", op, plx_last_backend(ctx), backend);
    assert_int_equal(plx_tensor_numel(out), 6);
    tu_assert_close(tu_f32(out), want, 6, 0.0f, 0.0f, op);
    plx_tensor_free(out);
}

static void want_binary(const char *op, const float *a, const float *b, float *y)
{
    for (int i = 0; i < 6; i++) {
        float x = a[i], z = b != NULL ? b[i % (b == vc ? 3 : 6)] : 0.0f;
        if (strcmp(op, "core.add") == 0)
            y[i] = x + z;
        else if (strcmp(op, "core.sub") == 0)
            y[i] = x - z;
        else if (strcmp(op, "core.mul") == 0)
            y[i] = x * z;
        else if (strcmp(op, "core.neg") == 0)
            y[i] = -x;
        else if (strcmp(op, "core.relu") == 0)
            y[i] = x > 0.0f ? x : 0.0f;
        else
            fail_msg("want_binary: %s", op);
    }
}

/* Checks `op` on the standard inputs (b: NULL, "same" or "bcast"). */
static void check_op(plx_context *ctx, const char *op, const char *b_kind, const char *backend)
{
    plx_tensor *a = tu_from_f32(ctx, 2, shape23, va);
    plx_tensor *b = NULL;
    const float *bv = NULL;
    if (b_kind != NULL && strcmp(b_kind, "same") == 0) {
        b = tu_from_f32(ctx, 2, shape23, vb);
        bv = vb;
    } else if (b_kind != NULL) {
        b = tu_from_f32(ctx, 1, shape3, vc);
        bv = vc;
    }
    float want[6];
    want_binary(op, va, bv, want);
    run_check(ctx, op, a, b, backend, want);
    plx_tensor_free(a);
    plx_tensor_free(b);
}

static const char *read_text(const char *path)
{
    static char buf[4096];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void shutdown_log_start(void)
{
    unlink(SHUTDOWN_LOG);
    setenv("PLX_TEST_SHUTDOWN_LOG", SHUTDOWN_LOG, 1);
}

static void shutdown_log_stop(void)
{
    unsetenv("PLX_TEST_SHUTDOWN_LOG");
    unlink(SHUTDOWN_LOG);
}

static int setup(void **state)
{
    (void)state;
    clear_env();
    return 0;
}

/* ---- baseline ------------------------------------------------------------- */

static void test_cpu_blas_baseline(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 1, NULL, 0);
    assert_int_equal(plx_plugin_count(ctx), 1);
    plx_plugin_info info = expect_loaded(ctx, CPU_BLAS_FILE, "cpu_blas");
    assert_int_equal(info.abi_major, PLX_ABI_MAJOR);
    assert_int_equal(info.abi_minor, PLX_ABI_MINOR);
    assert_int_equal(info.backend_index, 0);
    assert_int_equal(plx_backend_count(ctx), 1);
    assert_string_equal(plx_last_backend(ctx), "");
    check_op(ctx, "core.add", "same", "cpu_blas");
    assert_logged("1 plugin loaded (cpu_blas), 0 refused, 0 disabled");
    plx_context_close(ctx);
}

/* The same file reached twice (its directory and the file itself, or a
 * path with a detour) is one record. */
static void test_same_file_examined_once(void **state)
{
    const char *dir_only[] = {PLX_TEST_PLUGIN_DIR};
    plx_context *ctx = open_paths(dir_only, 1, NULL, 0);
    size_t n = plx_plugin_count(ctx);
    assert_true(n >= 1);
    plx_context_close(ctx);
    const char *paths[] = {PLX_TEST_PLUGIN_DIR, CPU_BLAS_FILE, PLX_TEST_PLUGIN_DIR "/../plugins/libplexus-cpu_blas.so"};
    ctx = open_paths(paths, 3, NULL, 0);
    assert_int_equal(plx_plugin_count(ctx), n);
    expect_loaded(ctx, CPU_BLAS_FILE, "cpu_blas");
    plx_context_close(ctx);
}

/* ---- (a) no entry symbol --------------------------------------------------- */

static void test_no_entry(void **state)
{
    const char *paths[] = {TP_DIR("no_entry"), CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    assert_int_equal(plx_plugin_count(ctx), 2);
    expect_refused(ctx, TP_FILE("no_entry", "no_entry"), "not a plexus plugin: no symbol plx_plugin_entry");
    plx_plugin_info info = plugin_at(ctx, TP_FILE("no_entry", "no_entry"));
    assert_string_equal(info.name, "");
    assert_int_equal(info.abi_major, 0);
    expect_loaded(ctx, CPU_BLAS_FILE, "cpu_blas");
    check_op(ctx, "core.add", "same", "cpu_blas");
    assert_logged("1 plugin loaded (cpu_blas), 1 refused");
    plx_context_close(ctx);
}

/* ---- (b) wrong ABI major --------------------------------------------------- */

static void test_abi_major(void **state)
{
    const char *paths[] = {TP_DIR("abi_major"), CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    char want[128];
    snprintf(want, sizeof want, "ABI mismatch: plugin %d.3, runtime %d.%d", PLX_ABI_MAJOR + 1, PLX_ABI_MAJOR,
             PLX_ABI_MINOR);
    expect_refused(ctx, TP_FILE("abi_major", "abi_major"), want);
    plx_plugin_info info = plugin_at(ctx, TP_FILE("abi_major", "abi_major"));
    /* The fixed fields are recorded; nothing past them was read. */
    assert_int_equal(info.abi_major, PLX_ABI_MAJOR + 1);
    assert_int_equal(info.abi_minor, 3);
    assert_string_equal(info.name, "");
    assert_string_equal(info.version, "");
    assert_int_equal(plx_backend_count(ctx), 1);
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);
}

/* ---- (c) older and newer minors -------------------------------------------- */

static void test_old_minor_loads_and_runs(void **state)
{
    const char *paths[] = {TP_DIR("old_minor")};
    plx_context *ctx = open_paths(paths, 1, NULL, 0);
    plx_plugin_info info = expect_loaded(ctx, TP_FILE("old_minor", "old_minor"), "old_minor");
    assert_int_equal(info.abi_major, PLX_ABI_MAJOR);
    assert_int_equal(info.abi_minor, 0);
    assert_string_equal(info.version, "0.9.0");
    assert_true(info.backend_index >= 0);
    plx_device_desc dev = {.struct_size = sizeof dev};
    assert_int_equal(plx_device_get(ctx, (size_t)info.backend_index, 0, &dev), PLX_OK);
    assert_string_equal(dev.name, "oldcpu");
    assert_int_equal(dev.caps, PLX_DEVICE_CAP_HOST_MEMORY);
    assert_int_equal(dev.dl_device.device_type, PLX_DL_CPU);
    check_op(ctx, "core.neg", NULL, "old_minor");
    check_op(ctx, "core.add", "same", "old_minor");
    /* It declines broadcasting; alone, nobody can take it. */
    plx_tensor *a = tu_from_f32(ctx, 2, shape23, va), *c = tu_from_f32(ctx, 1, shape3, vc);
    plx_tensor *in[2] = {a, c}, *out = NULL;
    assert_int_equal(plx_op_run(ctx, "core.add", NULL, in, 2, &out, 1), PLX_UNSUPPORTED);
    assert_null(out);
    assert_contains(plx_last_error(ctx), "old_minor: only same-shape inputs");
    plx_tensor_free(a);
    plx_tensor_free(c);
    plx_context_close(ctx);

    /* Ranked first next to cpu_blas: it runs what it takes, cpu_blas the rest. */
    const char *both[] = {TP_DIR("old_minor"), CPU_BLAS_FILE};
    ctx = open_paths(both, 2, "old_minor,cpu_blas", 0);
    check_op(ctx, "core.add", "same", "old_minor");
    check_op(ctx, "core.add", "bcast", "cpu_blas");
    check_op(ctx, "core.mul", "same", "cpu_blas");
    plx_context_close(ctx);
}

static void test_new_minor_loads_and_runs(void **state)
{
    const char *paths[] = {TP_DIR("new_minor")};
    plx_context *ctx = open_paths(paths, 1, NULL, 0);
    plx_plugin_info info = expect_loaded(ctx, TP_FILE("new_minor", "new_minor"), "new_minor");
    assert_int_equal(info.abi_major, PLX_ABI_MAJOR);
    assert_int_equal(info.abi_minor, PLX_ABI_MINOR + 5);
    assert_string_equal(info.version, "2.0.0");
    /* The plugin saw the host table's real size and fell back. */
    char want[160];
    snprintf(want, sizeof want, "new_minor: host table is %zu bytes, ABI %d.%d: no alloc_scratch, using malloc",
             sizeof(plx_host_api), PLX_ABI_MAJOR, PLX_ABI_MINOR);
    assert_logged(want);
    plx_device_desc dev = {.struct_size = sizeof dev};
    assert_int_equal(plx_device_get(ctx, (size_t)info.backend_index, 0, &dev), PLX_OK);
    assert_string_equal(dev.name, "newcpu");
    check_op(ctx, "core.neg", NULL, "new_minor");
    check_op(ctx, "core.sub", "same", "new_minor");
    plx_context_close(ctx);
}

/* ---- (d) init failure, (e) unusable here ------------------------------------ */

static void test_init_fail(void **state)
{
    shutdown_log_start();
    const char *paths[] = {TP_DIR("init_fail"), CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    expect_refused(ctx, TP_FILE("init_fail", "init_fail"),
                   "init failed: PLX_INTERNAL: frobnicator table is corrupt (checksum deadbeef)");
    plx_plugin_info info = plugin_at(ctx, TP_FILE("init_fail", "init_fail"));
    assert_string_equal(info.name, "init_fail");
    assert_int_equal(plx_backend_count(ctx), 1);
    assert_int_equal(backend_index(ctx, "init_fail"), -1);
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);
    /* (its shutdown aborts: reaching here proves it was never called) */
    assert_string_equal(read_text(SHUTDOWN_LOG), "");
    shutdown_log_stop();
}

static void test_unusable(void **state)
{
    const char *paths[] = {TP_DIR("unusable"), CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    expect_refused(ctx, TP_FILE("unusable", "unusable"), "unusable here: no frobnicator device");
    assert_string_equal(plugin_at(ctx, TP_FILE("unusable", "unusable")).name, "unusable");
    check_op(ctx, "core.add", "same", "cpu_blas");
    assert_logged("refused: unusable here: no frobnicator device");
    plx_context_close(ctx);
}

/* ---- (f) NULL optional slots ----------------------------------------------- */

static void test_null_slots(void **state)
{
    const char *paths[] = {TP_DIR("null_slots")};
    plx_context *ctx = open_paths(paths, 1, NULL, 0);
    plx_plugin_info info = expect_loaded(ctx, TP_FILE("null_slots", "null_slots"), "null_slots");
    assert_string_equal(info.version, "");
    assert_string_equal(info.description, "");
    check_op(ctx, "core.mul", "same", "null_slots");
    check_op(ctx, "core.neg", NULL, "null_slots");
    /* No support query: the router offers it a broadcasting mul, which its
     * run() refuses without a message: the status text stands in. */
    plx_tensor *a = tu_from_f32(ctx, 2, shape23, va), *c = tu_from_f32(ctx, 1, shape3, vc);
    plx_tensor *in[2] = {a, c}, *out = NULL;
    assert_int_equal(plx_op_run(ctx, "core.mul", NULL, in, 2, &out, 1), PLX_UNSUPPORTED);
    assert_null(out);
    assert_string_equal(plx_last_error(ctx),
                        "core.mul(f32[2,3], f32[3]) on backend null_slots (plugin null_slots, device nullcpu): "
                        "unsupported");
    /* No estimate_ns: the runtime's own estimate is used. */
    char buf[2048];
    assert_int_equal(plx_op_explain(ctx, "core.mul", NULL, in, 2, buf, sizeof buf), PLX_OK);
    assert_contains(buf, "null_slots");
    assert_contains(buf, "-> null_slots nullcpu");
    plx_tensor_free(a);
    plx_tensor_free(c);
    plx_context_close(ctx);
}

/* ---- (g) not ELF, (h) missing dependency ---------------------------------- */

static void test_not_elf(void **state)
{
    const char *paths[] = {TP_DIR("notelf"), CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    expect_refused(ctx, TP_FILE("notelf", "notelf"), "not an ELF shared object");
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);
}

static void test_missing_dependency(void **state)
{
    const char *paths[] = {TP_DIR("missing_dep"), CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    plx_plugin_info info = plugin_at(ctx, TP_FILE("missing_dep", "missing_dep"));
    assert_int_equal(info.status, PLX_PLUGIN_REFUSED);
    /* "dlopen failed: " + dlerror(), which names the missing library. */
    if (strncmp(info.reason, "dlopen failed: ", 15) != 0)
        fail_msg("reason \"%s\" does not start with \"dlopen failed: \"", info.reason);
    assert_contains(info.reason, "libplexus_testdep.so: cannot open shared object file");
    assert_string_equal(info.name, "");
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);
}

/* ---- (i) kernel errors reach the caller ------------------------------------ */

static void test_kernel_error(void **state)
{
    const char *paths[] = {TP_DIR("kernel_error")};
    plx_context *ctx = open_paths(paths, 1, NULL, 0);
    expect_loaded(ctx, TP_FILE("kernel_error", "kernel_error"), "kernel_error");
    plx_tensor *a = tu_from_f32(ctx, 2, shape23, va), *b = tu_from_f32(ctx, 2, shape23, vb);
    plx_tensor *in[2] = {a, b}, *out = NULL;
    for (int round = 0; round < 2; round++) { /* the second one takes the cached route */
        assert_int_equal(plx_op_run(ctx, "core.add", NULL, in, 2, &out, 1), PLX_INVALID_ARGUMENT);
        assert_null(out);
        assert_string_equal(plx_last_error(ctx),
                            "core.add(f32[2,3], f32[2,3]) on backend kernel_error (plugin kernel_error, device "
                            "kecpu): kernel_error: refusing on purpose (6 elements)");
        assert_string_equal(plx_last_backend(ctx), "");
    }
    /* A bare status: the previous message must not leak into this one. */
    assert_int_equal(plx_op_run(ctx, "core.neg", NULL, in, 1, &out, 1), PLX_INTERNAL);
    assert_null(out);
    assert_string_equal(plx_last_error(ctx),
                        "core.neg(f32[2,3]) on backend kernel_error (plugin kernel_error, device kecpu): "
                        "internal error");
    /* A caller-made output is left as it was (zeros). */
    plx_tensor *given = tu_tensor(ctx, PLX_F32, 2, shape23);
    assert_int_equal(plx_op_run(ctx, "core.add", NULL, in, 2, &given, 1), PLX_INVALID_ARGUMENT);
    for (int i = 0; i < 6; i++)
        assert_true(tu_f32(given)[i] == 0.0f);
    plx_tensor_free(given);
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_context_close(ctx);
}

/* ---- (j) duplicates -------------------------------------------------------- */

static void test_duplicates(void **state)
{
    shutdown_log_start();
    const char *paths[] = {TP_DIR("dup")};
    plx_context *ctx = open_paths(paths, 1, NULL, 0);
    assert_int_equal(plx_plugin_count(ctx), 3);
    char a_path[PATH_MAX], want[PATH_MAX + 128];
    assert_non_null(realpath(TP_FILE("dup", "dup_a"), a_path));
    plx_plugin_info a = expect_loaded(ctx, TP_FILE("dup", "dup_a"), "dup");
    assert_string_equal(a.version, "dup_a");
    snprintf(want, sizeof want, "duplicate: plugin dup is already loaded from %s", a_path);
    expect_refused(ctx, TP_FILE("dup", "dup_b"), want);
    snprintf(want, sizeof want, "duplicate: backend dup is already provided by %s", a_path);
    expect_refused(ctx, TP_FILE("dup", "dup_c"), want);
    assert_int_equal(plx_backend_count(ctx), 1);
    assert_int_equal(backend_index(ctx, "dup_b"), -1);
    /* dup_c was initialized before its backend clashed: shut down at once.
     * dup_b never got that far. */
    assert_string_equal(read_text(SHUTDOWN_LOG), "dup_c\n");
    check_op(ctx, "core.neg", NULL, "dup");
    plx_context_close(ctx);
    assert_string_equal(read_text(SHUTDOWN_LOG), "dup_c\ndup_a\n");
    shutdown_log_stop();
}

/* ---- (k) insecure locations ------------------------------------------------ */

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    FILE *out = fopen(to, "wb");
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

static plx_plugin_info load_one(const char *path, int allow, int use_env, plx_context **out)
{
    const char *paths[] = {path};
    plx_context_options o = test_options(paths, 1);
    o.allow_insecure_plugins = allow;
    o.ignore_env = !use_env;
    plx_context *ctx = open_opts(&o);
    assert_int_equal(plx_plugin_count(ctx), 1);
    plx_plugin_info info = {.struct_size = sizeof info};
    assert_int_equal(plx_plugin_get(ctx, 0, &info), PLX_OK);
    *out = ctx;
    return info;
}

static void expect_insecure(const char *path, const char *reason)
{
    plx_context *ctx;
    plx_plugin_info info = load_one(path, 0, 0, &ctx);
    assert_int_equal(info.status, PLX_PLUGIN_REFUSED);
    if (strcmp(info.reason, reason) != 0)
        fail_msg("reason\n  got  \"%s\"\n  want \"%s\"", info.reason, reason);
    assert_string_equal(info.name, ""); /* refused before dlopen */
    plx_context_close(ctx);
    /* Opting in loads it, and it works. */
    info = load_one(path, 1, 0, &ctx);
    if (info.status != PLX_PLUGIN_LOADED)
        fail_msg("allow_insecure_plugins = 1: still refused: %s", info.reason);
    check_op(ctx, "core.neg", NULL, "null_slots");
    plx_context_close(ctx);
    /* So does the environment variable, unless the environment is ignored. */
    setenv("PLEXUS_ALLOW_INSECURE_PLUGINS", "1", 1);
    info = load_one(path, 0, 1, &ctx);
    assert_int_equal(info.status, PLX_PLUGIN_LOADED);
    plx_context_close(ctx);
    info = load_one(path, 0, 0, &ctx);
    assert_int_equal(info.status, PLX_PLUGIN_REFUSED);
    plx_context_close(ctx);
    unsetenv("PLEXUS_ALLOW_INSECURE_PLUGINS");
}

static void test_insecure_locations(void **state)
{
    char tmpl[] = PLX_TEST_BUILD_DIR "/test_loader_XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char dir[PATH_MAX], file[PATH_MAX + 64], want[3 * PATH_MAX];
    assert_non_null(realpath(tmpl, dir));
    snprintf(file, sizeof file, "%s/libplexus-null_slots.so", dir);
    copy_file(TP_FILE("null_slots", "null_slots"), file);
    const char *hint = "(set PLEXUS_ALLOW_INSECURE_PLUGINS=1 to allow)";

    assert_int_equal(chmod(file, 0644), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    plx_context *ctx;
    plx_plugin_info info = load_one(dir, 0, 0, &ctx);
    if (info.status != PLX_PLUGIN_LOADED)
        fail_msg("a 0755 directory with a 0644 file is refused: %s", info.reason);
    plx_context_close(ctx);

    assert_int_equal(chmod(dir, 0777), 0);
    snprintf(want, sizeof want, "insecure: directory %s is world-writable %s", dir, hint);
    expect_insecure(dir, want);
    expect_insecure(file, want); /* a file named explicitly: its directory is checked too */
    assert_int_equal(chmod(dir, 0775), 0);
    snprintf(want, sizeof want, "insecure: directory %s is group-writable %s", dir, hint);
    expect_insecure(dir, want);

    assert_int_equal(chmod(dir, 0755), 0);
    assert_int_equal(chmod(file, 0666), 0);
    snprintf(want, sizeof want, "insecure: file %s is world-writable %s", file, hint);
    expect_insecure(dir, want);
    assert_int_equal(chmod(file, 0664), 0);
    snprintf(want, sizeof want, "insecure: file %s is group-writable %s", file, hint);
    expect_insecure(file, want);

    assert_int_equal(unlink(file), 0);
    assert_int_equal(rmdir(dir), 0);
}

/* ---- (l) missing required slot, and other malformed tables ----------------- */

static void test_missing_slot(void **state)
{
    shutdown_log_start();
    const char *paths[] = {TP_DIR("missing_slot"), CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    expect_refused(ctx, TP_FILE("missing_slot", "missing_slot"), "backend missing_slot: required slot run is NULL");
    assert_int_equal(backend_index(ctx, "missing_slot"), -1);
    /* init had run; the refusal shut it down (and freed its state: LSan). */
    assert_string_equal(read_text(SHUTDOWN_LOG), "missing_slot\n");
    check_op(ctx, "core.neg", NULL, "cpu_blas");
    plx_context_close(ctx);
    assert_string_equal(read_text(SHUTDOWN_LOG), "missing_slot\n");
    shutdown_log_stop();
}

static void test_malformed_plugins(void **state)
{
    shutdown_log_start();
    const char *paths[] = {TP_DIR("entry_null"), TP_DIR("tiny_desc"), TP_DIR("bad_name"),
                           TP_DIR("zero_devices"), TP_DIR("no_copy"), TP_DIR("short_table"),
                           CPU_BLAS_FILE};
    plx_context *ctx = open_paths(paths, 7, NULL, 0);
    assert_int_equal(plx_plugin_count(ctx), 7);
    expect_refused(ctx, TP_FILE("entry_null", "entry_null"), "plx_plugin_entry returned NULL");
    expect_refused(ctx, TP_FILE("tiny_desc", "tiny_desc"), "descriptor struct_size 4 is too small");
    expect_refused(ctx, TP_FILE("bad_name", "bad_name"), "plugin name 'Bad-Name' is not [a-z0-9_]{1,64}");
    expect_refused(ctx, TP_FILE("zero_devices", "zero_devices"), "backend zero_devices reports 0 devices");
    expect_refused(ctx, TP_FILE("no_copy", "no_copy"),
                   "backend no_copy: device fake0 has its own memory but buffer_alloc/buffer_free/copy are missing");
    char want[160];
    snprintf(want, sizeof want, "backend table too small (%zu bytes, ABI %d.0 needs %zu)",
             offsetof(plx_backend_api, run), PLX_ABI_MAJOR, offsetof(plx_backend_api, run) + sizeof(void *));
    expect_refused(ctx, TP_FILE("short_table", "short_table"), want);
    assert_int_equal(plx_backend_count(ctx), 1);
    /* Those refused after init were shut down, in load order. */
    assert_string_equal(read_text(SHUTDOWN_LOG), "zero_devices\nno_copy\nshort_table\n");
    check_op(ctx, "core.neg", NULL, "cpu_blas");
    assert_logged("1 plugin loaded (cpu_blas), 6 refused, 0 disabled");
    plx_context_close(ctx);
    shutdown_log_stop();
}

/* ---- (m) routing: cost, ranking, strict ------------------------------------ */

static void test_routing_by_cost(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE, TP_DIR("planted")};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    expect_loaded(ctx, TP_FILE("planted", "planted"), "planted");
    plx_backend_info bi = {.struct_size = sizeof bi};
    assert_int_equal(plx_backend_get(ctx, (size_t)backend_index(ctx, "planted"), &bi), PLX_OK);
    assert_int_equal(bi.rank, -1);
    assert_int_equal(bi.n_ops, 1);
    assert_string_equal(plx_backend_op_name(ctx, (size_t)backend_index(ctx, "planted"), 0), "core.add");
    /* Cheapest wins; what it declines or lacks goes to cpu_blas. */
    check_op(ctx, "core.add", "same", "planted");
    check_op(ctx, "core.add", "bcast", "cpu_blas");
    check_op(ctx, "core.mul", "same", "cpu_blas");
    check_op(ctx, "core.add", "same", "planted"); /* cached decision */
    plx_context_close(ctx);
}

static void test_routing_ranked(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE, TP_DIR("planted")};
    plx_context *ctx = open_paths(paths, 2, "cpu_blas,planted", 0);
    plx_backend_info bi = {.struct_size = sizeof bi};
    assert_int_equal(plx_backend_get(ctx, (size_t)backend_index(ctx, "cpu_blas"), &bi), PLX_OK);
    assert_int_equal(bi.rank, 0);
    assert_int_equal(plx_backend_get(ctx, (size_t)backend_index(ctx, "planted"), &bi), PLX_OK);
    assert_int_equal(bi.rank, 1);
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);

    ctx = open_paths(paths, 2, "planted,cpu_blas", 0);
    check_op(ctx, "core.add", "same", "planted");
    check_op(ctx, "core.mul", "same", "cpu_blas");
    plx_context_close(ctx);

    /* The same through PLEXUS_BACKENDS... */
    setenv("PLEXUS_BACKENDS", "cpu_blas,planted", 1);
    plx_context_options o = test_options(paths, 2);
    o.ignore_env = 0;
    ctx = open_opts(&o);
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);
    /* ...which options.backends overrides... */
    o.backends = "planted,cpu_blas";
    ctx = open_opts(&o);
    check_op(ctx, "core.add", "same", "planted");
    plx_context_close(ctx);
    /* ...and ignore_env ignores. */
    ctx = open_paths(paths, 2, NULL, 0);
    check_op(ctx, "core.add", "same", "planted");
    plx_context_close(ctx);
    unsetenv("PLEXUS_BACKENDS");
}

static void test_routing_strict(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE, TP_DIR("planted")};
    plx_context *ctx = open_paths(paths, 2, "planted,cpu_blas", 1);
    check_op(ctx, "core.add", "same", "planted");
    check_op(ctx, "core.mul", "same", "cpu_blas"); /* planted does not implement it: no fallback involved */
    plx_tensor *a = tu_from_f32(ctx, 2, shape23, va), *c = tu_from_f32(ctx, 1, shape3, vc);
    plx_tensor *in[2] = {a, c}, *out = NULL;
    assert_int_equal(plx_op_run(ctx, "core.add", NULL, in, 2, &out, 1), PLX_UNSUPPORTED);
    assert_null(out);
    assert_string_equal(plx_last_error(ctx),
                        "core.add(f32[2,3], f32[3]): strict mode: planted declines it (planted: only same-shape "
                        "inputs (no broadcasting)); would fall back to cpu_blas");
    char buf[2048];
    assert_int_equal(plx_op_explain(ctx, "core.add", NULL, in, 2, buf, sizeof buf), PLX_UNSUPPORTED);
    assert_contains(buf, "strict mode: planted (ranked first) declines");
    plx_tensor_free(a);
    plx_tensor_free(c);
    plx_context_close(ctx);

    /* Not strict: a logged fallback. */
    ctx = open_paths(paths, 2, "planted,cpu_blas", 0);
    check_op(ctx, "core.add", "bcast", "cpu_blas");
    assert_logged("core.add(f32[2,3], f32[3]): falls back from planted (planted: only same-shape inputs (no "
                  "broadcasting)) to cpu_blas");
    plx_context_close(ctx);

    /* PLEXUS_STRICT=1 turns it on when options.strict is 0 and the
     * environment is read; a bad value fails the open. */
    setenv("PLEXUS_STRICT", "1", 1);
    plx_context_options o = test_options(paths, 2);
    o.ignore_env = 0;
    o.backends = "planted,cpu_blas";
    ctx = open_opts(&o);
    a = tu_from_f32(ctx, 2, shape23, va);
    c = tu_from_f32(ctx, 1, shape3, vc);
    plx_tensor *in2[2] = {a, c};
    assert_int_equal(plx_op_run(ctx, "core.add", NULL, in2, 2, &out, 1), PLX_UNSUPPORTED);
    plx_tensor_free(a);
    plx_tensor_free(c);
    plx_context_close(ctx);
    setenv("PLEXUS_STRICT", "yes", 1);
    plx_context *bad = NULL;
    assert_int_equal(plx_context_open(&o, &bad), PLX_INVALID_ARGUMENT);
    assert_null(bad);
    assert_string_equal(plx_last_error(NULL), "PLEXUS_STRICT='yes' must be 0 or 1");
    unsetenv("PLEXUS_STRICT");
}

/* ---- device memory: copy-in / copy-out ------------------------------------- */

static void test_device_memory_backend(void **state)
{
    const char *paths[] = {TP_DIR("devmem")};
    plx_context *ctx = open_paths(paths, 1, NULL, 0);
    plx_plugin_info info = expect_loaded(ctx, TP_FILE("devmem", "devmem"), "devmem");
    plx_device_desc dev = {.struct_size = sizeof dev};
    assert_int_equal(plx_device_get(ctx, (size_t)info.backend_index, 0, &dev), PLX_OK);
    assert_int_equal(dev.caps & PLX_DEVICE_CAP_HOST_MEMORY, 0);
    assert_int_equal(dev.dl_device.device_type, PLX_DL_EXT_DEV);
    assert_int_equal(dev.kind, PLX_DEVICE_KIND_ACCELERATOR);
    check_op(ctx, "core.add", "same", "devmem"); /* 3 buffers, 2 copies in, 1 out */
    check_op(ctx, "core.relu", NULL, "devmem");  /* 2 buffers, 1 in, 1 out */
    /* Into a caller-made output. */
    plx_tensor *a = tu_from_f32(ctx, 2, shape23, va);
    plx_tensor *given = tu_tensor(ctx, PLX_F32, 2, shape23);
    tu_run(ctx, "core.neg", NULL, &a, 1, &given, 1); /* 2 buffers, 1 in, 1 out */
    float want[6];
    want_binary("core.neg", va, NULL, want);
    tu_assert_close(tu_f32(given), want, 6, 0.0f, 0.0f, "core.neg into a given output");
    /* The router counts copies into the cost. */
    char buf[2048];
    assert_int_equal(plx_op_explain(ctx, "core.neg", NULL, &a, 1, buf, sizeof buf), PLX_OK);
    assert_contains(buf, "devmem");
    assert_contains(buf, "fake0");
    if (strstr(buf, "copies 0.0 us") != NULL)
        fail_msg("explain shows no copy cost for a device with its own memory:\n%s", buf);
    plx_tensor_free(a);
    plx_tensor_free(given);
    plx_context_close(ctx);
    /* Its counters, logged at shutdown: every buffer freed, each copy made
     * once. */
    assert_logged("devmem: stats allocs=7 frees=7 copies_in=4 copies_out=3 runs=3");
    assert_not_logged("leaked");
}

/* Next to cpu_blas: small ops stay on the host (copies cost more than they
 * save); ranked first, a strided input is made compact on the host, then
 * copied in. */
static void test_device_memory_routing(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE, TP_DIR("devmem")};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);
    assert_logged("devmem: stats allocs=0 frees=0 copies_in=0 copies_out=0 runs=0");

    ctx = open_paths(paths, 2, "devmem,cpu_blas", 0);
    /* A transposed view of a 3x2 buffer as a 2x3 tensor. */
    float base[6] = {1, 2, 3, 4, 5, 6}; /* rows of 2: view[i][j] = base[j*2+i] */
    int64_t shape[2] = {2, 3}, strides[2] = {1, 2};
    plx_tensor_desc d = {.data = base, .device = {PLX_DL_CPU, 0}, .ndim = 2, .dtype = PLX_F32, .shape = shape,
                         .strides = strides, .byte_offset = 0};
    plx_tensor *view = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &view), PLX_OK);
    plx_tensor *b = tu_from_f32(ctx, 2, shape23, vb);
    plx_tensor *in[2] = {view, b}, *out = NULL;
    tu_run(ctx, "core.add", NULL, in, 2, &out, 1);
    assert_string_equal(plx_last_backend(ctx), "devmem");
    float want[6];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            want[i * 3 + j] = base[j * 2 + i] + vb[i * 3 + j];
    tu_assert_close(tu_f32(out), want, 6, 0.0f, 0.0f, "strided input on devmem");
    plx_tensor_free(out);
    /* An empty tensor: nothing to copy, still a valid run. */
    int64_t empty_shape[2] = {0, 3};
    plx_tensor *e1 = tu_tensor(ctx, PLX_F32, 2, empty_shape), *e2 = tu_tensor(ctx, PLX_F32, 2, empty_shape);
    plx_tensor *ein[2] = {e1, e2};
    out = NULL;
    tu_run(ctx, "core.add", NULL, ein, 2, &out, 1);
    assert_int_equal(plx_tensor_numel(out), 0);
    plx_tensor_free(out);
    plx_tensor_free(e1);
    plx_tensor_free(e2);
    plx_tensor_free(view);
    plx_tensor_free(b);
    plx_context_close(ctx);
    assert_not_logged("leaked");
    /* add: 3 buffers, 2 copies in, 1 out; the empty add: 3 buffers, no copies. */
    assert_logged("devmem: stats allocs=6 frees=6 copies_in=2 copies_out=1 runs=2");
}

/* ---- paths and environment ------------------------------------------------- */

static void test_explicit_path_missing(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE, "/nonexistent/plexus-test/nowhere"};
    plx_context_options o = test_options(paths, 2);
    plx_context *ctx = NULL;
    assert_int_equal(plx_context_open(&o, &ctx), PLX_NOT_FOUND);
    assert_null(ctx);
    assert_string_equal(plx_last_error(NULL),
                        "options.plugin_paths: plugin path /nonexistent/plexus-test/nowhere: No such file or "
                        "directory");
    /* An empty entry is a bad option, not a missing file. */
    const char *empty[] = {""};
    o = test_options(empty, 1);
    assert_int_equal(plx_context_open(&o, &ctx), PLX_INVALID_ARGUMENT);
    assert_null(ctx);
    assert_string_equal(plx_last_error(NULL), "plx_context_open: plugin_paths[0] is empty");
}

static void test_env_plugin_path(void **state)
{
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    /* "notelf" would name a plugin directory relative to this cwd: it must
     * be ignored, never resolved. */
    assert_int_equal(chdir(PLX_TEST_BAD_PLUGIN_DIR), 0);
    setenv("PLEXUS_PLUGIN_PATH",
           "notelf:" TP_DIR("planted") "::/nonexistent/plexus-env-dir:" CPU_BLAS_FILE, 1);
    plx_context_options o = test_options(NULL, 0);
    o.ignore_env = 0;
    plx_context *ctx = open_opts(&o);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(plx_plugin_count(ctx), 2);
    plx_plugin_info first = {.struct_size = sizeof first};
    assert_int_equal(plx_plugin_get(ctx, 0, &first), PLX_OK);
    assert_string_equal(first.name, "planted");
    expect_loaded(ctx, CPU_BLAS_FILE, "cpu_blas");
    assert_logged("PLEXUS_PLUGIN_PATH: ignoring relative entry 'notelf'");
    assert_logged("PLEXUS_PLUGIN_PATH: plugin path /nonexistent/plexus-env-dir: No such file or directory");
    check_op(ctx, "core.add", "same", "planted");
    plx_context_close(ctx);

    /* Explicit paths come first. */
    const char *paths[] = {CPU_BLAS_FILE};
    o = test_options(paths, 1);
    o.ignore_env = 0;
    ctx = open_opts(&o);
    assert_int_equal(plx_plugin_count(ctx), 2);
    assert_int_equal(plx_plugin_get(ctx, 0, &first), PLX_OK);
    assert_string_equal(first.name, "cpu_blas");
    plx_context_close(ctx);

    /* ignore_env: the variable is not read. */
    ctx = open_paths(paths, 1, NULL, 0);
    assert_int_equal(plx_plugin_count(ctx), 1);
    plx_context_close(ctx);
    unsetenv("PLEXUS_PLUGIN_PATH");
}

static void test_env_backends_restricts(void **state)
{
    setenv("PLEXUS_BACKENDS", "cpu_blas", 1);
    const char *paths[] = {CPU_BLAS_FILE, TP_DIR("planted")};
    plx_context_options o = test_options(paths, 2);
    o.ignore_env = 0;
    plx_context *ctx = open_opts(&o);
    expect_refused(ctx, TP_FILE("planted", "planted"), "disabled: backend planted is not in the backend list 'cpu_blas'");
    assert_int_equal(plx_backend_count(ctx), 1);
    check_op(ctx, "core.add", "same", "cpu_blas");
    /* Disabled is not a failure: logged at INFO, counted apart. */
    assert_logged("1 plugin loaded (cpu_blas), 0 refused, 1 disabled");
    assert_not_logged("2: plugin");
    plx_context_close(ctx);

    /* A name that matches nothing loaded is a warning, not an error. */
    setenv("PLEXUS_BACKENDS", "cpu_blas,nosuch", 1);
    ctx = open_opts(&o);
    assert_logged("backend list names 'nosuch', which is not loaded");
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);
    unsetenv("PLEXUS_BACKENDS");
}

static void test_bad_backend_lists(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE};
    plx_context_options o = test_options(paths, 1);
    o.ignore_env = 0;
    plx_context *ctx = NULL;
    setenv("PLEXUS_BACKENDS", "cpu blas!", 1);
    assert_int_equal(plx_context_open(&o, &ctx), PLX_INVALID_ARGUMENT);
    assert_null(ctx);
    assert_string_equal(plx_last_error(NULL),
                        "PLEXUS_BACKENDS: bad backend list 'cpu blas!': names are [a-z0-9_]+, separated by commas");
    unsetenv("PLEXUS_BACKENDS");
    o.backends = "cpu_blas,,planted";
    assert_int_equal(plx_context_open(&o, &ctx), PLX_INVALID_ARGUMENT);
    assert_string_equal(plx_last_error(NULL),
                        "options.backends: bad backend list 'cpu_blas,,planted': empty or over-long name");
    o.backends = "cpu_blas, cpu_blas";
    assert_int_equal(plx_context_open(&o, &ctx), PLX_INVALID_ARGUMENT);
    assert_string_equal(plx_last_error(NULL), "options.backends: backend 'cpu_blas' is listed twice in 'cpu_blas, cpu_blas'");
    assert_null(ctx);
    /* Spaces around names are fine. */
    o.backends = " planted , cpu_blas ";
    const char *both[] = {CPU_BLAS_FILE, TP_DIR("planted")};
    o.plugin_paths = both;
    o.n_plugin_paths = 2;
    ctx = open_opts(&o);
    check_op(ctx, "core.add", "same", "planted");
    plx_context_close(ctx);
}

/* ---- explain ----------------------------------------------------------------- */

static void test_explain(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE, TP_DIR("planted")};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    plx_tensor *a = tu_from_f32(ctx, 2, shape23, va), *b = tu_from_f32(ctx, 2, shape23, vb);
    plx_tensor *c = tu_from_f32(ctx, 1, shape3, vc);
    char buf[4096];
    plx_tensor *same[2] = {a, b}, *bcast[2] = {a, c};
    assert_int_equal(plx_op_explain(ctx, "core.add", NULL, same, 2, buf, sizeof buf), PLX_OK);
    assert_contains(buf, "core.add(f32[2,3], f32[2,3])");
    assert_contains(buf, "cpu_blas     cpu0     cost");
    assert_contains(buf, "planted      plantcpu cost 0.0 us");
    assert_contains(buf, "-> planted plantcpu (lowest estimated cost)");
    assert_int_equal(plx_op_explain(ctx, "core.add", NULL, bcast, 2, buf, sizeof buf), PLX_OK);
    assert_contains(buf, "planted      plantcpu declines: planted: only same-shape inputs (no broadcasting)");
    assert_contains(buf, "-> cpu_blas cpu0");
    assert_int_equal(plx_op_explain(ctx, "core.mul", NULL, same, 2, buf, sizeof buf), PLX_OK);
    assert_contains(buf, "planted      does not implement core.mul");
    /* Explaining runs nothing. */
    assert_string_equal(plx_last_backend(ctx), "");
    /* A bad call: the validation message, and its status. */
    assert_int_equal(plx_op_explain(ctx, "core.add", NULL, same, 1, buf, sizeof buf), PLX_INVALID_ARGUMENT);
    assert_contains(buf, "core.add: takes 2 inputs, got 1");
    /* A tiny buffer is truncated, still terminated. */
    char tiny[8];
    assert_int_equal(plx_op_explain(ctx, "core.add", NULL, same, 2, tiny, sizeof tiny), PLX_OK);
    assert_int_equal(strlen(tiny), 7);
    plx_tensor_free(a);
    plx_tensor_free(b);
    plx_tensor_free(c);
    plx_context_close(ctx);

    /* Only planted: nobody can take a broadcast add or a mul. */
    const char *only[] = {TP_DIR("planted")};
    ctx = open_paths(only, 1, NULL, 0);
    a = tu_from_f32(ctx, 2, shape23, va);
    c = tu_from_f32(ctx, 1, shape3, vc);
    plx_tensor *in[2] = {a, c};
    assert_int_equal(plx_op_explain(ctx, "core.mul", NULL, in, 2, buf, sizeof buf), PLX_UNSUPPORTED);
    assert_contains(buf, "-> no backend can run it");
    plx_tensor *out = NULL;
    assert_int_equal(plx_op_run(ctx, "core.mul", NULL, in, 2, &out, 1), PLX_UNSUPPORTED);
    assert_string_equal(plx_last_error(ctx), "core.mul(f32[2,3], f32[3]): no loaded backend implements it");
    assert_int_equal(plx_op_run(ctx, "core.add", NULL, in, 2, &out, 1), PLX_UNSUPPORTED);
    assert_string_equal(plx_last_error(ctx),
                        "core.add(f32[2,3], f32[3]): no backend can run it (planted: planted: only same-shape "
                        "inputs (no broadcasting))");
    assert_null(out);
    plx_tensor_free(a);
    plx_tensor_free(c);
    plx_context_close(ctx);
}

/* ---- thread-local errors ----------------------------------------------------- */

typedef struct thread_probe {
    plx_context *ctx;
    char initial_error[256], initial_backend[64], initial_open_error[256];
    char own_error[256], own_open_error[256];
    int ok;
} thread_probe;

static void *probe_thread(void *arg)
{
    thread_probe *t = arg;
    snprintf(t->initial_error, sizeof t->initial_error, "%s", plx_last_error(t->ctx));
    snprintf(t->initial_backend, sizeof t->initial_backend, "%s", plx_last_backend(t->ctx));
    snprintf(t->initial_open_error, sizeof t->initial_open_error, "%s", plx_last_error(NULL));
    plx_tensor *out = NULL;
    plx_status st = plx_op_run(t->ctx, "core.zzz", NULL, NULL, 0, &out, 1);
    snprintf(t->own_error, sizeof t->own_error, "%s", plx_last_error(t->ctx));
    const char *paths[] = {"/nonexistent/plexus-thread-b"};
    plx_context_options o = test_options(paths, 1);
    plx_context *ctx = NULL;
    plx_status st2 = plx_context_open(&o, &ctx);
    snprintf(t->own_open_error, sizeof t->own_open_error, "%s", plx_last_error(NULL));
    t->ok = st == PLX_NOT_FOUND && st2 == PLX_NOT_FOUND && ctx == NULL;
    return NULL;
}

typedef struct thread_runner {
    plx_context *ctx;
    int broadcast; /* 1: cpu_blas takes it, 0: planted */
    int mismatches;
} thread_runner;

static void *runner_thread(void *arg)
{
    thread_runner *r = arg;
    plx_tensor *a = NULL, *b = NULL;
    if (plx_tensor_create(r->ctx, PLX_F32, 2, shape23, &a) != PLX_OK ||
        plx_tensor_create(r->ctx, PLX_F32, r->broadcast ? 1 : 2, r->broadcast ? shape3 : shape23, &b) != PLX_OK) {
        r->mismatches = -1;
        return NULL;
    }
    const char *want = r->broadcast ? "cpu_blas" : "planted";
    for (int i = 0; i < 200; i++) {
        plx_tensor *in[2] = {a, b}, *out = NULL;
        if (plx_op_run(r->ctx, "core.add", NULL, in, 2, &out, 1) != PLX_OK ||
            strcmp(plx_last_backend(r->ctx), want) != 0)
            r->mismatches++;
        plx_tensor_free(out);
    }
    plx_tensor_free(a);
    plx_tensor_free(b);
    return NULL;
}

static void test_last_error_is_per_thread(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE, TP_DIR("planted")};
    plx_context *ctx = open_paths(paths, 2, NULL, 0);
    check_op(ctx, "core.add", "same", "planted");
    plx_tensor *out = NULL;
    assert_int_equal(plx_op_run(ctx, "core.nope", NULL, NULL, 0, &out, 1), PLX_NOT_FOUND);
    assert_string_equal(plx_last_error(ctx), "unknown op 'core.nope'");
    const char *bad[] = {"/nonexistent/plexus-thread-a"};
    plx_context_options o = test_options(bad, 1);
    plx_context *none = NULL;
    assert_int_equal(plx_context_open(&o, &none), PLX_NOT_FOUND);
    assert_contains(plx_last_error(NULL), "/nonexistent/plexus-thread-a");

    thread_probe t = {.ctx = ctx};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, probe_thread, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_true(t.ok);
    assert_string_equal(t.initial_error, "");
    assert_string_equal(t.initial_backend, "");
    assert_string_equal(t.initial_open_error, "");
    assert_string_equal(t.own_error, "unknown op 'core.zzz'");
    assert_contains(t.own_open_error, "/nonexistent/plexus-thread-b");
    /* This thread's messages are untouched. */
    assert_string_equal(plx_last_error(ctx), "unknown op 'core.nope'");
    assert_contains(plx_last_error(NULL), "/nonexistent/plexus-thread-a");
    assert_string_equal(plx_last_backend(ctx), "planted");

    /* Concurrent runs on one context, each thread seeing its own backend. */
    thread_runner r[4];
    pthread_t ths[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (thread_runner){.ctx = ctx, .broadcast = i % 2, .mismatches = 0};
        assert_int_equal(pthread_create(&ths[i], NULL, runner_thread, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(ths[i], NULL), 0);
        assert_int_equal(r[i].mismatches, 0);
    }
    plx_context_close(ctx);
}

/* ---- shutdown order ------------------------------------------------------------ */

static void test_shutdown_reverse_load_order(void **state)
{
    shutdown_log_start();
    const char *order1[] = {TP_DIR("planted"), TP_DIR("devmem"), TP_DIR("old_minor")};
    plx_context *ctx = open_paths(order1, 3, NULL, 0);
    assert_int_equal(plx_backend_count(ctx), 3);
    assert_string_equal(read_text(SHUTDOWN_LOG), "");
    plx_context_close(ctx);
    assert_string_equal(read_text(SHUTDOWN_LOG), "old_minor\ndevmem\nplanted\n");
    unlink(SHUTDOWN_LOG);

    /* Load order, not name order. */
    const char *order2[] = {TP_DIR("devmem"), TP_DIR("old_minor"), TP_DIR("planted"), TP_DIR("init_fail")};
    ctx = open_paths(order2, 4, NULL, 0);
    plx_context_close(ctx);
    assert_string_equal(read_text(SHUTDOWN_LOG), "planted\nold_minor\ndevmem\n");
    shutdown_log_stop();
}

/* ---- everything at once --------------------------------------------------------- */

static void test_all_test_plugins_together(void **state)
{
    const char *paths[] = {CPU_BLAS_FILE, TP_DIR("no_entry"), TP_DIR("abi_major"), TP_DIR("old_minor"),
                           TP_DIR("new_minor"), TP_DIR("init_fail"), TP_DIR("unusable"), TP_DIR("null_slots"),
                           TP_DIR("notelf"), TP_DIR("missing_dep"), TP_DIR("kernel_error"), TP_DIR("dup"),
                           TP_DIR("missing_slot"), TP_DIR("planted"), TP_DIR("devmem"), TP_DIR("entry_null"),
                           TP_DIR("tiny_desc"), TP_DIR("bad_name"), TP_DIR("zero_devices"), TP_DIR("no_copy"),
                           TP_DIR("short_table")};
    size_t n = sizeof paths / sizeof paths[0];
    plx_context *ctx = open_paths(paths, n, "cpu_blas", 0);
    /* Ranked to cpu_blas only: every other backend is disabled, and the
     * plugins without one are refused for their own reasons. */
    assert_int_equal(plx_plugin_count(ctx), n + 2); /* dup holds three */
    assert_int_equal(plx_backend_count(ctx), 1);
    expect_refused(ctx, TP_FILE("planted", "planted"), "disabled: backend planted is not in the backend list 'cpu_blas'");
    expect_refused(ctx, TP_FILE("unusable", "unusable"), "unusable here: no frobnicator device");
    check_op(ctx, "core.add", "same", "cpu_blas");
    plx_context_close(ctx);

    ctx = open_paths(paths, n, NULL, 0);
    size_t loaded = 0;
    for (size_t i = 0; i < plx_plugin_count(ctx); i++) {
        plx_plugin_info info = {.struct_size = sizeof info};
        assert_int_equal(plx_plugin_get(ctx, i, &info), PLX_OK);
        loaded += info.status == PLX_PLUGIN_LOADED;
    }
    /* cpu_blas, old_minor, new_minor, null_slots, kernel_error, dup, planted, devmem */
    assert_int_equal(loaded, 8);
    assert_int_equal(plx_backend_count(ctx), 8);
    check_op(ctx, "core.add", "same", "planted");
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_cpu_blas_baseline, setup),
        cmocka_unit_test_setup(test_same_file_examined_once, setup),
        cmocka_unit_test_setup(test_no_entry, setup),
        cmocka_unit_test_setup(test_abi_major, setup),
        cmocka_unit_test_setup(test_old_minor_loads_and_runs, setup),
        cmocka_unit_test_setup(test_new_minor_loads_and_runs, setup),
        cmocka_unit_test_setup(test_init_fail, setup),
        cmocka_unit_test_setup(test_unusable, setup),
        cmocka_unit_test_setup(test_null_slots, setup),
        cmocka_unit_test_setup(test_not_elf, setup),
        cmocka_unit_test_setup(test_missing_dependency, setup),
        cmocka_unit_test_setup(test_kernel_error, setup),
        cmocka_unit_test_setup(test_duplicates, setup),
        cmocka_unit_test_setup(test_insecure_locations, setup),
        cmocka_unit_test_setup(test_missing_slot, setup),
        cmocka_unit_test_setup(test_malformed_plugins, setup),
        cmocka_unit_test_setup(test_routing_by_cost, setup),
        cmocka_unit_test_setup(test_routing_ranked, setup),
        cmocka_unit_test_setup(test_routing_strict, setup),
        cmocka_unit_test_setup(test_device_memory_backend, setup),
        cmocka_unit_test_setup(test_device_memory_routing, setup),
        cmocka_unit_test_setup(test_explicit_path_missing, setup),
        cmocka_unit_test_setup(test_env_plugin_path, setup),
        cmocka_unit_test_setup(test_env_backends_restricts, setup),
        cmocka_unit_test_setup(test_bad_backend_lists, setup),
        cmocka_unit_test_setup(test_explain, setup),
        cmocka_unit_test_setup(test_last_error_is_per_thread, setup),
        cmocka_unit_test_setup(test_shutdown_reverse_load_order, setup),
        cmocka_unit_test_setup(test_all_test_plugins_together, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
