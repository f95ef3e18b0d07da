/*
 * onednn kernels of the pool family: core.max_pool2d, core.avg_pool2d and
 * their backward ops, NCHW, f32 or bf16, through oneDNN's pooling_v2
 * (pooling in 3.x), which has dilation (oneDNN's is PyTorch's minus one).
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
/* Memory-bound: bytes read and written per ns on one thread, measured on
 * [8,64,56,56] 2x2/2: max forward 9.2, avg backward 15.7, and max backward
 * (counting the forward it recomputes) 3 to 6 over runs: its scatter through the
 * workspace is slow. */
#define POOL_BYTES_PER_NS 10.0
#define POOL_AVG_BACKWARD_BYTES_PER_NS 15.0
#define POOL_MAX_BACKWARD_BYTES_PER_NS 4.5

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

static dnnl_status_t forward_pd(const one_state *s, const pool_geom *g, one_md_ref x_md, one_md_ref y_md,
                                dnnl_prop_kind_t prop, dnnl_primitive_desc_t *pd)
{
    return one_pool_fwd_pd(pd, s->engine, prop, pool_alg(g), x_md, y_md, g->strides, g->kernel, g->dilation, g->pad_l,
                           g->pad_r);
}

/* x and y as the call holds them, and y in the layout the forward
 * primitive picks (the same as x's: no reorder unless the call's y is in
 * another layout). */
enum { X_MD, Y_MD, Y_ANY, N_MDS };

/* Forward calls may hold x and y in the plugin's own layout (a chain the
 * executor keeps in it); backward ones are plain. */
static dnnl_status_t make_mds(const pool_geom *g, const plx_op_call *call, dnnl_data_type_t dt, one_md *m)
{
    dnnl_status_t st = one_md_user(&m[X_MD], call, 0, 4, g->x, dt);
    if (st == dnnl_success)
        st = one_md_user(&m[Y_MD], call, call->n_inputs, 4, g->y, dt);
    return st != dnnl_success ? st : one_md_any(&m[Y_ANY], 4, g->y, dt);
}

static dnnl_status_t build_forward(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    pool_geom g;
    geom_of_call(&g, call);
    one_md m[N_MDS];
    one_mds_clear(m, N_MDS);
    dnnl_primitive_desc_t pd = NULL;
    const one_binding args[] = {{DNNL_ARG_SRC, ONE_ARG_INPUT, 0, &m[X_MD]},
                                {DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &m[Y_MD]}};
    dnnl_status_t st = make_mds(&g, call, one_dt(&call->inputs[0]), m);
    if (st != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = forward_pd(s, &g, one_ref(&m[X_MD]), one_ref(&m[Y_ANY]), dnnl_forward_inference, &pd)) !=
             dnnl_success)
        one_fail(st, reason, cap, "pooling forward descriptor");
    else
        st = one_plan_add_bound_step(s, plan, pd, args, ONE_COUNT_OF(args), "pooling forward", reason, cap);
    one_pd_destroy(pd);
    one_mds_release(m, N_MDS);
    return st;
}

/* (dy, x) -> dx. Max: step 1 recomputes the forward into temporaries (y
 * and its workspace), step 2 routes dy through the workspace. */
static dnnl_status_t build_backward(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    pool_geom g;
    geom_of_call(&g, call);
    one_md m[N_MDS];
    one_mds_clear(m, N_MDS);
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    const one_binding fwd_args[] = {{DNNL_ARG_SRC, ONE_ARG_INPUT, 1, &m[X_MD]},
                                    {DNNL_ARG_DST, ONE_ARG_TEMP, 0, NULL},
                                    {DNNL_ARG_WORKSPACE, ONE_ARG_TEMP, 1, NULL}};
    const one_binding bwd_args[] = {{DNNL_ARG_DIFF_DST, ONE_ARG_INPUT, 0, &m[Y_MD]},
                                    {g.is_max ? DNNL_ARG_WORKSPACE : ONE_NO_ARG, ONE_ARG_TEMP, 1, NULL},
                                    {DNNL_ARG_DIFF_SRC, ONE_ARG_OUTPUT, 0, &m[X_MD]}};
    dnnl_status_t st = make_mds(&g, call, one_dt(&call->inputs[0]), m);
    if (st != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = forward_pd(s, &g, one_ref(&m[X_MD]), one_ref(&m[Y_MD]), dnnl_forward_training, &hint)) !=
             dnnl_success)
        one_fail(st, reason, cap, "pooling forward (training) descriptor");
    else if ((st = one_pool_bwd_pd(&pd, s->engine, pool_alg(&g), one_ref(&m[X_MD]), one_ref(&m[Y_MD]), g.strides,
                                   g.kernel, g.dilation, g.pad_l, g.pad_r, hint)) != dnnl_success)
        one_fail(st, reason, cap, "pooling backward descriptor");
    else {
        if (g.is_max)
            st = one_plan_add_bound_step(s, plan, hint, fwd_args, ONE_COUNT_OF(fwd_args), "pooling forward (training)",
                                         reason, cap);
        if (st == dnnl_success)
            st =
                one_plan_add_bound_step(s, plan, pd, bwd_args, ONE_COUNT_OF(bwd_args), "pooling backward", reason, cap);
    }
    one_pd_destroy(pd);
    one_pd_destroy(hint);
    one_mds_release(m, N_MDS);
    return st;
}

/* Bytes moved; max backward also recomputes the forward (x, y, workspace). */
static double estimate_pool(const one_state *s, const plx_op_call *call)
{
    (void)s;
    double bytes = one_call_bytes(call);
    if (call->op_id == PLX_OP_MAX_POOL2D_BACKWARD) {
        bytes += ((double)plx_desc_numel(&call->inputs[1]) + 2.0 * (double)plx_desc_numel(&call->inputs[0])) *
                 (double)plx_dtype_size(call->inputs[0].dtype);
        return POOL_CALL_NS + bytes / POOL_MAX_BACKWARD_BYTES_PER_NS;
    }
    if (call->op_id == PLX_OP_AVG_POOL2D_BACKWARD)
        return POOL_CALL_NS + bytes / POOL_AVG_BACKWARD_BYTES_PER_NS;
    return POOL_CALL_NS + bytes / POOL_BYTES_PER_NS;
}

ONE_FAMILY_TABLE(pool,
                 {PLX_OP_MAX_POOL2D, sizeof(plx_pool2d_attrs), ONE_DT_F32 | ONE_DT_BF16, check_pool, build_forward,
                  estimate_pool},
                 {PLX_OP_MAX_POOL2D_BACKWARD, sizeof(plx_pool2d_attrs), ONE_DT_F32 | ONE_DT_BF16, check_pool,
                  build_backward, estimate_pool},
                 {PLX_OP_AVG_POOL2D, sizeof(plx_pool2d_attrs), ONE_DT_F32 | ONE_DT_BF16, check_pool, build_forward,
                  estimate_pool},
                 {PLX_OP_AVG_POOL2D_BACKWARD, sizeof(plx_pool2d_attrs), ONE_DT_F32 | ONE_DT_BF16, check_pool,
                  build_backward, estimate_pool});
