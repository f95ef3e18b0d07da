/* Core ops of the pool family: arity, attrs and shape inference. */
#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_pool2d_attrs pool2d_default = PLX_POOL2D_ATTRS_DEFAULT;

/* Output length of one pooled axis as PyTorch computes it (its
 * pooling_output_shape): floor, or ceil where the last window must still
 * start inside the input or its left padding. */
static int64_t pooled_length(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dilation,
                             int32_t ceil_mode)
{
    int64_t span = in + 2 * pad - dilation * (kernel - 1) - 1;
    if (span < 0)
        return 0;
    int64_t out = (span + (ceil_mode ? stride - 1 : 0)) / stride + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad)
        out--;
    return out;
}

/* Validates x and the attrs of max (is_max) or avg pooling and computes the
 * pooled output dims. */
static plx_status pool_output_shape(op_infer_args *args, int32_t x_index, bool is_max, int64_t *y_dims)
{
    const plx_pool2d_attrs *a = args->attrs;
    const tensor_meta *x = &args->inputs[x_index];
    char sx[128];
    plx_status st;
    if ((st = infer_require_float(args, x_index, "x")) != PLX_OK ||
        (st = infer_require_ndim(args, x_index, 4, "x")) != PLX_OK)
        return st;
    meta_format(x, sx, sizeof sx);
    if (x->dims[1] < 1 || x->dims[2] < 1 || x->dims[3] < 1)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "x %s must have non-zero channels, height and width", sx);
    y_dims[0] = x->dims[0];
    y_dims[1] = x->dims[1];
    for (int i = 0; i < 2; i++) {
        int32_t kernel = a->kernel[i], stride = a->stride[i] == 0 ? kernel : a->stride[i], pad = a->padding[i];
        int32_t dilation = is_max ? a->dilation[i] : 1;
        if (kernel < 1)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "kernel (%d,%d) must be > 0 (it is required)",
                              (int)a->kernel[0], (int)a->kernel[1]);
        if (stride < 0)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "stride (%d,%d) must be > 0 (0 means = kernel)",
                              (int)a->stride[0], (int)a->stride[1]);
        if (dilation < 1)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "dilation (%d,%d) must be >= 1", (int)a->dilation[0],
                              (int)a->dilation[1]);
        if (pad < 0 || pad > kernel / 2)
            return infer_fail(args, PLX_INVALID_ARGUMENT,
                              "padding (%d,%d) must be >= 0 and at most half the kernel (%d,%d)", (int)a->padding[0],
                              (int)a->padding[1], (int)a->kernel[0], (int)a->kernel[1]);
        int64_t out = pooled_length(x->dims[2 + i], kernel, stride, pad, dilation, a->ceil_mode);
        if (out < 1)
            return infer_fail(args, PLX_SHAPE_MISMATCH,
                              "kernel larger than padded input: x %s with kernel (%d,%d), padding (%d,%d), "
                              "dilation (%d,%d) gives an empty output",
                              sx, (int)a->kernel[0], (int)a->kernel[1], (int)a->padding[0], (int)a->padding[1],
                              is_max ? (int)a->dilation[0] : 1, is_max ? (int)a->dilation[1] : 1);
        y_dims[2 + i] = out;
    }
    return PLX_OK;
}

static plx_status infer_pool(op_infer_args *args, bool is_max)
{
    int64_t y_dims[4];
    plx_status st = pool_output_shape(args, 0, is_max, y_dims);
    if (st != PLX_OK)
        return st;
    meta_set(&args->outputs[0], args->inputs[0].dtype, 4, y_dims);
    return PLX_OK;
}

/* (dy, x) -> dx: dy must have the pooled shape of x. */
static plx_status infer_pool_backward(op_infer_args *args, bool is_max)
{
    plx_status st;
    if ((st = infer_require_float(args, 0, "dy")) != PLX_OK || (st = infer_require_same_dtype(args, 0, 1)) != PLX_OK)
        return st;
    int64_t y_dims[4];
    if ((st = pool_output_shape(args, 1, is_max, y_dims)) != PLX_OK)
        return st;
    tensor_meta y;
    meta_set(&y, args->inputs[0].dtype, 4, y_dims);
    if (!meta_same_shape(&y, &args->inputs[0])) {
        char sdy[128], sx[128], sy[128];
        return infer_fail(args, PLX_SHAPE_MISMATCH, "dy %s does not match the pooled shape %s of x %s",
                          meta_format(&args->inputs[0], sdy, sizeof sdy), meta_format(&y, sy, sizeof sy),
                          meta_format(&args->inputs[1], sx, sizeof sx));
    }
    meta_set(&args->outputs[0], args->inputs[0].dtype, 4, args->inputs[1].dims);
    return PLX_OK;
}

static plx_status infer_max_pool2d(op_infer_args *args)
{
    return infer_pool(args, true);
}

static plx_status infer_avg_pool2d(op_infer_args *args)
{
    return infer_pool(args, false);
}

static plx_status infer_max_pool2d_backward(op_infer_args *args)
{
    return infer_pool_backward(args, true);
}

static plx_status infer_avg_pool2d_backward(op_infer_args *args)
{
    return infer_pool_backward(args, false);
}

static plx_status infer_global_avg_pool2d(op_infer_args *args)
{
    plx_status st;
    const tensor_meta *x = &args->inputs[0];
    if ((st = infer_require_float(args, 0, "x")) != PLX_OK || (st = infer_require_ndim(args, 0, 4, "x")) != PLX_OK)
        return st;
    if (x->dims[1] < 1 || x->dims[2] < 1 || x->dims[3] < 1) {
        char sx[128];
        return infer_fail(args, PLX_SHAPE_MISMATCH, "x %s must have non-zero channels, height and width",
                          meta_format(x, sx, sizeof sx));
    }
    int64_t y_dims[4] = {x->dims[0], x->dims[1], 1, 1};
    meta_set(&args->outputs[0], x->dtype, 4, y_dims);
    return PLX_OK;
}

/* (dy [N,C,1,1], x) -> dx. */
static plx_status infer_global_avg_pool2d_backward(op_infer_args *args)
{
    plx_status st;
    const tensor_meta *dy = &args->inputs[0], *x = &args->inputs[1];
    if ((st = infer_require_float(args, 0, "dy")) != PLX_OK || (st = infer_require_same_dtype(args, 0, 1)) != PLX_OK ||
        (st = infer_require_ndim(args, 0, 4, "dy")) != PLX_OK || (st = infer_require_ndim(args, 1, 4, "x")) != PLX_OK)
        return st;
    char sdy[128], sx[128];
    meta_format(dy, sdy, sizeof sdy);
    meta_format(x, sx, sizeof sx);
    if (x->dims[1] < 1 || x->dims[2] < 1 || x->dims[3] < 1)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "x %s must have non-zero channels, height and width", sx);
    if (dy->dims[0] != x->dims[0] || dy->dims[1] != x->dims[1] || dy->dims[2] != 1 || dy->dims[3] != 1)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "dy %s must be [%lld,%lld,1,1] for x %s", sdy,
                          (long long)x->dims[0], (long long)x->dims[1], sx);
    meta_set(&args->outputs[0], dy->dtype, 4, x->dims);
    return PLX_OK;
}

/* One compare or add per window tap of every output element. */
static double pool_work(const op_infer_args *args, const tensor_meta *pooled)
{
    const plx_pool2d_attrs *a = args->attrs;
    return (double)meta_numel(pooled) * (double)a->kernel[0] * (double)a->kernel[1];
}

static double work_pool2d(const op_infer_args *args)
{
    return pool_work(args, &args->outputs[0]);
}

static double work_pool2d_backward(const op_infer_args *args)
{
    return pool_work(args, &args->inputs[0]) + (double)meta_numel(&args->outputs[0]);
}

static double work_global_avg_pool2d(const op_infer_args *args)
{
    return (double)meta_numel(&args->inputs[0]);
}

static double work_global_avg_pool2d_backward(const op_infer_args *args)
{
    return (double)meta_numel(&args->outputs[0]);
}


/* Pooling: each forward op's backward op takes (dy, x) and its attrs. */
static plx_status grad_pool(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    (void)need;
    if (dy[0] < 0)
        return PLX_OK;
    int32_t op = n->op_id == PLX_OP_MAX_POOL2D   ? PLX_OP_MAX_POOL2D_BACKWARD
                 : n->op_id == PLX_OP_AVG_POOL2D ? PLX_OP_AVG_POOL2D_BACKWARD
                                                 : PLX_OP_GLOBAL_AVG_POOL2D_BACKWARD;
    int32_t in[2] = {dy[0], n->in[0]};
    dx[0] = grad_op(gc, op, n->attrs, in, 2);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

const op_def op_defs_pool[] = {
    {PLX_OP_MAX_POOL2D, 1, 1, 1, 0, sizeof(plx_pool2d_attrs), &pool2d_default, infer_max_pool2d, work_pool2d, grad_pool},
    {PLX_OP_MAX_POOL2D_BACKWARD, 2, 2, 1, 0, sizeof(plx_pool2d_attrs), &pool2d_default, infer_max_pool2d_backward,
     work_pool2d_backward},
    {PLX_OP_AVG_POOL2D, 1, 1, 1, 0, sizeof(plx_pool2d_attrs), &pool2d_default, infer_avg_pool2d, work_pool2d, grad_pool},
    {PLX_OP_AVG_POOL2D_BACKWARD, 2, 2, 1, 0, sizeof(plx_pool2d_attrs), &pool2d_default, infer_avg_pool2d_backward,
     work_pool2d_backward},
    {PLX_OP_GLOBAL_AVG_POOL2D, 1, 1, 1, 0, 0, NULL, infer_global_avg_pool2d, work_global_avg_pool2d, grad_pool},
    {PLX_OP_GLOBAL_AVG_POOL2D_BACKWARD, 2, 2, 1, 0, 0, NULL, infer_global_avg_pool2d_backward,
     work_global_avg_pool2d_backward},
};
const size_t op_defs_pool_count = sizeof(op_defs_pool) / sizeof(op_defs_pool[0]);
