/*
 * Core ops of the elementwise family: arity, attrs and shape inference.
 *
 * Unary ops map a float tensor to one of the same dtype and shape; their
 * gradients take (dy, x) of one shape and dtype and give dx. Binary ops,
 * comparisons and where broadcast NumPy/PyTorch-style.
 */
#include <math.h>

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

/* Arithmetic: both inputs float and of one dtype; the result keeps it. */
static plx_status infer_arith(op_infer_args *args)
{
    static const int32_t both[2] = {0, 1};
    plx_status st = infer_require_float(args, 0, "a");
    if (st == PLX_OK)
        st = infer_require_float(args, 1, "b");
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, 0, 1);
    if (st != PLX_OK)
        return st;
    tensor_meta out = {0};
    st = infer_broadcast(args, both, 2, &out);
    if (st != PLX_OK)
        return st;
    out.dtype = args->inputs[0].dtype;
    args->outputs[0] = out;
    return PLX_OK;
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

static plx_status infer_compare(op_infer_args *args)
{
    static const int32_t both[2] = {0, 1};
    plx_status st = require_numeric(args, 0, "a");
    if (st == PLX_OK)
        st = require_numeric(args, 1, "b");
    if (st == PLX_OK)
        st = infer_require_same_dtype(args, 0, 1);
    if (st != PLX_OK)
        return st;
    tensor_meta out = {0};
    st = infer_broadcast(args, both, 2, &out);
    if (st != PLX_OK)
        return st;
    out.dtype = PLX_BOOL;
    args->outputs[0] = out;
    return PLX_OK;
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

#define UNARY_DEF(id, work) {PLX_OP_##id, 1, 1, 1, 0, 0, NULL, infer_unary, work}
#define UNARY_DEF_ATTRS(id, type, deflt, work)                                                                \
    {PLX_OP_##id, 1, 1, 1, 0, sizeof(type), &deflt, infer_unary, work}
#define GRAD_DEF(id, work) {PLX_OP_##id, 2, 2, 1, 0, 0, NULL, infer_unary_grad, work}
#define GRAD_DEF_ATTRS(id, type, deflt, work)                                                                 \
    {PLX_OP_##id, 2, 2, 1, 0, sizeof(type), &deflt, infer_unary_grad, work}
#define BINARY_DEF(id, infer, work) {PLX_OP_##id, 2, 2, 1, 0, 0, NULL, infer, work}

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

    BINARY_DEF(ADD, infer_arith, work_cheap),
    BINARY_DEF(SUB, infer_arith, work_cheap),
    BINARY_DEF(MUL, infer_arith, work_cheap),
    BINARY_DEF(DIV, infer_arith, work_cheap),
    BINARY_DEF(POW, infer_arith, work_heavy),
    BINARY_DEF(MAXIMUM, infer_arith, work_cheap),
    BINARY_DEF(MINIMUM, infer_arith, work_cheap),

    BINARY_DEF(EQ, infer_compare, work_cheap),
    BINARY_DEF(NE, infer_compare, work_cheap),
    BINARY_DEF(LT, infer_compare, work_cheap),
    BINARY_DEF(LE, infer_compare, work_cheap),
    BINARY_DEF(GT, infer_compare, work_cheap),
    BINARY_DEF(GE, infer_compare, work_cheap),

    {PLX_OP_WHERE, 3, 3, 1, 0, 0, NULL, infer_where, work_cheap},
};
const size_t op_defs_elementwise_count = sizeof(op_defs_elementwise) / sizeof(op_defs_elementwise[0]);
