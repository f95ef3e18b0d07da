/* Core ops of the conv family: arity, attrs and shape inference. */
#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_conv2d_attrs conv2d_default = PLX_CONV2D_ATTRS_DEFAULT;
static const plx_conv2d_backward_attrs conv2d_backward_default = PLX_CONV2D_BACKWARD_ATTRS_DEFAULT;

/* The attributes both the forward and the backward structs carry. */
typedef struct conv_geometry {
    int32_t stride[2];
    int32_t padding[2];
    int32_t dilation[2];
    int32_t groups;
} conv_geometry;

static plx_status check_geometry(op_infer_args *args, const conv_geometry *g)
{
    for (int i = 0; i < 2; i++) {
        if (g->stride[i] < 1 || g->dilation[i] < 1 || g->padding[i] < 0)
            return infer_fail(args, PLX_INVALID_ARGUMENT,
                              "stride (%d,%d) and dilation (%d,%d) must be >= 1 and padding (%d,%d) >= 0",
                              (int)g->stride[0], (int)g->stride[1], (int)g->dilation[0], (int)g->dilation[1],
                              (int)g->padding[0], (int)g->padding[1]);
    }
    if (g->groups < 1)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "groups must be >= 1, got %d", (int)g->groups);
    return PLX_OK;
}

/* Checks x [N,C,H,W] against w [K,C/g,R,S] and computes y's [N,K,P,Q].
 * `x_role`/`w_role` name where each shape came from in messages. */
static plx_status conv_output_shape(op_infer_args *args, const conv_geometry *g, const tensor_meta *x,
                                    const char *x_role, const tensor_meta *w, const char *w_role, int64_t *y_dims)
{
    char sx[128], sw[128];
    meta_format(x, sx, sizeof sx);
    meta_format(w, sw, sizeof sw);
    if (x->dims[1] < 1 || x->dims[2] < 1 || x->dims[3] < 1)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "%s %s must have non-zero channels, height and width", x_role,
                          sx);
    if (w->dims[0] < 1 || w->dims[1] < 1 || w->dims[2] < 1 || w->dims[3] < 1)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "%s %s must have no zero dims", w_role, sw);
    if (x->dims[1] % g->groups != 0 || w->dims[0] % g->groups != 0)
        return infer_fail(args, PLX_INVALID_ARGUMENT,
                          "groups=%d must divide the input channels of %s %s and the output channels of %s %s",
                          (int)g->groups, x_role, sx, w_role, sw);
    if (w->dims[1] * g->groups != x->dims[1])
        return infer_fail(args, PLX_SHAPE_MISMATCH,
                          "channel mismatch: %s %s has %lld channels but %s %s with groups=%d expects %lld", x_role,
                          sx, (long long)x->dims[1], w_role, sw, (int)g->groups,
                          (long long)(w->dims[1] * g->groups));
    y_dims[0] = x->dims[0];
    y_dims[1] = w->dims[0];
    for (int i = 0; i < 2; i++) {
        int64_t padded = x->dims[2 + i] + 2 * (int64_t)g->padding[i];
        int64_t extent = (int64_t)g->dilation[i] * (w->dims[2 + i] - 1) + 1;
        if (extent > padded)
            return infer_fail(args, PLX_SHAPE_MISMATCH,
                              "kernel larger than padded input: %s %s with padding (%d,%d) and dilation (%d,%d) "
                              "vs %s %s (%s extent %lld > padded %lld)",
                              x_role, sx, (int)g->padding[0], (int)g->padding[1], (int)g->dilation[0],
                              (int)g->dilation[1], w_role, sw, i == 0 ? "height" : "width", (long long)extent,
                              (long long)padded);
        y_dims[2 + i] = (padded - extent) / g->stride[i] + 1;
    }
    return PLX_OK;
}

static plx_status infer_conv2d(op_infer_args *args)
{
    const plx_conv2d_attrs *a = args->attrs;
    conv_geometry g = {{a->stride[0], a->stride[1]}, {a->padding[0], a->padding[1]},
                       {a->dilation[0], a->dilation[1]}, a->groups};
    plx_status st;
    if ((st = infer_require_float(args, 0, "x")) != PLX_OK || (st = infer_require_same_dtype(args, 0, 1)) != PLX_OK ||
        (st = infer_require_ndim(args, 0, 4, "x")) != PLX_OK || (st = infer_require_ndim(args, 1, 4, "w")) != PLX_OK)
        return st;
    if ((st = check_geometry(args, &g)) != PLX_OK)
        return st;
    if (a->activation != PLX_ACTIVATION_NONE && a->activation != PLX_ACTIVATION_RELU)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "activation must be 0 (none) or 1 (relu), got %d",
                          (int)a->activation);
    int64_t y_dims[4];
    if ((st = conv_output_shape(args, &g, &args->inputs[0], "x", &args->inputs[1], "w", y_dims)) != PLX_OK)
        return st;
    if (args->n_inputs == 3) {
        const tensor_meta *bias = &args->inputs[2];
        char sb[128], sw[128];
        if ((st = infer_require_same_dtype(args, 0, 2)) != PLX_OK)
            return st;
        if (bias->ndim != 1 || bias->dims[0] != y_dims[1])
            return infer_fail(args, PLX_SHAPE_MISMATCH, "bias %s must be [%lld] to match w %s",
                              meta_format(bias, sb, sizeof sb), (long long)y_dims[1],
                              meta_format(&args->inputs[1], sw, sizeof sw));
    }
    meta_set(&args->outputs[0], args->inputs[0].dtype, 4, y_dims);
    return PLX_OK;
}

static conv_geometry backward_geometry(const plx_conv2d_backward_attrs *a)
{
    conv_geometry g = {{a->stride[0], a->stride[1]}, {a->padding[0], a->padding[1]},
                       {a->dilation[0], a->dilation[1]}, a->groups};
    return g;
}

/* dy must be exactly what the forward conv of x and w would produce. */
static plx_status check_dy(op_infer_args *args, const int64_t *y_dims)
{
    const tensor_meta *dy = &args->inputs[0];
    if (dy->dims[0] == y_dims[0] && dy->dims[1] == y_dims[1] && dy->dims[2] == y_dims[2] && dy->dims[3] == y_dims[3])
        return PLX_OK;
    char sdy[128];
    return infer_fail(args, PLX_SHAPE_MISMATCH, "dy %s does not match the forward output [%lld,%lld,%lld,%lld]",
                      meta_format(dy, sdy, sizeof sdy), (long long)y_dims[0], (long long)y_dims[1],
                      (long long)y_dims[2], (long long)y_dims[3]);
}

static plx_status check_out_shape(op_infer_args *args, const int64_t *out_shape, const char *what)
{
    for (int i = 0; i < 4; i++)
        if (out_shape[i] < 0 || (i > 0 && out_shape[i] == 0))
            return infer_fail(args, PLX_INVALID_ARGUMENT,
                              "attrs.out_shape [%lld,%lld,%lld,%lld] must be %s's shape (required, no zero dims "
                              "but the batch)",
                              (long long)out_shape[0], (long long)out_shape[1], (long long)out_shape[2],
                              (long long)out_shape[3], what);
    return PLX_OK;
}

static plx_status infer_conv2d_backward_data(op_infer_args *args)
{
    const plx_conv2d_backward_attrs *a = args->attrs;
    conv_geometry g = backward_geometry(a);
    plx_status st;
    if ((st = infer_require_float(args, 0, "dy")) != PLX_OK || (st = infer_require_same_dtype(args, 0, 1)) != PLX_OK ||
        (st = infer_require_ndim(args, 0, 4, "dy")) != PLX_OK || (st = infer_require_ndim(args, 1, 4, "w")) != PLX_OK)
        return st;
    if ((st = check_geometry(args, &g)) != PLX_OK || (st = check_out_shape(args, a->out_shape, "x")) != PLX_OK)
        return st;
    tensor_meta x;
    meta_set(&x, args->inputs[0].dtype, 4, a->out_shape);
    int64_t y_dims[4];
    if ((st = conv_output_shape(args, &g, &x, "x (attrs.out_shape)", &args->inputs[1], "w", y_dims)) != PLX_OK ||
        (st = check_dy(args, y_dims)) != PLX_OK)
        return st;
    meta_set(&args->outputs[0], args->inputs[0].dtype, 4, a->out_shape);
    return PLX_OK;
}

static plx_status infer_conv2d_backward_weight(op_infer_args *args)
{
    const plx_conv2d_backward_attrs *a = args->attrs;
    conv_geometry g = backward_geometry(a);
    plx_status st;
    if ((st = infer_require_float(args, 0, "dy")) != PLX_OK || (st = infer_require_same_dtype(args, 0, 1)) != PLX_OK ||
        (st = infer_require_ndim(args, 0, 4, "dy")) != PLX_OK || (st = infer_require_ndim(args, 1, 4, "x")) != PLX_OK)
        return st;
    if ((st = check_geometry(args, &g)) != PLX_OK || (st = check_out_shape(args, a->out_shape, "w")) != PLX_OK)
        return st;
    tensor_meta w;
    meta_set(&w, args->inputs[0].dtype, 4, a->out_shape);
    int64_t y_dims[4];
    if ((st = conv_output_shape(args, &g, &args->inputs[1], "x", &w, "w (attrs.out_shape)", y_dims)) != PLX_OK ||
        (st = check_dy(args, y_dims)) != PLX_OK)
        return st;
    meta_set(&args->outputs[0], args->inputs[0].dtype, 4, a->out_shape);
    return PLX_OK;
}

/* Each op is one multiply-add per (output element of y, weight tap of its
 * group): 2 * N*K*P*Q * C/g*R*S, whichever of the three is asked. */
static double conv_flops(const int64_t *y_dims, const int64_t *w_dims)
{
    return 2.0 * (double)y_dims[0] * (double)y_dims[1] * (double)y_dims[2] * (double)y_dims[3] *
           (double)w_dims[1] * (double)w_dims[2] * (double)w_dims[3];
}

static double work_conv2d(const op_infer_args *args)
{
    return conv_flops(args->outputs[0].dims, args->inputs[1].dims);
}

static double work_conv2d_backward_data(const op_infer_args *args)
{
    return conv_flops(args->inputs[0].dims, args->inputs[1].dims);
}

static double work_conv2d_backward_weight(const op_infer_args *args)
{
    return conv_flops(args->inputs[0].dims, args->outputs[0].dims);
}


/* conv2d: dx by conv2d_backward_data, dw by conv2d_backward_weight (both
 * told the shape they produce), dbias by summing dy over N, H, W. With a
 * fused relu, dy first goes through relu_grad on the output (y > 0 exactly
 * where the pre-activation is > 0). */
static plx_status grad_conv2d(grad_ctx *gc, const graph_node *n, const int32_t *dy_in, const bool *need,
                              int32_t *dx)
{
    if (dy_in[0] < 0)
        return PLX_OK;
    const plx_conv2d_attrs *a = (const plx_conv2d_attrs *)n->attrs;
    int32_t dy[1] = {dy_in[0]};
    if (a->activation == PLX_ACTIVATION_RELU) {
        int32_t in[2] = {dy_in[0], n->out[0]};
        dy[0] = grad_op(gc, PLX_OP_RELU_GRAD, NULL, in, 2);
        if (dy[0] < 0)
            return grad_status(gc);
    }
    plx_conv2d_backward_attrs b = PLX_CONV2D_BACKWARD_ATTRS_DEFAULT;
    for (int k = 0; k < 2; k++) {
        b.stride[k] = a->stride[k];
        b.padding[k] = a->padding[k];
        b.dilation[k] = a->dilation[k];
    }
    b.groups = a->groups;
    for (int32_t side = 0; side < 2; side++) {
        if (!need[side])
            continue;
        const tensor_meta *m = grad_meta(gc, n->in[side]);
        for (int k = 0; k < 4; k++)
            b.out_shape[k] = m->dims[k];
        int32_t in[2] = {dy[0], n->in[side == 0 ? 1 : 0]};
        dx[side] = grad_op(gc, side == 0 ? PLX_OP_CONV2D_BACKWARD_DATA : PLX_OP_CONV2D_BACKWARD_WEIGHT, &b, in, 2);
        if (dx[side] < 0)
            return grad_status(gc);
    }
    if (n->n_in > 2 && need[2]) {
        plx_reduce_attrs r = {sizeof r, 3, {0, 2, 3}, 0};
        dx[2] = grad_op(gc, PLX_OP_SUM, &r, &dy[0], 1);
        if (dx[2] < 0)
            return grad_status(gc);
    }
    return PLX_OK;
}

const op_def op_defs_conv[] = {
    {PLX_OP_CONV2D, 2, 3, 1, 0, sizeof(plx_conv2d_attrs), &conv2d_default, infer_conv2d, work_conv2d, grad_conv2d},
    {PLX_OP_CONV2D_BACKWARD_DATA, 2, 2, 1, 0, sizeof(plx_conv2d_backward_attrs), &conv2d_backward_default,
     infer_conv2d_backward_data, work_conv2d_backward_data},
    {PLX_OP_CONV2D_BACKWARD_WEIGHT, 2, 2, 1, 0, sizeof(plx_conv2d_backward_attrs), &conv2d_backward_default,
     infer_conv2d_backward_weight, work_conv2d_backward_weight},
};
const size_t op_defs_conv_count = sizeof(op_defs_conv) / sizeof(op_defs_conv[0]);
