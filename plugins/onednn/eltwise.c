/*
 * onednn kernels of the eltwise family: the unary ops of the catalog and
 * their gradients, f32 or bf16, through oneDNN's eltwise primitive on the
 * tensor seen as one flat row (the op is elementwise and the memory plain).
 *
 * Every *_grad op takes (dy, x), never y, so every backward primitive is
 * the "from src" kind (no *_use_dst_for_bwd algorithm is needed).
 *
 *   neg        linear(alpha -1)       y = -x;         dx = -dy
 *   abs        abs                    dx = dy * sign(x), sign(0) = 0
 *   exp, log, sqrt, square, tanh      as named
 *   rsqrt      pow(alpha 1, beta -0.5)  y = x^-0.5;   dx = -0.5 dy x^-1.5
 *   relu       relu(alpha 0)          dx = 0 at x = 0 (PyTorch's threshold)
 *   leaky_relu relu(alpha slope)      dx = slope * dy at x = 0, as cpu_blas
 *   elu        elu(alpha)             dx = alpha e^x dy for x <= 0
 *   gelu       gelu_erf, or gelu_tanh when approximate_tanh
 *   sigmoid    logistic
 *   softplus   soft_relu: log(1 + e^x). Only beta = 1 (oneDNN 2.x has no
 *              beta); PyTorch's threshold T switches to y = x above it,
 *              which soft_relu matches to float precision only where
 *              log1p(e^-x) is below half an ulp of x (x >= 15), and
 *              cpu_blas's log1p(expf(x)) overflows above 88: T must lie in
 *              [15, 88], else the call is declined.
 *   clamp      clip(lo, hi), a missing bound being infinite. The gradient
 *              passes for lo <= x <= hi (bounds included, as PyTorch); clip's
 *              passes for lo < x <= hi, so the backward primitive gets
 *              nextafterf(lo, -inf) as its lower bound, which makes the
 *              two sets equal for every float x. min > max (PyTorch: every
 *              result is max) is declined: oneDNN's clip rejects it.
 *
 * NaN inputs: oneDNN's JIT kernels do not always propagate NaN where
 * cpu_blas (and PyTorch) do: relu(NaN) and clamp(NaN) give 0 and the lower
 * bound, and abs_grad at NaN passes dy (cpu_blas: 0). Results on finite
 * inputs agree with cpu_blas to float rounding.
 */
#include <math.h>
#include <stdio.h>

#include "onednn.h"

/* One pass over the inputs and the output; transcendental algorithms add
 * this many ns per element on one thread (measured over 1M elements: gelu
 * 0.36, sigmoid 0.2, tanh_grad 0.07, exp 0.04). */
#define ELTWISE_TRANSCENDENTAL_NS_PER_ELEM 0.25

typedef struct eltwise_map {
    dnnl_alg_kind_t alg;
    float alpha, beta;         /* forward (and backward unless noted) */
    float bwd_alpha, bwd_beta; /* the backward primitive's (clamp differs) */
    bool transcendental;
} eltwise_map;

static const plx_leaky_relu_attrs leaky_default = PLX_LEAKY_RELU_ATTRS_DEFAULT;
static const plx_elu_attrs elu_default = PLX_ELU_ATTRS_DEFAULT;
static const plx_gelu_attrs gelu_default = PLX_GELU_ATTRS_DEFAULT;
static const plx_softplus_attrs softplus_default = PLX_SOFTPLUS_ATTRS_DEFAULT;
static const plx_clamp_attrs clamp_default = PLX_CLAMP_ATTRS_DEFAULT;

#define SOFTPLUS_MIN_THRESHOLD 15.0f
#define SOFTPLUS_MAX_THRESHOLD 88.0f

static bool is_grad(int32_t op_id)
{
    return op_id >= PLX_OP_NEG_GRAD && op_id <= PLX_OP_CLAMP_GRAD;
}

static int32_t forward_op(int32_t op_id)
{
    return is_grad(op_id) ? op_id - PLX_OP_NEG_GRAD + PLX_OP_NEG : op_id;
}

static void clamp_bounds(const plx_clamp_attrs *a, float *lo, float *hi)
{
    *lo = a->has_min ? a->min_value : -INFINITY;
    *hi = a->has_max ? a->max_value : INFINITY;
}

/* The oneDNN algorithm for the call's op and attrs. */
static eltwise_map map_of(const plx_op_call *call)
{
    eltwise_map m = {dnnl_eltwise_linear, 0.0f, 0.0f, 0.0f, 0.0f, false};
    switch (forward_op(call->op_id)) {
    case PLX_OP_NEG:
        m.alg = dnnl_eltwise_linear;
        m.alpha = -1.0f;
        break;
    case PLX_OP_ABS:
        m.alg = dnnl_eltwise_abs;
        break;
    case PLX_OP_EXP:
        m = (eltwise_map){dnnl_eltwise_exp, 0.0f, 0.0f, 0.0f, 0.0f, true};
        break;
    case PLX_OP_LOG:
        m = (eltwise_map){dnnl_eltwise_log, 0.0f, 0.0f, 0.0f, 0.0f, true};
        break;
    case PLX_OP_SQRT:
        m.alg = dnnl_eltwise_sqrt;
        break;
    case PLX_OP_RSQRT:
        m = (eltwise_map){dnnl_eltwise_pow, 1.0f, -0.5f, 0.0f, 0.0f, true};
        break;
    case PLX_OP_SQUARE:
        m.alg = dnnl_eltwise_square;
        break;
    case PLX_OP_RELU:
        m.alg = dnnl_eltwise_relu;
        break;
    case PLX_OP_LEAKY_RELU: {
        const plx_leaky_relu_attrs *a = call->attrs != NULL ? call->attrs : &leaky_default;
        m.alg = dnnl_eltwise_relu;
        m.alpha = a->negative_slope;
        break;
    }
    case PLX_OP_ELU: {
        const plx_elu_attrs *a = call->attrs != NULL ? call->attrs : &elu_default;
        m = (eltwise_map){dnnl_eltwise_elu, a->alpha, 0.0f, 0.0f, 0.0f, true};
        break;
    }
    case PLX_OP_GELU: {
        const plx_gelu_attrs *a = call->attrs != NULL ? call->attrs : &gelu_default;
        m = (eltwise_map){
            a->approximate_tanh ? dnnl_eltwise_gelu_tanh : dnnl_eltwise_gelu_erf, 0.0f, 0.0f, 0.0f, 0.0f, true};
        break;
    }
    case PLX_OP_SIGMOID:
        m = (eltwise_map){dnnl_eltwise_logistic, 0.0f, 0.0f, 0.0f, 0.0f, true};
        break;
    case PLX_OP_TANH:
        m = (eltwise_map){dnnl_eltwise_tanh, 0.0f, 0.0f, 0.0f, 0.0f, true};
        break;
    case PLX_OP_SOFTPLUS:
        /* alpha 1: 3.x's soft_relu divides by it; 2.x ignores it. */
        m = (eltwise_map){dnnl_eltwise_soft_relu, 1.0f, 0.0f, 0.0f, 0.0f, true};
        break;
    case PLX_OP_CLAMP: {
        const plx_clamp_attrs *a = call->attrs != NULL ? call->attrs : &clamp_default;
        float lo, hi;
        clamp_bounds(a, &lo, &hi);
        m = (eltwise_map){dnnl_eltwise_clip, lo, hi, nextafterf(lo, -INFINITY), hi, false};
        return m;
    }
    default:
        break;
    }
    m.bwd_alpha = m.alpha;
    m.bwd_beta = m.beta;
    return m;
}

static bool check_eltwise(const plx_op_call *call, char *reason, size_t cap)
{
    int32_t op = forward_op(call->op_id);
    if (op == PLX_OP_SOFTPLUS) {
        const plx_softplus_attrs *a = call->attrs != NULL ? call->attrs : &softplus_default;
        if (a->beta != 1.0f) {
            snprintf(reason, cap, "softplus beta=%g: oneDNN's soft_relu has beta 1 only", (double)a->beta);
            return false;
        }
        if (!(a->threshold >= SOFTPLUS_MIN_THRESHOLD && a->threshold <= SOFTPLUS_MAX_THRESHOLD)) {
            snprintf(reason, cap,
                     "softplus threshold=%g: oneDNN's soft_relu equals PyTorch's linear tail to float precision "
                     "only for thresholds in [%g, %g]",
                     (double)a->threshold, (double)SOFTPLUS_MIN_THRESHOLD, (double)SOFTPLUS_MAX_THRESHOLD);
            return false;
        }
    }
    if (op == PLX_OP_CLAMP) {
        const plx_clamp_attrs *a = call->attrs != NULL ? call->attrs : &clamp_default;
        float lo, hi;
        clamp_bounds(a, &lo, &hi);
        if (lo > hi) {
            snprintf(reason, cap, "clamp min %g > max %g: oneDNN's clip needs min <= max", (double)lo, (double)hi);
            return false;
        }
    }
    return true;
}

/* x (forward) or (dy, x) -> y / dx, all the same shape: one flat row. */
static dnnl_status_t build_eltwise(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    const eltwise_map map = map_of(call);
    int64_t n = plx_desc_numel(&call->outputs[0]);
    one_md md;
    one_md_clear(&md);
    dnnl_primitive_desc_t fwd = NULL, bwd = NULL;
    const one_binding fwd_args[] = {{DNNL_ARG_SRC, ONE_ARG_INPUT, 0, &md}, {DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &md}};
    const one_binding bwd_args[] = {{DNNL_ARG_DIFF_DST, ONE_ARG_INPUT, 0, &md},
                                    {DNNL_ARG_SRC, ONE_ARG_INPUT, 1, &md},
                                    {DNNL_ARG_DIFF_SRC, ONE_ARG_OUTPUT, 0, &md}};
    dnnl_status_t st = one_md_plain(&md, 1, &n, one_dt(&call->outputs[0]));
    one_md_ref r = one_ref(&md);
    if (st != dnnl_success) {
        one_fail(st, reason, cap, "memory descriptor");
    } else if (!is_grad(call->op_id)) {
        if ((st = one_eltwise_fwd_pd(&fwd, s->engine, dnnl_forward_inference, map.alg, r, r, map.alpha, map.beta)) !=
            dnnl_success)
            one_fail(st, reason, cap, "eltwise forward descriptor");
        else
            st =
                one_plan_add_bound_step(s, plan, fwd, fwd_args, ONE_COUNT_OF(fwd_args), "eltwise forward", reason, cap);
    } else {
        if ((st = one_eltwise_fwd_pd(&fwd, s->engine, dnnl_forward_training, map.alg, r, r, map.bwd_alpha,
                                     map.bwd_beta)) != dnnl_success)
            one_fail(st, reason, cap, "eltwise forward (hint) descriptor");
        else if ((st = one_eltwise_bwd_pd(&bwd, s->engine, map.alg, r, r, r, map.bwd_alpha, map.bwd_beta, fwd)) !=
                 dnnl_success)
            one_fail(st, reason, cap, "eltwise backward descriptor");
        else
            st = one_plan_add_bound_step(s, plan, bwd, bwd_args, ONE_COUNT_OF(bwd_args), "eltwise backward", reason,
                                         cap);
    }
    one_pd_destroy(bwd);
    one_pd_destroy(fwd);
    one_md_release(&md);
    return st;
}

static double estimate_eltwise(const one_state *s, const plx_op_call *call)
{
    (void)s;
    const eltwise_map map = map_of(call);
    double per_elem = map.transcendental ? ELTWISE_TRANSCENDENTAL_NS_PER_ELEM : 0.0;
    return one_estimate_memory_bound(call, 1.0) + per_elem * (double)plx_desc_numel(&call->outputs[0]);
}

#define ELTWISE(op)                                                                                                    \
    {                                                                                                                  \
        op, 0, ONE_DT_F32 | ONE_DT_BF16, check_eltwise, build_eltwise, estimate_eltwise                                \
    }
#define ELTWISE_ATTRS(op, type)                                                                                        \
    {                                                                                                                  \
        op, sizeof(type), ONE_DT_F32 | ONE_DT_BF16, check_eltwise, build_eltwise, estimate_eltwise                     \
    }

ONE_FAMILY_TABLE(eltwise, ELTWISE(PLX_OP_NEG), ELTWISE(PLX_OP_ABS), ELTWISE(PLX_OP_EXP), ELTWISE(PLX_OP_LOG),
                 ELTWISE(PLX_OP_SQRT), ELTWISE(PLX_OP_RSQRT), ELTWISE(PLX_OP_SQUARE), ELTWISE(PLX_OP_RELU),
                 ELTWISE_ATTRS(PLX_OP_LEAKY_RELU, plx_leaky_relu_attrs), ELTWISE_ATTRS(PLX_OP_ELU, plx_elu_attrs),
                 ELTWISE_ATTRS(PLX_OP_GELU, plx_gelu_attrs), ELTWISE(PLX_OP_SIGMOID), ELTWISE(PLX_OP_TANH),
                 ELTWISE_ATTRS(PLX_OP_SOFTPLUS, plx_softplus_attrs), ELTWISE_ATTRS(PLX_OP_CLAMP, plx_clamp_attrs),
                 ELTWISE(PLX_OP_NEG_GRAD), ELTWISE(PLX_OP_ABS_GRAD), ELTWISE(PLX_OP_EXP_GRAD), ELTWISE(PLX_OP_LOG_GRAD),
                 ELTWISE(PLX_OP_SQRT_GRAD), ELTWISE(PLX_OP_RSQRT_GRAD), ELTWISE(PLX_OP_SQUARE_GRAD),
                 ELTWISE(PLX_OP_RELU_GRAD), ELTWISE_ATTRS(PLX_OP_LEAKY_RELU_GRAD, plx_leaky_relu_attrs),
                 ELTWISE_ATTRS(PLX_OP_ELU_GRAD, plx_elu_attrs), ELTWISE_ATTRS(PLX_OP_GELU_GRAD, plx_gelu_attrs),
                 ELTWISE(PLX_OP_SIGMOID_GRAD), ELTWISE(PLX_OP_TANH_GRAD),
                 ELTWISE_ATTRS(PLX_OP_SOFTPLUS_GRAD, plx_softplus_attrs),
                 ELTWISE_ATTRS(PLX_OP_CLAMP_GRAD, plx_clamp_attrs));
