/*
 * Core ops of the elementwise family: arity, attrs and shape inference.
 *
 * Unary ops map a float tensor to one of the same dtype and shape; their
 * gradients take (dy, x) of one shape and dtype and give dx. Binary ops,
 * comparisons and where broadcast NumPy/PyTorch-style.
 */
#include <math.h>

#include "../autodiff.h"
#include "../op_catalog.h"

static const plx_leaky_relu_attrs leaky_relu_default = PLX_LEAKY_RELU_ATTRS_DEFAULT;
static const plx_elu_attrs elu_default = PLX_ELU_ATTRS_DEFAULT;
static const plx_gelu_attrs gelu_default = PLX_GELU_ATTRS_DEFAULT;
static const plx_softplus_attrs softplus_default = PLX_SOFTPLUS_ATTRS_DEFAULT;
static const plx_clamp_attrs clamp_default = PLX_CLAMP_ATTRS_DEFAULT;

/* The catalog lists the gradients in the order of their forward ops. */
static int32_t forward_op_of(int32_t op_id)
{
    if (op_id >= PLX_OP_NEG_GRAD && op_id <= PLX_OP_CLAMP_GRAD)
        return op_id - PLX_OP_NEG_GRAD + PLX_OP_NEG;
    return op_id;
}

/* Attribute values shared by a forward op and its gradient. */
static plx_status check_unary_attrs(op_infer_args *args)
{
    switch (forward_op_of(args->def->id)) {
    case PLX_OP_LEAKY_RELU: {
        const plx_leaky_relu_attrs *a = args->attrs;
        if (!isfinite(a->negative_slope))
            return infer_fail(args, PLX_INVALID_ARGUMENT, "negative_slope must be finite, got %g",
                              (double)a->negative_slope);
        return PLX_OK;
    }
    case PLX_OP_ELU: {
        const plx_elu_attrs *a = args->attrs;
        if (!isfinite(a->alpha))
            return infer_fail(args, PLX_INVALID_ARGUMENT, "alpha must be finite, got %g", (double)a->alpha);
        return PLX_OK;
    }
    case PLX_OP_GELU: {
        const plx_gelu_attrs *a = args->attrs;
        if (a->approximate_tanh != 0 && a->approximate_tanh != 1)
            return infer_fail(args, PLX_INVALID_ARGUMENT,
                              "approximate_tanh must be 0 (exact erf form) or 1 (tanh form), got %d",
                              (int)a->approximate_tanh);
        return PLX_OK;
    }
    case PLX_OP_SOFTPLUS: {
        const plx_softplus_attrs *a = args->attrs;
        if (!isfinite(a->beta) || a->beta == 0.0f)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "beta must be finite and non-zero, got %g",
                              (double)a->beta);
        if (isnan(a->threshold))
            return infer_fail(args, PLX_INVALID_ARGUMENT, "threshold must not be NaN");
        return PLX_OK;
    }
    case PLX_OP_CLAMP: {
        const plx_clamp_attrs *a = args->attrs;
        if ((a->has_min != 0 && a->has_min != 1) || (a->has_max != 0 && a->has_max != 1))
            return infer_fail(args, PLX_INVALID_ARGUMENT, "has_min and has_max must be 0 or 1, got %d and %d",
                              (int)a->has_min, (int)a->has_max);
        if (!a->has_min && !a->has_max)
            return infer_fail(args, PLX_INVALID_ARGUMENT, "at least one of min_value and max_value must be set "
                                                          "(has_min or has_max), as in torch.clamp");
        if ((a->has_min && isnan(a->min_value)) || (a->has_max && isnan(a->max_value)))
            return infer_fail(args, PLX_INVALID_ARGUMENT, "clamp bounds must not be NaN");
        return PLX_OK;
    }
    default:
        return PLX_OK;
    }
}

static plx_status infer_unary(op_infer_args *args)
{
    plx_status st = infer_require_float(args, 0, "x");
    if (st == PLX_OK)
        st = check_unary_attrs(args);
    if (st != PLX_OK)
        return st;
    args->outputs[0] = args->inputs[0];
    return PLX_OK;
}

static plx_status infer_unary_grad(op_infer_args *args)
{
    plx_status st = infer_require_float(args, 0, "dy");
    if (st == PLX_OK)
        st = infer_require_float(args, 1, "x");
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, 0, 1);
    if (st == PLX_OK)
        st = infer_require_same_shape(args, 0, 1);
    if (st == PLX_OK)
        st = check_unary_attrs(args);
    if (st != PLX_OK)
        return st;
    args->outputs[0] = args->inputs[1];
    return PLX_OK;
}

/* Broadcasts inputs 0 and 1 (after `check` accepted each and they share a
 * dtype) into one output of `dtype` (NULL: the inputs' dtype). */
static plx_status infer_binary(op_infer_args *args, plx_status (*check)(op_infer_args *, int32_t, const char *),
                               const plx_dtype *dtype)
{
    static const int32_t both[2] = {0, 1};
    plx_status st = check(args, 0, "a");
    if (st == PLX_OK)
        st = check(args, 1, "b");
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, 0, 1);
    if (st != PLX_OK)
        return st;
    tensor_meta out = {0};
    st = infer_broadcast(args, both, 2, &out);
    if (st != PLX_OK)
        return st;
    out.dtype = dtype != NULL ? *dtype : args->inputs[0].dtype;
    args->outputs[0] = out;
    return PLX_OK;
}

/* Arithmetic: both inputs float and of one dtype; the result keeps it. */
static plx_status infer_arith(op_infer_args *args)
{
    return infer_binary(args, infer_require_float, NULL);
}

static plx_status require_numeric(op_infer_args *args, int32_t i, const char *role)
{
    char b[128];
    plx_dtype t = args->inputs[i].dtype;
    if (!dtype_is_float(t) && !dtype_is_integer(t))
        return infer_fail(args, PLX_DTYPE_MISMATCH, "%s (input %d) must be a float or integer tensor, got %s",
                          role, (int)i, meta_format(&args->inputs[i], b, sizeof b));
    return PLX_OK;
}

/* Comparisons: numeric inputs of one dtype; the result is bool. */
static plx_status infer_compare(op_infer_args *args)
{
    static const plx_dtype bool_dtype = {PLX_DTYPE_CODE_BOOL, 8, 1};
    return infer_binary(args, require_numeric, &bool_dtype);
}

static plx_status infer_where(op_infer_args *args)
{
    static const int32_t all[3] = {0, 1, 2};
    plx_status st = infer_require_dtype(args, 0, PLX_BOOL, "cond");
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, 1, 2);
    if (st != PLX_OK)
        return st;
    tensor_meta out = {0};
    st = infer_broadcast(args, all, 3, &out);
    if (st != PLX_OK)
        return st;
    out.dtype = args->inputs[1].dtype;
    args->outputs[0] = out;
    return PLX_OK;
}

/* Cost weights relative to one add: transcendental functions cost a few
 * tens of flops each in libm. */
static double work_cheap(const op_infer_args *args)
{
    return (double)meta_numel(&args->outputs[0]);
}

static double work_transcendental(const op_infer_args *args)
{
    return 10.0 * (double)meta_numel(&args->outputs[0]);
}

static double work_heavy(const op_infer_args *args)
{
    return 20.0 * (double)meta_numel(&args->outputs[0]);
}


/* ---- Gradient rules ------------------------------------------------------ */

/* Unary: dx = <op>_grad(dy, x) with the forward attrs. */
static plx_status grad_unary(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    (void)need;
    if (dy[0] < 0)
        return PLX_OK;
    int32_t in[2] = {dy[0], n->in[0]};
    dx[0] = grad_op(gc, n->op_id - PLX_OP_NEG + PLX_OP_NEG_GRAD, n->attrs, in, 2);
    return dx[0] < 0 ? grad_status(gc) : PLX_OK;
}

static int32_t binary(grad_ctx *gc, int32_t op, int32_t a, int32_t b)
{
    int32_t in[2] = {a, b};
    return grad_op(gc, op, NULL, in, 2);
}

static int32_t scalar(grad_ctx *gc, float value)
{
    tensor_meta m = {.dtype = PLX_F32, .ndim = 0};
    return grad_fill(gc, value, &m);
}

static int32_t as_float(grad_ctx *gc, int32_t mask)
{
    plx_cast_attrs c = {sizeof c, PLX_F32};
    return grad_op(gc, PLX_OP_CAST, &c, &mask, 1);
}

/* Broadcasting arithmetic: the local derivative, then summed back to each
 * input's shape. maximum/minimum split the gradient evenly on ties, as
 * PyTorch does. */
static plx_status grad_arith(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    int32_t g = dy[0], a = n->in[0], b = n->in[1], y = n->out[0];
    if (g < 0)
        return PLX_OK;
    int32_t ga = -1, gb = -1;
    switch (n->op_id) {
    case PLX_OP_ADD:
        ga = g;
        gb = g;
        break;
    case PLX_OP_SUB:
        ga = g;
        gb = need[1] ? grad_op(gc, PLX_OP_NEG, NULL, &g, 1) : -1;
        break;
    case PLX_OP_MUL:
        ga = need[0] ? binary(gc, PLX_OP_MUL, g, b) : -1;
        gb = need[1] ? binary(gc, PLX_OP_MUL, g, a) : -1;
        break;
    case PLX_OP_DIV: /* d/da = g / b; d/db = -g * y / b */
        ga = need[0] ? binary(gc, PLX_OP_DIV, g, b) : -1;
        if (need[1]) {
            int32_t gy = binary(gc, PLX_OP_MUL, g, y);
            int32_t q = gy < 0 ? -1 : binary(gc, PLX_OP_DIV, gy, b);
            gb = q < 0 ? -1 : grad_op(gc, PLX_OP_NEG, NULL, &q, 1);
        }
        break;
    case PLX_OP_POW: /* d/da = g * b * a^(b-1) = g * b * y / a; d/db = g * y * log(a) */
        if (need[0]) {
            int32_t one = scalar(gc, 1.0f);
            int32_t bm1 = one < 0 ? -1 : binary(gc, PLX_OP_SUB, b, one);
            int32_t p = bm1 < 0 ? -1 : binary(gc, PLX_OP_POW, a, bm1);
            int32_t bp = p < 0 ? -1 : binary(gc, PLX_OP_MUL, b, p);
            ga = bp < 0 ? -1 : binary(gc, PLX_OP_MUL, g, bp);
        }
        if (need[1]) {
            int32_t la = grad_op(gc, PLX_OP_LOG, NULL, &a, 1);
            int32_t yl = la < 0 ? -1 : binary(gc, PLX_OP_MUL, y, la);
            gb = yl < 0 ? -1 : binary(gc, PLX_OP_MUL, g, yl);
        }
        break;
    case PLX_OP_MAXIMUM:
    case PLX_OP_MINIMUM: {
        int32_t wins = binary(gc, n->op_id == PLX_OP_MAXIMUM ? PLX_OP_GT : PLX_OP_LT, a, b);
        int32_t ties = binary(gc, PLX_OP_EQ, a, b);
        int32_t wf = wins < 0 ? -1 : as_float(gc, wins), tf = ties < 0 ? -1 : as_float(gc, ties);
        int32_t half = scalar(gc, 0.5f);
        int32_t th = tf < 0 || half < 0 ? -1 : binary(gc, PLX_OP_MUL, tf, half);
        int32_t share_a = wf < 0 || th < 0 ? -1 : binary(gc, PLX_OP_ADD, wf, th);
        ga = need[0] && share_a >= 0 ? binary(gc, PLX_OP_MUL, g, share_a) : -1;
        if (need[1] && share_a >= 0) {
            int32_t one = scalar(gc, 1.0f);
            int32_t share_b = one < 0 ? -1 : binary(gc, PLX_OP_SUB, one, share_a);
            gb = share_b < 0 ? -1 : binary(gc, PLX_OP_MUL, g, share_b);
        }
        break;
    }
    default:
        return PLX_INTERNAL;
    }
    if (need[0]) {
        dx[0] = grad_sum_to(gc, ga, grad_meta(gc, a));
        if (dx[0] < 0)
            return grad_status(gc);
    }
    if (need[1]) {
        dx[1] = grad_sum_to(gc, gb, grad_meta(gc, b));
        if (dx[1] < 0)
            return grad_status(gc);
    }
    return PLX_OK;
}

/* where(c, a, b): the gradient flows to a where c holds, to b elsewhere. */
static plx_status grad_where(grad_ctx *gc, const graph_node *n, const int32_t *dy, const bool *need, int32_t *dx)
{
    int32_t g = dy[0];
    if (g < 0)
        return PLX_OK;
    int32_t zero = scalar(gc, 0.0f);
    if (zero < 0)
        return grad_status(gc);
    for (int32_t side = 1; side <= 2; side++) {
        if (!need[side])
            continue;
        int32_t in[3] = {n->in[0], side == 1 ? g : zero, side == 1 ? zero : g};
        int32_t picked = grad_op(gc, PLX_OP_WHERE, NULL, in, 3);
        dx[side] = grad_sum_to(gc, picked, grad_meta(gc, n->in[side]));
        if (dx[side] < 0)
            return grad_status(gc);
    }
    return PLX_OK;
}

#define UNARY_DEF(id, work) {PLX_OP_##id, 1, 1, 1, 0, 0, NULL, infer_unary, work, grad_unary}
#define UNARY_DEF_ATTRS(id, type, deflt, work)                                                                \
    {PLX_OP_##id, 1, 1, 1, 0, sizeof(type), &deflt, infer_unary, work, grad_unary}
#define GRAD_DEF(id, work) {PLX_OP_##id, 2, 2, 1, 0, 0, NULL, infer_unary_grad, work}
#define GRAD_DEF_ATTRS(id, type, deflt, work)                                                                 \
    {PLX_OP_##id, 2, 2, 1, 0, sizeof(type), &deflt, infer_unary_grad, work}
#define BINARY_DEF(id, infer, work) {PLX_OP_##id, 2, 2, 1, 0, 0, NULL, infer, work, NULL}
#define ARITH_DEF(id, work) {PLX_OP_##id, 2, 2, 1, 0, 0, NULL, infer_arith, work, grad_arith}

const op_def op_defs_elementwise[] = {
    UNARY_DEF(NEG, work_cheap),
    UNARY_DEF(ABS, work_cheap),
    UNARY_DEF(EXP, work_transcendental),
    UNARY_DEF(LOG, work_transcendental),
    UNARY_DEF(SQRT, work_cheap),
    UNARY_DEF(RSQRT, work_cheap),
    UNARY_DEF(SQUARE, work_cheap),
    UNARY_DEF(RELU, work_cheap),
    UNARY_DEF_ATTRS(LEAKY_RELU, plx_leaky_relu_attrs, leaky_relu_default, work_cheap),
    UNARY_DEF_ATTRS(ELU, plx_elu_attrs, elu_default, work_transcendental),
    UNARY_DEF_ATTRS(GELU, plx_gelu_attrs, gelu_default, work_heavy),
    UNARY_DEF(SIGMOID, work_transcendental),
    UNARY_DEF(TANH, work_transcendental),
    UNARY_DEF_ATTRS(SOFTPLUS, plx_softplus_attrs, softplus_default, work_heavy),
    UNARY_DEF_ATTRS(CLAMP, plx_clamp_attrs, clamp_default, work_cheap),

    GRAD_DEF(NEG_GRAD, work_cheap),
    GRAD_DEF(ABS_GRAD, work_cheap),
    GRAD_DEF(EXP_GRAD, work_transcendental),
    GRAD_DEF(LOG_GRAD, work_cheap),
    GRAD_DEF(SQRT_GRAD, work_cheap),
    GRAD_DEF(RSQRT_GRAD, work_cheap),
    GRAD_DEF(SQUARE_GRAD, work_cheap),
    GRAD_DEF(RELU_GRAD, work_cheap),
    GRAD_DEF_ATTRS(LEAKY_RELU_GRAD, plx_leaky_relu_attrs, leaky_relu_default, work_cheap),
    GRAD_DEF_ATTRS(ELU_GRAD, plx_elu_attrs, elu_default, work_transcendental),
    GRAD_DEF_ATTRS(GELU_GRAD, plx_gelu_attrs, gelu_default, work_heavy),
    GRAD_DEF(SIGMOID_GRAD, work_transcendental),
    GRAD_DEF(TANH_GRAD, work_transcendental),
    GRAD_DEF_ATTRS(SOFTPLUS_GRAD, plx_softplus_attrs, softplus_default, work_heavy),
    GRAD_DEF_ATTRS(CLAMP_GRAD, plx_clamp_attrs, clamp_default, work_cheap),

    ARITH_DEF(ADD, work_cheap),
    ARITH_DEF(SUB, work_cheap),
    ARITH_DEF(MUL, work_cheap),
    ARITH_DEF(DIV, work_cheap),
    ARITH_DEF(POW, work_heavy),
    ARITH_DEF(MAXIMUM, work_cheap),
    ARITH_DEF(MINIMUM, work_cheap),

    BINARY_DEF(EQ, infer_compare, work_cheap),
    BINARY_DEF(NE, infer_compare, work_cheap),
    BINARY_DEF(LT, infer_compare, work_cheap),
    BINARY_DEF(LE, infer_compare, work_cheap),
    BINARY_DEF(GT, infer_compare, work_cheap),
    BINARY_DEF(GE, infer_compare, work_cheap),

    {PLX_OP_WHERE, 3, 3, 1, 0, 0, NULL, infer_where, work_cheap, grad_where},
};
const size_t op_defs_elementwise_count = sizeof(op_defs_elementwise) / sizeof(op_defs_elementwise[0]);
