/* cpu_blas kernels of the optim family. Each update follows torch.optim's
 * single-tensor code (1.13) operation by operation in f32, with the Python
 * scalars (bias corrections, step sizes) computed in double and rounded to
 * f32 where PyTorch does, so results agree to a few ulps. */
#include <math.h>
#include <stdlib.h>

#include "cpu_blas.h"

/* Elementwise updates do ~10 flops per element. */
#define OPTIM_GRAIN 16384

/* ---- SGD ----------------------------------------------------------------- */

typedef struct sgd_job {
    float *param, *buf;
    const float *grad;
    float lr, momentum, dampening_keep, weight_decay;
    bool nesterov, first_step;
} sgd_job;

static void sgd_range(void *arg, int64_t begin, int64_t end)
{
    const sgd_job *job = arg;
    float *p = job->param, *buf = job->buf;
    const float *g = job->grad;
    const float lr = job->lr, momentum = job->momentum, keep = job->dampening_keep, wd = job->weight_decay;
    for (int64_t i = begin; i < end; i++) {
        float d = wd != 0.0f ? g[i] + wd * p[i] : g[i];
        if (buf != NULL) {
            /* On the first step PyTorch starts the buffer at d, undamped. */
            float b = job->first_step ? d : buf[i] * momentum + keep * d;
            buf[i] = b;
            d = job->nesterov ? d + momentum * b : b;
        }
        p[i] = p[i] - lr * d;
    }
}

static plx_status run_sgd(cpu_state *st, const plx_op_call *call)
{
    const plx_sgd_attrs *a = call->attrs;
    sgd_job job = {cpu_f32(&call->inputs[0]),
                   a->momentum != 0.0f ? cpu_f32(&call->inputs[2]) : NULL,
                   cpu_f32(&call->inputs[1]),
                   a->lr,
                   a->momentum,
                   (float)(1.0 - (double)a->dampening),
                   a->weight_decay,
                   a->nesterov != 0,
                   a->step == 1};
    cpu_parallel_for(st, plx_desc_numel(&call->inputs[0]), OPTIM_GRAIN, sgd_range, &job);
    return PLX_OK;
}

/* ---- Adam / AdamW ---------------------------------------------------------- */

typedef struct adam_job {
    float *param, *exp_avg, *exp_avg_sq, *max_exp_avg_sq;
    const float *grad;
    float param_scale;  /* AdamW: 1 - lr * weight_decay */
    float weight_decay; /* Adam: L2 added to the gradient */
    float beta1, beta1_keep, beta2, beta2_keep;
    float bias_correction2_sqrt, eps, neg_step_size;
} adam_job;

static void adam_range(void *arg, int64_t begin, int64_t end)
{
    const adam_job *job = arg;
    float *p = job->param, *m = job->exp_avg, *v = job->exp_avg_sq, *vmax = job->max_exp_avg_sq;
    const float *g = job->grad;
    for (int64_t i = begin; i < end; i++) {
        float grad = job->weight_decay != 0.0f ? g[i] + job->weight_decay * p[i] : g[i];
        float param = job->param_scale != 1.0f ? p[i] * job->param_scale : p[i];
        float mi = m[i] * job->beta1 + job->beta1_keep * grad;
        float vi = v[i] * job->beta2 + job->beta2_keep * (grad * grad);
        m[i] = mi;
        v[i] = vi;
        float second = vi;
        if (vmax != NULL) {
            second = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = second;
        }
        float denom = sqrtf(second) / job->bias_correction2_sqrt + job->eps;
        p[i] = param + job->neg_step_size * (mi / denom);
    }
}

static plx_status run_adam(cpu_state *st, const plx_op_call *call)
{
    const plx_adam_attrs *a = call->attrs;
    double step = (double)a->step;
    double bias_correction1 = 1.0 - pow((double)a->beta1, step);
    double bias_correction2 = 1.0 - pow((double)a->beta2, step);
    bool decoupled = a->decoupled_weight_decay != 0;
    adam_job job = {
        .param = cpu_f32(&call->inputs[0]),
        .grad = cpu_f32(&call->inputs[1]),
        .exp_avg = cpu_f32(&call->inputs[2]),
        .exp_avg_sq = cpu_f32(&call->inputs[3]),
        .max_exp_avg_sq = a->amsgrad ? cpu_f32(&call->inputs[4]) : NULL,
        .param_scale = decoupled ? (float)(1.0 - (double)a->lr * (double)a->weight_decay) : 1.0f,
        .weight_decay = decoupled ? 0.0f : a->weight_decay,
        .beta1 = a->beta1,
        .beta1_keep = (float)(1.0 - (double)a->beta1),
        .beta2 = a->beta2,
        .beta2_keep = (float)(1.0 - (double)a->beta2),
        .bias_correction2_sqrt = (float)sqrt(bias_correction2),
        .eps = a->eps,
        .neg_step_size = (float)(-(double)a->lr / bias_correction1),
    };
    cpu_parallel_for(st, plx_desc_numel(&call->inputs[0]), OPTIM_GRAIN, adam_range, &job);
    return PLX_OK;
}

/* ---- RMSprop ----------------------------------------------------------------- */

typedef struct rmsprop_job {
    float *param, *square_avg, *momentum_buf, *grad_avg;
    const float *grad;
    float lr, alpha, alpha_keep, eps, weight_decay, momentum;
} rmsprop_job;

static void rmsprop_range(void *arg, int64_t begin, int64_t end)
{
    const rmsprop_job *job = arg;
    float *p = job->param, *sq = job->square_avg, *buf = job->momentum_buf, *ga = job->grad_avg;
    const float *g = job->grad;
    for (int64_t i = begin; i < end; i++) {
        float grad = job->weight_decay != 0.0f ? g[i] + job->weight_decay * p[i] : g[i];
        float s = sq[i] * job->alpha + job->alpha_keep * (grad * grad);
        sq[i] = s;
        float avg;
        if (ga != NULL) {
            float mean = ga[i] * job->alpha + job->alpha_keep * grad;
            ga[i] = mean;
            avg = sqrtf(s - mean * mean);
        } else {
            avg = sqrtf(s);
        }
        avg += job->eps;
        if (buf != NULL) {
            float b = buf[i] * job->momentum + grad / avg;
            buf[i] = b;
            p[i] = p[i] - job->lr * b;
        } else {
            p[i] = p[i] - job->lr * (grad / avg);
        }
    }
}

static plx_status run_rmsprop(cpu_state *st, const plx_op_call *call)
{
    const plx_rmsprop_attrs *a = call->attrs;
    bool with_momentum = a->momentum > 0.0f;
    int32_t grad_avg_slot = with_momentum ? 4 : 3;
    rmsprop_job job = {
        .param = cpu_f32(&call->inputs[0]),
        .grad = cpu_f32(&call->inputs[1]),
        .square_avg = cpu_f32(&call->inputs[2]),
        .momentum_buf = with_momentum ? cpu_f32(&call->inputs[3]) : NULL,
        .grad_avg = a->centered ? cpu_f32(&call->inputs[grad_avg_slot]) : NULL,
        .lr = a->lr,
        .alpha = a->alpha,
        .alpha_keep = (float)(1.0 - (double)a->alpha),
        .eps = a->eps,
        .weight_decay = a->weight_decay,
        .momentum = a->momentum,
    };
    cpu_parallel_for(st, plx_desc_numel(&call->inputs[0]), OPTIM_GRAIN, rmsprop_range, &job);
    return PLX_OK;
}

/* ---- Adagrad ---------------------------------------------------------------- */

typedef struct adagrad_job {
    float *param, *state_sum;
    const float *grad;
    float neg_clr, eps, weight_decay;
} adagrad_job;

static void adagrad_range(void *arg, int64_t begin, int64_t end)
{
    const adagrad_job *job = arg;
    float *p = job->param, *sum = job->state_sum;
    const float *g = job->grad;
    for (int64_t i = begin; i < end; i++) {
        float grad = job->weight_decay != 0.0f ? g[i] + job->weight_decay * p[i] : g[i];
        float s = sum[i] + grad * grad;
        sum[i] = s;
        float std = sqrtf(s) + job->eps;
        p[i] = p[i] + job->neg_clr * (grad / std);
    }
}

static plx_status run_adagrad(cpu_state *st, const plx_op_call *call)
{
    const plx_adagrad_attrs *a = call->attrs;
    double clr = (double)a->lr / (1.0 + (double)(a->step - 1) * (double)a->lr_decay);
    adagrad_job job = {cpu_f32(&call->inputs[0]), cpu_f32(&call->inputs[2]), cpu_f32(&call->inputs[1]),
                       (float)-clr, a->eps, a->weight_decay};
    cpu_parallel_for(st, plx_desc_numel(&call->inputs[0]), OPTIM_GRAIN, adagrad_range, &job);
    return PLX_OK;
}

/* ---- clip_grad_norm ----------------------------------------------------------
 * Each gradient is cut into fixed blocks whose partial norms (in double) land
 * in their own slots, so the total does not depend on the thread split. */

#define NORM_BLOCK 16384

typedef struct norm_job {
    const float *x;
    int64_t n;
    int norm_kind; /* 1, 2, or 0 for inf */
    double *partial;
} norm_job;

static void norm_blocks(void *arg, int64_t begin, int64_t end)
{
    const norm_job *job = arg;
    for (int64_t b = begin; b < end; b++) {
        int64_t lo = b * NORM_BLOCK, hi = lo + NORM_BLOCK < job->n ? lo + NORM_BLOCK : job->n;
        const float *x = job->x;
        double acc = 0.0;
        if (job->norm_kind == 2) {
            for (int64_t i = lo; i < hi; i++)
                acc += (double)x[i] * (double)x[i];
        } else if (job->norm_kind == 1) {
            for (int64_t i = lo; i < hi; i++)
                acc += fabs((double)x[i]);
        } else {
            float m = 0.0f;
            for (int64_t i = lo; i < hi; i++) {
                float v = fabsf(x[i]);
                /* NaN wins, as in torch.max: once m is NaN no compare is true. */
                if (v > m || v != v)
                    m = v;
            }
            acc = m;
        }
        job->partial[b] = acc;
    }
}

typedef struct scale_job {
    float *x;
    float coef;
} scale_job;

static void scale_range(void *arg, int64_t begin, int64_t end)
{
    const scale_job *job = arg;
    for (int64_t i = begin; i < end; i++)
        job->x[i] *= job->coef;
}

/* Norm of one gradient, rounded to f32 as torch.norm returns it. */
static float tensor_norm(cpu_state *st, const float *x, int64_t n, int norm_kind, double *partial)
{
    int64_t blocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    norm_job job = {x, n, norm_kind, partial};
    cpu_parallel_for(st, blocks, 2, norm_blocks, &job);
    double acc = 0.0;
    for (int64_t b = 0; b < blocks; b++) {
        if (norm_kind == 0)
            acc = partial[b] > acc || partial[b] != partial[b] ? partial[b] : acc;
        else
            acc += partial[b];
    }
    return (float)(norm_kind == 2 ? sqrt(acc) : acc);
}

static plx_status run_clip_grad_norm(cpu_state *st, const plx_op_call *call)
{
    const plx_clip_grad_norm_attrs *a = call->attrs;
    int norm_kind = a->norm_type == 1.0f ? 1 : a->norm_type == 2.0f ? 2 : 0;
    int64_t max_blocks = 1;
    for (int32_t k = 0; k < call->n_inputs; k++) {
        int64_t blocks = (plx_desc_numel(&call->inputs[k]) + NORM_BLOCK - 1) / NORM_BLOCK;
        if (blocks > max_blocks)
            max_blocks = blocks;
    }
    double *partial = malloc(sizeof(double) * (size_t)max_blocks);
    if (partial == NULL)
        return CPU_FAIL(st, PLX_OUT_OF_MEMORY, "no memory for %lld partial norms",
                        (long long)max_blocks);
    /* As PyTorch: the total is the norm of the per-tensor norms. */
    double total = 0.0;
    for (int32_t k = 0; k < call->n_inputs; k++) {
        float norm = tensor_norm(st, cpu_f32(&call->inputs[k]), plx_desc_numel(&call->inputs[k]), norm_kind, partial);
        if (norm_kind == 2)
            total += (double)norm * (double)norm;
        else if (norm_kind == 1)
            total += (double)norm;
        else
            total = (double)norm > total || norm != norm ? (double)norm : total;
    }
    free(partial);
    float total_norm = (float)(norm_kind == 2 ? sqrt(total) : total);
    float coef = a->max_norm / (total_norm + 1e-6f);
    if (coef > 1.0f)
        coef = 1.0f;
    *cpu_f32(&call->outputs[0]) = total_norm;
    for (int32_t k = 0; k < call->n_inputs; k++) {
        scale_job job = {cpu_f32(&call->inputs[k]), coef};
        cpu_parallel_for(st, plx_desc_numel(&call->inputs[k]), 65536, scale_range, &job);
    }
    return PLX_OK;
}

CPU_FAMILY_TABLE(optim,
                 {PLX_OP_SGD_UPDATE, run_sgd, NULL},
                 {PLX_OP_ADAM_UPDATE, run_adam, NULL},
                 {PLX_OP_RMSPROP_UPDATE, run_rmsprop, NULL},
                 {PLX_OP_ADAGRAD_UPDATE, run_adagrad, NULL},
                 {PLX_OP_CLIP_GRAD_NORM, run_clip_grad_norm, NULL});
