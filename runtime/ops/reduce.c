/*
 * Core ops of the reduce family: arity, attrs and shape inference.
 *
 * sum/mean/max/min reduce a float tensor over a set of axes (none listed:
 * every axis), keeping them as size 1 with keepdims; argmax takes one axis
 * and gives i64 indices. As in PyTorch, max, min and argmax of an empty
 * set are errors, while the sum of one is 0 and the mean NaN.
 */
#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_reduce_attrs reduce_default = PLX_REDUCE_ATTRS_DEFAULT;
static const plx_argmax_attrs argmax_default = PLX_ARGMAX_ATTRS_DEFAULT;

static plx_status check_keepdims(op_infer_args *args, int32_t keepdims)
{
    if (keepdims != 0 && keepdims != 1)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "keepdims must be 0 or 1, got %d", (int)keepdims);
    return PLX_OK;
}

/* Checks one axis against x and normalizes it to [0, ndim). */
static plx_status normalize_axis(op_infer_args *args, int32_t axis, int32_t *out)
{
    const tensor_meta *x = &args->inputs[0];
    int32_t a = axis < 0 ? axis + x->ndim : axis;
    if (a < 0 || a >= x->ndim) {
        char b[128];
        return infer_fail(args, PLX_INVALID_ARGUMENT, "axis %d is out of range for %s (valid: %d..%d)", (int)axis,
                          meta_format(x, b, sizeof b), (int)-x->ndim, (int)x->ndim - 1);
    }
    *out = a;
    return PLX_OK;
}

static plx_status infer_reduce(op_infer_args *args)
{
    const plx_reduce_attrs *attrs = args->attrs;
    const tensor_meta *x = &args->inputs[0];
    char b[128];
    plx_status st = infer_require_float(args, 0, "x");
    if (st == PLX_OK)
        st = check_keepdims(args, attrs->keepdims);
    if (st != PLX_OK)
        return st;
    if (attrs->n_axes < 0 || attrs->n_axes > x->ndim)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "n_axes must be in 0..%d for %s (0: every axis), got %d",
                          (int)x->ndim, meta_format(x, b, sizeof b), (int)attrs->n_axes);

    bool reduced[PLX_MAX_DIMS] = {false};
    if (attrs->n_axes == 0) {
        for (int32_t d = 0; d < x->ndim; d++)
            reduced[d] = true;
    }
    for (int32_t k = 0; k < attrs->n_axes; k++) {
        int32_t a;
        st = normalize_axis(args, attrs->axes[k], &a);
        if (st != PLX_OK)
            return st;
        if (reduced[a])
            return infer_fail(args, PLX_INVALID_ARGUMENT, "axis %d is listed twice in axes (as %d) for %s", (int)a,
                              (int)attrs->axes[k], meta_format(x, b, sizeof b));
        reduced[a] = true;
    }

    int32_t id = args->def->id;
    if (id == PLX_OP_MAX || id == PLX_OP_MIN) {
        for (int32_t d = 0; d < x->ndim; d++)
            if (reduced[d] && x->dims[d] == 0)
                return infer_fail(args, PLX_INVALID_ARGUMENT,
                                  "cannot take the %s over axis %d of %s: it has no elements",
                                  id == PLX_OP_MAX ? "max" : "min", (int)d, meta_format(x, b, sizeof b));
    }

    tensor_meta out = {0};
    out.dtype = x->dtype;
    for (int32_t d = 0; d < x->ndim; d++) {
        if (!reduced[d])
            out.dims[out.ndim++] = x->dims[d];
        else if (attrs->keepdims)
            out.dims[out.ndim++] = 1;
    }
    args->outputs[0] = out;
    return PLX_OK;
}

static plx_status infer_argmax(op_infer_args *args)
{
    const plx_argmax_attrs *attrs = args->attrs;
    const tensor_meta *x = &args->inputs[0];
    char b[128];
    int32_t axis = 0;
    plx_status st = infer_require_float(args, 0, "x");
    if (st == PLX_OK)
        st = check_keepdims(args, attrs->keepdims);
    if (st == PLX_OK)
        st = normalize_axis(args, attrs->axis, &axis);
    if (st != PLX_OK)
        return st;
    if (x->dims[axis] == 0)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "cannot take the argmax over axis %d of %s: it has no elements",
                          (int)axis, meta_format(x, b, sizeof b));
    tensor_meta out = {0};
    out.dtype = PLX_I64;
    for (int32_t d = 0; d < x->ndim; d++) {
        if (d != axis)
            out.dims[out.ndim++] = x->dims[d];
        else if (attrs->keepdims)
            out.dims[out.ndim++] = 1;
    }
    args->outputs[0] = out;
    return PLX_OK;
}

/* Every input element is read once. */
static double work_input(const op_infer_args *args)
{
    return (double)meta_numel(&args->inputs[0]);
}

#define REDUCE_DEF(id) {PLX_OP_##id, 1, 1, 1, 0, sizeof(plx_reduce_attrs), &reduce_default, infer_reduce, work_input, grad_reduce}


/* ---- Gradient rules ------------------------------------------------------ */

/* The reduced output's shape with the reduced axes kept as size 1. */
static void keepdims_meta(const tensor_meta *x, const plx_reduce_attrs *a, tensor_meta *out)
{
    *out = *x;
    if (a->n_axes == 0) {
        for (int32_t d = 0; d < x->ndim; d++)
            out->dims[d] = 1;
        return;
    }
    for (int32_t k = 0; k < a->n_axes; k++) {
        int32_t d = a->axes[k] < 0 ? a->axes[k] + x->ndim : a->axes[k];
        out->dims[d] = 1;
    }
}

/* sum/mean spread dy evenly; max/min send it to the extreme elements,
 * split evenly among ties (PyTorch's amax/amin rule). */
static plx_status grad_reduce(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    (void)need;
    if (dy[0] < 0)
        return PLX_OK;
    int32_t x = n->in[0];
    const tensor_meta xm = *grad_meta(gc, x);
    tensor_meta km;
    keepdims_meta(&xm, (const plx_reduce_attrs *)n->attrs, &km);
    int32_t g = grad_reshape(gc, dy[0], &km);
    if (g < 0)
        return grad_status(gc);
    if (n->op_id == PLX_OP_SUM || n->op_id == PLX_OP_MEAN) {
        if (n->op_id == PLX_OP_MEAN) {
            int64_t count = meta_numel(&km) ? meta_numel(&xm) / meta_numel(&km) : 0;
            tensor_meta sm = {.dtype = PLX_F32, .ndim = 0};
            int32_t c = grad_fill(gc, count ? 1.0f / (float)count : 0.0f, &sm);
            int32_t in[2] = {g, c};
            g = c < 0 ? -1 : grad_op(gc, PLX_OP_MUL, NULL, in, 2);
        }
        dx[0] = grad_expand(gc, g, &xm);
        return dx[0] < 0 ? grad_status(gc) : PLX_OK;
    }
    int32_t y = grad_reshape(gc, n->out[0], &km);
    int32_t eq_in[2] = {x, y};
    int32_t hit = y < 0 ? -1 : grad_op(gc, PLX_OP_EQ, NULL, eq_in, 2);
    plx_cast_attrs c = {sizeof c, PLX_F32};
    int32_t mask = hit < 0 ? -1 : grad_op(gc, PLX_OP_CAST, &c, &hit, 1);
    plx_reduce_attrs count_attrs = *(const plx_reduce_attrs *)n->attrs;
    count_attrs.keepdims = 1;
    int32_t ties = mask < 0 ? -1 : grad_op(gc, PLX_OP_SUM, &count_attrs, &mask, 1);
    int32_t div_in[2] = {g, ties};
    int32_t share = ties < 0 ? -1 : grad_op(gc, PLX_OP_DIV, NULL, div_in, 2);
    int32_t mul_in[2] = {mask, share};
    dx[0] = share < 0 ? -1 : grad_op(gc, PLX_OP_MUL, NULL, mul_in, 2);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

const op_def op_defs_reduce[] = {
    REDUCE_DEF(SUM),
    REDUCE_DEF(MEAN),
    REDUCE_DEF(MAX),
    REDUCE_DEF(MIN),
    {PLX_OP_ARGMAX, 1, 1, 1, 0, sizeof(plx_argmax_attrs), &argmax_default, infer_argmax, work_input},
};
const size_t op_defs_reduce_count = sizeof(op_defs_reduce) / sizeof(op_defs_reduce[0]);
