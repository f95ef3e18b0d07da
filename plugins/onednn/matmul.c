/*
 * onednn kernels of the matmul family: core.matmul on 2-D operands, or on
 * operands with the same batch dims (flattened into one batch dim for
 * oneDNN), f32 or bf16. Transposes are expressed as strides of the plain row-major
 * tensors, so no reorder or copy is needed. Broadcast batches ([1,M,K] x
 * [B,K,N], or [B,M,K] x [K,N]) are declined: cpu_blas takes them.
 */
#include <stdio.h>

#include "onednn.h"

/* Measured on one thread (f32, brgemm on AVX-512): 512^3 at 151 GFLOP/s,
 * 64^3 in 4.9 us. */
#define MATMUL_CALL_NS 500.0
#define MATMUL_FLOPS_PER_NS 120.0
#define MATMUL_BF16_AMX_SPEEDUP 3.0

static const plx_matmul_attrs matmul_default = PLX_MATMUL_ATTRS_DEFAULT;

static bool check_matmul(const plx_op_call *call, char *reason, size_t cap)
{
    const plx_tensor_desc *a = &call->inputs[0], *b = &call->inputs[1];
    if (a->ndim < 2 || b->ndim < 2) {
        snprintf(reason, cap, "1-D matmul operands are not supported");
        return false;
    }
    if (a->ndim != b->ndim) {
        snprintf(reason, cap, "broadcast batch (a has %d dims, b %d): only same-batch matmuls", (int)a->ndim,
                 (int)b->ndim);
        return false;
    }
    for (int32_t d = 0; d < a->ndim - 2; d++)
        if (a->shape[d] != b->shape[d]) {
            snprintf(reason, cap, "broadcast batch (dim %d: %lld vs %lld): only same-batch matmuls", (int)d,
                     (long long)a->shape[d], (long long)b->shape[d]);
            return false;
        }
    return true;
}

/* Logical [batch,] rows x cols view of a row-major operand stored as
 * [batch,] rows x cols, or transposed (stored cols x rows). */
static dnnl_status_t operand_md(one_md *md, int64_t batch, int64_t rows, int64_t cols, bool transposed, bool batched,
                                dnnl_data_type_t dt)
{
    dnnl_dims_t dims, strides;
    int i = 0;
    if (batched) {
        dims[0] = batch;
        strides[0] = rows * cols;
        i = 1;
    }
    dims[i] = rows;
    dims[i + 1] = cols;
    strides[i] = transposed ? 1 : cols;
    strides[i + 1] = transposed ? rows : 1;
    return one_md_strides(md, batched ? 3 : 2, dims, dt, strides);
}

typedef struct matmul_dims {
    int64_t batch, m, k, n;
    bool trans_a, trans_b;
} matmul_dims;

static void dims_of(const plx_op_call *call, matmul_dims *d)
{
    const plx_matmul_attrs *at = call->attrs != NULL ? call->attrs : &matmul_default;
    const plx_tensor_desc *a = &call->inputs[0], *b = &call->inputs[1];
    d->trans_a = at->trans_a != 0;
    d->trans_b = at->trans_b != 0;
    d->batch = 1;
    for (int32_t i = 0; i < a->ndim - 2; i++)
        d->batch *= a->shape[i];
    d->m = a->shape[a->ndim - (d->trans_a ? 1 : 2)];
    d->k = a->shape[a->ndim - (d->trans_a ? 2 : 1)];
    d->n = b->shape[b->ndim - (d->trans_b ? 2 : 1)];
}

static dnnl_status_t build_matmul(one_state *s, const plx_op_call *call, one_plan *plan, char *reason, size_t cap)
{
    matmul_dims d;
    dims_of(call, &d);
    bool batched = call->inputs[0].ndim > 2;
    dnnl_data_type_t dt = one_dt(&call->inputs[0]);
    one_md m[3]; /* a, b, y */
    one_mds_clear(m, 3);
    dnnl_primitive_desc_t pd = NULL;
    const one_binding args[] = {{DNNL_ARG_SRC, ONE_ARG_INPUT, 0, &m[0]},
                                {DNNL_ARG_WEIGHTS, ONE_ARG_INPUT, 1, &m[1]},
                                {DNNL_ARG_DST, ONE_ARG_OUTPUT, 0, &m[2]}};
    dnnl_status_t st;
    if ((st = operand_md(&m[0], d.batch, d.m, d.k, d.trans_a, batched, dt)) != dnnl_success ||
        (st = operand_md(&m[1], d.batch, d.k, d.n, d.trans_b, batched, dt)) != dnnl_success ||
        (st = operand_md(&m[2], d.batch, d.m, d.n, false, batched, dt)) != dnnl_success)
        one_fail(st, reason, cap, "memory descriptor");
    else if ((st = one_matmul_pd(&pd, s->engine, one_ref(&m[0]), one_ref(&m[1]), NULL, one_ref(&m[2]))) != dnnl_success)
        one_fail(st, reason, cap, "matmul descriptor");
    else
        st = one_plan_add_bound_step(s, plan, pd, args, ONE_COUNT_OF(args), "matmul", reason, cap);
    one_pd_destroy(pd);
    one_mds_release(m, 3);
    return st;
}

static double estimate_matmul(const one_state *s, const plx_op_call *call)
{
    matmul_dims d;
    dims_of(call, &d);
    double flops = 2.0 * (double)d.batch * (double)d.m * (double)d.n * (double)d.k;
    return MATMUL_CALL_NS + flops / (MATMUL_FLOPS_PER_NS * one_bf16_speedup(s, call, MATMUL_BF16_AMX_SPEEDUP));
}

ONE_FAMILY_TABLE(matmul, {PLX_OP_MATMUL, sizeof(plx_matmul_attrs), ONE_DT_F32 | ONE_DT_BF16, check_matmul, build_matmul,
                          estimate_matmul});
