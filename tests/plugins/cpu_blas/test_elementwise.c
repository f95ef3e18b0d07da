/*
 * test_elementwise.c — the elementwise family on cpu_blas: every unary op
 * and its gradient, broadcasting arithmetic, comparisons and where, each
 * against a naive double-precision reference; gradients also against finite
 * differences of the forward op; strided inputs; and bad input.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test_util.h"

/* ---- Helpers ------------------------------------------------------------ */

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

static plx_tensor *run1(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs, size_t n)
{
    plx_tensor *out = NULL;
    tu_run(ctx, op, attrs, inputs, n, &out, 1);
    assert_string_equal(plx_last_backend(ctx), "cpu_blas");
    return out;
}

static void expect_failure(plx_context *ctx, const char *op, const void *attrs, plx_tensor *const *inputs, size_t n,
                           plx_status want, const char *const *fragments, size_t n_fragments)
{
    plx_tensor *out = NULL;
    plx_status st = plx_op_run(ctx, op, attrs, inputs, n, &out, 1);
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

static const int64_t odd_sizes[] = {1, 2, 3, 5, 7, 17};

static int32_t random_shape(uint64_t *rng, int32_t max_ndim, int64_t *shape)
{
    int32_t ndim = (int32_t)tu_rand_int(rng, 0, max_ndim);
    for (int32_t d = 0; d < ndim; d++)
        shape[d] = odd_sizes[tu_rand_int(rng, 0, 5)];
    return ndim;
}

static float *alloc_f32(int64_t n)
{
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

/* Moves x out of (point - margin, point + margin), keeping its side. */
static float away_from(float x, float point, float margin)
{
    if (x >= point && x < point + margin)
        return point + margin;
    if (x < point && x > point - margin)
        return point - margin;
    return x;
}

/* ---- Unary ops: table of cases ------------------------------------------ */

typedef double (*ref_fn)(double x, const void *attrs);

static double ref_neg(double x, const void *a) { (void)a; return -x; }
static double ref_abs(double x, const void *a) { (void)a; return fabs(x); }
static double ref_exp(double x, const void *a) { (void)a; return exp(x); }
static double ref_log(double x, const void *a) { (void)a; return log(x); }
static double ref_sqrt(double x, const void *a) { (void)a; return sqrt(x); }
static double ref_rsqrt(double x, const void *a) { (void)a; return 1.0 / sqrt(x); }
static double ref_square(double x, const void *a) { (void)a; return x * x; }
static double ref_relu(double x, const void *a) { (void)a; return x > 0 ? x : 0.0; }
static double ref_sigmoid(double x, const void *a) { (void)a; return 1.0 / (1.0 + exp(-x)); }
static double ref_tanh(double x, const void *a) { (void)a; return tanh(x); }

static double ref_leaky_relu(double x, const void *a)
{
    return x > 0 ? x : x * ((const plx_leaky_relu_attrs *)a)->negative_slope;
}

static double ref_elu(double x, const void *a)
{
    return x > 0 ? x : ((const plx_elu_attrs *)a)->alpha * (exp(x) - 1.0);
}

static double ref_gelu(double x, const void *a)
{
    if (((const plx_gelu_attrs *)a)->approximate_tanh)
        return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

static double ref_softplus(double x, const void *a)
{
    const plx_softplus_attrs *s = a;
    double b = s->beta;
    return b * x > s->threshold ? x : log(1.0 + exp(b * x)) / b;
}

static double ref_clamp(double x, const void *a)
{
    const plx_clamp_attrs *c = a;
    if (c->has_min && x < c->min_value)
        x = c->min_value;
    if (c->has_max && x > c->max_value)
        x = c->max_value;
    return x;
}

/* Derivatives, written from the calculus rather than from the kernels. */
static double dref_neg(double x, const void *a) { (void)a; (void)x; return -1.0; }
static double dref_abs(double x, const void *a) { (void)a; return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; }
static double dref_exp(double x, const void *a) { (void)a; return exp(x); }
static double dref_log(double x, const void *a) { (void)a; return 1.0 / x; }
static double dref_sqrt(double x, const void *a) { (void)a; return 0.5 / sqrt(x); }
static double dref_rsqrt(double x, const void *a) { (void)a; return -0.5 * pow(x, -1.5); }
static double dref_square(double x, const void *a) { (void)a; return 2.0 * x; }
static double dref_relu(double x, const void *a) { (void)a; return x > 0 ? 1.0 : 0.0; }
static double dref_tanh(double x, const void *a) { (void)a; return 1.0 / (cosh(x) * cosh(x)); }

static double dref_sigmoid(double x, const void *a)
{
    double s = ref_sigmoid(x, a);
    return s * (1.0 - s);
}

static double dref_leaky_relu(double x, const void *a)
{
    return x > 0 ? 1.0 : ((const plx_leaky_relu_attrs *)a)->negative_slope;
}

static double dref_elu(double x, const void *a)
{
    return x > 0 ? 1.0 : ((const plx_elu_attrs *)a)->alpha * exp(x);
}

static double dref_gelu(double x, const void *a)
{
    if (((const plx_gelu_attrs *)a)->approximate_tanh) {
        double k = sqrt(2.0 / M_PI), u = k * (x + 0.044715 * x * x * x);
        double sech2 = 1.0 / (cosh(u) * cosh(u));
        return 0.5 * (1.0 + tanh(u)) + 0.5 * x * sech2 * k * (1.0 + 3.0 * 0.044715 * x * x);
    }
    return 0.5 * (1.0 + erf(x / sqrt(2.0))) + x * exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
}

static double dref_softplus(double x, const void *a)
{
    const plx_softplus_attrs *s = a;
    return s->beta * x > s->threshold ? 1.0 : exp(s->beta * x) / (1.0 + exp(s->beta * x));
}

static double dref_clamp(double x, const void *a)
{
    const plx_clamp_attrs *c = a;
    bool pass = (!c->has_min || x >= c->min_value) && (!c->has_max || x <= c->max_value);
    return pass ? 1.0 : 0.0;
}

static const plx_leaky_relu_attrs leaky_02 = {sizeof(plx_leaky_relu_attrs), 0.2f};
static const plx_leaky_relu_attrs leaky_default = PLX_LEAKY_RELU_ATTRS_DEFAULT;
static const plx_elu_attrs elu_07 = {sizeof(plx_elu_attrs), 0.7f};
static const plx_elu_attrs elu_default = PLX_ELU_ATTRS_DEFAULT;
static const plx_gelu_attrs gelu_erf = PLX_GELU_ATTRS_DEFAULT;
static const plx_gelu_attrs gelu_tanh_form = {sizeof(plx_gelu_attrs), 1};
static const plx_softplus_attrs softplus_default = PLX_SOFTPLUS_ATTRS_DEFAULT;
static const plx_softplus_attrs softplus_b2_t5 = {sizeof(plx_softplus_attrs), 2.0f, 5.0f};
static const plx_clamp_attrs clamp_both = {sizeof(plx_clamp_attrs), -0.5f, 1.25f, 1, 1};
static const plx_clamp_attrs clamp_min_only = {sizeof(plx_clamp_attrs), 0.3f, 0.0f, 1, 0};
static const plx_clamp_attrs clamp_max_only = {sizeof(plx_clamp_attrs), 0.0f, -0.7f, 0, 1};
static const plx_clamp_attrs clamp_crossed = {sizeof(plx_clamp_attrs), 1.0f, -1.0f, 1, 1};

typedef struct unary_case {
    const char *op;      /* forward op; the gradient is op + "_grad" */
    const void *attrs;   /* passed to the runtime (NULL: defaults) */
    const void *ref_attrs; /* what the references read */
    ref_fn ref, dref;
    float lo, hi;        /* input range */
    float kink, margin;  /* a point to keep FD probes away from (margin 0: none) */
    float kink2;         /* a second one (clamp's upper bound, softplus) */
} unary_case;

static const unary_case unary_cases[] = {
    {"core.neg", NULL, NULL, ref_neg, dref_neg, -3, 3, 0, 0, 0},
    {"core.abs", NULL, NULL, ref_abs, dref_abs, -3, 3, 0, 0.05f, 0},
    {"core.exp", NULL, NULL, ref_exp, dref_exp, -4, 4, 0, 0, 0},
    {"core.log", NULL, NULL, ref_log, dref_log, 0.2f, 5, 0, 0, 0},
    {"core.sqrt", NULL, NULL, ref_sqrt, dref_sqrt, 0.2f, 5, 0, 0, 0},
    {"core.rsqrt", NULL, NULL, ref_rsqrt, dref_rsqrt, 0.2f, 5, 0, 0, 0},
    {"core.square", NULL, NULL, ref_square, dref_square, -3, 3, 0, 0, 0},
    {"core.relu", NULL, NULL, ref_relu, dref_relu, -3, 3, 0, 0.05f, 0},
    {"core.leaky_relu", NULL, &leaky_default, ref_leaky_relu, dref_leaky_relu, -3, 3, 0, 0.05f, 0},
    {"core.leaky_relu", &leaky_02, &leaky_02, ref_leaky_relu, dref_leaky_relu, -3, 3, 0, 0.05f, 0},
    {"core.elu", NULL, &elu_default, ref_elu, dref_elu, -4, 3, 0, 0.05f, 0},
    {"core.elu", &elu_07, &elu_07, ref_elu, dref_elu, -4, 3, 0, 0.05f, 0},
    {"core.gelu", NULL, &gelu_erf, ref_gelu, dref_gelu, -5, 5, 0, 0, 0},
    {"core.gelu", &gelu_tanh_form, &gelu_tanh_form, ref_gelu, dref_gelu, -5, 5, 0, 0, 0},
    {"core.sigmoid", NULL, NULL, ref_sigmoid, dref_sigmoid, -8, 8, 0, 0, 0},
    {"core.tanh", NULL, NULL, ref_tanh, dref_tanh, -4, 4, 0, 0, 0},
    {"core.softplus", NULL, &softplus_default, ref_softplus, dref_softplus, -6, 6, 20, 0.05f, 20},
    {"core.softplus", &softplus_b2_t5, &softplus_b2_t5, ref_softplus, dref_softplus, -5, 5, 2.5f, 0.05f, 2.5f},
    {"core.clamp", &clamp_both, &clamp_both, ref_clamp, dref_clamp, -2, 2, -0.5f, 0.05f, 1.25f},
    {"core.clamp", &clamp_min_only, &clamp_min_only, ref_clamp, dref_clamp, -2, 2, 0.3f, 0.05f, 0.3f},
    {"core.clamp", &clamp_max_only, &clamp_max_only, ref_clamp, dref_clamp, -2, 2, -0.7f, 0.05f, -0.7f},
    {"core.clamp", &clamp_crossed, &clamp_crossed, ref_clamp, dref_clamp, -2, 2, 1.0f, 0.05f, -1.0f},
};

static void fill_case_input(const unary_case *c, uint64_t *rng, float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float v = tu_rand_uniform(rng, c->lo, c->hi);
        if (c->margin > 0) {
            v = away_from(v, c->kink, c->margin);
            v = away_from(v, c->kink2, c->margin);
        }
        x[i] = v;
    }
}

static void check_unary_forward(plx_context *ctx, const unary_case *c, uint64_t *rng, int32_t ndim,
                                const int64_t *shape)
{
    plx_tensor *x = tu_tensor(ctx, PLX_F32, ndim, shape);
    int64_t n = plx_tensor_numel(x);
    fill_case_input(c, rng, tu_f32(x), n);
    plx_tensor *y = run1(ctx, c->op, c->attrs, &x, 1);
    const plx_tensor_desc *d = plx_tensor_desc_get(y);
    assert_int_equal(d->ndim, ndim);
    for (int32_t i = 0; i < ndim; i++)
        assert_int_equal(d->shape[i], shape[i]);
    assert_true(plx_dtype_equal(d->dtype, PLX_F32));
    float *want = alloc_f32(n);
    for (int64_t i = 0; i < n; i++)
        want[i] = (float)c->ref((double)tu_f32(x)[i], c->ref_attrs);
    char what[96];
    snprintf(what, sizeof what, "%s forward (%lld elements)", c->op, (long long)n);
    tu_assert_close(tu_f32(y), want, n, 2e-6f, 4e-6f, what);
    free(want);
    plx_tensor_free(y);
    plx_tensor_free(x);
}

static void test_unary_forward(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 11;
    for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) {
        const unary_case *c = &unary_cases[k];
        for (int rep = 0; rep < 6; rep++) {
            int64_t shape[PLX_MAX_DIMS];
            int32_t ndim = random_shape(&rng, 4, shape);
            check_unary_forward(ctx, c, &rng, ndim, shape);
        }
        /* Big enough to be split across the thread pool, with a ragged tail. */
        check_unary_forward(ctx, c, &rng, 2, (const int64_t[]){389, 263});
        check_unary_forward(ctx, c, &rng, 1, (const int64_t[]){0});
    }
}

/* The gradient op against the derivative in double, and against central
 * differences of the forward op. */
static void test_unary_grad(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 12;
    for (size_t k = 0; k < sizeof unary_cases / sizeof unary_cases[0]; k++) {
        const unary_case *c = &unary_cases[k];
        char grad_op[64];
        snprintf(grad_op, sizeof grad_op, "%s_grad", c->op);
        for (int rep = 0; rep < 4; rep++) {
            int64_t shape[PLX_MAX_DIMS];
            int32_t ndim = rep == 3 ? 2 : random_shape(&rng, 3, shape);
            if (rep == 3) {
                shape[0] = 301;
                shape[1] = 229;
            }
            plx_tensor *x = tu_tensor(ctx, PLX_F32, ndim, shape);
            plx_tensor *dy = tu_uniform(ctx, &rng, ndim, shape, -1.5f, 1.5f);
            int64_t n = plx_tensor_numel(x);
            fill_case_input(c, &rng, tu_f32(x), n);
            plx_tensor *in[2] = {dy, x};
            plx_tensor *dx = run1(ctx, grad_op, c->attrs, in, 2);

            float *want = alloc_f32(n);
            for (int64_t i = 0; i < n; i++)
                want[i] = (float)((double)tu_f32(dy)[i] * c->dref((double)tu_f32(x)[i], c->ref_attrs));
            char what[96];
            snprintf(what, sizeof what, "%s vs derivative (%lld elements)", grad_op, (long long)n);
            tu_assert_close(tu_f32(dx), want, n, 2e-6f, 2e-5f, what);
            free(want);

            if (rep < 3)
                tu_check_fd(ctx, c->op, c->attrs, &x, 1, 1, 0, tu_f32(dy), 0, tu_f32(dx), 40, 1e-2f, 5e-3f);
            plx_tensor_free(dx);
            plx_tensor_free(dy);
            plx_tensor_free(x);
        }
    }
}

/* Values where PyTorch picks a subgradient or a convention. */
static void test_unary_conventions(void **state)
{
    plx_context *ctx = *state;
    const int64_t shape[1] = {6};
    const float xs[6] = {0.0f, -0.0f, NAN, -1.0f, 2.0f, 1.25f};
    const float ones[6] = {1, 1, 1, 1, 1, 1};
    plx_tensor *x = tu_from_f32(ctx, 1, shape, xs);
    plx_tensor *dy = tu_from_f32(ctx, 1, shape, ones);
    plx_tensor *in[2] = {dy, x};

    plx_tensor *g = run1(ctx, "core.relu_grad", NULL, in, 2);
    assert_true(tu_f32(g)[0] == 0.0f && tu_f32(g)[1] == 0.0f && tu_f32(g)[3] == 0.0f && tu_f32(g)[4] == 1.0f);
    plx_tensor_free(g);
    g = run1(ctx, "core.abs_grad", NULL, in, 2);
    const float abs_want[6] = {0, 0, 0, -1, 1, 1};
    tu_assert_close(tu_f32(g), abs_want, 6, 0, 0, "abs_grad conventions");
    plx_tensor_free(g);
    /* Gradient passes at the bounds themselves. */
    const plx_clamp_attrs bounds = {sizeof bounds, -1.0f, 1.25f, 1, 1};
    g = run1(ctx, "core.clamp_grad", &bounds, in, 2);
    const float clamp_want[6] = {1, 1, 0, 1, 0, 1};
    tu_assert_close(tu_f32(g), clamp_want, 6, 0, 0, "clamp_grad at the bounds");
    plx_tensor_free(g);
    g = run1(ctx, "core.leaky_relu_grad", NULL, in, 2);
    assert_true(tu_f32(g)[0] == 0.01f && tu_f32(g)[3] == 0.01f && tu_f32(g)[4] == 1.0f);
    plx_tensor_free(g);

    /* NaN passes through relu and clamp; clamp with min > max gives max. */
    plx_tensor *y = run1(ctx, "core.relu", NULL, &x, 1);
    assert_true(isnan(tu_f32(y)[2]) && tu_f32(y)[3] == 0.0f && tu_f32(y)[4] == 2.0f);
    plx_tensor_free(y);
    y = run1(ctx, "core.clamp", &bounds, &x, 1);
    const float clamped[6] = {0.0f, -0.0f, NAN, -1.0f, 1.25f, 1.25f};
    tu_assert_close(tu_f32(y), clamped, 6, 0, 0, "clamp");
    plx_tensor_free(y);
    y = run1(ctx, "core.clamp", &clamp_crossed, &x, 1);
    for (int i = 0; i < 6; i++)
        assert_true(i == 2 ? isnan(tu_f32(y)[i]) : tu_f32(y)[i] == -1.0f);
    plx_tensor_free(y);

    /* softplus stays finite and linear far above the threshold; its gradient
     * does not overflow with a large threshold. */
    const float big[2] = {80.0f, -80.0f};
    plx_tensor *xb = tu_from_f32(ctx, 1, (const int64_t[]){2}, big);
    y = run1(ctx, "core.softplus", NULL, &xb, 1);
    assert_true(tu_f32(y)[0] == 80.0f && tu_f32(y)[1] >= 0.0f && tu_f32(y)[1] < 1e-30f);
    plx_tensor_free(y);
    const plx_softplus_attrs high = {sizeof high, 1.0f, 1000.0f};
    plx_tensor *dyb = tu_from_f32(ctx, 1, (const int64_t[]){2}, ones);
    plx_tensor *inb[2] = {dyb, xb};
    g = run1(ctx, "core.softplus_grad", &high, inb, 2);
    assert_true(fabsf(tu_f32(g)[0] - 1.0f) < 1e-6f && tu_f32(g)[1] >= 0.0f && tu_f32(g)[1] < 1e-30f);
    plx_tensor_free(g);
    /* sigmoid saturates cleanly at both ends. */
    y = run1(ctx, "core.sigmoid", NULL, &xb, 1);
    assert_true(tu_f32(y)[0] == 1.0f && tu_f32(y)[1] >= 0.0f && tu_f32(y)[1] < 1e-30f);
    plx_tensor_free(y);
    plx_tensor_free(dyb);
    plx_tensor_free(xb);
    plx_tensor_free(dy);
    plx_tensor_free(x);
}

/* ---- Broadcasting helpers ------------------------------------------------ */

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

static shape_t broadcast_shapes(const shape_t *const *s, int n)
{
    shape_t out = {0};
    for (int k = 0; k < n; k++)
        if (s[k]->ndim > out.ndim)
            out.ndim = s[k]->ndim;
    for (int32_t d = 0; d < out.ndim; d++) {
        out.dims[d] = 1;
        for (int k = 0; k < n; k++) {
            int32_t id = d - (out.ndim - s[k]->ndim);
            if (id >= 0 && s[k]->dims[id] != 1)
                out.dims[d] = s[k]->dims[id];
        }
    }
    return out;
}

/* Offset in a compact tensor of shape `in` of the element that output index
 * `flat` (of shape `out`) reads under broadcasting. */
static int64_t broadcast_offset(const shape_t *out, int64_t flat, const shape_t *in)
{
    int64_t offset = 0, stride = 1;
    for (int32_t d = out->ndim - 1; d >= 0; d--) {
        int64_t i = flat % out->dims[d];
        flat /= out->dims[d];
        int32_t id = d - (out->ndim - in->ndim);
        if (id < 0)
            continue;
        if (in->dims[id] != 1)
            offset += i * stride;
        stride *= in->dims[id];
    }
    return offset;
}

/* Random shapes that broadcast together: each operand is a suffix of the
 * output shape with some dims set to 1. */
static void random_broadcast_pair(uint64_t *rng, shape_t *a, shape_t *b)
{
    shape_t out;
    out.ndim = random_shape(rng, 4, out.dims);
    shape_t *ops[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        ops[k]->ndim = (int32_t)tu_rand_int(rng, 0, out.ndim);
        for (int32_t d = 0; d < ops[k]->ndim; d++) {
            int64_t full = out.dims[out.ndim - ops[k]->ndim + d];
            ops[k]->dims[d] = tu_rand_int(rng, 0, 2) == 0 ? 1 : full;
        }
    }
}

static void assert_shape(const plx_tensor *t, const shape_t *s, plx_dtype dtype)
{
    const plx_tensor_desc *d = plx_tensor_desc_get(t);
    assert_true(plx_dtype_equal(d->dtype, dtype));
    assert_int_equal(d->ndim, s->ndim);
    for (int32_t i = 0; i < s->ndim; i++)
        assert_int_equal(d->shape[i], s->dims[i]);
}

/* ---- Arithmetic ---------------------------------------------------------- */

typedef struct arith_case {
    const char *op;
    double (*ref)(double a, double b);
    float a_lo, a_hi, b_lo, b_hi;
} arith_case;

static double r_add(double a, double b) { return a + b; }
static double r_sub(double a, double b) { return a - b; }
static double r_mul(double a, double b) { return a * b; }
static double r_div(double a, double b) { return a / b; }
static double r_pow(double a, double b) { return pow(a, b); }
static double r_max(double a, double b) { return a > b ? a : b; }
static double r_min(double a, double b) { return a < b ? a : b; }

static const arith_case arith_cases[] = {
    {"core.add", r_add, -3, 3, -3, 3},
    {"core.sub", r_sub, -3, 3, -3, 3},
    {"core.mul", r_mul, -3, 3, -3, 3},
    {"core.div", r_div, -3, 3, 0.25f, 3},
    {"core.pow", r_pow, 0.1f, 3, -2.5f, 2.5f},
    {"core.maximum", r_max, -3, 3, -3, 3},
    {"core.minimum", r_min, -3, 3, -3, 3},
};

/* Values on a coarse grid for maximum/minimum, so that ties occur. */
static void fill_arith(const arith_case *c, uint64_t *rng, float *p, int64_t n, bool is_b)
{
    bool grid = strcmp(c->op, "core.maximum") == 0 || strcmp(c->op, "core.minimum") == 0;
    for (int64_t i = 0; i < n; i++) {
        float v = is_b ? tu_rand_uniform(rng, c->b_lo, c->b_hi) : tu_rand_uniform(rng, c->a_lo, c->a_hi);
        if (is_b && strcmp(c->op, "core.div") == 0 && tu_rand_int(rng, 0, 1))
            v = -v;
        p[i] = grid ? roundf(v * 2.0f) / 2.0f : v;
    }
}

static void check_arith(plx_context *ctx, const arith_case *c, uint64_t *rng, const shape_t *sa, const shape_t *sb)
{
    plx_tensor *a = tu_tensor(ctx, PLX_F32, sa->ndim, sa->dims);
    plx_tensor *b = tu_tensor(ctx, PLX_F32, sb->ndim, sb->dims);
    fill_arith(c, rng, tu_f32(a), shape_numel(sa), false);
    fill_arith(c, rng, tu_f32(b), shape_numel(sb), true);
    plx_tensor *in[2] = {a, b};
    plx_tensor *y = run1(ctx, c->op, NULL, in, 2);
    const shape_t *both[2] = {sa, sb};
    shape_t so = broadcast_shapes(both, 2);
    assert_shape(y, &so, PLX_F32);
    int64_t n = shape_numel(&so);
    float *want = alloc_f32(n);
    for (int64_t i = 0; i < n; i++)
        want[i] = (float)c->ref((double)tu_f32(a)[broadcast_offset(&so, i, sa)],
                                (double)tu_f32(b)[broadcast_offset(&so, i, sb)]);
    char what[160];
    snprintf(what, sizeof what, "%s of shapes with %d and %d dims (%lld elements)", c->op, (int)sa->ndim,
             (int)sb->ndim, (long long)n);
    tu_assert_close(tu_f32(y), want, n, 1e-7f, 2e-6f, what);
    free(want);
    plx_tensor_free(y);
    plx_tensor_free(a);
    plx_tensor_free(b);
}

static void test_arith_broadcast(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 21;
    /* Fixed cases: the classic 3-d broadcast, 0-d scalars, [1] shapes, bias
     * rows and per-row columns big enough for the parallel path. */
    static const shape_t fixed[][2] = {
        {{3, {3, 1, 5}}, {2, {4, 1}}},
        {{2, {4, 1}}, {3, {3, 1, 5}}},
        {{0, {0}}, {2, {3, 7}}},
        {{2, {3, 7}}, {0, {0}}},
        {{0, {0}}, {0, {0}}},
        {{1, {1}}, {1, {7}}},
        {{1, {7}}, {1, {1}}},
        {{1, {1}}, {0, {0}}},
        {{3, {2, 3, 4}}, {3, {2, 3, 4}}},
        {{2, {301, 257}}, {1, {257}}},
        {{2, {301, 257}}, {2, {301, 1}}},
        {{2, {1, 257}}, {2, {301, 1}}},
        {{1, {70001}}, {1, {70001}}},
        {{1, {70001}}, {0, {0}}},
        {{4, {2, 1, 3, 1}}, {4, {1, 5, 1, 7}}},
        {{3, {40, 30, 33}}, {3, {40, 1, 33}}},
        {{2, {0, 3}}, {2, {1, 3}}},
    };
    for (size_t k = 0; k < sizeof arith_cases / sizeof arith_cases[0]; k++) {
        for (size_t f = 0; f < sizeof fixed / sizeof fixed[0]; f++)
            check_arith(ctx, &arith_cases[k], &rng, &fixed[f][0], &fixed[f][1]);
        for (int rep = 0; rep < 25; rep++) {
            shape_t sa, sb;
            random_broadcast_pair(&rng, &sa, &sb);
            check_arith(ctx, &arith_cases[k], &rng, &sa, &sb);
        }
    }
}

static void test_arith_nan(void **state)
{
    plx_context *ctx = *state;
    const float av[4] = {NAN, 1.0f, NAN, -2.0f};
    const float bv[4] = {1.0f, NAN, NAN, 3.0f};
    plx_tensor *a = tu_from_f32(ctx, 1, (const int64_t[]){4}, av);
    plx_tensor *b = tu_from_f32(ctx, 1, (const int64_t[]){4}, bv);
    plx_tensor *in[2] = {a, b};
    plx_tensor *mx = run1(ctx, "core.maximum", NULL, in, 2);
    plx_tensor *mn = run1(ctx, "core.minimum", NULL, in, 2);
    for (int i = 0; i < 3; i++)
        assert_true(isnan(tu_f32(mx)[i]) && isnan(tu_f32(mn)[i]));
    assert_true(tu_f32(mx)[3] == 3.0f && tu_f32(mn)[3] == -2.0f);
    plx_tensor_free(mx);
    plx_tensor_free(mn);
    plx_tensor_free(a);
    plx_tensor_free(b);
}

/* ---- Comparisons and where ----------------------------------------------- */

static const char *const compare_ops[6] = {"core.eq", "core.ne", "core.lt", "core.le", "core.gt", "core.ge"};

static bool ref_compare(int which, double a, double b)
{
    switch (which) {
    case 0: return a == b;
    case 1: return a != b;
    case 2: return a < b;
    case 3: return a <= b;
    case 4: return a > b;
    default: return a >= b;
    }
}

static double element_as_double(const void *base, plx_dtype dtype, int64_t i)
{
    if (plx_dtype_equal(dtype, PLX_F32))
        return ((const float *)base)[i];
    if (plx_dtype_equal(dtype, PLX_I32))
        return ((const int32_t *)base)[i];
    return (double)((const int64_t *)base)[i];
}

/* Small integers (and NaN for f32) so that every comparison outcome occurs;
 * i64 values beyond 2^53 check that no conversion to double happens. */
static void fill_compare(void *base, plx_dtype dtype, int64_t n, uint64_t *rng, bool huge)
{
    for (int64_t i = 0; i < n; i++) {
        int64_t v = tu_rand_int(rng, -2, 2);
        if (plx_dtype_equal(dtype, PLX_F32))
            ((float *)base)[i] = tu_rand_int(rng, 0, 9) == 0 ? NAN : (float)v;
        else if (plx_dtype_equal(dtype, PLX_I32))
            ((int32_t *)base)[i] = (int32_t)v;
        else
            ((int64_t *)base)[i] = huge ? ((int64_t)1 << 60) + v : v;
    }
}

static void test_compare(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 31;
    const plx_dtype dtypes[3] = {PLX_F32, PLX_I32, PLX_I64};
    for (int t = 0; t < 3; t++) {
        for (int rep = 0; rep < 24; rep++) {
            shape_t sa, sb;
            if (rep == 0) {
                sa = (shape_t){3, {3, 1, 5}};
                sb = (shape_t){2, {4, 1}};
            } else if (rep == 1) {
                sa = (shape_t){2, {211, 173}};
                sb = (shape_t){1, {173}};
            } else {
                random_broadcast_pair(&rng, &sa, &sb);
            }
            plx_tensor *a = tu_tensor(ctx, dtypes[t], sa.ndim, sa.dims);
            plx_tensor *b = tu_tensor(ctx, dtypes[t], sb.ndim, sb.dims);
            fill_compare(plx_tensor_data(a), dtypes[t], shape_numel(&sa), &rng, rep % 3 == 2);
            fill_compare(plx_tensor_data(b), dtypes[t], shape_numel(&sb), &rng, rep % 3 == 2);
            const shape_t *both[2] = {&sa, &sb};
            shape_t so = broadcast_shapes(both, 2);
            for (int which = 0; which < 6; which++) {
                plx_tensor *in[2] = {a, b};
                plx_tensor *y = run1(ctx, compare_ops[which], NULL, in, 2);
                assert_shape(y, &so, PLX_BOOL);
                const uint8_t *got = plx_tensor_data(y);
                for (int64_t i = 0; i < shape_numel(&so); i++) {
                    int64_t ia = broadcast_offset(&so, i, &sa), ib = broadcast_offset(&so, i, &sb);
                    bool want;
                    if (plx_dtype_equal(dtypes[t], PLX_I64)) {
                        int64_t x = ((const int64_t *)plx_tensor_data(a))[ia];
                        int64_t z = ((const int64_t *)plx_tensor_data(b))[ib];
                        want = which == 0 ? x == z : which == 1 ? x != z : which == 2 ? x < z
                             : which == 3 ? x <= z : which == 4 ? x > z : x >= z;
                    } else {
                        want = ref_compare(which, element_as_double(plx_tensor_data(a), dtypes[t], ia),
                                           element_as_double(plx_tensor_data(b), dtypes[t], ib));
                    }
                    if (got[i] != (want ? 1 : 0))
                        fail_msg("%s dtype #%d element %lld: got %d, want %d", compare_ops[which], t, (long long)i,
                                 got[i], want);
                }
                plx_tensor_free(y);
            }
            plx_tensor_free(a);
            plx_tensor_free(b);
        }
    }
}

static void store_value(void *base, plx_dtype dtype, int64_t i, int64_t v)
{
    if (plx_dtype_equal(dtype, PLX_F32))
        ((float *)base)[i] = (float)v;
    else if (plx_dtype_equal(dtype, PLX_I32))
        ((int32_t *)base)[i] = (int32_t)v;
    else
        ((int64_t *)base)[i] = v * 1000003;
}

static void test_where(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 41;
    const plx_dtype dtypes[3] = {PLX_F32, PLX_I32, PLX_I64};
    for (int t = 0; t < 3; t++) {
        for (int rep = 0; rep < 30; rep++) {
            shape_t sc, sa, sb, so;
            if (rep == 0) {
                sc = (shape_t){2, {4, 1}};
                sa = (shape_t){3, {3, 1, 5}};
                sb = (shape_t){0, {0}};
            } else if (rep == 1) {
                sc = (shape_t){2, {257, 301}};
                sa = (shape_t){2, {257, 301}};
                sb = (shape_t){2, {257, 301}};
            } else if (rep == 2) {
                sc = (shape_t){2, {257, 301}};
                sa = (shape_t){1, {301}};
                sb = (shape_t){2, {257, 1}};
            } else {
                random_broadcast_pair(&rng, &sc, &sa);
                /* sb: a suffix of the others' broadcast shape, some dims 1. */
                const shape_t *ca[2] = {&sc, &sa};
                so = broadcast_shapes(ca, 2);
                sb.ndim = (int32_t)tu_rand_int(&rng, 0, so.ndim);
                for (int32_t d = 0; d < sb.ndim; d++)
                    sb.dims[d] = tu_rand_int(&rng, 0, 1) ? 1 : so.dims[so.ndim - sb.ndim + d];
            }
            const shape_t *all[3] = {&sc, &sa, &sb};
            so = broadcast_shapes(all, 3);
            plx_tensor *c = tu_tensor(ctx, PLX_BOOL, sc.ndim, sc.dims);
            plx_tensor *a = tu_tensor(ctx, dtypes[t], sa.ndim, sa.dims);
            plx_tensor *b = tu_tensor(ctx, dtypes[t], sb.ndim, sb.dims);
            uint8_t *cp = plx_tensor_data(c);
            for (int64_t i = 0; i < shape_numel(&sc); i++)
                cp[i] = (uint8_t)tu_rand_int(&rng, 0, 1);
            size_t es = plx_dtype_size(dtypes[t]);
            for (int64_t i = 0; i < shape_numel(&sa); i++)
                store_value(plx_tensor_data(a), dtypes[t], i, tu_rand_int(&rng, -1000000000, 1000000000));
            for (int64_t i = 0; i < shape_numel(&sb); i++)
                store_value(plx_tensor_data(b), dtypes[t], i, tu_rand_int(&rng, -1000000000, 1000000000));
            plx_tensor *in[3] = {c, a, b};
            plx_tensor *y = run1(ctx, "core.where", NULL, in, 3);
            assert_shape(y, &so, dtypes[t]);
            for (int64_t i = 0; i < shape_numel(&so); i++) {
                bool take_a = cp[broadcast_offset(&so, i, &sc)] != 0;
                const char *src = take_a ? (const char *)plx_tensor_data(a) + broadcast_offset(&so, i, &sa) * (int64_t)es
                                         : (const char *)plx_tensor_data(b) + broadcast_offset(&so, i, &sb) * (int64_t)es;
                if (memcmp((const char *)plx_tensor_data(y) + i * (int64_t)es, src, es) != 0)
                    fail_msg("core.where dtype #%d rep %d element %lld is wrong", t, rep, (long long)i);
            }
            plx_tensor_free(y);
            plx_tensor_free(a);
            plx_tensor_free(b);
            plx_tensor_free(c);
        }
    }
}

/* ---- Strided inputs ------------------------------------------------------ */

/* A [cols, rows] transposed view of a compact [rows, cols] tensor, or with
 * `every_other` a [rows, cols/2] view of its even columns (byte offset one
 * element in, to exercise byte_offset). */
static plx_tensor *strided_view(plx_context *ctx, plx_tensor *base, bool every_other, int64_t *shape,
                                int64_t *strides)
{
    const plx_tensor_desc *bd = plx_tensor_desc_get(base);
    plx_tensor_desc d = *bd;
    d.data = plx_tensor_data(base);
    d.byte_offset = 0;
    if (every_other) {
        shape[0] = bd->shape[0];
        shape[1] = bd->shape[1] / 2;
        strides[0] = bd->shape[1];
        strides[1] = 2;
        d.byte_offset = sizeof(float);
    } else {
        shape[0] = bd->shape[1];
        shape[1] = bd->shape[0];
        strides[0] = 1;
        strides[1] = bd->shape[1];
    }
    d.shape = shape;
    d.strides = strides;
    plx_tensor *view = NULL;
    plx_status st = plx_tensor_wrap(ctx, &d, NULL, NULL, &view);
    if (st != PLX_OK)
        fail_msg("plx_tensor_wrap: %s", plx_last_error(ctx));
    return view;
}

static float strided_at(const plx_tensor *view, int64_t i, int64_t j)
{
    const plx_tensor_desc *d = plx_tensor_desc_get(view);
    const float *p = (const float *)((const char *)d->data + d->byte_offset);
    return p[i * d->strides[0] + j * d->strides[1]];
}

static void test_strided_inputs(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 51;
    for (int every_other = 0; every_other < 2; every_other++) {
        plx_tensor *base = tu_uniform(ctx, &rng, 2, (const int64_t[]){37, 46}, -2, 2);
        int64_t vshape[2], vstrides[2];
        plx_tensor *view = strided_view(ctx, base, every_other, vshape, vstrides);
        const int64_t rows = vshape[0], cols = vshape[1];

        plx_tensor *y = run1(ctx, "core.tanh", NULL, &view, 1);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                assert_float_equal(tu_f32(y)[i * cols + j], tanh(strided_at(view, i, j)), 2e-6);
        plx_tensor_free(y);

        /* A broadcast row against the view, and the view as both operands. */
        plx_tensor *row = tu_uniform(ctx, &rng, 1, &vshape[1], -2, 2);
        plx_tensor *in[2] = {view, row};
        y = run1(ctx, "core.mul", NULL, in, 2);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                assert_float_equal(tu_f32(y)[i * cols + j], strided_at(view, i, j) * tu_f32(row)[j], 1e-6);
        plx_tensor_free(y);
        plx_tensor *same[2] = {view, view};
        y = run1(ctx, "core.sub", NULL, same, 2);
        for (int64_t i = 0; i < rows * cols; i++)
            assert_true(tu_f32(y)[i] == 0.0f);
        plx_tensor_free(y);

        /* Gradient with a strided x. */
        plx_tensor *dy = tu_uniform(ctx, &rng, 2, vshape, -1, 1);
        plx_tensor *gin[2] = {dy, view};
        y = run1(ctx, "core.square_grad", NULL, gin, 2);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                assert_float_equal(tu_f32(y)[i * cols + j], 2.0 * strided_at(view, i, j) * tu_f32(dy)[i * cols + j],
                                   1e-6);
        plx_tensor_free(y);
        plx_tensor_free(dy);
        plx_tensor_free(row);
        plx_tensor_free(view);
        plx_tensor_free(base);
    }
}

/* ---- Bad input ----------------------------------------------------------- */

static void test_bad_input(void **state)
{
    plx_context *ctx = *state;
    plx_tensor *f23 = tu_tensor(ctx, PLX_F32, 2, (const int64_t[]){2, 3});
    plx_tensor *f4 = tu_tensor(ctx, PLX_F32, 1, (const int64_t[]){4});
    plx_tensor *f32x3 = tu_tensor(ctx, PLX_F32, 1, (const int64_t[]){3});
    plx_tensor *i64x3 = tu_tensor(ctx, PLX_I64, 1, (const int64_t[]){3});
    plx_tensor *b23 = tu_tensor(ctx, PLX_BOOL, 2, (const int64_t[]){2, 3});
    plx_tensor *u8x3 = tu_tensor(ctx, PLX_U8, 1, (const int64_t[]){3});

    {
        plx_tensor *in[2] = {f23, f4};
        const char *frag[] = {"f32[2,3]", "f32[4]", "broadcast"};
        expect_failure(ctx, "core.add", NULL, in, 2, PLX_SHAPE_MISMATCH, frag, 3);
        expect_failure(ctx, "core.lt", NULL, in, 2, PLX_SHAPE_MISMATCH, frag, 3);
    }
    {
        plx_tensor *in[2] = {b23, b23};
        const char *frag[] = {"bool[2,3]", "float"};
        expect_failure(ctx, "core.add", NULL, in, 2, PLX_DTYPE_MISMATCH, frag, 2);
        const char *frag_cmp[] = {"bool[2,3]"};
        expect_failure(ctx, "core.eq", NULL, in, 2, PLX_DTYPE_MISMATCH, frag_cmp, 1);
    }
    {
        plx_tensor *in[2] = {f32x3, i64x3};
        const char *frag[] = {"f32[3]", "i64[3]"};
        expect_failure(ctx, "core.mul", NULL, in, 2, PLX_DTYPE_MISMATCH, frag, 2);
        expect_failure(ctx, "core.ge", NULL, in, 2, PLX_DTYPE_MISMATCH, frag, 2);
    }
    {
        plx_tensor *in[1] = {i64x3};
        const char *frag[] = {"i64[3]"};
        expect_failure(ctx, "core.exp", NULL, in, 1, PLX_DTYPE_MISMATCH, frag, 1);
    }
    {
        plx_tensor *in[3] = {f23, f23, f23};
        const char *frag[] = {"cond", "f32[2,3]"};
        expect_failure(ctx, "core.where", NULL, in, 3, PLX_DTYPE_MISMATCH, frag, 2);
        plx_tensor *mixed[3] = {b23, f32x3, i64x3};
        const char *frag2[] = {"f32[3]", "i64[3]"};
        expect_failure(ctx, "core.where", NULL, mixed, 3, PLX_DTYPE_MISMATCH, frag2, 2);
        plx_tensor *shapes[3] = {b23, f4, f4};
        const char *frag3[] = {"bool[2,3]", "f32[4]"};
        expect_failure(ctx, "core.where", NULL, shapes, 3, PLX_SHAPE_MISMATCH, frag3, 2);
    }
    {
        plx_tensor *in[2] = {f23, f32x3};
        const char *frag[] = {"f32[2,3]", "f32[3]"};
        expect_failure(ctx, "core.relu_grad", NULL, in, 2, PLX_SHAPE_MISMATCH, frag, 2);
        plx_tensor *one[1] = {f23};
        const char *frag_arity[] = {"2 inputs"};
        expect_failure(ctx, "core.sigmoid_grad", NULL, one, 1, PLX_INVALID_ARGUMENT, frag_arity, 1);
    }
    {
        plx_tensor *in[1] = {f23};
        const plx_gelu_attrs gelu_bad = {sizeof gelu_bad, 2};
        const char *frag_gelu[] = {"approximate_tanh", "2"};
        expect_failure(ctx, "core.gelu", &gelu_bad, in, 1, PLX_INVALID_ARGUMENT, frag_gelu, 2);
        const char *frag_clamp[] = {"min_value", "max_value"};
        expect_failure(ctx, "core.clamp", NULL, in, 1, PLX_INVALID_ARGUMENT, frag_clamp, 2);
        const plx_clamp_attrs clamp_nan = {sizeof clamp_nan, NAN, 0.0f, 1, 0};
        const char *frag_nan[] = {"NaN"};
        expect_failure(ctx, "core.clamp", &clamp_nan, in, 1, PLX_INVALID_ARGUMENT, frag_nan, 1);
        const plx_softplus_attrs sp_bad = {sizeof sp_bad, 0.0f, 20.0f};
        const char *frag_sp[] = {"beta"};
        expect_failure(ctx, "core.softplus", &sp_bad, in, 1, PLX_INVALID_ARGUMENT, frag_sp, 1);
        const plx_leaky_relu_attrs lr_bad = {sizeof lr_bad, INFINITY};
        const char *frag_lr[] = {"negative_slope"};
        expect_failure(ctx, "core.leaky_relu", &lr_bad, in, 1, PLX_INVALID_ARGUMENT, frag_lr, 1);
        const plx_elu_attrs elu_bad = {sizeof elu_bad, NAN};
        const char *frag_elu[] = {"alpha"};
        expect_failure(ctx, "core.elu", &elu_bad, in, 1, PLX_INVALID_ARGUMENT, frag_elu, 1);
        /* The gradient validates the same attributes. */
        plx_tensor *g[2] = {f23, f23};
        expect_failure(ctx, "core.gelu_grad", &gelu_bad, g, 2, PLX_INVALID_ARGUMENT, frag_gelu, 2);
    }
    /* u8 comparisons are supported; f16 ones are refused with a reason. */
    {
        plx_tensor *in[2] = {u8x3, u8x3};
        plx_tensor *y = run1(ctx, "core.le", NULL, in, 2);
        for (int i = 0; i < 3; i++)
            assert_int_equal(((const uint8_t *)plx_tensor_data(y))[i], 1);
        plx_tensor_free(y);
    }
    plx_tensor_free(u8x3);
    plx_tensor_free(b23);
    plx_tensor_free(i64x3);
    plx_tensor_free(f32x3);
    plx_tensor_free(f4);
    plx_tensor_free(f23);
}

/* A caller-given output that aliases a same-shape input works in place. */
static void test_in_place_output(void **state)
{
    plx_context *ctx = *state;
    uint64_t rng = 61;
    const int64_t shape[2] = {33, 65};
    plx_tensor *a = tu_uniform(ctx, &rng, 2, shape, -2, 2);
    plx_tensor *b = tu_uniform(ctx, &rng, 1, &shape[1], -2, 2);
    float *before = alloc_f32(33 * 65);
    memcpy(before, tu_f32(a), sizeof(float) * 33 * 65);
    plx_tensor *in[2] = {a, b};
    plx_tensor *out = a;
    tu_run(ctx, "core.add", NULL, in, 2, &out, 1);
    for (int64_t i = 0; i < 33 * 65; i++)
        assert_true(tu_f32(a)[i] == before[i] + tu_f32(b)[i % 65]);
    free(before);
    plx_tensor_free(a);
    plx_tensor_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unary_forward),
        cmocka_unit_test(test_unary_grad),
        cmocka_unit_test(test_unary_conventions),
        cmocka_unit_test(test_arith_broadcast),
        cmocka_unit_test(test_arith_nan),
        cmocka_unit_test(test_compare),
        cmocka_unit_test(test_where),
        cmocka_unit_test(test_strided_inputs),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_in_place_output),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
