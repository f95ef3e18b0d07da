/* test_norm.c — core.batch_norm, core.layer_norm and their backward ops on
 * cpu_blas: naive double references on odd shapes, running-stat updates,
 * inference mode, strided inputs, finite differences, PyTorch fixtures and
 * bad input. */
#include "../../test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_all(plx_tensor **t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        plx_tensor_free(t[i]);
        t[i] = NULL;
    }
}

static void assert_shape(const plx_tensor *t, int32_t ndim, const int64_t *shape)
{
    const plx_tensor_desc *d = plx_tensor_desc_get(t);
    assert_int_equal(d->ndim, ndim);
    for (int32_t i = 0; i < ndim; i++)
        assert_int_equal(d->shape[i], shape[i]);
}

/* Runs op expecting `want`, and a message containing each of `needles`. */
#define expect_failure tu_expect_failure

/* Copies a strided view of base (shape, strides in elements) into compact out. */
static void gather_strided(const float *base, int32_t ndim, const int64_t *shape, const int64_t *strides, float *out)
{
    int64_t idx[PLX_MAX_DIMS] = {0};
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++)
        n *= shape[i];
    for (int64_t k = 0; k < n; k++) {
        int64_t off = 0;
        for (int32_t i = 0; i < ndim; i++)
            off += idx[i] * strides[i];
        out[k] = base[off];
        for (int32_t i = ndim - 1; i >= 0; i--) {
            if (++idx[i] < shape[i])
                break;
            idx[i] = 0;
        }
    }
}

static plx_tensor *wrap_view(plx_context *ctx, const plx_tensor *base, int32_t ndim, const int64_t *shape,
                             const int64_t *strides)
{
    plx_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.data = plx_tensor_data(base);
    d.device.device_type = PLX_DL_CPU;
    d.ndim = ndim;
    d.dtype = PLX_F32;
    d.shape = (int64_t *)shape;
    d.strides = (int64_t *)strides;
    plx_tensor *t = NULL;
    plx_status st = plx_tensor_wrap(ctx, &d, NULL, NULL, &t);
    if (st != PLX_OK)
        fail_msg("plx_tensor_wrap: %s: %s", plx_status_name(st), plx_last_error(ctx));
    return t;
}

/* ---- batch norm references ---------------------------------------------- */

typedef struct bn_ref {
    double *y, *mean, *invstd, *rm, *rv;
} bn_ref;

static void bn_sizes(int32_t ndim, const int64_t *shape, int64_t *n, int64_t *c, int64_t *s)
{
    *n = shape[0];
    *c = shape[1];
    *s = 1;
    for (int32_t i = 2; i < ndim; i++)
        *s *= shape[i];
}

static bn_ref batch_norm_reference(int32_t ndim, const int64_t *shape, const float *x, const float *gamma,
                                   const float *beta, const float *rm, const float *rv, double eps, double momentum,
                                   int training)
{
    int64_t n, c, s;
    bn_sizes(ndim, shape, &n, &c, &s);
    bn_ref r;
    r.y = calloc((size_t)(n * c * s) + 1, sizeof(double));
    r.mean = calloc((size_t)c, sizeof(double));
    r.invstd = calloc((size_t)c, sizeof(double));
    r.rm = calloc((size_t)c, sizeof(double));
    r.rv = calloc((size_t)c, sizeof(double));
    for (int64_t ch = 0; ch < c; ch++) {
        double mean, var;
        if (training) {
            double sum = 0, sq = 0, m = (double)(n * s);
            for (int64_t i = 0; i < n; i++)
                for (int64_t k = 0; k < s; k++)
                    sum += x[(i * c + ch) * s + k];
            mean = sum / m;
            for (int64_t i = 0; i < n; i++)
                for (int64_t k = 0; k < s; k++) {
                    double d = x[(i * c + ch) * s + k] - mean;
                    sq += d * d;
                }
            var = sq / m;
            r.rm[ch] = (1 - momentum) * rm[ch] + momentum * mean;
            r.rv[ch] = (1 - momentum) * rv[ch] + momentum * sq / (m - 1);
        } else {
            mean = rm[ch];
            var = rv[ch];
            r.rm[ch] = rm[ch];
            r.rv[ch] = rv[ch];
        }
        r.mean[ch] = mean;
        r.invstd[ch] = 1.0 / sqrt(var + eps);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < s; k++) {
                int64_t at = (i * c + ch) * s + k;
                r.y[at] = (x[at] - mean) * r.invstd[ch] * gamma[ch] + beta[ch];
            }
    }
    return r;
}

static void bn_ref_free(bn_ref *r)
{
    free(r->y);
    free(r->mean);
    free(r->invstd);
    free(r->rm);
    free(r->rv);
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

/* Runs batch norm on a fresh random problem and checks every output and
 * the running stats against the reference. x may be given as a strided
 * view (channels-major memory) when `strided`. */
static void check_batch_norm(plx_context *ctx, uint64_t *rng, int32_t ndim, const int64_t *shape, int training,
                             bool strided)
{
    int64_t n, c, s;
    bn_sizes(ndim, shape, &n, &c, &s);
    int64_t numel = n * c * s;
    plx_batch_norm_attrs attrs = PLX_BATCH_NORM_ATTRS_DEFAULT;
    attrs.eps = 1e-3f;
    attrs.momentum = 0.25f;
    attrs.training = training;

    plx_tensor *x, *x_base = NULL;
    float *xv = malloc((size_t)numel * sizeof(float));
    assert_non_null(xv);
    if (strided) {
        /* memory [C,N,rest] viewed as [N,C,rest] */
        int64_t base_shape[PLX_MAX_DIMS], strides[PLX_MAX_DIMS];
        base_shape[0] = c;
        base_shape[1] = n;
        for (int32_t i = 2; i < ndim; i++)
            base_shape[i] = shape[i];
        x_base = tu_uniform(ctx, rng, ndim, base_shape, -2.0f, 3.0f);
        strides[ndim - 1] = 1;
        for (int32_t i = ndim - 2; i >= 2; i--)
            strides[i] = strides[i + 1] * shape[i + 1];
        strides[0] = s;     /* n */
        strides[1] = n * s; /* c */
        x = wrap_view(ctx, x_base, ndim, shape, strides);
        gather_strided(tu_f32(x_base), ndim, shape, strides, xv);
    } else {
        x = tu_uniform(ctx, rng, ndim, shape, -2.0f, 3.0f);
        memcpy(xv, tu_f32(x), (size_t)numel * sizeof(float));
    }
    plx_tensor *gamma = tu_uniform(ctx, rng, 1, &c, 0.5f, 1.5f);
    plx_tensor *beta = tu_uniform(ctx, rng, 1, &c, -1.0f, 1.0f);
    plx_tensor *rm = tu_uniform(ctx, rng, 1, &c, -0.5f, 0.5f);
    plx_tensor *rv = tu_uniform(ctx, rng, 1, &c, 0.5f, 2.0f);
    bn_ref ref = batch_norm_reference(ndim, shape, xv, tu_f32(gamma), tu_f32(beta), tu_f32(rm), tu_f32(rv),
                                      attrs.eps, attrs.momentum, training);

    plx_tensor *outs[3] = {0};
    tu_run(ctx, "core.batch_norm", &attrs, (plx_tensor *[]){x, gamma, beta, rm, rv}, 5, outs, 3);
    assert_shape(outs[0], ndim, shape);
    assert_shape(outs[1], 1, &c);
    assert_shape(outs[2], 1, &c);
    assert_close_double(tu_f32(outs[0]), ref.y, numel, 1e-4f, 1e-4f, "batch_norm y");
    assert_close_double(tu_f32(outs[1]), ref.mean, c, 1e-5f, 1e-5f, "batch_norm save_mean");
    assert_close_double(tu_f32(outs[2]), ref.invstd, c, 1e-5f, 1e-5f, "batch_norm save_invstd");
    assert_close_double(tu_f32(rm), ref.rm, c, 1e-5f, 1e-5f, "batch_norm running_mean");
    assert_close_double(tu_f32(rv), ref.rv, c, 1e-5f, 1e-5f, "batch_norm running_var");

    free_all(outs, 3);
    bn_ref_free(&ref);
    free(xv);
    plx_tensor_free(x);
    plx_tensor_free(x_base);
    plx_tensor_free(gamma);
    plx_tensor_free(beta);
    plx_tensor_free(rm);
    plx_tensor_free(rv);
}

static void test_batch_norm_training(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 11;
    check_batch_norm(ctx, &rng, 2, (int64_t[]){7, 3}, 1, false);
    check_batch_norm(ctx, &rng, 2, (int64_t[]){2, 1}, 1, false);
    check_batch_norm(ctx, &rng, 2, (int64_t[]){33, 17}, 1, false);
    check_batch_norm(ctx, &rng, 4, (int64_t[]){3, 5, 4, 3}, 1, false);
    check_batch_norm(ctx, &rng, 4, (int64_t[]){1, 7, 1, 2}, 1, false);
    check_batch_norm(ctx, &rng, 3, (int64_t[]){2, 17, 3}, 1, false);
    check_batch_norm(ctx, &rng, 5, (int64_t[]){2, 3, 2, 3, 2}, 1, false);
    /* big enough to split channels across threads */
    check_batch_norm(ctx, &rng, 4, (int64_t[]){8, 16, 33, 31}, 1, false);
    for (int rep = 0; rep < 4; rep++) {
        int64_t shape[4] = {tu_rand_int(&rng, 1, 5), tu_rand_int(&rng, 1, 9), tu_rand_int(&rng, 2, 6),
                            tu_rand_int(&rng, 1, 7)};
        check_batch_norm(ctx, &rng, 4, shape, 1, false);
    }
    check_batch_norm(ctx, &rng, 4, (int64_t[]){3, 5, 4, 3}, 1, true);
    check_batch_norm(ctx, &rng, 2, (int64_t[]){9, 5}, 1, true);
    plx_context_close(ctx);
}

static void test_batch_norm_inference(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 12;
    check_batch_norm(ctx, &rng, 2, (int64_t[]){7, 3}, 0, false);
    check_batch_norm(ctx, &rng, 2, (int64_t[]){1, 5}, 0, false); /* one sample is fine without training */
    check_batch_norm(ctx, &rng, 4, (int64_t[]){3, 5, 4, 3}, 0, false);
    check_batch_norm(ctx, &rng, 3, (int64_t[]){2, 17, 1}, 0, false);
    check_batch_norm(ctx, &rng, 4, (int64_t[]){2, 3, 3, 5}, 0, true);
    plx_context_close(ctx);
}

/* Repeated training steps keep folding the batch statistics into the
 * running stats (momentum 0.1 by default). */
static void test_batch_norm_running_stats_accumulate(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 13;
    int64_t shape[4] = {4, 3, 2, 5}, c = 3;
    plx_tensor *gamma = tu_uniform(ctx, &rng, 1, &c, 0.5f, 1.5f);
    plx_tensor *beta = tu_uniform(ctx, &rng, 1, &c, -1.0f, 1.0f);
    float zeros[3] = {0, 0, 0}, ones[3] = {1, 1, 1};
    plx_tensor *rm = tu_from_f32(ctx, 1, &c, zeros);
    plx_tensor *rv = tu_from_f32(ctx, 1, &c, ones);
    double want_rm[3] = {0, 0, 0}, want_rv[3] = {1, 1, 1};
    for (int step = 0; step < 3; step++) {
        plx_tensor *x = tu_uniform(ctx, &rng, 4, shape, -1.0f + step, 2.0f + 2 * step);
        float rm_before[3], rv_before[3];
        memcpy(rm_before, tu_f32(rm), sizeof rm_before);
        memcpy(rv_before, tu_f32(rv), sizeof rv_before);
        bn_ref ref = batch_norm_reference(4, shape, tu_f32(x), tu_f32(gamma), tu_f32(beta), rm_before, rv_before,
                                          1e-5, 0.1, 1);
        plx_tensor *outs[3] = {0};
        tu_run(ctx, "core.batch_norm", NULL, (plx_tensor *[]){x, gamma, beta, rm, rv}, 5, outs, 3);
        for (int k = 0; k < 3; k++) {
            want_rm[k] = ref.rm[k];
            want_rv[k] = ref.rv[k];
        }
        assert_close_double(tu_f32(rm), want_rm, 3, 1e-5f, 1e-5f, "running_mean after step");
        assert_close_double(tu_f32(rv), want_rv, 3, 1e-5f, 1e-5f, "running_var after step");
        bn_ref_free(&ref);
        free_all(outs, 3);
        plx_tensor_free(x);
    }
    plx_tensor_free(gamma);
    plx_tensor_free(beta);
    plx_tensor_free(rm);
    plx_tensor_free(rv);
    plx_context_close(ctx);
}

/* Backward: reference formulas, then finite differences through the
 * forward op for x, gamma and beta. */
static void check_batch_norm_backward(plx_context *ctx, uint64_t *rng, int32_t ndim, const int64_t *shape,
                                      int training)
{
    int64_t n, c, s;
    bn_sizes(ndim, shape, &n, &c, &s);
    int64_t numel = n * c * s;
    plx_batch_norm_attrs attrs = PLX_BATCH_NORM_ATTRS_DEFAULT;
    attrs.training = training;
    plx_tensor *x = tu_uniform(ctx, rng, ndim, shape, -1.0f, 2.0f);
    plx_tensor *gamma = tu_uniform(ctx, rng, 1, &c, 0.5f, 1.5f);
    plx_tensor *beta = tu_uniform(ctx, rng, 1, &c, -1.0f, 1.0f);
    plx_tensor *rm = tu_uniform(ctx, rng, 1, &c, -0.3f, 0.3f);
    plx_tensor *rv = tu_uniform(ctx, rng, 1, &c, 0.5f, 1.5f);
    plx_tensor *dy = tu_uniform(ctx, rng, ndim, shape, -1.0f, 1.0f);
    plx_tensor *fwd[3] = {0};
    tu_run(ctx, "core.batch_norm", &attrs, (plx_tensor *[]){x, gamma, beta, rm, rv}, 5, fwd, 3);
    plx_tensor *grads[3] = {0};
    tu_run(ctx, "core.batch_norm_backward", &attrs, (plx_tensor *[]){dy, x, gamma, fwd[1], fwd[2]}, 5, grads, 3);
    assert_shape(grads[0], ndim, shape);
    assert_shape(grads[1], 1, &c);
    assert_shape(grads[2], 1, &c);

    const float *xv = tu_f32(x), *dyv = tu_f32(dy), *g = tu_f32(gamma);
    const float *mean = tu_f32(fwd[1]), *invstd = tu_f32(fwd[2]);
    double *dx = calloc((size_t)numel, sizeof(double));
    double *dgamma = calloc((size_t)c, sizeof(double)), *dbeta = calloc((size_t)c, sizeof(double));
    for (int64_t ch = 0; ch < c; ch++) {
        double sdy = 0, sdyx = 0, m = (double)(n * s);
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < s; k++) {
                int64_t at = (i * c + ch) * s + k;
                sdy += dyv[at];
                sdyx += dyv[at] * (xv[at] - mean[ch]) * invstd[ch];
            }
        dgamma[ch] = sdyx;
        dbeta[ch] = sdy;
        for (int64_t i = 0; i < n; i++)
            for (int64_t k = 0; k < s; k++) {
                int64_t at = (i * c + ch) * s + k;
                double xhat = (xv[at] - mean[ch]) * invstd[ch];
                dx[at] = training ? g[ch] * invstd[ch] / m * (m * dyv[at] - sdy - xhat * sdyx)
                                  : (double)dyv[at] * g[ch] * invstd[ch];
            }
    }
    assert_close_double(tu_f32(grads[0]), dx, numel, 1e-4f, 1e-4f, "batch_norm_backward dx");
    assert_close_double(tu_f32(grads[1]), dgamma, c, 1e-4f, 1e-4f, "batch_norm_backward dgamma");
    assert_close_double(tu_f32(grads[2]), dbeta, c, 1e-4f, 1e-4f, "batch_norm_backward dbeta");

    plx_tensor *in[5] = {x, gamma, beta, rm, rv};
    for (size_t wrt = 0; wrt < 3; wrt++)
        tu_check_fd(ctx, "core.batch_norm", &attrs, in, 5, 3, 0, dyv, wrt, tu_f32(grads[wrt]), 24, 1e-2f, 1e-2f);

    free(dx);
    free(dgamma);
    free(dbeta);
    free_all(fwd, 3);
    free_all(grads, 3);
    free_all(in, 5);
    plx_tensor_free(dy);
}

static void test_batch_norm_backward(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 14;
    check_batch_norm_backward(ctx, &rng, 2, (int64_t[]){7, 3}, 1);
    check_batch_norm_backward(ctx, &rng, 4, (int64_t[]){3, 2, 3, 5}, 1);
    check_batch_norm_backward(ctx, &rng, 3, (int64_t[]){2, 5, 1}, 1);
    check_batch_norm_backward(ctx, &rng, 2, (int64_t[]){5, 4}, 0);
    check_batch_norm_backward(ctx, &rng, 4, (int64_t[]){2, 3, 2, 3}, 0);
    plx_context_close(ctx);
}

/* Sizes of tests/fixtures/norm_loss/bn_train.f32 (see gen.py). */
static void test_batch_norm_pytorch_fixture(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    size_t count = 0;
    float *f = tu_fixture_f32("norm_loss/bn_train.f32", &count);
    assert_int_equal(count, 24 + 3 * 4 + 24 + 24 + 3 * 4 + 24 + 3 * 2);
    int64_t shape[4] = {2, 3, 2, 2}, c = 3;
    const float *p = f;
    plx_tensor *x = tu_from_f32(ctx, 4, shape, p);
    p += 24;
    plx_tensor *gamma = tu_from_f32(ctx, 1, &c, p);
    p += 3;
    plx_tensor *beta = tu_from_f32(ctx, 1, &c, p);
    p += 3;
    plx_tensor *rm = tu_from_f32(ctx, 1, &c, p);
    p += 3;
    plx_tensor *rv = tu_from_f32(ctx, 1, &c, p);
    p += 3;
    plx_tensor *dy = tu_from_f32(ctx, 4, shape, p);
    p += 24;
    const float *want_y = p, *want_mean = p + 24, *want_invstd = p + 27, *want_rm = p + 30, *want_rv = p + 33;
    const float *want_dx = p + 36, *want_dgamma = p + 60, *want_dbeta = p + 63;

    plx_batch_norm_attrs attrs = PLX_BATCH_NORM_ATTRS_DEFAULT;
    plx_tensor *fwd[3] = {0}, *grads[3] = {0};
    tu_run(ctx, "core.batch_norm", &attrs, (plx_tensor *[]){x, gamma, beta, rm, rv}, 5, fwd, 3);
    tu_assert_close(tu_f32(fwd[0]), want_y, 24, 1e-5f, 1e-4f, "fixture y");
    tu_assert_close(tu_f32(fwd[1]), want_mean, 3, 1e-5f, 1e-4f, "fixture save_mean");
    tu_assert_close(tu_f32(fwd[2]), want_invstd, 3, 1e-5f, 1e-4f, "fixture save_invstd");
    tu_assert_close(tu_f32(rm), want_rm, 3, 1e-5f, 1e-4f, "fixture running_mean");
    tu_assert_close(tu_f32(rv), want_rv, 3, 1e-5f, 1e-4f, "fixture running_var");
    tu_run(ctx, "core.batch_norm_backward", &attrs, (plx_tensor *[]){dy, x, gamma, fwd[1], fwd[2]}, 5, grads, 3);
    tu_assert_close(tu_f32(grads[0]), want_dx, 24, 1e-5f, 1e-4f, "fixture dx");
    tu_assert_close(tu_f32(grads[1]), want_dgamma, 3, 1e-5f, 1e-4f, "fixture dgamma");
    tu_assert_close(tu_f32(grads[2]), want_dbeta, 3, 1e-5f, 1e-4f, "fixture dbeta");
    free_all(fwd, 3);
    free_all(grads, 3);
    plx_tensor *in[6] = {x, gamma, beta, rm, rv, dy};
    free_all(in, 6);
    free(f);
    plx_context_close(ctx);
}

/* ---- layer norm ---------------------------------------------------------- */

static void ln_sizes(int32_t ndim, const int64_t *shape, int32_t normalized_ndim, int64_t *rows, int64_t *cols)
{
    *rows = *cols = 1;
    for (int32_t i = 0; i < ndim; i++) {
        if (i < ndim - normalized_ndim)
            *rows *= shape[i];
        else
            *cols *= shape[i];
    }
}

static void check_layer_norm(plx_context *ctx, uint64_t *rng, int32_t ndim, const int64_t *shape,
                             int32_t normalized_ndim, bool strided)
{
    int64_t rows, cols;
    ln_sizes(ndim, shape, normalized_ndim, &rows, &cols);
    plx_layer_norm_attrs attrs = PLX_LAYER_NORM_ATTRS_DEFAULT;
    attrs.normalized_ndim = normalized_ndim;
    attrs.eps = 1e-4f;
    int64_t numel = rows * cols;
    const int64_t *pshape = shape + ndim - normalized_ndim;

    plx_tensor *x, *x_base = NULL;
    float *xv = malloc((size_t)numel * sizeof(float));
    assert_non_null(xv);
    if (strided) {
        /* memory with the last two dims swapped, viewed as `shape` */
        assert_true(ndim >= 2);
        int64_t base_shape[PLX_MAX_DIMS], strides[PLX_MAX_DIMS];
        memcpy(base_shape, shape, (size_t)ndim * sizeof(int64_t));
        base_shape[ndim - 2] = shape[ndim - 1];
        base_shape[ndim - 1] = shape[ndim - 2];
        x_base = tu_uniform(ctx, rng, ndim, base_shape, -3.0f, 5.0f);
        int64_t stride = 1;
        for (int32_t i = ndim - 1; i >= 0; i--) {
            strides[i] = stride;
            stride *= base_shape[i];
        }
        int64_t t = strides[ndim - 1];
        strides[ndim - 1] = strides[ndim - 2];
        strides[ndim - 2] = t;
        x = wrap_view(ctx, x_base, ndim, shape, strides);
        gather_strided(tu_f32(x_base), ndim, shape, strides, xv);
    } else {
        x = tu_uniform(ctx, rng, ndim, shape, -3.0f, 5.0f);
        memcpy(xv, tu_f32(x), (size_t)numel * sizeof(float));
    }
    plx_tensor *gamma = tu_uniform(ctx, rng, normalized_ndim, pshape, 0.5f, 1.5f);
    plx_tensor *beta = tu_uniform(ctx, rng, normalized_ndim, pshape, -1.0f, 1.0f);
    plx_tensor *outs[3] = {0};
    tu_run(ctx, "core.layer_norm", &attrs, (plx_tensor *[]){x, gamma, beta}, 3, outs, 3);
    assert_shape(outs[0], ndim, shape);
    assert_shape(outs[1], ndim - normalized_ndim, shape);
    assert_shape(outs[2], ndim - normalized_ndim, shape);

    double *y = malloc((size_t)numel * sizeof(double));
    double *mean = malloc((size_t)rows * sizeof(double)), *invstd = malloc((size_t)rows * sizeof(double));
    const float *g = tu_f32(gamma), *b = tu_f32(beta);
    for (int64_t r = 0; r < rows; r++) {
        double sum = 0, sq = 0;
        for (int64_t j = 0; j < cols; j++)
            sum += xv[r * cols + j];
        mean[r] = sum / (double)cols;
        for (int64_t j = 0; j < cols; j++)
            sq += (xv[r * cols + j] - mean[r]) * (xv[r * cols + j] - mean[r]);
        invstd[r] = 1.0 / sqrt(sq / (double)cols + attrs.eps);
        for (int64_t j = 0; j < cols; j++)
            y[r * cols + j] = (xv[r * cols + j] - mean[r]) * invstd[r] * g[j] + b[j];
    }
    assert_close_double(tu_f32(outs[0]), y, numel, 1e-4f, 1e-4f, "layer_norm y");
    assert_close_double(tu_f32(outs[1]), mean, rows, 1e-5f, 1e-5f, "layer_norm mean");
    assert_close_double(tu_f32(outs[2]), invstd, rows, 1e-5f, 1e-5f, "layer_norm invstd");
    free(y);
    free(mean);
    free(invstd);
    free(xv);
    free_all(outs, 3);
    plx_tensor_free(x);
    plx_tensor_free(x_base);
    plx_tensor_free(gamma);
    plx_tensor_free(beta);
}

static void test_layer_norm(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 21;
    check_layer_norm(ctx, &rng, 2, (int64_t[]){3, 7}, 1, false);
    check_layer_norm(ctx, &rng, 1, (int64_t[]){17}, 1, false); /* 0-d mean */
    check_layer_norm(ctx, &rng, 3, (int64_t[]){2, 3, 5}, 2, false);
    check_layer_norm(ctx, &rng, 3, (int64_t[]){4, 1, 3}, 2, false);
    check_layer_norm(ctx, &rng, 3, (int64_t[]){2, 3, 5}, 3, false);
    check_layer_norm(ctx, &rng, 2, (int64_t[]){1, 1}, 1, false);
    check_layer_norm(ctx, &rng, 2, (int64_t[]){65, 1031}, 1, false); /* several threads, long rows */
    for (int rep = 0; rep < 4; rep++) {
        int64_t shape[3] = {tu_rand_int(&rng, 1, 6), tu_rand_int(&rng, 1, 9), tu_rand_int(&rng, 1, 9)};
        check_layer_norm(ctx, &rng, 3, shape, (int32_t)tu_rand_int(&rng, 1, 2), false);
    }
    check_layer_norm(ctx, &rng, 3, (int64_t[]){2, 5, 3}, 1, true);
    check_layer_norm(ctx, &rng, 3, (int64_t[]){2, 5, 3}, 2, true);
    plx_context_close(ctx);
}

static void check_layer_norm_backward(plx_context *ctx, uint64_t *rng, int32_t ndim, const int64_t *shape,
                                      int32_t normalized_ndim)
{
    int64_t rows, cols;
    ln_sizes(ndim, shape, normalized_ndim, &rows, &cols);
    int64_t numel = rows * cols;
    const int64_t *pshape = shape + ndim - normalized_ndim;
    plx_layer_norm_attrs attrs = PLX_LAYER_NORM_ATTRS_DEFAULT;
    attrs.normalized_ndim = normalized_ndim;
    plx_tensor *x = tu_uniform(ctx, rng, ndim, shape, -2.0f, 2.0f);
    plx_tensor *gamma = tu_uniform(ctx, rng, normalized_ndim, pshape, 0.5f, 1.5f);
    plx_tensor *beta = tu_uniform(ctx, rng, normalized_ndim, pshape, -1.0f, 1.0f);
    plx_tensor *dy = tu_uniform(ctx, rng, ndim, shape, -1.0f, 1.0f);
    plx_tensor *fwd[3] = {0}, *grads[3] = {0};
    tu_run(ctx, "core.layer_norm", &attrs, (plx_tensor *[]){x, gamma, beta}, 3, fwd, 3);
    tu_run(ctx, "core.layer_norm_backward", &attrs, (plx_tensor *[]){dy, x, gamma, fwd[1], fwd[2]}, 5, grads, 3);
    assert_shape(grads[0], ndim, shape);
    assert_shape(grads[1], normalized_ndim, pshape);
    assert_shape(grads[2], normalized_ndim, pshape);

    const float *xv = tu_f32(x), *dyv = tu_f32(dy), *g = tu_f32(gamma);
    const float *mean = tu_f32(fwd[1]), *invstd = tu_f32(fwd[2]);
    double *dx = calloc((size_t)numel, sizeof(double));
    double *dgamma = calloc((size_t)cols, sizeof(double)), *dbeta = calloc((size_t)cols, sizeof(double));
    for (int64_t r = 0; r < rows; r++) {
        double sg = 0, sgx = 0;
        for (int64_t j = 0; j < cols; j++) {
            double xhat = (xv[r * cols + j] - mean[r]) * (double)invstd[r];
            double gj = (double)dyv[r * cols + j] * g[j];
            sg += gj;
            sgx += gj * xhat;
            dgamma[j] += dyv[r * cols + j] * xhat;
            dbeta[j] += dyv[r * cols + j];
        }
        for (int64_t j = 0; j < cols; j++) {
            double xhat = (xv[r * cols + j] - mean[r]) * (double)invstd[r];
            double gj = (double)dyv[r * cols + j] * g[j];
            dx[r * cols + j] = invstd[r] / (double)cols * ((double)cols * gj - sg - xhat * sgx);
        }
    }
    assert_close_double(tu_f32(grads[0]), dx, numel, 1e-4f, 1e-4f, "layer_norm_backward dx");
    assert_close_double(tu_f32(grads[1]), dgamma, cols, 1e-4f, 1e-4f, "layer_norm_backward dgamma");
    assert_close_double(tu_f32(grads[2]), dbeta, cols, 1e-4f, 1e-4f, "layer_norm_backward dbeta");

    plx_tensor *in[3] = {x, gamma, beta};
    for (size_t wrt = 0; wrt < 3; wrt++)
        tu_check_fd(ctx, "core.layer_norm", &attrs, in, 3, 3, 0, dyv, wrt, tu_f32(grads[wrt]), 24, 1e-2f, 1e-2f);
    free(dx);
    free(dgamma);
    free(dbeta);
    free_all(fwd, 3);
    free_all(grads, 3);
    free_all(in, 3);
    plx_tensor_free(dy);
}

static void test_layer_norm_backward(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 22;
    check_layer_norm_backward(ctx, &rng, 2, (int64_t[]){3, 7}, 1);
    check_layer_norm_backward(ctx, &rng, 3, (int64_t[]){2, 3, 5}, 2);
    check_layer_norm_backward(ctx, &rng, 1, (int64_t[]){9}, 1);
    check_layer_norm_backward(ctx, &rng, 3, (int64_t[]){3, 1, 4}, 1);
    check_layer_norm_backward(ctx, &rng, 2, (int64_t[]){40, 1100}, 1); /* several threads */
    plx_context_close(ctx);
}

static void test_layer_norm_pytorch_fixture(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    size_t count = 0;
    float *f = tu_fixture_f32("norm_loss/ln.f32", &count);
    assert_int_equal(count, 24 + 12 + 12 + 24 + 24 + 2 + 2 + 24 + 12 + 12);
    int64_t shape[3] = {2, 3, 4};
    const float *p = f;
    plx_tensor *x = tu_from_f32(ctx, 3, shape, p);
    plx_tensor *gamma = tu_from_f32(ctx, 2, shape + 1, p + 24);
    plx_tensor *beta = tu_from_f32(ctx, 2, shape + 1, p + 36);
    plx_tensor *dy = tu_from_f32(ctx, 3, shape, p + 48);
    p += 72;
    plx_layer_norm_attrs attrs = PLX_LAYER_NORM_ATTRS_DEFAULT;
    attrs.normalized_ndim = 2;
    plx_tensor *fwd[3] = {0}, *grads[3] = {0};
    tu_run(ctx, "core.layer_norm", &attrs, (plx_tensor *[]){x, gamma, beta}, 3, fwd, 3);
    tu_assert_close(tu_f32(fwd[0]), p, 24, 1e-5f, 1e-4f, "fixture y");
    tu_assert_close(tu_f32(fwd[1]), p + 24, 2, 1e-5f, 1e-4f, "fixture mean");
    tu_assert_close(tu_f32(fwd[2]), p + 26, 2, 1e-5f, 1e-4f, "fixture invstd");
    tu_run(ctx, "core.layer_norm_backward", &attrs, (plx_tensor *[]){dy, x, gamma, fwd[1], fwd[2]}, 5, grads, 3);
    tu_assert_close(tu_f32(grads[0]), p + 28, 24, 1e-5f, 1e-4f, "fixture dx");
    tu_assert_close(tu_f32(grads[1]), p + 52, 12, 1e-5f, 1e-4f, "fixture dgamma");
    tu_assert_close(tu_f32(grads[2]), p + 64, 12, 1e-5f, 1e-4f, "fixture dbeta");
    free_all(fwd, 3);
    free_all(grads, 3);
    plx_tensor *in[4] = {x, gamma, beta, dy};
    free_all(in, 4);
    free(f);
    plx_context_close(ctx);
}

/* ---- bad input ------------------------------------------------------------ */

static void test_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    int64_t xs[4] = {2, 3, 4, 4}, c = 3, c5 = 5;
    plx_tensor *x = tu_tensor(ctx, PLX_F32, 4, xs);
    plx_tensor *v3 = tu_tensor(ctx, PLX_F32, 1, &c);
    plx_tensor *v5 = tu_tensor(ctx, PLX_F32, 1, &c5);
    plx_tensor *xi = tu_tensor(ctx, PLX_I64, 4, xs);
    plx_tensor *x1 = tu_tensor(ctx, PLX_F32, 1, &c);

    /* gamma of the wrong size */
    expect_failure(ctx, "core.batch_norm", NULL, (plx_tensor *[]){x, v5, v3, v3, v3}, 5, 3, PLX_SHAPE_MISMATCH,
                   (const char *[]){"gamma", "f32[5]", "f32[2,3,4,4]"}, 3);
    expect_failure(ctx, "core.batch_norm", NULL, (plx_tensor *[]){x, v3, v3, v3, v5}, 5, 3, PLX_SHAPE_MISMATCH,
                   (const char *[]){"running_var", "f32[5]"}, 2);
    /* x of rank 1 and of an integer dtype */
    expect_failure(ctx, "core.batch_norm", NULL, (plx_tensor *[]){x1, v3, v3, v3, v3}, 5, 3, PLX_SHAPE_MISMATCH,
                   (const char *[]){"x", "f32[3]"}, 2);
    expect_failure(ctx, "core.batch_norm", NULL, (plx_tensor *[]){xi, v3, v3, v3, v3}, 5, 3, PLX_DTYPE_MISMATCH,
                   (const char *[]){"x", "i64[2,3,4,4]"}, 2);
    /* bad attribute values */
    plx_batch_norm_attrs bn = PLX_BATCH_NORM_ATTRS_DEFAULT;
    bn.momentum = 1.5f;
    expect_failure(ctx, "core.batch_norm", &bn, (plx_tensor *[]){x, v3, v3, v3, v3}, 5, 3, PLX_INVALID_ARGUMENT,
                   (const char *[]){"momentum"}, 1);
    bn = (plx_batch_norm_attrs)PLX_BATCH_NORM_ATTRS_DEFAULT;
    bn.eps = -1.0f;
    expect_failure(ctx, "core.batch_norm", &bn, (plx_tensor *[]){x, v3, v3, v3, v3}, 5, 3, PLX_INVALID_ARGUMENT,
                   (const char *[]){"eps"}, 1);
    bn = (plx_batch_norm_attrs)PLX_BATCH_NORM_ATTRS_DEFAULT;
    bn.training = 7;
    expect_failure(ctx, "core.batch_norm", &bn, (plx_tensor *[]){x, v3, v3, v3, v3}, 5, 3, PLX_INVALID_ARGUMENT,
                   (const char *[]){"training"}, 1);
    /* training with a single value per channel has no unbiased variance */
    int64_t one_shape[2] = {1, 3};
    plx_tensor *x_one = tu_tensor(ctx, PLX_F32, 2, one_shape);
    expect_failure(ctx, "core.batch_norm", NULL, (plx_tensor *[]){x_one, v3, v3, v3, v3}, 5, 3,
                   PLX_INVALID_ARGUMENT, (const char *[]){"more than 1 value per channel", "f32[1,3]"}, 2);
    /* backward: dy and x disagree; save_invstd of the wrong size */
    plx_tensor *dy_bad = tu_tensor(ctx, PLX_F32, 2, one_shape);
    expect_failure(ctx, "core.batch_norm_backward", NULL, (plx_tensor *[]){dy_bad, x, v3, v3, v3}, 5, 3,
                   PLX_SHAPE_MISMATCH, (const char *[]){"f32[1,3]", "f32[2,3,4,4]"}, 2);
    expect_failure(ctx, "core.batch_norm_backward", NULL, (plx_tensor *[]){x, x, v3, v3, v5}, 5, 3,
                   PLX_SHAPE_MISMATCH, (const char *[]){"save_invstd", "f32[5]"}, 2);

    /* layer norm: normalized_ndim out of range, gamma of the wrong shape */
    plx_layer_norm_attrs ln = PLX_LAYER_NORM_ATTRS_DEFAULT;
    int64_t p4 = 4;
    plx_tensor *g4 = tu_tensor(ctx, PLX_F32, 1, &p4);
    ln.normalized_ndim = 0;
    expect_failure(ctx, "core.layer_norm", &ln, (plx_tensor *[]){x, g4, g4}, 3, 3, PLX_INVALID_ARGUMENT,
                   (const char *[]){"normalized_ndim", "f32[2,3,4,4]"}, 2);
    ln.normalized_ndim = 5;
    expect_failure(ctx, "core.layer_norm", &ln, (plx_tensor *[]){x, g4, g4}, 3, 3, PLX_INVALID_ARGUMENT,
                   (const char *[]){"normalized_ndim"}, 1);
    ln.normalized_ndim = 1;
    expect_failure(ctx, "core.layer_norm", &ln, (plx_tensor *[]){x, v3, g4}, 3, 3, PLX_SHAPE_MISMATCH,
                   (const char *[]){"gamma", "f32[3]", "f32[2,3,4,4]"}, 3);
    ln.normalized_ndim = 2;
    expect_failure(ctx, "core.layer_norm", &ln, (plx_tensor *[]){x, g4, g4}, 3, 3, PLX_SHAPE_MISMATCH,
                   (const char *[]){"gamma", "last 2 dims"}, 2);
    /* layer norm backward: mean without x's leading dims */
    ln.normalized_ndim = 1;
    expect_failure(ctx, "core.layer_norm_backward", &ln, (plx_tensor *[]){x, x, g4, v3, v3}, 5, 3,
                   PLX_SHAPE_MISMATCH, (const char *[]){"mean", "f32[3]"}, 2);

    plx_tensor *all[] = {x, v3, v5, xi, x1, x_one, dy_bad, g4};
    free_all(all, sizeof all / sizeof all[0]);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_norm_training),
        cmocka_unit_test(test_batch_norm_inference),
        cmocka_unit_test(test_batch_norm_running_stats_accumulate),
        cmocka_unit_test(test_batch_norm_backward),
        cmocka_unit_test(test_batch_norm_pytorch_fixture),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_layer_norm_backward),
        cmocka_unit_test(test_layer_norm_pytorch_fixture),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
