/* test_util.c — see test_util.h. */
#include "test_util.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void tu_options_init(plx_context_options *opts, const char *const *paths, size_t n_paths)
{
    plx_context_options_init(opts);
    opts->plugin_paths = paths;
    opts->n_plugin_paths = n_paths;
    opts->ignore_env = 1;
    opts->no_default_dirs = 1;
}

plx_context *tu_open_options(const plx_context_options *opts)
{
    plx_context *ctx = NULL;
    plx_status st = plx_context_open(opts, &ctx);
    if (st != PLX_OK)
        fail_msg("plx_context_open: %s: %s", plx_status_name(st), plx_last_error(NULL));
    return ctx;
}

plx_context *tu_open_paths(const char *const *paths, size_t n_paths, const char *backends)
{
    plx_context_options opts;
    tu_options_init(&opts, paths, n_paths);
    opts.backends = backends;
    opts.num_threads = 2;
    return tu_open_options(&opts);
}

plx_context *tu_open(void)
{
    return tu_open_backends(NULL);
}

plx_context *tu_open_backends(const char *backends)
{
    const char *const paths[] = {PLX_TEST_PLUGIN_DIR};
    return tu_open_paths(paths, 1, backends);
}

bool tu_has_backend(const plx_context *ctx, const char *name)
{
    for (size_t b = 0; b < plx_backend_count(ctx); b++) {
        plx_backend_info bi = {.struct_size = sizeof bi};
        if (plx_backend_get(ctx, b, &bi) == PLX_OK && strcmp(bi.name, name) == 0)
            return true;
    }
    return false;
}

uint64_t tu_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float tu_rand_uniform(uint64_t *state, float lo, float hi)
{
    double u = (double)(tu_rng_next(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(lo + (hi - lo) * u);
}

int64_t tu_rand_int(uint64_t *state, int64_t lo, int64_t hi_inclusive)
{
    uint64_t span = (uint64_t)(hi_inclusive - lo) + 1u;
    return lo + (int64_t)(tu_rng_next(state) % span);
}

plx_tensor *tu_tensor(plx_context *ctx, plx_dtype dtype, int32_t ndim, const int64_t *shape)
{
    plx_tensor *t = NULL;
    plx_status st = plx_tensor_create(ctx, dtype, ndim, shape, &t);
    if (st != PLX_OK)
        fail_msg("plx_tensor_create: %s: %s", plx_status_name(st), plx_last_error(ctx));
    return t;
}

plx_tensor *tu_uniform(plx_context *ctx, uint64_t *rng, int32_t ndim, const int64_t *shape, float lo, float hi)
{
    plx_tensor *t = tu_tensor(ctx, PLX_F32, ndim, shape);
    float *p = tu_f32(t);
    int64_t n = plx_tensor_numel(t);
    for (int64_t i = 0; i < n; i++)
        p[i] = tu_rand_uniform(rng, lo, hi);
    return t;
}

plx_tensor *tu_from_f32(plx_context *ctx, int32_t ndim, const int64_t *shape, const float *values)
{
    plx_tensor *t = tu_tensor(ctx, PLX_F32, ndim, shape);
    memcpy(tu_f32(t), values, (size_t)plx_tensor_numel(t) * sizeof(float));
    return t;
}

plx_tensor *tu_from_i64(plx_context *ctx, int32_t ndim, const int64_t *shape, const int64_t *values)
{
    plx_tensor *t = tu_tensor(ctx, PLX_I64, ndim, shape);
    memcpy(plx_tensor_data(t), values, (size_t)plx_tensor_numel(t) * sizeof(int64_t));
    return t;
}

float *tu_f32(const plx_tensor *t)
{
    return (float *)plx_tensor_data(t);
}

void tu_run(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs, size_t n_in,
            plx_tensor **outputs, size_t n_out)
{
    plx_status st = plx_op_run(ctx, op, attrs, inputs, n_in, outputs, n_out);
    if (st != PLX_OK)
        fail_msg("%s failed: %s: %s", op, plx_status_name(st), plx_last_error(ctx));
}

void tu_expect_failure(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *in, size_t n_in,
                       size_t n_out, plx_status want, const char *const *needles, size_t n_needles)
{
    plx_tensor *outs[8] = {0};
    assert_true(n_out <= 8);
    plx_status st = plx_op_run(ctx, op, attrs, in, n_in, outs, n_out);
    for (size_t i = 0; i < n_out; i++)
        plx_tensor_free(outs[i]);
    const char *msg = plx_last_error(ctx);
    if (st != want)
        fail_msg("%s: got status %s, want %s (%s)", op, plx_status_name(st), plx_status_name(want), msg);
    if (strstr(msg, op) == NULL)
        fail_msg("%s: message \"%s\" does not name the op", op, msg);
    for (size_t i = 0; i < n_needles; i++)
        if (strstr(msg, needles[i]) == NULL)
            fail_msg("%s: message \"%s\" does not mention \"%s\"", op, msg, needles[i]);
}

void tu_expect_failure1(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *in, size_t n_in,
                        plx_status want, const char *const *needles, size_t n_needles)
{
    tu_expect_failure(ctx, op, attrs, in, n_in, 1, want, needles, n_needles);
}

void tu_assert_close(const float *got, const float *want, int64_t n, float atol, float rtol, const char *what)
{
    for (int64_t i = 0; i < n; i++) {
        float g = got[i], w = want[i];
        if (isnan(w) && isnan(g))
            continue;
        if (isinf(w) && g == w)
            continue;
        if (!(fabsf(g - w) <= atol + rtol * fabsf(w)))
            fail_msg("%s: element %lld: got %.9g, want %.9g (atol %g, rtol %g)", what, (long long)i, (double)g,
                     (double)w, (double)atol, (double)rtol);
    }
}

static double probe_loss(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs,
                         size_t n_in, size_t n_out, size_t out_index, const float *dy)
{
    plx_tensor *outs[8] = {0};
    assert_true(n_out <= 8);
    tu_run(ctx, op, attrs, inputs, n_in, outs, n_out);
    const float *o = tu_f32(outs[out_index]);
    int64_t n = plx_tensor_numel(outs[out_index]);
    double acc = 0.0;
    for (int64_t i = 0; i < n; i++)
        acc += (double)o[i] * (double)dy[i];
    for (size_t i = 0; i < n_out; i++)
        plx_tensor_free(outs[i]);
    return acc;
}

void tu_check_fd(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs, size_t n_in,
                 size_t n_out, size_t out_index, const float *dy, size_t wrt, const float *analytic,
                 int max_points, float eps, float tol)
{
    float *x = tu_f32(inputs[wrt]);
    int64_t n = plx_tensor_numel(inputs[wrt]);
    int64_t step = n <= max_points ? 1 : (n + max_points - 1) / max_points;
    for (int64_t k = 0; k < n; k += step) {
        float saved = x[k];
        x[k] = saved + eps;
        double lp = probe_loss(ctx, op, attrs, inputs, n_in, n_out, out_index, dy);
        x[k] = saved - eps;
        double lm = probe_loss(ctx, op, attrs, inputs, n_in, n_out, out_index, dy);
        x[k] = saved;
        double fd = (lp - lm) / (2.0 * (double)eps);
        double an = (double)analytic[k];
        double scale = fabs(fd) > 1.0 ? fabs(fd) : 1.0;
        if (!(fabs(fd - an) <= (double)tol * scale))
            fail_msg("%s: d/d input %zu [%lld]: finite difference %.7g, analytic %.7g", op, wrt, (long long)k, fd,
                     an);
    }
}

float *tu_fixture_f32(const char *name, size_t *count)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fixtures/%s", PLX_TEST_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("fixture %s is missing", path);
    fseek(f, 0, SEEK_END);
    long bytes = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (bytes < 0 || bytes % 4 != 0) {
        fclose(f);
        fail_msg("fixture %s has a size that is not a multiple of 4", path);
    }
    float *data = malloc((size_t)bytes + 4);
    assert_non_null(data);
    size_t got = fread(data, 1, (size_t)bytes, f);
    fclose(f);
    assert_int_equal(got, (size_t)bytes);
    *count = (size_t)bytes / 4;
    return data;
}

int tu_make_temp_dir(char *dir, size_t cap, const char *prefix)
{
    int n = snprintf(dir, cap, "%sXXXXXX", prefix);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return mkdtemp(dir) != NULL ? 0 : -1;
}

int tu_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        char child[4400];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(child, sizeof child, "%s/%s", dir, e->d_name);
            unlink(child);
        }
        closedir(d);
    }
    return rmdir(dir);
}

int tu_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}
