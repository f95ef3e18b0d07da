/*
 * test_layouts.c — values kept in a backend's own layout along a chain of
 * that backend's ops (executor.c choose_layouts, plx_backend_api.layout_bytes).
 *
 * With oneDNN ranked first, conv -> relu -> max_pool -> conv -> max_pool
 * keeps the intermediate tensors in oneDNN's blocked layout: the plan marks
 * them, reserves their (padded) size, and the result equals cpu_blas's
 * plain computation. Values the caller keeps, and values a step that does
 * not take the layout reads (the backward pass), stay plain.
 */
#include "graph_check.h"

#define PLUGIN_DIR PLX_TEST_PLUGIN_DIR

typedef struct chain {
    plx_context *ctx;
    plx_graph *g;
    exec_plan *plan;
    int32_t x, w1, w2, conv1, pool1, conv2, out, loss, grad_w1;
    plx_tensor *tx, *tw1, *tw2;
} chain;

static plx_context *open_ranked(const char *backends)
{
    const char *paths[] = {PLUGIN_DIR};
    return tu_open_paths(paths, 1, backends);
}

static void build_chain(chain *c, const char *backends, bool training)
{
    memset(c, 0, sizeof *c);
    c->ctx = open_ranked(backends);
    assert_int_equal(graph_new(c->ctx, &c->g), PLX_OK);
    const int64_t xd[4] = {4, 16, 12, 12}, w1d[4] = {32, 16, 3, 3}, w2d[4] = {32, 32, 3, 3};
    assert_int_equal(graph_add_named(c->g, VALUE_INPUT, "x", PLX_F32, 4, xd, NULL, &c->x), PLX_OK);
    assert_int_equal(graph_add_named(c->g, VALUE_INPUT, "w1", PLX_F32, 4, w1d, NULL, &c->w1), PLX_OK);
    assert_int_equal(graph_add_named(c->g, VALUE_INPUT, "w2", PLX_F32, 4, w2d, NULL, &c->w2), PLX_OK);
    uint64_t rng = 31;
    c->tx = tu_uniform(c->ctx, &rng, 4, xd, -1, 1);
    c->tw1 = tu_uniform(c->ctx, &rng, 4, w1d, -0.2f, 0.2f);
    c->tw2 = tu_uniform(c->ctx, &rng, 4, w2d, -0.2f, 0.2f);
    c->g->scope = "chain";
    plx_conv2d_attrs ca = PLX_CONV2D_ATTRS_DEFAULT;
    ca.padding[0] = ca.padding[1] = 1;
    plx_pool2d_attrs pa = PLX_POOL2D_ATTRS_DEFAULT;
    pa.kernel[0] = pa.kernel[1] = 2;
    pa.stride[0] = pa.stride[1] = 2;
    int32_t in1[2] = {c->x, c->w1}, r1;
    assert_int_equal(graph_add_op(c->g, PLX_OP_CONV2D, &ca, in1, 2, &c->conv1, 1), PLX_OK);
    assert_int_equal(graph_add_op(c->g, PLX_OP_RELU, NULL, &c->conv1, 1, &r1, 1), PLX_OK);
    assert_int_equal(graph_add_op(c->g, PLX_OP_MAX_POOL2D, &pa, &r1, 1, &c->pool1, 1), PLX_OK);
    int32_t in2[2] = {c->pool1, c->w2};
    assert_int_equal(graph_add_op(c->g, PLX_OP_CONV2D, &ca, in2, 2, &c->conv2, 1), PLX_OK);
    assert_int_equal(graph_add_op(c->g, PLX_OP_MAX_POOL2D, &pa, &c->conv2, 1, &c->out, 1), PLX_OK);
    c->conv1 = r1; /* after fusion the conv writes relu's output */
    int32_t keep[2] = {c->out, -1};
    int32_t n_keep = 1;
    if (training) {
        assert_int_equal(graph_add_op(c->g, PLX_OP_SUM, NULL, &c->out, 1, &c->loss, 1), PLX_OK);
        assert_int_equal(autodiff(c->g, c->loss, &c->w1, 1, &c->grad_w1), PLX_OK);
        keep[1] = c->grad_w1;
        n_keep = 2;
    }
    if (plan_build(c->g, keep, n_keep, &c->plan) != PLX_OK)
        fail_msg("plan: %s", plx_last_error(c->ctx));
    assert_int_equal(plan_bind(c->plan, c->x, c->tx), PLX_OK);
    assert_int_equal(plan_bind(c->plan, c->w1, c->tw1), PLX_OK);
    assert_int_equal(plan_bind(c->plan, c->w2, c->tw2), PLX_OK);
    if (plan_run(c->plan) != PLX_OK)
        fail_msg("run: %s", plx_last_error(c->ctx));
}

static void free_chain(chain *c)
{
    plan_free(c->plan);
    plx_tensor_free(c->tx);
    plx_tensor_free(c->tw1);
    plx_tensor_free(c->tw2);
    graph_free(c->g);
    plx_context_close(c->ctx);
}

static void expect_close(const chain *got, const chain *want, int32_t vg, int32_t vw, const char *what)
{
    int64_t n = meta_numel(&want->g->values[vw].meta);
    tu_assert_close(plan_value_data(got->plan, vg), plan_value_data(want->plan, vw), n, 1e-4f, 1e-4f, what);
}

static void collect_line(void *user, const char *line)
{
    char *text = user;
    size_t used = strlen(text);
    snprintf(text + used, 16384 - used, "%s\n", line);
}

static bool skip_without_onednn(void)
{
    plx_context *ctx = open_ranked(NULL);
    bool have = tu_has_backend(ctx, "onednn");
    plx_context_close(ctx);
    if (!have)
        printf("skipped: the onednn backend is not built here (libdnnl-dev missing)\n");
    return !have;
}

/* oneDNN has a layout of its own only where its JIT pooling runs on
 * blocked data (AVX2 or AVX-512). */
static bool skip_without_own_layout(void)
{
    if (skip_without_onednn())
        return true;
    plx_context *ctx = open_ranked(NULL);
    uint64_t bytes = 0;
    int64_t dims[4] = {4, 32, 12, 12};
    plx_tensor_desc d = {.data = NULL, .device = {PLX_DL_CPU, 0}, .ndim = 4, .dtype = PLX_F32, .shape = dims};
    for (size_t i = 0; i < ctx->n_backends; i++)
        if (strcmp(ctx->backends[i].name, "onednn") == 0 && ctx->backends[i].api.layout_bytes != NULL)
            bytes = ctx->backends[i].api.layout_bytes(ctx->backends[i].state, 0, &d);
    plx_context_close(ctx);
    if (bytes == 0)
        printf("skipped: oneDNN has no blocked layout of its own on this CPU (it needs AVX2 or AVX-512)\n");
    return bytes == 0;
}

static void test_inference_chain_stays_blocked(void **state)
{
    (void)state;
    if (skip_without_own_layout())
        skip();
    chain d, ref;
    build_chain(&d, "onednn,cpu_blas", false);
    build_chain(&ref, "cpu_blas", false);
    /* conv1 (+relu) -> pool1 -> conv2 -> pool2: the three inner values in
     * oneDNN's layout, the kept result plain. */

    assert_true(d.plan->backend_layout_bytes[d.conv1] > 0);
    assert_true(d.plan->backend_layout_bytes[d.pool1] > 0);
    assert_true(d.plan->backend_layout_bytes[d.conv2] > 0);
    assert_int_equal(d.plan->backend_layout_bytes[d.out], 0);
    for (int32_t v = 0; v < ref.g->n_values; v++)
        assert_int_equal(ref.plan->backend_layout_bytes[v], 0); /* cpu_blas has no layout of its own */
    expect_close(&d, &ref, d.out, ref.out, "chain output");
    /* A second run reuses the same primitives and buffers. */
    assert_int_equal(plan_run(d.plan), PLX_OK);
    expect_close(&d, &ref, d.out, ref.out, "chain output, second run");
    /* The plan says so. */
    static char text[16384];
    text[0] = '\0';
    plan_describe(d.plan, 0, collect_line, text);
    if (strstr(text, "[onednn layout: output 0]") == NULL || strstr(text, "[onednn layout: input 0, output 0]") == NULL)
        fail_msg("the plan does not show the layouts:\n%s", text);
    free_chain(&d);
    free_chain(&ref);
}

/* Unranked, the router places by cost, and a step whose input could stay
 * in its producer's layout is costed with the two reorders it saves: the
 * chain forms here too. */
static void test_auto_routing_keeps_the_chain(void **state)
{
    (void)state;
    if (skip_without_own_layout())
        skip();
    chain d, ref;
    build_chain(&d, NULL, false);
    build_chain(&ref, "cpu_blas", false);
    assert_true(d.plan->backend_layout_bytes[d.conv1] > 0);
    assert_true(d.plan->backend_layout_bytes[d.pool1] > 0);
    for (int32_t s = 0; s < d.plan->n_steps; s++)
        if (d.plan->steps[s].routed_backend >= 0) /* moved: now on the chain's backend */
            assert_string_equal(d.ctx->backends[d.plan->steps[s].backend].name, "onednn");
    expect_close(&d, &ref, d.out, ref.out, "chain output");
    free_chain(&d);
    free_chain(&ref);
}

/* With a backward pass, the forward values are also read by backward ops
 * that take only plain tensors: those stay plain, and gradients match. */
static void test_training_graph(void **state)
{
    (void)state;
    if (skip_without_onednn())
        skip();
    chain d, ref;
    build_chain(&d, "onednn,cpu_blas", true);
    build_chain(&ref, "cpu_blas", true);
    assert_int_equal(d.plan->backend_layout_bytes[d.conv1], 0); /* read by max_pool2d_backward */
    assert_int_equal(d.plan->backend_layout_bytes[d.out], 0);
    expect_close(&d, &ref, d.out, ref.out, "output");
    expect_close(&d, &ref, d.grad_w1, ref.grad_w1, "gradient of w1");
    free_chain(&d);
    free_chain(&ref);
}

/* A chain cut by another backend: with cpu_blas ranked first for pooling
 * (only cpu_blas), nothing can stay in oneDNN's layout. */
static void test_mixed_backends_stay_plain(void **state)
{
    (void)state;
    if (skip_without_onednn())
        skip();
    chain d, ref;
    build_chain(&d, "cpu_blas,onednn", false);
    build_chain(&ref, "cpu_blas", false);
    for (int32_t v = 0; v < d.g->n_values; v++)
        assert_int_equal(d.plan->backend_layout_bytes[v], 0);
    expect_close(&d, &ref, d.out, ref.out, "output");
    free_chain(&d);
    free_chain(&ref);
}

static char warnings[4096];

static void keep_warnings(void *user, int level, const char *message)
{
    (void)user;
    if (level < PLX_LOG_WARN)
        return;
    size_t used = strlen(warnings);
    snprintf(warnings + used, sizeof warnings - used, "%s\n", message);
}

/* A plugin claiming an absurd own-layout size (near 2^64: it would wrap
 * the arena's arithmetic) is refused with a warning naming it; the chain
 * stays plain and runs right. */
static void test_absurd_layout_size_refused(void **state)
{
    (void)state;
    const char *paths[] = {PLX_TEST_BAD_PLUGIN_DIR "/hugelayout", PLUGIN_DIR};
    plx_context_options o;
    tu_options_init(&o, paths, 2);
    o.backends = "hugelayout,cpu_blas";
    o.log_fn = keep_warnings;
    warnings[0] = '\0';
    plx_context *ctx = tu_open_options(&o);
    plx_graph *g = NULL;
    assert_int_equal(graph_new(ctx, &g), PLX_OK);
    const int64_t dims[2] = {8, 5};
    int32_t x, y, a, b;
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "x", PLX_F32, 2, dims, NULL, &x), PLX_OK);
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "y", PLX_F32, 2, dims, NULL, &y), PLX_OK);
    int32_t in1[2] = {x, y};
    assert_int_equal(graph_add_op(g, PLX_OP_ADD, NULL, in1, 2, &a, 1), PLX_OK);
    int32_t in2[2] = {a, y};
    assert_int_equal(graph_add_op(g, PLX_OP_ADD, NULL, in2, 2, &b, 1), PLX_OK);
    exec_plan *plan = NULL;
    if (plan_build(g, &b, 1, &plan) != PLX_OK)
        fail_msg("plan: %s", plx_last_error(ctx));
    assert_string_equal(ctx->backends[plan->steps[0].backend].name, "hugelayout");
    assert_string_equal(ctx->backends[plan->steps[1].backend].name, "hugelayout");
    assert_int_equal(plan->backend_layout_bytes[a], 0);
    assert_null(plan->steps[0].layouts);
    if (strstr(warnings, "plugin hugelayout: layout_bytes says") == NULL)
        fail_msg("no warning naming the plugin:\n%s", warnings);
    uint64_t rng = 3;
    plx_tensor *tx = tu_uniform(ctx, &rng, 2, dims, -1, 1), *ty = tu_uniform(ctx, &rng, 2, dims, -1, 1);
    assert_int_equal(plan_bind(plan, x, tx), PLX_OK);
    assert_int_equal(plan_bind(plan, y, ty), PLX_OK);
    assert_int_equal(plan_run(plan), PLX_OK);
    const float *px = tu_f32(tx), *py = tu_f32(ty), *pb = plan_value_data(plan, b);
    for (int i = 0; i < 40; i++)
        assert_true(pb[i] == (px[i] + py[i]) + py[i]);
    plan_free(plan);
    plx_tensor_free(tx);
    plx_tensor_free(ty);
    graph_free(g);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inference_chain_stays_blocked),
        cmocka_unit_test(test_auto_routing_keeps_the_chain),
        cmocka_unit_test(test_training_graph),
        cmocka_unit_test(test_mixed_backends_stay_plain),
        cmocka_unit_test(test_absurd_layout_size_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
