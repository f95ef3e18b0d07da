/* Core ops of the loss family: arity, attrs and shape inference.
 *
 * Every loss takes plx_loss_attrs; only the fields an op uses are checked
 * (label_smoothing: cross_entropy; ignore_index: CE and NLL; delta: huber),
 * so one attrs value can be shared by a loss and its backward op. */
#include <math.h>

#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_loss_attrs loss_default = PLX_LOSS_ATTRS_DEFAULT;

static plx_status check_reduction(op_infer_args *args)
{
    const plx_loss_attrs *a = args->attrs;
    if (a->reduction != PLX_REDUCTION_MEAN && a->reduction != PLX_REDUCTION_SUM && a->reduction != PLX_REDUCTION_NONE)
        return infer_fail(args, PLX_INVALID_ARGUMENT, "reduction must be 0 (mean), 1 (sum) or 2 (none), got %d",
                          (int)a->reduction);
    return PLX_OK;
}

/* Class-index losses: input [N,C] or [N,C,d...] (input x_index), target i64
 * [N] or [N,d...] (input x_index + 1). Fills the per-sample shape. */
static plx_status check_class_target(op_infer_args *args, int32_t x_index, const char *x_role, tensor_meta *per_sample)
{
    char b[128], tb[128];
    plx_status st = infer_require_float(args, x_index, x_role);
    if (st == PLX_OK)
        st = infer_require_dtype(args, x_index + 1, PLX_I64, "target");
    if (st != PLX_OK)
        return st;
    const tensor_meta *x = &args->inputs[x_index];
    const tensor_meta *t = &args->inputs[x_index + 1];
    if (x->ndim < 2)
        return infer_fail(args, PLX_SHAPE_MISMATCH, "%s (input %d) must be [N,C] or [N,C,d...], got %s", x_role,
                          (int)x_index, meta_format(x, b, sizeof b));
    bool ok = t->ndim == x->ndim - 1 && t->dims[0] == x->dims[0];
    for (int32_t d = 1; ok && d < t->ndim; d++)
        ok = t->dims[d] == x->dims[d + 1];
    if (!ok)
        return infer_fail(args, PLX_SHAPE_MISMATCH,
                          "target (input %d) must have %s's shape without the class dim 1, got %s and %s",
                          (int)(x_index + 1), x_role, meta_format(x, b, sizeof b), meta_format(t, tb, sizeof tb));
    meta_set(per_sample, x->dtype, t->ndim, t->dims);
    return PLX_OK;
}

static plx_status check_label_smoothing(op_infer_args *args)
{
    const plx_loss_attrs *a = args->attrs;
    if (!(a->label_smoothing >= 0.0f && a->label_smoothing < 1.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "label_smoothing must be in [0, 1), got %g",
                          (double)a->label_smoothing);
    return PLX_OK;
}

static plx_status check_delta(op_infer_args *args)
{
    const plx_loss_attrs *a = args->attrs;
    if (!(isfinite(a->delta) && a->delta > 0.0f))
        return infer_fail(args, PLX_INVALID_ARGUMENT, "delta must be finite and > 0, got %g", (double)a->delta);
    return PLX_OK;
}

/* Which op-specific attribute an op uses beyond the reduction. */
typedef enum loss_kind { LOSS_PLAIN, LOSS_SMOOTHED, LOSS_HUBER } loss_kind;

static plx_status check_op_attrs(op_infer_args *args, loss_kind kind)
{
    plx_status st = check_reduction(args);
    if (st != PLX_OK)
        return st;
    if (kind == LOSS_SMOOTHED)
        return check_label_smoothing(args);
    if (kind == LOSS_HUBER)
        return check_delta(args);
    return PLX_OK;
}

/* The loss's meta: a 0-d scalar for mean/sum, else the per-element shape. */
static void loss_meta(const op_infer_args *args, const tensor_meta *per_element, tensor_meta *out)
{
    const plx_loss_attrs *a = args->attrs;
    if (a->reduction == PLX_REDUCTION_NONE)
        meta_set(out, per_element->dtype, per_element->ndim, per_element->dims);
    else
        meta_set(out, per_element->dtype, 0, NULL);
}

/* Elementwise losses: x (input x_index) and target of the same dtype and
 * shape. */
static plx_status check_elementwise_target(op_infer_args *args, int32_t x_index)
{
    plx_status st = infer_require_float(args, x_index, "x");
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, x_index, x_index + 1);
    if (st == PLX_OK)
        st = infer_require_same_shape(args, x_index, x_index + 1);
    return st;
}

/* Requires dloss (input 0) to have the loss's dtype and shape. */
static plx_status check_dloss(op_infer_args *args, const tensor_meta *loss)
{
    char b[128], lb[128];
    const tensor_meta *dloss = &args->inputs[0];
    if (!plx_dtype_equal(dloss->dtype, loss->dtype) || !meta_same_shape(dloss, loss))
        return infer_fail(args, meta_same_shape(dloss, loss) ? PLX_DTYPE_MISMATCH : PLX_SHAPE_MISMATCH,
                          "dloss (input 0) must match the loss %s, got %s", meta_format(loss, lb, sizeof lb),
                          meta_format(dloss, b, sizeof b));
    return PLX_OK;
}

/* (logits or logp, target i64) -> loss */
static plx_status infer_class_loss(op_infer_args *args, loss_kind kind, const char *x_role)
{
    tensor_meta per_sample;
    plx_status st = check_op_attrs(args, kind);
    if (st == PLX_OK)
        st = check_class_target(args, 0, x_role, &per_sample);
    if (st != PLX_OK)
        return st;
    loss_meta(args, &per_sample, &args->outputs[0]);
    return PLX_OK;
}

/* (dloss, logits or logp, target i64) -> d(logits or logp) */
static plx_status infer_class_loss_backward(op_infer_args *args, loss_kind kind, const char *x_role)
{
    tensor_meta per_sample, loss;
    plx_status st = check_op_attrs(args, kind);
    if (st == PLX_OK)
        st = check_class_target(args, 1, x_role, &per_sample);
    if (st != PLX_OK)
        return st;
    loss_meta(args, &per_sample, &loss);
    st = check_dloss(args, &loss);
    if (st != PLX_OK)
        return st;
    const tensor_meta *x = &args->inputs[1];
    meta_set(&args->outputs[0], x->dtype, x->ndim, x->dims);
    return PLX_OK;
}

/* (x, target) -> loss */
static plx_status infer_elementwise_loss(op_infer_args *args, loss_kind kind)
{
    plx_status st = check_op_attrs(args, kind);
    if (st == PLX_OK)
        st = check_elementwise_target(args, 0);
    if (st != PLX_OK)
        return st;
    loss_meta(args, &args->inputs[0], &args->outputs[0]);
    return PLX_OK;
}

/* (dloss, x, target) -> dx */
static plx_status infer_elementwise_loss_backward(op_infer_args *args, loss_kind kind)
{
    tensor_meta loss;
    plx_status st = check_op_attrs(args, kind);
    if (st == PLX_OK)
        st = check_elementwise_target(args, 1);
    if (st != PLX_OK)
        return st;
    loss_meta(args, &args->inputs[1], &loss);
    st = check_dloss(args, &loss);
    if (st != PLX_OK)
        return st;
    const tensor_meta *x = &args->inputs[1];
    meta_set(&args->outputs[0], x->dtype, x->ndim, x->dims);
    return PLX_OK;
}

static plx_status infer_cross_entropy(op_infer_args *args)
{
    return infer_class_loss(args, LOSS_SMOOTHED, "logits");
}

static plx_status infer_cross_entropy_backward(op_infer_args *args)
{
    return infer_class_loss_backward(args, LOSS_SMOOTHED, "logits");
}

static plx_status infer_nll_loss(op_infer_args *args)
{
    return infer_class_loss(args, LOSS_PLAIN, "logp");
}

static plx_status infer_nll_loss_backward(op_infer_args *args)
{
    return infer_class_loss_backward(args, LOSS_PLAIN, "logp");
}

static plx_status infer_plain_loss(op_infer_args *args)
{
    return infer_elementwise_loss(args, LOSS_PLAIN);
}

static plx_status infer_plain_loss_backward(op_infer_args *args)
{
    return infer_elementwise_loss_backward(args, LOSS_PLAIN);
}

static plx_status infer_huber_loss(op_infer_args *args)
{
    return infer_elementwise_loss(args, LOSS_HUBER);
}

static plx_status infer_huber_loss_backward(op_infer_args *args)
{
    return infer_elementwise_loss_backward(args, LOSS_HUBER);
}

static double work_class_loss(const op_infer_args *args)
{
    int32_t x_index = args->n_inputs == 3 ? 1 : 0;
    return 5.0 * (double)meta_numel(&args->inputs[x_index]);
}

static double work_elementwise_loss(const op_infer_args *args)
{
    int32_t x_index = args->n_inputs == 3 ? 1 : 0;
    return 4.0 * (double)meta_numel(&args->inputs[x_index]);
}

/* ---- Gradient rules ------------------------------------------------------ */

static int32_t backward_op_of(int32_t forward)
{
    switch (forward) {
    case PLX_OP_CROSS_ENTROPY:
        return PLX_OP_CROSS_ENTROPY_BACKWARD;
    case PLX_OP_NLL_LOSS:
        return PLX_OP_NLL_LOSS_BACKWARD;
    case PLX_OP_BCE_WITH_LOGITS:
        return PLX_OP_BCE_WITH_LOGITS_BACKWARD;
    case PLX_OP_MSE_LOSS:
        return PLX_OP_MSE_LOSS_BACKWARD;
    case PLX_OP_L1_LOSS:
        return PLX_OP_L1_LOSS_BACKWARD;
    default:
        return PLX_OP_HUBER_LOSS_BACKWARD;
    }
}

/* CE and NLL: d(logits or logp) = <loss>_backward(dloss, x, target) with the
 * forward attrs, which carry the reduction, ignore_index and label
 * smoothing. The target holds class indices (i64): it has no gradient. */
static plx_status grad_class_loss(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    if (dy[0] < 0 || !need[0])
        return PLX_OK;
    int32_t in[3] = {dy[0], n->in[0], n->in[1]};
    dx[0] = grad_op(gc, backward_op_of(n->op_id), n->attrs, in, 3);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

static int32_t binary(grad_ctx *gc, int32_t op, int32_t a, int32_t b)
{
    int32_t in[2] = {a, b};
    return grad_op(gc, op, NULL, in, 2);
}

/* bce_with_logits per element is softplus(x) - x * t, so d/dt = -x times the
 * loss gradient each element receives: dloss itself (none), the scalar
 * dloss (sum) or dloss / numel (mean). */
static int32_t bce_target_grad(grad_ctx *gc, const graph_node *n, int32_t dloss)
{
    const plx_loss_attrs *a = (const plx_loss_attrs *)n->attrs;
    int32_t x = n->in[0];
    int32_t scale = -1;
    if (a->reduction == PLX_REDUCTION_MEAN) {
        int64_t count = meta_numel(grad_meta(gc, x));
        tensor_meta sm = {.dtype = PLX_F32, .ndim = 0};
        int32_t c = grad_fill(gc, count ? -1.0f / (float)count : 0.0f, &sm);
        scale = c < 0 ? -1 : binary(gc, PLX_OP_MUL, dloss, c);
    } else {
        scale = grad_op(gc, PLX_OP_NEG, NULL, &dloss, 1);
    }
    return scale < 0 ? -1 : binary(gc, PLX_OP_MUL, x, scale);
}

/* bce_with_logits, mse, l1, huber: d/dx = <loss>_backward(dloss, x, target).
 * A float target gets a gradient too (GANs, distillation): mse, l1 and huber
 * are functions of x - target, so d/dtarget = -d/dx; bce's is -x * dloss. */
static plx_status grad_elementwise_loss(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need,
                                        int32_t *dx)
{
    if (dy[0] < 0)
        return PLX_OK;
    bool bce = n->op_id == PLX_OP_BCE_WITH_LOGITS;
    int32_t gx = -1;
    if (need[0] || (need[1] && !bce)) {
        int32_t in[3] = {dy[0], n->in[0], n->in[1]};
        gx = grad_op(gc, backward_op_of(n->op_id), n->attrs, in, 3);
        if (gx < 0)
            return grad_status(gc);
    }
    if (need[0])
        dx[0] = gx;
    if (need[1]) {
        dx[1] = bce ? bce_target_grad(gc, n, dy[0]) : grad_op(gc, PLX_OP_NEG, NULL, &gx, 1);
        if (dx[1] < 0)
            return grad_status(gc);
    }
    return PLX_OK;
}

#define LOSS_DEF(id, n_in, infer, work, grad)                                                                          \
    {PLX_OP_##id, n_in, n_in, 1, 0, sizeof(plx_loss_attrs), &loss_default, infer, work, grad}

const op_def op_defs_loss[] = {
    LOSS_DEF(CROSS_ENTROPY, 2, infer_cross_entropy, work_class_loss, grad_class_loss),
    LOSS_DEF(CROSS_ENTROPY_BACKWARD, 3, infer_cross_entropy_backward, work_class_loss, NULL),
    LOSS_DEF(NLL_LOSS, 2, infer_nll_loss, work_class_loss, grad_class_loss),
    LOSS_DEF(NLL_LOSS_BACKWARD, 3, infer_nll_loss_backward, work_class_loss, NULL),
    LOSS_DEF(BCE_WITH_LOGITS, 2, infer_plain_loss, work_elementwise_loss, grad_elementwise_loss),
    LOSS_DEF(BCE_WITH_LOGITS_BACKWARD, 3, infer_plain_loss_backward, work_elementwise_loss, NULL),
    LOSS_DEF(MSE_LOSS, 2, infer_plain_loss, work_elementwise_loss, grad_elementwise_loss),
    LOSS_DEF(MSE_LOSS_BACKWARD, 3, infer_plain_loss_backward, work_elementwise_loss, NULL),
    LOSS_DEF(L1_LOSS, 2, infer_plain_loss, work_elementwise_loss, grad_elementwise_loss),
    LOSS_DEF(L1_LOSS_BACKWARD, 3, infer_plain_loss_backward, work_elementwise_loss, NULL),
    LOSS_DEF(HUBER_LOSS, 2, infer_huber_loss, work_elementwise_loss, grad_elementwise_loss),
    LOSS_DEF(HUBER_LOSS_BACKWARD, 3, infer_huber_loss_backward, work_elementwise_loss, NULL),
};
const size_t op_defs_loss_count = sizeof(op_defs_loss) / sizeof(op_defs_loss[0]);
