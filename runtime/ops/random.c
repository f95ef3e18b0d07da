/* Core ops of the random family: dropout (forward and backward) and the
 * counter-based random sources. */
#include <math.h>
#include <stdio.h>

#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_dropout_attrs dropout_default = PLX_DROPOUT_ATTRS_DEFAULT;

static plx_status infer_dropout_common(op_infer_args *args, const char *role)
{
    const plx_dropout_attrs *attrs = args->attrs;
    plx_status st = infer_require_float(args, 0, role);
    if (st != PLX_OK)
        return st;
    char sx[128];
    if (!(attrs->p >= 0.0f && attrs->p < 1.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "p = %g must be in [0, 1) (%s %s)", (double)attrs->p, role,
                          meta_format(&args->inputs[0], sx, sizeof sx));
    args->outputs[0] = args->inputs[0];
    return PLX_OK;
}

static plx_status infer_dropout(op_infer_args *args)
{
    return infer_dropout_common(args, "x");
}

static plx_status infer_dropout_backward(op_infer_args *args)
{
    return infer_dropout_common(args, "dy");
}

static plx_status infer_random(op_infer_args *args)
{
    const plx_random_attrs *attrs = args->attrs;
    if (attrs->ndim < 0 || attrs->ndim > PLX_MAX_DIMS)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.ndim is %d, must be in [0, %d]", (int)attrs->ndim,
                          PLX_MAX_DIMS);
    double numel = 1.0;
    for (int32_t i = 0; i < attrs->ndim; i++) {
        if (attrs->shape[i] < 0)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "attrs.shape[%d] is %lld, must be >= 0", (int)i,
                              (long long)attrs->shape[i]);
        numel *= (double)attrs->shape[i];
    }
    if (numel > 4e15)
        return infer_fail(args, PLX_OVERFLOW, "attrs.shape holds %g elements, too many", numel);
    if (!isfinite(attrs->a) || !isfinite(attrs->b))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "a = %g and b = %g must be finite", (double)attrs->a,
                          (double)attrs->b);
    if (args->def->id == PLX_OP_RANDOM_UNIFORM && !(attrs->a <= attrs->b))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "uniform range [a, b) = [%g, %g) needs a <= b",
                          (double)attrs->a, (double)attrs->b);
    if (args->def->id == PLX_OP_RANDOM_NORMAL && !(attrs->b >= 0.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "normal std b = %g must be >= 0", (double)attrs->b);
    meta_set(&args->outputs[0], PLX_F32, attrs->ndim, attrs->shape);
    return PLX_OK;
}

/* Philox is ~10 rounds of multiplies per 4 elements. */
static double work_dropout(const op_infer_args *args)
{
    return 8.0 * (double)meta_numel(&args->outputs[0]);
}

static double work_random(const op_infer_args *args)
{
    double per = args->def->id == PLX_OP_RANDOM_NORMAL ? 40.0 : 8.0;
    return per * (double)meta_numel(&args->outputs[0]);
}

/* dx = dropout_backward(dy) with the forward's attrs: the same seed and
 * offset draw the same mask, so no mask is stored. */
static plx_status grad_dropout(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    if (dy[0] < 0 || !need[0])
        return PLX_OK;
    dx[0] = grad_op(gc, PLX_OP_DROPOUT_BACKWARD, n->attrs, &dy[0], 1);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

const op_def op_defs_random[] = {
    {PLX_OP_DROPOUT, 1, 1, 1, 0, sizeof(plx_dropout_attrs), &dropout_default, infer_dropout, work_dropout,
     grad_dropout},
    {PLX_OP_DROPOUT_BACKWARD, 1, 1, 1, 0, sizeof(plx_dropout_attrs), &dropout_default, infer_dropout_backward,
     work_dropout},
    {PLX_OP_RANDOM_UNIFORM, 0, 0, 1, 0, sizeof(plx_random_attrs), NULL, infer_random, work_random},
    {PLX_OP_RANDOM_NORMAL, 0, 0, 1, 0, sizeof(plx_random_attrs), NULL, infer_random, work_random},
};
const size_t op_defs_random_count = sizeof(op_defs_random) / sizeof(op_defs_random[0]);
