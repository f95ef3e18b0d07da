/* Tests of the onednn backend's conv, pool and matmul families on odd
 * shapes, strides, padding, dilation, groups (depthwise too), ceil_mode,
 * both count_include_pad modes and transposed matmuls, run on a context
 * ranking "onednn,cpu_blas" and compared with a cpu_blas-only context; that
 * onednn really ran each call; that it wins a big convolution on cost when
 * nothing is ranked; that calls it declines fall back to cpu_blas; its op
 * list and its version string. (test_onednn_ops.c covers the other
 * families, test_onednn_bf16.c bf16, test_onednn_fallback.c primitive
 * creation failures.) */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../test_util.h"

#include <unistd.h>

#if defined(__has_include)
#if __has_include(<oneapi/dnnl/dnnl_version.h>)
#include <oneapi/dnnl/dnnl_version.h>
#endif
#endif

#define TOL 1e-4f

typedef struct contexts {
    plx_context *all; /* every backend, unranked */
    plx_context *one; /* "onednn,cpu_blas" */
    plx_context *ref; /* "cpu_blas" */
    bool built;       /* the onednn plugin is in build/plugins */
} contexts;

/* Under AddressSanitizer the suite runs on one thread: GCC 12's
 * LeakSanitizer crashes at exit ("Tracer caught signal 11") reading the
 * dynamic TLS of libgomp's worker threads, which oneDNN starts for calls
 * on two threads. */
#if defined(__SANITIZE_ADDRESS__)
#define SUITE_THREADS 1
#else
#define SUITE_THREADS 2
#endif

static plx_context *open_ranked(const char *backends)
{
    const char *const paths[] = {PLX_TEST_PLUGIN_DIR};
    plx_context_options o;
    tu_options_init(&o, paths, 1);
    o.backends = backends;
    o.num_threads = SUITE_THREADS;
    return tu_open_options(&o);
}

/* The three contexts live for the whole suite (plugins are loaded once). */
static int setup(void **state)
{
    contexts *c = calloc(1, sizeof *c);
    c->all = open_ranked(NULL);
    c->one = open_ranked("onednn,cpu_blas");
    c->ref = open_ranked("cpu_blas");
    c->built = tu_has_backend(c->all, "onednn");
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    contexts *c = *state;
    plx_context_close(c->all);
    plx_context_close(c->one);
    plx_context_close(c->ref);
    free(c);
    return 0;
}

static contexts *get(void **state)
{
    contexts *c = *state;
    if (!c->built) {
        printf("skipped: the onednn plugin is not built (no oneDNN headers here)\n");
        skip();
    }
    return c;
}

typedef struct shape {
    int32_t ndim;
    int64_t d[4];
} shape;

/* Runs op on both contexts with the same random inputs (integer-valued in
 * [0, 3] when `ties`, to exercise max pooling's tie rule); checks which
 * backend ran it and that the results agree. */
static void compare_op(contexts *c, const char *op, const void *attrs, int n_in, const shape *in, bool ties,
                       const char *want_backend, const char *what)
{
    plx_tensor *a[4] = {NULL}, *b[4] = {NULL}, *ya = NULL, *yb = NULL;
    uint64_t rng = 42;
    for (int i = 0; i < n_in; i++) {
        a[i] = tu_tensor(c->one, PLX_F32, in[i].ndim, in[i].d);
        b[i] = tu_tensor(c->ref, PLX_F32, in[i].ndim, in[i].d);
        float *pa = tu_f32(a[i]), *pb = tu_f32(b[i]);
        for (int64_t k = 0; k < plx_tensor_numel(a[i]); k++) {
            float v = ties ? (float)tu_rand_int(&rng, 0, 3) : tu_rand_uniform(&rng, -1.0f, 1.0f);
            pa[k] = pb[k] = v;
        }
    }
    plx_status st = plx_op_run(c->one, op, attrs, a, (size_t)n_in, &ya, 1);
    if (st != PLX_OK)
        fail_msg("%s: %s (onednn context) failed: %s", what, op, plx_last_error(c->one));
    if (strcmp(plx_last_backend(c->one), want_backend) != 0)
        fail_msg("%s: %s ran on %s, expected %s", what, op, plx_last_backend(c->one), want_backend);
    tu_run(c->ref, op, attrs, b, (size_t)n_in, &yb, 1);
    assert_int_equal(plx_tensor_numel(ya), plx_tensor_numel(yb));
    char label[256];
    snprintf(label, sizeof label, "%s: %s", what, op);
    tu_assert_close(tu_f32(ya), tu_f32(yb), plx_tensor_numel(yb), TOL, TOL, label);
    for (int i = 0; i < n_in; i++) {
        plx_tensor_free(a[i]);
        plx_tensor_free(b[i]);
    }
    plx_tensor_free(ya);
    plx_tensor_free(yb);
}

/* ---- convolutions ------------------------------------------------------------ */

typedef struct conv_case {
    const char *name;
    int64_t n, c, h, w, k, r, s;
    int32_t stride[2], pad[2], dil[2], groups;
    bool bias;
} conv_case;

static const conv_case conv_cases[] = {
    {"odd sizes, bias", 2, 3, 7, 9, 5, 3, 3, {1, 1}, {0, 0}, {1, 1}, 1, true},
    {"no bias, 1x1", 3, 5, 6, 5, 7, 1, 1, {1, 1}, {0, 0}, {1, 1}, 1, false},
    {"stride 2, padding", 2, 4, 11, 10, 6, 3, 5, {2, 2}, {1, 2}, {1, 1}, 1, true},
    {"stride (2,1), padding (1,2)", 2, 4, 9, 7, 6, 3, 3, {2, 1}, {1, 2}, {1, 1}, 1, true},
    {"dilation 2", 2, 3, 13, 12, 4, 3, 3, {1, 1}, {2, 2}, {2, 2}, 1, true},
    {"dilation 2, stride 2", 1, 2, 15, 14, 3, 3, 2, {2, 2}, {1, 1}, {2, 2}, 1, false},
    {"groups 2", 2, 4, 9, 8, 6, 3, 3, {1, 1}, {1, 1}, {1, 1}, 2, true},
    {"groups 2, stride 2, odd", 3, 6, 11, 13, 4, 5, 3, {2, 2}, {2, 1}, {1, 1}, 2, false},
    {"depthwise", 2, 8, 10, 9, 8, 3, 3, {1, 1}, {1, 1}, {1, 1}, 8, true},
    {"depthwise x2, stride 2", 2, 5, 12, 11, 10, 3, 3, {2, 2}, {1, 1}, {1, 1}, 5, true},
    {"larger (blocked layouts)", 4, 32, 14, 14, 64, 3, 3, {1, 1}, {1, 1}, {1, 1}, 1, true},
};

static int64_t conv_out(int64_t in, int64_t k, int32_t stride, int32_t pad, int32_t dil)
{
    return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1;
}

static void test_conv2d(void **state)
{
    contexts *c = get(state);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        const conv_case *k = &conv_cases[i];
        plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
        memcpy(a.stride, k->stride, sizeof a.stride);
        memcpy(a.padding, k->pad, sizeof a.padding);
        memcpy(a.dilation, k->dil, sizeof a.dilation);
        a.groups = k->groups;
        shape in[3] = {{4, {k->n, k->c, k->h, k->w}}, {4, {k->k, k->c / k->groups, k->r, k->s}}, {1, {k->k}}};
        compare_op(c, "core.conv2d", &a, k->bias ? 3 : 2, in, false, "onednn", k->name);
#if PLX_ABI_MINOR >= 2
        /* The fused relu (a oneDNN post-op), after the bias. */
        a.activation = PLX_ACTIVATION_RELU;
        compare_op(c, "core.conv2d", &a, k->bias ? 3 : 2, in, false, "onednn", k->name);
#endif
    }
}

static void test_conv2d_backward(void **state)
{
    contexts *c = get(state);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        const conv_case *k = &conv_cases[i];
        int64_t p = conv_out(k->h, k->r, k->stride[0], k->pad[0], k->dil[0]);
        int64_t q = conv_out(k->w, k->s, k->stride[1], k->pad[1], k->dil[1]);
        plx_conv2d_backward_attrs a = PLX_CONV2D_BACKWARD_ATTRS_DEFAULT;
        memcpy(a.stride, k->stride, sizeof a.stride);
        memcpy(a.padding, k->pad, sizeof a.padding);
        memcpy(a.dilation, k->dil, sizeof a.dilation);
        a.groups = k->groups;
        shape dy = {4, {k->n, k->k, p, q}};
        shape x = {4, {k->n, k->c, k->h, k->w}};
        shape w = {4, {k->k, k->c / k->groups, k->r, k->s}};
        memcpy(a.out_shape, x.d, sizeof a.out_shape);
        shape data_in[2] = {dy, w};
        compare_op(c, "core.conv2d_backward_data", &a, 2, data_in, false, "onednn", k->name);
        memcpy(a.out_shape, w.d, sizeof a.out_shape);
        shape weight_in[2] = {dy, x};
        compare_op(c, "core.conv2d_backward_weight", &a, 2, weight_in, false, "onednn", k->name);
    }
}

/* The same shapes again hit the primitive cache and still agree. */
static void test_conv2d_cached_rerun(void **state)
{
    contexts *c = get(state);
    for (int rep = 0; rep < 3; rep++) {
        const conv_case *k = &conv_cases[2];
        plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
        memcpy(a.stride, k->stride, sizeof a.stride);
        memcpy(a.padding, k->pad, sizeof a.padding);
        shape in[3] = {{4, {k->n, k->c, k->h, k->w}}, {4, {k->k, k->c, k->r, k->s}}, {1, {k->k}}};
        compare_op(c, "core.conv2d", &a, 3, in, false, "onednn", "cached rerun");
    }
}

/* ---- pooling --------------------------------------------------------------------- */

typedef struct pool_case {
    const char *name;
    int64_t n, c, h, w;
    int32_t kernel[2], stride[2], pad[2], dil[2], ceil_mode, include_pad;
} pool_case;

static const pool_case pool_cases[] = {
    {"2x2/2", 2, 3, 8, 8, {2, 2}, {2, 2}, {0, 0}, {1, 1}, 0, 1},
    {"odd 3x3/2 pad 1", 2, 3, 9, 11, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 0, 1},
    {"3x2/(2,2) pad (1,1) floor, remainder", 2, 3, 10, 9, {3, 2}, {2, 2}, {1, 1}, {1, 1}, 0, 0},
    {"ceil_mode, exclude pad", 2, 3, 9, 8, {3, 2}, {2, 2}, {1, 1}, {1, 1}, 1, 0},
    {"ceil_mode 2x2/2 odd input", 1, 4, 7, 9, {2, 2}, {2, 2}, {0, 0}, {1, 1}, 1, 1},
    {"stride 1 overlapping", 2, 2, 7, 6, {3, 3}, {1, 1}, {1, 0}, {1, 1}, 0, 0},
    {"dilation 2 (max only)", 2, 3, 12, 11, {3, 3}, {2, 1}, {1, 1}, {2, 2}, 0, 1},
    {"dilation 2 ceil_mode (max only)", 1, 3, 12, 10, {2, 3}, {3, 2}, {1, 1}, {2, 2}, 1, 0},
};

static plx_pool2d_attrs pool_attrs(const pool_case *k)
{
    plx_pool2d_attrs a = PLX_POOL2D_ATTRS_DEFAULT;
    memcpy(a.kernel, k->kernel, sizeof a.kernel);
    memcpy(a.stride, k->stride, sizeof a.stride);
    memcpy(a.padding, k->pad, sizeof a.padding);
    memcpy(a.dilation, k->dil, sizeof a.dilation);
    a.ceil_mode = k->ceil_mode;
    a.count_include_pad = k->include_pad;
    return a;
}

static int64_t pool_out(int64_t in, int32_t k, int32_t s, int32_t p, int32_t d, int32_t ceil_mode)
{
    int64_t span = in + 2 * p - d * (k - 1) - 1;
    int64_t out = (span + (ceil_mode ? s - 1 : 0)) / s + 1;
    if (ceil_mode && (out - 1) * s >= in + p)
        out--;
    return out;
}

static void explain(plx_context *ctx, const char *op, const void *attrs, int n_in, const shape *in, plx_dtype dtype,
                    plx_status want, char *buf, size_t cap);

/* "onednn", or "cpu_blas" where onednn declines the call because oneDNN has
 * only reference code for it (2.6: max pooling with dilation); any other
 * decline fails the test. */
static const char *onednn_unless_reference(contexts *c, const char *op, const void *attrs, int n_in, const shape *in)
{
    char buf[4096];
    explain(c->one, op, attrs, n_in, in, PLX_F32, PLX_OK, buf, sizeof buf);
    if (strstr(buf, "-> onednn") != NULL)
        return "onednn";
    if (strstr(buf, "reference implementation") == NULL || strstr(buf, "-> cpu_blas") == NULL)
        fail_msg("%s should run on onednn, or be declined for reference code only:\n%s", op, buf);
    printf("note: %s: oneDNN has only reference code here; declined, runs on cpu_blas\n", op);
    return "cpu_blas";
}

static void run_pool_case(contexts *c, const pool_case *k, bool is_max, bool ties)
{
    plx_pool2d_attrs a = pool_attrs(k);
    int32_t dh = is_max ? k->dil[0] : 1, dw = is_max ? k->dil[1] : 1;
    shape x = {4, {k->n, k->c, k->h, k->w}};
    shape y = {4,
               {k->n, k->c, pool_out(k->h, k->kernel[0], k->stride[0], k->pad[0], dh, k->ceil_mode),
                pool_out(k->w, k->kernel[1], k->stride[1], k->pad[1], dw, k->ceil_mode)}};
    shape bwd_in[2] = {y, x};
    char label[160];
    snprintf(label, sizeof label, "%s%s", k->name, ties ? " (ties)" : "");
    const char *fwd_op = is_max ? "core.max_pool2d" : "core.avg_pool2d";
    const char *bwd_op = is_max ? "core.max_pool2d_backward" : "core.avg_pool2d_backward";
    bool dilated = dh != 1 || dw != 1;
    compare_op(c, fwd_op, &a, 1, &x, ties, dilated ? onednn_unless_reference(c, fwd_op, &a, 1, &x) : "onednn", label);
    compare_op(c, bwd_op, &a, 2, bwd_in, ties, dilated ? onednn_unless_reference(c, bwd_op, &a, 2, bwd_in) : "onednn",
               label);
}

static void test_max_pool2d(void **state)
{
    contexts *c = get(state);
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        run_pool_case(c, &pool_cases[i], true, false);
        /* Integer data: many equal maxima; the gradient must go to the first. */
        run_pool_case(c, &pool_cases[i], true, true);
    }
}

static void test_avg_pool2d(void **state)
{
    contexts *c = get(state);
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
        for (int32_t include = 0; include <= 1; include++) {
            pool_case k = pool_cases[i];
            k.include_pad = include;
            /* Skip the one combination onednn declines (tested below). */
            if (include && k.ceil_mode) {
                int64_t p = pool_out(k.h, k.kernel[0], k.stride[0], k.pad[0], 1, 1);
                int64_t q = pool_out(k.w, k.kernel[1], k.stride[1], k.pad[1], 1, 1);
                if ((p - 1) * k.stride[0] + k.kernel[0] > k.h + 2 * k.pad[0] ||
                    (q - 1) * k.stride[1] + k.kernel[1] > k.w + 2 * k.pad[1])
                    continue;
            }
            run_pool_case(c, &k, false, false);
        }
}

/* ---- matmul ------------------------------------------------------------------------- */

static void test_matmul(void **state)
{
    contexts *c = get(state);
    const int64_t m = 7, k = 13, n = 5, batch = 3;
    for (int32_t ta = 0; ta <= 1; ta++)
        for (int32_t tb = 0; tb <= 1; tb++) {
            plx_matmul_attrs a = {sizeof a, ta, tb};
            shape a2 = {2, {ta ? k : m, ta ? m : k}}, b2 = {2, {tb ? n : k, tb ? k : n}};
            shape in2[2] = {a2, b2};
            char label[64];
            snprintf(label, sizeof label, "2-D trans_a=%d trans_b=%d", (int)ta, (int)tb);
            compare_op(c, "core.matmul", &a, 2, in2, false, "onednn", label);
            shape a3 = {3, {batch, ta ? k : m, ta ? m : k}}, b3 = {3, {batch, tb ? n : k, tb ? k : n}};
            shape in3[2] = {a3, b3};
            snprintf(label, sizeof label, "3-D trans_a=%d trans_b=%d", (int)ta, (int)tb);
            compare_op(c, "core.matmul", &a, 2, in3, false, "onednn", label);
        }
    plx_matmul_attrs none = PLX_MATMUL_ATTRS_DEFAULT;
    shape big[2] = {{2, {64, 300}}, {2, {300, 129}}};
    compare_op(c, "core.matmul", &none, 2, big, false, "onednn", "2-D 64x300x129");
    shape four[2] = {{4, {2, 3, 5, 6}}, {4, {2, 3, 6, 4}}};
    compare_op(c, "core.matmul", &none, 2, four, false, "onednn", "4-D same batch");
}

/* ---- routing: cost, declines, fallbacks ---------------------------------------------- */

static void explain(plx_context *ctx, const char *op, const void *attrs, int n_in, const shape *in, plx_dtype dtype,
                    plx_status want, char *buf, size_t cap)
{
    plx_tensor *t[4] = {NULL};
    for (int i = 0; i < n_in; i++)
        t[i] = tu_tensor(ctx, dtype, in[i].ndim, in[i].d);
    plx_status st = plx_op_explain(ctx, op, attrs, t, (size_t)n_in, buf, cap);
    for (int i = 0; i < n_in; i++)
        plx_tensor_free(t[i]);
    if (st != want)
        fail_msg("plx_op_explain(%s) returned %d, want %d:\n%s", op, (int)st, (int)want, buf);
}

/* With no ranking, the router picks onednn for a big convolution by cost. */
static void test_big_conv_wins_on_cost(void **state)
{
    plx_context *all = get(state)->all;
    plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    a.padding[0] = a.padding[1] = 1;
    shape in[3] = {{4, {32, 64, 28, 28}}, {4, {128, 64, 3, 3}}, {1, {128}}};
    char buf[4096];
    explain(all, "core.conv2d", &a, 3, in, PLX_F32, PLX_OK, buf, sizeof buf);
    if (strstr(buf, "-> onednn") == NULL || strstr(buf, "lowest estimated cost") == NULL)
        fail_msg("onednn should win a big conv on cost:\n%s", buf);
}

/* A broadcast-batch matmul and an avg pool onednn cannot match exactly
 * are declined with a reason and run on cpu_blas instead. */
static void test_declined_calls_fall_back(void **state)
{
    contexts *c = get(state);
    char buf[4096];
    plx_matmul_attrs mm = {sizeof mm, 0, 1};
    shape bcast[2] = {{3, {3, 17, 23}}, {2, {29, 23}}};
    explain(c->one, "core.matmul", &mm, 2, bcast, PLX_F32, PLX_OK, buf, sizeof buf);
    if (strstr(buf, "onednn") == NULL || strstr(buf, "broadcast batch") == NULL || strstr(buf, "-> cpu_blas") == NULL)
        fail_msg("broadcast matmul should be declined by onednn:\n%s", buf);
    compare_op(c, "core.matmul", &mm, 2, bcast, false, "cpu_blas", "broadcast batch falls back");
    shape one_batch[2] = {{3, {1, 4, 6}}, {3, {3, 5, 6}}};
    compare_op(c, "core.matmul", &mm, 2, one_batch, false, "cpu_blas", "size-1 batch falls back");

    /* ceil_mode window past the padding with count_include_pad. */
    pool_case k = {"", 1, 2, 7, 9, {2, 2}, {2, 2}, {0, 0}, {1, 1}, 1, 1};
    plx_pool2d_attrs pa = pool_attrs(&k);
    shape x = {4, {1, 2, 7, 9}};
    explain(c->one, "core.avg_pool2d", &pa, 1, &x, PLX_F32, PLX_OK, buf, sizeof buf);
    if (strstr(buf, "count_include_pad") == NULL || strstr(buf, "-> cpu_blas") == NULL)
        fail_msg("avg pool past the padding should be declined by onednn:\n%s", buf);
    compare_op(c, "core.avg_pool2d", &pa, 1, &x, false, "cpu_blas", "avg include pad past padding falls back");
    shape bwd[2] = {{4, {1, 2, 4, 5}}, x};
    compare_op(c, "core.avg_pool2d_backward", &pa, 2, bwd, false, "cpu_blas", "avg include pad backward falls back");
}

/* f16 is declined with the reason (cpu_blas declines it too, so no backend
 * takes it and the router names onednn's reason). */
static void test_f16_declined(void **state)
{
    contexts *c = get(state);
    char buf[4096];
    plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    shape in[2] = {{4, {1, 2, 5, 5}}, {4, {3, 2, 3, 3}}};
    explain(c->one, "core.conv2d", &a, 2, in, PLX_F16, PLX_UNSUPPORTED, buf, sizeof buf);
    if (strstr(buf, "onednn") == NULL || strstr(buf, "only f32") == NULL)
        fail_msg("onednn should decline f16 saying why:\n%s", buf);
}

/* The version names the oneDNN library, so calibration caches keyed by it
 * are not reused across oneDNN versions. */
static void test_version_names_onednn(void **state)
{
    contexts *c = get(state);
    for (size_t i = 0; i < plx_plugin_count(c->all); i++) {
        plx_plugin_info pi = {.struct_size = sizeof pi};
        assert_int_equal(plx_plugin_get(c->all, i, &pi), PLX_OK);
        if (strcmp(pi.name, "onednn") != 0)
            continue;
        int major = -1, minor = -1, patch = -1, used = 0;
        if (sscanf(pi.version, "0.2.0+onednn-%d.%d.%d%n", &major, &minor, &patch, &used) != 3 ||
            pi.version[used] != '\0')
            fail_msg("onednn version \"%s\" should be 0.2.0+onednn-<major>.<minor>.<patch>", pi.version);
#if defined(__has_include)
#if __has_include(<oneapi/dnnl/dnnl_version.h>)
        /* The library loaded is the one these headers came with. */
        assert_int_equal(major, DNNL_VERSION_MAJOR);
        assert_int_equal(minor, DNNL_VERSION_MINOR);
#endif
#endif
        return;
    }
    fail_msg("no onednn plugin listed");
}

/* Every family's ops are listed (and nothing it cannot run, e.g. pow). */
static void test_op_list(void **state)
{
    contexts *c = get(state);
    const char *want[] = {"core.conv2d",
                          "core.matmul",
                          "core.max_pool2d_backward",
                          "core.relu",
                          "core.gelu_grad",
                          "core.clamp_grad",
                          "core.add",
                          "core.minimum",
                          "core.batch_norm",
                          "core.layer_norm_backward",
                          "core.softmax",
                          "core.log_softmax_backward",
                          "core.sum",
                          "core.min"};
    const char *never[] = {"core.pow", "core.argmax", "core.cross_entropy", "core.where"};
    for (size_t b = 0; b < plx_backend_count(c->all); b++) {
        plx_backend_info bi = {.struct_size = sizeof bi};
        assert_int_equal(plx_backend_get(c->all, b, &bi), PLX_OK);
        if (strcmp(bi.name, "onednn") != 0)
            continue;
        for (size_t w = 0; w < sizeof want / sizeof want[0] + sizeof never / sizeof never[0]; w++) {
            bool is_want = w < sizeof want / sizeof want[0];
            const char *name = is_want ? want[w] : never[w - sizeof want / sizeof want[0]];
            bool found = false;
            for (size_t i = 0; i < bi.n_ops; i++)
                found |= strcmp(plx_backend_op_name(c->all, b, i), name) == 0;
            if (found != is_want)
                fail_msg("onednn %s %s", is_want ? "does not list" : "lists", name);
        }
        return;
    }
    fail_msg("no onednn backend");
}

static void test_onednn_not_built(void **state)
{
    (void)state;
    printf("skipped: %s/libplexus-onednn.so is not built (opt-in while in progress: make WITH_ONEDNN=1)\n",
           PLX_TEST_PLUGIN_DIR);
    skip();
}

int main(void)
{
    if (access(PLX_TEST_PLUGIN_DIR "/libplexus-onednn.so", F_OK) != 0) {
        const struct CMUnitTest none[] = {cmocka_unit_test(test_onednn_not_built)};
        return cmocka_run_group_tests_name("plugins/onednn", none, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv2d_backward),
        cmocka_unit_test(test_conv2d_cached_rerun),
        cmocka_unit_test(test_max_pool2d),
        cmocka_unit_test(test_avg_pool2d),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_big_conv_wins_on_cost),
        cmocka_unit_test(test_declined_calls_fall_back),
        cmocka_unit_test(test_f16_declined),
        cmocka_unit_test(test_version_names_onednn),
        cmocka_unit_test(test_op_list),
    };
    return cmocka_run_group_tests_name("plugins/onednn", tests, setup, teardown);
}
