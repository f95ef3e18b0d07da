/* Tests of the onednn backend's opt-in bf16: convolutions (forward and both
 * backward ops), matmul, pooling, eltwise ops and their gradients and
 * binary ops run with every tensor bf16 on onednn, compared with cpu_blas
 * in f32 on the same values (the inputs rounded to bf16 first), within a
 * bf16 tolerance (bf16 keeps 8 significant bits: outputs differ by their
 * rounding, about 0.4%). Ops that stay f32-only decline bf16 saying so.
 * On a CPU without native bf16 (AVX512-BF16) every test is skipped, saying
 * so; test_onednn_nobf16.c checks that decline. */
#include "onednn_harness.h"

/* bf16 rounding, nearest-even (as oneDNN's conversion). */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

#define BF16_ATOL 2e-2f
#define BF16_RTOL 1e-2f

/* Whether this CPU runs bf16 natively (onednn takes a tiny bf16 relu);
 * otherwise prints onednn's reason and skips the test. */
static void require_bf16(contexts *c)
{
    const int64_t dims[2] = {1, 8};
    char buf[4096];
    plx_tensor *t = tu_tensor(c->one, PLX_BF16, 2, dims);
    /* Without native bf16 no backend takes the call (cpu_blas is f32-only):
     * the explanation is there either way. */
    plx_status st = plx_op_explain(c->one, "core.relu", NULL, &t, 1, buf, sizeof buf);
    plx_tensor_free(t);
    if (st == PLX_OK && strstr(buf, "-> onednn") != NULL)
        return;
    const char *why = strstr(buf, "bf16 needs a CPU");
    if (why == NULL)
        fail_msg("onednn declines a bf16 relu without naming the CPU:\n%s", buf);
    const char *end = strchr(why, '\n');
    printf("skipped: %.*s\n", end != NULL ? (int)(end - why) : (int)strlen(why), why);
    skip();
}

/* Runs op with bf16 tensors on onednn and f32 tensors holding the same
 * (bf16-rounded) values on cpu_blas; compares the outputs. */
static void compare_bf16(contexts *c, const char *op, const void *attrs, int n_in, const in_spec *in, int n_out,
                         const char *what)
{
    plx_tensor *a[4] = {NULL}, *b[4] = {NULL}, *ya[3] = {NULL}, *yb[3] = {NULL};
    uint64_t rng = 7;
    for (int i = 0; i < n_in; i++) {
        a[i] = tu_tensor(c->one, PLX_BF16, in[i].ndim, in[i].d);
        b[i] = tu_tensor(c->ref, PLX_F32, in[i].ndim, in[i].d);
        int64_t n = plx_tensor_numel(b[i]);
        float *pb = tu_f32(b[i]);
        uint16_t *pa = plx_tensor_data(a[i]);
        fill_values(pb, n, &in[i], &rng);
        for (int64_t k = 0; k < n; k++) {
            pa[k] = to_bf16(pb[k]);
            pb[k] = from_bf16(pa[k]);
        }
    }
    plx_status st = plx_op_run(c->one, op, attrs, a, (size_t)n_in, ya, (size_t)n_out);
    if (st != PLX_OK)
        fail_msg("%s: bf16 %s failed: %s", what, op, plx_last_error(c->one));
    if (strcmp(plx_last_backend(c->one), "onednn") != 0)
        fail_msg("%s: bf16 %s ran on %s, expected onednn", what, op, plx_last_backend(c->one));
    tu_run(c->ref, op, attrs, b, (size_t)n_in, yb, (size_t)n_out);
    for (int i = 0; i < n_out; i++) {
        const plx_tensor_desc *d = plx_tensor_desc_get(ya[i]);
        if (!plx_dtype_equal(d->dtype, PLX_BF16))
            fail_msg("%s: %s output %d is not bf16", what, op, i);
        int64_t n = plx_tensor_numel(yb[i]);
        assert_int_equal(plx_tensor_numel(ya[i]), n);
        float *got = malloc((size_t)n * sizeof *got);
        const uint16_t *pa = plx_tensor_data(ya[i]);
        for (int64_t k = 0; k < n; k++)
            got[k] = from_bf16(pa[k]);
        char label[256];
        snprintf(label, sizeof label, "%s: bf16 %s output %d", what, op, i);
        tu_assert_close(got, tu_f32(yb[i]), n, BF16_ATOL, BF16_RTOL, label);
        free(got);
    }
    for (int i = 0; i < n_in; i++) {
        plx_tensor_free(a[i]);
        plx_tensor_free(b[i]);
    }
    for (int i = 0; i < n_out; i++) {
        plx_tensor_free(ya[i]);
        plx_tensor_free(yb[i]);
    }
}

static void test_bf16_conv(void **state)
{
    contexts *c = *state;
    require_bf16(c);
    typedef struct conv_case {
        const char *what;
        int64_t n, ch, h, w, k, r, s;
        int32_t stride, pad, groups;
    } conv_case;
    const conv_case cases[] = {
        {"3x3 pad 1", 2, 8, 9, 11, 16, 3, 3, 1, 1, 1},
        {"odd, stride 2", 3, 3, 13, 10, 5, 3, 3, 2, 1, 1},
        {"groups 2", 2, 4, 8, 8, 6, 3, 3, 1, 1, 2},
        {"1x1", 2, 16, 7, 7, 32, 1, 1, 1, 0, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const conv_case *k = &cases[i];
        plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
        a.stride[0] = a.stride[1] = k->stride;
        a.padding[0] = a.padding[1] = k->pad;
        a.groups = k->groups;
        in_spec fwd[3] = {IN(4, k->n, k->ch, k->h, k->w), IN(4, k->k, k->ch / k->groups, k->r, k->s), IN(1, k->k)};
        compare_bf16(c, "core.conv2d", &a, 3, fwd, 1, k->what);
        compare_bf16(c, "core.conv2d", &a, 2, fwd, 1, k->what);
        int64_t p = (k->h + 2 * k->pad - k->r) / k->stride + 1, q = (k->w + 2 * k->pad - k->s) / k->stride + 1;
        plx_conv2d_backward_attrs b = PLX_CONV2D_BACKWARD_ATTRS_DEFAULT;
        b.stride[0] = b.stride[1] = k->stride;
        b.padding[0] = b.padding[1] = k->pad;
        b.groups = k->groups;
        in_spec dy = IN(4, k->n, k->k, p, q);
        memcpy(b.out_shape, fwd[0].d, sizeof b.out_shape);
        in_spec data_in[2] = {dy, fwd[1]};
        compare_bf16(c, "core.conv2d_backward_data", &b, 2, data_in, 1, k->what);
        memcpy(b.out_shape, fwd[1].d, sizeof b.out_shape);
        in_spec weight_in[2] = {dy, fwd[0]};
        compare_bf16(c, "core.conv2d_backward_weight", &b, 2, weight_in, 1, k->what);
    }
}

static void test_bf16_matmul(void **state)
{
    contexts *c = *state;
    require_bf16(c);
    for (int32_t ta = 0; ta <= 1; ta++)
        for (int32_t tb = 0; tb <= 1; tb++) {
            plx_matmul_attrs a = {sizeof a, ta, tb};
            const int64_t m = 7, k = 45, n = 13;
            in_spec two[2] = {IN(2, ta ? k : m, ta ? m : k), IN(2, tb ? n : k, tb ? k : n)};
            compare_bf16(c, "core.matmul", &a, 2, two, 1, "2-D");
            in_spec three[2] = {IN(3, 3, ta ? k : m, ta ? m : k), IN(3, 3, tb ? n : k, tb ? k : n)};
            compare_bf16(c, "core.matmul", &a, 2, three, 1, "3-D");
        }
}

static void test_bf16_pool(void **state)
{
    contexts *c = *state;
    require_bf16(c);
    const plx_pool2d_attrs a = {sizeof a, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 0, 1};
    const plx_pool2d_attrs ex = {sizeof ex, {2, 3}, {2, 2}, {1, 1}, {1, 1}, 1, 0};
    in_spec x = IN(4, 2, 5, 9, 11);
    in_spec y = IN(4, 2, 5, 5, 6);
    in_spec bwd[2] = {y, x};
    compare_bf16(c, "core.max_pool2d", &a, 1, &x, 1, "3x3/2 pad 1");
    compare_bf16(c, "core.max_pool2d_backward", &a, 2, bwd, 1, "3x3/2 pad 1");
    compare_bf16(c, "core.avg_pool2d", &a, 1, &x, 1, "3x3/2 pad 1");
    compare_bf16(c, "core.avg_pool2d_backward", &a, 2, bwd, 1, "3x3/2 pad 1");
    in_spec y2 = IN(4, 2, 5, 5, 6);
    in_spec bwd2[2] = {y2, x};
    compare_bf16(c, "core.avg_pool2d", &ex, 1, &x, 1, "ceil_mode exclude pad");
    compare_bf16(c, "core.avg_pool2d_backward", &ex, 2, bwd2, 1, "ceil_mode exclude pad");
}

static void test_bf16_eltwise(void **state)
{
    contexts *c = *state;
    require_bf16(c);
    static const plx_gelu_attrs gelu = {sizeof gelu, 0};
    static const plx_clamp_attrs clamp = {sizeof clamp, -0.5f, 0.5f, 1, 1};
    static const plx_leaky_relu_attrs leaky = {sizeof leaky, 0.1f};
    typedef struct el_case {
        const char *op;
        const void *attrs;
        float lo, hi;
    } el_case;
    const el_case cases[] = {
        {"core.relu", NULL, -1, 1},    {"core.leaky_relu", &leaky, -1, 1}, {"core.gelu", &gelu, -3, 3},
        {"core.sigmoid", NULL, -4, 4}, {"core.tanh", NULL, -3, 3},         {"core.exp", NULL, -2, 2},
        {"core.sqrt", NULL, 0.1f, 4},  {"core.clamp", &clamp, -1, 1},      {"core.neg", NULL, -1, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        in_spec x = IN_RANGE(cases[i].lo, cases[i].hi, 2, 17, 33);
        compare_bf16(c, cases[i].op, cases[i].attrs, 1, &x, 1, "17x33");
        in_spec grad_in[2] = {IN(2, 17, 33), x};
        char grad_op[64];
        snprintf(grad_op, sizeof grad_op, "%s_grad", cases[i].op);
        compare_bf16(c, grad_op, cases[i].attrs, 2, grad_in, 1, "17x33");
    }
}

static void test_bf16_binary(void **state)
{
    contexts *c = *state;
    require_bf16(c);
    in_spec same[2] = {IN(2, 9, 31), IN(2, 9, 31)};
    in_spec bias[2] = {IN(3, 2, 9, 31), IN(1, 31)};
    in_spec swapped[2] = {IN(2, 9, 1), IN(2, 9, 31)};
    in_spec divisor[2] = {IN(2, 9, 31), IN_RANGE(0.5f, 2.0f, 2, 9, 1)};
    compare_bf16(c, "core.add", NULL, 2, same, 1, "same shape");
    compare_bf16(c, "core.mul", NULL, 2, bias, 1, "bias");
    compare_bf16(c, "core.sub", NULL, 2, swapped, 1, "swapped, negated");
    compare_bf16(c, "core.maximum", NULL, 2, bias, 1, "bias");
    compare_bf16(c, "core.div", NULL, 2, divisor, 1, "per-row divisor");
}

/* Families that stay f32 decline bf16 saying so (no backend takes the
 * call: cpu_blas is f32-only). */
static void test_bf16_declined_where_f32_only(void **state)
{
    contexts *c = *state;
    require_bf16(c);
    char buf[4096];
    plx_softmax_attrs sm = {sizeof sm, -1};
    in_spec x = IN(2, 4, 9);
    explain(c->one, "core.softmax", &sm, 1, &x, PLX_BF16, PLX_UNSUPPORTED, buf, sizeof buf);
    if (strstr(buf, "only f32 for core.softmax") == NULL)
        fail_msg("onednn should decline bf16 softmax saying it is f32-only:\n%s", buf);
    plx_layer_norm_attrs ln = {sizeof ln, 1e-5f, 1};
    in_spec lin[3] = {IN(2, 4, 9), IN(1, 9), IN(1, 9)};
    explain(c->one, "core.layer_norm", &ln, 3, lin, PLX_BF16, PLX_UNSUPPORTED, buf, sizeof buf);
    if (strstr(buf, "only f32 for core.layer_norm") == NULL)
        fail_msg("onednn should decline bf16 layer norm saying it is f32-only:\n%s", buf);
}

int main(void)
{
    if (access(ONEDNN_SO, F_OK) != 0) {
        const struct CMUnitTest none[] = {cmocka_unit_test(test_onednn_not_built)};
        return cmocka_run_group_tests_name("plugins/onednn/bf16", none, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bf16_conv),   cmocka_unit_test(test_bf16_matmul),
        cmocka_unit_test(test_bf16_pool),   cmocka_unit_test(test_bf16_eltwise),
        cmocka_unit_test(test_bf16_binary), cmocka_unit_test(test_bf16_declined_where_f32_only),
    };
    return cmocka_run_group_tests_name("plugins/onednn/bf16", tests, harness_setup, harness_teardown);
}
