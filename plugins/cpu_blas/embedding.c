/* cpu_blas kernels of the embedding family. */
#include <stdio.h>
#include <string.h>

#include "cpu_blas.h"

static int64_t index_at(const void *indices, bool wide, int64_t i)
{
    return wide ? ((const int64_t *)indices)[i] : (int64_t)((const int32_t *)indices)[i];
}

/* Fails naming the first index outside [0, rows), with its position. */
static plx_status check_indices(cpu_state *st, const plx_tensor_desc *indices, int64_t rows)
{
    bool wide = indices->dtype.bits == 64;
    const void *data = plx_desc_ptr(indices);
    int64_t n = plx_desc_numel(indices);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = index_at(data, wide, i);
        if (v >= 0 && v < rows)
            continue;
        char where[256];
        size_t used = 0;
        int64_t rest = i, coords[PLX_MAX_DIMS];
        for (int32_t d = indices->ndim - 1; d >= 0; d--) {
            coords[d] = rest % indices->shape[d];
            rest /= indices->shape[d];
        }
        where[0] = '\0';
        for (int32_t d = 0; d < indices->ndim && used < sizeof where; d++) {
            int w = snprintf(where + used, sizeof where - used, d ? ",%lld" : "%lld", (long long)coords[d]);
            if (w < 0)
                break;
            used += (size_t)w;
        }
        return CPU_FAIL(st, PLX_INVALID_ARGUMENT,
                        "index %lld at position [%s] (flat %lld) of the indices is out of range [0, %lld)",
                        (long long)v, where, (long long)i, (long long)rows);
    }
    return PLX_OK;
}

typedef struct gather_rows_job {
    const char *weight;
    const void *indices;
    bool wide;
    size_t row_bytes;
    char *y;
} gather_rows_job;

static void gather_rows(void *arg, int64_t begin, int64_t end)
{
    const gather_rows_job *job = arg;
    for (int64_t i = begin; i < end; i++) {
        int64_t v = index_at(job->indices, job->wide, i);
        memcpy(job->y + (size_t)i * job->row_bytes, job->weight + (size_t)v * job->row_bytes, job->row_bytes);
    }
}

/* The lookup copies whole rows, so any table dtype works (f16 and bf16
 * included); the backward accumulates and stays f32. */
static bool supports_any_table(const plx_op_call *call, char *reason, size_t cap)
{
    (void)call;
    (void)reason;
    (void)cap;
    return true;
}

static plx_status run_embedding(cpu_state *st, const plx_op_call *call)
{
    const plx_tensor_desc *weight = &call->inputs[0], *indices = &call->inputs[1], *y = &call->outputs[0];
    plx_status status = check_indices(st, indices, weight->shape[0]);
    if (status != PLX_OK)
        return status;
    int64_t dim = weight->shape[1];
    gather_rows_job job = {plx_desc_ptr(weight), plx_desc_ptr(indices), indices->dtype.bits == 64,
                           (size_t)dim * plx_dtype_size(weight->dtype), plx_desc_ptr(y)};
    if (job.row_bytes == 0)
        return PLX_OK;
    int64_t grain = dim >= 8192 ? 1 : 8192 / dim;
    cpu_parallel_for(st, plx_desc_numel(indices), grain, gather_rows, &job);
    return PLX_OK;
}

/* Scatter-add without atomics: each chunk owns a disjoint slice of dweight
 * (a block of rows, or a block of columns when there are few rows) and
 * adds the indices' contributions in index order, so the sums are also
 * deterministic. */
typedef struct scatter_job {
    const float *dy;
    const void *indices;
    bool wide;
    int64_t n_indices, rows, dim, padding_idx;
    float *dw;
} scatter_job;

static void scatter_row_block(void *arg, int64_t begin, int64_t end)
{
    const scatter_job *job = arg;
    int64_t dim = job->dim;
    memset(job->dw + begin * dim, 0, sizeof(float) * (size_t)((end - begin) * dim));
    for (int64_t i = 0; i < job->n_indices; i++) {
        int64_t v = index_at(job->indices, job->wide, i);
        if (v < begin || v >= end || v == job->padding_idx)
            continue;
        float *out = job->dw + v * dim;
        const float *in = job->dy + i * dim;
        for (int64_t j = 0; j < dim; j++)
            out[j] += in[j];
    }
}

static void scatter_column_block(void *arg, int64_t begin, int64_t end)
{
    const scatter_job *job = arg;
    int64_t dim = job->dim;
    for (int64_t v = 0; v < job->rows; v++)
        memset(job->dw + v * dim + begin, 0, sizeof(float) * (size_t)(end - begin));
    for (int64_t i = 0; i < job->n_indices; i++) {
        int64_t v = index_at(job->indices, job->wide, i);
        if (v == job->padding_idx)
            continue;
        float *out = job->dw + v * dim;
        const float *in = job->dy + i * dim;
        for (int64_t j = begin; j < end; j++)
            out[j] += in[j];
    }
}

static plx_status run_embedding_backward(cpu_state *st, const plx_op_call *call)
{
    const plx_embedding_attrs *attrs = call->attrs;
    const plx_tensor_desc *dy = &call->inputs[0], *indices = &call->inputs[1], *dw = &call->outputs[0];
    int64_t rows = dw->shape[0], dim = dw->shape[1];
    plx_status status = check_indices(st, indices, rows);
    if (status != PLX_OK)
        return status;
    scatter_job job = {cpu_f32(dy),   plx_desc_ptr(indices), indices->dtype.bits == 64, plx_desc_numel(indices),
                       rows,          dim,                   attrs->padding_idx,        cpu_f32(dw)};
    if (rows == 0 || dim == 0)
        return PLX_OK;
    int64_t threads = st->threads > 1 ? st->threads : 1;
    double work = (double)(job.n_indices + rows) * (double)dim;
    if (work < 65536.0 || threads == 1) {
        scatter_row_block(&job, 0, rows);
        return PLX_OK;
    }
    /* One chunk per thread: every chunk scans all indices once. */
    if (rows >= 2 * threads)
        cpu_parallel_for(st, rows, (rows + threads - 1) / threads, scatter_row_block, &job);
    else
        cpu_parallel_for(st, dim, (dim + threads - 1) / threads, scatter_column_block, &job);
    return PLX_OK;
}

CPU_FAMILY_TABLE(embedding,
                 {PLX_OP_EMBEDDING, run_embedding, supports_any_table},
                 {PLX_OP_EMBEDDING_BACKWARD, run_embedding_backward, NULL});
