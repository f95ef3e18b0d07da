/* Tests of the pool family on cpu_blas: max/avg pooling and their backward
 * ops against naive references in double (PyTorch's window, ceil_mode and
 * divisor rules), finite differences, PyTorch fixtures, global average
 * pooling, a strided input and bad input. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test_util.h"

typedef struct pool_case {
    int64_t n, c, h, w;
    int32_t kernel[2], stride[2], padding[2], dilation[2];
    int32_t ceil_mode, count_include_pad;
} pool_case;

#define PCASE(n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil, incl)                                  \
    {n, c, h, w, {kh, kw}, {sh, sw}, {ph, pw}, {dh, dw}, ceil, incl}

static plx_pool2d_attrs attrs_of(const pool_case *c)
{
    plx_pool2d_attrs a = PLX_POOL2D_ATTRS_DEFAULT;
    memcpy(a.kernel, c->kernel, sizeof a.kernel);
    memcpy(a.stride, c->stride, sizeof a.stride);
    memcpy(a.padding, c->padding, sizeof a.padding);
    memcpy(a.dilation, c->dilation, sizeof a.dilation);
    a.ceil_mode = c->ceil_mode;
    a.count_include_pad = c->count_include_pad;
    return a;
}

/* Geometry of one axis as the reference sees it. */
typedef struct axis {
    int64_t in, kernel, stride, pad, dil, out;
} axis;

static axis make_axis(int64_t in, int32_t kernel, int32_t stride, int32_t pad, int32_t dil, int32_t ceil_mode)
{
    axis a = {in, kernel, stride ? stride : kernel, pad, dil, 0};
    int64_t numerator = in + 2 * pad - dil * (kernel - 1) - 1;
    if (ceil_mode) {
        a.out = (numerator + a.stride - 1) / a.stride + 1;
        /* PyTorch: the last window must start inside the input or the left padding. */
        if ((a.out - 1) * a.stride >= in + pad)
            a.out--;
    } else {
        a.out = numerator / a.stride + 1;
    }
    return a;
}

static void case_axes(const pool_case *c, bool is_max, axis *ah, axis *aw)
{
    *ah = make_axis(c->h, c->kernel[0], c->stride[0], c->padding[0], is_max ? c->dilation[0] : 1, c->ceil_mode);
    *aw = make_axis(c->w, c->kernel[1], c->stride[1], c->padding[1], is_max ? c->dilation[1] : 1, c->ceil_mode);
}

/* Max pooling: y and, when dy is given, dx (the gradient goes to the first
 * maximum of each window in row-major order). */
static void reference_max(const pool_case *c, const float *x, const float *dy, float *y, float *dx)
{
    axis ah, aw;
    case_axes(c, true, &ah, &aw);
    int64_t planes = c->n * c->c;
    double *acc = calloc((size_t)(planes * c->h * c->w) + 1, sizeof(double));
    assert_non_null(acc);
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t oh = 0; oh < ah.out; oh++)
            for (int64_t ow = 0; ow < aw.out; ow++) {
                int64_t best = -1;
                double best_v = -INFINITY;
                for (int64_t r = 0; r < ah.kernel; r++)
                    for (int64_t s = 0; s < aw.kernel; s++) {
                        int64_t ih = oh * ah.stride - ah.pad + r * ah.dil, iw = ow * aw.stride - aw.pad + s * aw.dil;
                        if (ih < 0 || ih >= c->h || iw < 0 || iw >= c->w)
                            continue;
                        int64_t i = (pl * c->h + ih) * c->w + iw;
                        if (best < 0 || x[i] > best_v || isnan(x[i])) {
                            best = i;
                            best_v = x[i];
                        }
                    }
                int64_t yi = (pl * ah.out + oh) * aw.out + ow;
                if (y != NULL)
                    y[yi] = (float)best_v;
                if (dy != NULL && best >= 0)
                    acc[best] += dy[yi];
            }
    for (int64_t i = 0; dx != NULL && i < planes * c->h * c->w; i++)
        dx[i] = (float)acc[i];
    free(acc);
}

static void reference_avg(const pool_case *c, const float *x, const float *dy, float *y, float *dx)
{
    axis ah, aw;
    case_axes(c, false, &ah, &aw);
    int64_t planes = c->n * c->c;
    double *acc = calloc((size_t)(planes * c->h * c->w) + 1, sizeof(double));
    assert_non_null(acc);
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t oh = 0; oh < ah.out; oh++)
            for (int64_t ow = 0; ow < aw.out; ow++) {
                /* The window, clipped to the padded input, then to the input. */
                int64_t h0 = oh * ah.stride - ah.pad, w0 = ow * aw.stride - aw.pad;
                int64_t h1 = h0 + ah.kernel, w1 = w0 + aw.kernel;
                if (h1 > c->h + ah.pad)
                    h1 = c->h + ah.pad;
                if (w1 > c->w + aw.pad)
                    w1 = c->w + aw.pad;
                int64_t padded_count = (h1 - h0) * (w1 - w0), inside = 0;
                double sum = 0.0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++)
                        if (ih >= 0 && ih < c->h && iw >= 0 && iw < c->w) {
                            sum += x[(pl * c->h + ih) * c->w + iw];
                            inside++;
                        }
                double divisor = (double)(c->count_include_pad ? padded_count : inside);
                int64_t yi = (pl * ah.out + oh) * aw.out + ow;
                if (y != NULL)
                    y[yi] = (float)(sum / divisor);
                for (int64_t ih = h0; dy != NULL && ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++)
                        if (ih >= 0 && ih < c->h && iw >= 0 && iw < c->w)
                            acc[(pl * c->h + ih) * c->w + iw] += dy[yi] / divisor;
            }
    for (int64_t i = 0; dx != NULL && i < planes * c->h * c->w; i++)
        dx[i] = (float)acc[i];
    free(acc);
}

/* x of distinct values in [-1, 1], evenly spaced (at least 0.005 apart in
 * the tensors probed by finite differences) in a shuffled order, so no
 * window has a tie and finite differences never cross a kink. */
static plx_tensor *distinct_values(plx_context *ctx, uint64_t *rng, const int64_t *shape)
{
    plx_tensor *t = tu_tensor(ctx, PLX_F32, 4, shape);
    int64_t n = plx_tensor_numel(t);
    float *p = tu_f32(t);
    double spacing = n > 200 ? 2.0 / (double)n : 0.01;
    for (int64_t i = 0; i < n; i++)
        p[i] = (float)((double)(i - n / 2) * spacing);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = tu_rand_int(rng, 0, i);
        float tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return t;
}

static void check_case(plx_context *ctx, uint64_t *rng, const pool_case *c, bool is_max, bool with_fd)
{
    axis ah, aw;
    case_axes(c, is_max, &ah, &aw);
    int64_t xd[4] = {c->n, c->c, c->h, c->w}, yd[4] = {c->n, c->c, ah.out, aw.out};
    plx_tensor *x = distinct_values(ctx, rng, xd);
    plx_tensor *dy = tu_uniform(ctx, rng, 4, yd, -1.0f, 1.0f);
    plx_pool2d_attrs a = attrs_of(c);
    const char *fwd = is_max ? "core.max_pool2d" : "core.avg_pool2d";
    const char *bwd = is_max ? "core.max_pool2d_backward" : "core.avg_pool2d_backward";
    char what[200];
    snprintf(what, sizeof what, "%s x [%lld,%lld,%lld,%lld] k %d,%d s %d,%d p %d,%d d %d,%d ceil %d incl %d", fwd,
             (long long)c->n, (long long)c->c, (long long)c->h, (long long)c->w, c->kernel[0], c->kernel[1],
             c->stride[0], c->stride[1], c->padding[0], c->padding[1], c->dilation[0], c->dilation[1], c->ceil_mode,
             c->count_include_pad);

    plx_tensor *y = NULL, *dx = NULL;
    tu_run(ctx, fwd, &a, &x, 1, &y, 1);
    const plx_tensor_desc *d = plx_tensor_desc_get(y);
    for (int i = 0; i < 4; i++)
        if (d->shape[i] != yd[i])
            fail_msg("%s: output dim %d is %lld, want %lld", what, i, (long long)d->shape[i], (long long)yd[i]);
    int64_t ny = plx_tensor_numel(y), nx = plx_tensor_numel(x);
    float *want_y = malloc((size_t)ny * sizeof(float) + 4), *want_dx = malloc((size_t)nx * sizeof(float) + 4);
    assert_non_null(want_y);
    assert_non_null(want_dx);
    if (is_max)
        reference_max(c, tu_f32(x), tu_f32(dy), want_y, want_dx);
    else
        reference_avg(c, tu_f32(x), tu_f32(dy), want_y, want_dx);
    tu_assert_close(tu_f32(y), want_y, ny, 1e-6f, 1e-5f, what);

    tu_run(ctx, bwd, &a, (plx_tensor *[]){dy, x}, 2, &dx, 1);
    tu_assert_close(tu_f32(dx), want_dx, nx, 1e-6f, 1e-5f, what);
    if (with_fd)
        tu_check_fd(ctx, fwd, &a, &x, 1, 1, 0, tu_f32(dy), 0, tu_f32(dx), 80, 1e-3f, 5e-3f);

    free(want_y);
    free(want_dx);
    plx_tensor_free(x);
    plx_tensor_free(dy);
    plx_tensor_free(y);
    plx_tensor_free(dx);
}

static const pool_case common_cases[] = {
    PCASE(2, 3, 8, 8, 2, 2, 0, 0, 0, 0, 1, 1, 0, 1),     /* the usual 2x2, stride = kernel */
    PCASE(1, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1),     /* overlapping, padded */
    PCASE(2, 1, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1),     /* ceil_mode */
    PCASE(1, 3, 5, 8, 2, 3, 2, 2, 1, 1, 1, 1, 1, 0),     /* ceil rule drops a row; clipped last column */
    PCASE(3, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1),     /* 1x1 everything */
    PCASE(1, 2, 17, 3, 5, 3, 3, 1, 2, 1, 1, 1, 1, 0),    /* odd sizes, stride 1 on W */
    PCASE(2, 2, 6, 11, 4, 2, 1, 3, 2, 1, 1, 1, 1, 1),    /* even kernel with pad = kernel / 2 */
    PCASE(1, 1, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0),
    PCASE(4, 33, 16, 16, 3, 3, 2, 2, 1, 1, 1, 1, 0, 1),  /* enough planes to run on several threads */
};

static void test_max_pool(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 21;
    for (size_t i = 0; i < sizeof common_cases / sizeof common_cases[0]; i++)
        check_case(ctx, &rng, &common_cases[i], true, common_cases[i].n * common_cases[i].c < 10);
    /* Dilation (max pooling only). */
    static const pool_case dilated[] = {
        PCASE(2, 2, 9, 10, 3, 2, 1, 2, 1, 1, 2, 3, 0, 1),
        PCASE(1, 3, 11, 7, 3, 3, 2, 2, 1, 1, 2, 2, 1, 1),
    };
    for (size_t i = 0; i < sizeof dilated / sizeof dilated[0]; i++)
        check_case(ctx, &rng, &dilated[i], true, true);
    plx_context_close(ctx);
}

static void test_avg_pool(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 22;
    for (size_t i = 0; i < sizeof common_cases / sizeof common_cases[0]; i++) {
        pool_case c = common_cases[i];
        for (int incl = 0; incl < 2; incl++) {
            c.count_include_pad = incl;
            /* Dilation is not an avg pooling attribute: it must be ignored. */
            c.dilation[0] = 3;
            check_case(ctx, &rng, &c, false, c.n * c.c < 10);
        }
    }
    plx_context_close(ctx);
}

/* Equal values: the gradient goes to the first tap of each window. NaN: it
 * wins the window. */
static void test_max_pool_ties_and_nan(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    pool_case c = PCASE(1, 1, 4, 5, 3, 3, 1, 2, 1, 1, 1, 1, 0, 1);
    int64_t xd[4] = {1, 1, 4, 5};
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, xd);
    for (int i = 0; i < 20; i++)
        tu_f32(x)[i] = 0.5f;
    axis ah, aw;
    case_axes(&c, true, &ah, &aw);
    int64_t yd[4] = {1, 1, ah.out, aw.out};
    plx_tensor *dy = tu_tensor(ctx, PLX_F32, 4, yd);
    for (int64_t i = 0; i < plx_tensor_numel(dy); i++)
        tu_f32(dy)[i] = (float)(i + 1);
    plx_pool2d_attrs a = attrs_of(&c);
    plx_tensor *y = NULL, *dx = NULL;
    float want_dx[20];
    tu_run(ctx, "core.max_pool2d_backward", &a, (plx_tensor *[]){dy, x}, 2, &dx, 1);
    reference_max(&c, tu_f32(x), tu_f32(dy), NULL, want_dx);
    tu_assert_close(tu_f32(dx), want_dx, 20, 0.0f, 0.0f, "max_pool2d_backward with ties");
    /* Window (0,0) covers rows 0..1, cols 0..1: its first tap is x[0]. */
    assert_true(tu_f32(dx)[0] >= 1.0f);
    plx_tensor_free(dx);

    tu_f32(x)[6] = NAN;
    dx = NULL;
    tu_run(ctx, "core.max_pool2d", &a, &x, 1, &y, 1);
    tu_run(ctx, "core.max_pool2d_backward", &a, (plx_tensor *[]){dy, x}, 2, &dx, 1);
    float want_y[20];
    reference_max(&c, tu_f32(x), tu_f32(dy), want_y, want_dx);
    tu_assert_close(tu_f32(y), want_y, plx_tensor_numel(y), 0.0f, 0.0f, "max_pool2d with a NaN");
    assert_true(isnan(tu_f32(y)[0]));
    tu_assert_close(tu_f32(dx), want_dx, 20, 0.0f, 0.0f, "max_pool2d_backward with a NaN");
    plx_tensor_free(x);
    plx_tensor_free(dy);
    plx_tensor_free(y);
    plx_tensor_free(dx);
    plx_context_close(ctx);
}

static void test_global_avg_pool(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 23;
    static const int64_t shapes[][4] = {{2, 3, 5, 7}, {1, 1, 1, 1}, {3, 17, 1, 9}, {2, 4, 33, 31}, {0, 2, 3, 3}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int64_t *xd = shapes[s];
        int64_t yd[4] = {xd[0], xd[1], 1, 1}, planes = xd[0] * xd[1], hw = xd[2] * xd[3];
        plx_tensor *x = tu_uniform(ctx, &rng, 4, xd, -1.0f, 1.0f);
        plx_tensor *dy = tu_uniform(ctx, &rng, 4, yd, -1.0f, 1.0f);
        plx_tensor *y = NULL, *dx = NULL;
        tu_run(ctx, "core.global_avg_pool2d", NULL, &x, 1, &y, 1);
        tu_run(ctx, "core.global_avg_pool2d_backward", NULL, (plx_tensor *[]){dy, x}, 2, &dx, 1);
        const plx_tensor_desc *d = plx_tensor_desc_get(y);
        assert_int_equal(d->ndim, 4);
        for (int i = 0; i < 4; i++)
            assert_int_equal(d->shape[i], yd[i]);
        float *want_y = malloc((size_t)planes * sizeof(float) + 4);
        float *want_dx = malloc((size_t)(planes * hw) * sizeof(float) + 4);
        assert_non_null(want_y);
        assert_non_null(want_dx);
        for (int64_t p = 0; p < planes; p++) {
            double sum = 0.0;
            for (int64_t i = 0; i < hw; i++) {
                sum += tu_f32(x)[p * hw + i];
                want_dx[p * hw + i] = (float)((double)tu_f32(dy)[p] / (double)hw);
            }
            want_y[p] = (float)(sum / (double)hw);
        }
        tu_assert_close(tu_f32(y), want_y, planes, 1e-6f, 1e-5f, "global_avg_pool2d");
        tu_assert_close(tu_f32(dx), want_dx, planes * hw, 1e-7f, 1e-6f, "global_avg_pool2d_backward");
        if (planes > 0 && planes * hw < 200)
            tu_check_fd(ctx, "core.global_avg_pool2d", NULL, &x, 1, 1, 0, tu_f32(dy), 0, tu_f32(dx), 50, 1e-2f,
                        2e-3f);
        free(want_y);
        free(want_dx);
        plx_tensor_free(x);
        plx_tensor_free(dy);
        plx_tensor_free(y);
        plx_tensor_free(dx);
    }
    plx_context_close(ctx);
}

static float *fixture(const char *name, size_t want_count)
{
    size_t count = 0;
    float *v = tu_fixture_f32(name, &count);
    if (count != want_count)
        fail_msg("fixture %s has %zu values, want %zu", name, count, want_count);
    return v;
}

/* Results of torch.nn.functional.max_pool2d / avg_pool2d and autograd, from
 * tests/fixtures/conv_pool/gen.py. */
static void test_pool_pytorch_fixtures(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    {
        pool_case c = PCASE(2, 3, 5, 9, 2, 3, 2, 2, 1, 1, 1, 2, 1, 1);
        int64_t xd[4] = {2, 3, 5, 9}, yd[4] = {2, 3, 3, 4};
        float *xv = fixture("conv_pool/maxpool_x.f32", 270), *yv = fixture("conv_pool/maxpool_y.f32", 72);
        float *dyv = fixture("conv_pool/maxpool_dy.f32", 72), *dxv = fixture("conv_pool/maxpool_dx.f32", 270);
        plx_tensor *x = tu_from_f32(ctx, 4, xd, xv), *dy = tu_from_f32(ctx, 4, yd, dyv), *y = NULL, *dx = NULL;
        plx_pool2d_attrs a = attrs_of(&c);
        tu_run(ctx, "core.max_pool2d", &a, &x, 1, &y, 1);
        assert_int_equal(plx_tensor_numel(y), 72);
        tu_run(ctx, "core.max_pool2d_backward", &a, (plx_tensor *[]){dy, x}, 2, &dx, 1);
        tu_assert_close(tu_f32(y), yv, 72, 0.0f, 0.0f, "max_pool2d vs PyTorch");
        tu_assert_close(tu_f32(dx), dxv, 270, 1e-6f, 1e-6f, "max_pool2d_backward vs PyTorch");
        free(xv), free(yv), free(dyv), free(dxv);
        plx_tensor_free(x), plx_tensor_free(dy), plx_tensor_free(y), plx_tensor_free(dx);
    }
    for (int incl = 0; incl < 2; incl++) {
        pool_case c = PCASE(2, 3, 5, 8, 2, 3, 2, 2, 1, 1, 1, 1, 1, incl);
        int64_t xd[4] = {2, 3, 5, 8}, yd[4] = {2, 3, 3, 5};
        char name[64];
        float *xv = fixture("conv_pool/avgpool_x.f32", 240);
        snprintf(name, sizeof name, "conv_pool/avgpool_%s_y.f32", incl ? "incl" : "excl");
        float *yv = fixture(name, 90);
        snprintf(name, sizeof name, "conv_pool/avgpool_%s_dy.f32", incl ? "incl" : "excl");
        float *dyv = fixture(name, 90);
        snprintf(name, sizeof name, "conv_pool/avgpool_%s_dx.f32", incl ? "incl" : "excl");
        float *dxv = fixture(name, 240);
        plx_tensor *x = tu_from_f32(ctx, 4, xd, xv), *dy = tu_from_f32(ctx, 4, yd, dyv), *y = NULL, *dx = NULL;
        plx_pool2d_attrs a = attrs_of(&c);
        tu_run(ctx, "core.avg_pool2d", &a, &x, 1, &y, 1);
        assert_int_equal(plx_tensor_numel(y), 90);
        tu_run(ctx, "core.avg_pool2d_backward", &a, (plx_tensor *[]){dy, x}, 2, &dx, 1);
        tu_assert_close(tu_f32(y), yv, 90, 1e-6f, 1e-5f, incl ? "avg_pool2d (count_include_pad) vs PyTorch"
                                                               : "avg_pool2d (no count_include_pad) vs PyTorch");
        tu_assert_close(tu_f32(dx), dxv, 240, 1e-6f, 1e-5f, "avg_pool2d_backward vs PyTorch");
        free(xv), free(yv), free(dyv), free(dxv);
        plx_tensor_free(x), plx_tensor_free(dy), plx_tensor_free(y), plx_tensor_free(dx);
    }
    plx_context_close(ctx);
}

/* x given as a view with H and W swapped through strides. */
static void test_pool_strided_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 24;
    int64_t base_shape[4] = {2, 3, 9, 7};
    plx_tensor *base = tu_uniform(ctx, &rng, 4, base_shape, -1.0f, 1.0f);
    int64_t xd[4] = {2, 3, 7, 9}, strides[4] = {3 * 63, 63, 1, 7};
    plx_tensor_desc view = {plx_tensor_data(base), {PLX_DL_CPU, 0}, 4, PLX_F32, xd, strides, 0};
    plx_tensor *x = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &view, NULL, NULL, &x), PLX_OK);
    pool_case c = PCASE(2, 3, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1);
    plx_pool2d_attrs a = attrs_of(&c);
    float *compact = malloc(2 * 3 * 63 * sizeof(float));
    assert_non_null(compact);
    for (int64_t p = 0; p < 6; p++)
        for (int64_t i = 0; i < 7; i++)
            for (int64_t j = 0; j < 9; j++)
                compact[(p * 7 + i) * 9 + j] = tu_f32(base)[p * 63 + j * 7 + i];
    plx_tensor *y = NULL;
    tu_run(ctx, "core.max_pool2d", &a, &x, 1, &y, 1);
    float want[2 * 3 * 4 * 5];
    assert_int_equal(plx_tensor_numel(y), 120);
    reference_max(&c, compact, NULL, want, NULL);
    tu_assert_close(tu_f32(y), want, 120, 0.0f, 0.0f, "max_pool2d of a strided view");
    plx_tensor_free(y);
    y = NULL;
    tu_run(ctx, "core.avg_pool2d", &a, &x, 1, &y, 1);
    reference_avg(&c, compact, NULL, want, NULL);
    tu_assert_close(tu_f32(y), want, 120, 1e-6f, 1e-5f, "avg_pool2d of a strided view");
    free(compact);
    plx_tensor_free(y);
    plx_tensor_free(x);
    plx_tensor_free(base);
    plx_context_close(ctx);
}

static void expect_failure(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs,
                           size_t n_in, plx_status want, const char *const *substrings)
{
    plx_tensor *y = NULL;
    plx_status st = plx_op_run(ctx, op, attrs, inputs, n_in, &y, 1);
    if (st != want)
        fail_msg("%s: want %s, got %s (%s)", op, plx_status_name(want), plx_status_name(st), plx_last_error(ctx));
    assert_null(y);
    const char *msg = plx_last_error(ctx);
    for (const char *const *s = substrings; *s != NULL; s++)
        if (strstr(msg, *s) == NULL)
            fail_msg("error message \"%s\" lacks \"%s\"", msg, *s);
}

static void test_pool_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){1, 2, 4, 4});
    plx_tensor *x3 = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){2, 4, 4});
    plx_tensor *xi = tu_tensor(ctx, PLX_I64, 4, (int64_t[]){1, 2, 4, 4});
    plx_tensor *x0 = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){1, 0, 4, 4});
    plx_pool2d_attrs a = PLX_POOL2D_ATTRS_DEFAULT;

    expect_failure(ctx, "core.max_pool2d", &a, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *[]){"core.max_pool2d", "kernel (0,0) must be > 0", NULL});
    expect_failure(ctx, "core.avg_pool2d", NULL, &x, 1, PLX_INVALID_ARGUMENT, (const char *[]){"kernel", NULL});
    a.kernel[0] = a.kernel[1] = 3;
    a.padding[1] = 2;
    expect_failure(ctx, "core.max_pool2d", &a, &x, 1, PLX_INVALID_ARGUMENT,
                   (const char *[]){"padding (0,2)", "at most half the kernel (3,3)", NULL});
    expect_failure(ctx, "core.avg_pool2d", &a, &x, 1, PLX_INVALID_ARGUMENT, (const char *[]){"padding (0,2)", NULL});
    a.padding[1] = 0;
    a.kernel[0] = 7;
    a.padding[0] = 1;
    expect_failure(ctx, "core.max_pool2d", &a, &x, 1, PLX_SHAPE_MISMATCH,
                   (const char *[]){"kernel larger than padded input", "f32[1,2,4,4]", NULL});
    a.kernel[0] = 3;
    a.padding[0] = 0;
    a.stride[0] = -1;
    expect_failure(ctx, "core.avg_pool2d", &a, &x, 1, PLX_INVALID_ARGUMENT, (const char *[]){"stride (-1,0)", NULL});
    a.stride[0] = 0;
    a.dilation[1] = 0;
    expect_failure(ctx, "core.max_pool2d", &a, &x, 1, PLX_INVALID_ARGUMENT, (const char *[]){"dilation (1,0)", NULL});
    a.dilation[1] = 1;
    expect_failure(ctx, "core.max_pool2d", &a, &x3, 1, PLX_SHAPE_MISMATCH,
                   (const char *[]){"must have 4 dims", "f32[2,4,4]", NULL});
    expect_failure(ctx, "core.max_pool2d", &a, &xi, 1, PLX_DTYPE_MISMATCH, (const char *[]){"i64[1,2,4,4]", NULL});
    expect_failure(ctx, "core.avg_pool2d", &a, &x0, 1, PLX_SHAPE_MISMATCH,
                   (const char *[]){"non-zero channels", "f32[1,0,4,4]", NULL});

    /* Backward: dy must have the pooled shape (here [1,2,1,1]). */
    plx_tensor *dy = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){1, 2, 2, 2});
    expect_failure(ctx, "core.max_pool2d_backward", &a, (plx_tensor *[]){dy, x}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"core.max_pool2d_backward", "dy f32[1,2,2,2]", "pooled shape f32[1,2,1,1]", NULL});
    expect_failure(ctx, "core.avg_pool2d_backward", &a, (plx_tensor *[]){dy, x}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"pooled shape", NULL});
    expect_failure(ctx, "core.avg_pool2d_backward", &a, (plx_tensor *[]){xi, x}, 2, PLX_DTYPE_MISMATCH,
                   (const char *[]){"i64", NULL});

    expect_failure(ctx, "core.global_avg_pool2d", NULL, &x3, 1, PLX_SHAPE_MISMATCH,
                   (const char *[]){"core.global_avg_pool2d", "f32[2,4,4]", NULL});
    expect_failure(ctx, "core.global_avg_pool2d", NULL, &x0, 1, PLX_SHAPE_MISMATCH,
                   (const char *[]){"non-zero", NULL});
    expect_failure(ctx, "core.global_avg_pool2d_backward", NULL, (plx_tensor *[]){dy, x}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"dy f32[1,2,2,2] must be [1,2,1,1]", NULL});

    plx_tensor_free(x), plx_tensor_free(x3), plx_tensor_free(xi), plx_tensor_free(x0), plx_tensor_free(dy);
    plx_context_close(ctx);
}


/* The disjoint-window fast path (2x2, stride 2) keeps the same tie and NaN
 * rules: the first of equal maxima takes the gradient, a NaN wins. */
static void test_max_pool_disjoint_ties_and_nan(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    pool_case c = PCASE(1, 2, 4, 6, 2, 2, 2, 2, 0, 0, 1, 1, 0, 1);
    int64_t xd[4] = {1, 2, 4, 6}, yd[4] = {1, 2, 2, 3};
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, xd), *dy = tu_tensor(ctx, PLX_F32, 4, yd), *dx = NULL;
    for (int i = 0; i < 48; i++)
        tu_f32(x)[i] = (float)(i % 3 == 0 ? 1 : 0); /* many ties */
    tu_f32(x)[7] = NAN;
    tu_f32(x)[30] = NAN;
    tu_f32(x)[31] = NAN;
    for (int i = 0; i < 12; i++)
        tu_f32(dy)[i] = (float)(i + 1);
    plx_pool2d_attrs a = attrs_of(&c);
    tu_run(ctx, "core.max_pool2d_backward", &a, (plx_tensor *[]){dy, x}, 2, &dx, 1);
    float want_dx[48];
    reference_max(&c, tu_f32(x), tu_f32(dy), NULL, want_dx);
    tu_assert_close(tu_f32(dx), want_dx, 48, 0.0f, 0.0f, "disjoint 2x2 max_pool2d_backward with ties and NaN");
    plx_tensor_free(x);
    plx_tensor_free(dy);
    plx_tensor_free(dx);
    plx_context_close(ctx);
}

/* The 2x2 stride-2 path works on output rows in groups of a few outputs,
 * redoing the last group over the row's end: rows narrower than a group,
 * rows that are a whole number of groups and rows that are not, odd last
 * rows and columns (in no window), on values drawn from a small set so that
 * windows have ties, one or two NaNs, or are all -inf. */
static void test_max_pool_2x2_row_widths(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 23;
    static const float values[] = {-1.0f, 0.0f, -0.0f, 0.5f, 1.0f, NAN, -INFINITY};
    static const int64_t sizes[][2] = {{2, 2}, {3, 5}, {4, 7}, {5, 9}, {8, 8}, {7, 7}, {14, 14}, {9, 29}, {28, 28}};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        pool_case c = PCASE(2, 3, sizes[k][0], sizes[k][1], 2, 2, 2, 2, 0, 0, 1, 1, 0, 1);
        int64_t xd[4] = {c.n, c.c, c.h, c.w}, yd[4] = {c.n, c.c, c.h / 2, c.w / 2};
        plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, xd), *y = NULL, *dx = NULL;
        plx_tensor *dy = tu_uniform(ctx, &rng, 4, yd, -1.0f, 1.0f);
        int64_t nx = plx_tensor_numel(x), ny = plx_tensor_numel(dy);
        for (int64_t i = 0; i < nx; i++) {
            /* Mostly -inf in the first plane: whole windows of it. */
            int64_t pick = tu_rand_int(&rng, 0, i < c.h * c.w ? 9 : 6);
            tu_f32(x)[i] = values[pick > 6 ? 6 : pick];
        }
        tu_f32(dy)[0] = -0.0f;
        char what[120];
        snprintf(what, sizeof what, "2x2 max_pool2d of [2,3,%lld,%lld]", (long long)c.h, (long long)c.w);
        float *want_y = malloc((size_t)ny * sizeof(float)), *want_dx = malloc((size_t)nx * sizeof(float));
        assert_non_null(want_y);
        assert_non_null(want_dx);
        reference_max(&c, tu_f32(x), tu_f32(dy), want_y, want_dx);
        plx_pool2d_attrs a = attrs_of(&c);
        tu_run(ctx, "core.max_pool2d", &a, &x, 1, &y, 1);
        tu_assert_close(tu_f32(y), want_y, ny, 0.0f, 0.0f, what);
        for (int64_t i = 0; i < ny; i++)
            if (isnan(want_y[i]) != isnan(tu_f32(y)[i]))
                fail_msg("%s: output %lld: got %g, want %g", what, (long long)i, (double)tu_f32(y)[i],
                         (double)want_y[i]);
        tu_run(ctx, "core.max_pool2d_backward", &a, (plx_tensor *[]){dy, x}, 2, &dx, 1);
        tu_assert_close(tu_f32(dx), want_dx, nx, 0.0f, 0.0f, what);
        free(want_y);
        free(want_dx);
        plx_tensor_free(x);
        plx_tensor_free(dy);
        plx_tensor_free(y);
        plx_tensor_free(dx);
    }
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_pool_disjoint_ties_and_nan),
        cmocka_unit_test(test_max_pool_2x2_row_widths),
        cmocka_unit_test(test_max_pool),
        cmocka_unit_test(test_avg_pool),
        cmocka_unit_test(test_max_pool_ties_and_nan),
        cmocka_unit_test(test_global_avg_pool),
        cmocka_unit_test(test_pool_pytorch_fixtures),
        cmocka_unit_test(test_pool_strided_input),
        cmocka_unit_test(test_pool_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
