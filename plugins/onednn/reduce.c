/*
 * onednn kernels of the reduce family: core.sum, mean, max and min over
 * any set of axes (keepdims or not: the output memory is the same), f32,
 * through oneDNN's reduction primitive.
 *
 * oneDNN wants dst with the rank of src and size 1 on reduced dims. As in
 * cpu_blas, size-1 dims are dropped and neighbours that are both reduced
 * or both kept are merged first ([N,C,H,W] over H,W becomes [N*C, H*W] ->
 * [N*C, 1]). A call that reduces nothing (every reduced axis has size 1,
 * so y is a copy of x) is declined: oneDNN needs at least one reduced dim.
 *
 * Precision: oneDNN accumulates sums in f32, cpu_blas in double; results
 * agree to float rounding of the partial sums. NaN inputs: oneDNN's max/min
 * keep a NaN only in some positions, where cpu_blas (as PyTorch) always
 * propagates it; sum and mean propagate NaN in both.
 */
#include <stdio.h>

#include "onednn.h"

static const plx_reduce_attrs reduce_default = PLX_REDUCE_ATTRS_DEFAULT;

typedef struct reduce_view {
    int ndim;
    int64_t src[PLX_MAX_DIMS], dst[PLX_MAX_DIMS];
} reduce_view;

/* Merged [kept | reduced] groups of x; ndim 0 when nothing is reduced. */
static void view_of(const plx_op_call *call, reduce_view *v)
{
    const plx_tensor_desc *x = &call->inputs[0];
    const plx_reduce_attrs *a = call->attrs != NULL ? call->attrs : &reduce_default;
    bool reduced[PLX_MAX_DIMS] = {false};
    for (int32_t i = 0; i < x->ndim; i++)
        reduced[i] = a->n_axes == 0;
    for (int32_t k = 0; k < a->n_axes; k++) {
        int32_t axis = a->axes[k] < 0 ? a->axes[k] + x->ndim : a->axes[k];
        if (axis >= 0 && axis < x->ndim)
            reduced[axis] = true;
    }
    v->ndim = 0;
    bool any_reduced = false;
    int last = -1;
    for (int32_t i = 0; i < x->ndim; i++) {
        if (x->shape[i] == 1)
            continue;
        int kind = reduced[i] ? 1 : 0;
        any_reduced |= reduced[i];
        if (kind == last) {
            v->src[v->ndim - 1] *= x->shape[i];
            v->dst[v->ndim - 1] *= reduced[i] ? 1 : x->shape[i];
        } else {
            v->src[v->ndim] = x->shape[i];
            v->dst[v->ndim] = reduced[i] ? 1 : x->shape[i];
            v->ndim++;
            last = kind;
        }
    }
    if (!any_reduced)
        v->ndim = 0;
}

static bool check_reduce(const plx_op_call *call, char *reason, size_t cap)
{
    reduce_view v;
    view_of(call, &v);
    if (v.ndim == 0) {
        snprintf(reason, cap, "nothing to reduce (every reduced axis has size 1)");
        return false;
    }
    return true;
}

static dnnl_alg_kind_t reduce_alg(int32_t op_id)
{
    switch (op_id) {
    case PLX_OP_SUM:
        return dnnl_reduction_sum;
    case PLX_OP_MEAN:
        return dnnl_reduction_mean;
    case PLX_OP_MAX:
        return dnnl_reduction_max;
    default:
        return dnnl_reduction_min;
    }
}

static dnnl_status_t build_reduce(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    reduce_view v;
    view_of(call, &v);
    one_md m[2]; /* src, dst */
    one_mds_clear(m, 2);
    dnnl_primitive_desc_t pd = NULL;
    const one_binding args[] = {{DNNL_ARG_SRC, ONE_ARG_INPUT, 0, &m[0]}, {DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &m[1]}};
    dnnl_status_t st;
    if ((st = one_md_plain(&m[0], v.ndim, v.src, dnnl_f32)) != dnnl_success ||
        (st = one_md_plain(&m[1], v.ndim, v.dst, dnnl_f32)) != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = one_reduction_pd(&pd, s->engine, reduce_alg(call->op_id), one_ref(&m[0]), one_ref(&m[1]))) !=
             dnnl_success)
        one_fail(st, reason, cap, "reduction descriptor");
    else
        st = one_plan_add_bound_step(s, plan, pd, args, ONE_COUNT_OF(args), "reduction", reason, cap);
    one_pd_destroy(pd);
    one_mds_release(m, 2);
    return st;
}

/* Measured on one thread: a full sum of 1M floats moves 26 bytes per ns,
 * a last-axis sum or max of [1024, 1024] 12. */
#define REDUCE_PASSES 1.5

static double estimate_reduce(const one_state *s, const plx_op_call *call)
{
    (void)s;
    return one_estimate_memory_bound(call, REDUCE_PASSES);
}

#define REDUCE(op)                                                                                                     \
    {                                                                                                                  \
        op, sizeof(plx_reduce_attrs), ONE_DT_F32, check_reduce, build_reduce, estimate_reduce                          \
    }

ONE_FAMILY_TABLE(reduce, REDUCE(PLX_OP_SUM), REDUCE(PLX_OP_MEAN), REDUCE(PLX_OP_MAX), REDUCE(PLX_OP_MIN));
