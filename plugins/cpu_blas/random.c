/* cpu_blas kernels of the random family. Every value is a pure function of
 * (seed, offset + element index) through abi/plexus_random.h, so the result
 * does not depend on how the loop is split across threads.
 *
 * Uniforms are drawn PHILOX_BATCH Philox blocks at a time, the rounds run
 * on all blocks together so that gcc vectorizes them (its 32x32->64-bit
 * multiplies map to pmuludq); a block one at a time is a chain of 10
 * dependent rounds. The kernels then use the uniforms in a second,
 * branch-free loop. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=cheap", "no-trapping-math", "fp-contract=off")
#endif

#include <math.h>
#include <string.h>

#include "../../abi/plexus_random.h"
#include "cpu_blas.h"

/* Blocks per batch (4 uniforms each): 16 fill a 512-bit vector of words. */
enum { PHILOX_BATCH = 16 };
/* Uniforms per pass of a kernel: drawn into a stack buffer, then used. */
enum { UNIFORM_CHUNK = 1024 };

/* u[k] = u(counter + k) for k < 4 * PHILOX_BATCH, counter a multiple of 4:
 * plx_philox4x32_10 and plx_philox_uniform4, word for word (the counter
 * wraps around 2^64 as theirs does). */
CPU_MULTIVERSION static void philox_uniform_batch(uint64_t seed, uint64_t counter, float *restrict u)
{
    uint32_t c0[PHILOX_BATCH], c1[PHILOX_BATCH], c2[PHILOX_BATCH], c3[PHILOX_BATCH];
    for (int j = 0; j < PHILOX_BATCH; j++) {
        const uint64_t block = (counter + 4u * (uint64_t)j) >> 2;
        c0[j] = (uint32_t)block;
        c1[j] = (uint32_t)(block >> 32);
        c2[j] = 0u;
        c3[j] = 0u;
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        for (int j = 0; j < PHILOX_BATCH; j++) {
            const uint64_t p0 = (uint64_t)0xD2511F53u * (uint64_t)c0[j];
            const uint64_t p1 = (uint64_t)0xCD9E8D57u * (uint64_t)c2[j];
            const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[j] ^ k0;
            const uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[j] ^ k1;
            c0[j] = n0;
            c1[j] = (uint32_t)p1;
            c2[j] = n2;
            c3[j] = (uint32_t)p0;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int j = 0; j < PHILOX_BATCH; j++) {
        u[4 * j] = (float)(c0[j] >> 8) * (1.0f / 16777216.0f);
        u[4 * j + 1] = (float)(c1[j] >> 8) * (1.0f / 16777216.0f);
        u[4 * j + 2] = (float)(c2[j] >> 8) * (1.0f / 16777216.0f);
        u[4 * j + 3] = (float)(c3[j] >> 8) * (1.0f / 16777216.0f);
    }
}

/* u[k] = u(counter + k) of plexus_random.h for k < n (n <= UNIFORM_CHUNK):
 * single elements up to a block boundary and after the last whole batch,
 * batches in between. */
static void philox_uniforms(uint64_t seed, uint64_t counter, float *u, int64_t n)
{
    int64_t k = 0;
    for (; k < n && ((counter + (uint64_t)k) & 3u) != 0; k++)
        u[k] = plx_philox_uniform(seed, counter + (uint64_t)k);
    for (; k + 4 * PHILOX_BATCH <= n; k += 4 * PHILOX_BATCH)
        philox_uniform_batch(seed, counter + (uint64_t)k, u + k);
    while (k < n) {
        float block[4];
        plx_philox_uniform4(seed, (counter + (uint64_t)k) >> 2, block);
        for (int lane = 0; lane < 4 && k < n; lane++, k++)
            u[k] = block[lane];
    }
}

typedef struct dropout_job {
    const float *x;
    float *y;
    float p, scale;
    uint64_t seed, offset;
} dropout_job;

/* y = u >= p ? x * scale : 0; y may be x. x is read whatever u is, or gcc
 * would not vectorize the select (a load under a condition). */
static inline void dropout_apply(float *y, const float *x, const float *restrict u, float p, float scale, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float kept = x[i] * scale;
        y[i] = u[i] >= p ? kept : 0.0f;
    }
}

static void dropout_range(void *arg, int64_t begin, int64_t end)
{
    const dropout_job *job = arg;
    float u[UNIFORM_CHUNK];
    for (int64_t lo = begin; lo < end; lo += UNIFORM_CHUNK) {
        const int64_t n = end - lo < UNIFORM_CHUNK ? end - lo : UNIFORM_CHUNK;
        philox_uniforms(job->seed, job->offset + (uint64_t)lo, u, n);
        dropout_apply(job->y + lo, job->x + lo, u, job->p, job->scale, n);
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
    cpu_parallel_for(st, n, 8192, dropout_range, &job);
    return PLX_OK;
}

typedef struct random_job {
    float *y;
    float a, b;
    uint64_t seed, offset;
} random_job;

/* y = min(a + width * u, below_b) */
static inline void uniform_apply(float *restrict y, const float *restrict u, float a, float width, float below_b,
                                 int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float v = a + width * u[i];
        y[i] = v < below_b ? v : below_b;
    }
}

static void uniform_range(void *arg, int64_t begin, int64_t end)
{
    const random_job *job = arg;
    /* a + width * u can round up to b itself; the range is [a, b). */
    const float below_b = job->b > job->a ? nextafterf(job->b, job->a) : job->a;
    float u[UNIFORM_CHUNK];
    for (int64_t lo = begin; lo < end; lo += UNIFORM_CHUNK) {
        const int64_t n = end - lo < UNIFORM_CHUNK ? end - lo : UNIFORM_CHUNK;
        philox_uniforms(job->seed, job->offset + (uint64_t)lo, u, n);
        uniform_apply(job->y + lo, u, job->a, job->b - job->a, below_b, n);
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
    cpu_parallel_for(st, plx_desc_numel(y), normal ? 4096 : 8192, normal ? normal_range : uniform_range, &job);
    return PLX_OK;
}

CPU_FAMILY_TABLE(random,
                 {PLX_OP_DROPOUT, run_dropout, NULL},
                 {PLX_OP_DROPOUT_BACKWARD, run_dropout, NULL},
                 {PLX_OP_RANDOM_UNIFORM, run_random, NULL},
                 {PLX_OP_RANDOM_NORMAL, run_random, NULL});
