/* Core ops of the norm family (batch norm, layer norm): arity, attrs and
 * shape inference. */
#include <math.h>

#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_batch_norm_attrs batch_norm_default = PLX_BATCH_NORM_ATTRS_DEFAULT;
static const plx_layer_norm_attrs layer_norm_default = PLX_LAYER_NORM_ATTRS_DEFAULT;

/* Requires input i to be a float tensor of x's dtype and shape [C]. */
static plx_status require_channel_vector(op_infer_args *args, int32_t i, int32_t x_index, int64_t channels,
                                         const char *role)
{
    char b[128], xb[128];
    const tensor_meta *m = &args->inputs[i];
    const tensor_meta *x = &args->inputs[x_index];
    if (!plx_dtype_equal(m->dtype, x->dtype))
        return infer_fail(args, PLX_DTYPE_MISMATCH, "%s (input %d) must have x's dtype %s, got %s", role, (int)i,
                          dtype_name(x->dtype), meta_format(m, b, sizeof b));
    if (m->ndim != 1 || m->dims[0] != channels)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "%s (input %d) must have shape [%lld] (the channels of x %s), got %s",
                          role, (int)i, (long long)channels, meta_format(x, xb, sizeof xb),
                          meta_format(m, b, sizeof b));
    return PLX_OK;
}

static plx_status check_batch_norm_attrs(op_infer_args *args, bool check_momentum)
{
    const plx_batch_norm_attrs *a = args->attrs;
    if (!(isfinite(a->eps) && a->eps >= 0.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "eps must be finite and >= 0, got %g", (double)a->eps);
    if (check_momentum && !(isfinite(a->momentum) && a->momentum >= 0.0f && a->momentum <= 1.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "momentum must be in [0, 1], got %g", (double)a->momentum);
    if (a->training != 0 && a->training != 1)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "training must be 0 or 1, got %d", (int)a->training);
    return PLX_OK;
}

/* x [N,C,...]: the rank and float checks shared by forward and backward. */
static plx_status require_batch_norm_x(op_infer_args *args, int32_t x_index)
{
    char b[128];
    plx_status st = infer_require_float(args, x_index, "x");
    if (st != PLX_OK)
        return st;
    if (args->inputs[x_index].ndim < 2)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "x (input %d) must be [N,C,...] with at least 2 dims, got %s",
                          (int)x_index, meta_format(&args->inputs[x_index], b, sizeof b));
    return PLX_OK;
}

/* (x, gamma, beta, running_mean, running_var) -> (y, save_mean, save_invstd) */
static plx_status infer_batch_norm(op_infer_args *args)
{
    plx_status st = check_batch_norm_attrs(args, true);
    if (st == PLX_OK)
        st = require_batch_norm_x(args, 0);
    if (st != PLX_OK)
        return st;
    const tensor_meta *x = &args->inputs[0];
    int64_t channels = x->dims[1];
    static const char *const roles[] = {"x", "gamma", "beta", "running_mean", "running_var"};
    for (int32_t i = 1; i < 5; i++) {
        st = require_channel_vector(args, i, 0, channels, roles[i]);
        if (st != PLX_OK)
            return st;
    }
    const plx_batch_norm_attrs *a = args->attrs;
    int64_t per_channel = channels > 0 ? meta_numel(x) / channels : 0;
    if (a->training && channels > 0 && per_channel < 2) {
        char b[128];
        return infer_fail(args, PLX_INVALID_ARGUMENT,
                          "training needs more than 1 value per channel (the unbiased variance), got x %s",
                          meta_format(x, b, sizeof b));
    }
    meta_set(&args->outputs[0], x->dtype, x->ndim, x->dims);
    meta_set(&args->outputs[1], x->dtype, 1, &channels);
    meta_set(&args->outputs[2], x->dtype, 1, &channels);
    return PLX_OK;
}

/* (dy, x, gamma, save_mean, save_invstd) -> (dx, dgamma, dbeta) */
static plx_status infer_batch_norm_backward(op_infer_args *args)
{
    plx_status st = check_batch_norm_attrs(args, false);
    if (st == PLX_OK)
        st = require_batch_norm_x(args, 1);
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, 0, 1);
    if (st == PLX_OK)
        st = infer_require_same_shape(args, 0, 1);
    if (st != PLX_OK)
        return st;
    const tensor_meta *x = &args->inputs[1];
    int64_t channels = x->dims[1];
    static const char *const roles[] = {"dy", "x", "gamma", "save_mean", "save_invstd"};
    for (int32_t i = 2; i < 5; i++) {
        st = require_channel_vector(args, i, 1, channels, roles[i]);
        if (st != PLX_OK)
            return st;
    }
    meta_set(&args->outputs[0], x->dtype, x->ndim, x->dims);
    meta_set(&args->outputs[1], x->dtype, 1, &channels);
    meta_set(&args->outputs[2], x->dtype, 1, &channels);
    return PLX_OK;
}

static double work_batch_norm(const op_infer_args *args)
{
    return 8.0 * (double)meta_numel(&args->inputs[0]);
}

static double work_batch_norm_backward(const op_infer_args *args)
{
    return 10.0 * (double)meta_numel(&args->inputs[1]);
}

/* Validates normalized_ndim against x (input x_index) and that input i
 * (gamma or beta) has the shape of x's last normalized_ndim dims. */
static plx_status require_layer_norm_param(op_infer_args *args, int32_t i, int32_t x_index, const char *role)
{
    char b[128], xb[128];
    const plx_layer_norm_attrs *a = args->attrs;
    const tensor_meta *x = &args->inputs[x_index];
    const tensor_meta *m = &args->inputs[i];
    if (!plx_dtype_equal(m->dtype, x->dtype))
        return infer_fail(args, PLX_DTYPE_MISMATCH, "%s (input %d) must have x's dtype %s, got %s", role, (int)i,
                          dtype_name(x->dtype), meta_format(m, b, sizeof b));
    bool ok = m->ndim == a->normalized_ndim;
    for (int32_t d = 0; ok && d < m->ndim; d++)
        ok = m->dims[d] == x->dims[x->ndim - a->normalized_ndim + d];
    if (!ok)
        return infer_fail(args, PLX_SHAPE_MISMATCH,
                          "%s (input %d) must have the shape of the last %d dims of x %s, got %s", role, (int)i,
                          (int)a->normalized_ndim, meta_format(x, xb, sizeof xb), meta_format(m, b, sizeof b));
    return PLX_OK;
}

static plx_status check_layer_norm(op_infer_args *args, int32_t x_index)
{
    char b[128];
    const plx_layer_norm_attrs *a = args->attrs;
    if (!(isfinite(a->eps) && a->eps >= 0.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "eps must be finite and >= 0, got %g", (double)a->eps);
    plx_status st = infer_require_float(args, x_index, "x");
    if (st != PLX_OK)
        return st;
    const tensor_meta *x = &args->inputs[x_index];
    if (a->normalized_ndim < 1 || a->normalized_ndim > x->ndim)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "normalized_ndim must be in [1, %d] for x %s, got %d",
                          (int)x->ndim, meta_format(x, b, sizeof b), (int)a->normalized_ndim);
    return PLX_OK;
}

/* Requires input i (mean or invstd) to have x's dtype and leading dims. */
static plx_status require_layer_norm_stat(op_infer_args *args, int32_t i, int32_t x_index, const char *role)
{
    char b[128], xb[128];
    const plx_layer_norm_attrs *a = args->attrs;
    const tensor_meta *x = &args->inputs[x_index];
    const tensor_meta *m = &args->inputs[i];
    int32_t lead = x->ndim - a->normalized_ndim;
    if (!plx_dtype_equal(m->dtype, x->dtype))
        return infer_fail(args, PLX_DTYPE_MISMATCH, "%s (input %d) must have x's dtype %s, got %s", role, (int)i,
                          dtype_name(x->dtype), meta_format(m, b, sizeof b));
    bool ok = m->ndim == lead;
    for (int32_t d = 0; ok && d < lead; d++)
        ok = m->dims[d] == x->dims[d];
    if (!ok)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "%s (input %d) must have the first %d dims of x %s, got %s",
                          role, (int)i, (int)lead, meta_format(x, xb, sizeof xb), meta_format(m, b, sizeof b));
    return PLX_OK;
}

/* (x, gamma, beta) -> (y, mean, invstd) */
static plx_status infer_layer_norm(op_infer_args *args)
{
    plx_status st = check_layer_norm(args, 0);
    if (st == PLX_OK)
        st = require_layer_norm_param(args, 1, 0, "gamma");
    if (st == PLX_OK)
        st = require_layer_norm_param(args, 2, 0, "beta");
    if (st != PLX_OK)
        return st;
    const plx_layer_norm_attrs *a = args->attrs;
    const tensor_meta *x = &args->inputs[0];
    meta_set(&args->outputs[0], x->dtype, x->ndim, x->dims);
    meta_set(&args->outputs[1], x->dtype, x->ndim - a->normalized_ndim, x->dims);
    meta_set(&args->outputs[2], x->dtype, x->ndim - a->normalized_ndim, x->dims);
    return PLX_OK;
}

/* (dy, x, gamma, mean, invstd) -> (dx, dgamma, dbeta) */
static plx_status infer_layer_norm_backward(op_infer_args *args)
{
    plx_status st = check_layer_norm(args, 1);
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, 0, 1);
    if (st == PLX_OK)
        st = infer_require_same_shape(args, 0, 1);
    if (st == PLX_OK)
        st = require_layer_norm_param(args, 2, 1, "gamma");
    if (st == PLX_OK)
        st = require_layer_norm_stat(args, 3, 1, "mean");
    if (st == PLX_OK)
        st = require_layer_norm_stat(args, 4, 1, "invstd");
    if (st != PLX_OK)
        return st;
    const tensor_meta *x = &args->inputs[1];
    const tensor_meta *gamma = &args->inputs[2];
    meta_set(&args->outputs[0], x->dtype, x->ndim, x->dims);
    meta_set(&args->outputs[1], x->dtype, gamma->ndim, gamma->dims);
    meta_set(&args->outputs[2], x->dtype, gamma->ndim, gamma->dims);
    return PLX_OK;
}

static double work_layer_norm(const op_infer_args *args)
{
    return 8.0 * (double)meta_numel(&args->inputs[0]);
}

static double work_layer_norm_backward(const op_infer_args *args)
{
    return 12.0 * (double)meta_numel(&args->inputs[1]);
}

/* ---- Gradient rules ------------------------------------------------------ */

static int32_t binary(grad_ctx *gc, int32_t op, int32_t a, int32_t b)
{
    int32_t in[2] = {a, b};
    return a < 0 || b < 0 ? -1 : grad_op(gc, op, NULL, in, 2);
}

static int32_t scalar(grad_ctx *gc, float value)
{
    tensor_meta m = {.dtype = PLX_F32, .ndim = 0};
    return grad_fill(gc, value, &m);
}

/* The normalizing ops also output the batch statistics they used (mean and
 * invstd = 1/sqrt(biased var + eps), over `count` elements of x per
 * statistic). Their backward ops only take dy, so when a graph reads the
 * statistics too, their gradients reach x here:
 *     d mean / d x_i   = 1 / count
 *     d invstd / d x_i = -invstd^3 * (x_i - mean) / count
 * `stat_shape` is the statistics' shape with the reduced dims kept as 1, so
 * they broadcast against x. *dx (-1 or x's gradient so far) gets the sum. */
static plx_status add_stat_grads(grad_ctx *gc, int32_t x, int32_t mean, int32_t invstd, int32_t dmean, int32_t dinvstd,
                                 const tensor_meta *stat_shape, int64_t count, int32_t *dx)
{
    if (dmean < 0 && dinvstd < 0)
        return PLX_OK;
    const tensor_meta xm = *grad_meta(gc, x);
    float inv_count = count > 0 ? 1.0f / (float)count : 0.0f;
    int32_t from_mean = -1, from_invstd = -1;
    if (dmean >= 0)
        from_mean = binary(gc, PLX_OP_MUL, grad_reshape(gc, dmean, stat_shape), scalar(gc, inv_count));
    if (dinvstd >= 0) {
        int32_t is = grad_reshape(gc, invstd, stat_shape);
        int32_t is3 = binary(gc, PLX_OP_MUL, is, binary(gc, PLX_OP_MUL, is, is));
        int32_t k = binary(gc, PLX_OP_MUL, binary(gc, PLX_OP_MUL, grad_reshape(gc, dinvstd, stat_shape), is3),
                           scalar(gc, -inv_count));
        int32_t centered = binary(gc, PLX_OP_SUB, x, grad_reshape(gc, mean, stat_shape));
        from_invstd = binary(gc, PLX_OP_MUL, centered, k);
    }
    int32_t total;
    if (dmean >= 0 && dinvstd >= 0)
        total = binary(gc, PLX_OP_ADD, from_invstd, from_mean);
    else if (dmean >= 0)
        total = grad_expand(gc, from_mean, &xm);
    else
        total = from_invstd;
    if (total >= 0 && *dx >= 0)
        total = binary(gc, PLX_OP_ADD, *dx, total);
    if (total < 0)
        return grad_status(gc);
    *dx = total;
    return PLX_OK;
}

/* batch_norm (x, gamma, beta, running_mean, running_var): dx, dgamma and
 * dbeta from core.batch_norm_backward with the forward attrs, whose training
 * flag picks the formula (batch statistics, or the running ones as
 * constants). The running statistics are buffers: they get no gradient, in
 * inference either (as in PyTorch). save_mean/save_invstd are the batch
 * statistics in training, so their gradients (if any) flow to x; in
 * inference they come from the running statistics and have none. */
static plx_status grad_batch_norm(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need,
                                  int32_t *dx)
{
    const plx_batch_norm_attrs *a = (const plx_batch_norm_attrs *)n->attrs;
    int32_t x = n->in[0];
    const tensor_meta xm = *grad_meta(gc, x);
    if (dy[0] >= 0 && (need[0] || need[1] || need[2])) {
        int32_t in[5] = {dy[0], x, n->in[1], n->out[1], n->out[2]}, out[3];
        plx_status st = grad_op_multi(gc, PLX_OP_BATCH_NORM_BACKWARD, a, in, 5, out, 3);
        if (st != PLX_OK)
            return st;
        for (int32_t i = 0; i < 3; i++)
            if (need[i])
                dx[i] = out[i];
    }
    if (!need[0] || !a->training)
        return PLX_OK;
    tensor_meta stat = xm;
    for (int32_t d = 0; d < xm.ndim; d++)
        if (d != 1)
            stat.dims[d] = 1;
    int64_t count = xm.dims[1] > 0 ? meta_numel(&xm) / xm.dims[1] : 0;
    return add_stat_grads(gc, x, n->out[1], n->out[2], dy[1], dy[2], &stat, count, &dx[0]);
}

/* layer_norm (x, gamma, beta): core.layer_norm_backward; the statistics
 * outputs (mean, invstd over the normalized dims) pass their gradients to
 * x. */
static plx_status grad_layer_norm(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need,
                                  int32_t *dx)
{
    const plx_layer_norm_attrs *a = (const plx_layer_norm_attrs *)n->attrs;
    int32_t x = n->in[0];
    const tensor_meta xm = *grad_meta(gc, x);
    if (dy[0] >= 0) {
        int32_t in[5] = {dy[0], x, n->in[1], n->out[1], n->out[2]}, out[3];
        plx_status st = grad_op_multi(gc, PLX_OP_LAYER_NORM_BACKWARD, a, in, 5, out, 3);
        if (st != PLX_OK)
            return st;
        for (int32_t i = 0; i < 3; i++)
            if (need[i])
                dx[i] = out[i];
    }
    if (!need[0])
        return PLX_OK;
    tensor_meta stat = xm;
    int64_t count = 1;
    for (int32_t d = xm.ndim - a->normalized_ndim; d < xm.ndim; d++) {
        count *= xm.dims[d];
        stat.dims[d] = 1;
    }
    return add_stat_grads(gc, x, n->out[1], n->out[2], dy[1], dy[2], &stat, count, &dx[0]);
}

const op_def op_defs_norm[] = {
    {PLX_OP_BATCH_NORM, 5, 5, 3, (1u << 3) | (1u << 4), sizeof(plx_batch_norm_attrs), &batch_norm_default,
     infer_batch_norm, work_batch_norm, grad_batch_norm},
    {PLX_OP_BATCH_NORM_BACKWARD, 5, 5, 3, 0, sizeof(plx_batch_norm_attrs), &batch_norm_default,
     infer_batch_norm_backward, work_batch_norm_backward},
    {PLX_OP_LAYER_NORM, 3, 3, 3, 0, sizeof(plx_layer_norm_attrs), &layer_norm_default, infer_layer_norm,
     work_layer_norm, grad_layer_norm},
    {PLX_OP_LAYER_NORM_BACKWARD, 5, 5, 3, 0, sizeof(plx_layer_norm_attrs), &layer_norm_default,
     infer_layer_norm_backward, work_layer_norm_backward},
};
const size_t op_defs_norm_count = sizeof(op_defs_norm) / sizeof(op_defs_norm[0]);
