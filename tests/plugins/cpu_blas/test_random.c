/* test_random.c — core.dropout, core.dropout_backward, core.random_uniform
 * and core.random_normal on cpu_blas: exact agreement with the counter-based
 * streams of abi/plexus_random.h, reproducibility, offset shifts, keep rate
 * and moments within statistical bounds, backward against the forward mask
 * and finite differences, strided input, and bad attributes. */
#include "../../test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../../../abi/plexus_random.h"

#define expect_failure tu_expect_failure1

static plx_tensor *run1(plx_context *ctx, const char *op, const void *attrs, plx_tensor *x)
{
    plx_tensor *y = NULL;
    tu_run(ctx, op, attrs, x == NULL ? NULL : &x, x == NULL ? 0 : 1, &y, 1);
    return y;
}

/* Nonzero x away from 0, so a zero output always means "dropped". */
static plx_tensor *nonzero_input(plx_context *ctx, uint64_t *rng, int32_t ndim, const int64_t *shape)
{
    plx_tensor *x = tu_uniform(ctx, rng, ndim, shape, 0.5f, 2.0f);
    float *p = tu_f32(x);
    for (int64_t i = 0; i < plx_tensor_numel(x); i++)
        if (tu_rng_next(rng) & 1)
            p[i] = -p[i];
    return x;
}

/* y[i] must be x[i] * (1/(1-p)) where u(offset+i) >= p, else 0. */
static void check_against_stream(const float *x, const float *y, int64_t n, const plx_dropout_attrs *a,
                                 const char *what)
{
    float scale = 1.0f / (1.0f - a->p);
    for (int64_t i = 0; i < n; i++) {
        float u = plx_philox_uniform(a->seed, a->offset + (uint64_t)i);
        float want = u >= a->p ? x[i] * scale : 0.0f;
        if (!(y[i] == want || fabsf(y[i] - want) <= 1e-6f * fabsf(want)))
            fail_msg("%s: element %lld: got %.9g, want %.9g (u %.9g, p %g)", what, (long long)i, (double)y[i],
                     (double)want, (double)u, (double)a->p);
    }
}

static void test_dropout_matches_stream(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 1;
    const int64_t sizes[] = {1, 3, 7, 17, 1000, 100003};
    for (int k = 0; k < 6; k++) {
        int64_t shape[2] = {sizes[k] > 7 ? 1 : sizes[k], sizes[k] > 7 ? sizes[k] : 1};
        plx_tensor *x = nonzero_input(ctx, &rng, 2, shape);
        /* Odd offsets start mid-block; a seed above 2^32 uses both key words. */
        plx_dropout_attrs a = {sizeof a, 0.1f + 0.15f * (float)k, 0x123456789abcULL + (uint64_t)k,
                               (uint64_t)(k * 5 + 1)};
        plx_tensor *y = run1(ctx, "core.dropout", &a, x);
        check_against_stream(tu_f32(x), tu_f32(y), plx_tensor_numel(x), &a, "dropout");
        plx_tensor *again = run1(ctx, "core.dropout", &a, x);
        tu_assert_close(tu_f32(again), tu_f32(y), plx_tensor_numel(x), 0, 0, "same seed and offset");
        plx_tensor_free(again);
        plx_tensor_free(y);
        plx_tensor_free(x);
    }
    plx_context_close(ctx);
}

/* Element i at offset k is element i + k at offset 0. */
static void test_dropout_offset_shifts_stream(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    int64_t n = 4099;
    float *ones = malloc(sizeof(float) * (size_t)(n + 16));
    for (int64_t i = 0; i < n + 16; i++)
        ones[i] = 1.0f;
    plx_tensor *x0 = tu_from_f32(ctx, 1, (int64_t[]){n + 16}, ones);
    plx_dropout_attrs a0 = {sizeof a0, 0.5f, 77, 0};
    plx_tensor *y0 = run1(ctx, "core.dropout", &a0, x0);
    for (uint64_t k = 1; k <= 9; k += 2) {
        plx_tensor *x = tu_from_f32(ctx, 1, (int64_t[]){n}, ones);
        plx_dropout_attrs ak = {sizeof ak, 0.5f, 77, k};
        plx_tensor *yk = run1(ctx, "core.dropout", &ak, x);
        tu_assert_close(tu_f32(yk), tu_f32(y0) + k, n, 0, 0, "offset k against offset 0 shifted by k");
        plx_tensor_free(yk);
        plx_tensor_free(x);
    }
    /* Another seed gives another mask. */
    plx_dropout_attrs other = {sizeof other, 0.5f, 78, 0};
    plx_tensor *y1 = run1(ctx, "core.dropout", &other, x0);
    int64_t differ = 0;
    for (int64_t i = 0; i < n; i++)
        differ += tu_f32(y1)[i] != tu_f32(y0)[i];
    assert_true(differ > n / 4);
    plx_tensor_free(y1);
    plx_tensor_free(y0);
    plx_tensor_free(x0);
    free(ones);
    plx_context_close(ctx);
}

static void test_dropout_rate_and_scale(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 3;
    int64_t n = 200000;
    const float ps[] = {0.1f, 0.5f, 0.9f};
    for (int k = 0; k < 3; k++) {
        plx_tensor *x = tu_uniform(ctx, &rng, 1, (int64_t[]){n}, 1.0f, 2.0f);
        plx_dropout_attrs a = {sizeof a, ps[k], 2024, 0};
        plx_tensor *y = run1(ctx, "core.dropout", &a, x);
        int64_t kept = 0;
        for (int64_t i = 0; i < n; i++) {
            float yi = tu_f32(y)[i];
            if (yi == 0.0f)
                continue;
            kept++;
            double want = (double)tu_f32(x)[i] / (1.0 - (double)ps[k]);
            if (fabs(yi - want) > 1e-6 * want)
                fail_msg("p %g: kept element %lld is %.9g, want x/(1-p) = %.9g", (double)ps[k], (long long)i,
                         (double)yi, want);
        }
        /* Binomial keep count: 6 standard deviations. */
        double keep = 1.0 - ps[k], sd = sqrt(keep * (1.0 - keep) / (double)n);
        double rate = (double)kept / (double)n;
        if (fabs(rate - keep) > 6.0 * sd)
            fail_msg("p %g: keep rate %.5f, want %.5f +- %.5f", (double)ps[k], rate, keep, 6.0 * sd);
        plx_tensor_free(y);
        plx_tensor_free(x);
    }
    /* p = 0 is the identity, bit for bit. */
    plx_tensor *x = tu_uniform(ctx, &rng, 2, (int64_t[]){7, 17}, -3.0f, 3.0f);
    plx_dropout_attrs none = {sizeof none, 0.0f, 5, 9};
    plx_tensor *y = run1(ctx, "core.dropout", &none, x);
    assert_memory_equal(tu_f32(y), tu_f32(x), sizeof(float) * 7 * 17);
    plx_tensor *dx = run1(ctx, "core.dropout_backward", &none, x);
    assert_memory_equal(tu_f32(dx), tu_f32(x), sizeof(float) * 7 * 17);
    plx_tensor_free(dx);
    plx_tensor_free(y);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

static void test_dropout_backward(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 4;
    int64_t shape[3] = {3, 7, 17};
    plx_dropout_attrs a = {sizeof a, 0.3f, 99, 11};
    plx_tensor *x = nonzero_input(ctx, &rng, 3, shape);
    plx_tensor *dy = nonzero_input(ctx, &rng, 3, shape);
    plx_tensor *y = run1(ctx, "core.dropout", &a, x);
    plx_tensor *dx = run1(ctx, "core.dropout_backward", &a, dy);
    int64_t n = plx_tensor_numel(x);
    float scale = 1.0f / (1.0f - a.p);
    for (int64_t i = 0; i < n; i++) {
        bool kept = tu_f32(y)[i] != 0.0f;
        float want = kept ? tu_f32(dy)[i] * scale : 0.0f;
        if (tu_f32(dx)[i] != want)
            fail_msg("dropout_backward element %lld: got %.9g, want %.9g (forward kept: %d)", (long long)i,
                     (double)tu_f32(dx)[i], (double)want, kept);
    }
    check_against_stream(tu_f32(dy), tu_f32(dx), n, &a, "dropout_backward");
    /* Dropout is linear in x, so central differences are exact up to
     * rounding: d/dx sum(y * w) = dropout_backward(w). */
    tu_check_fd(ctx, "core.dropout", &a, &x, 1, 1, 0, tu_f32(dy), 0, tu_f32(dx), 60, 1e-2f, 2e-3f);
    plx_tensor_free(dx);
    plx_tensor_free(y);
    plx_tensor_free(dy);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

/* A transposed view goes through the runtime's copy first; the mask follows
 * the logical (row-major) element order. */
static void test_dropout_strided_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    float mem[5 * 9];
    for (int i = 0; i < 45; i++)
        mem[i] = (float)(i + 1);
    int64_t shape[2] = {9, 5}, strides[2] = {1, 9};
    plx_tensor_desc d = {.data = mem, .device = {PLX_DL_CPU, 0}, .ndim = 2, .dtype = PLX_F32, .shape = shape,
                         .strides = strides};
    plx_tensor *view = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &view), PLX_OK);
    plx_dropout_attrs a = {sizeof a, 0.4f, 31337, 2};
    plx_tensor *y = run1(ctx, "core.dropout", &a, view);
    float logical[45];
    for (int r = 0; r < 9; r++)
        for (int c = 0; c < 5; c++)
            logical[r * 5 + c] = mem[c * 9 + r];
    check_against_stream(logical, tu_f32(y), 45, &a, "dropout of a transposed view");
    plx_tensor_free(y);
    plx_tensor_free(view);
    plx_context_close(ctx);
}

static void test_dropout_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 2, (int64_t[]){2, 3});
    plx_dropout_attrs one = {sizeof one, 1.0f, 0, 0};
    expect_failure(ctx, "core.dropout", &one, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.dropout", "p = 1", "[0, 1)", "f32[2,3]"}, 4);
    plx_dropout_attrs negative = {sizeof negative, -0.1f, 0, 0};
    expect_failure(ctx, "core.dropout_backward", &negative, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.dropout_backward", "p = -0.1"}, 2);
    plx_dropout_attrs not_a_number = {sizeof not_a_number, NAN, 0, 0};
    expect_failure(ctx, "core.dropout", &not_a_number, &x, 1, PLX_INVALID_ARGUMENT, (const char *const[]){"p = nan"},
                   1);
    plx_tensor *i = tu_tensor(ctx, PLX_I32, 1, (int64_t[]){4});
    expect_failure(ctx, "core.dropout", NULL, &i, 1, PLX_DTYPE_MISMATCH, (const char *const[]){"i32[4]"}, 1);
    plx_tensor_free(i);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

/* ---- random_uniform / random_normal ---------------------------------------- */

static plx_random_attrs random_attrs(int32_t ndim, const int64_t *shape, float a, float b, uint64_t seed,
                                     uint64_t offset)
{
    plx_random_attrs r = {sizeof r, ndim, {0}, a, b, seed, offset};
    for (int32_t i = 0; i < ndim; i++)
        r.shape[i] = shape[i];
    return r;
}

static void moments(const float *x, int64_t n, double *mean, double *var)
{
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++)
        s += x[i];
    *mean = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        s2 += ((double)x[i] - *mean) * ((double)x[i] - *mean);
    *var = s2 / (double)(n - 1);
}

static void test_random_uniform(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    int64_t shape[3] = {7, 17, 1001};
    int64_t n = 7 * 17 * 1001;
    plx_random_attrs a = random_attrs(3, shape, -2.0f, 3.0f, 42, 5);
    plx_tensor *y = run1(ctx, "core.random_uniform", &a, NULL);
    const plx_tensor_desc *d = plx_tensor_desc_get(y);
    assert_true(plx_dtype_equal(d->dtype, PLX_F32));
    assert_int_equal(d->ndim, 3);
    assert_int_equal(d->shape[2], 1001);
    const float *v = tu_f32(y);
    for (int64_t i = 0; i < n; i++) {
        float want = -2.0f + 5.0f * plx_philox_uniform(42, 5 + (uint64_t)i);
        if (!(v[i] >= -2.0f && v[i] < 3.0f) || fabsf(v[i] - want) > 1e-6f)
            fail_msg("uniform element %lld: got %.9g, want %.9g in [-2, 3)", (long long)i, (double)v[i],
                     (double)want);
    }
    /* Mean 0.5 and variance 25/12; 6 standard errors. */
    double mean, var;
    moments(v, n, &mean, &var);
    double se_mean = sqrt(25.0 / 12.0 / (double)n), se_var = sqrt(25.0 * 25.0 / 180.0 / (double)n);
    if (fabs(mean - 0.5) > 6 * se_mean || fabs(var - 25.0 / 12.0) > 6 * se_var)
        fail_msg("uniform moments: mean %.5f (want 0.5), var %.5f (want %.5f)", mean, var, 25.0 / 12.0);
    /* Reproducible; offset k is the stream shifted by k. */
    plx_tensor *again = run1(ctx, "core.random_uniform", &a, NULL);
    assert_memory_equal(tu_f32(again), v, sizeof(float) * (size_t)n);
    plx_random_attrs shifted = random_attrs(1, (int64_t[]){1000}, -2.0f, 3.0f, 42, 8);
    plx_tensor *s = run1(ctx, "core.random_uniform", &shifted, NULL);
    assert_memory_equal(tu_f32(s), v + 3, sizeof(float) * 1000);
    /* a == b gives a constant; a 0-d tensor is one value. */
    plx_random_attrs flat = random_attrs(0, NULL, 1.5f, 1.5f, 1, 0);
    plx_tensor *c = run1(ctx, "core.random_uniform", &flat, NULL);
    assert_true(tu_f32(c)[0] == 1.5f);
    plx_tensor_free(c);
    plx_tensor_free(s);
    plx_tensor_free(again);
    plx_tensor_free(y);
    plx_context_close(ctx);
}

static void test_random_normal(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    int64_t shape[2] = {301, 333};
    int64_t n = 301 * 333;
    plx_random_attrs a = random_attrs(2, shape, 1.5f, 0.5f, 0xfeedfacecafeULL, 3);
    plx_tensor *y = run1(ctx, "core.random_normal", &a, NULL);
    const float *v = tu_f32(y);
    for (int64_t i = 0; i < n; i++) {
        float want = 1.5f + 0.5f * plx_philox_normal(0xfeedfacecafeULL, 3 + (uint64_t)i);
        if (!(fabsf(v[i] - want) <= 1e-6f * (1.0f + fabsf(want))))
            fail_msg("normal element %lld: got %.9g, want %.9g", (long long)i, (double)v[i], (double)want);
    }
    double mean, var;
    moments(v, n, &mean, &var);
    /* se(mean) = sd/sqrt(n); se(var) = var * sqrt(2/(n-1)). */
    double se_mean = 0.5 / sqrt((double)n), se_var = 0.25 * sqrt(2.0 / (double)(n - 1));
    if (fabs(mean - 1.5) > 6 * se_mean || fabs(var - 0.25) > 6 * se_var)
        fail_msg("normal moments: mean %.5f (want 1.5), var %.5f (want 0.25)", mean, var);
    /* Tails: about 4.55% beyond two standard deviations. */
    int64_t tails = 0;
    for (int64_t i = 0; i < n; i++)
        tails += fabs((double)v[i] - 1.5) > 1.0;
    double rate = (double)tails / (double)n, sd = sqrt(0.0455 * 0.9545 / (double)n);
    if (fabs(rate - 0.0455) > 6 * sd)
        fail_msg("normal: %.4f beyond 2 sd, want 0.0455", rate);
    plx_tensor *again = run1(ctx, "core.random_normal", &a, NULL);
    assert_memory_equal(tu_f32(again), v, sizeof(float) * (size_t)n);
    plx_random_attrs other = random_attrs(2, shape, 1.5f, 0.5f, 0xfeedfacecaffULL, 3);
    plx_tensor *o = run1(ctx, "core.random_normal", &other, NULL);
    assert_true(memcmp(tu_f32(o), v, sizeof(float) * 64) != 0);
    plx_tensor_free(o);
    plx_tensor_free(again);
    plx_tensor_free(y);
    plx_context_close(ctx);
}

static void test_random_bad_attrs(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_random_attrs reversed = random_attrs(1, (int64_t[]){4}, 3.0f, 2.0f, 0, 0);
    expect_failure(ctx, "core.random_uniform", &reversed, NULL, 0, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.random_uniform", "[3, 2)"}, 2);
    plx_random_attrs negative_std = random_attrs(1, (int64_t[]){4}, 0.0f, -1.0f, 0, 0);
    expect_failure(ctx, "core.random_normal", &negative_std, NULL, 0, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"core.random_normal", "std b = -1"}, 2);
    plx_random_attrs bad_shape = random_attrs(2, (int64_t[]){4, -2}, 0.0f, 1.0f, 0, 0);
    expect_failure(ctx, "core.random_normal", &bad_shape, NULL, 0, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"shape[1] is -2"}, 1);
    plx_random_attrs too_many_dims = random_attrs(0, NULL, 0.0f, 1.0f, 0, 0);
    too_many_dims.ndim = PLX_MAX_DIMS + 1;
    expect_failure(ctx, "core.random_uniform", &too_many_dims, NULL, 0, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"attrs.ndim is 9"}, 1);
    plx_random_attrs infinite = random_attrs(1, (int64_t[]){4}, 0.0f, INFINITY, 0, 0);
    expect_failure(ctx, "core.random_uniform", &infinite, NULL, 0, PLX_INVALID_ARGUMENT,
                   (const char *const[]){"finite"}, 1);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dropout_matches_stream),
        cmocka_unit_test(test_dropout_offset_shifts_stream),
        cmocka_unit_test(test_dropout_rate_and_scale),
        cmocka_unit_test(test_dropout_backward),
        cmocka_unit_test(test_dropout_strided_input),
        cmocka_unit_test(test_dropout_bad_input),
        cmocka_unit_test(test_random_uniform),
        cmocka_unit_test(test_random_normal),
        cmocka_unit_test(test_random_bad_attrs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
