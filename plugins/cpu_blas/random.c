/* cpu_blas kernels of the random family. Every value is a pure function of
 * (seed, offset + element index) through abi/plexus_random.h, so the result
 * does not depend on how the loop is split across threads. */
#include <math.h>
#include <string.h>

#include "../../abi/plexus_random.h"
#include "cpu_blas.h"

typedef struct dropout_job {
    const float *x;
    float *y;
    float p, scale;
    uint64_t seed, offset;
} dropout_job;

/* Draws each Philox block once and uses its four lanes for four elements. */
static void dropout_range(void *arg, int64_t begin, int64_t end)
{
    const dropout_job *job = arg;
    const float *x = job->x;
    float *y = job->y;
    const float p = job->p, scale = job->scale;
    uint64_t counter = job->offset + (uint64_t)begin;
    int64_t i = begin;
    while (i < end) {
        float u[4];
        plx_philox_uniform4(job->seed, counter >> 2, u);
        for (uint32_t lane = (uint32_t)(counter & 3u); lane < 4 && i < end; lane++, i++, counter++)
            y[i] = u[lane] >= p ? x[i] * scale : 0.0f;
    }
}

/* Forward and backward are the same map: the backward of y = x * m * s is
 * dx = dy * m * s with the same mask m, drawn from the same attrs. */
static plx_status run_dropout(cpu_state *st, const plx_op_call *call)
{
    const plx_dropout_attrs *attrs = call->attrs;
    const plx_tensor_desc *x = &call->inputs[0], *y = &call->outputs[0];
    int64_t n = plx_desc_numel(x);
    if (attrs->p == 0.0f) {
        if (n > 0 && cpu_f32(y) != cpu_f32(x))
            memcpy(cpu_f32(y), cpu_f32(x), (size_t)n * sizeof(float));
        return PLX_OK;
    }
    dropout_job job = {cpu_f32(x), cpu_f32(y), attrs->p, 1.0f / (1.0f - attrs->p), attrs->seed, attrs->offset};
    cpu_parallel_for(st, n, 16384, dropout_range, &job);
    return PLX_OK;
}

typedef struct random_job {
    float *y;
    float a, b;
    uint64_t seed, offset;
} random_job;

static void uniform_range(void *arg, int64_t begin, int64_t end)
{
    const random_job *job = arg;
    float *y = job->y;
    const float a = job->a, width = job->b - job->a;
    /* a + width * u can round up to b itself; the range is [a, b). */
    const float below_b = job->b > job->a ? nextafterf(job->b, job->a) : job->a;
    uint64_t counter = job->offset + (uint64_t)begin;
    int64_t i = begin;
    while (i < end) {
        float u[4];
        plx_philox_uniform4(job->seed, counter >> 2, u);
        for (uint32_t lane = (uint32_t)(counter & 3u); lane < 4 && i < end; lane++, i++, counter++) {
            float v = a + width * u[lane];
            y[i] = v < below_b ? v : below_b;
        }
    }
}

static void normal_range(void *arg, int64_t begin, int64_t end)
{
    const random_job *job = arg;
    float *y = job->y;
    for (int64_t i = begin; i < end; i++)
        y[i] = job->a + job->b * plx_philox_normal(job->seed, job->offset + (uint64_t)i);
}

static plx_status run_random(cpu_state *st, const plx_op_call *call)
{
    const plx_random_attrs *attrs = call->attrs;
    const plx_tensor_desc *y = &call->outputs[0];
    random_job job = {cpu_f32(y), attrs->a, attrs->b, attrs->seed, attrs->offset};
    bool normal = call->op_id == PLX_OP_RANDOM_NORMAL;
    cpu_parallel_for(st, plx_desc_numel(y), normal ? 4096 : 16384, normal ? normal_range : uniform_range, &job);
    return PLX_OK;
}

CPU_FAMILY_TABLE(random,
                 {PLX_OP_DROPOUT, run_dropout, NULL},
                 {PLX_OP_DROPOUT_BACKWARD, run_dropout, NULL},
                 {PLX_OP_RANDOM_UNIFORM, run_random, NULL},
                 {PLX_OP_RANDOM_NORMAL, run_random, NULL});
