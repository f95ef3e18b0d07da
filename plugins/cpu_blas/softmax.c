/* cpu_blas kernels of the softmax family: softmax and log_softmax along any
 * axis, and their backward ops.
 *
 * x is seen as [outer, len, inner] with len the axis. When inner == 1 each
 * row is contiguous; otherwise a task takes a slab of up to COLS adjacent
 * inner columns, so the innermost loops still run over contiguous memory.
 * The max is subtracted before exp (stability); sums are accumulated in
 * double, or in float over short blocks whose results are added in double. */
#include <math.h>

#include "cpu_blas.h"
#include "vec_math.h"

#define COLS 256
#define GRAIN_ELEMS 16384

typedef struct axis_dims {
    int64_t outer, len, inner;
} axis_dims;

static axis_dims softmax_dims(const plx_tensor_desc *x, int32_t axis_attr)
{
    axis_dims d = {1, 1, 1};
    if (x->ndim == 0)
        return d;
    int32_t axis = axis_attr < 0 ? axis_attr + x->ndim : axis_attr;
    for (int32_t i = 0; i < x->ndim; i++) {
        if (i < axis)
            d.outer *= x->shape[i];
        else if (i == axis)
            d.len = x->shape[i];
        else
            d.inner *= x->shape[i];
    }
    return d;
}

typedef struct softmax_job {
    const float *a; /* forward: x; backward: dy */
    const float *b; /* backward: y */
    float *out;
    axis_dims d;
    bool log;
} softmax_job;

/* y = (x - m) - log_sum */
static void log_softmax_finish(const float *restrict x, float m, float log_sum, float *restrict y, int64_t n)
{
    int64_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++)
            y[i + k] = (x[i + k] - m) - log_sum;
    for (; i < n; i++)
        y[i] = (x[i] - m) - log_sum;
}

static void softmax_rows(void *arg, int64_t r0, int64_t r1)
{
    const softmax_job *job = arg;
    const int64_t len = job->d.len;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = job->a + r * len;
        float *y = job->out + r * len;
        const float m = max_f32(x, len);
        exp_shifted(x, m, y, len);
        const double sum = sum_f32(y, len);
        if (job->log) {
            /* (x - m) is exact near the max; adding m to log(sum) first would
             * round the small log(sum) away when |m| is large */
            log_softmax_finish(x, m, (float)log(sum), y, len);
        } else {
            scale_in_place(y, (float)(1.0 / sum), len);
        }
    }
}

/* Task t covers outer index t / blocks and columns [c0, c0 + width). */
static void slab_bounds(const axis_dims *d, int64_t t, int64_t *outer, int64_t *c0, int64_t *width)
{
    int64_t blocks = (d->inner + COLS - 1) / COLS;
    *outer = t / blocks;
    *c0 = (t % blocks) * COLS;
    *width = d->inner - *c0 < COLS ? d->inner - *c0 : COLS;
}

static void softmax_slabs(void *arg, int64_t t0, int64_t t1)
{
    const softmax_job *job = arg;
    const axis_dims d = job->d;
    for (int64_t t = t0; t < t1; t++) {
        int64_t o, c0, w;
        slab_bounds(&d, t, &o, &c0, &w);
        const float *x = job->a + o * d.len * d.inner + c0;
        float *y = job->out + o * d.len * d.inner + c0;
        float m[COLS];
        double sum[COLS];
        for (int64_t k = 0; k < w; k++) {
            m[k] = -INFINITY;
            sum[k] = 0.0;
        }
        for (int64_t l = 0; l < d.len; l++) {
            const float *xl = x + l * d.inner;
            for (int64_t k = 0; k < w; k++)
                m[k] = xl[k] > m[k] ? xl[k] : m[k];
        }
        for (int64_t l = 0; l < d.len; l++) {
            float *yl = y + l * d.inner;
            exp_shifted_each(x + l * d.inner, m, yl, w);
            for (int64_t k = 0; k < w; k++)
                sum[k] += (double)yl[k];
        }
        float factor[COLS]; /* log(sum) for log_softmax, 1/sum for softmax */
        for (int64_t k = 0; k < w; k++)
            factor[k] = job->log ? (float)log(sum[k]) : (float)(1.0 / sum[k]);
        for (int64_t l = 0; l < d.len; l++) {
            const float *xl = x + l * d.inner;
            float *yl = y + l * d.inner;
            if (job->log) {
                for (int64_t k = 0; k < w; k++)
                    yl[k] = (xl[k] - m[k]) - factor[k];
            } else {
                for (int64_t k = 0; k < w; k++)
                    yl[k] *= factor[k];
            }
        }
    }
}

/* softmax: dx = y * (dy - sum(dy * y)); log_softmax: dx = dy - exp(y) * sum(dy) */
static void softmax_backward_rows(void *arg, int64_t r0, int64_t r1)
{
    const softmax_job *job = arg;
    const int64_t len = job->d.len;
    for (int64_t r = r0; r < r1; r++) {
        const float *dy = job->a + r * len;
        const float *y = job->b + r * len;
        float *dx = job->out + r * len;
        if (job->log) {
            const float s = (float)sum_f32(dy, len);
            exp_shifted(y, 0.0f, dx, len);
            for (int64_t i = 0; i < len; i++)
                dx[i] = dy[i] - dx[i] * s;
        } else {
            const double acc = dot_f32(dy, y, len);
            const float s = (float)acc;
            for (int64_t i = 0; i < len; i++)
                dx[i] = y[i] * (dy[i] - s);
        }
    }
}

static void softmax_backward_slabs(void *arg, int64_t t0, int64_t t1)
{
    const softmax_job *job = arg;
    const axis_dims d = job->d;
    for (int64_t t = t0; t < t1; t++) {
        int64_t o, c0, w;
        slab_bounds(&d, t, &o, &c0, &w);
        const int64_t base = o * d.len * d.inner + c0;
        const float *dy = job->a + base;
        const float *y = job->b + base;
        float *dx = job->out + base;
        double acc[COLS];
        for (int64_t k = 0; k < w; k++)
            acc[k] = 0.0;
        for (int64_t l = 0; l < d.len; l++) {
            const float *dyl = dy + l * d.inner, *yl = y + l * d.inner;
            if (job->log) {
                for (int64_t k = 0; k < w; k++)
                    acc[k] += (double)dyl[k];
            } else {
                for (int64_t k = 0; k < w; k++)
                    acc[k] += (double)dyl[k] * (double)yl[k];
            }
        }
        float s[COLS];
        for (int64_t k = 0; k < w; k++)
            s[k] = (float)acc[k];
        for (int64_t l = 0; l < d.len; l++) {
            const float *dyl = dy + l * d.inner, *yl = y + l * d.inner;
            float *dxl = dx + l * d.inner;
            if (job->log) {
                exp_shifted(yl, 0.0f, dxl, w);
                for (int64_t k = 0; k < w; k++)
                    dxl[k] = dyl[k] - dxl[k] * s[k];
            } else {
                for (int64_t k = 0; k < w; k++)
                    dxl[k] = yl[k] * (dyl[k] - s[k]);
            }
        }
    }
}

static void run_softmax_job(cpu_state *st, softmax_job *job, plx_range_fn rows_fn, plx_range_fn slabs_fn)
{
    const axis_dims d = job->d;
    if (d.len == 0)
        return;
    if (d.inner == 1) {
        int64_t grain = d.len >= GRAIN_ELEMS ? 1 : GRAIN_ELEMS / d.len;
        cpu_parallel_for(st, d.outer, grain, rows_fn, job);
    } else {
        int64_t blocks = (d.inner + COLS - 1) / COLS;
        int64_t per_task = d.len * (d.inner < COLS ? d.inner : COLS);
        int64_t grain = per_task >= GRAIN_ELEMS ? 1 : GRAIN_ELEMS / per_task;
        cpu_parallel_for(st, d.outer * blocks, grain, slabs_fn, job);
    }
}

static plx_status run_forward(cpu_state *st, const plx_op_call *call, bool log)
{
    const plx_softmax_attrs *a = call->attrs;
    softmax_job job = {cpu_f32(&call->inputs[0]), NULL, cpu_f32(&call->outputs[0]),
                       softmax_dims(&call->inputs[0], a->axis), log};
    run_softmax_job(st, &job, softmax_rows, softmax_slabs);
    return PLX_OK;
}

static plx_status run_backward(cpu_state *st, const plx_op_call *call, bool log)
{
    const plx_softmax_attrs *a = call->attrs;
    softmax_job job = {cpu_f32(&call->inputs[0]), cpu_f32(&call->inputs[1]), cpu_f32(&call->outputs[0]),
                       softmax_dims(&call->inputs[1], a->axis), log};
    run_softmax_job(st, &job, softmax_backward_rows, softmax_backward_slabs);
    return PLX_OK;
}

static plx_status run_softmax(cpu_state *st, const plx_op_call *call)
{
    return run_forward(st, call, false);
}

static plx_status run_log_softmax(cpu_state *st, const plx_op_call *call)
{
    return run_forward(st, call, true);
}

static plx_status run_softmax_backward(cpu_state *st, const plx_op_call *call)
{
    return run_backward(st, call, false);
}

static plx_status run_log_softmax_backward(cpu_state *st, const plx_op_call *call)
{
    return run_backward(st, call, true);
}

CPU_FAMILY_TABLE(softmax,
                 {PLX_OP_SOFTMAX, run_softmax, NULL},
                 {PLX_OP_SOFTMAX_BACKWARD, run_softmax_backward, NULL},
                 {PLX_OP_LOG_SOFTMAX, run_log_softmax, NULL},
                 {PLX_OP_LOG_SOFTMAX_BACKWARD, run_log_softmax_backward, NULL});
