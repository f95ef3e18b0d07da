/* Autodiff and the executor: gradients of graphs checked against finite
 * differences of the same executed plan; fan-out accumulation; pruning;
 * memory reuse; errors naming the node. Per-op gradient rules are checked
 * op by op in test_grad_rules.c. */
#include "graph_check.h"

#define F32_IN(nd, lo_, hi_, ...) {PLX_F32, nd, {__VA_ARGS__}, lo_, hi_, true}

/* y = relu(a * b + a) with broadcasting: a is used twice (gradients add). */
static int32_t build_fanout(plx_graph *g, const int32_t *in, void *arg)
{
    (void)arg;
    int32_t ab, s, y, mul_in[2] = {in[0], in[1]};
    if (graph_add_op(g, PLX_OP_MUL, NULL, mul_in, 2, &ab, 1) != PLX_OK)
        return -1;
    int32_t add_in[2] = {ab, in[0]};
    if (graph_add_op(g, PLX_OP_ADD, NULL, add_in, 2, &s, 1) != PLX_OK)
        return -1;
    if (graph_add_op(g, PLX_OP_TANH, NULL, &s, 1, &y, 1) != PLX_OK)
        return -1;
    return y;
}

static void test_fanout_and_broadcast(void **state)
{
    (void)state;
    gc_input in[2] = {F32_IN(2, -1.0f, 1.0f, 4, 5), F32_IN(1, -1.0f, 1.0f, 5)};
    gc_check("tanh(a*b + a)", 2, in, build_fanout, NULL, 1e-2f, 2e-3f, 64);
}

/* mean over axis 1 then max over everything. */
static int32_t build_reductions(plx_graph *g, const int32_t *in, void *arg)
{
    (void)arg;
    plx_reduce_attrs r = {sizeof r, 1, {1}, 0};
    int32_t m, e, mx;
    if (graph_add_op(g, PLX_OP_MEAN, &r, in, 1, &m, 1) != PLX_OK)
        return -1;
    if (graph_add_op(g, PLX_OP_EXP, NULL, &m, 1, &e, 1) != PLX_OK)
        return -1;
    plx_reduce_attrs keep = {sizeof keep, 1, {-1}, 1};
    if (graph_add_op(g, PLX_OP_MAX, &keep, &e, 1, &mx, 1) != PLX_OK)
        return -1;
    return mx;
}

static void test_reductions(void **state)
{
    (void)state;
    gc_input in[1] = {F32_IN(3, -1.0f, 1.0f, 3, 6, 4)};
    gc_check("max(exp(mean(x, 1)), -1)", 1, in, build_reductions, NULL, 1e-3f, 3e-3f, 72);
}

static void test_unary_and_binary_rules(void **state)
{
    (void)state;
    const int32_t unary[] = {PLX_OP_NEG, PLX_OP_ABS, PLX_OP_EXP, PLX_OP_SQUARE, PLX_OP_RELU, PLX_OP_ELU,
                             PLX_OP_GELU, PLX_OP_SIGMOID, PLX_OP_TANH, PLX_OP_SOFTPLUS, PLX_OP_LEAKY_RELU};
    for (size_t k = 0; k < sizeof unary / sizeof unary[0]; k++) {
        gc_one_op op = {unary[k], NULL, 1, 1, 0};
        /* away from the kinks at 0 */
        gc_input in[1] = {F32_IN(2, 0.2f, 1.5f, 3, 7)};
        gc_check("unary", 1, in, gc_build_one_op, &op, 1e-3f, 3e-3f, 21);
        in[0].lo = -1.5f;
        in[0].hi = -0.2f;
        gc_check("unary (negative side)", 1, in, gc_build_one_op, &op, 1e-3f, 3e-3f, 21);
    }
    const int32_t positive[] = {PLX_OP_LOG, PLX_OP_SQRT, PLX_OP_RSQRT};
    for (size_t k = 0; k < 3; k++) {
        gc_one_op op = {positive[k], NULL, 1, 1, 0};
        gc_input in[1] = {F32_IN(1, 0.5f, 2.0f, 9)};
        gc_check("unary on positives", 1, in, gc_build_one_op, &op, 1e-3f, 3e-3f, 9);
    }
    const int32_t binary[] = {PLX_OP_ADD, PLX_OP_SUB, PLX_OP_MUL, PLX_OP_DIV, PLX_OP_POW, PLX_OP_MAXIMUM,
                              PLX_OP_MINIMUM};
    for (size_t k = 0; k < sizeof binary / sizeof binary[0]; k++) {
        gc_one_op op = {binary[k], NULL, 2, 1, 0};
        gc_input in[2] = {F32_IN(3, 0.5f, 2.0f, 2, 1, 5), F32_IN(2, 0.5f, 2.0f, 3, 1)};
        gc_check("binary with broadcasting", 2, in, gc_build_one_op, &op, 1e-3f, 3e-3f, 30);
    }
}

/* Every transpose combination, with a broadcast batch. */
static void test_matmul_rule(void **state)
{
    (void)state;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            plx_matmul_attrs a = {sizeof a, ta, tb};
            gc_one_op op = {PLX_OP_MATMUL, &a, 2, 1, 0};
            /* op(A) is [2, 3, 4] with A batched; op(B) is [4, 5] shared. */
            gc_input in[2] = {ta ? (gc_input)F32_IN(3, -1.0f, 1.0f, 2, 4, 3) : (gc_input)F32_IN(3, -1.0f, 1.0f, 2, 3, 4),
                              tb ? (gc_input)F32_IN(2, -1.0f, 1.0f, 5, 4) : (gc_input)F32_IN(2, -1.0f, 1.0f, 4, 5)};
            gc_check("matmul", 2, in, gc_build_one_op, &op, 1e-2f, 2e-3f, 40);
        }
}

static void test_conv_and_pool_rules(void **state)
{
    (void)state;
    plx_conv2d_attrs c = {sizeof c, {2, 1}, {1, 2}, {1, 2}, 2};
    gc_one_op conv = {PLX_OP_CONV2D, &c, 3, 1, 0};
    gc_input cin[3] = {F32_IN(4, -1.0f, 1.0f, 2, 4, 7, 6), F32_IN(4, -1.0f, 1.0f, 6, 2, 3, 2),
                       F32_IN(1, -1.0f, 1.0f, 6)};
    gc_check("conv2d (stride, padding, dilation, groups, bias)", 3, cin, gc_build_one_op, &conv, 1e-2f, 3e-3f, 48);
    plx_pool2d_attrs mp = {sizeof mp, {2, 2}, {2, 2}, {0, 0}, {1, 1}, 0, 1};
    gc_one_op maxp = {PLX_OP_MAX_POOL2D, &mp, 1, 1, 0};
    gc_input pin[1] = {F32_IN(4, -1.0f, 1.0f, 2, 3, 6, 6)};
    gc_check("max_pool2d", 1, pin, gc_build_one_op, &maxp, 1e-3f, 3e-3f, 72);
    plx_pool2d_attrs ap = {sizeof ap, {3, 3}, {2, 2}, {1, 1}, {1, 1}, 1, 0};
    gc_one_op avgp = {PLX_OP_AVG_POOL2D, &ap, 1, 1, 0};
    gc_check("avg_pool2d (ceil, padding, exclude pad)", 1, pin, gc_build_one_op, &avgp, 1e-2f, 2e-3f, 72);
    gc_one_op gap = {PLX_OP_GLOBAL_AVG_POOL2D, NULL, 1, 1, 0};
    gc_check("global_avg_pool2d", 1, pin, gc_build_one_op, &gap, 1e-2f, 2e-3f, 72);
}

/* Nodes that nothing kept depends on are dropped; the arena reuses memory. */
static void test_pruning_and_memory_reuse(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_graph *g = NULL;
    assert_int_equal(graph_new(ctx, &g), PLX_OK);
    int32_t x;
    int64_t dims[2] = {256, 256};
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "x", PLX_F32, 2, dims, NULL, &x), PLX_OK);
    /* A chain of 8 elementwise ops: only two intermediates are ever live. */
    int32_t v = x;
    for (int i = 0; i < 8; i++) {
        int32_t next;
        assert_int_equal(graph_add_op(g, i % 2 ? PLX_OP_NEG : PLX_OP_TANH, NULL, &v, 1, &next, 1), PLX_OK);
        v = next;
    }
    int32_t unused;
    assert_int_equal(graph_add_op(g, PLX_OP_EXP, NULL, &x, 1, &unused, 1), PLX_OK);
    exec_plan *p = NULL;
    assert_int_equal(plan_build(g, &v, 1, &p), PLX_OK);
    assert_int_equal(p->n_steps, 8); /* the exp is pruned */
    size_t one = 256 * 256 * sizeof(float);
    assert_true(plan_arena_bytes(p) <= 2 * one);
    plx_tensor *xt = tu_tensor(ctx, PLX_F32, 2, dims);
    for (int64_t i = 0; i < 256 * 256; i++)
        tu_f32(xt)[i] = (float)(i % 17) / 17.0f - 0.5f;
    assert_int_equal(plan_run(p), PLX_INVALID_ARGUMENT); /* x not bound */
    assert_non_null(strstr(plx_last_error(ctx), "'x' is not bound"));
    assert_int_equal(plan_bind(p, x, xt), PLX_OK);
    assert_int_equal(plan_run(p), PLX_OK);
    const float *out = plan_value_data(p, v);
    for (int64_t i = 0; i < 256 * 256; i += 997) {
        float r = tu_f32(xt)[i];
        for (int k = 0; k < 8; k++)
            r = k % 2 ? -r : tanhf(r);
        assert_true(fabsf(out[i] - r) < 1e-6f);
    }
    plan_free(p);
    plx_tensor_free(xt);
    graph_free(g);
    plx_context_close(ctx);
}

static void test_errors_name_the_node(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_graph *g = NULL;
    assert_int_equal(graph_new(ctx, &g), PLX_OK);
    int32_t a, b, y;
    assert_int_equal(graph_add_named(g, VALUE_PARAM, "fc.weight", PLX_F32, 2, (int64_t[]){3, 4}, NULL, &a), PLX_OK);
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "x", PLX_F32, 2, (int64_t[]){5, 6}, NULL, &b), PLX_OK);
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "x", PLX_F32, 1, (int64_t[]){1}, NULL, &y), PLX_INVALID_ARGUMENT);
    assert_non_null(strstr(plx_last_error(ctx), "already used"));
    g->scope = "fc";
    int32_t in[2] = {b, a};
    assert_int_equal(graph_add_op(g, PLX_OP_MATMUL, NULL, in, 2, &y, 1), PLX_SHAPE_MISMATCH);
    const char *msg = plx_last_error(ctx);
    assert_non_null(strstr(msg, "fc: core.matmul(f32[5,6], f32[3,4])"));
    /* Second derivatives are not provided: differentiating through a
     * gradient op fails naming the node. */
    int32_t sq, rg, rg_in[2];
    assert_int_equal(graph_add_op(g, PLX_OP_SQUARE, NULL, &a, 1, &sq, 1), PLX_OK);
    rg_in[0] = sq;
    rg_in[1] = a;
    assert_int_equal(graph_add_op(g, PLX_OP_RELU_GRAD, NULL, rg_in, 2, &rg, 1), PLX_OK);
    int32_t grad;
    assert_int_equal(autodiff(g, rg, &a, 1, &grad), PLX_UNSUPPORTED);
    assert_non_null(strstr(plx_last_error(ctx), "fc: core.relu_grad(f32[3,4], f32[3,4]) has no gradient rule"));
    graph_free(g);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fanout_and_broadcast),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_unary_and_binary_rules),
        cmocka_unit_test(test_matmul_rule),
        cmocka_unit_test(test_conv_and_pool_rules),
        cmocka_unit_test(test_pruning_and_memory_reuse),
        cmocka_unit_test(test_errors_name_the_node),
    };
    return cmocka_run_group_tests_name("runtime/autodiff", tests, NULL, NULL);
}
