/*
 * onednn kernels of the binary family: core.add, sub, mul, div, maximum and
 * minimum with NumPy/PyTorch broadcasting, f32 or bf16, through oneDNN's
 * binary primitive.
 *
 * oneDNN broadcasts only its second source (src1 dims equal dst's or 1);
 * its first must have the output's shape. So:
 *  - a has the output's shape: src0 = a, src1 = b;
 *  - else b has it: add, mul, maximum and minimum swap the operands;
 *    sub swaps them and negates the result with an eltwise post-op
 *    (a - b = -(b - a) exactly in IEEE arithmetic); div is declined;
 *  - else (both broadcast, [3,1] + [1,4]) the call is declined.
 * Before building, dims where the output has size 1 are dropped and
 * neighbours where src1 either broadcasts in both or in neither are merged
 * ([3,4,17] + [4,17] becomes [3,68] + [1,68]), which keeps oneDNN on its
 * JIT kernels for the common bias and per-row patterns.
 *
 * NaN inputs: oneDNN's max/min return src1 when src0 is NaN, where
 * cpu_blas (as torch.maximum/minimum) propagates the NaN from either side.
 */
#include <stdio.h>

#include "onednn.h"

enum { MATCH, BCAST };

typedef struct binary_plan {
    bool swap, negate;
    int ndim;
    int64_t dst[PLX_MAX_DIMS], src1[PLX_MAX_DIMS];
} binary_plan;

/* Operand dims aligned to the output's rank (leading 1s). */
static void aligned_dims(const plx_tensor_desc *t, int nd, int64_t *out)
{
    int lead = nd - (int)t->ndim;
    for (int i = 0; i < nd; i++)
        out[i] = i < lead ? 1 : t->shape[i - lead];
}

static bool same_dims(const int64_t *a, const int64_t *b, int nd)
{
    for (int i = 0; i < nd; i++)
        if (a[i] != b[i])
            return false;
    return true;
}

static bool commutes(int32_t op_id)
{
    return op_id == PLX_OP_ADD || op_id == PLX_OP_MUL || op_id == PLX_OP_MAXIMUM || op_id == PLX_OP_MINIMUM;
}

/* Which operand goes first, and the merged dims; false (reason written)
 * when oneDNN cannot express the broadcast. */
static bool plan_of(const plx_op_call *call, binary_plan *p, char *reason, size_t cap)
{
    const plx_tensor_desc *y = &call->outputs[0];
    int nd = (int)y->ndim;
    int64_t a[PLX_MAX_DIMS], b[PLX_MAX_DIMS];
    aligned_dims(&call->inputs[0], nd, a);
    aligned_dims(&call->inputs[1], nd, b);
    p->swap = p->negate = false;
    if (!same_dims(a, y->shape, nd)) {
        if (!same_dims(b, y->shape, nd)) {
            snprintf(reason, cap, "both operands broadcast: oneDNN broadcasts only its second source");
            return false;
        }
        if (call->op_id == PLX_OP_DIV) {
            snprintf(reason, cap, "div with a broadcast dividend: oneDNN broadcasts only its second source");
            return false;
        }
        p->swap = true;
        p->negate = !commutes(call->op_id);
    }
    const int64_t *src1 = p->swap ? a : b;
    p->ndim = 0;
    int last_kind = -1;
    for (int i = 0; i < nd; i++) {
        if (y->shape[i] == 1)
            continue;
        int kind = src1[i] == y->shape[i] ? MATCH : BCAST;
        if (kind == last_kind) {
            p->dst[p->ndim - 1] *= y->shape[i];
            p->src1[p->ndim - 1] *= src1[i];
        } else {
            p->dst[p->ndim] = y->shape[i];
            p->src1[p->ndim] = src1[i];
            p->ndim++;
            last_kind = kind;
        }
    }
    if (p->ndim == 0) {
        p->ndim = 1;
        p->dst[0] = p->src1[0] = 1;
    }
    return true;
}

static bool check_binary(const plx_op_call *call, char *reason, size_t cap)
{
    binary_plan p;
    return plan_of(call, &p, reason, cap);
}

static dnnl_alg_kind_t binary_alg(int32_t op_id)
{
    switch (op_id) {
    case PLX_OP_ADD:
        return dnnl_binary_add;
    case PLX_OP_SUB:
        return dnnl_binary_sub;
    case PLX_OP_MUL:
        return dnnl_binary_mul;
    case PLX_OP_DIV:
        return dnnl_binary_div;
    case PLX_OP_MAXIMUM:
        return dnnl_binary_max;
    default:
        return dnnl_binary_min;
    }
}

static dnnl_status_t build_binary(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    binary_plan p;
    if (!plan_of(call, &p, reason, cap))
        return dnnl_unimplemented;
    dnnl_data_type_t dt = one_dt(&call->outputs[0]);
    one_md m[2]; /* dst (= src0), src1 */
    one_mds_clear(m, 2);
    dnnl_primitive_desc_t pd = NULL;
    const one_binding args[] = {{DNNL_ARG_SRC_0, ONE_ARG_INPUT, p.swap ? 1 : 0, &m[0]},
                                {DNNL_ARG_SRC_1, ONE_ARG_INPUT, p.swap ? 0 : 1, &m[1]},
                                {DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &m[0]}};
    dnnl_status_t st;
    if ((st = one_md_plain(&m[0], p.ndim, p.dst, dt)) != dnnl_success ||
        (st = one_md_plain(&m[1], p.ndim, p.src1, dt)) != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = one_binary_pd(&pd, s->engine, binary_alg(call->op_id), one_ref(&m[0]), one_ref(&m[1]),
                                 one_ref(&m[0]), p.negate)) != dnnl_success)
        one_fail(st, reason, cap, "binary descriptor");
    else
        st = one_plan_add_bound_step(s, plan, pd, args, ONE_COUNT_OF(args), "binary", reason, cap);
    one_pd_destroy(pd);
    one_mds_release(m, 2);
    return st;
}

/* Measured: a binary call costs ~2 us more than an eltwise one (4096
 * elements: 3.9 us against 1.9 us), then moves bytes as fast. */
#define BINARY_EXTRA_CALL_NS 2000.0

static double estimate_binary(const one_state *s, const plx_op_call *call)
{
    (void)s;
    return BINARY_EXTRA_CALL_NS + one_estimate_memory_bound(call, 1.0);
}

#define BINARY(op)                                                                                                     \
    {                                                                                                                  \
        op, 0, ONE_DT_F32 | ONE_DT_BF16, check_binary, build_binary, estimate_binary                                   \
    }

ONE_FAMILY_TABLE(binary, BINARY(PLX_OP_ADD), BINARY(PLX_OP_SUB), BINARY(PLX_OP_MUL), BINARY(PLX_OP_DIV),
                 BINARY(PLX_OP_MAXIMUM), BINARY(PLX_OP_MINIMUM));
