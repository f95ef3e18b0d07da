/* test_softmax.c — core.softmax, core.log_softmax and their backward ops on
 * cpu_blas: naive double references along the first, a middle and the last
 * axis of odd shapes, large magnitudes (stability), strided input, finite
 * differences and bad input. */
#include "../../test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define expect_failure tu_expect_failure1

typedef struct split {
    int64_t outer, len, inner;
} split;

static split split_at(int32_t ndim, const int64_t *shape, int32_t axis)
{
    split s = {1, 1, 1};
    if (axis < 0)
        axis += ndim;
    for (int32_t i = 0; i < ndim; i++) {
        if (i < axis)
            s.outer *= shape[i];
        else if (i == axis)
            s.len = shape[i];
        else
            s.inner *= shape[i];
    }
    return s;
}

/* Softmax or log_softmax in double along the split's axis. */
static void softmax_reference(const float *x, split s, bool log_form, double *y)
{
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t i = 0; i < s.inner; i++) {
            const float *xo = x + o * s.len * s.inner + i;
            double *yo = y + o * s.len * s.inner + i;
            double m = -INFINITY, sum = 0;
            for (int64_t l = 0; l < s.len; l++)
                m = fmax(m, xo[l * s.inner]);
            for (int64_t l = 0; l < s.len; l++)
                sum += exp(xo[l * s.inner] - m);
            for (int64_t l = 0; l < s.len; l++)
                yo[l * s.inner] = log_form ? xo[l * s.inner] - m - log(sum) : exp(xo[l * s.inner] - m) / sum;
        }
}

static void backward_reference(const float *dy, const float *y, split s, bool log_form, double *dx)
{
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t i = 0; i < s.inner; i++) {
            int64_t base = o * s.len * s.inner + i;
            double acc = 0;
            for (int64_t l = 0; l < s.len; l++) {
                int64_t at = base + l * s.inner;
                acc += log_form ? (double)dy[at] : (double)dy[at] * y[at];
            }
            for (int64_t l = 0; l < s.len; l++) {
                int64_t at = base + l * s.inner;
                dx[at] = log_form ? dy[at] - exp((double)y[at]) * acc : y[at] * (dy[at] - acc);
            }
        }
}

static void assert_close_double(const float *got, const double *want, int64_t n, float atol, float rtol,
                                const char *what)
{
    float *w = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(w);
    for (int64_t i = 0; i < n; i++)
        w[i] = (float)want[i];
    tu_assert_close(got, w, n, atol, rtol, what);
    free(w);
}

/* Forward and backward of one op along one axis against the references;
 * finite differences on small shapes. */
static void check_axis(plx_context *ctx, uint64_t *rng, int32_t ndim, const int64_t *shape, int32_t axis,
                       bool log_form, float range)
{
    const char *op = log_form ? "core.log_softmax" : "core.softmax";
    const char *op_bw = log_form ? "core.log_softmax_backward" : "core.softmax_backward";
    plx_softmax_attrs attrs = PLX_SOFTMAX_ATTRS_DEFAULT;
    attrs.axis = axis;
    split s = split_at(ndim, shape, axis);
    int64_t n = s.outer * s.len * s.inner;
    plx_tensor *x = tu_uniform(ctx, rng, ndim, shape, -range, range);
    plx_tensor *y = NULL;
    tu_run(ctx, op, &attrs, &x, 1, &y, 1);
    double *want = malloc((size_t)n * sizeof(double));
    softmax_reference(tu_f32(x), s, log_form, want);
    assert_close_double(tu_f32(y), want, n, 1e-5f, 1e-5f, op);

    plx_tensor *dy = tu_uniform(ctx, rng, ndim, shape, -1.0f, 1.0f);
    plx_tensor *dx = NULL;
    tu_run(ctx, op_bw, &attrs, (plx_tensor *[]){dy, y}, 2, &dx, 1);
    backward_reference(tu_f32(dy), tu_f32(y), s, log_form, want);
    assert_close_double(tu_f32(dx), want, n, 1e-5f, 1e-4f, op_bw);
    if (n <= 400 && range <= 5.0f)
        tu_check_fd(ctx, op, &attrs, &x, 1, 1, 0, tu_f32(dy), 0, tu_f32(dx), 30, 1e-2f, 1e-2f);
    free(want);
    plx_tensor_free(x);
    plx_tensor_free(y);
    plx_tensor_free(dy);
    plx_tensor_free(dx);
}

static void check_all_axes(plx_context *ctx, uint64_t *rng, bool log_form)
{
    check_axis(ctx, rng, 2, (int64_t[]){3, 17}, -1, log_form, 4.0f);
    check_axis(ctx, rng, 2, (int64_t[]){3, 17}, 0, log_form, 4.0f);
    check_axis(ctx, rng, 2, (int64_t[]){3, 17}, 1, log_form, 4.0f);
    check_axis(ctx, rng, 3, (int64_t[]){2, 7, 5}, 0, log_form, 4.0f);
    check_axis(ctx, rng, 3, (int64_t[]){2, 7, 5}, 1, log_form, 4.0f);
    check_axis(ctx, rng, 3, (int64_t[]){2, 7, 5}, -2, log_form, 4.0f);
    check_axis(ctx, rng, 3, (int64_t[]){2, 7, 5}, 2, log_form, 4.0f);
    check_axis(ctx, rng, 1, (int64_t[]){1}, 0, log_form, 4.0f);
    check_axis(ctx, rng, 3, (int64_t[]){4, 3, 1}, -1, log_form, 4.0f);
    check_axis(ctx, rng, 4, (int64_t[]){2, 3, 1, 7}, 2, log_form, 4.0f);
    /* wider than one column slab, and several tasks */
    check_axis(ctx, rng, 3, (int64_t[]){3, 9, 131}, 1, log_form, 4.0f);
    check_axis(ctx, rng, 2, (int64_t[]){513, 67}, 0, log_form, 4.0f);
    check_axis(ctx, rng, 2, (int64_t[]){700, 97}, 1, log_form, 4.0f);
    /* magnitudes where exp overflows f32 without the max shift */
    check_axis(ctx, rng, 2, (int64_t[]){5, 33}, 1, log_form, 300.0f);
    check_axis(ctx, rng, 3, (int64_t[]){5, 33, 3}, 1, log_form, 300.0f);
    for (int rep = 0; rep < 4; rep++) {
        int64_t shape[3] = {tu_rand_int(rng, 1, 6), tu_rand_int(rng, 1, 9), tu_rand_int(rng, 1, 9)};
        check_axis(ctx, rng, 3, shape, (int32_t)tu_rand_int(rng, -3, 2), log_form, 4.0f);
    }
}

static void test_softmax_axes(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 31;
    check_all_axes(ctx, &rng, false);
    plx_context_close(ctx);
}

static void test_log_softmax_axes(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 32;
    check_all_axes(ctx, &rng, true);
    plx_context_close(ctx);
}

/* Softmax along a dim of a transposed view equals the reference on the
 * logical (transposed) values. */
static void test_softmax_strided(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 33;
    int64_t base_shape[2] = {7, 5}, view_shape[2] = {5, 7}, strides[2] = {1, 5};
    plx_tensor *base = tu_uniform(ctx, &rng, 2, base_shape, -3.0f, 3.0f);
    plx_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.data = plx_tensor_data(base);
    d.device.device_type = PLX_DL_CPU;
    d.ndim = 2;
    d.dtype = PLX_F32;
    d.shape = view_shape;
    d.strides = strides;
    plx_tensor *view = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &view), PLX_OK);
    float logical[35];
    const float *b = tu_f32(base);
    for (int64_t i = 0; i < 5; i++)
        for (int64_t j = 0; j < 7; j++)
            logical[i * 7 + j] = b[j * 5 + i];
    for (int log_form = 0; log_form < 2; log_form++)
        for (int32_t axis = 0; axis < 2; axis++) {
            plx_softmax_attrs attrs = PLX_SOFTMAX_ATTRS_DEFAULT;
            attrs.axis = axis;
            plx_tensor *y = NULL;
            tu_run(ctx, log_form ? "core.log_softmax" : "core.softmax", &attrs, &view, 1, &y, 1);
            double want[35];
            softmax_reference(logical, split_at(2, view_shape, axis), log_form, want);
            assert_close_double(tu_f32(y), want, 35, 1e-5f, 1e-5f, "strided softmax");
            plx_tensor_free(y);
        }
    plx_tensor_free(view);
    plx_tensor_free(base);
    plx_context_close(ctx);
}

/* PyTorch treats a 0-d tensor as one element: softmax 1, log_softmax 0. */
static void test_softmax_scalar(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    float v = 3.5f;
    plx_tensor *x = tu_from_f32(ctx, 0, NULL, &v);
    plx_tensor *y = NULL;
    tu_run(ctx, "core.softmax", NULL, &x, 1, &y, 1);
    assert_int_equal(plx_tensor_desc_get(y)->ndim, 0);
    assert_true(fabsf(tu_f32(y)[0] - 1.0f) < 1e-7f);
    plx_tensor_free(y);
    y = NULL;
    tu_run(ctx, "core.log_softmax", NULL, &x, 1, &y, 1);
    assert_true(fabsf(tu_f32(y)[0]) < 1e-7f);
    plx_tensor_free(y);
    plx_tensor_free(x);
    plx_context_close(ctx);
}

/* -inf logits get probability 0; a NaN anywhere in a row makes the whole
 * row NaN (as PyTorch), and leaves other rows alone. Rows of 11 cover both
 * the vectorized blocks and the scalar tail. */
static void test_softmax_special_values(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    int64_t shape[2] = {3, 11};
    float v[33];
    for (int i = 0; i < 33; i++)
        v[i] = (float)(i % 11) * 0.5f - 2.0f;
    v[3] = -INFINITY;
    v[10] = -INFINITY;
    v[11 + 4] = NAN;
    v[22 + 9] = NAN;
    plx_tensor *x = tu_from_f32(ctx, 2, shape, v);
    for (int log_form = 0; log_form < 2; log_form++) {
        plx_tensor *y = NULL;
        tu_run(ctx, log_form ? "core.log_softmax" : "core.softmax", NULL, &x, 1, &y, 1);
        const float *yv = tu_f32(y);
        double want[11];
        float finite_row[11];
        for (int i = 0; i < 11; i++)
            finite_row[i] = v[i];
        softmax_reference(finite_row, (split){1, 11, 1}, log_form, want);
        for (int i = 0; i < 11; i++) {
            if (i == 3 || i == 10)
                assert_true(log_form ? (isinf(yv[i]) && yv[i] < 0) : yv[i] == 0.0f);
            else
                assert_true(fabs(yv[i] - want[i]) <= 1e-6 + 1e-6 * fabs(want[i]));
        }
        for (int i = 11; i < 33; i++)
            assert_true(isnan(yv[i]));
        plx_tensor_free(y);
    }
    plx_tensor_free(x);
    plx_context_close(ctx);
}

static void test_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 2, s23);
    plx_tensor *x32 = tu_tensor(ctx, PLX_F32, 2, s32);
    plx_tensor *xi = tu_tensor(ctx, PLX_I64, 2, s23);
    plx_softmax_attrs attrs = PLX_SOFTMAX_ATTRS_DEFAULT;
    attrs.axis = 2;
    expect_failure(ctx, "core.softmax", &attrs, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *[]){"axis 2", "f32[2,3]"}, 2);
    attrs.axis = -3;
    expect_failure(ctx, "core.log_softmax", &attrs, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *[]){"axis -3", "f32[2,3]"}, 2);
    expect_failure(ctx, "core.softmax", NULL, &xi, 1, PLX_DTYPE_MISMATCH, (const char *[]){"i64[2,3]"}, 1);
    expect_failure(ctx, "core.softmax_backward", NULL, (plx_tensor *[]){x, x32}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"f32[2,3]", "f32[3,2]"}, 2);
    expect_failure(ctx, "core.log_softmax_backward", NULL, (plx_tensor *[]){xi, x}, 2, PLX_DTYPE_MISMATCH,
                   (const char *[]){"dy", "i64[2,3]"}, 2);
    attrs.axis = 5;
    expect_failure(ctx, "core.softmax_backward", &attrs, (plx_tensor *[]){x, x}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"axis 5"}, 1);
    plx_tensor_free(x);
    plx_tensor_free(x32);
    plx_tensor_free(xi);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_softmax_axes),
        cmocka_unit_test(test_log_softmax_axes),
        cmocka_unit_test(test_softmax_strided),
        cmocka_unit_test(test_softmax_scalar),
        cmocka_unit_test(test_softmax_special_values),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
