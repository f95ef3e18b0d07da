/*
 * onednn kernels of the softmax family: core.softmax, core.log_softmax and
 * their backward ops ((dy, y) -> dx, as oneDNN's backward takes dst), f32,
 * through oneDNN's softmax_v2 (softmax in 3.x) with the accurate (max-
 * subtracting) and log algorithms.
 *
 * x is seen as [outer, len] when the axis is the last one (the case
 * oneDNN's JIT kernels cover best) and as [outer, len, inner] otherwise;
 * the plain layout makes both views the same memory as x.
 */
#include <stdio.h>

#include "onednn.h"

static const plx_softmax_attrs softmax_default = PLX_SOFTMAX_ATTRS_DEFAULT;

/* One pass over x and y, plus the exponentials of the forward (measured on
 * [1024, 1000]: 655 us forward, 512 us backward on one thread). */
#define SOFTMAX_NS_PER_ELEM 0.25

static bool is_log(int32_t op_id)
{
    return op_id == PLX_OP_LOG_SOFTMAX || op_id == PLX_OP_LOG_SOFTMAX_BACKWARD;
}

static bool is_backward(int32_t op_id)
{
    return op_id == PLX_OP_SOFTMAX_BACKWARD || op_id == PLX_OP_LOG_SOFTMAX_BACKWARD;
}

/* The [outer, len(, inner)] view; returns its ndim (2 or 3). */
static int view_of(const plx_op_call *call, int64_t dims[3])
{
    const plx_tensor_desc *x = &call->inputs[0];
    const plx_softmax_attrs *a = call->attrs != NULL ? call->attrs : &softmax_default;
    int32_t axis = a->axis < 0 ? a->axis + x->ndim : a->axis;
    dims[0] = dims[1] = dims[2] = 1;
    for (int32_t i = 0; i < x->ndim; i++)
        dims[i < axis ? 0 : i == axis ? 1 : 2] *= x->shape[i];
    return dims[2] == 1 ? 2 : 3;
}

static bool check_softmax(const plx_op_call *call, char *reason, size_t cap)
{
    if (call->inputs[0].ndim == 0) {
        snprintf(reason, cap, "softmax of a scalar");
        return false;
    }
    return true;
}

static dnnl_status_t build_softmax(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    int64_t dims[3];
    int nd = view_of(call, dims);
    dnnl_alg_kind_t alg = is_log(call->op_id) ? dnnl_softmax_log : dnnl_softmax_accurate;
    one_md md;
    one_md_clear(&md);
    dnnl_primitive_desc_t fwd = NULL, bwd = NULL;
    const one_binding fwd_args[] = {{DNNL_ARG_SRC, ONE_ARG_INPUT, 0, &md}, {DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &md}};
    const one_binding bwd_args[] = {{DNNL_ARG_DIFF_DST, ONE_ARG_INPUT, 0, &md},
                                    {DNNL_ARG_DST, ONE_ARG_INPUT, 1, &md},
                                    {DNNL_ARG_DIFF_SRC, ONE_ARG_OUTPUT, 0, &md}};
    dnnl_status_t st = one_md_plain(&md, nd, dims, dnnl_f32);
    one_md_ref r = one_ref(&md);
    if (st != dnnl_success) {
        one_fail(st, reason, cap, "memory descriptor");
    } else if (!is_backward(call->op_id)) {
        if ((st = one_softmax_fwd_pd(&fwd, s->engine, dnnl_forward_inference, alg, r, r, 1)) != dnnl_success)
            one_fail(st, reason, cap, "softmax forward descriptor");
        else
            st =
                one_plan_add_bound_step(s, plan, fwd, fwd_args, ONE_COUNT_OF(fwd_args), "softmax forward", reason, cap);
    } else {
        if ((st = one_softmax_fwd_pd(&fwd, s->engine, dnnl_forward_training, alg, r, r, 1)) != dnnl_success)
            one_fail(st, reason, cap, "softmax forward (hint) descriptor");
        else if ((st = one_softmax_bwd_pd(&bwd, s->engine, alg, r, r, r, 1, fwd)) != dnnl_success)
            one_fail(st, reason, cap, "softmax backward descriptor");
        else
            st = one_plan_add_bound_step(s, plan, bwd, bwd_args, ONE_COUNT_OF(bwd_args), "softmax backward", reason,
                                         cap);
    }
    one_pd_destroy(bwd);
    one_pd_destroy(fwd);
    one_md_release(&md);
    return st;
}

static double estimate_softmax(const one_state *s, const plx_op_call *call)
{
    (void)s;
    double elems = (double)plx_desc_numel(&call->inputs[0]);
    return one_estimate_memory_bound(call, 1.0) + (is_backward(call->op_id) ? 0.0 : SOFTMAX_NS_PER_ELEM * elems);
}

#define SOFTMAX(op)                                                                                                    \
    {                                                                                                                  \
        op, sizeof(plx_softmax_attrs), ONE_DT_F32, check_softmax, build_softmax, estimate_softmax                      \
    }

ONE_FAMILY_TABLE(softmax, SOFTMAX(PLX_OP_SOFTMAX), SOFTMAX(PLX_OP_SOFTMAX_BACKWARD), SOFTMAX(PLX_OP_LOG_SOFTMAX),
                 SOFTMAX(PLX_OP_LOG_SOFTMAX_BACKWARD));
