/*
 * onednn kernels of the pool family: core.max_pool2d, core.avg_pool2d and
 * their backward ops, NCHW, through oneDNN's pooling_v2 (which has
 * dilation; oneDNN's dilation is PyTorch's minus one).
 *
 * Where the semantics meet PyTorch's:
 *  - padding_r is chosen so oneDNN's output size equals PyTorch's: the
 *    symmetric padding, or more on the right when ceil_mode adds a last,
 *    partial window.
 *  - max: padding never wins (it is -inf for both); ties go to the first
 *    maximum in row-major tap order in both. The backward op needs the
 *    forward's workspace (argmax indices), so it recomputes a training
 *    forward into a temporary first.
 *  - avg with count_include_pad is oneDNN's avg_include_padding, whose
 *    divisor is always the kernel area; PyTorch clips the window to the
 *    padded input, which differs only when a ceil_mode window reaches past
 *    the right padding: that case is declined. Without count_include_pad
 *    both divide by the window's in-input elements.
 * Pooling uses plain NCHW inside too (it is memory-bound; a blocked layout
 * would only add reorders).
 */
#include <stdio.h>
#include <string.h>

#include "onednn.h"

#define POOL_CALL_NS 500.0
/* Memory-bound: bytes read and written per ns. */
#define POOL_BYTES_PER_NS 10.0

typedef struct pool_geom {
    int64_t x[4], y[4];
    dnnl_dims_t kernel, strides, dilation, pad_l, pad_r;
    bool is_max, include_pad, beyond_padding;
} pool_geom;

static bool is_max_op(int32_t op_id)
{
    return op_id == PLX_OP_MAX_POOL2D || op_id == PLX_OP_MAX_POOL2D_BACKWARD;
}

static bool is_backward_op(int32_t op_id)
{
    return op_id == PLX_OP_MAX_POOL2D_BACKWARD || op_id == PLX_OP_AVG_POOL2D_BACKWARD;
}

static void geom_of_call(pool_geom *g, const plx_op_call *call)
{
    const plx_pool2d_attrs *a = call->attrs;
    bool backward = is_backward_op(call->op_id);
    const int64_t *x = backward ? call->inputs[1].shape : call->inputs[0].shape;
    const int64_t *y = backward ? call->inputs[0].shape : call->outputs[0].shape;
    memcpy(g->x, x, sizeof g->x);
    memcpy(g->y, y, sizeof g->y);
    g->is_max = is_max_op(call->op_id);
    g->include_pad = a->count_include_pad != 0;
    g->beyond_padding = false;
    for (int i = 0; i < 2; i++) {
        int64_t kernel = a->kernel[i], stride = a->stride[i] != 0 ? a->stride[i] : a->kernel[i];
        int64_t dil = g->is_max ? a->dilation[i] : 1, pad = a->padding[i];
        int64_t span = dil * (kernel - 1) + 1;
        /* The last window ends at (out-1)*stride + span - pad in input
         * coordinates; that much right padding makes oneDNN's floor rule
         * give exactly PyTorch's output size. */
        int64_t needed = (y[2 + i] - 1) * stride + span - x[2 + i] - pad;
        g->kernel[i] = kernel;
        g->strides[i] = stride;
        g->dilation[i] = dil - 1;
        g->pad_l[i] = pad;
        g->pad_r[i] = needed > pad ? needed : pad;
        if (needed > pad)
            g->beyond_padding = true;
    }
}

static bool check_pool(const plx_op_call *call, char *reason, size_t cap)
{
    if (call->attrs == NULL) {
        snprintf(reason, cap, "pooling without attrs");
        return false;
    }
    pool_geom g;
    geom_of_call(&g, call);
    if (!g.is_max && g.include_pad && g.beyond_padding) {
        snprintf(reason, cap,
                 "avg pooling with count_include_pad and a ceil_mode window past the padding: oneDNN divides by "
                 "the full kernel area, PyTorch by the window clipped to the padded input");
        return false;
    }
    for (int i = 0; i < 2; i++)
        if ((g.x[2 + i] - (g.dilation[i] + 1) * (g.kernel[i] - 1) - 1 + g.pad_l[i] + g.pad_r[i]) / g.strides[i] + 1 !=
            g.y[2 + i]) {
            snprintf(reason, cap, "no padding reproduces PyTorch's output size along axis %d", 2 + i);
            return false;
        }
    return true;
}

static dnnl_alg_kind_t pool_alg(const pool_geom *g)
{
    if (g->is_max)
        return dnnl_pooling_max;
    return g->include_pad ? dnnl_pooling_avg_include_padding : dnnl_pooling_avg_exclude_padding;
}

static dnnl_status_t forward_pd(const one_state *s, const pool_geom *g, const dnnl_memory_desc_t *x_md,
                                const dnnl_memory_desc_t *y_md, dnnl_prop_kind_t prop, dnnl_primitive_desc_t *pd)
{
    dnnl_pooling_v2_desc_t d;
    dnnl_status_t st = dnnl_pooling_v2_forward_desc_init(&d, prop, pool_alg(g), x_md, y_md, g->strides, g->kernel,
                                                         g->dilation, g->pad_l, g->pad_r);
    if (st != dnnl_success)
        return st;
    return dnnl_primitive_desc_create(pd, &d, NULL, s->engine, NULL);
}

static dnnl_status_t build_forward(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    pool_geom g;
    geom_of_call(&g, call);
    dnnl_memory_desc_t x_md, y_md;
    dnnl_primitive_desc_t pd = NULL;
    one_step *step = NULL;
    dnnl_status_t st;
    if ((st = one_md_plain(&x_md, 4, g.x)) != dnnl_success || (st = one_md_plain(&y_md, 4, g.y)) != dnnl_success)
        return one_fail(st, reason, cap, "memory descriptor");
    if ((st = forward_pd(s, &g, &x_md, &y_md, dnnl_forward_inference, &pd)) != dnnl_success)
        return one_fail(st, reason, cap, "pooling forward descriptor");
    if ((st = one_plan_add_step(plan, pd, &step)) != dnnl_success)
        one_fail(st, reason, cap, "pooling forward primitive");
    else if ((st = one_step_bind(s, plan, step, pd, DNNL_ARG_SRC, ONE_ARG_INPUT, 0, &x_md)) != dnnl_success ||
             (st = one_step_bind(s, plan, step, pd, DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &y_md)) != dnnl_success)
        one_fail(st, reason, cap, "binding pooling arguments");
    dnnl_primitive_desc_destroy(pd);
    return st;
}

/* (dy, x) -> dx. Max: step 1 recomputes the forward into temporaries (y
 * and its workspace), step 2 routes dy through the workspace. */
static dnnl_status_t build_backward(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    pool_geom g;
    geom_of_call(&g, call);
    dnnl_memory_desc_t x_md, y_md;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_pooling_v2_desc_t d;
    one_step *fwd = NULL, *bwd = NULL;
    dnnl_status_t st;
    if ((st = one_md_plain(&x_md, 4, g.x)) != dnnl_success || (st = one_md_plain(&y_md, 4, g.y)) != dnnl_success)
        return one_fail(st, reason, cap, "memory descriptor");
    if ((st = forward_pd(s, &g, &x_md, &y_md, dnnl_forward_training, &hint)) != dnnl_success)
        return one_fail(st, reason, cap, "pooling forward (training) descriptor");
    st = dnnl_pooling_v2_backward_desc_init(&d, pool_alg(&g), &x_md, &y_md, g.strides, g.kernel, g.dilation, g.pad_l,
                                            g.pad_r);
    if (st == dnnl_success)
        st = dnnl_primitive_desc_create(&pd, &d, NULL, s->engine, hint);
    if (st != dnnl_success) {
        dnnl_primitive_desc_destroy(hint);
        return one_fail(st, reason, cap, "pooling backward descriptor");
    }
    if (g.is_max) {
        if ((st = one_plan_add_step(plan, hint, &fwd)) != dnnl_success)
            one_fail(st, reason, cap, "pooling forward (training) primitive");
        else if ((st = one_step_bind(s, plan, fwd, hint, DNNL_ARG_SRC, ONE_ARG_INPUT, 1, &x_md)) != dnnl_success ||
                 (st = one_step_bind(s, plan, fwd, hint, DNNL_ARG_DST, ONE_ARG_TEMP, 0, NULL)) != dnnl_success ||
                 (st = one_step_bind(s, plan, fwd, hint, DNNL_ARG_WORKSPACE, ONE_ARG_TEMP, 1, NULL)) != dnnl_success)
            one_fail(st, reason, cap, "binding pooling forward (training) arguments");
    }
    if (st == dnnl_success) {
        if ((st = one_plan_add_step(plan, pd, &bwd)) != dnnl_success)
            one_fail(st, reason, cap, "pooling backward primitive");
        else if ((st = one_step_bind(s, plan, bwd, pd, DNNL_ARG_DIFF_DST, ONE_ARG_INPUT, 0, &y_md)) != dnnl_success ||
                 (g.is_max &&
                  (st = one_step_bind(s, plan, bwd, pd, DNNL_ARG_WORKSPACE, ONE_ARG_TEMP, 1, NULL)) != dnnl_success) ||
                 (st = one_step_bind(s, plan, bwd, pd, DNNL_ARG_DIFF_SRC, ONE_ARG_OUTPUT, 0, &x_md)) != dnnl_success)
            one_fail(st, reason, cap, "binding pooling backward arguments");
    }
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_desc_destroy(hint);
    return st;
}

/* Bytes moved; max backward also recomputes the forward (x, y, workspace). */
static double estimate_pool(const plx_op_call *call)
{
    double bytes = one_call_bytes(call);
    if (call->op_id == PLX_OP_MAX_POOL2D_BACKWARD)
        bytes += (double)plx_desc_numel(&call->inputs[1]) * sizeof(float) +
                 2.0 * (double)plx_desc_numel(&call->inputs[0]) * sizeof(float);
    return POOL_CALL_NS + bytes / POOL_BYTES_PER_NS;
}

ONE_FAMILY_TABLE(pool,
                 {PLX_OP_MAX_POOL2D, sizeof(plx_pool2d_attrs), check_pool, build_forward, estimate_pool},
                 {PLX_OP_MAX_POOL2D_BACKWARD, sizeof(plx_pool2d_attrs), check_pool, build_backward, estimate_pool},
                 {PLX_OP_AVG_POOL2D, sizeof(plx_pool2d_attrs), check_pool, build_forward, estimate_pool},
                 {PLX_OP_AVG_POOL2D_BACKWARD, sizeof(plx_pool2d_attrs), check_pool, build_backward, estimate_pool});
