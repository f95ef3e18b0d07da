/* test_loss.c — the loss ops and their backward ops on cpu_blas: naive
 * double references for every reduction, label smoothing and ignore_index,
 * spatial cross entropy, strided input, finite differences, PyTorch
 * fixtures and bad input. */
#include "../../test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const reduction_names[3] = {"mean", "sum", "none"};

#define expect_failure tu_expect_failure1

static void assert_shape(const plx_tensor *t, int32_t ndim, const int64_t *shape)
{
    const plx_tensor_desc *d = plx_tensor_desc_get(t);
    assert_int_equal(d->ndim, ndim);
    for (int32_t i = 0; i < ndim; i++)
        assert_int_equal(d->shape[i], shape[i]);
}

/* Reduces per-item losses as the op should; mean over `count` items. */
static double reduce_reference(const double *per_item, int64_t n, int64_t count, int32_t reduction)
{
    double total = 0;
    for (int64_t i = 0; i < n; i++)
        total += per_item[i];
    if (reduction == PLX_REDUCTION_MEAN)
        return count > 0 ? total / (double)count : NAN;
    return total;
}

/* Checks a loss output against per-item reference values. */
static void assert_loss(const plx_tensor *loss, const double *per_item, int64_t n, int64_t count, int32_t reduction,
                        int32_t item_ndim, const int64_t *item_shape, const char *what)
{
    if (reduction == PLX_REDUCTION_NONE) {
        assert_shape(loss, item_ndim, item_shape);
        float *w = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
        for (int64_t i = 0; i < n; i++)
            w[i] = (float)per_item[i];
        tu_assert_close(tu_f32(loss), w, n, 1e-5f, 1e-5f, what);
        free(w);
    } else {
        assert_int_equal(plx_tensor_desc_get(loss)->ndim, 0);
        float w = (float)reduce_reference(per_item, n, count, reduction);
        tu_assert_close(tu_f32(loss), &w, 1, 1e-5f, 1e-5f, what);
    }
}

/* A dloss of the loss's shape: random per item for none, else a scalar. */
static plx_tensor *make_dloss(plx_context *ctx, uint64_t *rng, int32_t reduction, int32_t item_ndim,
                              const int64_t *item_shape)
{
    if (reduction == PLX_REDUCTION_NONE)
        return tu_uniform(ctx, rng, item_ndim, item_shape, -1.0f, 1.0f);
    float v = 0.7f;
    return tu_from_f32(ctx, 0, NULL, &v);
}

/* Weight of item i in the gradient: dloss per item, or the scalar dloss
 * (divided by the mean's count). */
static double grad_weight(const plx_tensor *dloss, int32_t reduction, int64_t i, int64_t count)
{
    const float *g = tu_f32(dloss);
    if (reduction == PLX_REDUCTION_NONE)
        return g[i];
    return reduction == PLX_REDUCTION_SUM ? g[0] : (count > 0 ? g[0] / (double)count : 0.0);
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

/* ---- cross entropy and NLL ---------------------------------------------- */

typedef struct class_case {
    int32_t ndim;
    int64_t shape[PLX_MAX_DIMS]; /* [N,C,d...] */
    int32_t reduction;
    float smoothing;
    int64_t ignore_index;
    int ignore_percent; /* share of targets set to ignore_index */
} class_case;

/* Per-sample loss in double; returns the count of samples not ignored. */
static int64_t class_reference(const class_case *cc, const float *x, const int64_t *target, bool nll,
                               double *per_sample)
{
    int64_t n = cc->shape[0], c = cc->shape[1], s = 1, count = 0;
    for (int32_t i = 2; i < cc->ndim; i++)
        s *= cc->shape[i];
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < s; k++) {
            int64_t t = target[i * s + k];
            double loss = 0;
            if (t != cc->ignore_index) {
                const float *x0 = x + i * c * s + k;
                count++;
                if (nll) {
                    loss = -x0[t * s];
                } else {
                    double m = -INFINITY, sum = 0, sum_x = 0;
                    for (int64_t j = 0; j < c; j++)
                        m = fmax(m, x0[j * s]);
                    for (int64_t j = 0; j < c; j++) {
                        sum += exp(x0[j * s] - m);
                        sum_x += x0[j * s];
                    }
                    double lse = m + log(sum), eps = cc->smoothing;
                    loss = (1 - eps) * (lse - x0[t * s]) + eps / (double)c * ((double)c * lse - sum_x);
                }
            }
            per_sample[i * s + k] = loss;
        }
    return count;
}

static void check_class_loss(plx_context *ctx, uint64_t *rng, const class_case *cc, bool nll, bool strided)
{
    const char *op = nll ? "core.nll_loss" : "core.cross_entropy";
    const char *op_bw = nll ? "core.nll_loss_backward" : "core.cross_entropy_backward";
    plx_loss_attrs attrs = PLX_LOSS_ATTRS_DEFAULT;
    attrs.reduction = cc->reduction;
    attrs.label_smoothing = cc->smoothing;
    attrs.ignore_index = cc->ignore_index;

    int64_t numel = 1;
    for (int32_t i = 0; i < cc->ndim; i++)
        numel *= cc->shape[i];
    int32_t item_ndim = cc->ndim - 1;
    int64_t item_shape[PLX_MAX_DIMS];
    item_shape[0] = cc->shape[0];
    for (int32_t i = 1; i < item_ndim; i++)
        item_shape[i] = cc->shape[i + 1];
    int64_t items = numel / cc->shape[1];

    plx_tensor *x, *x_base = NULL;
    float *xv = malloc((size_t)numel * sizeof(float));
    if (strided) {
        /* [N,C] logits from memory [C,N] */
        assert_int_equal(cc->ndim, 2);
        int64_t base_shape[2] = {cc->shape[1], cc->shape[0]}, strides[2] = {1, cc->shape[0]};
        x_base = tu_uniform(ctx, rng, 2, base_shape, -3.0f, 3.0f);
        plx_tensor_desc d;
        memset(&d, 0, sizeof d);
        d.data = plx_tensor_data(x_base);
        d.device.device_type = PLX_DL_CPU;
        d.ndim = 2;
        d.dtype = PLX_F32;
        d.shape = (int64_t *)cc->shape;
        d.strides = strides;
        assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &x), PLX_OK);
        const float *b = tu_f32(x_base);
        for (int64_t i = 0; i < cc->shape[0]; i++)
            for (int64_t j = 0; j < cc->shape[1]; j++)
                xv[i * cc->shape[1] + j] = b[j * cc->shape[0] + i];
    } else {
        x = tu_uniform(ctx, rng, cc->ndim, cc->shape, nll ? -4.0f : -3.0f, nll ? 0.0f : 3.0f);
        memcpy(xv, tu_f32(x), (size_t)numel * sizeof(float));
    }
    int64_t *tv = malloc((size_t)items * sizeof(int64_t));
    for (int64_t i = 0; i < items; i++)
        tv[i] = tu_rand_int(rng, 0, 99) < cc->ignore_percent ? cc->ignore_index
                                                             : tu_rand_int(rng, 0, cc->shape[1] - 1);
    plx_tensor *target = tu_from_i64(ctx, item_ndim, item_shape, tv);

    double *per_sample = malloc((size_t)items * sizeof(double));
    int64_t count = class_reference(cc, xv, tv, nll, per_sample);
    plx_tensor *loss = NULL;
    tu_run(ctx, op, &attrs, (plx_tensor *[]){x, target}, 2, &loss, 1);
    assert_loss(loss, per_sample, items, count, cc->reduction, item_ndim, item_shape, op);

    plx_tensor *dloss = make_dloss(ctx, rng, cc->reduction, item_ndim, item_shape);
    plx_tensor *dx = NULL;
    tu_run(ctx, op_bw, &attrs, (plx_tensor *[]){dloss, x, target}, 3, &dx, 1);
    assert_shape(dx, cc->ndim, cc->shape);
    double *want_dx = calloc((size_t)numel, sizeof(double));
    int64_t classes = cc->shape[1], s = items / cc->shape[0];
    for (int64_t i = 0; i < items; i++) {
        int64_t t = tv[i];
        if (t == cc->ignore_index)
            continue;
        double w = grad_weight(dloss, cc->reduction, i, count);
        const float *x0 = xv + (i / s) * classes * s + i % s;
        double *d0 = want_dx + (x0 - xv);
        if (nll) {
            d0[t * s] = -w;
            continue;
        }
        double m = -INFINITY, sum = 0;
        for (int64_t j = 0; j < classes; j++)
            m = fmax(m, x0[j * s]);
        for (int64_t j = 0; j < classes; j++)
            sum += exp(x0[j * s] - m);
        for (int64_t j = 0; j < classes; j++)
            d0[j * s] = w * (exp(x0[j * s] - m) / sum - cc->smoothing / (double)classes -
                             (j == t ? 1.0 - cc->smoothing : 0.0));
    }
    assert_close_double(tu_f32(dx), want_dx, numel, 1e-6f, 1e-5f, op_bw);
    free(want_dx);
    /* finite differences of a mean over more items are below f32 resolution */
    if (items <= 4096) {
        /* a strided x is perturbed through a compact copy */
        plx_tensor *xc = strided ? tu_from_f32(ctx, cc->ndim, cc->shape, xv) : x;
        tu_check_fd(ctx, op, &attrs, (plx_tensor *[]){xc, target}, 2, 1, 0, tu_f32(dloss), 0, tu_f32(dx), 40,
                    1e-2f, 1e-2f);
        if (strided)
            plx_tensor_free(xc);
    }

    free(xv);
    free(tv);
    free(per_sample);
    plx_tensor_free(x);
    plx_tensor_free(x_base);
    plx_tensor_free(target);
    plx_tensor_free(loss);
    plx_tensor_free(dloss);
    plx_tensor_free(dx);
}

static void run_class_cases(bool nll)
{
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = nll ? 41 : 42;
    const class_case cases[] = {
        {2, {7, 5}, PLX_REDUCTION_MEAN, 0.0f, -100, 0},
        {2, {7, 5}, PLX_REDUCTION_SUM, 0.0f, -100, 30},
        {2, {7, 5}, PLX_REDUCTION_NONE, 0.0f, -100, 30},
        {2, {1, 3}, PLX_REDUCTION_MEAN, 0.15f, -100, 0},
        {2, {17, 11}, PLX_REDUCTION_MEAN, 0.15f, -100, 25},
        {2, {17, 11}, PLX_REDUCTION_NONE, 0.15f, -100, 25},
        {2, {9, 4}, PLX_REDUCTION_MEAN, 0.1f, 2, 0}, /* ignore_index is a real class */
        {4, {3, 4, 2, 5}, PLX_REDUCTION_MEAN, 0.2f, -1, 20},
        {4, {3, 4, 2, 5}, PLX_REDUCTION_NONE, 0.0f, -1, 20},
        {3, {2, 3, 7}, PLX_REDUCTION_SUM, 0.05f, -100, 10},
        {2, {300, 130}, PLX_REDUCTION_MEAN, 0.1f, -100, 10}, /* several threads */
        {3, {40, 7, 300}, PLX_REDUCTION_SUM, 0.1f, -100, 10},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        class_case cc = cases[i];
        if (nll)
            cc.smoothing = 0.0f;
        check_class_loss(ctx, &rng, &cc, nll, false);
    }
    for (int rep = 0; rep < 4; rep++) {
        class_case cc = {3, {tu_rand_int(&rng, 1, 6), tu_rand_int(&rng, 1, 9), tu_rand_int(&rng, 1, 5)},
                         (int32_t)tu_rand_int(&rng, 0, 2), nll ? 0.0f : 0.1f, -100, 20};
        check_class_loss(ctx, &rng, &cc, nll, false);
    }
    const class_case strided = {2, {6, 5}, PLX_REDUCTION_MEAN, nll ? 0.0f : 0.1f, -100, 20};
    check_class_loss(ctx, &rng, &strided, nll, true);
    plx_context_close(ctx);
}

static void test_cross_entropy(void **state)
{
    (void)state;
    run_class_cases(false);
}

static void test_nll_loss(void **state)
{
    (void)state;
    run_class_cases(true);
}

/* Every target ignored: the mean is 0/0 = NaN (as PyTorch) and the
 * gradient is zero. */
static void test_cross_entropy_all_ignored(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 43;
    int64_t shape[2] = {3, 4}, n = 3;
    int64_t tv[3] = {-100, -100, -100};
    plx_tensor *x = tu_uniform(ctx, &rng, 2, shape, -1.0f, 1.0f);
    plx_tensor *t = tu_from_i64(ctx, 1, &n, tv);
    plx_loss_attrs attrs = PLX_LOSS_ATTRS_DEFAULT;
    attrs.label_smoothing = 0.2f;
    const char *ops[2][2] = {{"core.cross_entropy", "core.cross_entropy_backward"},
                             {"core.nll_loss", "core.nll_loss_backward"}};
    for (int k = 0; k < 2; k++) {
        plx_tensor *loss = NULL, *dx = NULL;
        tu_run(ctx, ops[k][0], &attrs, (plx_tensor *[]){x, t}, 2, &loss, 1);
        assert_true(isnan(tu_f32(loss)[0]));
        float one = 1.0f;
        plx_tensor *dloss = tu_from_f32(ctx, 0, NULL, &one);
        tu_run(ctx, ops[k][1], &attrs, (plx_tensor *[]){dloss, x, t}, 3, &dx, 1);
        for (int i = 0; i < 12; i++)
            assert_true(tu_f32(dx)[i] == 0.0f);
        plx_tensor_free(loss);
        plx_tensor_free(dx);
        plx_tensor_free(dloss);
    }
    plx_tensor_free(x);
    plx_tensor_free(t);
    plx_context_close(ctx);
}

/* ---- elementwise losses -------------------------------------------------- */

typedef enum pointwise_kind { BCE, MSE, L1, HUBER } pointwise_kind;

static double pointwise_reference(pointwise_kind kind, double x, double t, double delta)
{
    double d = x - t;
    switch (kind) {
    case BCE:
        return fmax(x, 0) - x * t + log1p(exp(-fabs(x)));
    case MSE:
        return d * d;
    case L1:
        return fabs(d);
    case HUBER:
        return fabs(d) < delta ? 0.5 * d * d : delta * (fabs(d) - 0.5 * delta);
    }
    return NAN;
}

static double pointwise_slope(pointwise_kind kind, double x, double t, double delta)
{
    double d = x - t;
    switch (kind) {
    case BCE:
        return 1.0 / (1.0 + exp(-x)) - t;
    case MSE:
        return 2 * d;
    case L1:
        return (d > 0) - (d < 0);
    case HUBER:
        return d < -delta ? -delta : d > delta ? delta : d;
    }
    return NAN;
}

static void check_pointwise(plx_context *ctx, uint64_t *rng, pointwise_kind kind, int32_t ndim,
                            const int64_t *shape, int32_t reduction, float delta, float range)
{
    static const char *const names[4][2] = {{"core.bce_with_logits", "core.bce_with_logits_backward"},
                                            {"core.mse_loss", "core.mse_loss_backward"},
                                            {"core.l1_loss", "core.l1_loss_backward"},
                                            {"core.huber_loss", "core.huber_loss_backward"}};
    plx_loss_attrs attrs = PLX_LOSS_ATTRS_DEFAULT;
    attrs.reduction = reduction;
    attrs.delta = delta;
    plx_tensor *x = tu_uniform(ctx, rng, ndim, shape, -range, range);
    plx_tensor *t = kind == BCE ? tu_uniform(ctx, rng, ndim, shape, 0.0f, 1.0f)
                                : tu_uniform(ctx, rng, ndim, shape, -range, range);
    int64_t n = plx_tensor_numel(x);
    float *xv = tu_f32(x), *tv = tu_f32(t);
    /* keep away from the kinks (|x - t| = 0 for L1 and Huber, = delta for
     * Huber) so finite differences see a smooth function */
    for (int64_t i = 0; i < n; i++) {
        while (kind != BCE && kind != MSE &&
               (fabsf(xv[i] - tv[i]) < 0.05f || (kind == HUBER && fabsf(fabsf(xv[i] - tv[i]) - delta) < 0.05f)))
            tv[i] = tu_rand_uniform(rng, -range, range);
    }
    double *per_item = malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        per_item[i] = pointwise_reference(kind, xv[i], tv[i], delta);
    plx_tensor *loss = NULL;
    tu_run(ctx, names[kind][0], &attrs, (plx_tensor *[]){x, t}, 2, &loss, 1);
    char what[96];
    snprintf(what, sizeof what, "%s reduction %s", names[kind][0], reduction_names[reduction]);
    assert_loss(loss, per_item, n, n, reduction, ndim, shape, what);

    plx_tensor *dloss = make_dloss(ctx, rng, reduction, ndim, shape);
    plx_tensor *dx = NULL;
    tu_run(ctx, names[kind][1], &attrs, (plx_tensor *[]){dloss, x, t}, 3, &dx, 1);
    assert_shape(dx, ndim, shape);
    for (int64_t i = 0; i < n; i++)
        per_item[i] = grad_weight(dloss, reduction, i, n) * pointwise_slope(kind, xv[i], tv[i], delta);
    snprintf(what, sizeof what, "%s reduction %s", names[kind][1], reduction_names[reduction]);
    assert_close_double(tu_f32(dx), per_item, n, 1e-6f, 1e-5f, what);
    /* past a few thousand items a mean moves less than f32 resolves */
    if (n <= 4096)
        tu_check_fd(ctx, names[kind][0], &attrs, (plx_tensor *[]){x, t}, 2, 1, 0, tu_f32(dloss), 0, tu_f32(dx),
                    40, 1e-2f, 1e-2f);
    free(per_item);
    plx_tensor_free(x);
    plx_tensor_free(t);
    plx_tensor_free(loss);
    plx_tensor_free(dloss);
    plx_tensor_free(dx);
}

static void run_pointwise_cases(pointwise_kind kind, float delta)
{
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 50 + (uint64_t)kind;
    for (int32_t reduction = 0; reduction < 3; reduction++) {
        check_pointwise(ctx, &rng, kind, 2, (int64_t[]){7, 3}, reduction, delta, 2.0f);
        check_pointwise(ctx, &rng, kind, 1, (int64_t[]){1}, reduction, delta, 2.0f);
        check_pointwise(ctx, &rng, kind, 3, (int64_t[]){2, 17, 3}, reduction, delta, 3.0f);
        check_pointwise(ctx, &rng, kind, 0, NULL, reduction, delta, 2.0f);
        check_pointwise(ctx, &rng, kind, 2, (int64_t[]){97, 1031}, reduction, delta, 2.0f); /* several blocks */
        int64_t shape[2] = {tu_rand_int(&rng, 1, 9), tu_rand_int(&rng, 1, 9)};
        check_pointwise(ctx, &rng, kind, 2, shape, reduction, delta, 2.0f);
    }
    if (kind == BCE) /* large logits: no overflow, no log(0) */
        check_pointwise(ctx, &rng, kind, 1, (int64_t[]){33}, PLX_REDUCTION_NONE, delta, 120.0f);
    plx_context_close(ctx);
}

static void test_bce_with_logits(void **state)
{
    (void)state;
    run_pointwise_cases(BCE, 1.0f);
}

static void test_mse_loss(void **state)
{
    (void)state;
    run_pointwise_cases(MSE, 1.0f);
}

static void test_l1_loss(void **state)
{
    (void)state;
    run_pointwise_cases(L1, 1.0f);
}

static void test_huber_loss(void **state)
{
    (void)state;
    run_pointwise_cases(HUBER, 1.0f);
    run_pointwise_cases(HUBER, 0.35f);
    run_pointwise_cases(HUBER, 2.5f);
}

/* A loss on a transposed view of x and target gives the reference on the
 * logical values. */
static void test_pointwise_strided(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 60;
    int64_t base_shape[2] = {5, 3}, view_shape[2] = {3, 5}, strides[2] = {1, 3};
    plx_tensor *xb = tu_uniform(ctx, &rng, 2, base_shape, -2.0f, 2.0f);
    plx_tensor *tb = tu_uniform(ctx, &rng, 2, base_shape, -2.0f, 2.0f);
    plx_tensor *views[2];
    plx_tensor *bases[2] = {xb, tb};
    for (int k = 0; k < 2; k++) {
        plx_tensor_desc d;
        memset(&d, 0, sizeof d);
        d.data = plx_tensor_data(bases[k]);
        d.device.device_type = PLX_DL_CPU;
        d.ndim = 2;
        d.dtype = PLX_F32;
        d.shape = view_shape;
        d.strides = strides;
        assert_int_equal(plx_tensor_wrap(ctx, &d, NULL, NULL, &views[k]), PLX_OK);
    }
    double per_item[15];
    const float *x = tu_f32(xb), *t = tu_f32(tb);
    for (int64_t i = 0; i < 3; i++)
        for (int64_t j = 0; j < 5; j++) {
            double dd = (double)x[j * 3 + i] - t[j * 3 + i];
            per_item[i * 5 + j] = dd * dd;
        }
    plx_loss_attrs attrs = PLX_LOSS_ATTRS_DEFAULT;
    attrs.reduction = PLX_REDUCTION_NONE;
    plx_tensor *loss = NULL;
    tu_run(ctx, "core.mse_loss", &attrs, views, 2, &loss, 1);
    assert_loss(loss, per_item, 15, 15, PLX_REDUCTION_NONE, 2, view_shape, "strided mse");
    plx_tensor_free(loss);
    plx_tensor_free(views[0]);
    plx_tensor_free(views[1]);
    plx_tensor_free(xb);
    plx_tensor_free(tb);
    plx_context_close(ctx);
}

/* ---- PyTorch fixtures (tests/fixtures/norm_loss/gen.py) ------------------ */

static plx_tensor *targets_from_floats(plx_context *ctx, int32_t ndim, const int64_t *shape, const float *v)
{
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++)
        n *= shape[i];
    int64_t buf[16];
    assert_true(n <= 16);
    for (int64_t i = 0; i < n; i++)
        buf[i] = (int64_t)v[i];
    return tu_from_i64(ctx, ndim, shape, buf);
}

static void test_cross_entropy_pytorch_fixture(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    size_t count = 0;
    float *f = tu_fixture_f32("norm_loss/ce.f32", &count);
    assert_int_equal(count, 20 + 5 + 5 + 1 + 20);
    int64_t shape[2] = {5, 4}, n = 5;
    plx_tensor *x = tu_from_f32(ctx, 2, shape, f);
    plx_tensor *t = targets_from_floats(ctx, 1, &n, f + 20);
    plx_loss_attrs attrs = PLX_LOSS_ATTRS_DEFAULT;
    attrs.label_smoothing = 0.1f;
    attrs.reduction = PLX_REDUCTION_NONE;
    plx_tensor *loss = NULL, *dx = NULL;
    tu_run(ctx, "core.cross_entropy", &attrs, (plx_tensor *[]){x, t}, 2, &loss, 1);
    tu_assert_close(tu_f32(loss), f + 25, 5, 1e-5f, 1e-5f, "fixture ce none");
    plx_tensor_free(loss);
    loss = NULL;
    attrs.reduction = PLX_REDUCTION_MEAN;
    tu_run(ctx, "core.cross_entropy", &attrs, (plx_tensor *[]){x, t}, 2, &loss, 1);
    tu_assert_close(tu_f32(loss), f + 30, 1, 1e-5f, 1e-5f, "fixture ce mean");
    float one = 1.0f;
    plx_tensor *dloss = tu_from_f32(ctx, 0, NULL, &one);
    tu_run(ctx, "core.cross_entropy_backward", &attrs, (plx_tensor *[]){dloss, x, t}, 3, &dx, 1);
    tu_assert_close(tu_f32(dx), f + 31, 20, 1e-6f, 1e-5f, "fixture ce mean dlogits");
    plx_tensor_free(loss);
    plx_tensor_free(dx);
    plx_tensor_free(x);
    plx_tensor_free(t);
    free(f);

    f = tu_fixture_f32("norm_loss/ce_spatial.f32", &count);
    assert_int_equal(count, 12 + 4 + 1 + 12);
    int64_t shape3[3] = {2, 3, 2}, tshape[2] = {2, 2};
    x = tu_from_f32(ctx, 3, shape3, f);
    t = targets_from_floats(ctx, 2, tshape, f + 12);
    attrs.reduction = PLX_REDUCTION_SUM;
    attrs.label_smoothing = 0.2f;
    attrs.ignore_index = 1;
    loss = dx = NULL;
    tu_run(ctx, "core.cross_entropy", &attrs, (plx_tensor *[]){x, t}, 2, &loss, 1);
    tu_assert_close(tu_f32(loss), f + 16, 1, 1e-5f, 1e-5f, "fixture spatial ce sum");
    tu_run(ctx, "core.cross_entropy_backward", &attrs, (plx_tensor *[]){dloss, x, t}, 3, &dx, 1);
    tu_assert_close(tu_f32(dx), f + 17, 12, 1e-6f, 1e-5f, "fixture spatial ce dlogits");
    plx_tensor_free(loss);
    plx_tensor_free(dx);
    plx_tensor_free(x);
    plx_tensor_free(t);
    plx_tensor_free(dloss);
    free(f);
    plx_context_close(ctx);
}

/* bce.f32 and huber.f32: x[n] target[n] | none[n] mean dx(mean). */
static void check_pointwise_fixture(plx_context *ctx, const char *file, int64_t n, const char *op,
                                    const char *op_bw, float delta)
{
    size_t count = 0;
    float *f = tu_fixture_f32(file, &count);
    assert_int_equal(count, (size_t)(4 * n + 1));
    plx_tensor *x = tu_from_f32(ctx, 1, &n, f);
    plx_tensor *t = tu_from_f32(ctx, 1, &n, f + n);
    plx_loss_attrs attrs = PLX_LOSS_ATTRS_DEFAULT;
    attrs.delta = delta;
    attrs.reduction = PLX_REDUCTION_NONE;
    plx_tensor *loss = NULL, *dx = NULL;
    tu_run(ctx, op, &attrs, (plx_tensor *[]){x, t}, 2, &loss, 1);
    tu_assert_close(tu_f32(loss), f + 2 * n, n, 1e-6f, 1e-5f, file);
    plx_tensor_free(loss);
    loss = NULL;
    attrs.reduction = PLX_REDUCTION_MEAN;
    tu_run(ctx, op, &attrs, (plx_tensor *[]){x, t}, 2, &loss, 1);
    tu_assert_close(tu_f32(loss), f + 3 * n, 1, 1e-6f, 1e-5f, file);
    float one = 1.0f;
    plx_tensor *dloss = tu_from_f32(ctx, 0, NULL, &one);
    tu_run(ctx, op_bw, &attrs, (plx_tensor *[]){dloss, x, t}, 3, &dx, 1);
    tu_assert_close(tu_f32(dx), f + 3 * n + 1, n, 1e-7f, 1e-5f, file);
    plx_tensor_free(loss);
    plx_tensor_free(dx);
    plx_tensor_free(dloss);
    plx_tensor_free(x);
    plx_tensor_free(t);
    free(f);
}

static void test_pointwise_pytorch_fixtures(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    check_pointwise_fixture(ctx, "norm_loss/bce.f32", 7, "core.bce_with_logits", "core.bce_with_logits_backward",
                            1.0f);
    check_pointwise_fixture(ctx, "norm_loss/huber.f32", 9, "core.huber_loss", "core.huber_loss_backward", 0.5f);
    plx_context_close(ctx);
}

/* ---- bad input ------------------------------------------------------------ */

static void test_bad_input(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    int64_t s45[2] = {4, 5}, n4 = 4, n3 = 3;
    plx_tensor *logits = tu_tensor(ctx, PLX_F32, 2, s45);
    plx_tensor *t_f32 = tu_tensor(ctx, PLX_F32, 1, &n4);
    plx_tensor *t_bad = tu_from_i64(ctx, 1, &n4, (int64_t[]){0, 4, 9, 1});
    plx_tensor *t_neg = tu_from_i64(ctx, 1, &n4, (int64_t[]){0, -1, 2, 1});
    plx_tensor *t_ok = tu_from_i64(ctx, 1, &n4, (int64_t[]){0, 4, -100, 1});
    plx_tensor *t3 = tu_from_i64(ctx, 1, &n3, (int64_t[]){0, 1, 2});
    plx_tensor *v5 = tu_tensor(ctx, PLX_F32, 1, (int64_t[]){5});
    float one = 1.0f;
    plx_tensor *scalar = tu_from_f32(ctx, 0, NULL, &one);

    expect_failure(ctx, "core.cross_entropy", NULL, (plx_tensor *[]){logits, t_f32}, 2, PLX_DTYPE_MISMATCH,
                   (const char *[]){"target", "i64", "f32[4]"}, 3);
    expect_failure(ctx, "core.nll_loss", NULL, (plx_tensor *[]){logits, t_f32}, 2, PLX_DTYPE_MISMATCH,
                   (const char *[]){"target", "f32[4]"}, 2);
    /* out-of-range targets: found by the kernel, which names the index */
    expect_failure(ctx, "core.cross_entropy", NULL, (plx_tensor *[]){logits, t_bad}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"target[2] = 9", "5 classes"}, 2);
    expect_failure(ctx, "core.nll_loss", NULL, (plx_tensor *[]){logits, t_neg}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"target[1] = -1"}, 1);
    expect_failure(ctx, "core.cross_entropy_backward", NULL, (plx_tensor *[]){scalar, logits, t_bad}, 3,
                   PLX_INVALID_ARGUMENT, (const char *[]){"target[2] = 9"}, 1);
    expect_failure(ctx, "core.nll_loss_backward", NULL, (plx_tensor *[]){scalar, logits, t_neg}, 3,
                   PLX_INVALID_ARGUMENT, (const char *[]){"target[1] = -1"}, 1);
    /* ignore_index itself is fine */
    plx_tensor *loss = NULL;
    tu_run(ctx, "core.cross_entropy", NULL, (plx_tensor *[]){logits, t_ok}, 2, &loss, 1);
    plx_tensor_free(loss);
    /* shapes */
    expect_failure(ctx, "core.cross_entropy", NULL, (plx_tensor *[]){logits, t3}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"f32[4,5]", "i64[3]"}, 2);
    expect_failure(ctx, "core.cross_entropy", NULL, (plx_tensor *[]){v5, t3}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"logits", "f32[5]"}, 2);
    plx_loss_attrs attrs = PLX_LOSS_ATTRS_DEFAULT;
    attrs.reduction = PLX_REDUCTION_NONE;
    expect_failure(ctx, "core.cross_entropy_backward", &attrs, (plx_tensor *[]){scalar, logits, t_ok}, 3,
                   PLX_SHAPE_MISMATCH, (const char *[]){"dloss", "f32[4]", "f32[]"}, 3);
    /* attribute values */
    attrs = (plx_loss_attrs)PLX_LOSS_ATTRS_DEFAULT;
    attrs.reduction = 7;
    expect_failure(ctx, "core.mse_loss", &attrs, (plx_tensor *[]){logits, logits}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"reduction", "7"}, 2);
    attrs = (plx_loss_attrs)PLX_LOSS_ATTRS_DEFAULT;
    attrs.label_smoothing = 1.0f;
    expect_failure(ctx, "core.cross_entropy", &attrs, (plx_tensor *[]){logits, t_ok}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"label_smoothing"}, 1);
    attrs.label_smoothing = -0.1f;
    expect_failure(ctx, "core.cross_entropy_backward", &attrs, (plx_tensor *[]){scalar, logits, t_ok}, 3,
                   PLX_INVALID_ARGUMENT, (const char *[]){"label_smoothing"}, 1);
    attrs = (plx_loss_attrs)PLX_LOSS_ATTRS_DEFAULT;
    attrs.delta = 0.0f;
    expect_failure(ctx, "core.huber_loss", &attrs, (plx_tensor *[]){logits, logits}, 2, PLX_INVALID_ARGUMENT,
                   (const char *[]){"delta"}, 1);
    attrs.delta = -2.0f;
    expect_failure(ctx, "core.huber_loss_backward", &attrs, (plx_tensor *[]){scalar, logits, logits}, 3,
                   PLX_INVALID_ARGUMENT, (const char *[]){"delta"}, 1);
    /* elementwise losses: target must match x */
    expect_failure(ctx, "core.mse_loss", NULL, (plx_tensor *[]){logits, v5}, 2, PLX_SHAPE_MISMATCH,
                   (const char *[]){"f32[4,5]", "f32[5]"}, 2);
    expect_failure(ctx, "core.bce_with_logits", NULL, (plx_tensor *[]){logits, t_bad}, 2, PLX_DTYPE_MISMATCH,
                   (const char *[]){"i64[4]"}, 1);
    expect_failure(ctx, "core.l1_loss_backward", NULL, (plx_tensor *[]){v5, logits, logits}, 3, PLX_SHAPE_MISMATCH,
                   (const char *[]){"dloss", "f32[5]"}, 2);

    plx_tensor *all[] = {logits, t_f32, t_bad, t_neg, t_ok, t3, v5, scalar};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        plx_tensor_free(all[i]);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_nll_loss),
        cmocka_unit_test(test_cross_entropy_all_ignored),
        cmocka_unit_test(test_bce_with_logits),
        cmocka_unit_test(test_mse_loss),
        cmocka_unit_test(test_l1_loss),
        cmocka_unit_test(test_huber_loss),
        cmocka_unit_test(test_pointwise_strided),
        cmocka_unit_test(test_cross_entropy_pytorch_fixture),
        cmocka_unit_test(test_pointwise_pytorch_fixtures),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
