/* cpu_blas kernels of the norm family: batch norm and layer norm, forward
 * and backward.
 *
 * Statistics are accumulated in float over short blocks with 8 independent
 * lanes (so gcc can vectorize without reassociation flags) and the block
 * results in double, which keeps the error near double's over long rows
 * (see vec_math.h). */
#include <math.h>
#include <stdlib.h>

#include "cpu_blas.h"
#include "vec_math.h"

/* sum of (p - centre)^2 */
static double sum_sq_dev_f32(const float *p, int64_t n, float centre)
{
    double total = 0.0;
    for (int64_t start = 0; start < n; start += SUM_BLOCK) {
        int64_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        float lane[VEC_LANES] = {0};
        int64_t i = start;
        for (; i + VEC_LANES <= end; i += VEC_LANES)
            for (int k = 0; k < VEC_LANES; k++) {
                float d = p[i + k] - centre;
                lane[k] += d * d;
            }
        for (; i < end; i++) {
            float d = p[i] - centre;
            lane[0] += d * d;
        }
        for (int k = 0; k < VEC_LANES; k++)
            total += (double)lane[k];
    }
    return total;
}

/* sum of dy * (x - centre) */
static double dot_centered_f32(const float *dy, const float *x, int64_t n, float centre)
{
    double total = 0.0;
    for (int64_t start = 0; start < n; start += SUM_BLOCK) {
        int64_t end = start + SUM_BLOCK < n ? start + SUM_BLOCK : n;
        float lane[VEC_LANES] = {0};
        int64_t i = start;
        for (; i + VEC_LANES <= end; i += VEC_LANES)
            for (int k = 0; k < VEC_LANES; k++)
                lane[k] += dy[i + k] * (x[i + k] - centre);
        for (; i < end; i++)
            lane[0] += dy[i] * (x[i] - centre);
        for (int k = 0; k < VEC_LANES; k++)
            total += (double)lane[k];
    }
    return total;
}

/* The elementwise loops below take restrict parameters and run in blocks
 * of VEC_LANES: the shape gcc -O2 vectorizes (see vec_math.h). */

/* y = x * a + b */
static void affine_f32(const float *restrict x, float a, float b, float *restrict y, int64_t n)
{
    int64_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++)
            y[i + k] = x[i + k] * a + b;
    for (; i < n; i++)
        y[i] = x[i] * a + b;
}

/* dx = dy * a + (x - m) * b + k */
static void batch_norm_dx_f32(const float *restrict dy, const float *restrict x, float a, float m, float b, float k,
                              float *restrict dx, int64_t n)
{
    int64_t i = 0;
    for (; i + VEC_LANES <= n; i += VEC_LANES)
        for (int j = 0; j < VEC_LANES; j++)
            dx[i + j] = dy[i + j] * a + (x[i + j] - m) * b + k;
    for (; i < n; i++)
        dx[i] = dy[i] * a + (x[i] - m) * b + k;
}

/* y = (x - m) * is * gamma + beta */
static void layer_norm_row(const float *restrict x, float m, float is, const float *restrict gamma,
                           const float *restrict beta, float *restrict y, int64_t n)
{
    int64_t j = 0;
    for (; j + VEC_LANES <= n; j += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++)
            y[j + k] = (x[j + k] - m) * is * gamma[j + k] + beta[j + k];
    for (; j < n; j++)
        y[j] = (x[j] - m) * is * gamma[j] + beta[j];
}

/* dx = is * (dy * gamma - mean_g - (x - m) * xc_coeff) */
static void layer_norm_dx_row(const float *restrict dy, const float *restrict x, const float *restrict gamma, float m,
                              float is, float mean_g, float xc_coeff, float *restrict dx, int64_t n)
{
    int64_t j = 0;
    for (; j + VEC_LANES <= n; j += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++)
            dx[j + k] = is * (dy[j + k] * gamma[j + k] - mean_g - (x[j + k] - m) * xc_coeff);
    for (; j < n; j++)
        dx[j] = is * (dy[j] * gamma[j] - mean_g - (x[j] - m) * xc_coeff);
}

/* dgamma += dy * (x - m) * is; dbeta += dy (double accumulators) */
static void layer_norm_dparams_row(const float *restrict dy, const float *restrict x, float m, float is,
                                   double *restrict dgamma, double *restrict dbeta, int64_t n)
{
    int64_t j = 0;
    for (; j + VEC_LANES <= n; j += VEC_LANES)
        for (int k = 0; k < VEC_LANES; k++) {
            dgamma[j + k] += (double)(dy[j + k] * ((x[j + k] - m) * is));
            dbeta[j + k] += (double)dy[j + k];
        }
    for (; j < n; j++) {
        dgamma[j] += (double)(dy[j] * ((x[j] - m) * is));
        dbeta[j] += (double)dy[j];
    }
}

/* x [N,C,S...] seen as N x C x S. */
typedef struct bn_dims {
    int64_t n, c, s;
} bn_dims;

static bn_dims batch_norm_dims(const plx_tensor_desc *x)
{
    bn_dims d = {x->shape[0], x->shape[1], 1};
    for (int32_t i = 2; i < x->ndim; i++)
        d.s *= x->shape[i];
    return d;
}

/* Grain in channels so that a chunk touches ~32K elements. */
static int64_t channel_grain(bn_dims d)
{
    int64_t per_channel = d.n * d.s;
    return per_channel >= 32768 ? 1 : 32768 / (per_channel > 0 ? per_channel : 1);
}

/* Per-channel mean and biased variance of x (two passes, in double). */
typedef struct bn_stats_job {
    const float *x;
    bn_dims d;
    double *mean;
    double *var;
} bn_stats_job;

static void batch_norm_stats_range(void *arg, int64_t c0, int64_t c1)
{
    const bn_stats_job *job = arg;
    const bn_dims d = job->d;
    double *mean = job->mean, *var = job->var;
    double count = (double)(d.n * d.s);
    for (int64_t c = c0; c < c1; c++)
        mean[c] = var[c] = 0.0;
    for (int64_t n = 0; n < d.n; n++) {
        const float *row = job->x + (n * d.c) * d.s;
        if (d.s == 1) {
            for (int64_t c = c0; c < c1; c++)
                mean[c] += (double)row[c];
        } else {
            for (int64_t c = c0; c < c1; c++)
                mean[c] += sum_f32(row + c * d.s, d.s);
        }
    }
    for (int64_t c = c0; c < c1; c++)
        mean[c] /= count;
    for (int64_t n = 0; n < d.n; n++) {
        const float *row = job->x + (n * d.c) * d.s;
        if (d.s == 1) {
            for (int64_t c = c0; c < c1; c++) {
                double dev = (double)row[c] - mean[c];
                var[c] += dev * dev;
            }
        } else {
            for (int64_t c = c0; c < c1; c++)
                var[c] += sum_sq_dev_f32(row + c * d.s, d.s, (float)mean[c]);
        }
    }
    for (int64_t c = c0; c < c1; c++)
        var[c] /= count;
}

/* y = x * scale[c] + shift[c] over rows (n, c) of length s. */
typedef struct bn_affine_job {
    const float *x;
    float *y;
    bn_dims d;
    const float *scale;
    const float *shift;
} bn_affine_job;

static void batch_norm_affine_range(void *arg, int64_t r0, int64_t r1)
{
    const bn_affine_job *job = arg;
    const int64_t s = job->d.s, channels = job->d.c;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r % channels;
        const float a = job->scale[c], b = job->shift[c];
        const float *x = job->x + r * s;
        float *y = job->y + r * s;
        affine_f32(x, a, b, y, s);
    }
}

static int64_t row_grain(int64_t row_len)
{
    return row_len >= 32768 ? 1 : 32768 / (row_len > 0 ? row_len : 1);
}

/* Per-channel scratch of the batch norm ops: 2 doubles and n_coeffs floats
 * a channel, in two blocks the caller frees. */
static plx_status batch_norm_scratch(cpu_state *st, const char *op, int64_t channels, int64_t n_coeffs,
                                     double **sums, float **coeffs)
{
    *sums = malloc((size_t)channels * 2 * sizeof(double));
    *coeffs = malloc((size_t)channels * (size_t)n_coeffs * sizeof(float));
    if (*sums == NULL || *coeffs == NULL) {
        free(*sums);
        free(*coeffs);
        return CPU_FAIL(st, PLX_OUT_OF_MEMORY, "%s scratch for %lld channels", op, (long long)channels);
    }
    return PLX_OK;
}

/* (x, gamma, beta, running_mean (mut), running_var (mut)) ->
 * (y, save_mean, save_invstd) */
static plx_status run_batch_norm(cpu_state *st, const plx_op_call *call)
{
    const plx_batch_norm_attrs *a = call->attrs;
    const bn_dims d = batch_norm_dims(&call->inputs[0]);
    const float *x = cpu_f32(&call->inputs[0]);
    const float *gamma = cpu_f32(&call->inputs[1]);
    const float *beta = cpu_f32(&call->inputs[2]);
    float *running_mean = cpu_f32(&call->inputs[3]);
    float *running_var = cpu_f32(&call->inputs[4]);
    float *y = cpu_f32(&call->outputs[0]);
    float *save_mean = cpu_f32(&call->outputs[1]);
    float *save_invstd = cpu_f32(&call->outputs[2]);
    if (d.c == 0)
        return PLX_OK;

    double *scratch;
    float *coeffs;
    plx_status status = batch_norm_scratch(st, "batch norm", d.c, 2, &scratch, &coeffs);
    if (status != PLX_OK)
        return status;
    double *mean = scratch, *var = scratch + d.c;
    float *scale = coeffs, *shift = coeffs + d.c;
    const double eps = (double)a->eps;
    if (a->training) {
        bn_stats_job job = {x, d, mean, var};
        cpu_parallel_for(st, d.c, channel_grain(d), batch_norm_stats_range, &job);
        const double count = (double)(d.n * d.s);
        const double momentum = (double)a->momentum;
        for (int64_t c = 0; c < d.c; c++) {
            double invstd = 1.0 / sqrt(var[c] + eps);
            double unbiased = var[c] * count / (count - 1.0);
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean[c]);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
            save_mean[c] = (float)mean[c];
            save_invstd[c] = (float)invstd;
            scale[c] = (float)(gamma[c] * invstd);
            shift[c] = (float)(beta[c] - mean[c] * gamma[c] * invstd);
        }
    } else {
        for (int64_t c = 0; c < d.c; c++) {
            double invstd = 1.0 / sqrt((double)running_var[c] + eps);
            save_mean[c] = running_mean[c];
            save_invstd[c] = (float)invstd;
            scale[c] = (float)(gamma[c] * invstd);
            shift[c] = (float)(beta[c] - running_mean[c] * gamma[c] * invstd);
        }
    }
    bn_affine_job job = {x, y, d, scale, shift};
    cpu_parallel_for(st, d.n * d.c, row_grain(d.s), batch_norm_affine_range, &job);
    free(scratch);
    free(coeffs);
    return PLX_OK;
}

/* Per-channel sum(dy) and sum(dy * (x - mean)). */
typedef struct bn_grad_sums_job {
    const float *dy;
    const float *x;
    const float *mean;
    bn_dims d;
    double *sum_dy;
    double *sum_dy_xc;
} bn_grad_sums_job;

static void batch_norm_grad_sums_range(void *arg, int64_t c0, int64_t c1)
{
    const bn_grad_sums_job *job = arg;
    const bn_dims d = job->d;
    for (int64_t c = c0; c < c1; c++)
        job->sum_dy[c] = job->sum_dy_xc[c] = 0.0;
    for (int64_t n = 0; n < d.n; n++) {
        const float *dy = job->dy + (n * d.c) * d.s;
        const float *x = job->x + (n * d.c) * d.s;
        if (d.s == 1) {
            for (int64_t c = c0; c < c1; c++) {
                job->sum_dy[c] += (double)dy[c];
                job->sum_dy_xc[c] += (double)dy[c] * ((double)x[c] - (double)job->mean[c]);
            }
        } else {
            for (int64_t c = c0; c < c1; c++) {
                job->sum_dy[c] += sum_f32(dy + c * d.s, d.s);
                job->sum_dy_xc[c] += dot_centered_f32(dy + c * d.s, x + c * d.s, d.s, job->mean[c]);
            }
        }
    }
}

/* dx = dy * a[c] + (x - mean[c]) * b[c] + k[c] over rows (n, c). */
typedef struct bn_dx_job {
    const float *dy;
    const float *x;
    float *dx;
    bn_dims d;
    const float *mean;
    const float *a;
    const float *b;
    const float *k;
} bn_dx_job;

static void batch_norm_dx_range(void *arg, int64_t r0, int64_t r1)
{
    const bn_dx_job *job = arg;
    const int64_t s = job->d.s, channels = job->d.c;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r % channels;
        const float a = job->a[c], b = job->b[c], k = job->k[c], m = job->mean[c];
        const float *dy = job->dy + r * s;
        const float *x = job->x + r * s;
        float *dx = job->dx + r * s;
        batch_norm_dx_f32(dy, x, a, m, b, k, dx, s);
    }
}

/* (dy, x, gamma, save_mean, save_invstd) -> (dx, dgamma, dbeta) */
static plx_status run_batch_norm_backward(cpu_state *st, const plx_op_call *call)
{
    const plx_batch_norm_attrs *attrs = call->attrs;
    const bn_dims d = batch_norm_dims(&call->inputs[1]);
    const float *dy = cpu_f32(&call->inputs[0]);
    const float *x = cpu_f32(&call->inputs[1]);
    const float *gamma = cpu_f32(&call->inputs[2]);
    const float *mean = cpu_f32(&call->inputs[3]);
    const float *invstd = cpu_f32(&call->inputs[4]);
    float *dx = cpu_f32(&call->outputs[0]);
    float *dgamma = cpu_f32(&call->outputs[1]);
    float *dbeta = cpu_f32(&call->outputs[2]);
    if (d.c == 0)
        return PLX_OK;

    double *sums;
    float *coeffs;
    plx_status status = batch_norm_scratch(st, "batch norm backward", d.c, 3, &sums, &coeffs);
    if (status != PLX_OK)
        return status;
    bn_grad_sums_job sums_job = {dy, x, mean, d, sums, sums + d.c};
    cpu_parallel_for(st, d.c, channel_grain(d), batch_norm_grad_sums_range, &sums_job);
    float *a = coeffs, *b = coeffs + d.c, *k = coeffs + 2 * d.c;
    const double count = (double)(d.n * d.s);
    for (int64_t c = 0; c < d.c; c++) {
        double is = (double)invstd[c];
        double sum_dy = sums_job.sum_dy[c];
        double sum_dy_xhat = sums_job.sum_dy_xc[c] * is;
        dbeta[c] = (float)sum_dy;
        dgamma[c] = (float)sum_dy_xhat;
        double g_is = (double)gamma[c] * is;
        a[c] = (float)g_is;
        if (attrs->training && count > 0.0) {
            /* dx = gamma*invstd * (dy - mean(dy) - xhat * mean(dy * xhat)) */
            b[c] = (float)(-g_is * is * sum_dy_xhat / count);
            k[c] = (float)(-g_is * sum_dy / count);
        } else {
            b[c] = 0.0f;
            k[c] = 0.0f;
        }
    }
    bn_dx_job dx_job = {dy, x, dx, d, mean, a, b, k};
    cpu_parallel_for(st, d.n * d.c, row_grain(d.s), batch_norm_dx_range, &dx_job);
    free(sums);
    free(coeffs);
    return PLX_OK;
}

/* x seen as rows x cols, cols = the normalized dims. */
static void layer_norm_dims(const plx_tensor_desc *x, int32_t normalized_ndim, int64_t *rows, int64_t *cols)
{
    *rows = 1;
    *cols = 1;
    for (int32_t i = 0; i < x->ndim; i++) {
        if (i < x->ndim - normalized_ndim)
            *rows *= x->shape[i];
        else
            *cols *= x->shape[i];
    }
}

typedef struct ln_job {
    const float *x;
    const float *gamma;
    const float *beta;
    float *y;
    float *mean;
    float *invstd;
    int64_t cols;
    double eps;
} ln_job;

static void layer_norm_range(void *arg, int64_t r0, int64_t r1)
{
    const ln_job *job = arg;
    const int64_t cols = job->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = job->x + r * cols;
        float *y = job->y + r * cols;
        double mean = sum_f32(x, cols) / (double)cols;
        double var = sum_sq_dev_f32(x, cols, (float)mean) / (double)cols;
        double invstd = 1.0 / sqrt(var + job->eps);
        job->mean[r] = (float)mean;
        job->invstd[r] = (float)invstd;
        const float m = (float)mean, is = (float)invstd;
        layer_norm_row(x, m, is, job->gamma, job->beta, y, cols);
    }
}

/* (x, gamma, beta) -> (y, mean, invstd) */
static plx_status run_layer_norm(cpu_state *st, const plx_op_call *call)
{
    const plx_layer_norm_attrs *a = call->attrs;
    int64_t rows, cols;
    layer_norm_dims(&call->inputs[0], a->normalized_ndim, &rows, &cols);
    ln_job job = {cpu_f32(&call->inputs[0]), cpu_f32(&call->inputs[1]), cpu_f32(&call->inputs[2]),
                  cpu_f32(&call->outputs[0]), cpu_f32(&call->outputs[1]), cpu_f32(&call->outputs[2]),
                  cols, (double)a->eps};
    if (cols == 0) {
        /* PyTorch: the mean of nothing is NaN. */
        for (int64_t r = 0; r < rows; r++)
            job.mean[r] = job.invstd[r] = NAN;
        return PLX_OK;
    }
    cpu_parallel_for(st, rows, row_grain(cols), layer_norm_range, &job);
    return PLX_OK;
}

typedef struct ln_backward_job {
    const float *dy;
    const float *x;
    const float *gamma;
    const float *mean;
    const float *invstd;
    float *dx;
    int64_t rows, cols;
    double *dgamma; /* per column, double accumulators */
    double *dbeta;
} ln_backward_job;

static void layer_norm_dx_range(void *arg, int64_t r0, int64_t r1)
{
    const ln_backward_job *job = arg;
    const int64_t cols = job->cols;
    for (int64_t r = r0; r < r1; r++) {
        const float *dy = job->dy + r * cols;
        const float *x = job->x + r * cols;
        float *dx = job->dx + r * cols;
        const float m = job->mean[r], is = job->invstd[r];
        /* g = dy * gamma; dx = invstd * (g - mean(g) - xhat * mean(g * xhat)) */
        double sum_g = 0.0, sum_g_xc = 0.0;
        for (int64_t start = 0; start < cols; start += SUM_BLOCK) {
            int64_t end = start + SUM_BLOCK < cols ? start + SUM_BLOCK : cols;
            float lane_g[VEC_LANES] = {0}, lane_gx[VEC_LANES] = {0};
            int64_t j = start;
            for (; j + VEC_LANES <= end; j += VEC_LANES)
                for (int k = 0; k < VEC_LANES; k++) {
                    float g = dy[j + k] * job->gamma[j + k];
                    lane_g[k] += g;
                    lane_gx[k] += g * (x[j + k] - m);
                }
            for (; j < end; j++) {
                float g = dy[j] * job->gamma[j];
                lane_g[0] += g;
                lane_gx[0] += g * (x[j] - m);
            }
            for (int k = 0; k < VEC_LANES; k++) {
                sum_g += (double)lane_g[k];
                sum_g_xc += (double)lane_gx[k];
            }
        }
        const float mean_g = (float)(sum_g / (double)cols);
        const float xc_coeff = (float)(sum_g_xc * (double)is * (double)is / (double)cols);
        layer_norm_dx_row(dy, x, job->gamma, m, is, mean_g, xc_coeff, dx, cols);
    }
}

static void layer_norm_dparams_range(void *arg, int64_t c0, int64_t c1)
{
    const ln_backward_job *job = arg;
    const int64_t cols = job->cols;
    for (int64_t j = c0; j < c1; j++)
        job->dgamma[j] = job->dbeta[j] = 0.0;
    for (int64_t r = 0; r < job->rows; r++) {
        const float *dy = job->dy + r * cols;
        const float *x = job->x + r * cols;
        const float m = job->mean[r], is = job->invstd[r];
        layer_norm_dparams_row(dy + c0, x + c0, m, is, job->dgamma + c0, job->dbeta + c0, c1 - c0);
    }
}

/* (dy, x, gamma, mean, invstd) -> (dx, dgamma, dbeta) */
static plx_status run_layer_norm_backward(cpu_state *st, const plx_op_call *call)
{
    const plx_layer_norm_attrs *a = call->attrs;
    int64_t rows, cols;
    layer_norm_dims(&call->inputs[1], a->normalized_ndim, &rows, &cols);
    float *dgamma = cpu_f32(&call->outputs[1]);
    float *dbeta = cpu_f32(&call->outputs[2]);
    if (cols == 0)
        return PLX_OK;
    double *sums = malloc((size_t)cols * 2 * sizeof(double));
    if (sums == NULL)
        return CPU_FAIL(st, PLX_OUT_OF_MEMORY, "layer norm backward scratch for %lld columns", (long long)cols);
    ln_backward_job job = {cpu_f32(&call->inputs[0]), cpu_f32(&call->inputs[1]), cpu_f32(&call->inputs[2]),
                           cpu_f32(&call->inputs[3]), cpu_f32(&call->inputs[4]), cpu_f32(&call->outputs[0]),
                           rows, cols, sums, sums + cols};
    cpu_parallel_for(st, rows, row_grain(cols), layer_norm_dx_range, &job);
    cpu_parallel_for(st, cols, row_grain(rows), layer_norm_dparams_range, &job);
    for (int64_t j = 0; j < cols; j++) {
        dgamma[j] = (float)job.dgamma[j];
        dbeta[j] = (float)job.dbeta[j];
    }
    free(sums);
    return PLX_OK;
}

CPU_FAMILY_TABLE(norm,
                 {PLX_OP_BATCH_NORM, run_batch_norm, NULL},
                 {PLX_OP_BATCH_NORM_BACKWARD, run_batch_norm_backward, NULL},
                 {PLX_OP_LAYER_NORM, run_layer_norm, NULL},
                 {PLX_OP_LAYER_NORM_BACKWARD, run_layer_norm_backward, NULL});
