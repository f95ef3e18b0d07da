/* Tests of core.conv2d and its backward ops on cpu_blas: naive direct-loop
 * references in double over stride, padding, dilation, groups, depthwise and
 * pointwise shapes (every kernel path), finite differences, PyTorch
 * fixtures, a strided input and bad input. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test_util.h"

typedef struct conv_case {
    int64_t n, c, h, w, k, r, s;
    int32_t stride[2], padding[2], dilation[2], groups;
} conv_case;

static int64_t out_len(int64_t in, int64_t kernel, int32_t stride, int32_t pad, int32_t dil)
{
    return (in + 2 * pad - dil * (kernel - 1) - 1) / stride + 1;
}

static void case_dims(const conv_case *c, int64_t *x, int64_t *w, int64_t *y)
{
    x[0] = c->n, x[1] = c->c, x[2] = c->h, x[3] = c->w;
    w[0] = c->k, w[1] = c->c / c->groups, w[2] = c->r, w[3] = c->s;
    y[0] = c->n, y[1] = c->k;
    y[2] = out_len(c->h, c->r, c->stride[0], c->padding[0], c->dilation[0]);
    y[3] = out_len(c->w, c->s, c->stride[1], c->padding[1], c->dilation[1]);
}

static plx_conv2d_attrs forward_attrs(const conv_case *c)
{
    plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    memcpy(a.stride, c->stride, sizeof a.stride);
    memcpy(a.padding, c->padding, sizeof a.padding);
    memcpy(a.dilation, c->dilation, sizeof a.dilation);
    a.groups = c->groups;
    return a;
}

static plx_conv2d_backward_attrs backward_attrs(const conv_case *c, const int64_t *out_shape)
{
    plx_conv2d_backward_attrs a = PLX_CONV2D_BACKWARD_ATTRS_DEFAULT;
    memcpy(a.stride, c->stride, sizeof a.stride);
    memcpy(a.padding, c->padding, sizeof a.padding);
    memcpy(a.dilation, c->dilation, sizeof a.dilation);
    a.groups = c->groups;
    memcpy(a.out_shape, out_shape, sizeof a.out_shape);
    return a;
}

/* Calls visit(n, k, p, q, c, r, s, ih, iw) for every tap of every output
 * element that lands inside x: the one loop nest all references share. */
#define FOR_EACH_TAP(c, yd, BODY)                                                                       \
    for (int64_t n_ = 0; n_ < (c)->n; n_++)                                                             \
        for (int64_t k_ = 0; k_ < (c)->k; k_++)                                                         \
            for (int64_t p_ = 0; p_ < (yd)[2]; p_++)                                                    \
                for (int64_t q_ = 0; q_ < (yd)[3]; q_++)                                                \
                    for (int64_t cl_ = 0; cl_ < (c)->c / (c)->groups; cl_++)                            \
                        for (int64_t r_ = 0; r_ < (c)->r; r_++)                                         \
                            for (int64_t s_ = 0; s_ < (c)->s; s_++) {                                   \
                                int64_t ih_ = p_ * (c)->stride[0] - (c)->padding[0] + r_ * (c)->dilation[0]; \
                                int64_t iw_ = q_ * (c)->stride[1] - (c)->padding[1] + s_ * (c)->dilation[1]; \
                                if (ih_ < 0 || ih_ >= (c)->h || iw_ < 0 || iw_ >= (c)->w)               \
                                    continue;                                                           \
                                int64_t ch_ = k_ / ((c)->k / (c)->groups) * ((c)->c / (c)->groups) + cl_; \
                                int64_t xi_ = ((n_ * (c)->c + ch_) * (c)->h + ih_) * (c)->w + iw_;       \
                                int64_t wi_ = ((k_ * ((c)->c / (c)->groups) + cl_) * (c)->r + r_) * (c)->s + s_; \
                                int64_t yi_ = ((n_ * (c)->k + k_) * (yd)[2] + p_) * (yd)[3] + q_;        \
                                BODY                                                                    \
                            }

static float *to_float(const double *d, int64_t count)
{
    float *f = malloc((size_t)count * sizeof(float) + 4);
    assert_non_null(f);
    for (int64_t i = 0; i < count; i++)
        f[i] = (float)d[i];
    return f;
}

static float *reference_forward(const conv_case *c, const float *x, const float *w, const float *bias)
{
    int64_t xd[4], wd[4], yd[4];
    case_dims(c, xd, wd, yd);
    int64_t count = yd[0] * yd[1] * yd[2] * yd[3];
    double *y = calloc((size_t)count + 1, sizeof(double));
    assert_non_null(y);
    for (int64_t i = 0; bias != NULL && i < count; i++)
        y[i] = bias[(i / (yd[2] * yd[3])) % c->k];
    FOR_EACH_TAP(c, yd, { y[yi_] += (double)x[xi_] * (double)w[wi_]; })
    float *f = to_float(y, count);
    free(y);
    return f;
}

static float *reference_backward_data(const conv_case *c, const float *dy, const float *w)
{
    int64_t xd[4], wd[4], yd[4];
    case_dims(c, xd, wd, yd);
    int64_t count = xd[0] * xd[1] * xd[2] * xd[3];
    double *dx = calloc((size_t)count + 1, sizeof(double));
    assert_non_null(dx);
    FOR_EACH_TAP(c, yd, { dx[xi_] += (double)dy[yi_] * (double)w[wi_]; })
    float *f = to_float(dx, count);
    free(dx);
    return f;
}

static float *reference_backward_weight(const conv_case *c, const float *dy, const float *x)
{
    int64_t xd[4], wd[4], yd[4];
    case_dims(c, xd, wd, yd);
    int64_t count = wd[0] * wd[1] * wd[2] * wd[3];
    double *dw = calloc((size_t)count + 1, sizeof(double));
    assert_non_null(dw);
    FOR_EACH_TAP(c, yd, { dw[wi_] += (double)dy[yi_] * (double)x[xi_]; })
    float *f = to_float(dw, count);
    free(dw);
    return f;
}

static int64_t numel4(const int64_t *d)
{
    return d[0] * d[1] * d[2] * d[3];
}

/* Runs all three ops on random data and compares with the references. */
static void check_case(plx_context *ctx, uint64_t *rng, const conv_case *c, bool with_bias)
{
    int64_t xd[4], wd[4], yd[4];
    case_dims(c, xd, wd, yd);
    plx_tensor *x = tu_uniform(ctx, rng, 4, xd, -1.0f, 1.0f);
    plx_tensor *w = tu_uniform(ctx, rng, 4, wd, -1.0f, 1.0f);
    plx_tensor *b = with_bias ? tu_uniform(ctx, rng, 1, &c->k, -1.0f, 1.0f) : NULL;
    plx_tensor *dy = tu_uniform(ctx, rng, 4, yd, -1.0f, 1.0f);
    plx_conv2d_attrs fa = forward_attrs(c);
    char what[200];
    snprintf(what, sizeof what,
             "x [%lld,%lld,%lld,%lld] w [%lld,%lld,%lld,%lld] stride %d,%d pad %d,%d dil %d,%d groups %d",
             (long long)xd[0], (long long)xd[1], (long long)xd[2], (long long)xd[3], (long long)wd[0],
             (long long)wd[1], (long long)wd[2], (long long)wd[3], c->stride[0], c->stride[1], c->padding[0],
             c->padding[1], c->dilation[0], c->dilation[1], c->groups);
    /* Sums of up to C/g*R*S products of values in [-1, 1). */
    float tol = 2e-5f * (float)(wd[1] * wd[2] * wd[3]) + 1e-5f;

    plx_tensor *y = NULL;
    tu_run(ctx, "core.conv2d", &fa, (plx_tensor *[]){x, w, b}, with_bias ? 3 : 2, &y, 1);
    const plx_tensor_desc *yd_got = plx_tensor_desc_get(y);
    assert_int_equal(yd_got->ndim, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(yd_got->shape[i], yd[i]);
    float *want = reference_forward(c, tu_f32(x), tu_f32(w), with_bias ? tu_f32(b) : NULL);
    tu_assert_close(tu_f32(y), want, numel4(yd), tol, tol, what);
    free(want);

    plx_conv2d_backward_attrs da = backward_attrs(c, xd);
    plx_tensor *dx = NULL;
    tu_run(ctx, "core.conv2d_backward_data", &da, (plx_tensor *[]){dy, w}, 2, &dx, 1);
    want = reference_backward_data(c, tu_f32(dy), tu_f32(w));
    tu_assert_close(tu_f32(dx), want, numel4(xd), tol * 4, tol, what);
    free(want);

    plx_conv2d_backward_attrs wa = backward_attrs(c, wd);
    plx_tensor *dw = NULL;
    tu_run(ctx, "core.conv2d_backward_weight", &wa, (plx_tensor *[]){dy, x}, 2, &dw, 1);
    want = reference_backward_weight(c, tu_f32(dy), tu_f32(x));
    /* Each dw element sums N*P*Q products. */
    float wtol = 2e-6f * (float)(yd[0] * yd[2] * yd[3]) + 1e-5f;
    tu_assert_close(tu_f32(dw), want, numel4(wd), wtol, 1e-4f, what);
    free(want);

    plx_tensor_free(x);
    plx_tensor_free(w);
    plx_tensor_free(b);
    plx_tensor_free(dy);
    plx_tensor_free(y);
    plx_tensor_free(dx);
    plx_tensor_free(dw);
}

#define CASE(n, c, h, w, k, r, s, sh, sw, ph, pw, dh, dw, g)                                            \
    {n, c, h, w, k, r, s, {sh, sw}, {ph, pw}, {dh, dw}, g}

static void test_conv_general(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 11;
    static const conv_case cases[] = {
        CASE(2, 3, 7, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1),    /* same padding */
        CASE(1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1),    /* all ones */
        CASE(3, 5, 17, 9, 7, 3, 2, 2, 2, 1, 0, 1, 1, 1),   /* stride 2, odd sizes, asymmetric kernel */
        CASE(1, 2, 11, 13, 3, 3, 3, 1, 1, 2, 2, 2, 2, 1),  /* dilation 2 */
        CASE(2, 3, 10, 9, 5, 4, 3, 3, 2, 2, 1, 2, 3, 1),   /* everything at once */
        CASE(1, 4, 6, 6, 2, 6, 6, 1, 1, 0, 0, 1, 1, 1),    /* kernel == input: a 1x1 output */
        CASE(2, 4, 9, 8, 6, 3, 3, 1, 2, 1, 1, 1, 1, 2),    /* groups 2 */
        CASE(2, 6, 7, 7, 9, 3, 1, 2, 1, 1, 0, 1, 1, 3),    /* groups 3 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(ctx, &rng, &cases[i], true);
        check_case(ctx, &rng, &cases[i], false);
    }
    plx_context_close(ctx);
}

static void test_conv_depthwise(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 12;
    static const conv_case cases[] = {
        CASE(2, 6, 9, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 6),    /* multiplier 1, stride 2 */
        CASE(1, 3, 11, 10, 6, 3, 3, 1, 1, 2, 2, 2, 2, 3),  /* multiplier 2, dilation 2 */
        CASE(3, 5, 8, 5, 5, 2, 3, 1, 3, 0, 1, 1, 1, 5),    /* asymmetric */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_case(ctx, &rng, &cases[i], true);
        check_case(ctx, &rng, &cases[i], false);
    }
    plx_context_close(ctx);
}

static void test_conv_pointwise(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 13;
    static const conv_case cases[] = {
        CASE(3, 8, 7, 5, 16, 1, 1, 1, 1, 0, 0, 1, 1, 1),
        CASE(2, 8, 5, 3, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2),    /* grouped */
        CASE(2, 5, 7, 6, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1),    /* 1x1 but strided: im2col */
        CASE(2, 3, 4, 5, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1),    /* 1x1 but padded: im2col */
        CASE(4, 64, 24, 24, 96, 1, 1, 1, 1, 0, 0, 1, 1, 1), /* big: GEMMs on OpenBLAS's threads */
        CASE(3, 64, 9, 9, 96, 1, 1, 1, 1, 0, 0, 1, 1, 1),    /* big GEMM, small planes */
        CASE(3, 128, 9, 9, 128, 1, 1, 1, 1, 0, 0, 1, 1, 2),  /* the same, grouped */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(ctx, &rng, &cases[i], i % 2 == 0);
    plx_context_close(ctx);
}

/* Shapes whose per-image GEMMs are too big for the per-thread path: several
 * images per GEMM, and (one large image) bands of output rows. */
static void test_conv_large(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 14;
    static const conv_case cases[] = {
        CASE(5, 16, 20, 19, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1),
        CASE(3, 16, 21, 20, 24, 3, 3, 2, 2, 1, 1, 1, 1, 2),
        CASE(5, 32, 26, 27, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1), /* chunks of 2, 2 and 1 images */
        CASE(2, 8, 173, 171, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1), /* col of one image > the chunk budget */
        CASE(1, 32, 170, 86, 4, 3, 3, 2, 1, 1, 1, 1, 1, 1), /* ... strided, in two bands of rows */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(ctx, &rng, &cases[i], true);
    plx_context_close(ctx);
}

static void test_conv_empty_batch(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 15;
    conv_case c = CASE(0, 4, 6, 6, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1);
    int64_t xd[4], wd[4], yd[4];
    case_dims(&c, xd, wd, yd);
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, xd);
    plx_tensor *w = tu_uniform(ctx, &rng, 4, wd, -1.0f, 1.0f);
    plx_tensor *dy = tu_tensor(ctx, PLX_F32, 4, yd);
    plx_conv2d_attrs fa = forward_attrs(&c);
    plx_tensor *y = NULL;
    tu_run(ctx, "core.conv2d", &fa, (plx_tensor *[]){x, w}, 2, &y, 1);
    assert_int_equal(plx_tensor_numel(y), 0);
    /* An empty batch contributes nothing: dw is all zeros. */
    plx_conv2d_backward_attrs wa = backward_attrs(&c, wd);
    plx_tensor *dw = tu_uniform(ctx, &rng, 4, wd, 1.0f, 2.0f);
    tu_run(ctx, "core.conv2d_backward_weight", &wa, (plx_tensor *[]){dy, x}, 2, &dw, 1);
    for (int64_t i = 0; i < numel4(wd); i++)
        assert_true(tu_f32(dw)[i] == 0.0f);
    plx_tensor_free(x);
    plx_tensor_free(w);
    plx_tensor_free(dy);
    plx_tensor_free(y);
    plx_tensor_free(dw);
    plx_context_close(ctx);
}

/* The backward ops are the derivatives of core.conv2d: probe them with
 * central differences of sum(conv2d(x, w, b) * dy). */
static void test_conv_finite_differences(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 16;
    static const conv_case cases[] = {
        CASE(2, 3, 6, 5, 4, 3, 3, 2, 1, 1, 1, 1, 1, 1),
        CASE(1, 4, 7, 7, 4, 3, 2, 1, 2, 2, 1, 2, 1, 2),
        CASE(2, 4, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 4),    /* depthwise, multiplier 2 */
        CASE(2, 4, 3, 4, 6, 1, 1, 1, 1, 0, 0, 1, 1, 2),    /* pointwise */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *c = &cases[i];
        int64_t xd[4], wd[4], yd[4];
        case_dims(c, xd, wd, yd);
        plx_tensor *x = tu_uniform(ctx, &rng, 4, xd, -1.0f, 1.0f);
        plx_tensor *w = tu_uniform(ctx, &rng, 4, wd, -1.0f, 1.0f);
        plx_tensor *b = tu_uniform(ctx, &rng, 1, &c->k, -1.0f, 1.0f);
        plx_tensor *dy = tu_uniform(ctx, &rng, 4, yd, -1.0f, 1.0f);
        plx_conv2d_attrs fa = forward_attrs(c);
        plx_conv2d_backward_attrs da = backward_attrs(c, xd), wa = backward_attrs(c, wd);
        plx_tensor *dx = NULL, *dw = NULL;
        tu_run(ctx, "core.conv2d_backward_data", &da, (plx_tensor *[]){dy, w}, 2, &dx, 1);
        tu_run(ctx, "core.conv2d_backward_weight", &wa, (plx_tensor *[]){dy, x}, 2, &dw, 1);
        plx_tensor *inputs[3] = {x, w, b};
        tu_check_fd(ctx, "core.conv2d", &fa, inputs, 3, 1, 0, tu_f32(dy), 0, tu_f32(dx), 60, 1e-2f, 5e-3f);
        tu_check_fd(ctx, "core.conv2d", &fa, inputs, 3, 1, 0, tu_f32(dy), 1, tu_f32(dw), 60, 1e-2f, 5e-3f);
        plx_tensor_free(x);
        plx_tensor_free(w);
        plx_tensor_free(b);
        plx_tensor_free(dy);
        plx_tensor_free(dx);
        plx_tensor_free(dw);
    }
    plx_context_close(ctx);
}

/* Results of torch.nn.functional.conv2d and autograd, from
 * tests/fixtures/conv_pool/gen.py. */
static void test_conv_pytorch_fixture(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    conv_case c = CASE(2, 4, 7, 6, 6, 3, 3, 2, 1, 1, 2, 2, 1, 2);
    int64_t xd[4], wd[4], yd[4];
    case_dims(&c, xd, wd, yd);
    assert_int_equal(yd[2], 3);
    assert_int_equal(yd[3], 8);
    size_t nx, nw, nb, ny, ndy, ndx, ndw;
    float *xv = tu_fixture_f32("conv_pool/conv_x.f32", &nx), *wv = tu_fixture_f32("conv_pool/conv_w.f32", &nw);
    float *bv = tu_fixture_f32("conv_pool/conv_b.f32", &nb), *yv = tu_fixture_f32("conv_pool/conv_y.f32", &ny);
    float *dyv = tu_fixture_f32("conv_pool/conv_dy.f32", &ndy);
    float *dxv = tu_fixture_f32("conv_pool/conv_dx.f32", &ndx), *dwv = tu_fixture_f32("conv_pool/conv_dw.f32", &ndw);
    assert_int_equal(nx, numel4(xd));
    assert_int_equal(nw, numel4(wd));
    assert_int_equal(nb, 6);
    assert_int_equal(ny, numel4(yd));
    assert_int_equal(ndy, numel4(yd));
    assert_int_equal(ndx, numel4(xd));
    assert_int_equal(ndw, numel4(wd));
    plx_tensor *x = tu_from_f32(ctx, 4, xd, xv), *w = tu_from_f32(ctx, 4, wd, wv);
    plx_tensor *b = tu_from_f32(ctx, 1, (int64_t[]){6}, bv), *dy = tu_from_f32(ctx, 4, yd, dyv);
    plx_conv2d_attrs fa = forward_attrs(&c);
    plx_conv2d_backward_attrs da = backward_attrs(&c, xd), wa = backward_attrs(&c, wd);
    plx_tensor *y = NULL, *dx = NULL, *dw = NULL;
    tu_run(ctx, "core.conv2d", &fa, (plx_tensor *[]){x, w, b}, 3, &y, 1);
    tu_run(ctx, "core.conv2d_backward_data", &da, (plx_tensor *[]){dy, w}, 2, &dx, 1);
    tu_run(ctx, "core.conv2d_backward_weight", &wa, (plx_tensor *[]){dy, x}, 2, &dw, 1);
    tu_assert_close(tu_f32(y), yv, (int64_t)ny, 1e-4f, 1e-4f, "conv2d vs PyTorch");
    tu_assert_close(tu_f32(dx), dxv, (int64_t)ndx, 1e-4f, 1e-4f, "conv2d_backward_data vs PyTorch");
    tu_assert_close(tu_f32(dw), dwv, (int64_t)ndw, 1e-4f, 1e-4f, "conv2d_backward_weight vs PyTorch");
    free(xv), free(wv), free(bv), free(yv), free(dyv), free(dxv), free(dwv);
    plx_tensor_free(x), plx_tensor_free(w), plx_tensor_free(b), plx_tensor_free(dy);
    plx_tensor_free(y), plx_tensor_free(dx), plx_tensor_free(dw);
    plx_context_close(ctx);
}

/* x given as an NHWC buffer viewed as NCHW through strides. */
static void test_conv_strided_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    uint64_t rng = 17;
    conv_case c = CASE(2, 3, 6, 7, 4, 3, 3, 1, 2, 1, 1, 1, 1, 1);
    int64_t xd[4], wd[4], yd[4];
    case_dims(&c, xd, wd, yd);
    plx_tensor *nhwc = tu_uniform(ctx, &rng, 4, (int64_t[]){c.n, c.h, c.w, c.c}, -1.0f, 1.0f);
    int64_t strides[4] = {c.h * c.w * c.c, 1, c.w * c.c, c.c};
    plx_tensor_desc view = {plx_tensor_data(nhwc), {PLX_DL_CPU, 0}, 4, PLX_F32, xd, strides, 0};
    plx_tensor *x = NULL;
    assert_int_equal(plx_tensor_wrap(ctx, &view, NULL, NULL, &x), PLX_OK);
    plx_tensor *w = tu_uniform(ctx, &rng, 4, wd, -1.0f, 1.0f);
    plx_conv2d_attrs fa = forward_attrs(&c);
    plx_tensor *y = NULL;
    tu_run(ctx, "core.conv2d", &fa, (plx_tensor *[]){x, w}, 2, &y, 1);
    /* The reference reads a compact NCHW copy made here by hand. */
    float *compact = malloc((size_t)numel4(xd) * sizeof(float));
    assert_non_null(compact);
    const float *src = tu_f32(nhwc);
    for (int64_t n = 0; n < c.n; n++)
        for (int64_t ch = 0; ch < c.c; ch++)
            for (int64_t i = 0; i < c.h; i++)
                for (int64_t j = 0; j < c.w; j++)
                    compact[((n * c.c + ch) * c.h + i) * c.w + j] = src[n * strides[0] + ch + i * strides[2] + j * c.c];
    float *want = reference_forward(&c, compact, tu_f32(w), NULL);
    tu_assert_close(tu_f32(y), want, numel4(yd), 1e-4f, 1e-4f, "conv2d of an NHWC view");
    free(want);
    free(compact);
    plx_tensor_free(y);
    plx_tensor_free(x);
    plx_tensor_free(w);
    plx_tensor_free(nhwc);
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

static void test_conv_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){1, 4, 5, 5});
    plx_tensor *w3 = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){2, 3, 3, 3});
    plx_tensor *w4 = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){6, 4, 3, 3});
    plx_tensor *w_big = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){2, 4, 8, 3});
    plx_tensor *bias5 = tu_tensor(ctx, PLX_F32, 1, (int64_t[]){5});
    plx_tensor *xi = tu_tensor(ctx, PLX_I64, 4, (int64_t[]){1, 4, 5, 5});
    plx_tensor *x3 = tu_tensor(ctx, PLX_F32, 3, (int64_t[]){4, 5, 5});
    plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;

    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x, w3}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"core.conv2d", "channel mismatch", "f32[1,4,5,5]", "f32[2,3,3,3]", NULL});
    a.groups = 3;
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x, w3}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"groups=3 must divide", "f32[1,4,5,5]", NULL});
    a.groups = 0;
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x, w4}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"groups must be >= 1", NULL});
    a.groups = 1;
    a.padding[0] = 1;
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x, w_big}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"kernel larger than padded input", "f32[2,4,8,3]", "extent 8 > padded 7", NULL});
    a.padding[0] = 0;
    a.stride[1] = 0;
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x, w4}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"stride (1,0)", NULL});
    a.stride[1] = 1;
    a.dilation[0] = 0;
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x, w4}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"dilation (0,1)", NULL});
    a.dilation[0] = 1;
    a.padding[1] = -1;
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x, w4}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"padding (0,-1)", NULL});
    a.padding[1] = 0;
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x, w4, bias5}, 3, PLX_SHAPE_MISMATCH,
                   (const char *[]){"bias f32[5] must be [6]", NULL});
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){xi, w4}, 2, PLX_DTYPE_MISMATCH,
                   (const char *[]){"i64[1,4,5,5]", NULL});
    expect_failure(ctx, "core.conv2d", &a, (plx_tensor *[]){x3, w4}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"must have 4 dims", "f32[4,5,5]", NULL});

    /* Backward ops: out_shape is required and must agree with dy and w/x. */
    plx_tensor *dy = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){1, 6, 3, 3});
    plx_conv2d_backward_attrs ba = PLX_CONV2D_BACKWARD_ATTRS_DEFAULT;
    expect_failure(ctx, "core.conv2d_backward_data", &ba, (plx_tensor *[]){dy, w4}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"core.conv2d_backward_data", "out_shape", NULL});
    int64_t x_shape[4] = {1, 4, 6, 5};
    memcpy(ba.out_shape, x_shape, sizeof x_shape);
    expect_failure(ctx, "core.conv2d_backward_data", &ba, (plx_tensor *[]){dy, w4}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"dy f32[1,6,3,3] does not match the forward output [1,6,4,3]", NULL});
    int64_t w_shape[4] = {6, 2, 3, 3};
    memcpy(ba.out_shape, w_shape, sizeof w_shape);
    expect_failure(ctx, "core.conv2d_backward_weight", &ba, (plx_tensor *[]){dy, x}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"core.conv2d_backward_weight", "channel mismatch", NULL});
    ba.groups = 2;
    plx_tensor *dy2 = tu_tensor(ctx, PLX_F32, 4, (int64_t[]){2, 6, 3, 3});
    expect_failure(ctx, "core.conv2d_backward_weight", &ba, (plx_tensor *[]){dy2, x}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"dy f32[2,6,3,3] does not match", NULL});

    plx_tensor_free(x), plx_tensor_free(w3), plx_tensor_free(w4), plx_tensor_free(w_big);
    plx_tensor_free(bias5), plx_tensor_free(xi), plx_tensor_free(x3), plx_tensor_free(dy), plx_tensor_free(dy2);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_general),
        cmocka_unit_test(test_conv_depthwise),
        cmocka_unit_test(test_conv_pointwise),
        cmocka_unit_test(test_conv_large),
        cmocka_unit_test(test_conv_empty_batch),
        cmocka_unit_test(test_conv_finite_differences),
        cmocka_unit_test(test_conv_pytorch_fixture),
        cmocka_unit_test(test_conv_strided_input),
        cmocka_unit_test(test_conv_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
