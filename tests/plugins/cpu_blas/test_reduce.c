/*
 * test_reduce.c — the reduce family on cpu_blas: sum, mean, max and min over
 * random axis sets (contiguous or not, negative, keepdims, all axes) and
 * argmax, each against a naive double-precision reference; shapes that take
 * every kernel path (many short rows, few long rows split into segments,
 * inner blocks, non-contiguous axes); NaN, ties, empty tensors, strided
 * inputs and bad attributes.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test_util.h"

static int setup(void **state)
{
    *state = tu_open_backends("cpu_blas");
    return 0;
}

static int teardown(void **state)
{
    plx_context_close(*state);
    return 0;
}

enum { SUM, MEAN, MAX, MIN };
static const char *const reduce_ops[4] = {"core.sum", "core.mean", "core.max", "core.min"};

typedef struct shape_t {
    int32_t ndim;
    int64_t dims[PLX_MAX_DIMS];
} shape_t;

static int64_t shape_numel(const shape_t *s)
{
    int64_t n = 1;
    for (int32_t i = 0; i < s->ndim; i++)
        n *= s->dims[i];
    return n;
}

static plx_tensor *run1(plx_context *ctx, const char *op, const void *attrs, plx_tensor *x)
{
    plx_tensor *out = NULL;
    tu_run(ctx, op, attrs, &x, 1, &out, 1);
    assert_string_equal(plx_last_backend(ctx), "cpu_blas");
    return out;
}

static void assert_shape(const plx_tensor *t, const shape_t *s, plx_dtype dtype)
{
    const plx_tensor_desc *d = plx_tensor_desc_get(t);
    assert_true(plx_dtype_equal(d->dtype, dtype));
    if (d->ndim != s->ndim)
        fail_msg("result has %d dims, want %d", (int)d->ndim, (int)s->ndim);
    for (int32_t i = 0; i < s->ndim; i++)
        assert_int_equal(d->shape[i], s->dims[i]);
}

/* The reference: output shape and values in double, by visiting every input
 * element and folding it into the output element its kept indices name. */
static shape_t reduce_reference(int kind, const float *x, const shape_t *xs, const bool *reduced, bool keepdims,
                                double **out_values, double **out_abs_sums)
{
    shape_t ys = {0};
    shape_t kept = {0}; /* the output shape without keepdims' 1s */
    for (int32_t d = 0; d < xs->ndim; d++) {
        if (!reduced[d])
            kept.dims[kept.ndim++] = xs->dims[d];
        if (!reduced[d] || keepdims)
            ys.dims[ys.ndim++] = reduced[d] ? 1 : xs->dims[d];
    }
    int64_t ny = shape_numel(&kept);
    double *y = malloc((size_t)(ny > 0 ? ny : 1) * sizeof(double));
    double *abs_sum = calloc((size_t)(ny > 0 ? ny : 1), sizeof(double));
    assert_non_null(y);
    assert_non_null(abs_sum);
    for (int64_t j = 0; j < ny; j++)
        y[j] = kind == MAX ? -INFINITY : kind == MIN ? INFINITY : 0.0;
    int64_t nx = shape_numel(xs);
    for (int64_t i = 0; i < nx; i++) {
        int64_t rest = i, out = 0, stride = 1;
        for (int32_t d = xs->ndim - 1; d >= 0; d--) {
            int64_t idx = rest % xs->dims[d];
            rest /= xs->dims[d];
            if (!reduced[d]) {
                out += idx * stride;
                stride *= xs->dims[d];
            }
        }
        double v = x[i];
        abs_sum[out] += fabs(v);
        if (kind == SUM || kind == MEAN)
            y[out] += v;
        else if (isnan(y[out]) || isnan(v))
            y[out] = NAN;
        else if (kind == MAX ? v > y[out] : v < y[out])
            y[out] = v;
    }
    int64_t per_output = 1;
    for (int32_t d = 0; d < xs->ndim; d++)
        if (reduced[d])
            per_output *= xs->dims[d];
    if (kind == MEAN)
        for (int64_t j = 0; j < ny; j++) {
            y[j] = per_output == 0 ? NAN : y[j] / (double)per_output;
            abs_sum[j] = per_output == 0 ? 0.0 : abs_sum[j] / (double)per_output;
        }
    *out_values = y;
    *out_abs_sums = abs_sum;
    return ys;
}

static void check_reduce(plx_context *ctx, int kind, plx_tensor *xt, const shape_t *xs, const plx_reduce_attrs *attrs,
                         const char *label)
{
    bool reduced[PLX_MAX_DIMS] = {false};
    for (int32_t d = 0; d < xs->ndim; d++)
        reduced[d] = attrs->n_axes == 0;
    for (int32_t k = 0; k < attrs->n_axes; k++)
        reduced[attrs->axes[k] < 0 ? attrs->axes[k] + xs->ndim : attrs->axes[k]] = true;

    /* The reference reads x in logical order whatever its strides. */
    int64_t nx = shape_numel(xs);
    float *x = malloc((size_t)(nx > 0 ? nx : 1) * sizeof(float));
    assert_non_null(x);
    const plx_tensor_desc *d = plx_tensor_desc_get(xt);
    for (int64_t i = 0; i < nx; i++) {
        int64_t rest = i, offset = 0, step = 1;
        for (int32_t k = xs->ndim - 1; k >= 0; k--) {
            int64_t idx = rest % xs->dims[k];
            rest /= xs->dims[k];
            offset += idx * (d->strides != NULL ? d->strides[k] : step);
            step *= xs->dims[k];
        }
        x[i] = ((const float *)((const char *)d->data + d->byte_offset))[offset];
    }

    double *want = NULL, *abs_sum = NULL;
    shape_t ys = reduce_reference(kind, x, xs, reduced, attrs->keepdims != 0, &want, &abs_sum);
    plx_tensor *y = run1(ctx, reduce_ops[kind], attrs, xt);
    assert_shape(y, &ys, PLX_F32);
    int64_t ny = shape_numel(&ys);
    for (int64_t j = 0; j < ny; j++) {
        float got = tu_f32(y)[j];
        double w = want[j];
        bool ok;
        if (isnan(w))
            ok = isnan(got);
        else if (kind == MAX || kind == MIN)
            ok = (double)got == w;
        else
            /* Rounding the result, plus a little for cancellation within it. */
            ok = fabs((double)got - w) <= 1e-7 * fabs(w) + 2e-8 * abs_sum[j];
        if (!ok)
            fail_msg("%s %s: element %lld of %lld: got %.9g, want %.9g", reduce_ops[kind], label, (long long)j,
                     (long long)ny, (double)got, w);
    }
    plx_tensor_free(y);
    free(abs_sum);
    free(want);
    free(x);
}

static const int64_t odd_sizes[] = {1, 2, 3, 5, 7, 17};

static void random_axes(uint64_t *rng, int32_t ndim, plx_reduce_attrs *attrs)
{
    *attrs = (plx_reduce_attrs)PLX_REDUCE_ATTRS_DEFAULT;
    attrs->keepdims = (int32_t)tu_rand_int(rng, 0, 1);
    if (ndim == 0 || tu_rand_int(rng, 0, 5) == 0)
        return; /* every axis */
    int32_t perm[PLX_MAX_DIMS];
    for (int32_t i = 0; i < ndim; i++)
        perm[i] = i;
    for (int32_t i = ndim - 1; i > 0; i--) {
        int32_t j = (int32_t)tu_rand_int(rng, 0, i);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    attrs->n_axes = (int32_t)tu_rand_int(rng, 1, ndim);
    for (int32_t k = 0; k < attrs->n_axes; k++)
        attrs->axes[k] = tu_rand_int(rng, 0, 1) ? perm[k] : perm[k] - ndim;
}

static plx_tensor *random_input(plx_context *ctx, uint64_t *rng, const shape_t *s, float nan_rate)
{
    plx_tensor *t = tu_uniform(ctx, rng, s->ndim, s->dims, -2.0f, 3.0f);
    if (nan_rate > 0) {
        for (int64_t i = 0; i < shape_numel(s); i++)
            if (tu_rand_uniform(rng, 0, 1) < nan_rate)
                tu_f32(t)[i] = NAN;
    }
    return t;
}

static void test_reduce_random(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 101;
    for (int kind = 0; kind < 4; kind++) {
        for (int rep = 0; rep < 120; rep++) {
            shape_t xs;
            xs.ndim = (int32_t)tu_rand_int(&rng, 0, 5);
            for (int32_t d = 0; d < xs.ndim; d++)
                xs.dims[d] = odd_sizes[tu_rand_int(&rng, 0, 5)];
            plx_reduce_attrs attrs;
            random_axes(&rng, xs.ndim, &attrs);
            plx_tensor *x = random_input(ctx, &rng, &xs, 0);
            char label[64];
            snprintf(label, sizeof label, "random case %d", rep);
            check_reduce(ctx, kind, x, &xs, &attrs, label);
            plx_tensor_free(x);
        }
    }
}

/* Shapes chosen to take each kernel path with more than one thread. */
static void test_reduce_paths(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 102;
    static const struct {
        shape_t shape;
        int32_t n_axes;
        int32_t axes[3];
    } cases[] = {
        {{1, {200003}}, 0, {0}},             /* one long row: segments */
        {{2, {3, 70001}}, 1, {1}},           /* few long rows: segments */
        {{2, {70001, 3}}, 1, {0}},           /* long reduce, narrow inner */
        {{2, {1500, 1030}}, 1, {0}},         /* two inner blocks, segments */
        {{2, {613, 301}}, 1, {-1}},          /* many rows */
        {{2, {301, 613}}, 1, {0}},           /* one inner block */
        {{3, {3, 37, 2500}}, 1, {1}},        /* inner blocks with a tail */
        {{3, {64, 33, 50}}, 2, {0, 2}},      /* N and HW of NCHW: general path */
        {{4, {4, 300, 5, 7}}, 2, {1, 3}},    /* general path, strided innermost */
        {{4, {9, 1, 130, 1}}, 2, {3, 0}},    /* size-1 dims between reduced ones */
        {{3, {50, 1, 1}}, 2, {1, 2}},        /* only size-1 dims reduced */
        {{5, {3, 4, 5, 6, 7}}, 3, {0, 2, 4}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        plx_tensor *x = random_input(ctx, &rng, &cases[c].shape, 0);
        for (int kind = 0; kind < 4; kind++)
            for (int keep = 0; keep < 2; keep++) {
                plx_reduce_attrs attrs = PLX_REDUCE_ATTRS_DEFAULT;
                attrs.n_axes = cases[c].n_axes;
                memcpy(attrs.axes, cases[c].axes, sizeof cases[c].axes);
                attrs.keepdims = keep;
                char label[64];
                snprintf(label, sizeof label, "path case %zu", c);
                check_reduce(ctx, kind, x, &cases[c].shape, &attrs, label);
            }
        plx_tensor_free(x);
        /* NaN must survive every path of max and min. */
        x = random_input(ctx, &rng, &cases[c].shape, 0.0005f);
        for (int kind = MAX; kind <= MIN; kind++) {
            plx_reduce_attrs attrs = PLX_REDUCE_ATTRS_DEFAULT;
            attrs.n_axes = cases[c].n_axes;
            memcpy(attrs.axes, cases[c].axes, sizeof cases[c].axes);
            check_reduce(ctx, kind, x, &cases[c].shape, &attrs, "NaN");
        }
        plx_tensor_free(x);
    }
}

static void test_reduce_edges(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 103;
    /* 0-d input: all axes, with and without keepdims. */
    shape_t scalar = {0, {0}};
    plx_tensor *x = random_input(ctx, &rng, &scalar, 0);
    for (int kind = 0; kind < 4; kind++)
        for (int keep = 0; keep < 2; keep++) {
            plx_reduce_attrs attrs = PLX_REDUCE_ATTRS_DEFAULT;
            attrs.keepdims = keep;
            check_reduce(ctx, kind, x, &scalar, &attrs, "0-d");
        }
    plx_tensor_free(x);

    /* Empty reductions: the sum is 0 and the mean NaN, as in PyTorch. */
    shape_t empty = {2, {0, 3}};
    x = tu_tensor(ctx, PLX_F32, 2, empty.dims);
    plx_reduce_attrs axis0 = PLX_REDUCE_ATTRS_DEFAULT;
    axis0.n_axes = 1;
    check_reduce(ctx, SUM, x, &empty, &axis0, "empty");
    check_reduce(ctx, MEAN, x, &empty, &axis0, "empty");
    plx_tensor *y = run1(ctx, "core.sum", &axis0, x);
    assert_int_equal(plx_tensor_numel(y), 3);
    assert_true(tu_f32(y)[0] == 0.0f && tu_f32(y)[2] == 0.0f);
    plx_tensor_free(y);
    y = run1(ctx, "core.mean", NULL, x);
    assert_true(isnan(tu_f32(y)[0]));
    plx_tensor_free(y);
    plx_tensor_free(x);
    /* An empty kept axis gives an empty result, for max too. */
    shape_t empty_kept = {2, {3, 0}};
    x = tu_tensor(ctx, PLX_F32, 2, empty_kept.dims);
    for (int kind = 0; kind < 4; kind++)
        check_reduce(ctx, kind, x, &empty_kept, &axis0, "empty kept axis");
    plx_tensor_free(x);

    /* Exact values: a sum whose float accumulation would drift. */
    shape_t big = {1, {1 << 20}};
    x = tu_tensor(ctx, PLX_F32, 1, big.dims);
    for (int64_t i = 0; i < big.dims[0]; i++)
        tu_f32(x)[i] = i % 2 ? 0.1f : 1e4f;
    y = run1(ctx, "core.sum", NULL, x);
    double want = (double)(1 << 19) * 1e4 + (double)(1 << 19) * (double)0.1f;
    assert_true(fabs((double)tu_f32(y)[0] - want) <= 1e-6 * want);
    plx_tensor_free(y);
    y = run1(ctx, "core.mean", NULL, x);
    assert_true(fabs((double)tu_f32(y)[0] - want / (1 << 20)) <= 1e-6 * want / (1 << 20));
    plx_tensor_free(y);
    plx_tensor_free(x);
}

/* A transposed view and an every-other-column view with a byte offset. */
static void test_reduce_strided(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 104;
    plx_tensor *base = tu_uniform(ctx, &rng, 2, (const int64_t[]){37, 46}, -2, 2);
    for (int every_other = 0; every_other < 2; every_other++) {
        plx_tensor_desc d = *plx_tensor_desc_get(base);
        int64_t shape[2], strides[2];
        if (every_other) {
            shape[0] = 37, shape[1] = 23, strides[0] = 46, strides[1] = 2;
            d.byte_offset = sizeof(float);
        } else {
            shape[0] = 46, shape[1] = 37, strides[0] = 1, strides[1] = 46;
        }
        d.shape = shape;
        d.strides = strides;
        plx_tensor *view = NULL;
        assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &view), PLX_OK);
        shape_t vs = {2, {shape[0], shape[1]}};
        for (int kind = 0; kind < 4; kind++)
            for (int32_t axis = -1; axis < 2; axis++) {
                plx_reduce_attrs attrs = PLX_REDUCE_ATTRS_DEFAULT;
                attrs.n_axes = axis < 0 ? 0 : 1;
                attrs.axes[0] = axis;
                check_reduce(ctx, kind, view, &vs, &attrs, "strided");
            }
        plx_tensor_free(view);
    }
    plx_tensor_free(base);
}

/* ---- argmax ------------------------------------------------------------ */

static void check_argmax(plx_context *ctx, plx_tensor *xt, const shape_t *xs, int32_t axis_attr, int32_t keepdims)
{
    const plx_argmax_attrs attrs = {sizeof attrs, axis_attr, keepdims};
    const int32_t axis = axis_attr < 0 ? axis_attr + xs->ndim : axis_attr;
    plx_tensor *y = run1(ctx, "core.argmax", &attrs, xt);
    shape_t ys = {0};
    int64_t outer = 1, inner = 1;
    for (int32_t d = 0; d < xs->ndim; d++) {
        if (d != axis || keepdims)
            ys.dims[ys.ndim++] = d == axis ? 1 : xs->dims[d];
        if (d < axis)
            outer *= xs->dims[d];
        if (d > axis)
            inner *= xs->dims[d];
    }
    assert_shape(y, &ys, PLX_I64);
    const float *x = tu_f32(xt);
    const int64_t *got = plx_tensor_data(y);
    const int64_t n = xs->dims[axis];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t best = 0;
            for (int64_t r = 0; r < n; r++) {
                float v = x[(o * n + r) * inner + i], b = x[(o * n + best) * inner + i];
                if (isnan(b))
                    break;
                if (isnan(v) || v > b)
                    best = r;
            }
            if (got[o * inner + i] != best)
                fail_msg("argmax axis %d of a %d-dim tensor: output (%lld, %lld) is %lld, want %lld", (int)axis_attr,
                         (int)xs->ndim, (long long)o, (long long)i, (long long)got[o * inner + i], (long long)best);
        }
    plx_tensor_free(y);
}

static void test_argmax(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 105;
    for (int rep = 0; rep < 150; rep++) {
        shape_t xs;
        xs.ndim = (int32_t)tu_rand_int(&rng, 1, 4);
        for (int32_t d = 0; d < xs.ndim; d++)
            xs.dims[d] = odd_sizes[tu_rand_int(&rng, 0, 5)];
        plx_tensor *x = tu_tensor(ctx, PLX_F32, xs.ndim, xs.dims);
        /* A coarse grid makes ties frequent; some cases get NaNs. */
        bool with_nan = rep % 4 == 3;
        for (int64_t i = 0; i < shape_numel(&xs); i++)
            tu_f32(x)[i] = with_nan && tu_rand_int(&rng, 0, 7) == 0 ? NAN : (float)tu_rand_int(&rng, -3, 3);
        int32_t axis = (int32_t)tu_rand_int(&rng, -xs.ndim, xs.ndim - 1);
        check_argmax(ctx, x, &xs, axis, (int32_t)tu_rand_int(&rng, 0, 1));
        plx_tensor_free(x);
    }
    /* Bigger ones for the parallel paths (rows and inner blocks). */
    static const shape_t big[] = {{2, {401, 307}}, {3, {5, 301, 263}}, {1, {100003}}};
    for (size_t k = 0; k < sizeof big / sizeof big[0]; k++) {
        plx_tensor *x = tu_uniform(ctx, &rng, big[k].ndim, big[k].dims, -1, 1);
        for (int64_t i = 0; i < shape_numel(&big[k]); i += 977)
            tu_f32(x)[i] = NAN;
        for (int32_t axis = 0; axis < big[k].ndim; axis++)
            check_argmax(ctx, x, &big[k], axis, 0);
        plx_tensor_free(x);
    }
    /* Explicit: ties give the first index, NaN is the maximum. */
    const float vals[8] = {1, 3, 3, 2, 1, NAN, 5, NAN};
    plx_tensor *x = tu_from_f32(ctx, 2, (const int64_t[]){2, 4}, vals);
    const plx_argmax_attrs last = PLX_ARGMAX_ATTRS_DEFAULT;
    plx_tensor *y = run1(ctx, "core.argmax", &last, x);
    assert_int_equal(((const int64_t *)plx_tensor_data(y))[0], 1);
    assert_int_equal(((const int64_t *)plx_tensor_data(y))[1], 1);
    plx_tensor_free(y);
    plx_tensor_free(x);
}

/* ---- Bad input --------------------------------------------------------- */

static void expect_failure(plx_context *ctx, const char *op, const void *attrs, plx_tensor *x, plx_status want,
                           const char *const *fragments, size_t n_fragments)
{
    plx_tensor *out = NULL;
    plx_status st = plx_op_run(ctx, op, attrs, &x, 1, &out, 1);
    if (st != want)
        fail_msg("%s: got %s, want %s (%s)", op, plx_status_name(st), plx_status_name(want), plx_last_error(ctx));
    assert_null(out);
    const char *msg = plx_last_error(ctx);
    if (strstr(msg, op) == NULL)
        fail_msg("%s: message does not name the op: %s", op, msg);
    for (size_t i = 0; i < n_fragments; i++)
        if (strstr(msg, fragments[i]) == NULL)
            fail_msg("%s: message lacks \"%s\": %s", op, fragments[i], msg);
}

static void test_bad_input(void **state)
{
    plx_context *ctx = *state;
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 2, (const int64_t[]){2, 3});
    plx_tensor *xi = tu_tensor(ctx, PLX_I64, 2, (const int64_t[]){2, 3});
    plx_tensor *empty = tu_tensor(ctx, PLX_F32, 2, (const int64_t[]){0, 3});

    plx_reduce_attrs a = PLX_REDUCE_ATTRS_DEFAULT;
    a.n_axes = 1;
    a.axes[0] = 2;
    const char *f_range[] = {"axis 2", "f32[2,3]"};
    for (int k = 0; k < 4; k++)
        expect_failure(ctx, reduce_ops[k], &a, x, PLX_INVALID_ARGUMENT, f_range, 2);
    a.axes[0] = -3;
    const char *f_neg[] = {"axis -3", "f32[2,3]"};
    expect_failure(ctx, "core.sum", &a, x, PLX_INVALID_ARGUMENT, f_neg, 2);

    a.n_axes = 2;
    a.axes[0] = 1;
    a.axes[1] = -1;
    const char *f_rep[] = {"twice", "f32[2,3]"};
    expect_failure(ctx, "core.mean", &a, x, PLX_INVALID_ARGUMENT, f_rep, 2);

    a.n_axes = 3;
    a.axes[0] = 0, a.axes[1] = 1, a.axes[2] = 0;
    const char *f_count[] = {"n_axes", "f32[2,3]"};
    expect_failure(ctx, "core.max", &a, x, PLX_INVALID_ARGUMENT, f_count, 2);
    a.n_axes = -1;
    expect_failure(ctx, "core.min", &a, x, PLX_INVALID_ARGUMENT, f_count, 2);

    a = (plx_reduce_attrs)PLX_REDUCE_ATTRS_DEFAULT;
    a.keepdims = 2;
    const char *f_keep[] = {"keepdims"};
    expect_failure(ctx, "core.sum", &a, x, PLX_INVALID_ARGUMENT, f_keep, 1);

    const char *f_dtype[] = {"i64[2,3]"};
    expect_failure(ctx, "core.sum", NULL, xi, PLX_DTYPE_MISMATCH, f_dtype, 1);
    expect_failure(ctx, "core.argmax", NULL, xi, PLX_DTYPE_MISMATCH, f_dtype, 1);

    /* max/min/argmax of nothing are errors (PyTorch); the sum is not. */
    a = (plx_reduce_attrs)PLX_REDUCE_ATTRS_DEFAULT;
    const char *f_empty[] = {"no elements", "f32[0,3]"};
    expect_failure(ctx, "core.max", &a, empty, PLX_INVALID_ARGUMENT, f_empty, 2);
    expect_failure(ctx, "core.min", NULL, empty, PLX_INVALID_ARGUMENT, f_empty, 2);
    const plx_argmax_attrs am0 = {sizeof am0, 0, 0};
    expect_failure(ctx, "core.argmax", &am0, empty, PLX_INVALID_ARGUMENT, f_empty, 2);
    a.n_axes = 1;
    a.axes[0] = 1;
    plx_tensor *y = run1(ctx, "core.max", &a, empty); /* reducing the non-empty axis is fine */
    assert_int_equal(plx_tensor_numel(y), 0);
    plx_tensor_free(y);

    const plx_argmax_attrs am_bad = {sizeof am_bad, 2, 0};
    expect_failure(ctx, "core.argmax", &am_bad, x, PLX_INVALID_ARGUMENT, f_range, 2);
    const plx_argmax_attrs am_keep = {sizeof am_keep, 0, -1};
    expect_failure(ctx, "core.argmax", &am_keep, x, PLX_INVALID_ARGUMENT, f_keep, 1);

    plx_tensor_free(empty);
    plx_tensor_free(xi);
    plx_tensor_free(x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reduce_random),
        cmocka_unit_test(test_reduce_paths),
        cmocka_unit_test(test_reduce_edges),
        cmocka_unit_test(test_reduce_strided),
        cmocka_unit_test(test_argmax),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
