/* Gradient rules of the norm, softmax and loss families, each checked
 * against central finite differences of the executed plan (graph_check.h):
 * batch norm in training and inference (and through its statistics
 * outputs), layer norm over 1 and 2 dims, softmax/log_softmax along every
 * axis, and every loss for each reduction, with label smoothing,
 * ignore_index and the gradients of float targets. */
#include "graph_check.h"

#define F32_IN(nd, lo_, hi_, ...) {PLX_F32, nd, {__VA_ARGS__}, lo_, hi_, true}
#define F32_CONST(nd, lo_, hi_, ...) {PLX_F32, nd, {__VA_ARGS__}, lo_, hi_, false}
#define I64_IN(nd, lo_, hi_, ...) {PLX_I64, nd, {__VA_ARGS__}, lo_, hi_, false}

static const int32_t reductions[3] = {PLX_REDUCTION_MEAN, PLX_REDUCTION_SUM, PLX_REDUCTION_NONE};

/* ---- norm ------------------------------------------------------------------ */

/* Which outputs of a normalizing op the build reads: y, and the statistics
 * (broadcast back over x and added to y, so their gradients reach x). */
enum { USE_Y = 1, USE_MEAN = 2, USE_INVSTD = 4 };

typedef struct norm_case {
    int32_t op_id;
    const void *attrs;
    int32_t n_in;
    int uses;
} norm_case;

/* stat reshaped to x's rank with the reduced dims as 1. */
static int32_t broadcast_stat(plx_graph *g, int32_t stat, const tensor_meta *x, bool batch_norm)
{
    const tensor_meta *sm = &g->values[stat].meta;
    plx_reshape_attrs r = {sizeof r, x->ndim, {0}};
    for (int32_t d = 0; d < x->ndim; d++) {
        if (batch_norm)
            r.shape[d] = d == 1 ? x->dims[1] : 1;
        else
            r.shape[d] = d < sm->ndim ? x->dims[d] : 1;
    }
    int32_t out;
    return graph_add_op(g, PLX_OP_RESHAPE, &r, &stat, 1, &out, 1) == PLX_OK ? out : -1;
}

static int32_t build_norm(plx_graph *g, const int32_t *in, void *arg)
{
    const norm_case *c = arg;
    int32_t outs[3];
    if (graph_add_op(g, c->op_id, c->attrs, in, c->n_in, outs, 3) != PLX_OK)
        return -1;
    const tensor_meta x = g->values[in[0]].meta;
    bool bn = c->op_id == PLX_OP_BATCH_NORM;
    int32_t acc = -1;
    if (c->uses & USE_Y)
        acc = outs[0];
    for (int k = 1; k <= 2; k++) {
        if (!(c->uses & (k == 1 ? USE_MEAN : USE_INVSTD)))
            continue;
        int32_t s = broadcast_stat(g, outs[k], &x, bn);
        if (s < 0)
            return -1;
        if (acc < 0) {
            acc = s;
            continue;
        }
        int32_t add_in[2] = {acc, s};
        if (graph_add_op(g, PLX_OP_ADD, NULL, add_in, 2, &acc, 1) != PLX_OK)
            return -1;
    }
    return acc;
}

static void check_batch_norm(const char *what, int32_t training, int uses, int32_t ndim, const int64_t *dims)
{
    plx_batch_norm_attrs a = PLX_BATCH_NORM_ATTRS_DEFAULT;
    a.training = training;
    a.eps = 1e-3f;
    norm_case c = {PLX_OP_BATCH_NORM, &a, 5, uses};
    int64_t ch = dims[1];
    gc_input in[5] = {
        {PLX_F32, ndim, {0}, -1.0f, 1.0f, true},
        F32_IN(1, 0.5f, 1.5f, ch),     /* gamma */
        F32_IN(1, -1.0f, 1.0f, ch),    /* beta */
        F32_CONST(1, -0.5f, 0.5f, ch), /* running_mean: a buffer, no gradient */
        F32_CONST(1, 0.5f, 1.5f, ch),  /* running_var */
    };
    for (int32_t d = 0; d < ndim; d++)
        in[0].dims[d] = dims[d];
    gc_check(what, 5, in, build_norm, &c, 1e-3f, 5e-3f, 48);
}

static void test_batch_norm(void **state)
{
    (void)state;
    const int64_t nchw[4] = {3, 5, 2, 3}, nc[2] = {7, 3}, ncl[3] = {2, 3, 5};
    check_batch_norm("batch_norm training [3,5,2,3]", 1, USE_Y, 4, nchw);
    check_batch_norm("batch_norm training [7,3]", 1, USE_Y, 2, nc);
    check_batch_norm("batch_norm training [2,3,5]", 1, USE_Y, 3, ncl);
    check_batch_norm("batch_norm inference [3,5,2,3]", 0, USE_Y, 4, nchw);
    check_batch_norm("batch_norm inference [7,3]", 0, USE_Y, 2, nc);
}

static void test_batch_norm_statistics_outputs(void **state)
{
    (void)state;
    const int64_t nchw[4] = {3, 4, 3, 1}, nc[2] = {5, 3};
    check_batch_norm("batch_norm y + mean + invstd", 1, USE_Y | USE_MEAN | USE_INVSTD, 4, nchw);
    check_batch_norm("batch_norm y + mean", 1, USE_Y | USE_MEAN, 2, nc);
    check_batch_norm("batch_norm y + invstd", 1, USE_Y | USE_INVSTD, 4, nchw);
    check_batch_norm("batch_norm mean only", 1, USE_MEAN, 2, nc);
    check_batch_norm("batch_norm invstd only", 1, USE_INVSTD, 4, nchw);
    /* In inference the statistics are the running ones: no gradient to x,
     * which finite differences confirm. */
    check_batch_norm("batch_norm inference y + mean + invstd", 0, USE_Y | USE_MEAN | USE_INVSTD, 4, nchw);
}

static void check_layer_norm(const char *what, int32_t normalized_ndim, int uses, int32_t ndim, const int64_t *dims)
{
    plx_layer_norm_attrs a = PLX_LAYER_NORM_ATTRS_DEFAULT;
    a.normalized_ndim = normalized_ndim;
    a.eps = 1e-3f;
    norm_case c = {PLX_OP_LAYER_NORM, &a, 3, uses};
    gc_input in[3] = {
        {PLX_F32, ndim, {0}, -1.0f, 1.0f, true},
        {PLX_F32, normalized_ndim, {0}, 0.5f, 1.5f, true},
        {PLX_F32, normalized_ndim, {0}, -1.0f, 1.0f, true},
    };
    for (int32_t d = 0; d < ndim; d++)
        in[0].dims[d] = dims[d];
    for (int32_t d = 0; d < normalized_ndim; d++)
        in[1].dims[d] = in[2].dims[d] = dims[ndim - normalized_ndim + d];
    gc_check(what, 3, in, build_norm, &c, 1e-3f, 5e-3f, 48);
}

static void test_layer_norm(void **state)
{
    (void)state;
    const int64_t x3[3] = {3, 5, 7}, x2[2] = {4, 9}, x1[1] = {11};
    check_layer_norm("layer_norm last dim [3,5,7]", 1, USE_Y, 3, x3);
    check_layer_norm("layer_norm last 2 dims [3,5,7]", 2, USE_Y, 3, x3);
    check_layer_norm("layer_norm all dims [4,9]", 2, USE_Y, 2, x2);
    check_layer_norm("layer_norm [11]", 1, USE_Y, 1, x1);
    check_layer_norm("layer_norm y + mean + invstd", 1, USE_Y | USE_MEAN | USE_INVSTD, 3, x3);
    check_layer_norm("layer_norm 2 dims y + invstd", 2, USE_Y | USE_INVSTD, 3, x3);
    check_layer_norm("layer_norm mean only", 1, USE_MEAN, 2, x2);
}

/* ---- softmax --------------------------------------------------------------- */

static void test_softmax(void **state)
{
    (void)state;
    const int32_t ops[2] = {PLX_OP_SOFTMAX, PLX_OP_LOG_SOFTMAX};
    const int32_t axes[4] = {0, 1, 2, -1};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 4; i++) {
            plx_softmax_attrs a = {sizeof a, axes[i]};
            gc_one_op op = {ops[k], &a, 1, 1, 0};
            gc_input in[1] = {F32_IN(3, -2.0f, 2.0f, 3, 5, 4)};
            gc_check(k ? "log_softmax [3,5,4]" : "softmax [3,5,4]", 1, in, gc_build_one_op, &op, 1e-3f, 3e-3f, 60);
        }
        plx_softmax_attrs a = PLX_SOFTMAX_ATTRS_DEFAULT;
        gc_one_op op = {ops[k], &a, 1, 1, 0};
        gc_input v[1] = {F32_IN(1, -3.0f, 3.0f, 9)};
        gc_check(k ? "log_softmax [9]" : "softmax [9]", 1, v, gc_build_one_op, &op, 1e-3f, 3e-3f, 9);
        gc_input s[1] = {F32_IN(0, -1.0f, 1.0f, 0)};
        gc_check(k ? "log_softmax scalar" : "softmax scalar", 1, s, gc_build_one_op, &op, 1e-3f, 3e-3f, 1);
    }
}

/* log_softmax then nll_loss: the chain through two rules equals CE's. */
static int32_t build_log_softmax_nll(plx_graph *g, const int32_t *in, void *arg)
{
    int32_t logp, loss;
    plx_softmax_attrs s = {sizeof s, 1};
    if (graph_add_op(g, PLX_OP_LOG_SOFTMAX, &s, in, 1, &logp, 1) != PLX_OK)
        return -1;
    int32_t nll_in[2] = {logp, in[1]};
    return graph_add_op(g, PLX_OP_NLL_LOSS, arg, nll_in, 2, &loss, 1) == PLX_OK ? loss : -1;
}

static void test_log_softmax_nll_chain(void **state)
{
    (void)state;
    for (int r = 0; r < 3; r++) {
        plx_loss_attrs a = PLX_LOSS_ATTRS_DEFAULT;
        a.reduction = reductions[r];
        a.ignore_index = 2;
        gc_input in[2] = {F32_IN(3, -2.0f, 2.0f, 5, 4, 3), I64_IN(2, 0, 3, 5, 3)};
        gc_check("nll_loss(log_softmax(x, 1))", 2, in, build_log_softmax_nll, &a, 1e-3f, 3e-3f, 60);
    }
}

/* ---- losses ---------------------------------------------------------------- */

static void test_cross_entropy(void **state)
{
    (void)state;
    const float smoothing[2] = {0.0f, 0.15f};
    for (int r = 0; r < 3; r++) {
        for (int s = 0; s < 2; s++) {
            for (int ignore = 0; ignore < 2; ignore++) {
                plx_loss_attrs a = PLX_LOSS_ATTRS_DEFAULT;
                a.reduction = reductions[r];
                a.label_smoothing = smoothing[s];
                a.ignore_index = ignore ? 1 : -100; /* 1 is a class the targets draw */
                gc_one_op op = {PLX_OP_CROSS_ENTROPY, &a, 2, 1, 0};
                gc_input flat[2] = {F32_IN(2, -2.0f, 2.0f, 7, 5), I64_IN(1, 0, 4, 7)};
                gc_check("cross_entropy [7,5]", 2, flat, gc_build_one_op, &op, 1e-3f, 3e-3f, 35);
                gc_input spatial[2] = {F32_IN(4, -2.0f, 2.0f, 2, 3, 3, 2), I64_IN(3, 0, 2, 2, 3, 2)};
                gc_check("cross_entropy [2,3,3,2]", 2, spatial, gc_build_one_op, &op, 1e-3f, 3e-3f, 36);
            }
        }
    }
}

static void test_nll_loss(void **state)
{
    (void)state;
    for (int r = 0; r < 3; r++) {
        for (int ignore = 0; ignore < 2; ignore++) {
            plx_loss_attrs a = PLX_LOSS_ATTRS_DEFAULT;
            a.reduction = reductions[r];
            a.ignore_index = ignore ? 0 : -100;
            gc_one_op op = {PLX_OP_NLL_LOSS, &a, 2, 1, 0};
            gc_input flat[2] = {F32_IN(2, -3.0f, 0.0f, 9, 4), I64_IN(1, 0, 3, 9)};
            gc_check("nll_loss [9,4]", 2, flat, gc_build_one_op, &op, 1e-3f, 3e-3f, 36);
            gc_input spatial[2] = {F32_IN(3, -3.0f, 0.0f, 3, 5, 4), I64_IN(2, 0, 4, 3, 4)};
            gc_check("nll_loss [3,5,4]", 2, spatial, gc_build_one_op, &op, 1e-3f, 3e-3f, 60);
        }
    }
}

/* Elementwise losses with gradients for both x and the float target. The
 * sum reduction makes the f32 loss large, so the step is as large as each
 * loss's smoothness allows (central differences are exact for mse and l1
 * away from the kink). */
static void check_elementwise_loss(const char *what, int32_t op_id, float delta, float x_lo, float x_hi, float t_lo,
                                   float t_hi, float eps)
{
    for (int r = 0; r < 3; r++) {
        plx_loss_attrs a = PLX_LOSS_ATTRS_DEFAULT;
        a.reduction = reductions[r];
        a.delta = delta;
        gc_one_op op = {op_id, &a, 2, 1, 0};
        gc_input in[2] = {F32_IN(3, x_lo, x_hi, 3, 5, 3), F32_IN(3, t_lo, t_hi, 3, 5, 3)};
        gc_check(what, 2, in, gc_build_one_op, &op, eps, 3e-3f, 45);
        /* x alone, then the target alone */
        in[1].diff = false;
        gc_check(what, 2, in, gc_build_one_op, &op, eps, 3e-3f, 45);
        gc_input flat[2] = {F32_IN(1, x_lo, x_hi, 13), F32_IN(1, t_lo, t_hi, 13)};
        flat[0].diff = false;
        gc_check(what, 2, flat, gc_build_one_op, &op, eps, 3e-3f, 13);
    }
}

static void test_bce_with_logits(void **state)
{
    (void)state;
    check_elementwise_loss("bce_with_logits", PLX_OP_BCE_WITH_LOGITS, 1.0f, -3.0f, 3.0f, 0.0f, 1.0f, 2e-3f);
}

static void test_mse_loss(void **state)
{
    (void)state;
    check_elementwise_loss("mse_loss", PLX_OP_MSE_LOSS, 1.0f, -2.0f, 2.0f, -2.0f, 2.0f, 1e-2f);
}

static void test_l1_loss(void **state)
{
    (void)state;
    /* |x - t| >= 0.5 on both sides of the kink at x == t */
    check_elementwise_loss("l1_loss (x > t)", PLX_OP_L1_LOSS, 1.0f, 0.5f, 2.0f, -1.5f, 0.0f, 1e-2f);
    check_elementwise_loss("l1_loss (x < t)", PLX_OP_L1_LOSS, 1.0f, -2.0f, -0.5f, 0.0f, 1.5f, 1e-2f);
}

static void test_huber_loss(void **state)
{
    (void)state;
    /* Huber's derivative is continuous: differences cross |x - t| = delta
     * safely. Both regions are drawn. */
    check_elementwise_loss("huber_loss delta 1", PLX_OP_HUBER_LOSS, 1.0f, -2.0f, 2.0f, -2.0f, 2.0f, 2e-3f);
    check_elementwise_loss("huber_loss delta 0.3", PLX_OP_HUBER_LOSS, 0.3f, -1.0f, 1.0f, -1.0f, 1.0f, 2e-3f);
    check_elementwise_loss("huber_loss delta 5 (quadratic)", PLX_OP_HUBER_LOSS, 5.0f, -1.0f, 1.0f, -1.0f, 1.0f, 2e-3f);
}

/* mse(x, tanh(t)): the target is computed in the graph. */
static int32_t build_mse_computed_target(plx_graph *g, const int32_t *in, void *arg)
{
    int32_t y, loss;
    if (graph_add_op(g, PLX_OP_TANH, NULL, &in[1], 1, &y, 1) != PLX_OK)
        return -1;
    int32_t mse_in[2] = {in[0], y};
    return graph_add_op(g, PLX_OP_MSE_LOSS, arg, mse_in, 2, &loss, 1) == PLX_OK ? loss : -1;
}

static void test_loss_target_from_graph(void **state)
{
    (void)state;
    /* Distillation-style: the target is itself computed (tanh(t)) and both
     * sides get gradients through the graph. */
    plx_loss_attrs a = PLX_LOSS_ATTRS_DEFAULT;
    gc_input in[2] = {F32_IN(2, -1.0f, 1.0f, 4, 5), F32_IN(2, -1.0f, 1.0f, 4, 5)};
    gc_check("mse_loss(x, tanh(t))", 2, in, build_mse_computed_target, &a, 1e-3f, 3e-3f, 20);
}

/* Backward ops have no rule of their own (no second derivatives): asking
 * for one fails naming the node. */
static void test_backward_ops_have_no_rule(void **state)
{
    (void)state;
    plx_context *ctx = tu_open();
    plx_graph *g = NULL;
    assert_int_equal(graph_new(ctx, &g), PLX_OK);
    int32_t dy, y, dx;
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "dy", PLX_F32, 2, (int64_t[]){2, 3}, NULL, &dy), PLX_OK);
    assert_int_equal(graph_add_named(g, VALUE_INPUT, "y", PLX_F32, 2, (int64_t[]){2, 3}, NULL, &y), PLX_OK);
    g->scope = "head";
    int32_t in[2] = {dy, y};
    assert_int_equal(graph_add_op(g, PLX_OP_SOFTMAX_BACKWARD, NULL, in, 2, &dx, 1), PLX_OK);
    int32_t grad;
    assert_int_equal(autodiff(g, dx, &y, 1, &grad), PLX_UNSUPPORTED);
    assert_non_null(
        strstr(plx_last_error(ctx), "head: core.softmax_backward(f32[2,3], f32[2,3]) has no gradient rule"));
    graph_free(g);
    plx_context_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_norm),
        cmocka_unit_test(test_batch_norm_statistics_outputs),
        cmocka_unit_test(test_layer_norm),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_log_softmax_nll_chain),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_nll_loss),
        cmocka_unit_test(test_bce_with_logits),
        cmocka_unit_test(test_mse_loss),
        cmocka_unit_test(test_l1_loss),
        cmocka_unit_test(test_huber_loss),
        cmocka_unit_test(test_loss_target_from_graph),
        cmocka_unit_test(test_backward_ops_have_no_rule),
    };
    return cmocka_run_group_tests_name("runtime/grad_norm_loss", tests, NULL, NULL);
}
