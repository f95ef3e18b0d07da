/* Core ops of the softmax family (softmax, log_softmax and their backward
 * ops): arity, attrs and shape inference. */
#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_softmax_attrs softmax_default = PLX_SOFTMAX_ATTRS_DEFAULT;

/* Softmax of a 0-d tensor has no axis to run along: PyTorch treats a scalar
 * as a 1-element vector, and so do we (axis 0 or -1). */
static plx_status check_axis(op_infer_args *args, int32_t x_index)
{
    const plx_softmax_attrs *a = args->attrs;
    const tensor_meta *x = &args->inputs[x_index];
    int32_t axis = 0;
    plx_status st = infer_axis(args, a->axis, x->ndim > 0 ? x->ndim : 1, &axis);
    if (st != PLX_OK) {
        char b[128];
        return infer_fail(args, PLX_INVALID_ARGUMENT, "axis %d is out of range for x %s", (int)a->axis,
                          meta_format(x, b, sizeof b));
    }
    return PLX_OK;
}

/* x -> y */
static plx_status infer_softmax(op_infer_args *args)
{
    plx_status st = infer_require_float(args, 0, "x");
    if (st == PLX_OK)
        st = check_axis(args, 0);
    if (st != PLX_OK)
        return st;
    const tensor_meta *x = &args->inputs[0];
    meta_set(&args->outputs[0], x->dtype, x->ndim, x->dims);
    return PLX_OK;
}

/* (dy, y) -> dx */
static plx_status infer_softmax_backward(op_infer_args *args)
{
    plx_status st = infer_require_float(args, 0, "dy");
    if (st == PLX_OK)
        st = infer_require_float(args, 1, "y");
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, 0, 1);
    if (st == PLX_OK)
        st = infer_require_same_shape(args, 0, 1);
    if (st == PLX_OK)
        st = check_axis(args, 1);
    if (st != PLX_OK)
        return st;
    const tensor_meta *y = &args->inputs[1];
    meta_set(&args->outputs[0], y->dtype, y->ndim, y->dims);
    return PLX_OK;
}

static double work_softmax(const op_infer_args *args)
{
    return 6.0 * (double)meta_numel(&args->inputs[0]);
}

static double work_softmax_backward(const op_infer_args *args)
{
    return 4.0 * (double)meta_numel(&args->inputs[1]);
}

/* ---- Gradient rules ------------------------------------------------------ */

/* softmax and log_softmax: dx = <op>_backward(dy, y) with the forward attrs;
 * both backward ops take the forward OUTPUT y, not x. */
static plx_status grad_softmax(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    (void)need;
    if (dy[0] < 0)
        return PLX_OK;
    int32_t op = n->op_id == PLX_OP_SOFTMAX ? PLX_OP_SOFTMAX_BACKWARD : PLX_OP_LOG_SOFTMAX_BACKWARD;
    int32_t in[2] = {dy[0], n->out[0]};
    dx[0] = grad_op(gc, op, n->attrs, in, 2);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

const op_def op_defs_softmax[] = {
    {PLX_OP_SOFTMAX, 1, 1, 1, 0, sizeof(plx_softmax_attrs), &softmax_default, infer_softmax, work_softmax,
     grad_softmax},
    {PLX_OP_SOFTMAX_BACKWARD, 2, 2, 1, 0, sizeof(plx_softmax_attrs), &softmax_default, infer_softmax_backward,
     work_softmax_backward},
    {PLX_OP_LOG_SOFTMAX, 1, 1, 1, 0, sizeof(plx_softmax_attrs), &softmax_default, infer_softmax, work_softmax,
     grad_softmax},
    {PLX_OP_LOG_SOFTMAX_BACKWARD, 2, 2, 1, 0, sizeof(plx_softmax_attrs), &softmax_default,
     infer_softmax_backward, work_softmax_backward},
};
const size_t op_defs_softmax_count = sizeof(op_defs_softmax) / sizeof(op_defs_softmax[0]);
