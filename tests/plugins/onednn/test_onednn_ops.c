/* Tests of the onednn backend's eltwise, binary, norm, softmax and reduce
 * families: every op forward and backward against cpu_blas on odd shapes,
 * every attribute form, broadcasting both ways, boundary values (zeros,
 * exact clamp bounds, softplus' threshold), running statistics updated in
 * place; and the calls onednn declines, each with its reason, falling back
 * to cpu_blas. */
#include "onednn_harness.h"

static const expect onednn = EXPECT_ONEDNN;

/* Runs on onednn, or (only when oneDNN has nothing but reference code for
 * the shape) is declined saying so and runs on cpu_blas. */
static void compare_or_reference_decline(contexts *c, const char *op, const void *attrs, int n_in, const in_spec *in,
                                         int n_out, const char *what)
{
    char buf[4096];
    explain(c->one, op, attrs, n_in, in, PLX_F32, PLX_OK, buf, sizeof buf);
    if (strstr(buf, "-> onednn") != NULL) {
        compare_op(c, op, attrs, n_in, in, n_out, onednn, what);
        return;
    }
    if (strstr(buf, "reference implementation") == NULL)
        fail_msg("%s: %s neither runs on onednn nor is declined for reference code:\n%s", what, op, buf);
    printf("note: %s: %s: oneDNN has only reference code here; declined, runs on cpu_blas\n", what, op);
    expect e = {"cpu_blas", 0.0f, 0.0f, 0};
    compare_op(c, op, attrs, n_in, in, n_out, e, what);
}

/* ---- eltwise ------------------------------------------------------------------------ */

typedef struct unary_case {
    const char *op; /* forward name; "<op>_grad" is tested too */
    const void *attrs;
    float lo, hi;
    const float *fixed;
    int n_fixed;
    const char *what;
} unary_case;

static const float zeros_and_signs[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, -0.5f};
static const float clamp_edges[] = {-0.5f,        0.4f, -0.50000006f, 0.40000004f, 0.39999998f,
                                    -0.49999997f, 0.0f, -3.0f,        3.0f};
static const float big_and_small[] = {25.0f, 15.5f, 20.0f, 20.5f, -25.0f, 0.0f, 14.0f, 16.0f};

static const plx_leaky_relu_attrs leaky_default = PLX_LEAKY_RELU_ATTRS_DEFAULT;
static const plx_leaky_relu_attrs leaky_neg = {sizeof leaky_neg, -0.2f};
static const plx_elu_attrs elu_default = PLX_ELU_ATTRS_DEFAULT;
static const plx_elu_attrs elu_07 = {sizeof elu_07, 0.7f};
static const plx_gelu_attrs gelu_erf = {sizeof gelu_erf, 0};
static const plx_gelu_attrs gelu_tanh = {sizeof gelu_tanh, 1};
static const plx_softplus_attrs softplus_default = PLX_SOFTPLUS_ATTRS_DEFAULT;
static const plx_softplus_attrs softplus_t15 = {sizeof softplus_t15, 1.0f, 15.0f};
static const plx_clamp_attrs clamp_both = {sizeof clamp_both, -0.5f, 0.4f, 1, 1};
static const plx_clamp_attrs clamp_min = {sizeof clamp_min, -0.5f, 0.0f, 1, 0};
static const plx_clamp_attrs clamp_max = {sizeof clamp_max, 0.0f, 0.4f, 0, 1};
static const plx_clamp_attrs clamp_crossed = {sizeof clamp_crossed, 0.3f, -0.2f, 1, 1};

static const unary_case unary_cases[] = {
    {"core.neg", NULL, -1.0f, 1.0f, NULL, 0, "neg"},
    {"core.abs", NULL, -1.0f, 1.0f, zeros_and_signs, 6, "abs, zeros"},
    {"core.exp", NULL, -3.0f, 3.0f, NULL, 0, "exp"},
    {"core.log", NULL, 0.05f, 4.0f, NULL, 0, "log"},
    {"core.sqrt", NULL, 0.05f, 4.0f, NULL, 0, "sqrt"},
    {"core.rsqrt", NULL, 0.05f, 4.0f, NULL, 0, "rsqrt"},
    {"core.square", NULL, -2.0f, 2.0f, NULL, 0, "square"},
    {"core.relu", NULL, -1.0f, 1.0f, zeros_and_signs, 6, "relu, zeros"},
    {"core.leaky_relu", &leaky_default, -1.0f, 1.0f, zeros_and_signs, 6, "leaky_relu default slope"},
    {"core.leaky_relu", &leaky_neg, -1.0f, 1.0f, zeros_and_signs, 6, "leaky_relu negative slope"},
    {"core.elu", &elu_default, -3.0f, 3.0f, zeros_and_signs, 6, "elu alpha 1"},
    {"core.elu", &elu_07, -3.0f, 3.0f, zeros_and_signs, 6, "elu alpha 0.7"},
    {"core.gelu", &gelu_erf, -4.0f, 4.0f, NULL, 0, "gelu erf"},
    {"core.gelu", &gelu_tanh, -4.0f, 4.0f, NULL, 0, "gelu tanh"},
    {"core.sigmoid", NULL, -8.0f, 8.0f, NULL, 0, "sigmoid"},
    {"core.tanh", NULL, -4.0f, 4.0f, NULL, 0, "tanh"},
    {"core.softplus", &softplus_default, -30.0f, 30.0f, big_and_small, 8, "softplus default (threshold 20)"},
    {"core.softplus", &softplus_t15, -30.0f, 30.0f, big_and_small, 8, "softplus threshold 15"},
    {"core.clamp", &clamp_both, -1.0f, 1.0f, clamp_edges, 9, "clamp both bounds, exact bounds"},
    {"core.clamp", &clamp_min, -1.0f, 1.0f, clamp_edges, 9, "clamp min only"},
    {"core.clamp", &clamp_max, -1.0f, 1.0f, clamp_edges, 9, "clamp max only"},
};

/* Odd sizes; the largest crosses the JIT kernels' vector tails. */
static const in_spec unary_shapes[] = {IN(1, 1), IN(2, 7, 13), IN(3, 3, 5, 17), IN(2, 129, 33)};

static void test_eltwise_forward_and_grad(void **state)
{
    contexts *c = *state;
    for (size_t i = 0; i < sizeof unary_cases / sizeof unary_cases[0]; i++) {
        const unary_case *u = &unary_cases[i];
        for (size_t s = 0; s < sizeof unary_shapes / sizeof unary_shapes[0]; s++) {
            in_spec x = unary_shapes[s];
            x.lo = u->lo;
            x.hi = u->hi;
            x.fixed = u->fixed;
            x.n_fixed = u->n_fixed;
            char what[160];
            snprintf(what, sizeof what, "%s, shape %zu", u->what, s);
            compare_op(c, u->op, u->attrs, 1, &x, 1, onednn, what);
            in_spec grad_in[2] = {x, x};
            grad_in[0].lo = -1.0f;
            grad_in[0].hi = 1.0f;
            grad_in[0].fixed = NULL;
            grad_in[0].n_fixed = 0;
            char grad_op[64];
            snprintf(grad_op, sizeof grad_op, "%s_grad", u->op);
            compare_op(c, grad_op, u->attrs, 2, grad_in, 1, onednn, what);
        }
    }
}

static void test_eltwise_declines(void **state)
{
    contexts *c = *state;
    in_spec x = IN(2, 4, 9);
    in_spec grad_in[2] = {IN(2, 4, 9), IN(2, 4, 9)};
    plx_softplus_attrs beta2 = {sizeof beta2, 2.0f, 20.0f};
    expect_declined(c, "core.softplus", &beta2, 1, &x, 1, "beta=2", "softplus beta 2");
    expect_declined(c, "core.softplus_grad", &beta2, 2, grad_in, 1, "beta=2", "softplus_grad beta 2");
    plx_softplus_attrs low = {sizeof low, 1.0f, 5.0f};
    expect_declined(c, "core.softplus", &low, 1, &x, 1, "threshold=5", "softplus threshold 5");
    plx_softplus_attrs high = {sizeof high, 1.0f, 100.0f};
    expect_declined(c, "core.softplus_grad", &high, 2, grad_in, 1, "threshold=100", "softplus threshold 100");
    expect_declined(c, "core.clamp", &clamp_crossed, 1, &x, 1, "min 0.3 > max -0.2", "clamp min > max");
    expect_declined(c, "core.clamp_grad", &clamp_crossed, 2, grad_in, 1, "min 0.3 > max -0.2", "clamp_grad min > max");
}

/* ---- binary ------------------------------------------------------------------------- */

typedef struct binary_case {
    const char *what;
    in_spec a, b;
} binary_case;

static const binary_case binary_cases[] = {
    {"same shape", IN(2, 7, 13), IN(2, 7, 13)},
    {"bias over rows", IN(3, 4, 5, 17), IN(1, 17)},
    {"per-row column", IN(2, 6, 9), IN(2, 6, 1)},
    {"scalar b", IN(2, 5, 7), IN(0, 0)},
    {"per-channel NCHW", IN(4, 2, 3, 4, 5), IN(4, 1, 3, 1, 1)},
    {"two broadcast dims", IN(4, 2, 3, 4, 5), IN(4, 2, 1, 4, 1)},
    {"size-1 dims kept", IN(3, 3, 1, 17), IN(3, 3, 1, 17)},
    {"both scalars", IN(0, 0), IN(0, 0)},
    {"a broadcast (swapped)", IN(1, 17), IN(2, 4, 17)},
    {"a scalar (swapped)", IN(0, 0), IN(3, 2, 3, 5)},
    {"a column (swapped)", IN(2, 6, 1), IN(2, 6, 9)},
};

static const char *const binary_ops[] = {"core.add", "core.sub",     "core.mul",
                                         "core.div", "core.maximum", "core.minimum"};

static void test_binary_broadcasting(void **state)
{
    contexts *c = *state;
    for (size_t i = 0; i < sizeof binary_cases / sizeof binary_cases[0]; i++)
        for (size_t k = 0; k < sizeof binary_ops / sizeof binary_ops[0]; k++) {
            const binary_case *bc = &binary_cases[i];
            bool swapped = strstr(bc->what, "swapped") != NULL;
            bool is_div = strcmp(binary_ops[k], "core.div") == 0;
            in_spec in[2] = {bc->a, bc->b};
            if (is_div) {
                in[1].lo = 0.5f; /* keep the divisor away from 0 */
                in[1].hi = 2.0f;
            }
            char what[160];
            snprintf(what, sizeof what, "%s", bc->what);
            if (swapped && is_div)
                expect_declined(c, binary_ops[k], NULL, 2, in, 1, "broadcast dividend", what);
            else if (strcmp(bc->what, "two broadcast dims") == 0)
                compare_or_reference_decline(c, binary_ops[k], NULL, 2, in, 1, what);
            else
                compare_op(c, binary_ops[k], NULL, 2, in, 1, onednn, what);
        }
}

static void test_binary_declines(void **state)
{
    contexts *c = *state;
    in_spec both[2] = {IN(2, 3, 1), IN(2, 1, 4)};
    expect_declined(c, "core.add", NULL, 2, both, 1, "both operands broadcast", "[3,1] + [1,4]");
    in_spec both3[2] = {IN(3, 3, 1, 17), IN(2, 4, 17)};
    expect_declined(c, "core.mul", NULL, 2, both3, 1, "both operands broadcast", "[3,1,17] * [4,17]");
    /* core.pow has no oneDNN binary algorithm: not implemented at all. */
    char buf[4096];
    in_spec same[2] = {IN(2, 3, 4), IN(2, 3, 4)};
    explain(c->one, "core.pow", NULL, 2, same, PLX_F32, PLX_OK, buf, sizeof buf);
    if (strstr(buf, "onednn") == NULL || strstr(buf, "does not implement") == NULL)
        fail_msg("onednn should not list core.pow:\n%s", buf);
}

/* ---- norms -------------------------------------------------------------------------- */

static void test_batch_norm(void **state)
{
    contexts *c = *state;
    const plx_batch_norm_attrs train = {sizeof train, 1e-5f, 0.1f, 1};
    const plx_batch_norm_attrs train2 = {sizeof train2, 1e-3f, 0.3f, 1};
    const plx_batch_norm_attrs infer = {sizeof infer, 1e-5f, 0.1f, 0};
    const plx_batch_norm_attrs *modes[] = {&train, &train2, &infer};
    const char *mode_names[] = {"training", "training eps 1e-3 momentum 0.3", "inference"};
    const in_spec xs[] = {IN(4, 4, 3, 5, 6), IN(2, 8, 5), IN(3, 3, 4, 7), IN(5, 2, 3, 2, 3, 2)};
    for (size_t m = 0; m < 3; m++)
        for (size_t s = 0; s < sizeof xs / sizeof xs[0]; s++) {
            int64_t ch = xs[s].d[1];
            in_spec fwd[5] = {xs[s], IN_RANGE(0.5f, 1.5f, 1, ch), IN(1, ch), IN(1, ch), IN_RANGE(0.2f, 2.0f, 1, ch)};
            char what[160];
            snprintf(what, sizeof what, "batch norm %s, %d-D", mode_names[m], (int)xs[s].ndim);
            expect e = {"onednn", 1e-4f, 1e-4f, modes[m]->training ? 0x18u : 0u};
            compare_op(c, "core.batch_norm", modes[m], 5, fwd, 3, e, what);
            in_spec bwd[5] = {xs[s], xs[s], IN_RANGE(0.5f, 1.5f, 1, ch), IN(1, ch), IN_RANGE(0.5f, 2.0f, 1, ch)};
            bwd[0].lo = -2.0f;
            bwd[0].hi = 2.0f;
            compare_op(c, "core.batch_norm_backward", modes[m], 5, bwd, 3, onednn, what);
        }
}

/* The running statistics follow PyTorch's update: checked against values
 * computed here, not only against cpu_blas. */
static void test_batch_norm_running_stats(void **state)
{
    contexts *c = *state;
    const plx_batch_norm_attrs a = {sizeof a, 1e-5f, 0.25f, 1};
    int64_t xs[2] = {4, 2}, cs[1] = {2};
    const float xv[8] = {1, 2, 3, 5, 8, 13, 21, 34}; /* channel 0: 1,3,8,21; channel 1: 2,5,13,34 */
    const float ones[2] = {1, 1}, zeros[2] = {0, 0}, rm0[2] = {0.5f, -1.0f}, rv0[2] = {2.0f, 0.5f};
    plx_tensor *in[5] = {tu_from_f32(c->one, 2, xs, xv), tu_from_f32(c->one, 1, cs, ones),
                         tu_from_f32(c->one, 1, cs, zeros), tu_from_f32(c->one, 1, cs, rm0),
                         tu_from_f32(c->one, 1, cs, rv0)};
    plx_tensor *out[3] = {NULL, NULL, NULL};
    tu_run(c->one, "core.batch_norm", &a, in, 5, out, 3);
    assert_string_equal(plx_last_backend(c->one), "onednn");
    for (int ch = 0; ch < 2; ch++) {
        double sum = 0, sq = 0;
        for (int n = 0; n < 4; n++)
            sum += xv[n * 2 + ch];
        double mean = sum / 4;
        for (int n = 0; n < 4; n++)
            sq += (xv[n * 2 + ch] - mean) * (xv[n * 2 + ch] - mean);
        double var = sq / 4, unbiased = sq / 3;
        float want_rm = (float)(0.75 * rm0[ch] + 0.25 * mean), want_rv = (float)(0.75 * rv0[ch] + 0.25 * unbiased);
        float want_is = (float)(1.0 / sqrt(var + 1e-5));
        tu_assert_close(&tu_f32(in[3])[ch], &want_rm, 1, 1e-5f, 1e-5f, "running_mean");
        tu_assert_close(&tu_f32(in[4])[ch], &want_rv, 1, 1e-5f, 1e-5f, "running_var (unbiased)");
        float want_mean = (float)mean;
        tu_assert_close(&tu_f32(out[1])[ch], &want_mean, 1, 1e-5f, 1e-5f, "save_mean");
        tu_assert_close(&tu_f32(out[2])[ch], &want_is, 1, 1e-5f, 1e-5f, "save_invstd");
    }
    for (int i = 0; i < 5; i++)
        plx_tensor_free(in[i]);
    for (int i = 0; i < 3; i++)
        plx_tensor_free(out[i]);
}

static void test_layer_norm(void **state)
{
    contexts *c = *state;
    typedef struct ln_case {
        in_spec x;
        int32_t nd;
        float eps;
        const char *what;
    } ln_case;
    const ln_case cases[] = {
        {IN(3, 4, 3, 21), 1, 1e-5f, "last dim"},
        {IN(3, 4, 3, 21), 2, 1e-5f, "last two dims"},
        {IN(2, 5, 8), 2, 1e-3f, "all dims (one row, scalar stats)"},
        {IN(2, 33, 768), 1, 1e-5f, "transformer row"},
        {IN(1, 17), 1, 1e-5f, "1-D"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ln_case *k = &cases[i];
        plx_layer_norm_attrs a = {sizeof a, k->eps, k->nd};
        in_spec p = k->x;
        p.ndim = k->nd;
        memmove(p.d, k->x.d + (k->x.ndim - k->nd), sizeof(int64_t) * (size_t)k->nd);
        p.lo = 0.5f;
        p.hi = 1.5f;
        in_spec beta = p;
        beta.lo = -1.0f;
        beta.hi = 1.0f;
        in_spec fwd[3] = {k->x, p, beta};
        compare_op(c, "core.layer_norm", &a, 3, fwd, 3, onednn, k->what);
        in_spec stat = k->x;
        stat.ndim = k->x.ndim - k->nd;
        in_spec invstd = stat;
        invstd.lo = 0.5f;
        invstd.hi = 2.0f;
        in_spec bwd[5] = {k->x, k->x, p, stat, invstd};
        compare_op(c, "core.layer_norm_backward", &a, 5, bwd, 3, onednn, k->what);
    }
}

/* ---- softmax ------------------------------------------------------------------------ */

static void test_softmax(void **state)
{
    contexts *c = *state;
    typedef struct sm_case {
        in_spec x;
        int32_t axis;
        const char *what;
    } sm_case;
    const sm_case cases[] = {
        {IN_RANGE(-5.0f, 5.0f, 2, 4, 13), -1, "last axis"},
        {IN_RANGE(-5.0f, 5.0f, 3, 3, 5, 1000), 2, "last axis, long rows"},
        {IN_RANGE(-5.0f, 5.0f, 1, 33), 0, "1-D"},
        {IN_RANGE(-5.0f, 5.0f, 3, 4, 13, 3), 1, "middle axis"},
        {IN_RANGE(-5.0f, 5.0f, 3, 6, 5, 7), 0, "first axis"},
    };
    const char *ops[] = {"core.softmax", "core.log_softmax"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int k = 0; k < 2; k++) {
            plx_softmax_attrs a = {sizeof a, cases[i].axis};
            compare_or_reference_decline(c, ops[k], &a, 1, &cases[i].x, 1, cases[i].what);
            in_spec bwd[2] = {cases[i].x, cases[i].x};
            bwd[0].lo = -1.0f;
            bwd[0].hi = 1.0f;
            bwd[1].lo = k == 0 ? 0.0f : -4.0f; /* y: probabilities, or log-probabilities */
            bwd[1].hi = k == 0 ? 1.0f : 0.0f;
            compare_or_reference_decline(c, k == 0 ? "core.softmax_backward" : "core.log_softmax_backward", &a, 2, bwd,
                                         1, cases[i].what);
        }
    /* The common case is really on oneDNN's JIT kernels (not declined). */
    plx_softmax_attrs last = {sizeof last, -1};
    in_spec x = IN(2, 64, 100);
    compare_op(c, "core.softmax", &last, 1, &x, 1, onednn, "last axis must not be declined");
}

/* ---- reductions ----------------------------------------------------------------------- */

static void test_reductions(void **state)
{
    contexts *c = *state;
    typedef struct red_case {
        in_spec x;
        plx_reduce_attrs a;
        const char *what;
    } red_case;
    const red_case cases[] = {
        {IN(2, 7, 33), {sizeof(plx_reduce_attrs), 1, {-1}, 0}, "last axis"},
        {IN(2, 33, 7), {sizeof(plx_reduce_attrs), 1, {0}, 1}, "first axis, keepdims"},
        {IN(3, 3, 37, 5), {sizeof(plx_reduce_attrs), 1, {1}, 1}, "middle axis"},
        {IN(3, 5, 7, 3), {sizeof(plx_reduce_attrs), 0, {0}, 0}, "all axes"},
        {IN(1, 1001), {sizeof(plx_reduce_attrs), 0, {0}, 1}, "1-D, all, keepdims"},
        {IN(4, 2, 3, 4, 5), {sizeof(plx_reduce_attrs), 2, {2, 3}, 0}, "spatial of NCHW"},
        {IN(4, 2, 3, 4, 5), {sizeof(plx_reduce_attrs), 2, {-3, -2}, 0}, "two middle axes, negative"},
        {IN(4, 2, 3, 4, 5), {sizeof(plx_reduce_attrs), 3, {0, 2, 3}, 1}, "all but channels"},
        {IN(3, 3, 1, 5), {sizeof(plx_reduce_attrs), 2, {1, 2}, 0}, "with a size-1 axis"},
    };
    const char *ops[] = {"core.sum", "core.mean", "core.max", "core.min"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int k = 0; k < 4; k++)
            compare_or_reference_decline(c, ops[k], &cases[i].a, 1, &cases[i].x, 1, cases[i].what);
    /* A full sum and a last-axis max are on the JIT kernels. */
    plx_reduce_attrs all = {sizeof all, 0, {0}, 0};
    in_spec x = IN(2, 64, 100);
    compare_op(c, "core.sum", &all, 1, &x, 1, onednn, "full sum must not be declined");
    plx_reduce_attrs last = {sizeof last, 1, {-1}, 0};
    compare_op(c, "core.max", &last, 1, &x, 1, onednn, "last-axis max must not be declined");
}

static void test_reduction_declines(void **state)
{
    contexts *c = *state;
    plx_reduce_attrs a = {sizeof a, 1, {1}, 1};
    in_spec x = IN(3, 3, 1, 5);
    expect_declined(c, "core.sum", &a, 1, &x, 1, "nothing to reduce", "reduce over a size-1 axis");
}

int main(void)
{
    if (access(ONEDNN_SO, F_OK) != 0) {
        const struct CMUnitTest none[] = {cmocka_unit_test(test_onednn_not_built)};
        return cmocka_run_group_tests_name("plugins/onednn/ops", none, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eltwise_forward_and_grad),
        cmocka_unit_test(test_eltwise_declines),
        cmocka_unit_test(test_binary_broadcasting),
        cmocka_unit_test(test_binary_declines),
        cmocka_unit_test(test_batch_norm),
        cmocka_unit_test(test_batch_norm_running_stats),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_reduction_declines),
    };
    return cmocka_run_group_tests_name("plugins/onednn/ops", tests, harness_setup, harness_teardown);
}
