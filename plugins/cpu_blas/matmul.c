/* cpu_blas kernels of the matmul family. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "cpu_blas.h"

/* OpenBLAS (0.3.x) runs a GEMM with m*n*k up to 4 * 65536 on the
 * calling thread alone. Batches of such small products are split over our
 * pool; anything bigger is issued from one thread so OpenBLAS's own threads
 * never compete with a second concurrent call. */
#define SMALL_GEMM_MNK ((int64_t)4 * 65536)

typedef struct matmul_plan {
    const float *a, *b;
    float *y;
    int64_t m, n, k;
    CBLAS_TRANSPOSE trans_a, trans_b;
    int64_t lda, ldb;
    /* Output batch dims and, per dim, how many matrices a and b step by
     * (0 where that operand is broadcast). */
    int32_t batch_ndim;
    int64_t batch_dims[PLX_MAX_DIMS];
    int64_t a_step[PLX_MAX_DIMS], b_step[PLX_MAX_DIMS];
} matmul_plan;

/* Computes one output matrix of the batch. */
static void matmul_one(const matmul_plan *p, int64_t batch_index)
{
    int64_t a_index = 0, b_index = 0, rest = batch_index;
    for (int32_t d = p->batch_ndim - 1; d >= 0; d--) {
        int64_t i = rest % p->batch_dims[d];
        rest /= p->batch_dims[d];
        a_index += i * p->a_step[d];
        b_index += i * p->b_step[d];
    }
    cblas_sgemm(CblasRowMajor, p->trans_a, p->trans_b, (int)p->m, (int)p->n, (int)p->k, 1.0f,
                p->a + a_index * p->m * p->k, (int)p->lda, p->b + b_index * p->k * p->n, (int)p->ldb, 0.0f,
                p->y + batch_index * p->m * p->n, (int)p->n);
}

static void matmul_range(void *arg, int64_t begin, int64_t end)
{
    const matmul_plan *p = arg;
    for (int64_t i = begin; i < end; i++)
        matmul_one(p, i);
}

/* Fills per-dim matrix steps of one operand's batch dims, right-aligned to
 * the output's, and returns how many matrices that operand holds. */
static int64_t batch_steps(const plx_tensor_desc *t, int32_t out_batch_ndim, int64_t *steps)
{
    int32_t own = t->ndim - 2;
    int64_t step = 1;
    for (int32_t d = out_batch_ndim - 1; d >= 0; d--) {
        int32_t td = d - (out_batch_ndim - own);
        int64_t size = td >= 0 ? t->shape[td] : 1;
        steps[d] = size == 1 ? 0 : step;
        step *= size;
    }
    return step;
}

static plx_status run_matmul(cpu_state *st, const plx_op_call *call)
{
    const plx_matmul_attrs *attrs = call->attrs;
    const plx_tensor_desc *a = &call->inputs[0], *b = &call->inputs[1], *y = &call->outputs[0];
    matmul_plan p;
    memset(&p, 0, sizeof p);
    p.a = cpu_f32(a);
    p.b = cpu_f32(b);
    p.y = cpu_f32(y);
    p.m = y->shape[y->ndim - 2];
    p.n = y->shape[y->ndim - 1];
    p.k = attrs->trans_a ? a->shape[a->ndim - 2] : a->shape[a->ndim - 1];
    p.trans_a = attrs->trans_a ? CblasTrans : CblasNoTrans;
    p.trans_b = attrs->trans_b ? CblasTrans : CblasNoTrans;
    p.lda = attrs->trans_a ? p.m : p.k;
    p.ldb = attrs->trans_b ? p.k : p.n;
    p.batch_ndim = y->ndim - 2;
    int64_t batch = 1;
    for (int32_t d = 0; d < p.batch_ndim; d++) {
        p.batch_dims[d] = y->shape[d];
        batch *= y->shape[d];
    }
    if (batch == 0 || p.m == 0 || p.n == 0)
        return PLX_OK;
    if (p.k == 0) {
        memset(p.y, 0, (size_t)(batch * p.m * p.n) * sizeof(float));
        return PLX_OK;
    }
    batch_steps(a, p.batch_ndim, p.a_step);
    int64_t b_count = batch_steps(b, p.batch_ndim, p.b_step);

    /* One shared b and a row-major a: the batch is just more rows of a. */
    if (b_count == 1 && !attrs->trans_a && batch * p.m <= INT_MAX) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, p.trans_b, (int)(batch * p.m), (int)p.n, (int)p.k, 1.0f, p.a,
                    (int)p.lda, p.b, (int)p.ldb, 0.0f, p.y, (int)p.n);
        return PLX_OK;
    }
    int64_t mnk = p.m * p.n * p.k;
    if (mnk < SMALL_GEMM_MNK) {
        int64_t grain = SMALL_GEMM_MNK / mnk;
        cpu_parallel_for(st, batch, grain > 0 ? grain : 1, matmul_range, &p);
    } else {
        matmul_range(&p, 0, batch);
    }
    return PLX_OK;
}

/* The default f32 check, plus matrix dims that fit BLAS's int. */
static bool supports_matmul(const plx_op_call *call, char *reason, size_t cap)
{
    for (int32_t i = 0; i < 2; i++) {
        const plx_tensor_desc *t = &call->inputs[i];
        if (!plx_dtype_equal(t->dtype, PLX_F32)) {
            snprintf(reason, cap, "input %d is not f32", (int)i);
            return false;
        }
        if (t->shape[t->ndim - 1] > INT_MAX || t->shape[t->ndim - 2] > INT_MAX) {
            snprintf(reason, cap, "matrix dims of input %d exceed BLAS's int range", (int)i);
            return false;
        }
    }
    return true;
}

CPU_FAMILY_TABLE(matmul, {PLX_OP_MATMUL, run_matmul, supports_matmul});
