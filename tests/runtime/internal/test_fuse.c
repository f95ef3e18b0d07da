/*
 * test_fuse.c — graph fusions (runtime/fuse.c): conv2d + relu becomes one
 * convolution with a fused activation; gradients stay right (finite
 * differences through the fused plan), results equal the unfused plan's,
 * and patterns that must not fuse are left alone.
 */
#include "graph_check.h"

static const int64_t x_dims[4] = {2, 3, 7, 6}, w_dims[4] = {4, 3, 3, 3}, b_dims[1] = {4};

static int32_t conv_relu(plx_graph *g, const int32_t *in, void *arg)
{
    (void)arg;
    plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    a.padding[0] = a.padding[1] = 1;
    int32_t c, r;
    if (graph_add_op(g, PLX_OP_CONV2D, &a, in, 3, &c, 1) != PLX_OK ||
        graph_add_op(g, PLX_OP_RELU, NULL, &c, 1, &r, 1) != PLX_OK)
        return -1;
    return r;
}

/* The fused plan's gradients against finite differences of itself. */
static void test_fused_gradients(void **state)
{
    (void)state;
    gc_input specs[3] = {
        {PLX_F32, 4, {2, 3, 7, 6}, -1.0f, 1.0f, true},
        {PLX_F32, 4, {4, 3, 3, 3}, -0.5f, 0.5f, true},
        {PLX_F32, 1, {4}, -0.2f, 0.2f, true},
    };
    gc_check("conv2d+relu fused", 3, specs, conv_relu, NULL, 1e-3f, 2e-2f, 40);
}

typedef struct built {
    plx_context *ctx;
    plx_graph *g;
    exec_plan *plan;
    int32_t in[3], out, loss, grads[3];
    plx_tensor *t[3];
} built;

/* conv -> relu -> (extra) -> sum, differentiated; extra adds the
 * pre-activation to the result when `reuse_preact`. */
static void build(built *b, bool fuse, bool reuse_preact)
{
    b->ctx = tu_open();
    b->ctx->fuse = fuse;
    assert_int_equal(graph_new(b->ctx, &b->g), PLX_OK);
    const int64_t *dims[3] = {x_dims, w_dims, b_dims};
    const int32_t ndims[3] = {4, 4, 1};
    uint64_t rng = 99;
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        assert_int_equal(graph_add_named(b->g, VALUE_INPUT, name, PLX_F32, ndims[i], dims[i], NULL, &b->in[i]),
                         PLX_OK);
        b->t[i] = tu_uniform(b->ctx, &rng, ndims[i], dims[i], -1.0f, 1.0f);
    }
    b->g->scope = "test";
    plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    int32_t c, r;
    assert_int_equal(graph_add_op(b->g, PLX_OP_CONV2D, &a, b->in, 3, &c, 1), PLX_OK);
    assert_int_equal(graph_add_op(b->g, PLX_OP_RELU, NULL, &c, 1, &r, 1), PLX_OK);
    b->out = r;
    if (reuse_preact) {
        int32_t add_in[2] = {r, c};
        assert_int_equal(graph_add_op(b->g, PLX_OP_ADD, NULL, add_in, 2, &b->out, 1), PLX_OK);
    }
    assert_int_equal(graph_add_op(b->g, PLX_OP_SUM, NULL, &b->out, 1, &b->loss, 1), PLX_OK);
    assert_int_equal(autodiff(b->g, b->loss, b->in, 3, b->grads), PLX_OK);
    int32_t keep[5] = {b->loss, b->out, b->grads[0], b->grads[1], b->grads[2]};
    assert_int_equal(plan_build(b->g, keep, 5, &b->plan), PLX_OK);
    for (int i = 0; i < 3; i++)
        assert_int_equal(plan_bind(b->plan, b->in[i], b->t[i]), PLX_OK);
    assert_int_equal(plan_run(b->plan), PLX_OK);
}

static void unbuild(built *b)
{
    plan_free(b->plan);
    for (int i = 0; i < 3; i++)
        plx_tensor_free(b->t[i]);
    graph_free(b->g);
    plx_context_close(b->ctx);
}

static int count_op(const built *b, int32_t op_id)
{
    int n = 0;
    for (int32_t s = 0; s < b->plan->n_steps; s++)
        n += b->g->nodes[b->plan->steps[s].node].op_id == op_id;
    return n;
}

static void expect_same(const built *x, const built *y, int32_t vx, int32_t vy, const char *what)
{
    const tensor_meta *m = &x->g->values[vx].meta;
    tu_assert_close(plan_value_data(y->plan, vy), plan_value_data(x->plan, vx), meta_numel(m), 0.0f, 0.0f, what);
}

static void test_fused_equals_unfused(void **state)
{
    (void)state;
    built f, u;
    build(&f, true, false);
    build(&u, false, false);
    assert_int_equal(count_op(&f, PLX_OP_RELU), 0);
    assert_int_equal(count_op(&u, PLX_OP_RELU), 1);
    assert_int_equal(f.plan->n_steps + 1, u.plan->n_steps);
    bool fused_conv = false;
    for (int32_t s = 0; s < f.plan->n_steps; s++) {
        const graph_node *n = &f.g->nodes[f.plan->steps[s].node];
        if (n->op_id == PLX_OP_CONV2D)
            fused_conv = ((const plx_conv2d_attrs *)n->attrs)->activation == PLX_ACTIVATION_RELU;
    }
    assert_true(fused_conv);
    expect_same(&u, &f, u.out, f.out, "output");
    expect_same(&u, &f, u.loss, f.loss, "loss");
    for (int i = 0; i < 3; i++)
        expect_same(&u, &f, u.grads[i], f.grads[i], "gradient");
    unbuild(&f);
    unbuild(&u);
}

/* The pre-activation is read by something other than relu/relu_grad: it
 * must stay, so nothing is fused. */
static void test_no_fusion_when_preactivation_is_used(void **state)
{
    (void)state;
    built f;
    build(&f, true, true);
    assert_int_equal(count_op(&f, PLX_OP_RELU), 1);
    for (int32_t s = 0; s < f.plan->n_steps; s++) {
        const graph_node *n = &f.g->nodes[f.plan->steps[s].node];
        if (n->op_id == PLX_OP_CONV2D)
            assert_int_equal(((const plx_conv2d_attrs *)n->attrs)->activation, PLX_ACTIVATION_NONE);
    }
    unbuild(&f);
}

/* An explicitly fused conv2d through the eager API on every backend that
 * takes it equals conv2d followed by relu. */
static void test_eager_fused_conv(void **state)
{
    (void)state;
    plx_context *ctx = tu_open_backends("cpu_blas");
    uint64_t rng = 5;
    plx_tensor *x = tu_uniform(ctx, &rng, 4, x_dims, -1, 1), *w = tu_uniform(ctx, &rng, 4, w_dims, -1, 1),
               *bias = tu_uniform(ctx, &rng, 1, b_dims, -1, 1);
    plx_tensor *in[3] = {x, w, bias}, *plain[1] = {NULL}, *relu[1] = {NULL}, *fused[1] = {NULL};
    plx_conv2d_attrs a = PLX_CONV2D_ATTRS_DEFAULT;
    tu_run(ctx, "core.conv2d", &a, in, 3, plain, 1);
    tu_run(ctx, "core.relu", NULL, plain, 1, relu, 1);
    a.activation = PLX_ACTIVATION_RELU;
    tu_run(ctx, "core.conv2d", &a, in, 3, fused, 1);
    tu_assert_close(tu_f32(fused[0]), tu_f32(relu[0]), plx_tensor_numel(relu[0]), 0.0f, 0.0f, "fused conv");
    a.activation = 7;
    const char *needles[] = {"activation must be 0 (none) or 1 (relu), got 7"};
    tu_expect_failure1(ctx, "core.conv2d", &a, in, 3, PLX_INVALID_ARGUMENT, needles, 1);
    plx_tensor *all[6] = {x, w, bias, plain[0], relu[0], fused[0]};
    for (int i = 0; i < 6; i++)
        plx_tensor_free(all[i]);
    plx_context_close(ctx);
}

/* PLEXUS_FUSE and PLEXUS_LAYOUTS: 0 turns each off, 1 on, anything else
 * fails the open naming the variable. */
static void test_environment_switches(void **state)
{
    (void)state;
    const char *paths[] = {PLX_TEST_PLUGIN_DIR};
    plx_context_options o;
    tu_options_init(&o, paths, 1);
    o.ignore_env = 0;
    setenv("PLEXUS_FUSE", "0", 1);
    setenv("PLEXUS_LAYOUTS", "0", 1);
    plx_context *ctx = tu_open_options(&o);
    assert_false(ctx->fuse);
    assert_false(ctx->backend_layouts);
    plx_context_close(ctx);
    static const char *const bad[][3] = {
        {"PLEXUS_FUSE", "yes", "PLEXUS_FUSE='yes' must be 0 or 1"},
        {"PLEXUS_FUSE", "2", "PLEXUS_FUSE='2' must be 0 or 1"},
        {"PLEXUS_LAYOUTS", "on", "PLEXUS_LAYOUTS='on' must be 0 or 1"},
        {"PLEXUS_LAYOUTS", "-1", "PLEXUS_LAYOUTS='-1' must be 0 or 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("PLEXUS_FUSE", "1", 1);
        setenv("PLEXUS_LAYOUTS", "1", 1);
        setenv(bad[i][0], bad[i][1], 1);
        plx_context *none = NULL;
        assert_int_equal(plx_context_open(&o, &none), PLX_INVALID_ARGUMENT);
        assert_null(none);
        assert_string_equal(plx_last_error(NULL), bad[i][2]);
    }
    unsetenv("PLEXUS_FUSE");
    unsetenv("PLEXUS_LAYOUTS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fused_gradients),
        cmocka_unit_test(test_fused_equals_unfused),
        cmocka_unit_test(test_no_fusion_when_preactivation_is_used),
        cmocka_unit_test(test_eager_fused_conv),
        cmocka_unit_test(test_environment_switches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
