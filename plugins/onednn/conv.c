/*
 * onednn kernels of the conv family: core.conv2d (with optional bias),
 * core.conv2d_backward_data and core.conv2d_backward_weight, NCHW.
 *
 * Mapping to oneDNN: grouped weights [K, C/g, R, S] are the same memory as
 * oneDNN's 5-D goihw [g, K/g, C/g, R, S] (depthwise is g = C); PyTorch's
 * dilation d is oneDNN's d - 1; padding is symmetric, and PyTorch's floor
 * output size is exactly oneDNN's consistency rule with padding_r =
 * padding_l. The primitive picks its own (usually blocked) layouts for
 * src, weights and dst; the plan reorders at the edges. The bias gradient
 * is not computed here: Plexus sums dy for it as a separate op. A fused
 * relu (plx_conv2d_attrs.activation, ABI 1.2) is an eltwise post-op of the
 * forward primitive, applied after the bias in the same pass.
 */
#include <stdio.h>
#include <string.h>

#include "onednn.h"

/* Fixed cost of a call: primitive execution, reorders' setup. */
#define CONV_CALL_NS 1000.0
/* Sustained f32 rate of oneDNN's convolutions on one thread, reorders
 * included (measured: a 3x3, 64 -> 64 channel, 8x28x28 convolution runs at
 * 56 GFLOP/s forward and 64 backward; [2,16,14,14] 3x3 at 86). */
#define CONV_FLOPS_PER_NS 60.0
/* Reorders to and from blocked layouts touch every tensor about once more. */
#define CONV_REORDER_BYTES_PER_NS 20.0
#define CONV_BF16_AMX_SPEEDUP 3.5

static const plx_conv2d_attrs conv_default = PLX_CONV2D_ATTRS_DEFAULT;

/* The geometry shared by the three ops, whichever tensor gives which dims. */
typedef struct conv_geom {
    int64_t x[4]; /* N, C, H, W */
    int64_t w[4]; /* K, C/g, R, S */
    int64_t y[4]; /* N, K, P, Q */
    int32_t groups;
    dnnl_dims_t strides, dilates, padding;
} conv_geom;

static void geom_from(conv_geom *g, const int32_t *stride, const int32_t *padding, const int32_t *dilation,
                      int32_t groups, const int64_t *x, const int64_t *w, const int64_t *y)
{
    memcpy(g->x, x, sizeof g->x);
    memcpy(g->w, w, sizeof g->w);
    memcpy(g->y, y, sizeof g->y);
    g->groups = groups > 0 ? groups : 1;
    for (int i = 0; i < 2; i++) {
        g->strides[i] = stride[i];
        g->dilates[i] = dilation[i] - 1;
        g->padding[i] = padding[i];
    }
}

static void geom_of_call(conv_geom *g, const plx_op_call *call)
{
    if (call->op_id == PLX_OP_CONV2D) {
        const plx_conv2d_attrs *a = call->attrs != NULL ? call->attrs : &conv_default;
        geom_from(g, a->stride, a->padding, a->dilation, a->groups, call->inputs[0].shape, call->inputs[1].shape,
                  call->outputs[0].shape);
        return;
    }
    const plx_conv2d_backward_attrs *a = call->attrs;
    if (call->op_id == PLX_OP_CONV2D_BACKWARD_DATA) /* (dy, w) -> dx */
        geom_from(g, a->stride, a->padding, a->dilation, a->groups, call->outputs[0].shape, call->inputs[1].shape,
                  call->inputs[0].shape);
    else /* (dy, x) -> dw */
        geom_from(g, a->stride, a->padding, a->dilation, a->groups, call->inputs[1].shape, call->outputs[0].shape,
                  call->inputs[0].shape);
}

/* The user's (plain) weights descriptor: oihw, or goihw when grouped. */
static dnnl_status_t weights_md(const conv_geom *g, bool plain, dnnl_data_type_t dt, one_md *md)
{
    if (g->groups == 1)
        return plain ? one_md_plain(md, 4, g->w, dt) : one_md_any(md, 4, g->w, dt);
    int64_t dims[5] = {g->groups, g->w[0] / g->groups, g->w[1], g->w[2], g->w[3]};
    return plain ? one_md_plain(md, 5, dims, dt) : one_md_any(md, 5, dims, dt);
}

enum { X_USER, W_USER, Y_USER, B_USER, X_ANY, W_ANY, Y_ANY, N_MDS };

/* x and y as the call holds them: plain, or (forward only) the plugin's
 * own layout where the executor keeps a chain in it. */
static dnnl_status_t make_mds(const conv_geom *g, const plx_op_call *call, dnnl_data_type_t dt, one_md *m)
{
    dnnl_status_t st;
    int64_t k = g->w[0];
    bool fwd = call->op_id == PLX_OP_CONV2D;
    if ((st = fwd ? one_md_user(&m[X_USER], call, 0, 4, g->x, dt) : one_md_plain(&m[X_USER], 4, g->x, dt)) !=
            dnnl_success ||
        (st = fwd ? one_md_user(&m[Y_USER], call, call->n_inputs, 4, g->y, dt)
                  : one_md_plain(&m[Y_USER], 4, g->y, dt)) != dnnl_success ||
        (st = weights_md(g, true, dt, &m[W_USER])) != dnnl_success ||
        (st = one_md_plain(&m[B_USER], 1, &k, dt)) != dnnl_success ||
        (st = one_md_any(&m[X_ANY], 4, g->x, dt)) != dnnl_success ||
        (st = one_md_any(&m[Y_ANY], 4, g->y, dt)) != dnnl_success ||
        (st = weights_md(g, false, dt, &m[W_ANY])) != dnnl_success)
        return st;
    return dnnl_success;
}

#define MD(i) one_ref(&m[i])

/* Forward primitive descriptor (also the hint the backward ones need). */
static dnnl_status_t forward_pd(const one_state *s, const conv_geom *g, const one_md *m, bool with_bias,
                                dnnl_prop_kind_t prop, bool relu, dnnl_primitive_desc_t *pd)
{
    return one_conv_fwd_pd(pd, s->engine, prop, MD(X_ANY), MD(W_ANY), with_bias ? MD(B_USER) : NULL, MD(Y_ANY),
                           g->strides, g->dilates, g->padding, g->padding, relu);
}

/* The fused activation of a forward call (plx_conv2d_attrs.activation,
 * ABI 1.2; headers before it have none). */
static int32_t activation_of(const plx_op_call *call)
{
#if PLX_ABI_MINOR >= 2
    if (call->op_id == PLX_OP_CONV2D && call->attrs != NULL)
        return ((const plx_conv2d_attrs *)call->attrs)->activation;
#else
    (void)call;
#endif
    return 0;
}

static dnnl_status_t build_conv2d(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    conv_geom g;
    one_md m[N_MDS];
    one_mds_clear(m, N_MDS);
    geom_of_call(&g, call);
    bool with_bias = call->n_inputs > 2;
    dnnl_primitive_desc_t pd = NULL;
    const one_binding args[] = {{DNNL_ARG_SRC, ONE_ARG_INPUT, 0, &m[X_USER]},
                                {DNNL_ARG_WEIGHTS, ONE_ARG_INPUT, 1, &m[W_USER]},
                                {with_bias ? DNNL_ARG_BIAS : ONE_NO_ARG, ONE_ARG_INPUT, 2, &m[B_USER]},
                                {DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &m[Y_USER]}};
    dnnl_status_t st = make_mds(&g, call, one_dt(&call->inputs[0]), m);
    if (st != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = forward_pd(s, &g, m, with_bias, dnnl_forward_inference, activation_of(call) != 0, &pd)) !=
             dnnl_success)
        one_fail(st, reason, cap, "convolution forward descriptor");
    else
        st = one_plan_add_bound_step(s, plan, pd, args, ONE_COUNT_OF(args), "convolution forward", reason, cap);
    one_pd_destroy(pd);
    one_mds_release(m, N_MDS);
    return st;
}

/* The backward-data (data) or backward-weights primitive descriptor. */
static dnnl_status_t backward_pd(const one_state *s, const conv_geom *g, const one_md *m, bool data,
                                 const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd)
{
    if (data)
        return one_conv_bwd_data_pd(pd, s->engine, MD(X_ANY), MD(W_ANY), MD(Y_ANY), g->strides, g->dilates, g->padding,
                                    g->padding, hint);
    return one_conv_bwd_weights_pd(pd, s->engine, MD(X_ANY), MD(W_ANY), NULL, MD(Y_ANY), g->strides, g->dilates,
                                   g->padding, g->padding, hint);
}

/* (dy, w) -> dx or (dy, x) -> dw: one backward primitive, made with a
 * training forward as its hint. */
static dnnl_status_t build_conv2d_backward(one_state *s, const plx_op_call *call, one_plan *plan, char *reason,
                                           size_t cap)
{
    const bool data = call->op_id == PLX_OP_CONV2D_BACKWARD_DATA;
    conv_geom g;
    one_md m[N_MDS];
    one_mds_clear(m, N_MDS);
    geom_of_call(&g, call);
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    const one_binding data_args[] = {{DNNL_ARG_DIFF_DST, ONE_ARG_INPUT, 0, &m[Y_USER]},
                                     {DNNL_ARG_WEIGHTS, ONE_ARG_INPUT, 1, &m[W_USER]},
                                     {DNNL_ARG_DIFF_SRC, ONE_ARG_OUTPUT, 0, &m[X_USER]}};
    const one_binding weights_args[] = {{DNNL_ARG_DIFF_DST, ONE_ARG_INPUT, 0, &m[Y_USER]},
                                        {DNNL_ARG_SRC, ONE_ARG_INPUT, 1, &m[X_USER]},
                                        {DNNL_ARG_DIFF_WEIGHTS, ONE_ARG_OUTPUT, 0, &m[W_USER]}};
    dnnl_status_t st = make_mds(&g, call, one_dt(&call->inputs[0]), m);
    if (st != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = forward_pd(s, &g, m, false, dnnl_forward_training, false, &hint)) != dnnl_success)
        one_fail(st, reason, cap, "convolution forward (hint) descriptor");
    else if ((st = backward_pd(s, &g, m, data, hint, &pd)) != dnnl_success)
        one_fail(st, reason, cap,
                 data ? "convolution backward-data descriptor" : "convolution backward-weights descriptor");
    else if (data)
        st = one_plan_add_bound_step(s, plan, pd, data_args, ONE_COUNT_OF(data_args), "convolution backward-data",
                                     reason, cap);
    else
        st = one_plan_add_bound_step(s, plan, pd, weights_args, ONE_COUNT_OF(weights_args),
                                     "convolution backward-weights", reason, cap);
    one_pd_destroy(pd);
    one_pd_destroy(hint);
    one_mds_release(m, N_MDS);
    return st;
}

static bool check_conv(const plx_op_call *call, char *reason, size_t cap)
{
    conv_geom g;
    int32_t activation = activation_of(call);
#if PLX_ABI_MINOR >= 2
    if (activation != PLX_ACTIVATION_NONE && activation != PLX_ACTIVATION_RELU) {
        snprintf(reason, cap, "fused activation %d unknown (relu only)", (int)activation);
        return false;
    }
#else
    (void)activation;
#endif
    if (call->op_id != PLX_OP_CONV2D && call->attrs == NULL) {
        snprintf(reason, cap, "backward convolution without attrs");
        return false;
    }
    geom_of_call(&g, call);
    if (g.w[0] % g.groups != 0) {
        snprintf(reason, cap, "K=%lld not divisible by groups=%d", (long long)g.w[0], (int)g.groups);
        return false;
    }
    return true;
}

/* Same multiply-adds for all three: 2 * N*K*P*Q * C/g*R*S. */
static double estimate_conv(const one_state *s, const plx_op_call *call)
{
    conv_geom g;
    geom_of_call(&g, call);
    double flops = 2.0 * (double)g.y[0] * (double)g.y[1] * (double)g.y[2] * (double)g.y[3] * (double)g.w[1] *
                   (double)g.w[2] * (double)g.w[3];
    return CONV_CALL_NS + flops / (CONV_FLOPS_PER_NS * one_bf16_speedup(s, call, CONV_BF16_AMX_SPEEDUP)) +
           one_call_bytes(call) / CONV_REORDER_BYTES_PER_NS;
}

ONE_FAMILY_TABLE(conv,
                 {PLX_OP_CONV2D, sizeof(plx_conv2d_attrs), ONE_DT_F32 | ONE_DT_BF16, check_conv, build_conv2d,
                  estimate_conv},
                 {PLX_OP_CONV2D_BACKWARD_DATA, sizeof(plx_conv2d_backward_attrs), ONE_DT_F32 | ONE_DT_BF16, check_conv,
                  build_conv2d_backward, estimate_conv},
                 {PLX_OP_CONV2D_BACKWARD_WEIGHT, sizeof(plx_conv2d_backward_attrs), ONE_DT_F32 | ONE_DT_BF16,
                  check_conv, build_conv2d_backward, estimate_conv});
